// services/pki: the CA and the certificates it issues (checked with Node's own
// X.509 parser, in real Node TLS and grpc-js handshakes), `initCluster` and
// the token file it writes, and `mast init` as a process.

import { expect } from 'chai';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as grpc from '@grpc/grpc-js';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import {
  InitError,
  TokenFileError,
  createCertificateAuthority,
  formatTokenFile,
  initCluster,
  issueCertificate,
  issueNodeCredentials,
  parseTokenFile,
  randomToken,
} from '../../services/pki/index.js';
import type { KeyPairPem } from '../../services/pki/index.js';

const MAST = fileURLToPath(new URL('../../services/cmd/mast.js', import.meta.url));

function subjectOf(certificate: X509Certificate): string[] {
  return certificate.subject.split('\n');
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

describe('pki: CA and certificates', function () {
  let ca: KeyPairPem;
  let server: KeyPairPem;
  let admin: KeyPairPem;
  let otherCa: KeyPairPem;
  let stranger: KeyPairPem;

  before(async function () {
    ca = await createCertificateAuthority({});
    server = await issueCertificate(ca, {
      commonName: 'system:master:m1',
      organizations: ['system:masters'],
      dnsNames: ['localhost', 'm1.example'],
      ipAddresses: ['127.0.0.1', '::1'],
      usages: ['server', 'client'],
    });
    admin = await issueCertificate(ca, { commonName: 'admin', organizations: ['system:masters'], usages: ['client'] });
    otherCa = await createCertificateAuthority({ commonName: 'someone-else' });
    stranger = await issueCertificate(otherCa, { commonName: 'admin', organizations: ['system:masters'], usages: ['client'] });
  });

  it('makes a self-signed CA, ten years, PEM with a PKCS#8 key', function () {
    expect(ca.certPem).to.match(/^-----BEGIN CERTIFICATE-----\n/);
    expect(ca.keyPem).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
    const certificate = new X509Certificate(ca.certPem);
    expect(certificate.ca).to.equal(true);
    expect(subjectOf(certificate)).to.deep.equal(['CN=mast-ca']);
    expect(certificate.checkIssued(certificate)).to.equal(true);
    expect(certificate.verify(certificate.publicKey)).to.equal(true);
    expect(certificate.publicKey.asymmetricKeyDetails?.namedCurve).to.equal('prime256v1');
    const validDays = (Date.parse(certificate.validTo) - Date.now()) / 86_400_000;
    expect(validDays).to.be.within(3649, 3651);
  });

  it('honours commonName, validDays and now', async function () {
    const now = new Date('2030-01-01T00:00:00Z');
    const certificate = new X509Certificate((await createCertificateAuthority({ commonName: 'lab-ca', validDays: 10, now })).certPem);
    expect(certificate.subject).to.equal('CN=lab-ca');
    expect(new Date(certificate.validTo).toISOString()).to.equal('2030-01-11T00:00:00.000Z');
    expect(new Date(certificate.validFrom).getTime()).to.be.at.most(now.getTime());
  });

  it('issues a server certificate the CA signed, with subject, SANs and usages', function () {
    const caCertificate = new X509Certificate(ca.certPem);
    const certificate = new X509Certificate(server.certPem);
    expect(certificate.ca).to.equal(false);
    expect(certificate.verify(caCertificate.publicKey)).to.equal(true);
    expect(certificate.checkIssued(caCertificate)).to.equal(true);
    expect(certificate.verify(new X509Certificate(otherCa.certPem).publicKey)).to.equal(false);
    expect(subjectOf(certificate)).to.have.members(['CN=system:master:m1', 'O=system:masters']);
    expect(certificate.issuer).to.equal(caCertificate.subject);
    expect(certificate.subjectAltName?.split(', ')).to.have.members(['DNS:localhost', 'DNS:m1.example', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']);
    expect(certificate.keyUsage).to.have.members(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(certificate.checkIP('127.0.0.1')).to.equal('127.0.0.1');
    expect(certificate.checkHost('m1.example')).to.equal('m1.example');
    expect(certificate.serialNumber).to.not.equal(new X509Certificate(admin.certPem).serialNumber);
  });

  it('marks the CA critical CA:true with keyCertSign|cRLSign, and links key identifiers', function () {
    const caCertificate = new x509.X509Certificate(ca.certPem);
    const basic = caCertificate.getExtension(x509.BasicConstraintsExtension);
    expect([basic?.ca, basic?.critical]).to.deep.equal([true, true]);
    const usage = caCertificate.getExtension(x509.KeyUsagesExtension);
    expect([usage?.usages, usage?.critical]).to.deep.equal([x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true]);
    const caKeyId = caCertificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    expect(caKeyId).to.match(/^[0-9a-f]{40}$/);
    expect(caCertificate.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).to.equal(caKeyId);
    const leaf = new x509.X509Certificate(server.certPem);
    expect(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).to.equal(caKeyId);
    expect(leaf.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).to.match(/^[0-9a-f]{40}$/).and.not.equal(caKeyId);
    expect(leaf.getExtension(x509.BasicConstraintsExtension)?.ca).to.equal(false);
    expect(leaf.getExtension(x509.KeyUsagesExtension)?.usages).to.equal(x509.KeyUsageFlags.digitalSignature);
    expect(leaf.serialNumber).to.match(/^[4-7][0-9a-f]{31}$/);
  });

  it('issues client certificates with groups, and node credentials as Kubernetes names kubelets', async function () {
    const certificate = new X509Certificate(admin.certPem);
    expect(subjectOf(certificate)).to.have.members(['CN=admin', 'O=system:masters']);
    expect(certificate.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.2']);
    expect(certificate.subjectAltName).to.equal(undefined);
    const node = new X509Certificate((await issueNodeCredentials(ca, 'worker-1')).certPem);
    expect(subjectOf(node)).to.have.members(['CN=system:node:worker-1', 'O=system:nodes']);
    expect(node.checkIssued(new X509Certificate(ca.certPem))).to.equal(true);
    const groups = new X509Certificate((await issueCertificate(ca, { commonName: 'u', organizations: ['g1', 'g2'], usages: ['client'] })).certPem);
    expect(subjectOf(groups)).to.have.members(['CN=u', 'O=g1', 'O=g2']);
  });

  it('rejects bad input', async function () {
    await issueCertificate(ca, { commonName: 'x', ipAddresses: ['not-an-ip'], usages: ['server'] }).then(
      () => expect.fail('an invalid IP must be rejected'),
      (error: unknown) => expect(String(error)).to.match(/not-an-ip.*is not an IP address/),
    );
    await issueCertificate(ca, { commonName: 'x', usages: [] }).then(
      () => expect.fail('no usages must be rejected'),
      (error: unknown) => expect(String(error)).to.match(/usages/),
    );
  });

  it('makes 256-bit base64url tokens', function () {
    const token = randomToken();
    expect(token).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(randomToken()).to.not.equal(token);
  });

  describe('in a Node TLS handshake', function () {
    let tlsServer: tls.Server | undefined;
    const serverSide: { authorized: boolean; subject: unknown }[] = [];
    /** Why the server turned a client away (Node destroys the socket: the error itself only says "socket hang up"). */
    const rejections: (string | undefined)[] = [];

    before(async function () {
      tlsServer = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true }, (socket) => {
        serverSide.push({ authorized: socket.authorized, subject: socket.getPeerCertificate().subject });
        socket.end('hello');
      });
      tlsServer.on('tlsClientError', (_error, socket) => rejections.push(socket.authorizationError?.toString()));
      tlsServer.listen(0, '127.0.0.1');
      await once(tlsServer, 'listening');
    });

    after(async function () {
      if (tlsServer !== undefined) await new Promise<void>((resolve) => tlsServer!.close(() => resolve()));
    });

    function port(): number {
      return (tlsServer!.address() as AddressInfo).port;
    }

    /** Connects, reads until the server closes; resolves with what was read or the error. */
    async function talk(client: KeyPairPem, servername?: string): Promise<{ authorized: boolean; data: string; error?: Error }> {
      const socket = tls.connect({ host: '127.0.0.1', port: port(), ca: [ca.certPem], cert: client.certPem, key: client.keyPem, ...(servername === undefined ? {} : { servername }) });
      let data = '';
      let authorized = false;
      socket.on('secureConnect', () => (authorized = socket.authorized));
      socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.once('close', () => resolve());
        });
        return { authorized, data };
      } catch (error) {
        return { authorized, data, error: error as Error };
      } finally {
        socket.destroy();
      }
    }

    it('authenticates both sides: the server sees CN=admin, O=system:masters', async function () {
      const result = await talk(admin);
      expect(result.error).to.equal(undefined);
      expect(result.authorized).to.equal(true);
      expect(result.data).to.equal('hello');
      expect(serverSide).to.have.length(1);
      expect(serverSide[0]).to.deep.equal({ authorized: true, subject: { CN: 'admin', O: 'system:masters' } });
    });

    it('checks the server name against the DNS SANs', async function () {
      const named = await talk(admin, 'm1.example');
      expect([named.error, named.authorized, named.data]).to.deep.equal([undefined, true, 'hello']);
      const wrong = await talk(admin, 'elsewhere.example');
      expect((wrong.error as NodeJS.ErrnoException | undefined)?.code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('rejects a client certificate from a different CA', async function () {
      const before = serverSide.length;
      const result = await talk(stranger);
      expect(result.data).to.equal('');
      expect(serverSide).to.have.length(before);
      // Clients that hung up themselves (the wrong-name one above) leave no reason; the server's own verdict does.
      const reasons = (): (string | undefined)[] => rejections.filter((reason) => reason !== undefined);
      for (let waitedMs = 0; reasons().length === 0 && waitedMs < 2000; waitedMs += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(reasons()).to.deep.equal(['UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
    });

    it('a client that does not trust our CA refuses the server', async function () {
      const socket = tls.connect({ host: '127.0.0.1', port: port(), ca: [otherCa.certPem], cert: admin.certPem, key: admin.keyPem });
      try {
        const [error] = (await once(socket, 'error')) as [Error & { code?: string }];
        // OpenSSL may send our CA along with the server certificate, hence either code.
        expect(error.code).to.be.oneOf(['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);
      } finally {
        socket.destroy();
      }
    });
  });

  it('works with grpc-js on both sides (mutual TLS)', async function () {
    const grpcServer = new grpc.Server();
    const identity = (value: Buffer): Buffer => value;
    const peers: string[] = [];
    grpcServer.addService(
      { echo: { path: '/pki.Test/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
      {
        echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const subject = call.getAuthContext()?.sslPeerCertificate?.subject;
          peers.push(`${String(subject?.CN)}/${String(subject?.O)}`);
          callback(null, call.request);
        },
      },
    );
    const credentials = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(server.certPem), private_key: Buffer.from(server.keyPem) }], true);
    const boundPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error === null ? resolve(bound) : reject(error))));
    // The name to check the server certificate against (a DNS SAN: TLS sends no IP addresses as server names).
    const channelOptions = { 'grpc.ssl_target_name_override': 'localhost' };
    const client = new grpc.Client(`127.0.0.1:${boundPort}`, grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(admin.keyPem), Buffer.from(admin.certPem)), channelOptions);
    try {
      const reply = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest('/pki.Test/Echo', identity, identity, Buffer.from('ping'), { deadline: Date.now() + 10_000 }, (error, value) =>
          error === null && value !== undefined ? resolve(value) : reject(error ?? new Error('no reply')),
        ),
      );
      expect(reply.toString()).to.equal('ping');
      expect(peers).to.deep.equal(['admin/system:masters']);
    } finally {
      client.close();
      grpcServer.forceShutdown();
    }
  });
});

describe('pki: token file', function () {
  it('formats and parses the Kubernetes --token-auth-file format', function () {
    const text = formatTokenFile([
      { token: 't1', user: { name: 'admin', uid: 'admin', groups: ['system:masters'] } },
      { token: 't2', user: { name: 'system:kube-scheduler', uid: 'system:kube-scheduler', groups: [] } },
    ]);
    expect(text).to.equal('t1,admin,admin,"system:masters"\nt2,system:kube-scheduler,system:kube-scheduler\n');
    const parsed = parseTokenFile(`# comment\n\n${text}t3, bob , 42 ,"dev, ops,"\r\nt4,carol,7,\n`, 'tokens.csv');
    expect([...parsed.keys()]).to.deep.equal(['t1', 't2', 't3', 't4']);
    expect(parsed.get('t1')).to.deep.equal({ name: 'admin', uid: 'admin', groups: ['system:masters'] });
    expect(parsed.get('t2')).to.deep.equal({ name: 'system:kube-scheduler', uid: 'system:kube-scheduler', groups: [] });
    expect(parsed.get('t3')).to.deep.equal({ name: 'bob', uid: '42', groups: ['dev', 'ops'] });
    expect(parsed.get('t4')).to.deep.equal({ name: 'carol', uid: '7', groups: [] });
  });

  it('names the file and line of each mistake, never the token', function () {
    const parse = (text: string) => (): unknown => parseTokenFile(text, 'tokens.csv');
    expect(parse('a,b,c\n\nsecret,user\n')).to.throw(TokenFileError, 'tokens.csv:3: expected at least 3 fields token,user,uid (found 2)');
    expect(parse('# x\nsecret,u1,1\nsecret,u2,2\n')).to.throw(TokenFileError, 'tokens.csv:3: duplicate token (first on line 2)');
    expect(parse('secret,u1,1\nsecret,u2,2\n')).to.throw(TokenFileError).with.property('message').that.does.not.include('secret');
    expect(parse('t,u,1,g1,g2\n')).to.throw(TokenFileError, /^tokens\.csv:1: expected at most 4 fields .*quote the groups/);
    expect(parse('t,u,1,"g1\n')).to.throw(TokenFileError, 'tokens.csv:1: unterminated quoted field');
    expect(parse(',u,1\n')).to.throw(TokenFileError, 'tokens.csv:1: empty token');
    expect(parse('t,,1\n')).to.throw(TokenFileError, 'tokens.csv:1: empty user name');
  });
});

describe('pki: initCluster', function () {
  let dir: string;

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'mast-pki-'));
  });

  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the CA, master, admin certificates, tokens and config with private modes', async function () {
    const target = join(dir, 'cluster');
    const result = await initCluster({
      dir: target,
      masters: [
        { name: 'm1', hosts: ['10.0.0.1', 'm1.example'] },
        { name: 'm2', hosts: ['127.0.0.1'] },
        { name: 'm3', hosts: ['127.0.0.1'] },
      ],
    });
    expect(modeOf(target)).to.equal(0o700);
    const names = ['ca.crt', 'm1.crt', 'm1.key', 'm2.crt', 'm2.key', 'm3.crt', 'm3.key', 'admin.crt', 'admin.key', 'tokens.csv', 'config', 'ca.key'];
    expect(result.written).to.deep.equal(names.map((name) => join(target, name)));
    for (const name of names) expect(existsSync(join(target, name)), name).to.equal(true);
    for (const name of ['ca.key', 'm1.key', 'admin.key', 'tokens.csv', 'config']) expect(modeOf(join(target, name)), name).to.equal(0o600);

    const caCertificate = new X509Certificate(readFileSync(result.caCertFile));
    const m1 = new X509Certificate(readFileSync(join(target, 'm1.crt')));
    expect(m1.checkIssued(caCertificate) && m1.verify(caCertificate.publicKey)).to.equal(true);
    expect(subjectOf(m1)).to.have.members(['CN=system:master:m1', 'O=system:masters']);
    expect(m1.subjectAltName?.split(', ')).to.have.members(['DNS:m1.example', 'DNS:localhost', 'IP Address:10.0.0.1', 'IP Address:127.0.0.1']);
    expect(m1.keyUsage).to.have.members(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const adminCertificate = new X509Certificate(readFileSync(result.adminCertFile));
    expect(subjectOf(adminCertificate)).to.have.members(['CN=admin', 'O=system:masters']);

    const tokens = parseTokenFile(readFileSync(result.tokenFile, 'utf8'), 'tokens.csv');
    expect(tokens.get(result.adminToken)).to.deep.equal({ name: 'admin', uid: 'admin', groups: ['system:masters'] });
    expect([...tokens.values()].map((user) => user.name)).to.deep.equal(['admin', 'system:kube-scheduler', 'system:kube-controller-manager']);

    const config = parse(readFileSync(result.configFile, 'utf8')) as Record<string, unknown>;
    // m2 and m3 share 127.0.0.1, so m3's ports move up by 10000.
    expect(config).to.deep.equal({
      masters: ['https://10.0.0.1:2379', 'https://127.0.0.1:2379', 'https://127.0.0.1:12379'],
      certificateAuthority: join(target, 'ca.crt'),
      token: result.adminToken,
    });
    expect(result.masters.map((master) => master.peerUrl)).to.deep.equal(['https://10.0.0.1:2380', 'https://127.0.0.1:2380', 'https://127.0.0.1:12380']);
  });

  it('refuses to replace an existing CA unless forced', async function () {
    const target = join(dir, 'cluster');
    const before = readFileSync(join(target, 'ca.key'), 'utf8');
    const masters = [{ name: 'm1', hosts: ['127.0.0.1'] }];
    await initCluster({ dir: target, masters }).then(
      () => expect.fail('a second init must not replace the CA'),
      (error: unknown) => {
        expect(error).to.be.instanceOf(InitError).with.property('code', 'exists');
        expect((error as Error).message).to.include(join(target, 'ca.key'));
      },
    );
    expect(readFileSync(join(target, 'ca.key'), 'utf8')).to.equal(before);
    const forced = await initCluster({ dir: target, masters, force: true, clientPort: 3379 });
    expect(readFileSync(forced.caKeyFile, 'utf8')).to.not.equal(before);
    expect(modeOf(forced.caKeyFile)).to.equal(0o600);
    expect((parse(readFileSync(forced.configFile, 'utf8')) as { masters: string[] }).masters).to.deep.equal(['https://127.0.0.1:3379']);
  });

  it('rejects names that would clash with its own files, duplicates and bad hosts', async function () {
    const attempt = async (masters: { name: string; hosts: string[] }[]): Promise<string> =>
      initCluster({ dir: join(dir, 'never'), masters }).then(
        () => 'accepted',
        (error: unknown) => (error instanceof InitError && error.code === 'invalid' ? error.message : `unexpected: ${String(error)}`),
      );
    expect(await attempt([{ name: 'ca', hosts: ['h'] }])).to.match(/taken by the file ca/);
    expect(await attempt([{ name: 'm1', hosts: ['h'] }, { name: 'M1', hosts: ['h'] }])).to.match(/given twice/);
    expect(await attempt([{ name: 'm1', hosts: ['bad host'] }])).to.match(/neither an IP address nor a DNS name/);
    expect(await attempt([{ name: 'm/1', hosts: ['h'] }])).to.match(/must start with a letter or digit/);
    expect(await attempt([])).to.match(/at least one master/);
    expect(existsSync(join(dir, 'never'))).to.equal(false);
  });
});

describe('mast init (the command)', function () {
  let dir: string;

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'mast-pki-cli-'));
  });

  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the files for three local masters and says how to start them', function () {
    const target = join(dir, 'pki');
    const output = execFileSync(process.execPath, [MAST, 'init', '--dir', target], { encoding: 'utf8' });
    for (const name of ['ca.crt', 'ca.key', 'm1.crt', 'm1.key', 'm2.key', 'm3.crt', 'admin.crt', 'admin.key', 'tokens.csv', 'config']) {
      expect(existsSync(join(target, name)), name).to.equal(true);
    }
    expect(output).to.include(`--cert-file ${join(target, 'm1.crt')}`);
    expect(output).to.include(`--token-auth-file ${join(target, 'tokens.csv')}`);
    expect(output).to.include(`--cluster-signing-key-file ${join(target, 'ca.key')}`);
    expect(output).to.include(`export MASTCONFIG=${join(target, 'config')}`);
    // Each master's flags for systemd, the same as the command printed.
    const env = readFileSync(join(target, 'm2.env'), 'utf8');
    expect(env).to.match(/^MAST_MASTER_FLAGS=--name m2 --listen-client-urls https:\/\/127\.0\.0\.1:12379 /m);
    expect(env).to.include(`--cluster-signing-key-file ${join(target, 'ca.key')}\n`);
    const config = parse(readFileSync(join(target, 'config'), 'utf8')) as { masters: string[] };
    expect(config.masters).to.deep.equal(['https://127.0.0.1:2379', 'https://127.0.0.1:12379', 'https://127.0.0.1:22379']);
  });

  it('takes --master and --client-port, and refuses to overwrite without --force', function () {
    const target = join(dir, 'custom');
    execFileSync(process.execPath, [MAST, 'init', '--dir', target, '--master', 'a=10.1.0.1,a.example', '--master=b=10.1.0.2', '--client-port', '4000'], { encoding: 'utf8' });
    const config = parse(readFileSync(join(target, 'config'), 'utf8')) as { masters: string[] };
    expect(config.masters).to.deep.equal(['https://10.1.0.1:4000', 'https://10.1.0.2:4000']);
    const again = spawnSync(process.execPath, [MAST, 'init', '--dir', target, '--master', 'a=10.1.0.1'], { encoding: 'utf8' });
    expect(again.status).to.equal(1);
    expect(again.stderr).to.include(`${join(target, 'ca.key')} already exists`);
    const forced = spawnSync(process.execPath, [MAST, 'init', '--dir', target, '--master', 'a=10.1.0.1', '--force'], { encoding: 'utf8' });
    expect(forced.status).to.equal(0);
  });

  it('exits 2 with one line on bad flags, and prints usage for --help', function () {
    const run = (...args: string[]) => spawnSync(process.execPath, [MAST, 'init', ...args], { encoding: 'utf8' });
    for (const [args, message] of [
      [['--dir', join(dir, 'x'), '--bogus'], 'mast: unknown flag --bogus (see `mast init --help`)\n'],
      [[], 'mast: --dir is required (see `mast init --help`)\n'],
      [['--dir', join(dir, 'x'), '--master', 'nohost'], 'mast: --master "nohost" is not NAME=HOST[,HOST...]\n'],
      [['--dir', join(dir, 'x'), '--client-port', '70000'], 'mast: --client-port: "70000" is not a port (1-65535)\n'],
      [['--dir', join(dir, 'x'), '--master', 'admin=h'], 'mast: master name "admin" is taken by the file admin.*\n'],
    ] as const) {
      const result = run(...args);
      expect(result.status, args.join(' ')).to.equal(2);
      expect(result.stderr).to.equal(message);
    }
    expect(existsSync(join(dir, 'x'))).to.equal(false);
    const help = run('--help');
    expect(help.status).to.equal(0);
    expect(help.stdout).to.match(/^usage: mast init --dir DIR/);
  });
});
