// `npm run bench -- scheduler`:
//   throughput: --nodes hollow nodes (Node objects with capacity, Ready, no
//     runtime) and --pods pods (each requesting 100m cpu and 128Mi) are
//     created on 3 masters first; then one scheduler (in this process,
//     fenced by a Lease it holds) binds them all, through the real API and
//     Raft: pods/s is pods / time to the last bind a watch sees.
//   failover: 3 masters hosting scheduler candidates; --kills times, kill -9
//     the master whose candidate holds the Lease, create a pod at once, and
//     time until it is bound (then restart the killed master).
// Last line: {"bench":"scheduler","nodes","pods","pods_per_s",
// "failover_median_ms","failover_max_ms","stale_writes_accepted"} — the last
// is null: the bench does not yet attribute writes to a superseded leader
// (the fencing tests prove they are refused).

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaderElector } from '../../services/client/leader-election.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { Scheduler } from '../../services/scheduler/scheduler.js';
import { inParallel } from './parallel.js';

export interface SchedulerBenchOptions {
  readonly nodes: number;
  readonly pods: number;
  readonly kills: number;
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
  const cluster = await LocalCluster.start({ size: 3, baseDir });
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

    // Count binds as a watcher sees them.
    let bound = 0;
    const start = await client.list('Pod', { namespace: 'bench', limit: 1 });
    const seen = new Set<string>();
    const stopWatch = client.watch('Pod', { namespace: 'bench', resourceVersion: start.resourceVersion }, {
      onEvent: (type, object) => {
        const name = String(object.metadata?.name);
        if (type === 'MODIFIED' && typeof (object.spec as { nodeName?: string } | undefined)?.nodeName === 'string' && !seen.has(name)) {
          seen.add(name);
          bound++;
        }
      },
    });
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
        scheduler = new Scheduler({ client: schedulerClient, maxBindsInFlight: 100, log });
        running = scheduler.run(leadership.signal).catch((error: unknown) => log(`scheduler stopped: ${String(error)}`));
      },
      log,
    });
    started = performance.now();
    elector.start();
    await waitFor('every pod to be bound', async () => (bound >= options.pods ? true : undefined), 600_000, 20);
    const elapsedMs = performance.now() - started;
    stopWatch();
    await elector.stop();
    await running;
    const podsPerSecond = options.pods / (elapsedMs / 1000);
    log(`scheduled ${options.pods} pods on ${options.nodes} nodes in ${(elapsedMs / 1000).toFixed(1)} s: ${podsPerSecond.toFixed(0)} pods/s (binds ${boundBefore + (scheduler?.bound ?? 0)}, leaderships ${leaderships})`);
    const failovers = await measureFailover(options.kills, log);
    const sorted = [...failovers].sort((a, b) => a - b);
    return {
      bench: 'scheduler',
      nodes: options.nodes,
      pods: options.pods,
      pods_per_s: Math.round(podsPerSecond),
      failover_median_ms: sorted.length === 0 ? null : Math.round(sorted[Math.floor(sorted.length / 2)]!),
      failover_max_ms: sorted.length === 0 ? null : Math.round(sorted[sorted.length - 1]!),
      failovers_ms: failovers.map(Math.round),
      stale_writes_accepted: null,
    };
  } finally {
    await elector?.stop();
    client.close();
    leaseClient.close();
    schedulerClient.close();
    await cluster.destroy();
  }
}

/** kill -9 the master hosting the active scheduler, `kills` times; each time, how long until a new pod is bound. */
async function measureFailover(kills: number, log: (line: string) => void): Promise<number[]> {
  const baseDir = join(tmpdir(), `mast-bench-scheduler-failover-${process.pid}`);
  const cluster = await LocalCluster.start({ size: 3, baseDir, scheduler: true });
  const client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 2000 });
  const results: number[] = [];
  try {
    await waitForNamespace(client, 'kube-system');
    for (let index = 0; index < 3; index++) {
      const { object, status } = hollowNode(index);
      const created = await client.create('Node', object);
      await client.updateStatus('Node', { ...created, status });
    }
    const bound = async (name: string): Promise<void> => {
      await waitFor(`${name} to be created`, async () => {
        try {
          await client.create('Pod', { ...benchPod(0), metadata: { name, namespace: 'default' } });
          return true;
        } catch (error) {
          return (error as { code?: number }).code === 6 ? true : undefined;
        }
      }, 60_000, 5);
      await waitFor(`${name} to be bound`, async () => {
        try {
          const pod = await client.get('Pod', 'default', name);
          return ((pod.spec as { nodeName?: string } | undefined)?.nodeName ?? '') !== '' ? true : undefined;
        } catch {
          return undefined;
        }
      }, 60_000, 5);
    };
    await bound('warm-up');
    for (let kill = 0; kill < kills; kill++) {
      const lease = await client.get('Lease', 'kube-system', 'kube-scheduler');
      const victim = String((lease.spec as { holderIdentity?: string }).holderIdentity ?? '').split('_')[0]!;
      const started = performance.now();
      await cluster.stopMember(victim, 'SIGKILL');
      await bound(`after-kill-${kill}`);
      const elapsedMs = performance.now() - started;
      results.push(elapsedMs);
      log(`failover ${kill + 1}/${kills}: killed ${victim} (hosting the active scheduler); a new pod was bound ${elapsedMs.toFixed(0)} ms later`);
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
    return results;
  } finally {
    client.close();
    await cluster.destroy();
  }
}
