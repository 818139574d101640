// `mast init`: everything a new cluster needs to run with TLS and
// authentication, written into one directory: the CA, one certificate per
// master (serving clients and peers, and presented to peers as a client), an
// admin client certificate, the static token file and the client config
// mastctl reads. Key material is written 0600 in a 0700 directory; an existing
// CA key is never replaced unless asked.

import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { createCertificateAuthority, issueCertificate, masterCertificateOptions, randomToken } from './certificates.js';
import { formatTokenFile } from './tokens.js';
import type { TokenEntry } from './tokens.js';

export interface MasterSpec {
  /** Member name; its files are NAME.crt and NAME.key. */
  readonly name: string;
  /** Host names and IP addresses clients and peers reach it by; the first one goes into the client config. */
  readonly hosts: readonly string[];
}

export interface InitOptions {
  readonly dir: string;
  readonly masters: readonly MasterSpec[];
  /** Default 2379. Masters sharing a first host get CLIENT_PORT, +10000, +20000, ... so they can run side by side. */
  readonly clientPort?: number;
  /** Default 2380, offset the same way; only used in the suggested `mast master` commands. */
  readonly peerPort?: number;
  /** Replace an existing CA (and everything else). */
  readonly force?: boolean;
  readonly now?: Date;
}

export interface MasterFiles {
  readonly name: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** https://FIRST_HOST:PORT, as written into the client config. */
  readonly clientUrl: string;
  readonly peerUrl: string;
}

export interface InitResult {
  /** Absolute. */
  readonly dir: string;
  readonly caCertFile: string;
  readonly caKeyFile: string;
  readonly masters: readonly MasterFiles[];
  readonly adminCertFile: string;
  readonly adminKeyFile: string;
  readonly tokenFile: string;
  readonly configFile: string;
  readonly adminToken: string;
  /** Every file written, in the order written. */
  readonly written: readonly string[];
}

export class InitError extends Error {
  override readonly name = 'InitError';
  /** invalid: the options are wrong; exists: a CA is already there (pass force). */
  constructor(
    message: string,
    readonly code: 'invalid' | 'exists',
  ) {
    super(message);
  }
}

/** The users the token file names besides admin: the control-plane components. */
const COMPONENT_USERS = ['system:kube-scheduler', 'system:kube-controller-manager'] as const;
const MASTERS_GROUP = 'system:masters';
const RESERVED_NAMES = new Set(['ca', 'admin', 'tokens', 'config']);
const PORT_STRIDE = 10_000;

function validatePort(label: string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new InitError(`${label} ${port} is not a port (1-65535)`, 'invalid');
}

function validateHost(master: string, host: string): void {
  if (isIP(host) !== 0) return;
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
    throw new InitError(`master ${master}: ${JSON.stringify(host)} is neither an IP address nor a DNS name`, 'invalid');
  }
}

function validateMasters(masters: readonly MasterSpec[]): void {
  if (masters.length === 0) throw new InitError('at least one master is needed', 'invalid');
  const seen = new Set<string>();
  for (const master of masters) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(master.name)) {
      throw new InitError(`master name ${JSON.stringify(master.name)} must start with a letter or digit and hold only letters, digits, '.', '_' and '-'`, 'invalid');
    }
    const key = master.name.toLowerCase();
    if (RESERVED_NAMES.has(key)) throw new InitError(`master name ${JSON.stringify(master.name)} is taken by the file ${key}.*`, 'invalid');
    if (seen.has(key)) throw new InitError(`master name ${JSON.stringify(master.name)} is given twice`, 'invalid');
    seen.add(key);
    if (master.hosts.length === 0) throw new InitError(`master ${master.name} needs at least one host`, 'invalid');
    for (const host of master.hosts) validateHost(master.name, host);
  }
}

function urlHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** Client and peer URLs: the first host, with ports moved up by PORT_STRIDE for each earlier master on the same host. */
function masterUrls(masters: readonly MasterSpec[], clientPort: number, peerPort: number): { clientUrl: string; peerUrl: string }[] {
  const onHost = new Map<string, number>();
  return masters.map((master) => {
    const host = master.hosts[0]!;
    const shift = (onHost.get(host) ?? 0) * PORT_STRIDE;
    onHost.set(host, (onHost.get(host) ?? 0) + 1);
    if (Math.max(clientPort, peerPort) + shift > 65_535) {
      throw new InitError(`too many masters on ${host} to give each its own ports; give them different hosts or lower --client-port`, 'invalid');
    }
    return { clientUrl: `https://${urlHost(host)}:${clientPort + shift}`, peerUrl: `https://${urlHost(host)}:${peerPort + shift}` };
  });
}

/** Writes through a temporary file and a rename, so a reader never sees half a file and an old file's mode never applies. */
function writeFileAtomic(path: string, text: string, mode: number): void {
  const temporary = `${path}.tmp-${process.pid}`;
  rmSync(temporary, { force: true });
  writeFileSync(temporary, text, { mode, flag: 'wx' });
  renameSync(temporary, path);
}

export async function initCluster(options: InitOptions): Promise<InitResult> {
  validateMasters(options.masters);
  const clientPort = options.clientPort ?? 2379;
  const peerPort = options.peerPort ?? 2380;
  validatePort('client port', clientPort);
  validatePort('peer port', peerPort);
  const urls = masterUrls(options.masters, clientPort, peerPort);
  const dir = resolve(options.dir);
  const path = (name: string): string => join(dir, name);
  if (existsSync(path('ca.key')) && options.force !== true) {
    throw new InitError(`${path('ca.key')} already exists: refusing to replace the cluster CA (--force starts over with a new one)`, 'exists');
  }
  const now = options.now;
  const at = now === undefined ? {} : { now };

  const ca = await createCertificateAuthority(at);
  const masters = await Promise.all(options.masters.map((master) => issueCertificate(ca, masterCertificateOptions(master.name, master.hosts, now))));
  const admin = await issueCertificate(ca, { commonName: 'admin', organizations: [MASTERS_GROUP], usages: ['client'], ...at });
  const adminToken = randomToken();
  const tokens: TokenEntry[] = [
    { token: adminToken, user: { name: 'admin', uid: 'admin', groups: [MASTERS_GROUP] } },
    ...COMPONENT_USERS.map((name) => ({ token: randomToken(), user: { name, uid: name, groups: [] } })),
  ];
  const config = stringify({ masters: urls.map((url) => url.clientUrl), certificateAuthority: path('ca.crt'), token: adminToken });

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const write = (name: string, text: string, mode: number): string => {
    writeFileAtomic(path(name), text, mode);
    written.push(path(name));
    return path(name);
  };
  const caCertFile = write('ca.crt', ca.certPem, 0o644);
  const masterFiles = options.masters.map((master, index) => ({
    name: master.name,
    certFile: write(`${master.name}.crt`, masters[index]!.certPem, 0o644),
    keyFile: write(`${master.name}.key`, masters[index]!.keyPem, 0o600),
    ...urls[index]!,
  }));
  const adminCertFile = write('admin.crt', admin.certPem, 0o644);
  const adminKeyFile = write('admin.key', admin.keyPem, 0o600);
  const tokenFile = write('tokens.csv', formatTokenFile(tokens), 0o600);
  const configFile = write('config', config, 0o600);
  // Last: a run that fails part way leaves no CA key behind, so it can simply be run again.
  const caKeyFile = write('ca.key', ca.keyPem, 0o600);
  return { dir, caCertFile, caKeyFile, masters: masterFiles, adminCertFile, adminKeyFile, tokenFile, configFile, adminToken, written };
}
