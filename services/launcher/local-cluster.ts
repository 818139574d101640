// Runs a cluster of master processes on this machine's loopback: for tests,
// benchmarks and (later) `mast up`. Because `mast master` takes etcd's flags,
// the same launcher also runs a real etcd cluster for side-by-side benchmarks.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { EtcdConnection } from '../client/etcd.js';

export const MAST_BINARY = fileURLToPath(new URL('../cmd/mast.js', import.meta.url));

export type Flavor = 'mast' | 'etcd';

export interface LocalClusterOptions {
  readonly size: number;
  /** A directory of its own: data dirs and logs go below it. */
  readonly baseDir: string;
  readonly flavor?: Flavor;
  /** Extra flags for every member (e.g. --snapshot-count=100). */
  readonly flags?: readonly string[];
  /** Flags for node itself (e.g. --cpu-prof), for flavor 'mast'. */
  readonly nodeArgs?: readonly string[];
  /** Serve clients and peers over TLS with these PEM files (one certificate for every member). */
  readonly tls?: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
  /**
   * Authenticate and authorize clients (needs tls) with this token file; without
   * it mast members run --insecure (every client an admin), as etcd does by default.
   */
  readonly tokenAuthFile?: string;
  /** Run scheduler candidates in the masters (mast's default); off unless asked, so tests' pods stay as written. */
  readonly scheduler?: boolean;
  /** Run controller-manager candidates in the masters (mast's default); off unless asked. */
  readonly controllers?: boolean;
  /** The etcd binary, for flavor 'etcd'. */
  readonly etcdBinary?: string;
}

export interface LocalMember {
  readonly name: string;
  readonly peerUrl: string;
  readonly clientUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  process: ChildProcess | undefined;
  log: WriteStream | undefined;
}

/** Ports freePort() has handed out in this process: each is for one listener, which may not have bound it yet. */
const portsHandedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 (bound and released; fine for loopback
 * tests), never one this process was given before: the kernel readily
 * offers a released port again, and two of a cluster's listeners given the
 * same one would make the second fail — or, when the first is a relay,
 * send clients to the wrong server.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const bound = typeof address === 'object' && address !== null ? address.port : 0;
        server.close(() => resolve(bound));
      });
    });
    if (!portsHandedOut.has(port)) {
      portsHandedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: the kernel offered only ports this process has handed out already (100 tries)');
}

/** Wait until the masters have made a namespace they create at startup (default, kube-system...). */
export async function waitForNamespace(client: { list(kind: 'Namespace'): Promise<{ items: ReadonlyArray<{ metadata?: { name?: string } }> }> }, name: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(`namespace ${name}`, async () => ((await client.list('Namespace')).items.some((item) => item.metadata?.name === name) ? true : undefined), timeoutMs, 50);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? '' : `: ${String(lastError)}`}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export class LocalCluster {
  readonly members: LocalMember[];
  readonly flavor: Flavor;
  /** What a client needs to reach the members (TLS when the cluster uses it). */
  readonly clientCredentials: grpc.ChannelCredentials;
  /** One connection per member for status polling, kept across polls (and member restarts). */
  private readonly probes = new Map<LocalMember, EtcdConnection>();

  private constructor(
    readonly options: LocalClusterOptions,
    members: LocalMember[],
  ) {
    this.members = members;
    this.flavor = options.flavor ?? 'mast';
    this.clientCredentials =
      options.tls === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(readFileSync(options.tls.caFile), readFileSync(options.tls.keyFile), readFileSync(options.tls.certFile));
  }

  /** A member slot with free ports, not started. */
  private static async newMember(options: LocalClusterOptions, name: string): Promise<LocalMember> {
    const scheme = options.tls === undefined ? 'http' : 'https';
    return {
      name,
      peerUrl: `${scheme}://127.0.0.1:${await freePort()}`,
      clientUrl: `${scheme}://127.0.0.1:${await freePort()}`,
      dataDir: join(options.baseDir, name),
      logFile: join(options.baseDir, `${name}.log`),
      process: undefined,
      log: undefined,
    };
  }

  static async create(options: LocalClusterOptions): Promise<LocalCluster> {
    await mkdir(options.baseDir, { recursive: true });
    const members: LocalMember[] = [];
    for (let i = 1; i <= options.size; i++) members.push(await LocalCluster.newMember(options, `m${i}`));
    return new LocalCluster(options, members);
  }

  /** Create and start every member, then wait until they agree on a leader. */
  static async start(options: LocalClusterOptions, timeoutMs = 30_000): Promise<LocalCluster> {
    const cluster = await LocalCluster.create(options);
    for (const member of cluster.members) cluster.startMember(member.name);
    await cluster.waitForLeader(timeoutMs);
    return cluster;
  }

  get initialCluster(): string {
    return this.members.map((member) => `${member.name}=${member.peerUrl}`).join(',');
  }

  get endpoints(): string[] {
    return this.members.map((member) => member.clientUrl.replace(/^https?:\/\//, ''));
  }

  member(name: string): LocalMember {
    const member = this.members.find((candidate) => candidate.name === name);
    if (member === undefined) throw new Error(`no member ${name}`);
    return member;
  }

  argsFor(member: LocalMember, state: 'new' | 'existing' = 'new', initialCluster = this.initialCluster): string[] {
    return [
      `--name=${member.name}`,
      `--data-dir=${member.dataDir}`,
      `--listen-peer-urls=${member.peerUrl}`,
      `--initial-advertise-peer-urls=${member.peerUrl}`,
      `--listen-client-urls=${member.clientUrl}`,
      `--advertise-client-urls=${member.clientUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      ...(this.options.tls === undefined
        ? []
        : [
            `--cert-file=${this.options.tls.certFile}`,
            `--key-file=${this.options.tls.keyFile}`,
            `--trusted-ca-file=${this.options.tls.caFile}`,
            `--peer-cert-file=${this.options.tls.certFile}`,
            `--peer-key-file=${this.options.tls.keyFile}`,
            `--peer-trusted-ca-file=${this.options.tls.caFile}`,
            '--peer-client-cert-auth',
          ]),
      ...(this.flavor !== 'mast' ? [] : this.options.tokenAuthFile === undefined ? ['--insecure'] : [`--token-auth-file=${this.options.tokenAuthFile}`]),
      ...(this.flavor !== 'mast' ? [] : [`--scheduler=${this.options.scheduler === true}`, `--controllers=${this.options.controllers === true}`]),
      ...(this.options.flags ?? []),
    ];
  }

  startMember(name: string, state: 'new' | 'existing' = 'new', initialCluster?: string): LocalMember {
    const member = this.member(name);
    if (member.process !== undefined) throw new Error(`member ${name} is already running`);
    const args = this.argsFor(member, state, initialCluster);
    const child =
      this.flavor === 'mast'
        ? spawn(process.execPath, [...(this.options.nodeArgs ?? []), MAST_BINARY, 'master', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn(this.options.etcdBinary ?? 'etcd', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCD_LOG_LEVEL: 'warn' } });
    const log = createWriteStream(member.logFile, { flags: 'a' });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    member.process = child;
    member.log = log;
    child.once('exit', () => {
      if (member.process === child) member.process = undefined;
    });
    return member;
  }

  /** Add a member slot (not started) for a member that will join at runtime. */
  async addSlot(): Promise<LocalMember> {
    const member = await LocalCluster.newMember(this.options, `m${this.members.length + 1}`);
    this.members.push(member);
    return member;
  }

  /** Send a signal and wait for the process to exit. */
  async stopMember(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const member = this.member(name);
    const child = member.process;
    if (child === undefined) return null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    const code = await exited;
    member.process = undefined;
    return code;
  }

  running(): LocalMember[] {
    return this.members.filter((member) => member.process !== undefined);
  }

  connection(name: string): EtcdConnection {
    return new EtcdConnection(this.member(name).clientUrl, this.clientCredentials);
  }

  /** The running member that leads, once the running members agree on one. */
  async waitForLeader(timeoutMs = 30_000): Promise<LocalMember> {
    return waitFor(
      'a leader that every running member recognizes',
      async () => {
        const leaders = new Set<string>();
        let leaderMember: LocalMember | undefined;
        for (const member of this.running()) {
          const status = await this.probe(member).status(1000);
          leaders.add(status.leader);
          if (status.leader !== '0' && status.leader === status.header?.memberId) leaderMember = member;
        }
        return leaders.size === 1 && !leaders.has('0') ? leaderMember : undefined;
      },
      timeoutMs,
    );
  }

  private probe(member: LocalMember): EtcdConnection {
    let connection = this.probes.get(member);
    if (connection === undefined) {
      connection = new EtcdConnection(member.clientUrl, this.clientCredentials);
      this.probes.set(member, connection);
    }
    return connection;
  }

  async stopAll(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await Promise.all(this.running().map((member) => this.stopMember(member.name, signal)));
    for (const member of this.members) member.log?.end();
    for (const connection of this.probes.values()) connection.close();
    this.probes.clear();
  }

  async destroy(): Promise<void> {
    await this.stopAll();
    await rm(this.options.baseDir, { recursive: true, force: true });
  }
}
