// `npm run bench -- scheduler`:
//   throughput: --nodes hollow nodes (Node objects with capacity, Ready, no
//     runtime) and --pods pods (each requesting 100m cpu and 128Mi) are
//     created on 3 masters first; then one scheduler (in this process,
//     fenced by a Lease it holds, its informers warm as a standby
//     candidate's are) binds them all, through the real API and Raft:
//     pods/s is pods / time from it starting to lead to its pod informer
//     seeing the last bind come back through the watch.
//   failover: 3 masters hosting scheduler and controller-manager candidates;
//     --kills times for each, kill -9 the master whose candidate holds the
//     Lease and time until the component acts again (a new pod bound; a
//     ReplicaSet's new replica created), then restart the killed master.
//   stale leader: --stale-rounds times, SIGSTOP the `mast scheduler` process
//     holding the Lease mid-burst, let the other take over, SIGCONT it, and
//     count the binds it got committed after the new holder's token.
// Last line: {"bench":"scheduler","nodes","pods","pods_per_s",
// "failover_median_ms","failover_max_ms","stale_writes_accepted", ...}.

import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaderElector } from '../../services/client/leader-election.js';
import { SharedInformers } from '../../services/client/shared-informers.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, MAST_BINARY, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { Scheduler } from '../../services/scheduler/scheduler.js';
import { AUDIT_LINE } from '../../services/master/candidates.js';
import { HollowNode } from '../../services/agent/hollow.js';
import { inParallel } from './parallel.js';

export interface SchedulerBenchOptions {
  readonly nodes: number;
  readonly pods: number;
  readonly kills: number;
  readonly staleRounds: number;
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.floor(sorted.length / 2)]!);
}


function hollowNode(index: number): { object: KubeObject; status: Record<string, unknown> } {
  const name = `hollow-${String(index).padStart(4, '0')}`;
  const resources = { cpu: '4', memory: '32Gi', pods: '110' };
  return {
    object: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': `zone-${index % 3}` } } },
    status: { capacity: resources, allocatable: resources, conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

function benchPod(index: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod-${index}`, namespace: 'bench', labels: { app: `app-${index % 50}` } },
    spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu: '100m', memory: '128Mi' } } }] },
  };
}

export async function benchScheduler(options: SchedulerBenchOptions, log: (line: string) => void): Promise<Record<string, unknown>> {
  const baseDir = join(tmpdir(), `mast-bench-scheduler-${process.pid}`);
  log(`starting 3 masters in ${baseDir}`);
  // MAST_BENCH_CPU_PROF=DIR: the masters write V8 CPU profiles there (run this process with --cpu-prof too).
  const profileDir = process.env.MAST_BENCH_CPU_PROF;
  const cluster = await LocalCluster.start({ size: 3, baseDir, ...(profileDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] }) });
  const client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 30_000 });
  const leaseClient = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 30_000 });
  const schedulerClient = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 30_000 });
  let elector: LeaderElector | undefined;
  try {
    await waitForNamespace(client, 'kube-system');
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench' } });
    let started = performance.now();
    await inParallel(options.nodes, 50, async (index) => {
      const { object, status } = hollowNode(index);
      const created = await client.create('Node', object);
      await client.updateStatus('Node', { ...created, status });
    });
    log(`${options.nodes} hollow nodes registered in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    started = performance.now();
    await inParallel(options.pods, 100, (index) => client.create('Pod', benchPod(index)));
    log(`${options.pods} pods created in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    // The scheduler's informers are warm before it leads, as a standby
    // candidate's in a master are (services/master/candidates.ts), and binds
    // are counted as its pod informer sees them come back through the
    // watch — how kube-scheduler's scheduler_perf counts them.
    const informers = new SharedInformers(schedulerClient, log);
    informers.warm(['Pod', 'Node', 'PersistentVolumeClaim', 'PersistentVolume']);
    const podView = informers.view('Pod');
    await Promise.all(['Pod', 'Node', 'PersistentVolumeClaim', 'PersistentVolume'].map((kind) => informers.view(kind).waitForSync()));
    let bound = 0;
    const seen = new Set<string>();
    const counted = (object: KubeObject): void => {
      const name = String(object.metadata?.name);
      if (object.metadata?.namespace === 'bench' && typeof (object.spec as { nodeName?: string } | undefined)?.nodeName === 'string' && !seen.has(name)) {
        seen.add(name);
        bound++;
      }
    };
    podView.onAdd(counted);
    podView.onUpdate((_old, object) => counted(object));
    // A scheduler per leadership: one that lost the Lease has stopped for good.
    let scheduler: Scheduler | undefined;
    let running: Promise<void> | undefined;
    let boundBefore = 0;
    let leaderships = 0;
    elector = new LeaderElector({
      client: leaseClient,
      fenced: [schedulerClient],
      namespace: 'kube-system',
      name: 'kube-scheduler',
      identity: `bench-${process.pid}`,
      onStartedLeading: (leadership) => {
        boundBefore += scheduler?.bound ?? 0;
        leaderships++;
        scheduler = new Scheduler({ client: schedulerClient, informers, ...(process.env.MAST_BENCH_BINDS_IN_FLIGHT === undefined ? {} : { maxBindsInFlight: Number(process.env.MAST_BENCH_BINDS_IN_FLIGHT) }), log });
        running = scheduler.run(leadership.signal).catch((error: unknown) => log(`scheduler stopped: ${String(error)}`));
      },
      log,
    });
    started = performance.now();
    elector.start();
    await waitFor('every pod to be bound', async () => (bound >= options.pods ? true : undefined), 600_000, 20);
    const elapsedMs = performance.now() - started;
    await elector.stop();
    await running;
    informers.stop();
    // Checked outside the timed window: every pod is bound in the store.
    const unbound = await countUnbound(client);
    if (unbound !== 0) throw new Error(`${unbound} pods are not bound in the store although the informer saw every bind`);
    const podsPerSecond = options.pods / (elapsedMs / 1000);
    log(`scheduled ${options.pods} pods on ${options.nodes} nodes in ${(elapsedMs / 1000).toFixed(1)} s: ${podsPerSecond.toFixed(0)} pods/s (binds ${boundBefore + (scheduler?.bound ?? 0)}, leaderships ${leaderships})`);
    client.close();
    leaseClient.close();
    schedulerClient.close();
    // Profiles are written at a clean exit.
    if (profileDir !== undefined) await cluster.stopAll('SIGTERM');
    await cluster.destroy();
    const failovers = await measureFailover(options.kills, log);
    const stale = await measureStaleLeader(options.staleRounds, log);
    const all = [...failovers.scheduler, ...failovers.controllerManager];
    return {
      bench: 'scheduler',
      nodes: options.nodes,
      pods: options.pods,
      pods_per_s: Math.round(podsPerSecond),
      failover_median_ms: median(all),
      failover_max_ms: all.length === 0 ? null : Math.round(Math.max(...all)),
      scheduler_failover_median_ms: median(failovers.scheduler),
      controller_manager_failover_median_ms: median(failovers.controllerManager),
      failovers_ms: { scheduler: failovers.scheduler.map(Math.round), controller_manager: failovers.controllerManager.map(Math.round) },
      stale_write_attempts: stale.attempts,
      stale_writes_accepted: stale.accepted,
      double_bindings: stale.doubleBindings,
    };
  } finally {
    await elector?.stop();
    client.close();
    leaseClient.close();
    schedulerClient.close();
    await cluster.destroy();
  }
}

/** Pods of the bench namespace without a node, read page by page from the store. */
async function countUnbound(client: ResourceClient): Promise<number> {
  let unbound = 0;
  let next = '';
  do {
    const page = await client.list('Pod', { namespace: 'bench', limit: 1000, ...(next === '' ? {} : { continue: next }) });
    for (const pod of page.items) if (((pod.spec as { nodeName?: string } | undefined)?.nodeName ?? '') === '') unbound++;
    next = page.continue;
  } while (next !== '');
  return unbound;
}

const COMPONENT_LEASES = { scheduler: 'kube-scheduler', 'controller-manager': 'kube-controller-manager' } as const;

async function holderMember(client: ResourceClient, lease: string): Promise<string> {
  return waitFor(`a holder of ${lease}`, async () => {
    const object = await client.get('Lease', 'kube-system', lease);
    const holder = String((object.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? '');
    return holder === '' ? undefined : holder.split('_')[0];
  }, 60_000, 20);
}

/**
 * 3 masters hosting scheduler and controller-manager candidates; `kills`
 * times for each component, kill -9 the master whose candidate holds its
 * Lease and time until the component acts again — a new pod bound, or a
 * ReplicaSet's new replica created — then restart the killed master.
 */
async function measureFailover(kills: number, log: (line: string) => void): Promise<{ scheduler: number[]; controllerManager: number[] }> {
  const baseDir = join(tmpdir(), `mast-bench-scheduler-failover-${process.pid}`);
  const cluster = await LocalCluster.start({ size: 3, baseDir, scheduler: true, controllers: true });
  const client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 2000 });
  const results = { scheduler: [] as number[], controllerManager: [] as number[] };
  // Writes are retried until the cluster has a leader again: their wait is part of the failover.
  const retried = (what: string, write: () => Promise<unknown>): Promise<true> =>
    waitFor(what, async () => {
      try {
        await write();
        return true;
      } catch (error) {
        return (error as { code?: number }).code === 6 ? true : undefined;
      }
    }, 60_000, 5);
  // Nodes that heartbeat: the node lifecycle controller would taint silent ones unreachable.
  const nodeClient = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 2000 });
  const nodes = [0, 1, 2].map((index) => new HollowNode({ client: nodeClient, name: `hollow-${index}`, heartbeatIntervalMs: 1000 }));
  try {
    await waitForNamespace(client, 'kube-node-lease');
    for (const node of nodes) await node.start();
    const bound = async (name: string): Promise<void> => {
      await retried(`${name} to be created`, () => client.create('Pod', { ...benchPod(0), metadata: { name, namespace: 'default' } }));
      await waitFor(`${name} to be bound`, async () => {
        try {
          const pod = await client.get('Pod', 'default', name);
          return ((pod.spec as { nodeName?: string } | undefined)?.nodeName ?? '') !== '' ? true : undefined;
        } catch {
          return undefined;
        }
      }, 60_000, 5);
    };
    let replicas = 1;
    const replicated = async (): Promise<void> => {
      replicas++;
      const wanted = replicas;
      await retried('the probe ReplicaSet to be scaled', () => client.patch('ReplicaSet', 'default', 'probe', { spec: { replicas: wanted } }));
      await waitFor(`${wanted} probe replicas`, async () => {
        try {
          return (await client.list('Pod', { namespace: 'default', labelSelector: 'app=probe' })).items.length >= wanted ? true : undefined;
        } catch {
          return undefined;
        }
      }, 60_000, 5);
    };
    await bound('warm-up');
    await client.create('ReplicaSet', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'probe', namespace: 'default' },
      spec: { replicas: 1, selector: { matchLabels: { app: 'probe' } }, template: { metadata: { labels: { app: 'probe' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    await waitFor('the first probe replica', async () => ((await client.list('Pod', { namespace: 'default', labelSelector: 'app=probe' })).items.length >= 1 ? true : undefined), 60_000, 20);
    for (let kill = 0; kill < kills; kill++) {
      for (const component of ['scheduler', 'controller-manager'] as const) {
        const victim = await holderMember(client, COMPONENT_LEASES[component]);
        const started = performance.now();
        await cluster.stopMember(victim, 'SIGKILL');
        if (component === 'scheduler') await bound(`after-kill-${kill}`);
        else await replicated();
        const elapsedMs = performance.now() - started;
        (component === 'scheduler' ? results.scheduler : results.controllerManager).push(elapsedMs);
        log(`failover ${kill + 1}/${kills}: killed ${victim} (hosting the active ${component}); it acted again ${elapsedMs.toFixed(0)} ms later`);
        cluster.startMember(victim);
        await cluster.waitForLeader(60_000);
        await waitFor(`${victim} to serve again`, async () => {
          const one = new ResourceClient({ endpoints: [cluster.member(victim).clientUrl], timeoutMs: 1000 });
          try {
            await one.list('Namespace');
            return true;
          } catch {
            return undefined;
          } finally {
            one.close();
          }
        }, 60_000, 100);
      }
    }
    return results;
  } finally {
    for (const node of nodes) node.stop();
    nodeClient.close();
    client.close();
    await cluster.destroy();
  }
}

interface StaleResult {
  /** Writes the woken scheduler tried after the Lease had a new holder (refused, or accepted). */
  readonly attempts: number;
  /** Of those, accepted: a bind committed after the new holder's fencing token by the superseded scheduler. */
  readonly accepted: number;
  /** Pods whose node changed after their first bind. */
  readonly doubleBindings: number;
}

/** A `mast scheduler` process whose stderr (JSON lines) is kept. */
class SchedulerProcess {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  private partial = '';

  constructor(readonly name: string, server: string) {
    this.child = spawn(process.execPath, [MAST_BINARY, 'scheduler', '--server', server, '--name', name, '--log-level', 'debug'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      const text = this.partial + chunk.toString();
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) this.lines.push((JSON.parse(line) as { msg: string }).msg);
    });
  }
}

/**
 * A stale leader waking up, `rounds` times: two `mast scheduler` processes
 * on 3 masters; while the one holding the Lease is binding a burst of pods,
 * SIGSTOP it until the other holds the Lease and has bound the rest, then
 * SIGCONT it. Every bind it logged (with its commit revision) after the new
 * holder's fencing token is a stale write accepted; every bind it tried
 * after waking is an attempt. A watch checks no pod is bound twice.
 */
async function measureStaleLeader(rounds: number, log: (line: string) => void): Promise<StaleResult> {
  const baseDir = join(tmpdir(), `mast-bench-scheduler-stale-${process.pid}`);
  const cluster = await LocalCluster.start({ size: 3, baseDir });
  const client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
  const server = cluster.members.map((member) => member.clientUrl).join(',');
  const schedulers = [new SchedulerProcess('sa', server), new SchedulerProcess('sb', server)];
  let attempts = 0;
  let accepted = 0;
  let doubleBindings = 0;
  const nodeOf = new Map<string, string>();
  let stopWatch: (() => void) | undefined;
  try {
    await waitForNamespace(client, 'kube-system');
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'stale' } });
    // Room for every round's pods (110 a node; they request nothing).
    await inParallel(20, 10, async (index) => {
      const { object, status } = hollowNode(index);
      const created = await client.create('Node', object);
      await client.updateStatus('Node', { ...created, status });
    });
    const start = await client.list('Pod', { namespace: 'stale', limit: 1 });
    stopWatch = client.watch('Pod', { namespace: 'stale', resourceVersion: start.resourceVersion }, {
      onEvent: (_type, object) => {
        const name = String(object.metadata?.name);
        const node = (object.spec as { nodeName?: string } | undefined)?.nodeName ?? '';
        if (node === '') return;
        const before = nodeOf.get(name);
        if (before !== undefined && before !== node) doubleBindings++;
        nodeOf.set(name, node);
      },
    });
    const boundCount = (prefix: string): number => [...nodeOf.keys()].filter((name) => name.startsWith(prefix)).length;
    for (let round = 0; round < rounds; round++) {
      const holder = await holderMember(client, 'kube-scheduler');
      const stale = schedulers.find((one) => one.name === holder)!;
      const fresh = schedulers.find((one) => one !== stale)!;
      const prefix = `r${round}-`;
      const pods = 500;
      const creating = inParallel(pods, 50, (index) => client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${prefix}${index}`, namespace: 'stale' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } }));
      await waitFor('the burst to be binding', async () => (boundCount(prefix) >= 100 ? true : undefined), 120_000, 5);
      stale.child.kill('SIGSTOP');
      const asleepAt = stale.lines.length;
      const freshSeen = fresh.lines.length;
      const takeover = await waitFor(`${fresh.name} to hold the Lease`, async () => {
        for (const line of fresh.lines.slice(freshSeen)) {
          const match = /now holds kube-system\/kube-scheduler \(fencing token (\d+)\)/.exec(line);
          if (match !== null) return Number(match[1]);
        }
        return undefined;
      }, 120_000, 20);
      await creating;
      await waitFor(`every pod of round ${round} to be bound`, async () => (boundCount(prefix) >= pods ? true : undefined), 300_000, 20);
      stale.child.kill('SIGCONT');
      await waitFor(`${stale.name} to stop leading`, async () => (stale.lines.slice(asleepAt).some((line) => /stopped leading|superseded/.test(line)) ? true : undefined), 60_000, 20);
      let roundAttempts = 0;
      let roundAccepted = 0;
      for (const line of stale.lines.slice(asleepAt)) {
        const write = AUDIT_LINE.exec(line);
        if (write !== null && Number(write[6]) > takeover) {
          roundAttempts++;
          roundAccepted++;
        } else if (/^scheduler: (superseded|binding .* failed)/.test(line)) roundAttempts++;
      }
      attempts += roundAttempts;
      accepted += roundAccepted;
      log(`stale leader ${round + 1}/${rounds}: SIGSTOP ${stale.name} mid-burst; ${fresh.name} took over with fencing token ${takeover}; after SIGCONT ${stale.name} tried ${roundAttempts} writes, ${roundAccepted} accepted`);
    }
    return { attempts, accepted, doubleBindings };
  } finally {
    stopWatch?.();
    for (const one of schedulers) {
      one.child.kill('SIGCONT');
      one.child.kill('SIGKILL');
    }
    client.close();
    await cluster.destroy();
  }
}
