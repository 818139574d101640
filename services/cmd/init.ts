// `mast init`: flags, the call into services/pki, and the report of what was
// written with the commands that start a cluster on it.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlagError } from '../master/flags.js';
import { InitError, initCluster } from '../pki/index.js';
import type { InitOptions, InitResult, MasterSpec } from '../pki/index.js';

export interface InitFlags {
  readonly dir: string;
  readonly masters: readonly MasterSpec[];
  readonly clientPort: number;
  readonly peerPort: number;
  readonly force: boolean;
}

const DEFAULT_MASTERS: readonly MasterSpec[] = ['m1', 'm2', 'm3'].map((name) => ({ name, hosts: ['127.0.0.1'] }));

export function initUsage(): string {
  return `usage: mast init --dir DIR [--master NAME=HOST[,HOST...]]... [--client-port 2379] [--peer-port 2380] [--force]

Writes a new cluster's CA, certificates, token file and mastctl config into DIR (created 0700; keys 0600).

flags:
  --dir DIR                      where to write (required)
  --master NAME=HOST[,HOST...]   a master and the names/IPs it is reached by (its certificate's SANs, plus
                                 localhost and 127.0.0.1); repeat for each master. Default: m1, m2, m3 on 127.0.0.1
  --client-port PORT             client port in the mastctl config (default 2379); masters sharing a host get +10000 each
  --peer-port PORT               peer port in the suggested commands (default 2380), offset the same way
  --force                        replace an existing CA in DIR (every certificate and token is made anew)`;
}

function parsePort(name: string, value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65_535) throw new FlagError(`--${name}: ${JSON.stringify(value)} is not a port (1-65535)`);
  return port;
}

function parseMaster(value: string): MasterSpec {
  const equals = value.indexOf('=');
  const name = equals < 0 ? '' : value.slice(0, equals).trim();
  const hosts = (equals < 0 ? '' : value.slice(equals + 1)).split(',').map((host) => host.trim()).filter((host) => host !== '');
  if (name === '' || hosts.length === 0) throw new FlagError(`--master ${JSON.stringify(value)} is not NAME=HOST[,HOST...]`);
  return { name, hosts };
}

function parseBool(name: string, value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new FlagError(`--${name}: ${JSON.stringify(value)} is not true or false`);
}

const VALUE_FLAGS = new Set(['dir', 'master', 'client-port', 'peer-port']);

export function parseInitFlags(argv: readonly string[]): InitFlags {
  let dir: string | undefined;
  const masters: MasterSpec[] = [];
  let clientPort = 2379;
  let peerPort = 2380;
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i]!;
    if (!argument.startsWith('-')) throw new FlagError(`unexpected argument ${JSON.stringify(argument)}: mast init takes only --flags`);
    const body = argument.replace(/^--?/, '');
    const equals = body.indexOf('=');
    const name = equals >= 0 ? body.slice(0, equals) : body;
    if (name !== 'force' && !VALUE_FLAGS.has(name)) throw new FlagError(`unknown flag --${name} (see \`mast init --help\`)`);
    let value: string;
    if (equals >= 0) value = body.slice(equals + 1);
    else if (name === 'force') value = 'true';
    else {
      const next = argv[++i];
      if (next === undefined) throw new FlagError(`flag --${name} needs a value`);
      value = next;
    }
    if (name === 'dir') dir = value;
    else if (name === 'master') masters.push(parseMaster(value));
    else if (name === 'client-port') clientPort = parsePort(name, value);
    else if (name === 'peer-port') peerPort = parsePort(name, value);
    else force = parseBool(name, value);
  }
  if (dir === undefined || dir === '') throw new FlagError('--dir is required (see `mast init --help`)');
  return { dir, masters: masters.length > 0 ? masters : DEFAULT_MASTERS, clientPort, peerPort, force };
}

/** A word the shell reads back unchanged. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function masterFlags(result: InitResult, master: InitResult['masters'][number]): string[][] {
  const initialCluster = result.masters.map((each) => `${each.name}=${each.peerUrl}`).join(',');
  return [
    ['--name', master.name],
    ['--listen-client-urls', master.clientUrl],
    ['--listen-peer-urls', master.peerUrl],
    ['--initial-cluster', initialCluster],
    ['--cert-file', master.certFile],
    ['--key-file', master.keyFile],
    ['--trusted-ca-file', result.caCertFile],
    ['--peer-cert-file', master.certFile],
    ['--peer-key-file', master.keyFile],
    ['--peer-trusted-ca-file', result.caCertFile],
    ['--peer-client-cert-auth'],
    ['--token-auth-file', result.tokenFile],
    ['--cluster-signing-key-file', result.caKeyFile],
  ];
}

function masterCommand(result: InitResult, master: InitResult['masters'][number]): string {
  return `    mast master ${masterFlags(result, master).map((flag) => flag.map(shellWord).join(' ')).join(' \\\n      ')}`;
}

/** NAME.env beside the certificates: the same flags for ops/systemd/mast-master@.service (EnvironmentFile; words split on spaces). */
function writeEnvFiles(result: InitResult): void {
  for (const master of result.masters) {
    writeFileSync(join(result.dir, `${master.name}.env`), `# mast master's flags, for ops/systemd/mast-master@.service (EnvironmentFile)\nMAST_MASTER_FLAGS=${masterFlags(result, master).flat().join(' ')}\n`, { mode: 0o644 });
  }
}

/** What `mast init` prints: the files and how to use them. */
export function describeInit(result: InitResult): string {
  const row = (files: string, what: string): string => `  ${files.padEnd(24)} ${what}`;
  const lines = [
    `mast init: wrote a new cluster's credentials to ${result.dir}`,
    row('ca.crt ca.key', 'the cluster CA (ca.key signs every certificate: keep it safe)'),
    ...result.masters.map((master) => row(`${master.name}.crt ${master.name}.key`, `master ${master.name} (${master.clientUrl}): serves clients and peers`)),
    row('admin.crt admin.key', 'client certificate for admin (group system:masters)'),
    row('tokens.csv', 'bearer tokens for admin, system:kube-scheduler, system:kube-controller-manager'),
    row('config', 'mastctl config: the masters, the CA and the admin token'),
    row('NAME.env', 'each master\'s flags for systemd (ops/systemd/mast-master@.service)'),
    '',
    'next steps:',
    '  start each master with its certificate (its data goes to NAME.mast unless you add --data-dir):',
    ...result.masters.map((master) => masterCommand(result, master)),
    '  then point mastctl at the cluster:',
    `    export MASTCONFIG=${shellWord(result.configFile)}`,
  ];
  return `${lines.join('\n')}\n`;
}

export async function runInit(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${initUsage()}\n`);
    return;
  }
  const flags = parseInitFlags(argv);
  const options: InitOptions = { dir: flags.dir, masters: flags.masters, clientPort: flags.clientPort, peerPort: flags.peerPort, force: flags.force };
  let result: InitResult;
  try {
    result = await initCluster(options);
  } catch (error) {
    // Options the flags let through but init rejects are usage errors (exit 2); an existing CA is not (exit 1).
    if (error instanceof InitError && error.code === 'invalid') throw new FlagError(error.message);
    if (error instanceof InitError) {
      process.stderr.write(`mast: ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
  writeEnvFiles(result);
  process.stdout.write(describeInit(result));
}
