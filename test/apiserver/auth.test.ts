// Security by default on 3 real masters: TLS with a cluster CA, bearer
// tokens and client certificates, RBAC with the bootstrap policy, node
// restriction, the etcd API for admins only, and mastctl reading its
// credentials from the config file.

import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { EtcdConnection } from '../../services/client/etcd.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { runCtl } from '../../services/ctl/mastctl.js';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';
import { createCertificateAuthority, formatTokenFile, issueCertificate, issueNodeCredentials } from '../../services/pki/index.js';
import { failure } from '../support/refusals.js';

const TOKENS = { admin: 'admin-token-0123456789', alice: 'alice-token-0123456789' };

describe('security by default on 3 masters: authentication, RBAC, node restriction', function () {
  this.timeout(180_000);
  let directory: string;
  let cluster: LocalCluster;
  let ca: Buffer;
  let nodeCertificate: { certPem: string; keyPem: string };
  const clients: ResourceClient[] = [];

  const tokenClient = (token?: string): ResourceClient => {
    const client = new ResourceClient({ endpoints: cluster.endpoints, credentials: grpc.credentials.createSsl(ca), ...(token === undefined ? {} : { token }) });
    clients.push(client);
    return client;
  };

  before(async function () {
    directory = mkdtempSync(join(tmpdir(), 'mast-auth-'));
    const authority = await createCertificateAuthority({});
    const member = await issueCertificate(authority, { commonName: 'system:master:test', organizations: ['system:masters'], ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], usages: ['server', 'client'] });
    nodeCertificate = await issueNodeCredentials(authority, 'n1');
    writeFileSync(join(directory, 'ca.crt'), authority.certPem);
    writeFileSync(join(directory, 'member.crt'), member.certPem);
    writeFileSync(join(directory, 'member.key'), member.keyPem);
    writeFileSync(join(directory, 'tokens.csv'), formatTokenFile([
      { token: TOKENS.admin, user: { name: 'admin', uid: 'admin', groups: ['system:masters'] } },
      { token: TOKENS.alice, user: { name: 'alice', uid: 'alice', groups: [] } },
    ]));
    ca = Buffer.from(authority.certPem);
    cluster = await LocalCluster.start({
      size: 3,
      baseDir: join(directory, 'cluster'),
      tls: { caFile: join(directory, 'ca.crt'), certFile: join(directory, 'member.crt'), keyFile: join(directory, 'member.key') },
      tokenAuthFile: join(directory, 'tokens.csv'),
    });
    const admin = tokenClient(TOKENS.admin);
    // The bootstrap policy is in place once the masters have created it.
    await waitFor('the bootstrap RBAC policy', async () => ((await admin.list('ClusterRoleBinding')).items.some((item) => item.metadata?.name === 'system:node') ? true : undefined), 60_000, 100);
    await waitFor('the default namespaces', async () => ((await admin.list('Namespace')).items.length >= 4 ? true : undefined), 60_000, 100);
  });

  after(async function () {
    for (const client of clients) client.close();
    await cluster?.destroy();
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  });

  it('refuses callers without credentials or with a token nobody has', async function () {
    const anonymous = await failure(tokenClient().list('Pod', { namespace: 'default' }));
    expect(anonymous.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(anonymous.details).to.equal('no credentials: present a client certificate signed by the cluster CA or a bearer token (mastctl reads them from its config)');
    const forged = await failure(tokenClient('not-a-token').list('Pod', { namespace: 'default' }));
    expect(forged.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(forged.details).to.equal('invalid bearer token');
    const etcd = new EtcdConnection(cluster.endpoints[0]!, grpc.credentials.createSsl(ca), 5000);
    try {
      expect((await failure(etcd.get('/registry/secrets/default/x'))).code).to.equal(grpc.status.UNAUTHENTICATED);
    } finally {
      etcd.close();
    }
  });

  it('lets RBAC decide, with the bootstrap roles and the words Kubernetes uses', async function () {
    const admin = tokenClient(TOKENS.admin);
    const alice = tokenClient(TOKENS.alice);
    await admin.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } });
    const denied = await failure(alice.list('ConfigMap', { namespace: 'team' }));
    expect(denied.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(denied.details).to.equal('configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "team"');
    await admin.create('RoleBinding', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'alice-edits', namespace: 'team' },
      subjects: [{ kind: 'User', name: 'alice', apiGroup: 'rbac.authorization.k8s.io' }],
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
    });
    const created = await waitFor('alice to be allowed in team', async () => {
      try {
        return await alice.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mine', namespace: 'team' }, data: { a: '1' } });
      } catch (error) {
        if ((error as grpc.ServiceError).code === grpc.status.PERMISSION_DENIED) return undefined;
        throw error;
      }
    }, 30_000, 50);
    expect(created.metadata?.namespace).to.equal('team');
    // Only in her namespace, and edit does not reach RBAC objects.
    expect((await failure(alice.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mine', namespace: 'default' } }))).code).to.equal(grpc.status.PERMISSION_DENIED);
    const escalate = await failure(alice.create('RoleBinding', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'more', namespace: 'team' }, subjects: [{ kind: 'User', name: 'alice' }], roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' } }));
    expect(escalate.details).to.equal('rolebindings.rbac.authorization.k8s.io "more" is forbidden: User "alice" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "team"');
  });

  it('keeps the raw etcd API for cluster admins', async function () {
    const admin = new EtcdConnection(cluster.endpoints[1]!, grpc.credentials.combineChannelCredentials(grpc.credentials.createSsl(ca), grpc.credentials.createFromMetadataGenerator((_, done) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${TOKENS.admin}`);
      done(null, metadata);
    })), 5000);
    const alice = new EtcdConnection(cluster.endpoints[1]!, grpc.credentials.combineChannelCredentials(grpc.credentials.createSsl(ca), grpc.credentials.createFromMetadataGenerator((_, done) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${TOKENS.alice}`);
      done(null, metadata);
    })), 5000);
    try {
      expect((await admin.get('/registry/namespaces/team')).kvs).to.have.length(1);
      const refused = await failure(alice.get('/registry/namespaces/team'));
      expect(refused.code).to.equal(grpc.status.PERMISSION_DENIED);
      expect(refused.details).to.equal('User "alice" cannot use the etcd API: raw key-value access is for cluster admins (group system:masters); use the resource API');
    } finally {
      admin.close();
      alice.close();
    }
  });

  it('restricts a node agent (client certificate system:node:n1) to its own Node, Lease and pods', async function () {
    const admin = tokenClient(TOKENS.admin);
    const node = new ResourceClient({ endpoints: cluster.endpoints, credentials: grpc.credentials.createSsl(ca, Buffer.from(nodeCertificate.keyPem), Buffer.from(nodeCertificate.certPem)) });
    clients.push(node);
    const nodeObject = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name } });
    await node.create('Node', nodeObject('n1'));
    const other = await failure(node.create('Node', nodeObject('n2')));
    expect(other.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(other.details).to.equal('nodes "n2" is forbidden: User "system:node:n1" cannot create resource "nodes" in API group "" at the cluster scope: node "n1" can only modify its own Node object');
    await node.create('Lease', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'n1', namespace: 'kube-node-lease' }, spec: { holderIdentity: 'n1' } });
    expect((await failure(node.create('Lease', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'scheduler', namespace: 'kube-node-lease' }, spec: { holderIdentity: 'n1' } }))).code).to.equal(grpc.status.PERMISSION_DENIED);
    const pod = (name: string, nodeName: string): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { nodeName, containers: [{ name: 'c', image: 'busybox' }] } });
    const mine = await admin.create('Pod', pod('on-n1', 'n1'));
    const theirs = await admin.create('Pod', pod('on-n2', 'n2'));
    // The node's master may not have applied the admin's create yet: wait until the status update is judged on the pod as it is.
    const updated = await waitFor('the node to report its pod', async () => {
      try {
        return await node.updateStatus('Pod', { ...mine, status: { phase: 'Running' } });
      } catch (error) {
        if ((error as grpc.ServiceError).code === grpc.status.PERMISSION_DENIED) return undefined;
        throw error;
      }
    }, 30_000, 50);
    expect((updated.status as { phase: string }).phase).to.equal('Running');
    const foreign = await failure(node.updateStatus('Pod', { ...theirs, status: { phase: 'Failed' } }));
    expect(foreign.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(foreign.details).to.contain('node "n1" can only update the status of pods with spec.nodeName set to itself');
    expect((await failure(node.update('Pod', { ...mine, metadata: { ...updated.metadata, labels: { hacked: 'yes' } } }))).code).to.equal(grpc.status.PERMISSION_DENIED);
  });

  it('serves mastctl with the credentials of its config file', async function () {
    const config = join(directory, 'config');
    writeFileSync(config, `masters: [${cluster.members.map((member) => member.clientUrl).join(', ')}]\ncertificateAuthority: ca.crt\ntoken: ${TOKENS.admin}\n`);
    const output: string[] = [];
    const io = { out: (text: string) => output.push(text), env: { MASTCONFIG: config }, readStdin: () => '', now: () => new Date() };
    expect(await runCtl(['get', 'namespaces'], io)).to.equal(0);
    expect(output.join('\n')).to.match(/^team\s+Active/m);
    writeFileSync(config, `masters: [${cluster.members[0]!.clientUrl}]\ncertificateAuthority: ca.crt\ntoken: ${TOKENS.alice}\n`);
    expect(await runCtl(['get', 'secrets', '-n', 'default'], io)).to.equal(1);
    expect(output.at(-1)).to.equal('Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "default"');
  });
});
