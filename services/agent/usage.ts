// Pod and node usage, as metrics-server would serve it: every window the
// agent reads the runtime's container stats (CRI ListContainerStats) and
// the node's /proc, turns cumulative CPU time into cores over the window,
// and writes a PodMetrics per pod it runs and a NodeMetrics for itself —
// what the HorizontalPodAutoscaler and `mastctl top` read.

import * as grpc from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import type { ContainerStats } from '../../proto/gen/cri/v1/api.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../client/resources.js';
import { meminfoBytes } from './node-status.js';
import { LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE } from './pod-actions.js';


/** One reading of a container: cumulative CPU nanoseconds and working set, at a time (ns). */
interface Sample {
  readonly cpuNs: number;
  readonly memoryBytes: number;
  readonly atNs: number;
}

/** Cores used between two cumulative readings, as a quantity in millicores ("250m"). */
export function cpuQuantity(previous: { cpuNs: number; atNs: number } | undefined, current: { cpuNs: number; atNs: number }): string {
  if (previous === undefined || current.atNs <= previous.atNs || current.cpuNs < previous.cpuNs) return '0';
  const cores = (current.cpuNs - previous.cpuNs) / (current.atNs - previous.atNs);
  const milli = Math.round(cores * 1000);
  return milli === 0 ? '0' : `${milli}m`;
}

/** Bytes as kubectl prints memory: Ki, rounded up. */
export function memoryQuantity(bytes: number): string {
  if (bytes <= 0) return '0';
  return `${Math.ceil(bytes / 1024)}Ki`;
}

export interface UsageReporterOptions {
  readonly client: ResourceClient;
  readonly nodeName: string;
  readonly listContainerStats: () => Promise<ContainerStats[]>;
  /** The window between readings (metrics-server: 15 s). */
  readonly intervalMs?: number;
  /** The node's cumulative busy CPU time and used memory (default: /proc/stat and /proc/meminfo). */
  readonly readNode?: () => Promise<{ cpuNs: number; memoryBytes: number }>;
  readonly now?: () => number;
  readonly log?: (line: string) => void;
}

/** Busy CPU time of the whole node (all CPUs, without idle and iowait) and memory in use (MemTotal - MemAvailable). */
export async function readProcNode(): Promise<{ cpuNs: number; memoryBytes: number }> {
  const [stat, meminfo] = await Promise.all([readFile('/proc/stat', 'utf8'), readFile('/proc/meminfo', 'utf8')]);
  const cpu = stat.split('\n').find((line) => line.startsWith('cpu '))!.trim().split(/\s+/).slice(1).map(Number);
  const busyTicks = cpu.reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + value), 0);
  return { cpuNs: busyTicks * 10_000_000, memoryBytes: (meminfoBytes(meminfo, 'MemTotal') ?? 0) - (meminfoBytes(meminfo, 'MemAvailable') ?? 0) };
}

export class UsageReporter {
  private timer: NodeJS.Timeout | undefined;
  private readonly containers = new Map<string, Sample>();
  private node: Sample | undefined;
  /** PodMetrics written, by namespace/name: removed when their pod's containers are gone. */
  private readonly written = new Set<string>();
  /** The resourceVersion of each metrics object as last written ("Kind/ns/name"): the next write replaces it without a read first. */
  private readonly versions = new Map<string, string>();
  private running: Promise<void> | undefined;

  constructor(private readonly options: UsageReporterOptions) {}

  start(): void {
    const tick = (): void => {
      if (this.running !== undefined) return;
      this.running = this.report()
        .catch((error: unknown) => this.options.log?.(`usage: ${error instanceof Error ? error.message : String(error)}`))
        .finally(() => (this.running = undefined));
    };
    tick();
    this.timer = setInterval(tick, this.options.intervalMs ?? 15_000);
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One reading: write every pod's and the node's metrics (the first reading only primes CPU: usage needs two). */
  async report(): Promise<void> {
    const now = this.options.now ?? Date.now;
    const window = `${Math.round((this.options.intervalMs ?? 15_000) / 1000)}s`;
    const timestamp = new Date(now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const stats = await this.options.listContainerStats();
    const pods = new Map<string, { namespace: string; name: string; containers: Array<{ name: string; usage: Record<string, string> }> }>();
    const seen = new Set<string>();
    for (const stat of stats) {
      const labels = stat.attributes?.labels ?? {};
      const namespace = labels[LABEL_POD_NAMESPACE];
      const name = labels[LABEL_POD_NAME];
      const container = labels[LABEL_CONTAINER_NAME] ?? stat.attributes?.metadata?.name;
      const id = stat.attributes?.id ?? '';
      if (namespace === undefined || name === undefined || container === undefined || id === '') continue;
      const sample: Sample = { cpuNs: stat.cpu?.usageCoreNanoSeconds?.value ?? 0, memoryBytes: stat.memory?.workingSetBytes?.value ?? 0, atNs: stat.cpu?.timestamp || now() * 1e6 };
      seen.add(id);
      const previous = this.containers.get(id);
      this.containers.set(id, sample);
      const key = `${namespace}/${name}`;
      const pod = pods.get(key) ?? { namespace, name, containers: [] };
      pods.set(key, pod);
      pod.containers.push({ name: container, usage: { cpu: cpuQuantity(previous, sample), memory: memoryQuantity(sample.memoryBytes) } });
    }
    for (const id of [...this.containers.keys()]) if (!seen.has(id)) this.containers.delete(id);
    for (const [key, pod] of pods) {
      // Several attempts of one container (an exited one kept for logs): the latest reading wins.
      const byName = new Map(pod.containers.map((container) => [container.name, container]));
      await this.write('PodMetrics', pod.namespace, pod.name, {
        apiVersion: 'metrics.k8s.io/v1beta1',
        kind: 'PodMetrics',
        metadata: { name: pod.name, namespace: pod.namespace },
        timestamp,
        window,
        containers: [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)),
      });
      this.written.add(key);
    }
    for (const key of [...this.written]) {
      if (pods.has(key)) continue;
      const [namespace, name] = key.split('/') as [string, string];
      this.written.delete(key);
      this.versions.delete(`PodMetrics/${key}`);
      await this.options.client.delete('PodMetrics', namespace, name).catch((error: unknown) => {
        if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
      });
    }
    const nodeReading = await (this.options.readNode ?? readProcNode)();
    const nodeSample: Sample = { ...nodeReading, atNs: now() * 1e6 };
    const cpu = cpuQuantity(this.node, nodeSample);
    this.node = nodeSample;
    await this.write('NodeMetrics', '', this.options.nodeName, {
      apiVersion: 'metrics.k8s.io/v1beta1',
      kind: 'NodeMetrics',
      metadata: { name: this.options.nodeName },
      timestamp,
      window,
      usage: { cpu, memory: memoryQuantity(nodeSample.memoryBytes) },
    });
  }

  /**
   * Create or replace (metrics are overwritten whole; no conflicts to
   * merge): from the version this reporter wrote last when it has one (one
   * write), else after reading the current one.
   */
  private async write(kind: string, namespace: string, name: string, object: KubeObject): Promise<void> {
    const client = this.options.client;
    const key = `${kind}/${namespace}/${name}`;
    const replace = async (resourceVersion: string | undefined): Promise<void> => {
      const written = await client.update(kind, { ...object, metadata: { ...object.metadata, resourceVersion } });
      this.versions.set(key, String(written.metadata?.resourceVersion));
    };
    const known = this.versions.get(key);
    if (known !== undefined) {
      try {
        await replace(known);
        return;
      } catch (error) {
        const code = statusCodeOf(error);
        if (code !== grpc.status.ABORTED && code !== grpc.status.NOT_FOUND) throw error;
        this.versions.delete(key);
      }
    }
    try {
      const current = await client.get(kind, namespace, name);
      await replace(current.metadata?.resourceVersion);
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
      const created = await client.create(kind, object);
      this.versions.set(key, String(created.metadata?.resourceVersion));
    }
  }
}
