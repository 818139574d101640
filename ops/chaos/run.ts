// One chaos run: a fresh 3-master cluster (scheduler and controllers on,
// debug logs for the audit, small snapshots), hollow nodes, a Deployment,
// the key-value workload and watchers before, during and after one fault;
// then the checks, then everything torn down.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HollowNode } from '../../services/agent/hollow.js';
import { EtcdClient, EtcdConnection } from '../../services/client/etcd.js';
import { ResourceClient, statusCodeOf, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { checkHistory } from '../../test/chaos/linearizability.js';
import { auditedWrite, hostOf, LEASE_OF, logEntries, PodLedger, takeover } from '../../test/chaos/support.js';
import { boundTwice, checkAckedWrites, checkCurrent, checkWatcher, staleLeaderWrites, type AuditEntry, type TakeoverEntry } from '../../test/chaos/chaos-checks.js';
import { injectFault, type FaultName } from './faults.js';
import { PeerNetwork } from './network.js';
import { relayPeerLinks, type PeerRelay } from '../../test/support/peer-relay.js';
import type { RunResult, Verdict } from '../../test/chaos/chaos-report.js';
import { KvWatcher, KvWorkload, seededRandom } from './workload.js';
import { prefixEnd } from '../../raft/kv/index.js';
import type { History } from '../../test/chaos/chaos-history.js';

export interface RunOptions {
  readonly run: number;
  readonly fault: FaultName;
  readonly seconds: number;
  readonly clients: number;
  readonly keys: number;
  readonly seed: number;
  /** Copy the masters' logs here (run-N-mK.log). */
  readonly keepLogs?: string;
  readonly log: (line: string) => void;
}

/** Teardown steps registered as things are made; run in reverse, each once, on success, failure or Ctrl-C. */
export class Cleanup {
  private readonly steps: Array<() => Promise<void> | void> = [];
  add(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }
  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step();
      } catch (error) {
        process.stderr.write(`cleanup: ${String(error)}\n`);
      }
    }
  }
}

const NAMESPACE = 'chaos';
const DEPLOYMENT = 'web';
const REPLICAS = 10;
const PREFIX = '/chaos/';
const SNAPSHOT_FLAGS = ['--snapshot-count=1000', '--snapshot-catchup-entries=200'];

interface FaultEvent {
  readonly label: string;
  readonly victim: string | undefined;
  readonly leaderLost: boolean;
  readonly atMs: number;
  readonly atEpochMs: number;
  /** The components whose active instance the victim hosted. */
  readonly hosted: ReadonlyArray<'scheduler' | 'controller-manager'>;
}

const readLog = logEntries;

function deploymentSettled(object: KubeObject, image: string): boolean {
  const spec = object.spec as { replicas?: number; template?: { spec?: { containers?: Array<{ image?: string }> } } } | undefined;
  const status = object.status as { observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number } | undefined;
  const replicas = spec?.replicas ?? 1;
  return (
    spec?.template?.spec?.containers?.[0]?.image === image &&
    (status?.observedGeneration ?? 0) === Number(object.metadata?.generation ?? 0) &&
    status?.replicas === replicas &&
    status.updatedReplicas === replicas &&
    status.availableReplicas === replicas
  );
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh 3-master cluster, each master in its cgroup (partition and drop) or behind its relay (delay); torn down by `cleanup`. */
async function startCluster(options: RunOptions, cleanup: Cleanup): Promise<{ cluster: LocalCluster; net: PeerNetwork | undefined; relays: PeerRelay[] | undefined; start: (name: string) => void }> {
  const baseDir = mkdtempSync(join(tmpdir(), 'mast-chaos-'));
  cleanup.add(() => rmSync(baseDir, { recursive: true, force: true }));
  const net = options.fault === 'partition-leader' || options.fault === 'drop-peer' ? new PeerNetwork(String(process.pid)) : undefined;
  if (net !== undefined) {
    cleanup.add(() => net.destroy());
    net.create();
  }
  const cluster = await LocalCluster.create({ size: 3, baseDir, scheduler: true, controllers: true, flags: ['--log-level=debug', ...SNAPSHOT_FLAGS] });
  cleanup.add(async () => {
    for (const member of cluster.members) member.process?.kill('SIGCONT');
    if (options.keepLogs !== undefined) {
      mkdirSync(options.keepLogs, { recursive: true });
      await cluster.stopAll();
      for (const member of cluster.members) if (existsSync(member.logFile)) copyFileSync(member.logFile, join(options.keepLogs, `run-${options.run}-${member.name}.log`));
    }
    await cluster.destroy();
  });
  let relays: PeerRelay[] | undefined;
  if (options.fault === 'delay-peer') {
    const started = await relayPeerLinks(cluster);
    relays = started;
    cleanup.add(async () => {
      for (const relay of started) await relay.stop();
    });
  }
  const start = (name: string): void => {
    const member = cluster.startMember(name);
    if (net !== undefined && member.process?.pid !== undefined) net.adopt(name, member.process.pid);
  };
  for (const member of cluster.members) start(member.name);
  await cluster.waitForLeader(120_000);
  return { cluster, net, relays, start };
}

interface Audit {
  readonly audits: AuditEntry[];
  readonly takeovers: TakeoverEntry[];
  readonly auditTimes: Array<{ member: string; component: string; ts: number }>;
  readonly binds: Array<{ pod: string; at: string }>;
  /** Log lines of writes refused as fenced or superseded. */
  readonly fenced: number;
}

/** The masters' logs: writes accepted from in-master components (with their log time), their takeovers, accepted binds. */
function readAudit(cluster: LocalCluster): Audit {
  const audits: AuditEntry[] = [];
  const takeovers: TakeoverEntry[] = [];
  const auditTimes: Array<{ member: string; component: string; ts: number }> = [];
  const binds: Array<{ pod: string; at: string }> = [];
  for (const member of cluster.members) {
    for (const line of readLog(member.logFile)) {
      const write = auditedWrite(line.msg);
      if (write !== undefined) {
        audits.push({ member: member.name, component: write.component, lease: LEASE_OF[write.component], description: `${write.verb} ${write.kind} ${write.namespace}/${write.name}`, resourceVersion: write.resourceVersion, token: write.token });
        auditTimes.push({ member: member.name, component: write.component, ts: line.ts });
        if (write.verb === 'bind') binds.push({ pod: `${write.namespace}/${write.name}`, at: `${member.name}@${write.resourceVersion}` });
      }
      const taken = takeover(line.msg);
      if (taken !== undefined) takeovers.push(taken);
    }
  }
  let fenced = 0;
  for (const member of cluster.members) fenced += readLog(member.logFile).filter((line) => auditedWrite(line.msg) === undefined && /Fenced|superseded/i.test(line.msg)).length;
  return { audits, takeovers, auditTimes, binds, fenced };
}

/** Per event that took a leader away: ms to the next answered write; and, when the victim hosted an active component, to its successor's first accepted write. */
function failovers(events: readonly FaultEvent[], history: History, auditTimes: Audit['auditTimes']): { writeResumeMs: number[]; controllerResumeMs: number[] } {
  const writeResumeMs: number[] = [];
  const controllerResumeMs: number[] = [];
  for (const event of events) {
    if (!event.leaderLost) continue;
    const resumed = history.writeResumeMs(event.atMs);
    if (resumed !== undefined) writeResumeMs.push(Math.round(resumed));
    if (event.hosted.length === 0) continue;
    const next = auditTimes.filter((audit) => audit.ts >= event.atEpochMs && audit.member !== event.victim && event.hosted.includes(audit.component as 'scheduler')).map((audit) => audit.ts - event.atEpochMs);
    if (next.length > 0) controllerResumeMs.push(Math.min(...next));
  }
  return { writeResumeMs, controllerResumeMs };
}

/**
 * The store's history of the keys, read back after the run by a fresh watch
 * from revision 1, up to the last revision a linearizable range reads now;
 * and the live watchers caught up to it (one stuck on a master that was cut
 * off is moved on after 5 s without progress).
 */
async function readBack(cluster: LocalCluster, etcd: EtcdClient, watchers: readonly KvWatcher[], run: number, problems: string[], stops: Array<() => void>): Promise<{ now: Map<string, { value: string; revision: number }>; upTo: number; reference: KvWatcher }> {
  const current = await etcd.withFailover((connection) => connection.range({ key: PREFIX, rangeEnd: Buffer.from(prefixEnd(Buffer.from(PREFIX))) }), Date.now() + 60_000);
  const now = new Map(current.kvs.map((kv) => [Buffer.from(kv.key).toString(), { value: Buffer.from(kv.value).toString(), revision: Number(kv.modRevision) }]));
  const upTo = Math.max(0, ...[...now.values()].map((entry) => entry.revision));
  const reference = new KvWatcher('reference', [cluster.endpoints[run % cluster.endpoints.length]!], PREFIX, 1);
  reference.start();
  stops.push(() => reference.stop());
  await waitFor(`the reference watch to reach revision ${upTo}`, async () => (reference.lastRevision >= upTo ? true : undefined), 60_000, 50);
  for (const watcher of watchers) {
    let seen = watcher.lastRevision;
    let still = 0;
    try {
      await waitFor(`${watcher.name} to reach revision ${upTo}`, async () => {
        if (watcher.lastRevision >= upTo) return true;
        if (watcher.lastRevision === seen && ++still % 50 === 0) watcher.nudge();
        if (watcher.lastRevision !== seen) still = 0;
        seen = watcher.lastRevision;
        return undefined;
      }, 60_000, 100);
    } catch (error) {
      problems.push(String(error));
    }
  }
  return { now, upTo, reference };
}

export async function runOnce(options: RunOptions, cleanup: Cleanup): Promise<RunResult> {
  const { log } = options;
  const random = seededRandom(options.seed);
  const problems: string[] = [];
  const events: FaultEvent[] = [];
  const base: Omit<RunResult, 'verdict' | 'operations'> = { run: options.run, fault: options.fault, seed: options.seed, lostAckedWrites: [], watcherProblems: [], staleLeaderWrites: [], doubleBindings: [], rolloutCompleted: false, otherProblems: problems, writeResumeMs: [], controllerResumeMs: [] };
  const { cluster, net, relays, start } = await startCluster(options, cleanup);

  const clients: Array<{ close(): void }> = [];
  const stops: Array<() => void> = [];
  cleanup.add(() => {
    for (const stop of stops) stop();
    for (const client of clients) client.close();
  });
  const api = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 3000 });
  clients.push(api);
  const statusConnections = new Map(cluster.members.map((member) => [member.name, new EtcdConnection(member.clientUrl, grpc.credentials.createInsecure(), 1000)]));
  for (const connection of statusConnections.values()) clients.push(connection);
  const etcd = new EtcdClient({ endpoints: cluster.endpoints, timeoutMs: 3000 });
  clients.push(etcd);

  await waitForNamespace(api, 'kube-node-lease', 120_000);
  for (let i = 1; i <= 3; i++) {
    const nodeClient = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 1000 });
    clients.push(nodeClient);
    const node = new HollowNode({ client: nodeClient, name: `n${i}`, heartbeatIntervalMs: 500, podSubnet: `10.244.${i}` });
    await waitFor(`hollow node n${i}`, async () => (await node.start(), true), 120_000, 200);
    stops.push(() => node.stop());
  }

  // The Deployment, settled, and a watch on its pods from before the first.
  await waitFor('namespace chaos', async () => {
    try {
      await api.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.ALREADY_EXISTS) throw error;
    }
    return true;
  }, 60_000, 200);
  const ledger = new PodLedger((pod) => pod.metadata?.labels?.app === DEPLOYMENT);
  let podWatchError: string | undefined;
  const podList = await waitFor('a pod list', () => api.list('Pod', { namespace: NAMESPACE }), 60_000);
  stops.push(api.watch('Pod', { namespace: NAMESPACE, resourceVersion: podList.resourceVersion, allowBookmarks: true }, { onEvent: (type, object) => ledger.observe(type, object, 'run'), onError: (error) => (podWatchError = error.message) }));
  let imageIndex = 0;
  const image = (): string => `busybox:1.${imageIndex}`;
  await waitFor('the Deployment', async () => {
    try {
      await api.create('Deployment', {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: DEPLOYMENT, namespace: NAMESPACE },
        spec: { replicas: REPLICAS, selector: { matchLabels: { app: DEPLOYMENT } }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 2, maxUnavailable: 1 } }, template: { metadata: { labels: { app: DEPLOYMENT } }, spec: { containers: [{ name: 'c', image: image() }] } } },
      });
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.ALREADY_EXISTS) throw error;
    }
    return true;
  }, 60_000, 200);
  await waitFor(`${REPLICAS} available pods`, async () => (deploymentSettled(await api.get('Deployment', NAMESPACE, DEPLOYMENT), image()) ? true : undefined), 180_000, 200);
  log(`run ${options.run} (${options.fault}, seed ${options.seed}): cluster up, ${REPLICAS} pods available; workload starts`);

  // The key-value workload and its watchers.
  const watchers = [0, 1].map((index) => new KvWatcher(`watcher ${index + 1}`, cluster.endpoints, PREFIX, 1, index));
  for (const watcher of watchers) watcher.start();
  stops.push(() => {
    for (const watcher of watchers) watcher.stop();
  });
  const workload = new KvWorkload({ endpoints: cluster.endpoints, clients: options.clients, keys: options.keys, prefix: PREFIX, tag: `r${options.run}s${options.seed}`, random, timeoutMs: 1500, thinkMs: 10 });
  workload.start();
  stops.push(() => void workload.stop());
  const phaseMs = Math.max(2000, (options.seconds * 1000) / 4);
  await sleep(phaseMs);

  const holders = async (): Promise<Map<string, string>> => {
    const found = new Map<string, string>();
    for (const lease of ['kube-scheduler', 'kube-controller-manager']) {
      try {
        const object = await api.get('Lease', 'kube-system', lease);
        found.set(lease, hostOf((object.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? ''));
      } catch {
        // Unknown: the event counts for no component.
      }
    }
    return found;
  };
  const leader = (among: readonly string[]): Promise<string> =>
    waitFor(
      `a leader among ${among.join(', ')}`,
      async () => {
        const statuses = await Promise.all(among.map(async (name) => ({ name, status: await statusConnections.get(name)!.status(1000) })));
        const leaders = new Set(statuses.map(({ status }) => status.leader));
        if (leaders.size !== 1 || leaders.has('0')) return undefined;
        return statuses.find(({ status }) => status.header?.memberId === status.leader)?.name;
      },
      120_000,
      20,
    );
  await injectFault(options.fault, {
    cluster,
    net,
    relays,
    random,
    holdMs: Math.max(1500, (options.seconds * 1000) / 6),
    log: (line) => log(`  ${line}`),
    rollout: async () => {
      imageIndex++;
      const next = image();
      await waitFor(`image ${next}`, async () => (await api.patch('Deployment', NAMESPACE, DEPLOYMENT, { spec: { template: { spec: { containers: [{ name: 'c', image: next }] } } } }), true), 60_000, 100);
    },
    leader,
    mark: async (label, victim, leaderLost) => {
      const held = victim === undefined ? new Map<string, string>() : await holders();
      const hosted = victim === undefined ? [] : (['scheduler', 'controller-manager'] as const).filter((component) => held.get(LEASE_OF[component]) === victim);
      return () => {
        events.push({ label, victim, leaderLost, atMs: performance.now(), atEpochMs: Date.now(), hosted });
        log(`  ${label}${hosted.length > 0 ? ` (hosting the active ${hosted.join(' and ')})` : ''}`);
      };
    },
    restart: start,
    healthy: async () => {
      const running = cluster.running().map((member) => member.name);
      await leader(running);
      for (const name of running) await waitFor(`${name} to answer a linearizable read`, () => statusConnections.get(name)!.get('/chaos-health'), 120_000, 100);
    },
    fill: async (count) => {
      let next = 0;
      const filler = Buffer.alloc(64, 'f');
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < count) {
          const key = `/fill/${next++ % 500}`;
          await etcd.withFailover((connection) => connection.put(key, filler), Date.now() + 60_000);
        }
      }));
    },
    logSince: (name, from) => readLog(cluster.member(name).logFile).slice(from).map((line) => line.msg),
    logLength: (name) => readLog(cluster.member(name).logFile).length,
    problems,
  });
  await sleep(phaseMs);
  await workload.stop();
  const counts = workload.history.counts();
  log(`  workload stopped: ${workload.history.size} operations (${counts.ok} ok, ${counts.failed} failed, ${counts.indeterminate} indeterminate)`);

  // The rollout completes.
  let rolloutCompleted = false;
  try {
    await waitFor(`the rollout to ${image()} to complete`, async () => (deploymentSettled(await api.get('Deployment', NAMESPACE, DEPLOYMENT), image()) ? true : undefined), 180_000, 200);
    rolloutCompleted = true;
  } catch (error) {
    problems.push(String(error));
  }

  const { now, upTo, reference } = await readBack(cluster, etcd, watchers, options.run, problems, stops);
  const history = workload.history.operations();
  const verdictOf = checkHistory(history);
  const verdict: Verdict = verdictOf.linearizable === true ? 'linearizable' : verdictOf.linearizable === false ? 'not linearizable' : 'unknown';
  const verdictDetail = verdictOf.linearizable === false ? `${verdictOf.key}: ${verdictOf.explanation}` : verdictOf.linearizable === 'unknown' ? `${verdictOf.key}: ${verdictOf.reason}` : undefined;
  const referenceEvents = reference.events.filter((event) => event.revision <= upTo);
  const watcherProblems = [...reference.problems, ...watchers.flatMap((watcher) => [...watcher.problems, ...checkWatcher(watcher.name, watcher.events, referenceEvents, upTo)]), ...checkCurrent(referenceEvents, now)];
  const lostAckedWrites = checkAckedWrites(workload.history.ackedWrites(), referenceEvents);

  // The pod watch has everything up to now; no pod bound twice.
  try {
    const pods = await api.list('Pod', { namespace: NAMESPACE });
    await waitFor('the pod watch to catch up', async () => (ledger.revision >= Number(pods.resourceVersion) ? true : undefined), 30_000, 100);
  } catch (error) {
    problems.push(String(error));
  }
  if (podWatchError !== undefined) problems.push(`the pod watch ended: ${podWatchError}`);

  const { audits, takeovers, auditTimes, binds, fenced } = readAudit(cluster);
  if (audits.length === 0) problems.push('no audited writes in the masters\' logs (is --log-level=debug in force?)');
  log(`  audit: ${audits.length} accepted component writes, ${takeovers.length} takeovers, ${fenced} lines of fenced/superseded writes refused; pods: ${ledger.seen} seen, ${ledger.bound} bound; watchers: ${watchers.map((watcher) => `${watcher.events.length} events, ${watcher.reconnects} reconnects`).join(' / ')}; reference ${referenceEvents.length} events up to revision ${upTo}`);

  const { writeResumeMs, controllerResumeMs } = failovers(events, workload.history, auditTimes);
  log(`  ${events.map((event) => event.label).join('; ')}: writes resumed after ${writeResumeMs.join(', ') || '-'} ms, controllers after ${controllerResumeMs.join(', ') || '-'} ms`);
  return {
    ...base,
    operations: counts,
    verdict,
    ...(verdictDetail === undefined ? {} : { verdictDetail }),
    lostAckedWrites,
    watcherProblems,
    staleLeaderWrites: staleLeaderWrites(audits, takeovers),
    doubleBindings: [...ledger.doubleBindings, ...boundTwice(binds)],
    rolloutCompleted,
    writeResumeMs,
    controllerResumeMs,
  };
}
