// https:// URLs: three masters whose clients and peers speak TLS (peers also
// present certificates to each other), made with openssl in a scratch
// directory. A client with the CA works; a plaintext client gets nowhere.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient, EtcdConnection } from '../../services/client/etcd.js';
import { LocalCluster } from '../../services/launcher/local-cluster.js';

function makeCertificates(directory: string): { caFile: string; certFile: string; keyFile: string } {
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: directory, stdio: 'pipe' });
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=mast test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'member.key', '-out', 'member.csr', '-subj', '/CN=mast member']);
  writeFileSync(join(directory, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  run(['x509', '-req', '-in', 'member.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'member.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { caFile: join(directory, 'ca.pem'), certFile: join(directory, 'member.pem'), keyFile: join(directory, 'member.key') };
}

describe('mast master over TLS (https:// URLs)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster | undefined;
  let certificates: string | undefined;

  after(async function () {
    await cluster?.destroy();
    if (certificates !== undefined) rmSync(certificates, { recursive: true, force: true });
  });

  it('replicates over TLS peer links and serves TLS clients only', async function () {
    certificates = mkdtempSync(join(tmpdir(), 'mast-tls-'));
    const tls = makeCertificates(certificates);
    cluster = await LocalCluster.start({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-tls-cluster-')), tls });
    expect(cluster.members.every((member) => member.clientUrl.startsWith('https://') && member.peerUrl.startsWith('https://'))).to.equal(true);
    const client = new EtcdClient({ endpoints: cluster.endpoints, credentials: cluster.clientCredentials, timeoutMs: 10_000 });
    try {
      await client.connections[0]!.put('/tls/k', 'secret');
      const read = await client.connections[2]!.get('/tls/k');
      expect(Buffer.from(read.kvs[0]!.value).toString()).to.equal('secret');
    } finally {
      client.close();
    }
    const plaintext = new EtcdConnection(cluster.endpoints[0]!, grpc.credentials.createInsecure(), 2000);
    try {
      await plaintext.get('/tls/k');
      expect.fail('a plaintext client must not be served');
    } catch (error) {
      expect((error as grpc.ServiceError).code).to.be.oneOf([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);
    } finally {
      plaintext.close();
    }
  });
});
