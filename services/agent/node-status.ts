// The agent's Node, as the kubelet keeps it (pkg/kubelet/kubelet_node_status.go,
// pkg/kubelet/nodestatus): registration (labels, capacity, addresses,
// system info), the Lease heartbeat every 10 s, and the status with its
// conditions — Ready from the runtime's readiness, MemoryPressure,
// DiskPressure and PIDPressure from the node's readings against
// eviction-style thresholds — posted every nodeStatusUpdateFrequency and at
// once when a condition changes. A condition keeps its lastTransitionTime
// while its status stays; a Ready the node lifecycle controller set to
// Unknown becomes True again (a transition) with the next post, and that
// controller then removes its taints.
//
// Thresholds, as the kubelet's evictionHard defaults: memory.available
// < 100Mi, nodefs.available < 10%; the kubelet has no default for PIDs,
// here fewer than 10% of the node's task limit free is pressure. Pressure
// clears as soon as the reading does (the kubelet waits out a 5 minute
// transition period first). Allocatable is capacity minus `reserved`
// (the kubelet also takes the hard eviction thresholds off; mast does not).

import { readFileSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import { availableParallelism, networkInterfaces, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type { Node, NodeAddress, NodeStatus, NodeSystemInfo } from '../../proto/gen/resources/v1/core.js';
import type { Condition } from '../../proto/gen/resources/v1/meta.js';
import { parseQuantity } from '../client/quantity.js';
import { statusCodeOf, type KubeObject } from '../client/resources.js';
import { createOrGetNode, NODE_LEASE_RENEW_INTERVAL_MS, renewNodeLease, type NodeClient } from './node-lease.js';

/** The node's readings; an unknown one (undefined) raises no pressure and leaves its capacity out. */
export interface NodeStats {
  readonly memoryTotalBytes?: number;
  readonly memoryAvailableBytes?: number;
  /** The filesystem of the agent's root directory. */
  readonly fsCapacityBytes?: number;
  readonly fsAvailableBytes?: number;
  /** min(kernel.pid_max, kernel.threads-max). */
  readonly pidMax?: number;
  /** Tasks that exist now (/proc/loadavg). */
  readonly pidCount?: number;
}

export interface RuntimeReadiness {
  readonly ready: boolean;
  /** Why not, when not ready (e.g. "container runtime network not ready: NetworkReady=false reason:... message:..."). */
  readonly message: string;
}

export interface EvictionThresholds {
  readonly memoryAvailableBytes: number;
  /** Free space of the root filesystem under which it is under pressure, in percent of its size. */
  readonly nodefsAvailablePercent: number;
  /** Free task slots under which PIDs are under pressure, in percent of the limit. */
  readonly pidAvailablePercent: number;
}

/** memory.available<100Mi, nodefs.available<10%, and (mast's) pid.available<10%. */
export const DEFAULT_EVICTION_HARD: EvictionThresholds = { memoryAvailableBytes: 100 * 2 ** 20, nodefsAvailablePercent: 10, pidAvailablePercent: 10 };
export const DEFAULT_MAX_PODS = 110;
export const DEFAULT_NODE_STATUS_UPDATE_FREQUENCY_MS = 10_000;
/** How often readiness and pressure are read, to post a changed condition at once. */
export const DEFAULT_CONDITION_CHECK_INTERVAL_MS = 2_000;
/** Tries of one status post when someone else wrote the Node in between (the kubelet's nodeStatusUpdateRetry). */
const STATUS_UPDATE_TRIES = 5;
/** Registration retries: the kubelet's backoff, 100 ms doubling to 7 s. */
const REGISTER_BACKOFF_INITIAL_MS = 100;
const REGISTER_BACKOFF_MAX_MS = 7_000;

export interface NodeStatusReporterOptions {
  readonly client: NodeClient;
  readonly nodeName: string;
  /** The agent's root directory: its filesystem is the node's ephemeral storage. */
  readonly rootDir: string;
  /** "<runtimeName>://<version>", from the runtime's Version. */
  readonly runtimeVersion: string;
  readonly runtimeReady: () => Promise<RuntimeReadiness>;
  /** Labels besides kubernetes.io/{hostname,os,arch} and their beta.kubernetes.io twins. */
  readonly labels?: Readonly<Record<string, string>>;
  /** cpu capacity (a quantity: "4", "3500m"); default the machine's available parallelism. */
  readonly cpu?: string;
  readonly maxPods?: number;
  /** Taken off capacity for allocatable (cpu, memory, ephemeral-storage, pods). */
  readonly reserved?: Readonly<Record<string, string>>;
  /** The InternalIP ("" or absent: the first non-internal IPv4 address, else 127.0.0.1). */
  readonly internalIP?: string;
  /** The Hostname address and kubernetes.io/hostname label (default the node name). */
  readonly hostname?: string;
  /** Set as spec.podCIDR (and podCIDRs) when the Node has none. */
  readonly podCIDR?: string;
  /** The agent API's port (status.daemonEndpoints.kubeletEndpoint.Port), where masters relay logs and exec. */
  readonly daemonPort?: number;
  readonly nodeStatusUpdateFrequencyMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly conditionCheckIntervalMs?: number;
  readonly evictionHard?: Partial<EvictionThresholds>;
  readonly readNodeStats?: () => Promise<NodeStats>;
  /** Overrides of the system info read from the host (tests). */
  readonly systemInfo?: Partial<NodeSystemInfo>;
  readonly now?: () => Date;
  readonly log?: (line: string) => void;
}

// ------------------------------------------------------------ readings

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A /proc/meminfo field in bytes (undefined when absent). */
export function meminfoBytes(text: string | undefined, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s*kB`, 'm').exec(text ?? '');
  return match === null ? undefined : Number(match[1]) * 1024;
}

/** statfs of the path, or of its nearest existing ancestor. */
async function statfsNearest(path: string): Promise<Awaited<ReturnType<typeof statfs>> | undefined> {
  for (let current = path; ; current = dirname(current)) {
    try {
      return await statfs(current);
    } catch (error) {
      if (dirname(current) === current || (error as { code?: unknown }).code !== 'ENOENT') return undefined;
    }
  }
}

/** The host's readings: /proc/meminfo, statfs of the root directory, the task limit and count (the kubelet's pidlimit stats). */
export async function readHostNodeStats(rootDir: string): Promise<NodeStats> {
  const meminfo = await readOptional('/proc/meminfo');
  const fs = await statfsNearest(rootDir);
  const limits = (await Promise.all(['/proc/sys/kernel/pid_max', '/proc/sys/kernel/threads-max'].map(readOptional))).map((text) => Number.parseInt(text ?? '', 10)).filter((value) => Number.isFinite(value));
  const tasks = /^\S+\s+\S+\s+\S+\s+\d+\/(\d+)/.exec((await readOptional('/proc/loadavg')) ?? '');
  return {
    memoryTotalBytes: meminfoBytes(meminfo, 'MemTotal'),
    memoryAvailableBytes: meminfoBytes(meminfo, 'MemAvailable'),
    fsCapacityBytes: fs === undefined ? undefined : Number(fs.blocks) * Number(fs.bsize),
    fsAvailableBytes: fs === undefined ? undefined : Number(fs.bavail) * Number(fs.bsize),
    pidMax: limits.length === 0 ? undefined : Math.min(...limits),
    pidCount: tasks === null ? undefined : Number(tasks[1]),
  };
}

function readFirst(paths: readonly string[]): string {
  for (const path of paths) {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      // the next one
    }
  }
  return '';
}

/** The os-release PRETTY_NAME (unquoted). */
export function prettyName(osRelease: string): string {
  const match = /^PRETTY_NAME=(.*)$/m.exec(osRelease);
  if (match === null) return '';
  const value = (match[1] ?? '').trim();
  return /^(["']).*\1$/.test(value) ? value.slice(1, -1) : value;
}

/** Go's GOARCH for Node's process.arch. */
export function goArch(arch: string = process.arch): string {
  const names: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle' };
  return names[arch] ?? arch;
}

let mastVersion: string | undefined;

/** mast's version, from the package.json above this file (unknown when none is found). */
export function agentVersion(): string {
  if (mastVersion !== undefined) return mastVersion;
  mastVersion = 'unknown';
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++, dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'mast' && typeof manifest.version === 'string') {
        mastVersion = manifest.version;
        break;
      }
    } catch {
      // not here
    }
  }
  return mastVersion;
}

function hostSystemInfo(runtimeVersion: string): NodeSystemInfo {
  return {
    machineID: readFirst(['/etc/machine-id', '/var/lib/dbus/machine-id']),
    systemUUID: readFirst(['/sys/class/dmi/id/product_uuid']),
    bootID: readFirst(['/proc/sys/kernel/random/boot_id']),
    kernelVersion: release(),
    osImage: prettyName(readFirst(['/etc/os-release', '/usr/lib/os-release'])),
    containerRuntimeVersion: runtimeVersion,
    kubeletVersion: `mast/${agentVersion()}`,
    operatingSystem: process.platform,
    architecture: goArch(),
  };
}

/** The first non-internal IPv4 address of the host, else 127.0.0.1. */
export function defaultInternalIP(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return '127.0.0.1';
}

// ------------------------------------------------------------ quantities

const BINARY_SUFFIXES: ReadonlyArray<readonly [string, number]> = [
  ['Ei', 60],
  ['Pi', 50],
  ['Ti', 40],
  ['Gi', 30],
  ['Mi', 20],
  ['Ki', 10],
];

/** Bytes as Kubernetes prints a BinarySI quantity: the largest binary suffix that divides it ("16Gi", "16303936Ki", "1000"). */
export function formatBytes(bytes: number): string {
  const whole = Math.max(0, Math.trunc(bytes));
  if (whole === 0) return '0';
  for (const [suffix, power] of BINARY_SUFFIXES) {
    const unit = 2 ** power;
    if (whole % unit === 0) return `${whole / unit}${suffix}`;
  }
  return String(whole);
}

/** Millicores as a cpu quantity ("4", "3500m"). */
export function formatMilliCPU(milli: number): string {
  const whole = Math.max(0, Math.trunc(milli));
  return whole % 1000 === 0 ? String(whole / 1000) : `${whole}m`;
}

/** Allocatable: capacity minus what is reserved, per resource, never below zero. */
export function allocatableOf(capacity: Readonly<Record<string, string>>, reserved: Readonly<Record<string, string>> = {}): Record<string, string> {
  const allocatable: Record<string, string> = {};
  for (const [resource, amount] of Object.entries(capacity)) {
    const held = reserved[resource];
    if (held === undefined) {
      allocatable[resource] = amount;
    } else if (resource === 'cpu') {
      allocatable[resource] = formatMilliCPU((parseQuantity(amount, 'milli') ?? 0) - (parseQuantity(held, 'milli') ?? 0));
    } else if (resource === 'pods') {
      allocatable[resource] = String(Math.max(0, (parseQuantity(amount) ?? 0) - (parseQuantity(held) ?? 0)));
    } else {
      allocatable[resource] = formatBytes((parseQuantity(amount) ?? 0) - (parseQuantity(held) ?? 0));
    }
  }
  return allocatable;
}

// ------------------------------------------------------------ conditions

/** A condition as observed now (no times yet). */
export interface ObservedCondition {
  readonly type: 'Ready' | 'MemoryPressure' | 'DiskPressure' | 'PIDPressure';
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
}

const REQUIRED_CAPACITY = ['cpu', 'memory', 'pods'];

/** The four conditions from the runtime's readiness, the readings and the capacity (in the kubelet's order). */
export function observeConditions(runtime: RuntimeReadiness, stats: NodeStats, capacity: Readonly<Record<string, string>>, thresholds: EvictionThresholds): ObservedCondition[] {
  const memoryPressure = stats.memoryAvailableBytes !== undefined && stats.memoryAvailableBytes < thresholds.memoryAvailableBytes;
  const diskPressure = stats.fsAvailableBytes !== undefined && stats.fsCapacityBytes !== undefined && stats.fsCapacityBytes > 0 && (stats.fsAvailableBytes * 100) / stats.fsCapacityBytes < thresholds.nodefsAvailablePercent;
  const pidPressure = stats.pidMax !== undefined && stats.pidCount !== undefined && stats.pidMax > 0 && ((stats.pidMax - stats.pidCount) * 100) / stats.pidMax < thresholds.pidAvailablePercent;
  const problems: string[] = [];
  if (!runtime.ready) problems.push(runtime.message === '' ? 'container runtime is not ready' : runtime.message);
  const missing = REQUIRED_CAPACITY.filter((resource) => capacity[resource] === undefined);
  if (missing.length > 0) problems.push(`missing node capacity for resources: ${missing.join(', ')}`);
  return [
    memoryPressure
      ? { type: 'MemoryPressure', status: 'True', reason: 'KubeletHasInsufficientMemory', message: 'kubelet has insufficient memory available' }
      : { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available' },
    diskPressure
      ? { type: 'DiskPressure', status: 'True', reason: 'KubeletHasDiskPressure', message: 'kubelet has disk pressure' }
      : { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure' },
    pidPressure
      ? { type: 'PIDPressure', status: 'True', reason: 'KubeletHasInsufficientPID', message: 'kubelet has insufficient PID available' }
      : { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', message: 'kubelet has sufficient PID available' },
    problems.length === 0
      ? { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }
      : { type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: problems.join(', ') },
  ];
}

/**
 * The Node's conditions after this observation: each observed one
 * replaces its type (heartbeat now; lastTransitionTime kept while the
 * status is what the Node had, now otherwise — so Unknown → True is a
 * transition), in place; the others (someone else's) stay as they are.
 */
export function mergeConditions(existing: readonly Condition[], observed: readonly ObservedCondition[], now: string): Condition[] {
  const merged: Condition[] = existing.map((condition) => ({ ...condition }));
  for (const condition of observed) {
    const at = merged.findIndex((candidate) => candidate.type === condition.type);
    const previous = at < 0 ? undefined : merged[at];
    const lastTransitionTime = previous !== undefined && previous.status === condition.status && previous.lastTransitionTime !== undefined ? previous.lastTransitionTime : now;
    const next: Condition = { ...condition, lastHeartbeatTime: now, lastTransitionTime };
    if (at < 0) merged.push(next);
    else merged[at] = next;
  }
  return merged;
}

// ------------------------------------------------------------ the reporter

interface Observation {
  readonly conditions: ObservedCondition[];
  readonly capacity: Record<string, string>;
}

export class NodeStatusReporter {
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private nodeUid = '';
  private systemInfo: NodeSystemInfo | undefined;
  /** Condition statuses last posted, by type: a change posts at once. */
  private readonly posted = new Map<string, string>();
  private posting: Promise<void> | undefined;
  private postAgain = false;

  constructor(private readonly options: NodeStatusReporterOptions) {}

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private log(line: string): void {
    this.options.log?.(`node status ${this.options.nodeName}: ${line}`);
  }

  private get thresholds(): EvictionThresholds {
    return { ...DEFAULT_EVICTION_HARD, ...this.options.evictionHard };
  }

  /** Register (retrying until it works or stop()), renew the Lease, post the first status, then keep all three up until stop(). */
  async start(): Promise<void> {
    let delayMs = REGISTER_BACKOFF_INITIAL_MS;
    for (;;) {
      try {
        await this.register();
        break;
      } catch (error) {
        if (this.stopped) throw error;
        this.log(`registration failed (retrying in ${delayMs} ms): ${errorText(error)}`);
        await new Promise((done) => setTimeout(done, delayMs));
        delayMs = Math.min(REGISTER_BACKOFF_MAX_MS, delayMs * 2);
      }
    }
    if (this.stopped) return;
    await this.heartbeat();
    await this.syncStatus();
    if (this.stopped) return;
    this.timers.push(
      setInterval(() => void this.heartbeat(), this.options.heartbeatIntervalMs ?? NODE_LEASE_RENEW_INTERVAL_MS),
      setInterval(() => void this.syncStatus(), this.options.nodeStatusUpdateFrequencyMs ?? DEFAULT_NODE_STATUS_UPDATE_FREQUENCY_MS),
      setInterval(() => void this.checkConditions(), this.options.conditionCheckIntervalMs ?? DEFAULT_CONDITION_CHECK_INTERVAL_MS),
    );
  }

  /** Stop the timers (the Node stays; the node lifecycle controller notices the silence). */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }

  /** The default labels and the user's, as the Node should carry them. */
  nodeLabels(): Record<string, string> {
    const os = this.options.systemInfo?.operatingSystem ?? process.platform;
    const arch = this.options.systemInfo?.architecture ?? goArch();
    return {
      'kubernetes.io/hostname': (this.options.hostname ?? this.options.nodeName).toLowerCase(),
      'kubernetes.io/os': os,
      'kubernetes.io/arch': arch,
      'beta.kubernetes.io/os': os,
      'beta.kubernetes.io/arch': arch,
      ...this.options.labels,
    };
  }

  /** Create the Node, or bring an existing one's labels (and empty podCIDR) up to date. */
  async register(): Promise<void> {
    const { client, nodeName, podCIDR } = this.options;
    const labels = this.nodeLabels();
    const spec = podCIDR === undefined || podCIDR === '' ? {} : { podCIDR, podCIDRs: [podCIDR] };
    const { node, created } = await createOrGetNode(client, { apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName, labels }, spec });
    this.nodeUid = typeof node.metadata?.uid === 'string' ? node.metadata.uid : '';
    if (created) {
      this.log('registered');
      return;
    }
    const current = node as KubeObject & Node;
    const labelsChanged = Object.entries(labels).some(([key, value]) => current.metadata?.labels?.[key] !== value);
    const cidrMissing = spec.podCIDR !== undefined && (current.spec?.podCIDR ?? '') === '';
    if (current.spec?.podCIDR !== undefined && current.spec.podCIDR !== '' && spec.podCIDR !== undefined && current.spec.podCIDR !== spec.podCIDR) {
      this.log(`keeps spec.podCIDR ${current.spec.podCIDR} (the agent was given ${spec.podCIDR})`);
    }
    if (!labelsChanged && !cidrMissing) return;
    await client.update('Node', { ...node, metadata: { ...node.metadata, labels: { ...current.metadata?.labels, ...labels } }, spec: { ...current.spec, ...(cidrMissing ? spec : {}) } });
    this.log('was registered before: labels updated');
  }

  /** Renew the Lease (errors are logged; the next beat tries again). */
  async heartbeat(): Promise<void> {
    if (this.stopped) return;
    try {
      await renewNodeLease(this.options.client, this.options.nodeName, this.now(), this.nodeUid === '' ? undefined : { uid: this.nodeUid });
    } catch (error) {
      this.log(`lease renewal failed: ${errorText(error)}`);
    }
  }

  private async observe(): Promise<Observation> {
    let runtime: RuntimeReadiness;
    try {
      runtime = await this.options.runtimeReady();
    } catch (error) {
      runtime = { ready: false, message: `container runtime is down: ${errorText(error)}` };
    }
    let stats: NodeStats;
    try {
      stats = await (this.options.readNodeStats ?? (() => readHostNodeStats(this.options.rootDir)))();
    } catch (error) {
      this.log(`reading node stats failed: ${errorText(error)}`);
      stats = {};
    }
    const capacity = this.capacity(stats);
    return { conditions: observeConditions(runtime, stats, capacity, this.thresholds), capacity };
  }

  private capacity(stats: NodeStats): Record<string, string> {
    const capacity: Record<string, string> = { cpu: this.options.cpu ?? String(availableParallelism()) };
    if (stats.fsCapacityBytes !== undefined) capacity['ephemeral-storage'] = formatBytes(stats.fsCapacityBytes);
    if (stats.memoryTotalBytes !== undefined) capacity.memory = formatBytes(stats.memoryTotalBytes);
    capacity.pods = String(this.options.maxPods ?? DEFAULT_MAX_PODS);
    return capacity;
  }

  private addresses(): NodeAddress[] {
    const internalIP = this.options.internalIP !== undefined && this.options.internalIP !== '' ? this.options.internalIP : defaultInternalIP();
    return [
      { type: 'InternalIP', address: internalIP },
      { type: 'Hostname', address: this.options.hostname ?? this.options.nodeName },
    ];
  }

  /** The status to post over the Node as it is now. */
  statusFor(node: Node, observation: Observation, now: Date): NodeStatus {
    this.systemInfo ??= { ...hostSystemInfo(this.options.runtimeVersion), ...this.options.systemInfo };
    const status: NodeStatus = {
      ...node.status,
      capacity: observation.capacity,
      allocatable: allocatableOf(observation.capacity, this.options.reserved),
      conditions: mergeConditions(node.status?.conditions ?? [], observation.conditions, now.toISOString().replace(/\.\d+Z$/, 'Z')),
      addresses: this.addresses(),
      nodeInfo: this.systemInfo,
    };
    if (this.options.daemonPort !== undefined) status.daemonEndpoints = { kubeletEndpoint: { Port: this.options.daemonPort } };
    return status;
  }

  /** Read, and post the status now if a condition changed since the last post. */
  async checkConditions(): Promise<void> {
    if (this.stopped || this.posting !== undefined) return;
    const { conditions } = await this.observe();
    if (conditions.some((condition) => this.posted.get(condition.type) !== condition.status)) await this.syncStatus();
  }

  /** Post the Node's status (one post at a time; a request during one runs once more after it). */
  syncStatus(): Promise<void> {
    if (this.posting !== undefined) {
      this.postAgain = true;
      return this.posting;
    }
    this.posting = (async () => {
      do {
        this.postAgain = false;
        if (this.stopped) break;
        await this.postStatus();
      } while (this.postAgain);
    })().finally(() => {
      this.posting = undefined;
    });
    return this.posting;
  }

  private async postStatus(): Promise<void> {
    for (let attempt = 1; attempt <= STATUS_UPDATE_TRIES; attempt++) {
      try {
        const node = (await this.options.client.get('Node', '', this.options.nodeName)) as KubeObject & Node;
        const observation = await this.observe();
        const status = this.statusFor(node, observation, this.now());
        await this.options.client.updateStatus('Node', { ...node, status } as KubeObject);
        for (const condition of observation.conditions) this.posted.set(condition.type, condition.status);
        return;
      } catch (error) {
        const code = statusCodeOf(error);
        if (code === grpc.status.ABORTED && attempt < STATUS_UPDATE_TRIES) continue;
        if (code === grpc.status.NOT_FOUND) this.log('the Node is gone (deleted?): restart the agent to register it again');
        else this.log(`status update failed: ${errorText(error)}`);
        return;
      }
    }
  }
}
