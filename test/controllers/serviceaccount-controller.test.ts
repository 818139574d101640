// The service account controllers on a 1-master cluster with TLS, tokens and
// RBAC, run in this process: every namespace gets a ServiceAccount
// "default" with a token Secret; the token authenticates as
// system:serviceaccount:NS:default, which may do what a RoleBinding grants
// it and nothing else; deleting the account ends the token, and the
// controllers make a new account with a new token.

import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ResourceClient, statusCodeOf, type KubeObject } from '../../services/client/resources.js';
import { ServiceAccountsController } from '../../services/controllers/serviceaccount/controller.js';
import { TokensController } from '../../services/controllers/serviceaccount/tokens-controller.js';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';
import { createCertificateAuthority, formatTokenFile, issueCertificate } from '../../services/pki/index.js';
import { failure } from '../support/refusals.js';

const ADMIN_TOKEN = 'admin-token-0123456789';

describe('controllers: service accounts and their tokens', function () {
  this.timeout(180_000);
  let directory: string;
  let cluster: LocalCluster;
  let caPem: string;
  let admin: ResourceClient;
  const clients: ResourceClient[] = [];
  const stop = new AbortController();
  const running: Array<Promise<void>> = [];

  const tokenClient = (token: string): ResourceClient => {
    const client = new ResourceClient({ endpoints: cluster.endpoints, credentials: grpc.credentials.createSsl(Buffer.from(caPem)), token });
    clients.push(client);
    return client;
  };

  before(async function () {
    directory = mkdtempSync(join(tmpdir(), 'mast-serviceaccount-'));
    const authority = await createCertificateAuthority({});
    const member = await issueCertificate(authority, { commonName: 'system:master:test', organizations: ['system:masters'], ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], usages: ['server', 'client'] });
    caPem = authority.certPem;
    writeFileSync(join(directory, 'ca.crt'), authority.certPem);
    writeFileSync(join(directory, 'member.crt'), member.certPem);
    writeFileSync(join(directory, 'member.key'), member.keyPem);
    writeFileSync(join(directory, 'tokens.csv'), formatTokenFile([{ token: ADMIN_TOKEN, user: { name: 'admin', uid: 'admin', groups: ['system:masters'] } }]));
    cluster = await LocalCluster.start({
      size: 1,
      baseDir: join(directory, 'cluster'),
      tls: { caFile: join(directory, 'ca.crt'), certFile: join(directory, 'member.crt'), keyFile: join(directory, 'member.key') },
      tokenAuthFile: join(directory, 'tokens.csv'),
    });
    admin = tokenClient(ADMIN_TOKEN);
    await waitFor('the default namespaces', async () => ((await admin.list('Namespace')).items.length >= 4 ? true : undefined), 60_000, 100);
    running.push(new ServiceAccountsController({ client: admin }).run(stop.signal), new TokensController({ client: admin, rootCaPem: caPem }).run(stop.signal));
  });

  after(async function () {
    stop.abort();
    await Promise.all(running);
    for (const client of clients) client.close();
    await cluster?.destroy();
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  });

  /** The account's token Secret, once it has one, and the token in it. */
  const tokenOf = (namespace: string, uidNot = ''): Promise<{ account: KubeObject; secret: KubeObject; token: string }> =>
    waitFor(`a token for ${namespace}/default`, async () => {
      const account = await admin.get('ServiceAccount', namespace, 'default');
      const name = (account.secrets as Array<{ name: string }> | undefined)?.[0]?.name;
      if (name === undefined || account.metadata?.uid === uidNot) return undefined;
      const secret = await admin.get('Secret', namespace, name);
      return { account, secret, token: Buffer.from((secret.data as { token: string }).token, 'base64').toString('utf8') };
    }, 60_000, 100);

  it('gives existing and new namespaces a default account with a token Secret', async function () {
    const existing = await tokenOf('default');
    expect(existing.secret.metadata?.name).to.match(/^default-token-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    await admin.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ci' } });
    const { account, secret, token } = await tokenOf('ci');
    expect(account.secrets).to.deep.equal([{ name: secret.metadata?.name }]);
    expect(secret.type).to.equal('kubernetes.io/service-account-token');
    expect(secret.metadata?.annotations).to.deep.equal({ 'kubernetes.io/service-account.name': 'default', 'kubernetes.io/service-account.uid': account.metadata?.uid });
    const data = secret.data as Record<string, string>;
    expect(Buffer.from(data.namespace!, 'base64').toString()).to.equal('ci');
    expect(Buffer.from(data['ca.crt']!, 'base64').toString()).to.equal(caPem);
    // 256 random bits, base64url.
    expect(token).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(token).to.not.equal(existing.token);
  });

  it('authenticates the token as the account, which may do only what a RoleBinding grants it', async function () {
    const { token } = await tokenOf('ci');
    const robot = tokenClient(token);
    const denied = await failure(robot.list('ConfigMap', { namespace: 'ci' }));
    expect(denied.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(denied.details).to.equal('configmaps is forbidden: User "system:serviceaccount:ci:default" cannot list resource "configmaps" in API group "" in the namespace "ci"');
    await admin.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'ci' }, data: { a: '1' } });
    await admin.create('RoleBinding', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'robot-views', namespace: 'ci' },
      subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: 'ci' }],
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
    });
    const listed = await waitFor('the binding to apply', async () => {
      try {
        return await robot.list('ConfigMap', { namespace: 'ci' });
      } catch (error) {
        if (statusCodeOf(error) === grpc.status.PERMISSION_DENIED) return undefined;
        throw error;
      }
    }, 30_000, 50);
    expect(listed.items.map((item) => item.metadata?.name)).to.deep.equal(['settings']);
    // view reads, never writes; and only in its namespace.
    expect((await failure(robot.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mine', namespace: 'ci' } }))).code).to.equal(grpc.status.PERMISSION_DENIED);
    expect((await failure(robot.list('ConfigMap', { namespace: 'default' }))).code).to.equal(grpc.status.PERMISSION_DENIED);
  });

  it('ends the token with its account, and makes a new account with a new token', async function () {
    const before = await tokenOf('ci');
    const robot = tokenClient(before.token);
    await admin.delete('ServiceAccount', 'ci', 'default');
    // The API server stops trusting it at once (its watch cache applied the delete before answering).
    const refused = await failure(robot.list('ConfigMap', { namespace: 'ci' }));
    expect(refused.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(refused.details).to.equal('invalid bearer token');
    const after = await tokenOf('ci', String(before.account.metadata?.uid));
    expect(after.token).to.not.equal(before.token);
    // The old token Secret goes with its account.
    await waitFor('the old token Secret to go', async () => {
      try {
        await admin.get('Secret', 'ci', before.secret.metadata!.name!);
        return undefined;
      } catch (error) {
        if (statusCodeOf(error) === grpc.status.NOT_FOUND) return true;
        throw error;
      }
    }, 60_000, 100);
    // The RoleBinding names the account, so the new one may read.
    const listed = await tokenClient(after.token).list('ConfigMap', { namespace: 'ci' });
    expect(listed.items.map((item) => item.metadata?.name)).to.deep.equal(['settings']);
    expect((await failure(robot.list('ConfigMap', { namespace: 'ci' }))).code).to.equal(grpc.status.UNAUTHENTICATED);
  });
});
