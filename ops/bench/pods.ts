// `npm run bench -- pods`: pod startup latency on one node, the way
// Kubernetes' density test measures its latency pods: --pods pods created
// at --rate pods/s, each timed from its creation being accepted by the API
// to the watch showing the agent's status update with phase Running; p50
// and p99. Then the same number created at once: the wall time until all
// are Running. 3 masters (--masters N; scheduler and controllers inside), one
// `mast agent` on containerd (--runtime containerd, the default: needs
// root and ops/containerd/install.sh) or on the embedded runtime
// (--runtime embedded).
// Also where the latency went (creation → bound, bound → Running) and how
// busy the machine was meanwhile (from /proc/stat).
// Last line: {"bench":"pods","runtime","pods","startup_p50_ms","startup_p99_ms",
// "scheduled_p50_ms","scheduled_p99_ms","on_node_p50_ms","on_node_p99_ms","cpu_busy_pct","cpu_steal_pct",
// "cpu_masters_s","cpu_agent_s","cpu_bench_s","cpu_other_s" (CPU seconds in the latency phase),
// "store_writes" (revisions the store moved in that phase),"batch_wall_ms"}.
// It also names the slowest pods and prints the agent's log lines about the slowest.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { CLOCK_TICKS_PER_SECOND, readProcStat } from '../../services/cri/processes.js';
import { LocalAgent } from '../../services/launcher/local-agent.js';
import { containerdUnavailable, LocalContainerd } from '../../services/launcher/local-containerd.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

export interface PodsBenchOptions {
  readonly runtime: 'containerd' | 'embedded';
  readonly pods: number;
  /** Pods per second in the latency phase. */
  readonly rate: number;
  /** Masters of the control plane (default 3), on the same machine as the node. */
  readonly masters?: number;
}

const NAMESPACE = 'bench';
const NODE = 'bench-node';

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** p50 and p99 of the values, in whole ms. */
function percentiles(values: readonly number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: Math.round(percentile(sorted, 50)), p99: Math.round(percentile(sorted, 99)) };
}

function benchPod(name: string, runtime: PodsBenchOptions['runtime']): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NAMESPACE, labels: { bench: 'pods' } },
    spec: {
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'sleep', image: runtime === 'containerd' ? 'docker.io/local/busybox:1' : 'busybox', command: ['sleep', '3600'], resources: { requests: { cpu: '10m', memory: '16Mi' } } }],
    },
  };
}

/** Watches the namespace's pods and records when each is first seen bound to the node, and Running. */
class RunningTimes {
  readonly at = new Map<string, number>();
  readonly boundAt = new Map<string, number>();
  private stop: (() => void) | undefined;

  constructor(private readonly client: ResourceClient) {}

  async start(): Promise<void> {
    const list = await this.client.list('Pod', { namespace: NAMESPACE });
    this.stop = this.client.watch('Pod', { namespace: NAMESPACE, resourceVersion: list.resourceVersion }, {
      onEvent: (type, object) => {
        const name = String(object.metadata?.name);
        if (type !== 'DELETED' && (object.spec as { nodeName?: string } | undefined)?.nodeName && !this.boundAt.has(name)) this.boundAt.set(name, performance.now());
        if (type !== 'DELETED' && (object.status as { phase?: string } | undefined)?.phase === 'Running' && !this.at.has(name)) this.at.set(name, performance.now());
      },
    });
  }

  close(): void {
    this.stop?.();
  }
}

/** The machine's CPU time counters (Linux /proc/stat, in ticks): undefined elsewhere. */
function machineCpu(): number[] | undefined {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far; 0 when it cannot be read. */
function processCpuSeconds(pid: number | undefined): number {
  const stat = pid === undefined ? undefined : readProcStat(pid);
  return stat === undefined ? 0 : (stat.utimeTicks + stat.stimeTicks) / CLOCK_TICKS_PER_SECOND;
}

/** CPU seconds used so far by our own processes: the masters together, the agent, and this bench (its client and watch). */
function ownCpu(cluster: LocalCluster, agent: LocalAgent): { masters: number; agent: number; bench: number } {
  const masters = cluster.members.reduce((sum, member) => sum + processCpuSeconds(member.process?.pid), 0);
  const usage = process.cpuUsage();
  return { masters, agent: processCpuSeconds(agent.process.pid), bench: (usage.user + usage.system) / 1e6 };
}

/** How the machine's CPUs spent a phase: busy (user + kernel), kernel, stolen, in percent of all CPU time. */
function cpuShares(before: number[] | undefined, after: number[] | undefined): { busy_pct: number; system_pct: number; steal_pct: number; busy_s: number } | undefined {
  if (before === undefined || after === undefined) return undefined;
  // user nice system idle iowait irq softirq steal
  const delta = after.slice(0, 8).map((value, index) => value - (before[index] ?? 0));
  const total = delta.reduce((sum, value) => sum + value, 0);
  if (total <= 0) return undefined;
  const pct = (value: number): number => Math.round((100 * value) / total);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = delta;
  return { busy_pct: pct(user + nice + system + irq + softirq), system_pct: pct(system + irq + softirq), steal_pct: pct(steal), busy_s: (user + nice + system + irq + softirq) / 100 };
}

interface PodTimes {
  readonly name: string;
  /** performance.now() of its accepted creation, of the watch showing it bound, and Running. */
  readonly created: number;
  readonly bound: number;
  readonly running: number;
  /** Its creation in ms after the phase's first. */
  readonly offset: number;
}

/** The `count` pods slowest to start, slowest first. */
function slowest(names: readonly string[], accepted: ReadonlyMap<string, number>, times: RunningTimes, count: number): PodTimes[] {
  const first = Math.min(...accepted.values());
  return names
    .map((name) => ({ name, created: accepted.get(name)!, bound: times.boundAt.get(name)!, running: times.at.get(name)!, offset: accepted.get(name)! - first }))
    .sort((a, b) => b.running - b.created - (a.running - a.created))
    .slice(0, count);
}

function describeSlow(pod: PodTimes): string {
  return `${pod.name} ${Math.round(pod.running - pod.created)} ms (created at +${Math.round(pod.offset)} ms, bound after ${Math.round(pod.bound - pod.created)}, Running ${Math.round(pod.running - pod.bound)} after that)`;
}

/** The agent's log lines about a pod, each with its time in ms after the pod's creation (the log is JSON lines with an ISO ts). */
function agentLinesAbout(logFile: string, pod: PodTimes): string[] {
  const createdWallMs = pod.created + performance.timeOrigin;
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(`/${pod.name}:`)) continue;
    try {
      const entry = JSON.parse(line) as { ts: string; msg: string };
      lines.push(`agent +${Math.round(Date.parse(entry.ts) - createdWallMs)} ms: ${entry.msg}`);
    } catch {
      lines.push(line);
    }
  }
  return lines;
}

async function deleteAll(client: ResourceClient, names: readonly string[]): Promise<void> {
  await Promise.all(names.map((name) => client.delete('Pod', NAMESPACE, name).catch(() => undefined)));
  await waitFor('the pods to be gone', async () => ((await client.list('Pod', { namespace: NAMESPACE })).items.length === 0 ? true : undefined), 300_000, 200);
}

export async function benchPods(options: PodsBenchOptions, log: (line: string) => void): Promise<Record<string, unknown>> {
  if (options.runtime === 'containerd') {
    const unavailable = containerdUnavailable();
    if (unavailable !== '') throw new Error(`--runtime containerd needs root and ops/containerd/install.sh: ${unavailable} (or use --runtime embedded)`);
  }
  const baseDir = mkdtempSync(join(tmpdir(), 'mast-bench-pods-'));
  let containerd: LocalContainerd | undefined;
  let cluster: LocalCluster | undefined;
  let agent: LocalAgent | undefined;
  let client: ResourceClient | undefined;
  let times: RunningTimes | undefined;
  try {
    const subnet = '10.90.0.0/24';
    if (options.runtime === 'containerd') {
      containerd = await LocalContainerd.start(join(baseDir, 'containerd'), { bridge: 'mastbench0', subnet });
      log(`containerd on ${containerd.socket}`);
    }
    cluster = await LocalCluster.start({ size: options.masters ?? 3, baseDir: join(baseDir, 'masters'), scheduler: true, controllers: true });
    client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 30_000 });
    await waitForNamespace(client, 'default');
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    agent = LocalAgent.start({
      nodeName: NODE,
      masters: cluster.endpoints,
      rootDir: join(baseDir, 'agent'),
      ...(containerd === undefined ? {} : { runtimeEndpoint: containerd.endpoint, podCidr: subnet }),
      flags: ['--max-pods', String(Math.max(110, options.pods + 10))],
    });
    await waitFor('the node to be Ready', async () => {
      const node = await client!.get('Node', '', NODE);
      return ((node.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True') ? true : undefined;
    }, 60_000, 100);
    times = new RunningTimes(client);
    await times.start();

    // Latency pods: one every 1/rate s; each timed from its accepted creation.
    const accepted = new Map<string, number>();
    const names = Array.from({ length: options.pods }, (_, index) => `latency-${index}`);
    const revisionBefore = Number((await client.list('Namespace', {})).resourceVersion);
    const cpuBefore = machineCpu();
    const ownBefore = ownCpu(cluster, agent);
    const started = performance.now();
    await Promise.all(
      names.map(async (name, index) => {
        const due = started + (index * 1000) / options.rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await client!.create('Pod', benchPod(name, options.runtime));
        accepted.set(name, performance.now());
      }),
    );
    await waitFor(`${options.pods} latency pods Running`, async () => (names.every((name) => times!.at.has(name)) ? true : undefined), 300_000, 50);
    const cpu = cpuShares(cpuBefore, machineCpu());
    const ownAfter = ownCpu(cluster, agent);
    const writes = Number((await client.list('Namespace', {})).resourceVersion) - revisionBefore;
    const seconds = (value: number): number => Math.round(value * 10) / 10;
    const spent = { cpu_masters_s: seconds(ownAfter.masters - ownBefore.masters), cpu_agent_s: seconds(ownAfter.agent - ownBefore.agent), cpu_bench_s: seconds(ownAfter.bench - ownBefore.bench) };
    const latencies = names.map((name) => times!.at.get(name)! - accepted.get(name)!).sort((a, b) => a - b);
    const { p50, p99 } = percentiles(latencies);
    log(`${options.pods} pods at ${options.rate}/s on ${options.runtime}: startup p50 ${p50} ms, p99 ${p99} ms, max ${Math.round(latencies.at(-1)!)} ms`);
    // Where the time went: creation → seen bound (scheduler) and bound → seen Running (agent and runtime).
    const scheduling = percentiles(names.map((name) => times!.boundAt.get(name)! - accepted.get(name)!));
    const onNode = percentiles(names.map((name) => times!.at.get(name)! - times!.boundAt.get(name)!));
    const phases = { scheduled_p50_ms: scheduling.p50, scheduled_p99_ms: scheduling.p99, on_node_p50_ms: onNode.p50, on_node_p99_ms: onNode.p99 };
    const runtimeAndRest = cpu === undefined ? undefined : seconds(cpu.busy_s - spent.cpu_masters_s - spent.cpu_agent_s - spent.cpu_bench_s);
    if (cpu !== undefined) log(`  the machine meanwhile: ${cpu.busy_pct}% busy (${cpu.system_pct}% in the kernel), ${cpu.steal_pct}% stolen by the hypervisor`);
    log(`  ${writes} writes to the store in the phase (${(writes / options.pods).toFixed(1)} per pod, leader-election and node Lease renewals included)`);
    log(`  CPU seconds in the phase: masters ${spent.cpu_masters_s}, agent ${spent.cpu_agent_s}, bench client ${spent.cpu_bench_s}${runtimeAndRest === undefined ? '' : `, everything else (runtime, kernel, other) ${runtimeAndRest}`}`);
    log(`  of which: bound p50 ${phases.scheduled_p50_ms} ms, p99 ${phases.scheduled_p99_ms} ms after creation; Running p50 ${phases.on_node_p50_ms} ms, p99 ${phases.on_node_p99_ms} ms after being bound`);
    const slow = slowest(names, accepted, times, 3);
    log(`  slowest: ${slow.map(describeSlow).join('; ')}`);
    for (const line of agentLinesAbout(agent.logFile, slow[0]!)) log(`    ${line}`);
    await deleteAll(client, names);

    // All at once: wall time from the first create to the last Running.
    const batch = Array.from({ length: options.pods }, (_, index) => `batch-${index}`);
    const batchStarted = performance.now();
    await Promise.all(batch.map((name) => client!.create('Pod', benchPod(name, options.runtime))));
    await waitFor(`${options.pods} batch pods Running`, async () => (batch.every((name) => times!.at.has(name)) ? true : undefined), 600_000, 50);
    const batchWallMs = Math.round(Math.max(...batch.map((name) => times!.at.get(name)!)) - batchStarted);
    log(`${options.pods} pods created at once: all Running after ${batchWallMs} ms`);
    await deleteAll(client, batch);
    return { bench: 'pods', runtime: options.runtime, pods: options.pods, rate: options.rate, masters: options.masters ?? 3, startup_p50_ms: p50, startup_p99_ms: p99, startup_max_ms: Math.round(latencies.at(-1)!), ...phases, store_writes: writes, ...(cpu === undefined ? {} : { cpu_busy_pct: cpu.busy_pct, cpu_steal_pct: cpu.steal_pct }), ...spent, ...(runtimeAndRest === undefined ? {} : { cpu_other_s: runtimeAndRest }), batch_wall_ms: batchWallMs };
  } finally {
    times?.close();
    client?.close();
    await agent?.stop('SIGTERM').catch(() => undefined);
    await cluster?.destroy().catch(() => undefined);
    await containerd?.stop().catch((error: unknown) => log(`containerd cleanup failed: ${String(error)}`));
    rmSync(baseDir, { recursive: true, force: true });
  }
}
