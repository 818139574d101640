// The cluster's certificate authority and the certificates it issues: ECDSA
// P-256 keys, made with @peculiar/x509 on Node's WebCrypto, handed out as PEM
// (certificates "CERTIFICATE", private keys PKCS#8 "PRIVATE KEY") that Node
// TLS and grpc-js read directly. Subjects follow Kubernetes' reading of client
// certificates: CN is the user name, each O is a group.

// @peculiar/x509 registers its algorithms through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

x509.cryptoProvider.set(webcrypto);

export interface KeyPairPem {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CertificateAuthorityOptions {
  /** Subject CN; default "mast-ca". */
  readonly commonName?: string;
  /** Default 3650 (ten years). */
  readonly validDays?: number;
  /** The clock, for tests; default the current time. */
  readonly now?: Date;
}

export type CertificateUsage = 'server' | 'client';

export interface IssueOptions {
  /** Subject CN: the user name a client certificate authenticates as. */
  readonly commonName: string;
  /** Subject O, one per group the user belongs to. */
  readonly organizations?: readonly string[];
  /** Subject alternative names a server certificate is valid for. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** extendedKeyUsage: serverAuth and/or clientAuth. */
  readonly usages: readonly CertificateUsage[];
  /** Default 365. */
  readonly validDays?: number;
  readonly now?: Date;
}

export class CertificateError extends Error {
  override readonly name = 'CertificateError';
}

const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 86_400_000;
/** notBefore is backdated this much so a peer whose clock is a little behind accepts a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;
const CA_VALID_DAYS = 3650;
const LEAF_VALID_DAYS = 365;

/** 32 random bytes, base64url: a bearer token. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** A positive 128-bit serial number in hex (top bit clear, so DER needs no sign byte; next bit set, so no leading zero). */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function validity(validDays: number | undefined, fallbackDays: number, now: Date | undefined): { notBefore: Date; notAfter: Date } {
  const days = validDays ?? fallbackDays;
  if (!Number.isFinite(days) || days <= 0) throw new CertificateError(`validDays must be a positive number, not ${days}`);
  const start = (now ?? new Date()).getTime();
  return { notBefore: new Date(start - CLOCK_SKEW_MS), notAfter: new Date(start + days * DAY_MS) };
}

function subjectName(commonName: string, organizations: readonly string[]): x509.JsonName {
  if (commonName.trim() === '') throw new CertificateError('commonName must not be empty');
  return [...organizations.map((organization) => ({ O: [organization] })), { CN: [commonName] }];
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importSigningKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  let der: ArrayBuffer;
  try {
    der = x509.PemConverter.decodeFirst(keyPem);
  } catch (error) {
    throw new CertificateError(`CA key is not PEM: ${error instanceof Error ? error.message : String(error)}`);
  }
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
}

function parseCertificate(certPem: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(certPem);
  } catch (error) {
    throw new CertificateError(`CA certificate is not a PEM certificate: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** A self-signed CA: basicConstraints CA:true (critical), keyUsage keyCertSign|cRLSign (critical). */
export async function createCertificateAuthority(options: CertificateAuthorityOptions = {}): Promise<KeyPairPem> {
  const keys = await generateKeys();
  const subjectKeyIdentifier = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: subjectName(options.commonName ?? 'mast-ca', []),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(options.validDays, CA_VALID_DAYS, options.now),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      subjectKeyIdentifier,
      new x509.AuthorityKeyIdentifierExtension(subjectKeyIdentifier.keyId),
    ],
  });
  return { certPem: certificate.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

function subjectAlternativeNames(dnsNames: readonly string[], ipAddresses: readonly string[]): x509.JsonGeneralName[] {
  for (const address of ipAddresses) {
    if (isIP(address) === 0) throw new CertificateError(`ipAddresses: ${JSON.stringify(address)} is not an IP address`);
  }
  for (const name of dnsNames) {
    if (name === '' || /[\s,/]/.test(name)) throw new CertificateError(`dnsNames: ${JSON.stringify(name)} is not a DNS name`);
  }
  return [...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...ipAddresses.map((value) => ({ type: 'ip' as const, value }))];
}

function extendedKeyUsages(usages: readonly CertificateUsage[]): string[] {
  if (usages.length === 0) throw new CertificateError('usages must name at least one of server, client');
  const oids = new Set(usages.map((usage) => (usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth)));
  return [...oids];
}

/** The CA certificate's own key identifier, which the issued certificate's authorityKeyIdentifier names. */
async function authorityKeyIdentifier(caCertificate: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const subjectKeyIdentifier = caCertificate.getExtension(x509.SubjectKeyIdentifierExtension);
  if (subjectKeyIdentifier !== null) return new x509.AuthorityKeyIdentifierExtension(subjectKeyIdentifier.keyId);
  return x509.AuthorityKeyIdentifierExtension.create(caCertificate.publicKey);
}

/** A leaf certificate for `publicKey`, signed by `ca`. */
async function signCertificate(ca: KeyPairPem, publicKey: webcrypto.CryptoKey, options: IssueOptions): Promise<string> {
  const caCertificate = parseCertificate(ca.certPem);
  const signingKey = await importSigningKey(ca.keyPem);
  const names = subjectAlternativeNames(options.dnsNames ?? [], options.ipAddresses ?? []);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(extendedKeyUsages(options.usages)),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await authorityKeyIdentifier(caCertificate),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: subjectName(options.commonName, options.organizations ?? []),
    issuer: caCertificate.subjectName,
    publicKey,
    signingKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(options.validDays, LEAF_VALID_DAYS, options.now),
    extensions,
  });
  return certificate.toString('pem');
}

/** A leaf certificate signed by `ca`, with a fresh key. */
export async function issueCertificate(ca: KeyPairPem, options: IssueOptions): Promise<KeyPairPem> {
  const keys = await generateKeys();
  return { certPem: await signCertificate(ca, keys.publicKey, options), keyPem: await privateKeyPem(keys.privateKey) };
}

/**
 * A fresh key and a PKCS#10 request for it (what a joining agent or master
 * sends: the key never leaves the machine it was made on). The subject is
 * informational; the signer decides the certificate's names.
 */
export async function createCertificateRequest(commonName: string): Promise<{ readonly requestPem: string; readonly keyPem: string }> {
  const keys = await generateKeys();
  const request = await x509.Pkcs10CertificateRequestGenerator.create({ name: subjectName(commonName, []), keys, signingAlgorithm: SIGNING_ALGORITHM });
  return { requestPem: request.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/**
 * Signs the public key of a PKCS#10 request whose signature checks out (its
 * sender holds the private key), with the names and usages of `options` —
 * never the ones the request asks for.
 */
export async function signCertificateRequest(ca: KeyPairPem, requestPem: string, options: IssueOptions): Promise<string> {
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(requestPem);
  } catch (error) {
    throw new CertificateError(`the certificate request is not a PEM PKCS#10 request: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!(await request.verify())) throw new CertificateError('the certificate request\'s signature does not match its public key');
  let publicKey: webcrypto.CryptoKey;
  try {
    publicKey = await request.publicKey.export(KEY_ALGORITHM, ['verify']);
  } catch (error) {
    throw new CertificateError(`the certificate request's key is not an ECDSA P-256 key: ${error instanceof Error ? error.message : String(error)}`);
  }
  return signCertificate(ca, publicKey, options);
}

/**
 * kubeadm's CA pin: "sha256:" and the hex SHA-256 of the CA certificate's
 * DER SubjectPublicKeyInfo (what `--discovery-token-ca-cert-hash` takes).
 */
export function caCertificateHash(caCertPem: string): string {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(caCertPem);
  } catch (error) {
    throw new CertificateError(`not a PEM certificate: ${error instanceof Error ? error.message : String(error)}`);
  }
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** What a kubelet's client certificate says: CN system:node:NAME, O system:nodes. */
export function nodeCertificateOptions(nodeName: string, options: { readonly validDays?: number; readonly now?: Date } = {}): IssueOptions {
  if (nodeName === '' || /[\s,/]/.test(nodeName)) throw new CertificateError(`node name ${JSON.stringify(nodeName)} must be non-empty without spaces, ',' or '/'`);
  return {
    commonName: `system:node:${nodeName}`,
    organizations: ['system:nodes'],
    usages: ['client'],
    ...(options.validDays === undefined ? {} : { validDays: options.validDays }),
    ...(options.now === undefined ? {} : { now: options.now }),
  };
}

/** A kubelet's client certificate, with a fresh key. */
export async function issueNodeCredentials(ca: KeyPairPem, nodeName: string, options: { readonly validDays?: number; readonly now?: Date } = {}): Promise<KeyPairPem> {
  return issueCertificate(ca, nodeCertificateOptions(nodeName, options));
}

/**
 * What a master's certificate says: it serves clients and peers and is
 * presented to peers as a client; CN system:master:NAME in system:masters;
 * valid for the hosts it is reached by, localhost and 127.0.0.1.
 */
export function masterCertificateOptions(name: string, hosts: readonly string[], now?: Date): IssueOptions {
  const names = [...new Set([...hosts, 'localhost', '127.0.0.1'])];
  return {
    commonName: `system:master:${name}`,
    organizations: ['system:masters'],
    dnsNames: names.filter((host) => isIP(host) === 0),
    ipAddresses: names.filter((host) => isIP(host) !== 0),
    usages: ['server', 'client'],
    ...(now === undefined ? {} : { now }),
  };
}
