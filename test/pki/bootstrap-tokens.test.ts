// Join tokens (Kubernetes' bootstrap-token format) and the certificate
// requests joiners send: formats, the Secret's round trip, the checks a
// master makes before trusting either.

import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import {
  BOOTSTRAP_TOKEN_TYPE,
  JOIN_GROUPS,
  bootstrapTokenSecret,
  caCertificateHash,
  createCertificateAuthority,
  createCertificateRequest,
  formatBootstrapToken,
  joinRoleOf,
  newBootstrapToken,
  parseBootstrapToken,
  parseTokenTtl,
  readBootstrapTokenSecret,
  signCertificateRequest,
} from '../../services/pki/index.js';

describe('pki: join tokens', function () {
  it('makes ID.SECRET tokens of 6 and 16 characters of [a-z0-9], and parses only those', function () {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const text = formatBootstrapToken(newBootstrapToken());
      expect(text).to.match(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
      expect(parseBootstrapToken(text)).to.deep.equal({ id: text.slice(0, 6), secret: text.slice(7) });
      seen.add(text);
    }
    expect(seen.size).to.equal(200);
    for (const bad of ['', 'abcdef', 'abcdef.0123456789abcde', 'ABCDEF.0123456789abcdef', 'abcdef.0123456789abcdef0', 'abcde.0123456789abcdefg', 'abcdef:0123456789abcdef']) {
      expect(parseBootstrapToken(bad), bad).to.equal(undefined);
    }
  });

  it('writes the Secret Kubernetes reads (base64 data, RFC 3339 expiration) and reads it back', function () {
    const token = { id: 'abcdef', secret: '0123456789abcdef' };
    const secret = bootstrapTokenSecret(token, { role: 'master', expiresAtMs: Date.parse('2030-01-02T03:04:05.678Z'), description: 'm4' }) as { metadata: { name: string; namespace: string }; type: string; data: Record<string, string> };
    expect(secret.metadata).to.deep.equal({ name: 'bootstrap-token-abcdef', namespace: 'kube-system' });
    expect(secret.type).to.equal(BOOTSTRAP_TOKEN_TYPE);
    const decoded = Object.fromEntries(Object.entries(secret.data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString()]));
    expect(decoded).to.deep.equal({ 'token-id': 'abcdef', 'token-secret': '0123456789abcdef', 'usage-bootstrap-authentication': 'true', 'auth-extra-groups': JOIN_GROUPS.master, expiration: '2030-01-02T03:04:05Z', description: 'm4' });
    const record = readBootstrapTokenSecret(secret);
    expect(record).to.deep.equal({ id: 'abcdef', secret: '0123456789abcdef', expiresAtMs: Date.parse('2030-01-02T03:04:05Z'), groups: [JOIN_GROUPS.master], description: 'm4', authentication: true });
    expect(joinRoleOf([JOIN_GROUPS.node])).to.equal('node');
    expect(joinRoleOf(['system:bootstrappers'])).to.equal(undefined);
    expect(readBootstrapTokenSecret(bootstrapTokenSecret(token, { role: 'node' }))).to.include({ expiresAtMs: undefined });
  });

  it('says what is wrong with a Secret that is not a valid token', function () {
    const good = bootstrapTokenSecret({ id: 'abcdef', secret: '0123456789abcdef' }, { role: 'node' }) as { metadata: { name: string }; type: string; data: Record<string, string> };
    const b64 = (text: string): string => Buffer.from(text).toString('base64');
    expect(readBootstrapTokenSecret({ ...good, type: 'Opaque' })).to.equal('type is "Opaque", not bootstrap.kubernetes.io/token');
    expect(readBootstrapTokenSecret({ ...good, metadata: { name: 'bootstrap-token-zzzzzz' } })).to.equal("the Secret's name is not bootstrap-token-abcdef");
    expect(readBootstrapTokenSecret({ ...good, data: { ...good.data, 'token-secret': b64('short') } })).to.equal('token-id or token-secret is missing or malformed');
    expect(readBootstrapTokenSecret({ ...good, data: { ...good.data, expiration: b64('tomorrow') } })).to.equal('expiration "tomorrow" is not an RFC 3339 time');
    expect(readBootstrapTokenSecret({ ...good, data: { ...good.data, 'auth-extra-groups': b64('system:masters') } })).to.equal('auth-extra-groups may only name system:bootstrappers:* groups, not "system:masters"');
  });

  it('reads TTLs as kubeadm writes them', function () {
    expect(parseTokenTtl('24h')).to.equal(86_400_000);
    expect(parseTokenTtl('2h30m')).to.equal(9_000_000);
    expect(parseTokenTtl('90s')).to.equal(90_000);
    expect(parseTokenTtl('0')).to.equal(0);
    for (const bad of ['', '1d', 'h', '-1h', '1.5h', 'soon']) expect(parseTokenTtl(bad), bad).to.equal(undefined);
  });
});

describe('pki: certificate requests', function () {
  it('signs the key of a request with the names the signer chooses, not the ones asked for', async function () {
    const ca = await createCertificateAuthority();
    const { requestPem, keyPem } = await createCertificateRequest('system:masters-please');
    const certPem = await signCertificateRequest(ca, requestPem, { commonName: 'system:node:n1', organizations: ['system:nodes'], usages: ['client'] });
    const certificate = new X509Certificate(certPem);
    expect(certificate.subject.split('\n')).to.have.members(['O=system:nodes', 'CN=system:node:n1']);
    expect(certificate.checkIssued(new X509Certificate(ca.certPem))).to.equal(true);
    expect(certificate.verify(new X509Certificate(ca.certPem).publicKey)).to.equal(true);
    const { createPrivateKey } = await import('node:crypto');
    expect(certificate.checkPrivateKey(createPrivateKey(keyPem))).to.equal(true);
  });

  it('refuses a request whose signature does not match its key, and text that is no request', async function () {
    const ca = await createCertificateAuthority();
    const { requestPem } = await createCertificateRequest('n1');
    // Flip a byte of the signature (the DER's last bytes).
    const der = Buffer.from(requestPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der.writeUInt8(der.readUInt8(der.length - 2) ^ 0x01, der.length - 2);
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    let message = '';
    await signCertificateRequest(ca, tampered, { commonName: 'x', usages: ['client'] }).catch((error: Error) => (message = error.message));
    expect(message).to.equal("the certificate request's signature does not match its public key");
    await signCertificateRequest(ca, 'hello', { commonName: 'x', usages: ['client'] }).catch((error: Error) => (message = error.message));
    expect(message).to.match(/^the certificate request is not a PEM PKCS#10 request/);
  });

  it('pins a CA as kubeadm does: sha256 of its SubjectPublicKeyInfo', async function () {
    const ca = await createCertificateAuthority();
    const { createHash } = await import('node:crypto');
    const spki = new X509Certificate(ca.certPem).publicKey.export({ type: 'spki', format: 'der' });
    expect(caCertificateHash(ca.certPem)).to.equal(`sha256:${createHash('sha256').update(spki).digest('hex')}`);
    expect(caCertificateHash((await createCertificateAuthority()).certPem)).to.not.equal(caCertificateHash(ca.certPem));
    expect(() => caCertificateHash('nope')).to.throw(/^not a PEM certificate/);
  });
});
