// `mast up`: a whole local cluster on this machine, for a first try and for
// demos — 1, 3 or 5 masters, node agents on the embedded runtime (or on
// private containerds), the Service proxy and cluster DNS on the first
// agent — started in order with a line of progress per step, supervised
// while it runs (a process that dies is restarted after a pause, and a new
// leader is reported), and stopped in reverse order: agents, their pods,
// containerd, masters.
//
// Everything lives under one data dir (default ~/.mast/up): up.json (the
// settings the cluster was made with, so a restart needs no flags and cannot
// silently change what the Raft membership or the Service range depend on),
// masters/NAME (Raft data), agents/NODE (agent roots), containerd/NODE,
// logs/NAME.log and run/NAME.pid. Ports are fixed by --base-port (mast
// init's convention: client P, peer P+1, +10000 for each further master),
// so a restart and the client config stay valid.
//
// What needs more than services/client (stopping embedded pods through the
// runtime, nftables detection, the host's address) comes in as UpHooks.

import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { configFilePath } from '../client/client-config.js';
import { EtcdConnection } from '../client/etcd.js';
import { ResourceClient, type KubeObject } from '../client/resources.js';
import { MAST_BINARY } from './local-cluster.js';
import { containerdUnavailable, LocalContainerd } from './local-containerd.js';

export type UpRuntime = 'embedded' | 'containerd';

/** What a cluster is made with; recorded in DATA/up.json on its first start. */
export interface UpSettings {
  readonly masters: number;
  readonly agents: number;
  readonly runtime: UpRuntime;
  /** Master i (from 0) serves clients on BASE + 10000·i and peers on BASE + 1 + 10000·i. */
  readonly basePort: number;
  readonly serviceClusterIpRange: string;
  /** The first node's pod range; node i gets the i-th next range of the same size. */
  readonly podCidr: string;
  readonly loadBalancerIpPool: string;
  /** The Service proxy's mode on the first agent (the others run none). */
  readonly proxyMode: 'userspace' | 'nftables';
}

export type RequestedSettings = { -readonly [K in keyof UpSettings]?: UpSettings[K] };

export interface UpHooks {
  /** Stops every container the embedded runtime under agentRoot/cri still runs (its agent has stopped). */
  stopEmbeddedPods(agentRoot: string, podCidr: string): Promise<void>;
  /** Whether the nftables proxy can run here, and why not. */
  nftablesUsable(): Promise<{ usable: boolean; reason?: string }>;
  /** The host's own IPv4 address (not loopback), where containers reach the node; '' if none. */
  hostIp(): string;
}

export interface UpOptions {
  readonly dataDir: string;
  readonly requested: RequestedSettings;
  /** Delete the data dir (stopping whatever it left running) before starting. */
  readonly fresh?: boolean;
  readonly hooks: UpHooks;
  /** One line of progress or news. */
  readonly say: (line: string) => void;
  /** HOME and MASTCONFIG decide where the client config goes. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

export class UpError extends Error {
  override readonly name = 'UpError';
}

/** Thrown out of start() when stop() was called while it ran. */
export class UpAborted extends Error {
  override readonly name = 'UpAborted';
}

export const DEFAULT_BASE_PORT = 2379;
const PORT_STRIDE = 10_000;
/** At the default base port these are kube-proxy's 10249 and mast agent's 10053; they move with --base-port. */
const PROXY_STATUS_OFFSET = 10_249 - DEFAULT_BASE_PORT;
const DNS_OFFSET = 10_053 - DEFAULT_BASE_PORT;
const NODE_PORT_RANGE = { low: 30_000, high: 32_767 };
/** A node-port range narrower than this is not worth having: refuse the base port instead. */
const NODE_PORT_RANGE_MIN = 1000;
const CONFIG_MARKER = '# Written by `mast up`';
const STARTUP_DEADLINE_MS = 60_000;
const NODE_READY_DEADLINE_MS = 120_000;
const POLL_INTERVAL_MS = 100;
const LEADER_POLL_INTERVAL_MS = 1000;
const STATUS_TIMEOUT_MS = 800;
const AGENT_STOP_TIMEOUT_MS = 10_000;
const MASTER_STOP_TIMEOUT_MS = 5000;
/** A process that dies is restarted after this, doubling while it keeps dying soon after a start, up to the max. */
const RESTART_DELAY_MS = 5000;
const RESTART_DELAY_MAX_MS = 60_000;
/** Having run this long, a process that dies is restarted after the first delay again. */
const RESTART_RESET_AFTER_MS = 60_000;
const CLUSTER_DNS_CONTAINERD = '10.96.0.10';
const NAMESPACES = ['default', 'kube-system', 'kube-node-lease'];

// ------------------------------------------------------------ settings

export function defaultSettings(runtime: UpRuntime, nftables: boolean): Omit<UpSettings, 'masters' | 'agents' | 'basePort'> {
  if (runtime === 'containerd' && nftables) {
    // Pods in their own network namespaces reach Services through the kernel's rules: the ranges must not be loopback.
    return { runtime, serviceClusterIpRange: '10.96.0.0/16', podCidr: '10.89.1.0/24', loadBalancerIpPool: '10.97.0.0/24', proxyMode: 'nftables' };
  }
  // The userspace proxy listens on the cluster IPs themselves: on Linux every 127/8 address is local.
  return { runtime, serviceClusterIpRange: '127.96.0.0/16', podCidr: runtime === 'embedded' ? '127.10.0.0/16' : '10.89.1.0/24', loadBalancerIpPool: '127.97.0.0/24', proxyMode: 'userspace' };
}

const FLAG_OF: Readonly<Record<keyof UpSettings, string>> = {
  masters: '--masters',
  agents: '--agents',
  runtime: '--runtime',
  basePort: '--base-port',
  serviceClusterIpRange: '--service-cluster-ip-range',
  podCidr: '--pod-cidr',
  loadBalancerIpPool: '--load-balancer-ip-pool',
  proxyMode: '--runtime',
};

/**
 * The settings to run with: a recorded cluster's own (flags may repeat them,
 * not change them — the Raft membership, ports and ranges depend on them),
 * except --agents, which may grow or shrink; for a new cluster, the flags over
 * the defaults.
 */
export function resolveSettings(recorded: UpSettings | undefined, requested: RequestedSettings, nftables: boolean, dataDir: string): UpSettings {
  if (recorded !== undefined) {
    for (const key of Object.keys(requested) as Array<keyof UpSettings>) {
      if (key === 'agents' || requested[key] === undefined || requested[key] === recorded[key]) continue;
      throw new UpError(
        `${dataDir} holds a cluster made with ${FLAG_OF[key]} ${String(recorded[key])}, not ${String(requested[key])}: ` +
          `start it without ${FLAG_OF[key]}, or use --fresh to start a new cluster there (its data is deleted) or another --data-dir`,
      );
    }
    return { ...recorded, agents: requested.agents ?? recorded.agents };
  }
  const runtime = requested.runtime ?? 'embedded';
  return { masters: 3, agents: 2, basePort: DEFAULT_BASE_PORT, ...defaultSettings(runtime, nftables), ...definedOnly(requested) };
}

function definedOnly(requested: RequestedSettings): RequestedSettings {
  return Object.fromEntries(Object.entries(requested).filter(([, value]) => value !== undefined)) as RequestedSettings;
}

export function checkSettings(settings: UpSettings): void {
  if (![1, 3, 5].includes(settings.masters)) throw new UpError(`--masters ${settings.masters}: a cluster has 3 or 5 masters (1 for a quick try)`);
  if (!Number.isInteger(settings.agents) || settings.agents < 0 || settings.agents > 20) throw new UpError(`--agents ${settings.agents}: between 0 and 20`);
  const highest = settings.basePort + (settings.masters - 1) * PORT_STRIDE + 1;
  if (!Number.isInteger(settings.basePort) || settings.basePort < 1024 || highest > 65_535) {
    throw new UpError(`--base-port ${settings.basePort}: the ${settings.masters} masters need ports ${settings.basePort} to ${highest} (from 1024 to 65535)`);
  }
  parseCidr('--service-cluster-ip-range', settings.serviceClusterIpRange);
  const pods = parseCidr('--pod-cidr', settings.podCidr);
  if (pods.base + settings.agents * pods.size > 2 ** 32) throw new UpError(`--pod-cidr ${settings.podCidr}: no room for ${settings.agents} ranges of its size after it`);
  nodePortRange(settings);
}

interface Cidr {
  readonly base: number;
  readonly prefixLength: number;
  readonly size: number;
}

function parseCidr(flag: string, text: string): Cidr {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const prefixLength = Number(match?.[5]);
  if (match === null || octets.some((octet) => octet > 255) || prefixLength < 8 || prefixLength > 30) throw new UpError(`${flag} ${text}: not an IPv4 CIDR between /8 and /30`);
  const base = octets.reduce((value, octet) => value * 256 + octet, 0);
  const size = 2 ** (32 - prefixLength);
  if (base % size !== 0) throw new UpError(`${flag} ${text}: host bits are set`);
  return { base, prefixLength, size };
}

function formatIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Node i's pod range (from 0): the i-th range of the first one's size after it. */
export function podCidrOf(settings: UpSettings, index: number): string {
  const first = parseCidr('--pod-cidr', settings.podCidr);
  return `${formatIp(first.base + index * first.size)}/${first.prefixLength}`;
}

export interface MasterEndpoint {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly clientUrl: string;
  readonly peerUrl: string;
}

export function masterEndpoints(settings: UpSettings): MasterEndpoint[] {
  return Array.from({ length: settings.masters }, (_, index) => {
    const clientPort = settings.basePort + index * PORT_STRIDE;
    const peerPort = clientPort + 1;
    return { name: `m${index + 1}`, clientPort, peerPort, clientUrl: `http://127.0.0.1:${clientPort}`, peerUrl: `http://127.0.0.1:${peerPort}` };
  });
}

export function proxyStatusPort(settings: UpSettings): number {
  return settings.basePort + PROXY_STATUS_OFFSET;
}

export function dnsPort(settings: UpSettings): number {
  return settings.basePort + DNS_OFFSET;
}

/** The node-port range: Kubernetes' 30000-32767, narrowed to its widest stretch that holds none of this cluster's own ports (NodePorts answer on 127.0.0.1 too). */
export function nodePortRange(settings: UpSettings): { low: number; high: number } {
  const own = [...masterEndpoints(settings).flatMap((master) => [master.clientPort, master.peerPort]), proxyStatusPort(settings), dnsPort(settings)]
    .filter((port) => port >= NODE_PORT_RANGE.low && port <= NODE_PORT_RANGE.high)
    .sort((a, b) => a - b);
  let best = { low: 0, high: -1 };
  let low = NODE_PORT_RANGE.low;
  for (const port of [...own, NODE_PORT_RANGE.high + 1]) {
    if (port - 1 - low > best.high - best.low) best = { low, high: port - 1 };
    low = Math.max(low, port + 1);
  }
  if (best.high - best.low + 1 < NODE_PORT_RANGE_MIN) throw new UpError(`--base-port ${settings.basePort} leaves too few node ports in ${NODE_PORT_RANGE.low}-${NODE_PORT_RANGE.high}; choose another`);
  return best;
}

// ------------------------------------------------------------ the client config

export function isWrittenByUp(text: string): boolean {
  return text.startsWith(CONFIG_MARKER);
}

export function clientConfigText(masters: readonly string[], dataDir: string): string {
  return [
    `${CONFIG_MARKER} for the cluster in ${dataDir}: every \`mast up\` replaces it.`,
    '# Delete these comment lines to keep the file as your own (mast up then writes elsewhere).',
    'masters:',
    ...masters.map((url) => `  - ${url}`),
    '',
  ].join('\n');
}

function writeAtomic(path: string, text: string): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, text, { mode: 0o644 });
  renameSync(temporary, path);
}

/** Writes the client config where mastctl looks by default, unless a file there is the user's own: then into the data dir. */
export function writeClientConfig(masters: readonly string[], dataDir: string, env: Readonly<Record<string, string | undefined>>): { path: string; isDefault: boolean; kept?: string } {
  const copy = join(dataDir, 'config');
  writeAtomic(copy, clientConfigText(masters, dataDir));
  const target = configFilePath({}, env);
  if (existsSync(target) && !isWrittenByUp(readFileSync(target, 'utf8'))) return { path: copy, isDefault: false, kept: target };
  mkdirSync(resolve(target, '..'), { recursive: true });
  writeAtomic(target, clientConfigText(masters, dataDir));
  return { path: target, isDefault: true };
}

// ------------------------------------------------------------ processes

interface Supervised {
  readonly name: string;
  readonly role: 'master' | 'agent';
  /** Arguments after `mast`, for the next start (masters: state decided at each start). */
  readonly args: () => string[];
  child: ChildProcess | undefined;
  exited: Promise<void>;
  startedAtMs: number;
  restartDelayMs: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/** A free TCP (and, when asked, UDP) port on host? */
async function portFree(host: string, port: number, udp: boolean): Promise<boolean> {
  const tcp = await new Promise<boolean>((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => done(true)));
  });
  if (!tcp || !udp) return tcp;
  return new Promise<boolean>((done) => {
    const socket = createSocket('udp4');
    socket.once('error', () => done(false));
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => done(true)));
  });
}

function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

type NodeView = KubeObject & { status?: { conditions?: Array<{ type: string; status: string; lastHeartbeatTime?: string }> } };

export interface UpSummary {
  readonly dataDir: string;
  readonly settings: UpSettings;
  readonly masters: ReadonlyArray<MasterEndpoint & { readonly pid: number | undefined }>;
  readonly leader: MasterEndpoint | undefined;
  readonly nodes: ReadonlyArray<{ readonly name: string; readonly pid: number | undefined; readonly podCidr: string; readonly proxy: boolean }>;
  readonly config: { readonly path: string; readonly isDefault: boolean; readonly kept?: string };
  readonly proxyStatusUrl: string;
  readonly dnsAddress: string;
  readonly clusterDns: string | undefined;
  readonly nodePorts: { readonly low: number; readonly high: number };
  readonly existing: boolean;
  readonly elapsedMs: number;
}

export class LocalUp {
  readonly dataDir: string;
  private settings: UpSettings | undefined;
  private readonly masters: Supervised[] = [];
  private readonly agents: Supervised[] = [];
  private readonly containerds: LocalContainerd[] = [];
  private readonly probes = new Map<string, EtcdConnection>();
  private client: ResourceClient | undefined;
  private leaderTimer: NodeJS.Timeout | undefined;
  private leaderName: string | undefined;
  private stopping = false;
  private readonly startedMs = performance.now();
  private nodeIp = '127.0.0.1';
  private lockHeld = false;

  constructor(private readonly options: UpOptions) {
    this.dataDir = resolve(options.dataDir);
  }

  private path(...parts: string[]): string {
    return join(this.dataDir, ...parts);
  }

  private say(line: string): void {
    this.options.say(line);
  }

  private progress(line: string): void {
    const seconds = ((performance.now() - this.startedMs) / 1000).toFixed(1);
    this.say(`[${seconds.padStart(5)}s] ${line}`);
  }

  private checkAborted(): void {
    if (this.stopping) throw new UpAborted('stopped while starting');
  }

  /** Polls until probe gives a value; stop() ends it early with UpAborted. */
  private async until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, logHint: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      this.checkAborted();
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (error) {
        lastError = error;
      }
      this.checkAborted();
      if (performance.now() > deadline) {
        const why = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
        throw new UpError(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}; see ${logHint}`);
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }

  // ---------------------------------------------------------- start

  async start(): Promise<UpSummary> {
    const { settings, existing } = await this.prepare();
    await this.startContainerds(settings);
    const leader = await this.startMasters(settings);
    const config = writeClientConfig(masterEndpoints(settings).map((master) => master.clientUrl), this.dataDir, this.options.env);
    await this.startAgents(settings);
    this.leaderTimer = setInterval(() => void this.watchLeader(), LEADER_POLL_INTERVAL_MS);
    const current = (await this.agreedLeader().catch(() => undefined)) ?? leader;
    this.leaderName = current.name;
    return {
      dataDir: this.dataDir,
      settings,
      masters: masterEndpoints(settings).map((master) => ({ ...master, pid: this.masters.find((each) => each.name === master.name)?.child?.pid })),
      leader: current,
      nodes: this.agents.map((agent, index) => ({ name: agent.name, pid: agent.child?.pid, podCidr: podCidrOf(settings, index), proxy: index === 0 })),
      config,
      proxyStatusUrl: `http://127.0.0.1:${proxyStatusPort(settings)}`,
      dnsAddress: `${this.nodeIp}:${dnsPort(settings)}`,
      clusterDns: settings.proxyMode === 'nftables' ? CLUSTER_DNS_CONTAINERD : undefined,
      nodePorts: nodePortRange(settings),
      existing,
      elapsedMs: performance.now() - this.startedMs,
    };
  }

  /** The settings, the lock, --fresh, what an earlier run left, free ports; then up.json. Everything that can refuse does so before anything is written or stopped. */
  private async prepare(): Promise<{ settings: UpSettings; existing: boolean }> {
    const fresh = this.options.fresh === true;
    this.checkDataDir();
    const recorded = fresh ? undefined : this.readRecorded();
    const nftables = (this.options.requested.runtime ?? recorded?.runtime) === 'containerd' ? await this.options.hooks.nftablesUsable() : { usable: false };
    const settings = resolveSettings(recorded, this.options.requested, nftables.usable, this.dataDir);
    checkSettings(settings);
    if (settings.runtime === 'containerd') this.prepareContainerd(settings, nftables);
    this.takeLock();
    if (fresh) await this.deleteData();
    this.settings = settings;
    const existing = recorded !== undefined;
    const plural = (count: number, word: string): string => `${count} ${word}${count === 1 ? '' : 's'}`;
    this.say(
      `mast up: ${existing ? 'starting the cluster' : 'making a new cluster'} in ${this.dataDir}: ${plural(settings.masters, 'master')}, ` +
        `${plural(settings.agents, 'node')}, ${settings.runtime} runtime, ${settings.proxyMode} Service proxy`,
    );
    await this.stopLeftovers();
    await this.checkPorts(settings);
    // Only now: a cluster that could not start records nothing.
    for (const dir of ['masters', 'agents', 'logs', 'run']) mkdirSync(this.path(dir), { recursive: true });
    writeAtomic(this.path('up.json'), `${JSON.stringify(settings, null, 2)}\n`);
    return { settings, existing };
  }

  /** Masters up, answering, agreeing on a leader, with the namespaces they make at startup. */
  private async startMasters(settings: UpSettings): Promise<MasterEndpoint> {
    this.checkAborted();
    const endpoints = masterEndpoints(settings);
    for (const master of endpoints) this.masters.push(this.supervise(master.name, 'master', () => this.masterArgs(settings, master)));
    this.progress(`masters started: ${this.masters.map((master) => `${master.name} (pid ${master.child?.pid})`).join(', ')}`);
    const logs = this.path('logs');
    await this.until('every master to answer', async () => {
      await Promise.all(endpoints.map((master) => this.probe(master.clientUrl).status(STATUS_TIMEOUT_MS)));
      return true;
    }, STARTUP_DEADLINE_MS, logs);
    this.progress(`masters up: ${endpoints.map((master) => master.name).join(', ')} answering`);
    const leader = await this.until('the masters to agree on a leader', () => this.agreedLeader(), STARTUP_DEADLINE_MS, logs);
    this.leaderName = leader.name;
    this.progress(`leader elected: ${leader.name} (${leader.clientUrl})`);
    const client = new ResourceClient({ endpoints: endpoints.map((master) => master.clientUrl), timeoutMs: 5000 });
    this.client = client;
    await this.until(`namespaces ${NAMESPACES.join(', ')}`, async () => {
      const names = new Set((await client.list('Namespace')).items.map((item) => item.metadata?.name));
      return NAMESPACES.every((name) => names.has(name)) ? true : undefined;
    }, STARTUP_DEADLINE_MS, logs);
    this.progress(`namespaces ready: ${NAMESPACES.join(', ')}`);
    return leader;
  }

  /** Agents up and their Nodes Ready. */
  private async startAgents(settings: UpSettings): Promise<void> {
    this.checkAborted();
    if (settings.agents === 0) return;
    const startedMs = Date.now();
    for (let index = 0; index < settings.agents; index++) this.agents.push(this.supervise(`node-${index + 1}`, 'agent', () => this.agentArgs(settings, index)));
    this.progress(`agents started: ${this.agents.map((agent) => `${agent.name} (pid ${agent.child?.pid})`).join(', ')}`);
    const client = this.client!;
    const ready = new Set<string>();
    await this.until(`${settings.agents} nodes to be Ready`, async () => {
      for (const agent of this.agents) {
        if (ready.has(agent.name)) continue;
        const node = (await client.get('Node', '', agent.name).catch(() => undefined)) as NodeView | undefined;
        const condition = node?.status?.conditions?.find((each) => each.type === 'Ready');
        // A Ready left from an earlier run does not count: it must have been posted since this agent started (times are in whole seconds).
        const posted = condition?.lastHeartbeatTime === undefined ? 0 : Date.parse(condition.lastHeartbeatTime);
        if (condition?.status === 'True' && posted >= Math.floor(startedMs / 1000) * 1000) {
          ready.add(agent.name);
          this.progress(`node ${agent.name} Ready`);
        }
      }
      return ready.size === this.agents.length ? true : undefined;
    }, NODE_READY_DEADLINE_MS, this.path('logs'));
    this.checkAborted();
  }

  /** One mast up per data dir: run/up.pid holds its pid. */
  private takeLock(): void {
    const lock = this.path('run', 'up.pid');
    if (existsSync(lock)) {
      const pid = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid) && (commandLine(pid) ?? '').includes(' up')) {
        throw new UpError(`mast up is already running on ${this.dataDir} (pid ${pid}): stop it with Ctrl-C there (or kill ${pid}), or use another --data-dir`);
      }
    }
    mkdirSync(this.path('run'), { recursive: true });
    writeFileSync(lock, `${process.pid}\n`);
    this.lockHeld = true;
  }

  private checkDataDir(): void {
    if (!existsSync(this.dataDir) || existsSync(this.path('up.json'))) return;
    const entries = readdirSync(this.dataDir).filter((entry) => entry !== 'run');
    if (entries.length > 0) throw new UpError(`${this.dataDir} is not empty and is not a mast up data dir (no up.json): choose another --data-dir`);
  }

  private readRecorded(): UpSettings | undefined {
    const file = this.path('up.json');
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as UpSettings;
    } catch (error) {
      throw new UpError(`${file} is not readable (${error instanceof Error ? error.message : String(error)}): fix it or use --fresh`);
    }
  }

  private prepareContainerd(settings: UpSettings, nftables: { usable: boolean; reason?: string }): void {
    const why = containerdUnavailable();
    if (why !== '') throw new UpError(`--runtime containerd: ${why} (it needs root and the packages ops/containerd/install.sh installs)`);
    if (settings.proxyMode === 'nftables' && !nftables.usable) throw new UpError(`this cluster runs the nftables proxy, which cannot run here: ${nftables.reason ?? 'unknown'}`);
    this.nodeIp = this.options.hooks.hostIp();
    if (this.nodeIp === '' || this.nodeIp === '127.0.0.1') throw new UpError('--runtime containerd: the host has no non-loopback IPv4 address for containers to reach the node at');
    if (settings.proxyMode === 'userspace') this.say(`note: the nftables proxy cannot run here (${nftables.reason ?? 'unknown'}): cluster IPs answer on this host only, not in pods`);
  }

  /** --fresh: stop whatever the data dir's cluster left running, then delete it. */
  private async deleteData(): Promise<void> {
    if (!existsSync(this.path('up.json'))) return;
    this.say(`mast up: --fresh: deleting ${this.dataDir}`);
    await this.stopLeftovers();
    let recorded: UpSettings | undefined;
    try {
      recorded = this.readRecorded();
    } catch {
      // Unreadable: it goes too.
    }
    const agentsDir = this.path('agents');
    if (existsSync(agentsDir)) {
      for (const node of readdirSync(agentsDir)) {
        if (existsSync(join(agentsDir, node, 'cri'))) await this.options.hooks.stopEmbeddedPods(join(agentsDir, node), recorded?.podCidr ?? '127.10.0.0/16');
      }
    }
    const containerdDir = this.path('containerd');
    if (existsSync(containerdDir) && containerdUnavailable() === '') {
      for (const node of readdirSync(containerdDir)) {
        const containerd = await LocalContainerd.start(join(containerdDir, node), { bridge: bridgeName(recorded?.basePort ?? DEFAULT_BASE_PORT, node), subnet: recorded?.podCidr ?? '10.89.1.0/24' });
        await containerd.stop();
      }
    }
    for (const entry of readdirSync(this.dataDir)) if (entry !== 'run') rmSync(this.path(entry), { recursive: true, force: true });
  }

  /** Masters and agents an earlier mast up left running (it was killed): stopped, so their ports and roots are free; their pods are adopted. */
  private async stopLeftovers(): Promise<void> {
    const run = this.path('run');
    if (!existsSync(run)) return;
    const leftovers: Array<{ name: string; pid: number }> = [];
    for (const file of readdirSync(run)) {
      if (!file.endsWith('.pid') || file === 'up.pid') continue;
      const pid = Number(readFileSync(join(run, file), 'utf8').trim());
      const command = Number.isInteger(pid) && pid > 0 ? commandLine(pid) : undefined;
      // Only a mast process of this data dir: a stale file's pid may be anyone's now.
      if (command !== undefined && command.includes(this.dataDir) && command.includes(MAST_BINARY)) leftovers.push({ name: file.slice(0, -'.pid'.length), pid });
      rmSync(join(run, file), { force: true });
    }
    if (leftovers.length === 0) return;
    this.say(`stopping what an earlier mast up left running: ${leftovers.map((each) => `${each.name} (pid ${each.pid})`).join(', ')}`);
    // All at once: agents whose masters are gone would otherwise wait for them.
    for (const { pid } of leftovers) signal(pid, 'SIGTERM');
    const deadline = performance.now() + AGENT_STOP_TIMEOUT_MS;
    while (leftovers.some(({ pid }) => alive(pid)) && performance.now() < deadline) await sleep(POLL_INTERVAL_MS);
    for (const { pid } of leftovers) signal(pid, 'SIGKILL');
  }

  private async checkPorts(settings: UpSettings): Promise<void> {
    const wanted: Array<{ host: string; port: number; what: string; udp: boolean }> = [
      ...masterEndpoints(settings).flatMap((master) => [
        { host: '127.0.0.1', port: master.clientPort, what: `master ${master.name}'s client port`, udp: false },
        { host: '127.0.0.1', port: master.peerPort, what: `master ${master.name}'s peer port`, udp: false },
      ]),
      ...(settings.agents === 0
        ? []
        : [
            { host: '127.0.0.1', port: proxyStatusPort(settings), what: 'the Service proxy status port', udp: false },
            { host: this.nodeIp, port: dnsPort(settings), what: 'the cluster DNS port', udp: true },
          ]),
    ];
    for (const { host, port, what, udp } of wanted) {
      if (!(await portFree(host, port, udp))) {
        throw new UpError(`${host}:${port} (${what}) is in use: is another mast up (or etcd) running? Stop it, or choose other ports with --base-port on a new --data-dir`);
      }
    }
  }

  private async startContainerds(settings: UpSettings): Promise<void> {
    if (settings.runtime !== 'containerd') return;
    for (let index = 0; index < settings.agents; index++) {
      this.checkAborted();
      const node = `node-${index + 1}`;
      const containerd = await LocalContainerd.start(this.path('containerd', node), { bridge: bridgeName(settings.basePort, node), subnet: podCidrOf(settings, index) });
      if (this.stopping) {
        // stop() may have passed the containerd step while this one started.
        await containerd.stop();
        this.checkAborted();
      }
      this.containerds.push(containerd);
      this.progress(`containerd for ${node} up (${containerd.endpoint}, bridge ${bridgeName(settings.basePort, node)}, pods in ${podCidrOf(settings, index)})`);
    }
  }

  private masterArgs(settings: UpSettings, master: MasterEndpoint): string[] {
    const dataDir = this.path('masters', master.name);
    const initialCluster = masterEndpoints(settings).map((each) => `${each.name}=${each.peerUrl}`).join(',');
    // A member with data is one of the cluster already (its membership is in its log); one without founds it with the others.
    const state = existsSync(dataDir) && readdirSync(dataDir).length > 0 ? 'existing' : 'new';
    const range = nodePortRange(settings);
    return [
      'master',
      `--name=${master.name}`,
      `--data-dir=${dataDir}`,
      `--listen-peer-urls=${master.peerUrl}`,
      `--initial-advertise-peer-urls=${master.peerUrl}`,
      `--listen-client-urls=${master.clientUrl}`,
      `--advertise-client-urls=${master.clientUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      '--insecure',
      `--service-cluster-ip-range=${settings.serviceClusterIpRange}`,
      `--service-node-port-range=${range.low}-${range.high}`,
      `--load-balancer-ip-pool=${settings.loadBalancerIpPool}`,
    ];
  }

  private agentArgs(settings: UpSettings, index: number): string[] {
    const node = `node-${index + 1}`;
    const containerd = this.containerds[index];
    const first = index === 0;
    const clusterDns = settings.proxyMode === 'nftables' ? ['--cluster-dns', CLUSTER_DNS_CONTAINERD] : [];
    return [
      'agent',
      '--server', masterEndpoints(settings).map((master) => master.clientUrl).join(','),
      '--node-name', node,
      '--root-dir', this.path('agents', node),
      '--node-ip', this.nodeIp,
      '--listen-address', `${this.nodeIp}:0`,
      '--pod-cidr', podCidrOf(settings, index),
      ...(containerd === undefined ? [] : ['--container-runtime-endpoint', containerd.endpoint]),
      // One proxy per host: several would contend for the same addresses.
      ...(first
        ? [
            '--proxy-mode', settings.proxyMode,
            '--metrics-bind-address', `127.0.0.1:${proxyStatusPort(settings)}`,
            '--dns-bind-address', `${this.nodeIp}:${dnsPort(settings)}`,
            ...(settings.proxyMode === 'nftables' ? ['--nftables-table', nftablesTable(settings)] : []),
          ]
        : ['--proxy-mode', 'none']),
      ...clusterDns,
    ];
  }

  private supervise(name: string, role: Supervised['role'], args: () => string[]): Supervised {
    const entry: Supervised = { name, role, args, child: undefined, exited: Promise.resolve(), startedAtMs: 0, restartDelayMs: RESTART_DELAY_MS, restartTimer: undefined };
    this.spawn(entry);
    return entry;
  }

  private spawn(entry: Supervised): void {
    const logFile = this.path('logs', `${entry.name}.log`);
    // The log file itself, not a pipe: a process outlives a mast up that is killed without writing into a broken pipe.
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      // Its own process group: a Ctrl-C in the terminal reaches mast up alone, which stops everything in order.
      child = spawn(process.execPath, [MAST_BINARY, ...entry.args()], { stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    entry.child = child;
    entry.startedAtMs = performance.now();
    entry.exited = new Promise((resolveExit) => child.once('exit', (code, signal) => {
      if (entry.child === child) entry.child = undefined;
      rmSync(this.path('run', `${entry.name}.pid`), { force: true });
      resolveExit();
      this.exitedUnexpectedly(entry, code, signal);
    }));
    child.once('error', (error) => this.say(`${entry.role} ${entry.name}: ${error.message}`));
    if (child.pid !== undefined) writeFileSync(this.path('run', `${entry.name}.pid`), `${child.pid}\n`);
  }

  private exitedUnexpectedly(entry: Supervised, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping) return;
    const ranMs = performance.now() - entry.startedAtMs;
    if (ranMs > RESTART_RESET_AFTER_MS) entry.restartDelayMs = RESTART_DELAY_MS;
    const how = signal === null ? `with code ${code}` : `(killed by ${signal})`;
    const running = entry.role === 'master' ? ` (${this.masters.filter((master) => master.child !== undefined).length} of ${this.masters.length} masters running)` : ' (its pods keep running)';
    this.progress(`${entry.role} ${entry.name} exited ${how}${running}; restarting it in ${Math.round(entry.restartDelayMs / 1000)} s (log: ${this.path('logs', `${entry.name}.log`)})`);
    entry.restartTimer = setTimeout(() => {
      entry.restartTimer = undefined;
      if (this.stopping) return;
      this.spawn(entry);
      this.progress(`${entry.role} ${entry.name} restarted (pid ${entry.child?.pid})`);
    }, entry.restartDelayMs);
    entry.restartDelayMs = Math.min(entry.restartDelayMs * 2, RESTART_DELAY_MAX_MS);
  }

  // ---------------------------------------------------------- the leader

  private probe(url: string): EtcdConnection {
    let connection = this.probes.get(url);
    if (connection === undefined) {
      connection = new EtcdConnection(url);
      this.probes.set(url, connection);
    }
    return connection;
  }

  /** The leader every running master answering names, once they agree on one they can see. */
  async agreedLeader(): Promise<MasterEndpoint | undefined> {
    if (this.settings === undefined) return undefined;
    const endpoints = masterEndpoints(this.settings).filter((master) => this.masters.find((each) => each.name === master.name)?.child !== undefined);
    const statuses = await Promise.all(endpoints.map((master) => this.probe(master.clientUrl).status(STATUS_TIMEOUT_MS).then((status) => ({ master, status }), () => undefined)));
    const answered = statuses.filter((each) => each !== undefined);
    const leaders = new Set(answered.map((each) => each.status.leader));
    if (answered.length === 0 || leaders.size !== 1 || leaders.has('0')) return undefined;
    return answered.find((each) => each.status.header?.memberId === each.status.leader)?.master;
  }

  private async watchLeader(): Promise<void> {
    if (this.stopping) return;
    const leader = await this.agreedLeader().catch(() => undefined);
    if (this.stopping || leader === undefined || leader.name === this.leaderName) return;
    const was = this.leaderName;
    this.leaderName = leader.name;
    const pid = this.masters.find((master) => master.name === leader.name)?.child?.pid;
    this.progress(`leader: ${leader.name} (${leader.clientUrl}, pid ${pid})${was === undefined ? '' : `, was ${was}`}`);
  }

  // ---------------------------------------------------------- stop

  /** Stops everything in reverse order: agents, their pods, containerd, masters. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.leaderTimer);
    for (const entry of [...this.masters, ...this.agents]) clearTimeout(entry.restartTimer);
    const settings = this.settings;
    if (this.agents.length > 0) {
      this.say(`stopping the agents: ${this.agents.map((agent) => agent.name).join(', ')}`);
      await Promise.all(this.agents.map((agent) => this.stopProcess(agent, AGENT_STOP_TIMEOUT_MS)));
    }
    if (settings?.runtime === 'embedded') {
      for (const agent of this.agents) {
        const root = this.path('agents', agent.name);
        if (!existsSync(join(root, 'cri'))) continue;
        this.say(`stopping the pods of ${agent.name}`);
        await this.options.hooks.stopEmbeddedPods(root, podCidrOf(settings, this.agents.indexOf(agent))).catch((error: unknown) => this.say(`  could not stop the pods of ${agent.name}: ${error instanceof Error ? error.message : String(error)}`));
      }
    }
    if (this.containerds.length > 0) {
      this.say(`stopping containerd and its containers (${this.containerds.length})`);
      for (const containerd of this.containerds) await containerd.stop().catch((error: unknown) => this.say(`  could not stop ${containerd.stateDir}: ${error instanceof Error ? error.message : String(error)}`));
      if (settings?.proxyMode === 'nftables') await deleteNftablesTable(nftablesTable(settings));
    }
    this.client?.close();
    if (this.masters.length > 0) {
      this.say(`stopping the masters: ${this.masters.map((master) => master.name).join(', ')}`);
      await Promise.all(this.masters.map((master) => this.stopProcess(master, MASTER_STOP_TIMEOUT_MS)));
    }
    for (const connection of this.probes.values()) connection.close();
    this.probes.clear();
    this.releaseLock();
  }

  private async stopProcess(entry: Supervised, timeoutMs: number): Promise<void> {
    const child = entry.child;
    if (child === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await entry.exited;
    clearTimeout(timer);
  }

  /** A second Ctrl-C: SIGKILL every process at once (pods on the embedded runtime keep running; the next mast up adopts them). */
  kill(): number {
    this.stopping = true;
    let killed = 0;
    for (const entry of [...this.agents, ...this.masters]) {
      clearTimeout(entry.restartTimer);
      if (entry.child?.kill('SIGKILL') === true) killed++;
    }
    this.releaseLock();
    return killed;
  }

  private releaseLock(): void {
    if (!this.lockHeld) return;
    this.lockHeld = false;
    rmSync(this.path('run', 'up.pid'), { force: true });
  }
}

/** A bridge per node, named by cluster and node (at most 15 characters). */
function bridgeName(basePort: number, node: string): string {
  return `mup${basePort}-${node.replace(/^node-/, '')}`.slice(0, 15);
}

function nftablesTable(settings: UpSettings): string {
  return `mast_up_${settings.basePort}`;
}

/** The proxy leaves its rules when it stops (as kube-proxy does); mast up stops the whole node, so it removes them. */
async function deleteNftablesTable(table: string): Promise<void> {
  await new Promise<void>((done) => {
    const child = spawn('nft', ['delete', 'table', 'ip', table], { stdio: 'ignore' });
    child.once('error', () => done());
    child.once('exit', () => done());
  });
}
