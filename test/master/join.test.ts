// Joining a secured cluster with join tokens: a master made from `mast init`'s
// files (TLS, token file, the CA key to sign joins), `mastctl token create`,
// then `mast join node` (discovery pinned to the CA hash, a node client
// certificate for a key that never left the joiner) and `mast join master`
// (a new member that starts from the flags it was given and serves with
// its new certificate). Bad pins, bad, deleted, expired and wrong-role tokens
// are refused with errors that say so.

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { joinMaster, joinNode, JoinError } from '../../services/cmd/join.js';
import { runCtl } from '../../services/ctl/mastctl.js';
import { loadClientConfig } from '../../services/client/client-config.js';
import { EtcdConnection } from '../../services/client/etcd.js';
import { ResourceClient } from '../../services/client/resources.js';
import { LocalCluster, MAST_BINARY, freePort, waitFor } from '../../services/launcher/local-cluster.js';
import { caCertificateHash, initCluster, type InitResult } from '../../services/pki/index.js';

describe('joining a secured cluster with join tokens', function () {
  this.timeout(120_000);
  let scratch: string;
  let pki: InitResult;
  let cluster: LocalCluster;
  let server: string;
  let caHash: string;
  const children: ChildProcess[] = [];

  const ctl = async (...args: string[]): Promise<{ code: number; lines: string[] }> => {
    const lines: string[] = [];
    const code = await runCtl([...args, '--server', server, '--certificate-authority', pki.caCertFile, '--token', pki.adminToken], { out: (text) => void lines.push(text), readStdin: () => '', env: {}, now: () => new Date() });
    return { code, lines };
  };
  const createToken = async (...flags: string[]): Promise<string> => {
    const { code, lines } = await ctl('token', 'create', ...flags);
    expect(code, lines.join('\n')).to.equal(0);
    return lines[0]!;
  };
  const refusal = async (attempt: Promise<unknown>): Promise<string> => {
    try {
      await attempt;
    } catch (error) {
      expect(error).to.be.instanceOf(JoinError);
      return (error as Error).message;
    }
    return expect.fail('the join was accepted');
  };

  before(async function () {
    scratch = mkdtempSync(join(tmpdir(), 'mast-join-'));
    pki = await initCluster({ dir: join(scratch, 'pki'), masters: [{ name: 'm1', hosts: ['127.0.0.1'] }] });
    const m1 = pki.masters[0]!;
    cluster = await LocalCluster.start({
      size: 1,
      baseDir: join(scratch, 'cluster'),
      tls: { caFile: pki.caCertFile, certFile: m1.certFile, keyFile: m1.keyFile },
      tokenAuthFile: pki.tokenFile,
      flags: [`--cluster-signing-key-file=${pki.caKeyFile}`],
    });
    server = cluster.members[0]!.clientUrl;
    caHash = caCertificateHash(readFileSync(pki.caCertFile, 'utf8'));
  });

  after(async function () {
    for (const child of children) child.kill('SIGKILL');
    await cluster?.destroy();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  });

  it('mastctl token create prints a token and the join command with the CA pin; list and delete manage them', async function () {
    const { code, lines } = await ctl('token', 'create', '--ttl', '2h', '--description', 'rack 4');
    expect(code, lines.join('\n')).to.equal(0);
    expect(lines[0]).to.match(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(lines[1]).to.equal(`join a node with: mast join node --server ${server} --token ${lines[0]} --discovery-token-ca-cert-hash ${caHash} [--node-name NAME]`);
    const id = lines[0]!.slice(0, 6);
    const listed = await ctl('token', 'list');
    const row = listed.lines.find((line) => line.startsWith(id));
    expect(row).to.match(new RegExp(`^${id}\\s+1h59m\\s+\\S+Z\\s+node\\s+rack 4$`));
    expect((await ctl('token', 'delete', id)).lines).to.deep.equal([`join token ${id} deleted`]);
    expect((await ctl('token', 'list')).lines.some((line) => line.startsWith(id))).to.equal(false);
    expect((await ctl('token', 'create', '--ttl', 'soon')).lines).to.deep.equal(['error: --ttl "soon" is not a duration such as 24h, 30m, 90s or 0 (never expires)']);
    expect((await ctl('token', 'create', '--for', 'admin')).lines).to.deep.equal(['error: --for "admin": a token is for joining a node or a master']);
  });

  it('joins a node: the CA is trusted only with the right pin, and the node gets system:node:NAME for a key it made', async function () {
    const token = await createToken();
    const dir = join(scratch, 'node-a');
    const wrongPin = `sha256:${'0'.repeat(64)}`;
    expect(await refusal(joinNode({ server, token, caHash: wrongPin, dir, nodeName: 'node-a' }))).to.equal(`${server} presented a cluster CA whose hash is ${caHash}, not the ${wrongPin} given with --discovery-token-ca-cert-hash: refusing to trust it`);

    const joined = await joinNode({ server, token, caHash, dir, nodeName: 'node-a' });
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    expect(statSync(join(dir, 'node.key')).mode & 0o777).to.equal(0o600);
    const certificate = new X509Certificate(readFileSync(join(dir, 'node.crt')));
    expect(certificate.subject.split('\n')).to.have.members(['O=system:nodes', 'CN=system:node:node-a']);
    expect(certificate.checkIssued(new X509Certificate(readFileSync(pki.caCertFile)))).to.equal(true);
    expect(certificate.checkPrivateKey(await import('node:crypto').then(({ createPrivateKey }) => createPrivateKey(readFileSync(join(dir, 'node.key')))))).to.equal(true);
    expect(readFileSync(joined.envFile, 'utf8')).to.contain(`MAST_AGENT_FLAGS=--kubeconfig ${joined.configFile} --node-name node-a`);

    // With the written config, the agent's credentials: it may register its own Node, not another.
    const config = loadClientConfig({ configFile: joined.configFile }, {});
    expect(config.masters).to.deep.equal([server]);
    const client = new ResourceClient({ endpoints: config.masters, credentials: config.credentials! });
    try {
      const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } };
      await client.create('Node', node);
      const other = await client.create('Node', { ...node, metadata: { name: 'node-b' } }).then(
        () => undefined,
        (error: grpc.ServiceError) => error,
      );
      expect(other?.code).to.equal(grpc.status.PERMISSION_DENIED);
      await client.updateStatus('Node', { ...(await client.get('Node', '', 'node-a')), status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    } finally {
      client.close();
    }
    // A Ready node of that name exists: a second machine cannot take its name.
    expect(await refusal(joinNode({ server, token, caHash, dir: join(scratch, 'node-a-again'), nodeName: 'node-a' }))).to.equal(
      `${server}: a Node named node-a already exists and is Ready: delete it first (mastctl delete node node-a) or join under another --node-name`,
    );
  });

  it('refuses unknown, deleted, expired and wrong-role tokens', async function () {
    const dir = join(scratch, 'refused');
    expect(await refusal(joinNode({ server, token: 'aaaaaa.bbbbbbbbbbbbbbbb', caHash, dir, nodeName: 'n' }))).to.equal(`${server}: invalid bearer token`);
    const deleted = await createToken();
    await ctl('token', 'delete', deleted);
    expect(await refusal(joinNode({ server, token: deleted, caHash, dir, nodeName: 'n' }))).to.equal(`${server}: invalid bearer token`);
    const masterToken = await createToken('--for', 'master');
    expect(await refusal(joinNode({ server, token: masterToken, caHash, dir, nodeName: 'n' }))).to.equal(`${server}: join token ${masterToken.slice(0, 6)} is not for joining a node (mastctl token create --for node)`);
    const nodeToken = await createToken();
    expect(await refusal(joinMaster({ server, token: nodeToken, caHash, dir, name: 'mx', hosts: ['127.0.0.1'], clientPort: 1, peerPort: 2 }))).to.equal(`${server}: join token ${nodeToken.slice(0, 6)} is not for joining a master (mastctl token create --for master)`);
    const shortLived = await createToken('--ttl', '1s');
    const message = await waitFor(
      'the 1 s token to expire',
      async () => {
        const text = await refusal(joinNode({ server, token: shortLived, caHash, dir: join(scratch, `expiring-${Date.now()}`), nodeName: `expiring-${Date.now()}` }).then(() => {
          throw new JoinError('accepted');
        }));
        return text.includes('expired at') ? text : undefined;
      },
      30_000,
      200,
    );
    expect(message).to.match(new RegExp(`^${server}: join token ${shortLived.slice(0, 6)} expired at \\S+ \\(mastctl token create makes another\\)$`));
  });

  it('joins a master: the member is added, starts from the flags it was given and serves with its new certificate', async function () {
    const token = await createToken('--for', 'master');
    const dir = join(scratch, 'm2');
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const joined = await joinMaster({ server, token, caHash, dir, name: 'm2', hosts: ['127.0.0.1', 'localhost'], clientPort, peerPort });
    expect(joined.masterFlags).to.include.members(['--initial-cluster-state', 'existing', `https://127.0.0.1:${peerPort}`]);
    const initialCluster = joined.masterFlags[joined.masterFlags.indexOf('--initial-cluster') + 1]!;
    expect(initialCluster.split(',')).to.have.members([`m1=${cluster.members[0]!.peerUrl}`, `m2=https://127.0.0.1:${peerPort}`]);
    expect(readFileSync(join(dir, 'tokens.csv'), 'utf8')).to.equal(readFileSync(pki.tokenFile, 'utf8'));
    expect(readFileSync(join(dir, 'ca.key'), 'utf8')).to.equal(readFileSync(pki.caKeyFile, 'utf8'));
    expect(statSync(join(dir, 'm2.key')).mode & 0o777).to.equal(0o600);
    expect(readFileSync(joined.envFile, 'utf8')).to.contain(`MAST_MASTER_FLAGS=${joined.masterFlags.join(' ')}`);
    // Two voters now, one running: the cluster waits for m2 (as with etcdctl member add).
    const child = spawn(process.execPath, [MAST_BINARY, 'master', ...joined.masterFlags, '--data-dir', join(dir, 'data')], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Admin credentials against the new member only: its certificate must be the cluster's, for 127.0.0.1.
    const admin = grpc.credentials.combineChannelCredentials(
      grpc.credentials.createSsl(readFileSync(pki.caCertFile)),
      grpc.credentials.createFromMetadataGenerator((_, callback) => {
        const metadata = new grpc.Metadata();
        metadata.set('authorization', `Bearer ${pki.adminToken}`);
        callback(null, metadata);
      }),
    );
    const first = new EtcdConnection(server, admin);
    const second = new EtcdConnection(`https://127.0.0.1:${clientPort}`, admin, 3000);
    try {
      await waitFor('a write through the two-member cluster', async () => first.put('/joined/k', 'v').then(() => true, () => undefined), 60_000, 200);
      const read = await waitFor(`m2 serving reads (stderr: ${stderr.slice(-300)})`, async () => second.get('/joined/k').then((response) => response, () => undefined), 60_000, 200);
      expect(Buffer.from(read.kvs[0]!.value).toString()).to.equal('v');
      const members = await first.memberList();
      expect(members.members.map((member) => member.name).sort()).to.deep.equal(['m1', 'm2']);
      expect(members.members.find((member) => member.name === 'm2')!.clientURLs).to.deep.equal([`https://127.0.0.1:${clientPort}`]);
      // The same name again is refused: it is a member now.
      const again = await createToken('--for', 'master');
      expect(await refusal(joinMaster({ server, token: again, caHash, dir: join(scratch, 'm2-again'), name: 'm2', hosts: ['127.0.0.1'], clientPort: 1, peerPort: 2 }))).to.match(/a master named m2 is already a member \(\w+\): remove it first/);
      // Taking it out again (as for a machine that is to go): then the cluster runs without it.
      expect((await ctl('member', 'remove', joined.memberId)).lines).to.deep.equal([`member ${joined.memberId} (m2) removed`]);
      expect((await ctl('member', 'remove', 'ffff')).lines).to.deep.equal(['error: no member ffff: mastctl member list shows the IDs']);
      child.kill('SIGKILL');
      await first.put('/joined/after', 'v');
      expect((await first.memberList()).members.map((member) => member.name)).to.deep.equal(['m1']);
    } finally {
      first.close();
      second.close();
    }
  });
});
