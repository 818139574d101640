// `mast join node|master`: a new machine joins a secured cluster with a join
// token, as with `kubeadm join`:
//
//   1. Discovery: ask a master for the cluster CA over a connection that
//      trusts nothing yet (ClusterInfo), and accept the CA only if the hash
//      of its public key is the pin given with --discovery-token-ca-cert-hash
//      (`mastctl token create` prints both). A man in the middle can show
//      another CA but not one with that hash.
//   2. Reconnect trusting that CA, show the token, and send a certificate
//      request for a key made here (it never leaves this machine).
//   3. Write what the agent or master needs into --dir and say how to start
//      it (and the systemd environment file, see ops/systemd/).

import * as grpc from '@grpc/grpc-js';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import * as joinProto from '../../proto/gen/join.js';
import { FlagError } from '../master/flags.js';
import { caCertificateHash, createCertificateRequest, parseBootstrapToken } from '../pki/index.js';

export class JoinError extends Error {
  override readonly name = 'JoinError';
}

export function joinUsage(): string {
  return `usage: mast join node   --server URL --token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX [--node-name NAME] [--dir DIR]
       mast join master --server URL --token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX --name NAME
                        --host HOST[,HOST...] [--client-port 2379] [--peer-port 2380] [--dir DIR]

Joins this machine to a secured cluster (mast init) with a join token from
\`mastctl token create [--for master]\`, which also prints the CA hash.

  --server URL                       a master's client URL (https://HOST:PORT)
  --token ID.SECRET                  the join token
  --discovery-token-ca-cert-hash H   sha256:HEX of the cluster CA's public key: the CA is trusted only if it matches
  --dir DIR                          where to write keys, certificates and config (default /etc/mast; created 0700)
node:
  --node-name NAME                   the Node's name (default: the host name, lower-cased)
master:
  --name NAME                        the new member's name
  --host HOST[,HOST...]              names and addresses clients and peers reach it by (its certificate's SANs);
                                     the first is used in its URLs
  --client-port, --peer-port         its ports (default 2379 and 2380)`;
}

interface CommonFlags {
  readonly server: string;
  readonly token: string;
  readonly caHash: string;
  readonly dir: string;
}

function common(values: Record<string, string | boolean | undefined>): CommonFlags {
  const required = (name: string): string => {
    const value = values[name];
    if (typeof value !== 'string' || value === '') throw new FlagError(`--${name} is required (see mast join --help)`);
    return value;
  };
  const server = required('server');
  if (!/^https:\/\/[^/]+:\d+\/?$/.test(server)) throw new FlagError(`--server ${JSON.stringify(server)} is not https://HOST:PORT (joins need a secured cluster)`);
  const token = required('token');
  if (parseBootstrapToken(token) === undefined) throw new FlagError('--token is not a join token: expected ID.SECRET, 6 and 16 characters of [a-z0-9] (mastctl token create prints one)');
  const caHash = required('discovery-token-ca-cert-hash').toLowerCase();
  if (!/^sha256:[0-9a-f]{64}$/.test(caHash)) throw new FlagError('--discovery-token-ca-cert-hash is not sha256:HEX (64 hex digits; mastctl token create prints it)');
  return { server: server.replace(/\/$/, ''), token, caHash, dir: resolve(typeof values.dir === 'string' && values.dir !== '' ? values.dir : '/etc/mast') };
}

function address(url: string): string {
  return url.replace(/^https:\/\//, '');
}

function call<Req, Res>(client: joinProto.JoinClient, method: 'clusterInfo' | 'joinNode' | 'joinMaster', request: Req, metadata: grpc.Metadata): Promise<Res> {
  return new Promise<Res>((resolvePromise, reject) => {
    (client[method] as unknown as (request: Req, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: Res) => void) => void)(request, metadata, { deadline: Date.now() + 30_000 }, (error, response) => (error === null ? resolvePromise(response) : reject(error)));
  });
}

function describe(error: unknown, server: string): JoinError {
  const status = error as Partial<grpc.ServiceError>;
  if (typeof status.code === 'number') return new JoinError(`${server}: ${status.details ?? status.message}`);
  return new JoinError(`${server}: ${error instanceof Error ? error.message : String(error)}`);
}

/** Discovery: the cluster CA, accepted only if its public key matches the pin. */
export async function discoverCa(server: string, caHash: string): Promise<string> {
  // Nothing is trusted yet: the pin below is what makes the answer trustworthy.
  const unverified = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  const client = new joinProto.JoinClient(address(server), unverified);
  try {
    const info = await call<joinProto.ClusterInfoRequest, joinProto.ClusterInfoResponse>(client, 'clusterInfo', {}, new grpc.Metadata()).catch((error: unknown) => {
      throw describe(error, server);
    });
    const actual = caCertificateHash(info.caCertificate);
    if (actual !== caHash) throw new JoinError(`${server} presented a cluster CA whose hash is ${actual}, not the ${caHash} given with --discovery-token-ca-cert-hash: refusing to trust it`);
    return info.caCertificate;
  } finally {
    client.close();
  }
}

function trusted(server: string, caPem: string): joinProto.JoinClient {
  return new joinProto.JoinClient(address(server), grpc.credentials.createSsl(Buffer.from(caPem)));
}

function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

/** Discovery, a key made here, and the join call with its certificate request, over TLS trusting the pinned CA. */
async function requestCredentials<Res>(flags: CommonFlags, commonName: string, method: 'joinNode' | 'joinMaster', request: (certificateRequest: string) => unknown): Promise<{ caPem: string; keyPem: string; response: Res }> {
  const caPem = await discoverCa(flags.server, flags.caHash);
  const { requestPem, keyPem } = await createCertificateRequest(commonName);
  const client = trusted(flags.server, caPem);
  try {
    return { caPem, keyPem, response: await call<unknown, Res>(client, method, request(requestPem), bearer(flags.token)) };
  } catch (error) {
    throw describe(error, flags.server);
  } finally {
    client.close();
  }
}

/** Writes files into `dir` (0700) through temporary files; keys 0600. */
class Writer {
  readonly written: string[] = [];
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  path(name: string): string {
    return join(this.dir, name);
  }
  write(name: string, text: string, mode: number): string {
    const path = this.path(name);
    const temporary = `${path}.tmp-${process.pid}`;
    rmSync(temporary, { force: true });
    writeFileSync(temporary, text, { mode, flag: 'wx' });
    renameSync(temporary, path);
    this.written.push(path);
    return path;
  }
}

export interface NodeJoinResult {
  readonly nodeName: string;
  readonly configFile: string;
  readonly envFile: string;
  readonly written: readonly string[];
}

export async function joinNode(flags: CommonFlags & { readonly nodeName: string }): Promise<NodeJoinResult> {
  const { caPem, keyPem, response } = await requestCredentials<joinProto.JoinNodeResponse>(flags, `system:node:${flags.nodeName}`, 'joinNode', (certificateRequest) => ({ nodeName: flags.nodeName, certificateRequest }));
  const files = new Writer(flags.dir);
  const caFile = files.write('ca.crt', caPem, 0o644);
  const keyFile = files.write('node.key', keyPem, 0o600);
  const certFile = files.write('node.crt', response.certificate, 0o644);
  const masters = response.masters.length > 0 ? response.masters : [flags.server];
  const configFile = files.write('agent.config', stringify({ masters, certificateAuthority: caFile, clientCertificate: certFile, clientKey: keyFile }), 0o600);
  const envFile = files.write('agent.env', `# mast agent's flags, for ops/systemd/mast-agent.service (EnvironmentFile)\nMAST_AGENT_FLAGS=--kubeconfig ${configFile} --node-name ${flags.nodeName}\n`, 0o644);
  return { nodeName: flags.nodeName, configFile, envFile, written: files.written };
}

export interface MasterJoinResult {
  readonly name: string;
  readonly memberId: string;
  /** The `mast master` flags that start it. */
  readonly masterFlags: readonly string[];
  readonly envFile: string;
  readonly written: readonly string[];
}

export async function joinMaster(flags: CommonFlags & { readonly name: string; readonly hosts: readonly string[]; readonly clientPort: number; readonly peerPort: number }): Promise<MasterJoinResult> {
  const first = flags.hosts[0]!;
  const host = isIP(first) === 6 ? `[${first}]` : first;
  const clientUrl = `https://${host}:${flags.clientPort}`;
  const peerUrl = `https://${host}:${flags.peerPort}`;
  if (existsSync(join(flags.dir, `${flags.name}.key`))) throw new JoinError(`${join(flags.dir, `${flags.name}.key`)} already exists: this machine seems to have joined as ${flags.name} already (remove the files to join again)`);
  const { caPem, keyPem, response } = await requestCredentials<joinProto.JoinMasterResponse>(flags, `system:master:${flags.name}`, 'joinMaster', (certificateRequest) => ({ name: flags.name, hosts: [...flags.hosts], peerUrl, clientUrl, certificateRequest }));
  const files = new Writer(flags.dir);
  const caFile = files.write('ca.crt', caPem, 0o644);
  const keyFile = files.write(`${flags.name}.key`, keyPem, 0o600);
  const certFile = files.write(`${flags.name}.crt`, response.certificate, 0o644);
  const tokenFile = response.tokenFile === '' ? undefined : files.write('tokens.csv', response.tokenFile, 0o600);
  const caKeyFile = response.caKey === '' ? undefined : files.write('ca.key', response.caKey, 0o600);
  const masterFlags = [
    '--name', flags.name,
    '--listen-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-cluster', response.initialCluster,
    '--initial-cluster-state', 'existing',
    '--initial-cluster-token', response.initialClusterToken,
    '--cert-file', certFile,
    '--key-file', keyFile,
    '--trusted-ca-file', caFile,
    '--peer-cert-file', certFile,
    '--peer-key-file', keyFile,
    '--peer-trusted-ca-file', caFile,
    '--peer-client-cert-auth',
    ...(tokenFile === undefined ? [] : ['--token-auth-file', tokenFile]),
    ...(caKeyFile === undefined ? [] : ['--cluster-signing-key-file', caKeyFile]),
  ];
  const envFile = files.write(`${flags.name}.env`, `# mast master's flags, for ops/systemd/mast-master.service (EnvironmentFile)\nMAST_MASTER_FLAGS=${masterFlags.join(' ')}\n`, 0o644);
  return { name: flags.name, memberId: BigInt(response.memberId).toString(16), masterFlags, envFile, written: files.written };
}

function port(name: string, value: string | boolean | undefined, fallback: number): number {
  if (typeof value !== 'string') return fallback;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed < 1 || parsed > 65_535) throw new FlagError(`--${name}: ${JSON.stringify(value)} is not a port (1-65535)`);
  return parsed;
}

export async function runJoin(argv: readonly string[], out: (line: string) => void, hostName: () => string): Promise<void> {
  const [role, ...rest] = argv;
  if (role === undefined || role === '--help' || role === '-h' || rest.includes('--help')) {
    out(joinUsage());
    return;
  }
  if (role !== 'node' && role !== 'master') throw new FlagError(`mast join ${JSON.stringify(role)}: join a node or a master (mast join node|master ...)`);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: {
        server: { type: 'string' },
        token: { type: 'string' },
        'discovery-token-ca-cert-hash': { type: 'string' },
        dir: { type: 'string' },
        'node-name': { type: 'string' },
        name: { type: 'string' },
        host: { type: 'string', multiple: false },
        'client-port': { type: 'string' },
        'peer-port': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new FlagError(`${error instanceof Error ? error.message : String(error)} (see mast join --help)`);
  }
  const flags = common(values);
  if (role === 'node') {
    if (values.name !== undefined || values.host !== undefined) throw new FlagError('--name and --host are for mast join master; a node takes --node-name');
    const nodeName = typeof values['node-name'] === 'string' && values['node-name'] !== '' ? values['node-name'] : hostName().toLowerCase();
    const result = await joinNode({ ...flags, nodeName });
    out(`mast join: node ${result.nodeName} has a client certificate; wrote ${result.written.join(', ')}`);
    out('start the agent:');
    out(`    mast agent --kubeconfig ${result.configFile} --node-name ${result.nodeName}`);
    out(`or with systemd: cp ops/systemd/mast-agent.service /etc/systemd/system/ (it reads ${result.envFile}; see README)`);
    return;
  }
  if (values['node-name'] !== undefined) throw new FlagError('--node-name is for mast join node; a master takes --name');
  const name = typeof values.name === 'string' ? values.name : '';
  if (name === '') throw new FlagError('--name is required for mast join master');
  const hosts = (typeof values.host === 'string' ? values.host : '').split(',').map((host) => host.trim()).filter((host) => host !== '');
  if (hosts.length === 0) throw new FlagError('--host is required for mast join master: the names or addresses the others reach it by');
  const result = await joinMaster({ ...flags, name, hosts, clientPort: port('client-port', values['client-port'], 2379), peerPort: port('peer-port', values['peer-port'], 2380) });
  out(`mast join: ${result.name} is member ${result.memberId} of the cluster (a voter: start it now); wrote ${result.written.join(', ')}`);
  out('start the master (its data goes to NAME.mast in the working directory unless you add --data-dir):');
  out(`    mast master ${result.masterFlags.join(' ')}`);
  out(`or with systemd: cp ops/systemd/mast-master.service /etc/systemd/system/mast-master@.service (it reads ${result.envFile}; see README)`);
}
