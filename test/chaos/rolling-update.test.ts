// Chaos: a 50-replica rolling update while the masters hosting the active
// controller-manager and scheduler die. Three masters (each hosting a
// controller-manager and a scheduler candidate), five hollow nodes, and
// watches on the Deployment's pods (and the nodes) from before the first pod
// exists. During the rollout, kill -9 the master whose candidate holds
// kube-system/kube-controller-manager, then (one master down at a time, to
// keep a quorum) the one whose candidate holds kube-system/kube-scheduler,
// restarting each after its successor has taken over and acted. Then start a
// scale-down and, as soon as the controller-manager is at it, SIGSTOP its
// master; let another take over and scale down further, and SIGCONT the
// stopped one: its audit log (--log-level=debug: every write the API accepted
// from its in-master candidates, with commit revision and fencing token) must
// show no write accepted under its superseded token. Throughout: never more
// than replicas + maxSurge live pods, and no pod bound twice.
// MAST_CHAOS_KEEP_LOGS=DIR keeps the masters' logs.

import { expect } from 'chai';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HollowNode } from '../../services/agent/hollow.js';
import { ResourceClient, statusCodeOf, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import type { Component } from '../../services/master/candidates.js';
import { auditedWrite, hostOf, LEASE_OF, logMessages, NodeReadiness, PodLedger, takeover, type AuditedWrite, type LeaseName, type Takeover } from './support.js';

const NAMESPACE = 'rollout';
const NAME = 'web';
const REPLICAS = 50;
const MAX_SURGE = 5;
const MAX_UNAVAILABLE = 5;
/** The scale-down the stale leader is stopped in the middle of, then the one its successor makes. */
const SCALING = 48;
const SCALED = 45;
/**
 * The hollow nodes' call timeout. A SIGSTOPped master keeps its connections
 * open and answers nothing, and ResourceClient keeps sending it its round
 * robin share of calls, each waiting for the whole timeout. With 5 s, a
 * node's Lease was measured going unrenewed for up to 15 s while a master
 * was stopped: past the 10 s grace period the node lifecycle controller
 * marks the node and its pods not ready, and a hollow node never reports a
 * pod Ready again, so the Deployment would never settle — a stall that is
 * no part of what this test checks. 1 s keeps those silences to a few.
 */
const NODE_TIMEOUT_MS = 1000;
const IMAGES = ['busybox:1.36', 'busybox:1.37', 'busybox:1.38', 'busybox:1.39', 'busybox:1.40'] as const;
const LEASES: readonly LeaseName[] = ['kube-controller-manager', 'kube-scheduler'];
const COMPONENT_OF: Readonly<Record<LeaseName, Component>> = { 'kube-controller-manager': 'controller-manager', 'kube-scheduler': 'scheduler' };

interface DeploymentView {
  readonly image: string;
  readonly specReplicas: number;
  readonly generation: number;
  readonly observedGeneration: number;
  readonly replicas: number;
  readonly updatedReplicas: number;
  readonly availableReplicas: number;
}

interface ReplicaSetView {
  readonly name: string;
  readonly image: string;
  readonly specReplicas: number;
  readonly statusReplicas: number;
}

type Template = { spec?: { containers?: Array<{ image?: string }> } } | undefined;

function deploymentView(object: KubeObject): DeploymentView {
  const spec = object.spec as { replicas?: number; template?: Template } | undefined;
  const status = object.status as { observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number } | undefined;
  return {
    image: spec?.template?.spec?.containers?.[0]?.image ?? '',
    specReplicas: spec?.replicas ?? 1,
    generation: Number(object.metadata?.generation ?? 0),
    observedGeneration: status?.observedGeneration ?? 0,
    replicas: status?.replicas ?? 0,
    updatedReplicas: status?.updatedReplicas ?? 0,
    availableReplicas: status?.availableReplicas ?? 0,
  };
}

function replicaSetView(object: KubeObject): ReplicaSetView {
  const spec = object.spec as { replicas?: number; template?: Template } | undefined;
  return {
    name: object.metadata?.name ?? '',
    image: spec?.template?.spec?.containers?.[0]?.image ?? '',
    specReplicas: spec?.replicas ?? 1,
    statusReplicas: (object.status as { replicas?: number } | undefined)?.replicas ?? 0,
  };
}

/** Settled at `replicas` pods of `image`: every old ReplicaSet at 0, the status caught up with the spec. */
function settled(d: DeploymentView, sets: readonly ReplicaSetView[], image: string, replicas: number): boolean {
  return (
    d.image === image &&
    d.specReplicas === replicas &&
    d.observedGeneration === d.generation &&
    d.replicas === replicas &&
    d.updatedReplicas === replicas &&
    d.availableReplicas === replicas &&
    sets.some((rs) => rs.image === image && rs.specReplicas === replicas) &&
    sets.filter((rs) => rs.image !== image).every((rs) => rs.specReplicas === 0 && rs.statusReplicas === 0)
  );
}

/** A second ReplicaSet (the new template's) has replicas while an old one still has some. */
function underWay(sets: readonly ReplicaSetView[], image: string): boolean {
  return sets.some((rs) => rs.image === image && rs.specReplicas >= 1) && sets.some((rs) => rs.image !== image && rs.specReplicas >= 1);
}

interface Kill {
  readonly victim: string;
  readonly held: readonly Takeover[];
  readonly successors: readonly Takeover[];
  readonly rolloutWhenKilled: string;
}

describe('chaos: a 50-replica rolling update while the controllers\' masters die', function () {
  this.timeout(600_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;
  const clients: ResourceClient[] = [];
  const nodes: HollowNode[] = [];
  const stopped = new Set<string>();
  const stopWatches: Array<() => void> = [];
  let watchFailure: Error | undefined;
  let phase = 'setup';
  const ledger = new PodLedger((pod) => pod.metadata?.labels?.app === NAME);
  const readiness = new NodeReadiness();

  const theCluster = (): LocalCluster => {
    if (cluster === undefined) throw new Error('no cluster');
    return cluster;
  };
  const endpointOf = (name: string): string => theCluster().member(name).clientUrl.replace(/^https?:\/\//, '');
  const newClient = (endpoints: readonly string[], timeoutMs = 5000): ResourceClient => {
    const made = new ResourceClient({ endpoints, timeoutMs });
    clients.push(made);
    return made;
  };

  /** waitFor, but a failed watch ends it at once (its events would be missing from what the test checks). */
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> => {
    const outcome = await waitFor<{ value: T } | { failed: Error }>(
      what,
      async () => {
        if (watchFailure !== undefined) return { failed: watchFailure };
        const value = await probe();
        return value === undefined ? undefined : { value };
      },
      timeoutMs,
      intervalMs,
    );
    if ('failed' in outcome) throw new Error(`${outcome.failed.message} (during ${phase})`);
    return outcome.value;
  };

  const messages = (member: string): string[] => logMessages(theCluster().member(member).logFile);
  const marks = (): Map<string, number> => new Map(theCluster().members.map((member) => [member.name, messages(member.name).length]));
  const everyAudit = (): Array<AuditedWrite & { member: string }> =>
    theCluster().members.flatMap((member) => messages(member.name).flatMap((message) => {
      const write = auditedWrite(message);
      return write === undefined ? [] : [{ ...write, member: member.name }];
    }));

  const deployment = async (via: ResourceClient): Promise<DeploymentView> => deploymentView(await via.get('Deployment', NAMESPACE, NAME));
  const replicaSets = async (via: ResourceClient): Promise<ReplicaSetView[]> => (await via.list('ReplicaSet', { namespace: NAMESPACE })).items.map(replicaSetView);

  /** The Lease's holder, with the fencing token from its own "now holds" line (undefined: none yet, or not logged yet). */
  const currentHolder = async (via: ResourceClient, lease: LeaseName): Promise<Takeover | undefined> => {
    const object = await via.get('Lease', 'kube-system', lease);
    const identity = (object.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? '';
    if (identity === '') return undefined;
    const host = hostOf(identity);
    if (!theCluster().members.some((member) => member.name === host)) throw new Error(`Lease ${lease} is held by ${identity}, not a master of this cluster`);
    return messages(host).map(takeover).filter((taken) => taken?.identity === identity && taken.lease === lease).at(-1);
  };

  let imageIndex = 0;
  const image = (): string => IMAGES[imageIndex]!;

  const setImage = async (via: ResourceClient, next: string): Promise<void> => {
    await until(`the Deployment's image set to ${next}`, async () => {
      await via.patch('Deployment', NAMESPACE, NAME, { spec: { template: { spec: { containers: [{ name: 'c', image: next }] } } } });
      return true;
    }, 120_000, 200);
  };

  const rolloutState = async (via: ResourceClient): Promise<'under way' | 'complete' | 'starting'> => {
    const [d, sets] = [await deployment(via), await replicaSets(via)];
    if (settled(d, sets, image(), REPLICAS)) return 'complete';
    return underWay(sets, image()) ? 'under way' : 'starting';
  };

  /** Make sure a rollout is under way: if the last one already finished, roll out the next image. */
  const ensureRolloutUnderWay = async (via: ResourceClient): Promise<void> => {
    for (;;) {
      const state = await until(`the rollout to ${image()} to be under way (or complete)`, async () => {
        const now = await rolloutState(via);
        return now === 'starting' ? undefined : now;
      }, 120_000, 20);
      if (state === 'under way') return;
      if (imageIndex + 1 >= IMAGES.length) throw new Error('every rollout finished before a master could be killed during one');
      imageIndex++;
      await setImage(via, image());
    }
  };

  /** Wait until every running master agrees on a Raft leader and `member` answers reads itself. */
  const serving = async (member: string): Promise<void> => {
    await theCluster().waitForLeader(180_000);
    const direct = newClient([endpointOf(member)], 2000);
    await until(`${member} to serve reads`, async () => ((await direct.list('Namespace')).items.length > 0 ? true : undefined), 120_000, 200);
  };

  /**
   * kill -9 the master whose candidate holds `lease` (and so every Lease it holds),
   * wait until each is taken over and the successor has written under its token
   * (or has nothing left to do), then start the master again.
   */
  const killHostOf = async (via: ResourceClient, lease: LeaseName): Promise<Kill> => {
    const holder = await until(`a holder of ${lease}`, () => currentHolder(via, lease), 120_000);
    const victim = hostOf(holder.identity);
    const held: Takeover[] = [];
    for (const one of LEASES) {
      const current = await until(`a holder of ${one}`, () => currentHolder(via, one), 120_000);
      if (hostOf(current.identity) === victim) held.push(current);
    }
    const rolloutWhenKilled = await until('the rollout state', () => rolloutState(via), 60_000);
    await theCluster().stopMember(victim, 'SIGKILL');
    const successors: Takeover[] = [];
    for (const old of held) {
      const next = await until(`another master to take ${old.lease} over from ${old.identity}`, async () => {
        const now = await currentHolder(via, old.lease);
        return now !== undefined && hostOf(now.identity) !== victim ? now : undefined;
      }, 180_000);
      successors.push(next);
      const component = COMPONENT_OF[old.lease];
      await until(`${next.identity} to write under fencing token ${next.token} (or have nothing left to do)`, async () => {
        const wrote = messages(hostOf(next.identity)).some((message) => {
          const write = auditedWrite(message);
          return write?.component === component && write.token === next.token;
        });
        if (wrote) return true;
        return (await rolloutState(via)) === 'complete' ? true : undefined;
      }, 180_000, 200);
    }
    theCluster().startMember(victim);
    await serving(victim);
    return { victim, held, successors, rolloutWhenKilled };
  };

  before(async function () {
    cluster = await LocalCluster.start(
      {
        size: 3,
        baseDir: mkdtempSync(join(tmpdir(), 'mast-chaos-rolling-')),
        scheduler: true,
        controllers: true,
        flags: ['--log-level=debug', '--node-monitor-grace-period=10s'],
      },
      120_000,
    );
    client = newClient(cluster.endpoints);
    await waitForNamespace(client, 'kube-node-lease', 120_000);
    for (let i = 1; i <= 5; i++) {
      // Each node its own client, over every master: it outlives any one of them.
      const node = new HollowNode({ client: newClient(cluster.endpoints, NODE_TIMEOUT_MS), name: `n${i}`, heartbeatIntervalMs: 500, podSubnet: `10.244.${i}` });
      await until(`hollow node n${i} to start`, async () => {
        await node.start();
        return true;
      }, 120_000, 200);
      nodes.push(node);
    }
  });

  after(async function () {
    for (const stop of stopWatches) stop();
    for (const node of nodes) node.stop();
    for (const name of stopped) theCluster().member(name).process?.kill('SIGCONT');
    for (const one of clients) one.close();
    // MAST_CHAOS_KEEP_LOGS=DIR: keep the masters' logs (evidence) before the cluster's directory goes.
    const keep = process.env.MAST_CHAOS_KEEP_LOGS;
    if (cluster !== undefined && keep !== undefined && keep !== '') {
      mkdirSync(keep, { recursive: true });
      for (const member of cluster.members) if (existsSync(member.logFile)) copyFileSync(member.logFile, join(keep, `${member.name}.log`));
    }
    await cluster?.destroy();
  });

  /** Where things stand, for a failure's message: the Deployment, its ReplicaSets, the pods, the nodes. */
  const situation = async (): Promise<string> => {
    const lines = [`phase: ${phase}`];
    try {
      const via = newClient(theCluster().running().map((member) => endpointOf(member.name)), 2000);
      lines.push(`deployment: ${JSON.stringify(await deployment(via))}`, `replicasets: ${JSON.stringify(await replicaSets(via))}`);
    } catch (error) {
      lines.push(`(no deployment state: ${String(error)})`);
    }
    lines.push(`pods: ${ledger.seen} seen, ${ledger.live} live now, at most ${ledger.maxLive} (during ${ledger.maxLiveAt}); double bindings: ${JSON.stringify(ledger.doubleBindings)}`);
    lines.push(`node readiness changes: ${readiness.transitions.length === 0 ? 'none' : `\n  ${readiness.transitions.join('\n  ')}`}`);
    lines.push(`stopped (SIGSTOP): ${[...stopped].join(', ') || 'none'}`);
    return lines.join('\n');
  };

  const scenario = async (): Promise<void> => {
    const api = client!;
    const started = Date.now();
    const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

    // 1. The namespace, and watches on its pods and on the nodes from before the first pod.
    await until(`namespace ${NAMESPACE} to be created`, async () => {
      try {
        await api.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
      } catch (error) {
        if (statusCodeOf(error) !== grpc.status.ALREADY_EXISTS) throw error;
      }
      return true;
    }, 120_000, 200);
    const start = await until('a list of the pods to watch from', () => api.list('Pod', { namespace: NAMESPACE }), 60_000);
    expect(start.items).to.have.length(0);
    const failed = (what: string) => (error: Error): void => {
      watchFailure = new Error(`the ${what} watch ended: ${error.message}`);
    };
    stopWatches.push(api.watch('Pod', { namespace: NAMESPACE, resourceVersion: start.resourceVersion, allowBookmarks: true }, { onEvent: (type, object) => ledger.observe(type, object, phase), onError: failed('pod') }));
    const nodeList = await until('a list of the nodes to watch from', () => api.list('Node'), 60_000);
    for (const node of nodeList.items) readiness.observe('ADDED', node, phase);
    stopWatches.push(api.watch('Node', { resourceVersion: nodeList.resourceVersion, allowBookmarks: true }, { onEvent: (type, object) => readiness.observe(type, object, phase), onError: failed('node') }));

    // 2. The Deployment, all 50 available.
    phase = 'initial rollout';
    await until('the Deployment to be created', async () => {
      try {
        await api.create('Deployment', {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: NAME, namespace: NAMESPACE },
          spec: {
            replicas: REPLICAS,
            selector: { matchLabels: { app: NAME } },
            strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: MAX_SURGE, maxUnavailable: MAX_UNAVAILABLE } },
            template: { metadata: { labels: { app: NAME } }, spec: { containers: [{ name: 'c', image: image() }] } },
          },
        });
      } catch (error) {
        if (statusCodeOf(error) !== grpc.status.ALREADY_EXISTS) throw error;
      }
      return true;
    }, 120_000, 200);
    await until(`${REPLICAS} available pods of ${image()}`, async () => (settled(await deployment(api), await replicaSets(api), image(), REPLICAS) ? true : undefined), 300_000, 200);
    const initialDone = elapsed();

    // 3. The rolling update; kill -9 the controller-manager's master as soon as it is under way.
    phase = 'rolling update';
    imageIndex++;
    await setImage(api, image());
    await ensureRolloutUnderWay(api);
    const kills: Kill[] = [await killHostOf(api, 'kube-controller-manager')];
    // Then the scheduler's master (one master down at a time: a quorum stays), if the scheduler
    // did not die with the controller-manager, or has moved to a master of its own since.
    const managerNow = await until('the controller-manager holder', () => currentHolder(api, 'kube-controller-manager'), 120_000);
    const schedulerNow = await until('the scheduler holder', () => currentHolder(api, 'kube-scheduler'), 120_000);
    if (!kills[0]!.held.some((held) => held.lease === 'kube-scheduler') || hostOf(schedulerNow.identity) !== hostOf(managerNow.identity)) {
      await ensureRolloutUnderWay(api);
      kills.push(await killHostOf(api, 'kube-scheduler'));
    }

    // 4. The rollout completes.
    const finalImage = image();
    const done = await until(`the rollout to ${finalImage} to complete`, async () => {
      const [d, sets] = [await deployment(api), await replicaSets(api)];
      return settled(d, sets, finalImage, REPLICAS) ? { d, sets } : undefined;
    }, 300_000, 200);
    const rolloutDone = elapsed();

    // 5. A stale leader. SIGSTOP the controller-manager's master while it is scaling down (so it
    //    wakes with work it had begun), let another take over and scale further, then SIGCONT it.
    phase = 'stale leader';
    await theCluster().waitForLeader(180_000);
    const stale = await until('the controller-manager holder', () => currentHolder(api, 'kube-controller-manager'), 120_000);
    const staleHost = hostOf(stale.identity);
    const atStop = new Map<LeaseName, Takeover>();
    for (const lease of LEASES) atStop.set(lease, await until(`a holder of ${lease}`, () => currentHolder(api, lease), 120_000));
    const staleHeld = LEASES.filter((lease) => hostOf(atStop.get(lease)!.identity) === staleHost);
    const live = newClient(theCluster().members.filter((member) => member.name !== staleHost).map((member) => endpointOf(member.name)));
    const staleProcess = theCluster().member(staleHost).process;
    if (staleProcess === undefined) throw new Error(`${staleHost} is not running`);
    const beforeScaling = marks().get(staleHost)!;
    await until(`the Deployment scaled to ${SCALING}`, async () => {
      await api.patch('Deployment', NAMESPACE, NAME, { spec: { replicas: SCALING } });
      return true;
    }, 120_000, 200);
    await until(`${stale.identity} to be at the scale-down`, async () => (messages(staleHost).slice(beforeScaling).some((message) => {
      const write = auditedWrite(message);
      return write?.component === 'controller-manager' && write.token === stale.token && write.namespace === NAMESPACE;
    }) ? true : undefined), 120_000, 5);
    // Every line from here on may be the stopped master's (a line still in the pipe is counted after: that only makes the check stricter).
    const mark = marks().get(staleHost)!;
    staleProcess.kill('SIGSTOP');
    stopped.add(staleHost);
    const stoppedAt = Date.now();
    const successors = new Map<LeaseName, Takeover>();
    for (const lease of staleHeld) {
      successors.set(lease, await until(`another master to take ${lease} over from the stopped ${atStop.get(lease)!.identity}`, async () => {
        const now = await currentHolder(live, lease);
        return now !== undefined && hostOf(now.identity) !== staleHost ? now : undefined;
      }, 180_000));
    }
    const successor = successors.get('kube-controller-manager')!;
    const takeoverMs = Date.now() - stoppedAt;
    // The new holder's work: scale the Deployment down further, and wait until it has settled.
    await until(`the Deployment scaled to ${SCALED}`, async () => {
      await live.patch('Deployment', NAMESPACE, NAME, { spec: { replicas: SCALED } });
      return true;
    }, 120_000, 200);
    await until(`the Deployment to settle at ${SCALED} pods of ${finalImage}`, async () => (settled(await deployment(live), await replicaSets(live), finalImage, SCALED) ? true : undefined), 300_000, 200);
    const successorWrites = messages(hostOf(successor.identity)).filter((message) => {
      const write = auditedWrite(message);
      return write?.component === 'controller-manager' && write.token === successor.token;
    }).length;
    const revisionAtCont = Number((await until('the current revision', () => live.list('Namespace'), 60_000)).resourceVersion);
    staleProcess.kill('SIGCONT');
    stopped.delete(staleHost);
    // Awake: it serves again, caught up with the revision of the wake-up, and its candidates know they lost.
    const direct = newClient([endpointOf(staleHost)], 2000);
    await until(`${staleHost} to serve reads at revision ${revisionAtCont} or later`, async () => (Number((await direct.list('Pod', { namespace: NAMESPACE })).resourceVersion) >= revisionAtCont ? true : undefined), 180_000, 200);
    for (const lease of staleHeld) {
      const identity = atStop.get(lease)!.identity;
      await until(`${identity} to log that it stopped leading kube-system/${lease}`, async () => (messages(staleHost).slice(mark).some((message) => message.startsWith(`leader election: ${identity} stopped leading kube-system/${lease}`)) ? true : undefined), 180_000, 200);
    }
    // A write through the woken master itself, answered once it has caught up: its earlier requests are behind it.
    const woke = await until(`a write through ${staleHost}`, () => direct.patch('Namespace', '', NAMESPACE, { metadata: { annotations: { 'chaos.mast.io/woken': staleHost } } }), 120_000, 200);
    await theCluster().waitForLeader(180_000);
    // The watches have delivered everything up to that write (no event of the stop is still missing).
    const lastRevision = Number(woke.metadata?.resourceVersion ?? 0);
    await until(`the watches to reach revision ${lastRevision}`, async () => (ledger.revision >= lastRevision && readiness.revision >= lastRevision ? true : undefined), 120_000, 200);

    // 6. What the woken master's candidates got accepted after the SIGSTOP, against the tokens that superseded theirs.
    const woken = messages(staleHost).slice(mark);
    const reacquired = new Set(woken.map(takeover).filter((taken) => taken !== undefined && hostOf(taken.identity) === staleHost).map((taken) => `${taken!.lease}:${taken!.token}`));
    const supersededBy = (lease: LeaseName): number => (successors.get(lease) ?? atStop.get(lease)!).token;
    const afterStop = woken.map(auditedWrite).filter((write): write is AuditedWrite => write !== undefined);
    const staleAccepted = afterStop.filter((write) => {
      const lease = LEASE_OF[write.component];
      return !reacquired.has(`${lease}:${write.token ?? ''}`) && write.resourceVersion > supersededBy(lease);
    });
    const refused = woken.filter((message) => auditedWrite(message) === undefined && /Fenced|superseded/i.test(message));
    // Not vacuous: the audit works, and the stopped master's controller-manager did write under the token it held.
    const beforeStop = messages(staleHost).slice(0, mark).map(auditedWrite).filter((write): write is AuditedWrite => write !== undefined);
    const ownBeforeStop = beforeStop.filter((write) => write.component === 'controller-manager' && write.token === stale.token).length;
    const audits = everyAudit();

    // 7. No pod bound twice, also as the schedulers' accepted binds tell it.
    const binds = new Map<string, string[]>();
    for (const write of audits) {
      if (write.verb !== 'bind' || write.namespace !== NAMESPACE) continue;
      binds.set(write.name, [...(binds.get(write.name) ?? []), `${write.member}@${write.resourceVersion}`]);
    }
    const boundTwice = [...binds].filter(([, at]) => at.length > 1).map(([pod, at]) => `${pod}: ${at.join(', ')}`);

    console.log(
      [
        `      initial ${REPLICAS} available at ${initialDone}; rollout to ${finalImage} complete at ${rolloutDone} (${imageIndex} image changes)`,
        ...kills.map((kill) => `      kill -9 ${kill.victim} (rollout ${kill.rolloutWhenKilled}; held ${kill.held.map((held) => `${held.lease}@${held.token}`).join(', ')}) -> ${kill.successors.map((next) => `${next.identity} @${next.token}`).join(', ')}`),
        `      pods: ${ledger.seen} seen (${ledger.bound} bound) over ${ledger.events} watch events, at most ${ledger.maxLive} live (during ${ledger.maxLiveAt}), ${ledger.doubleBindings.length} double bindings, ${binds.size} pods with an audited bind; ${readiness.flaps} times a node stopped being Ready`,
        `      SIGSTOP ${staleHost} mid-scale-down (${staleHeld.map((lease) => `${atStop.get(lease)!.identity} @${atStop.get(lease)!.token}`).join(', ')}): ${[...successors.values()].map((next) => `${next.identity} took ${next.lease} over with fencing token ${next.token}`).join(', ')} (${takeoverMs} ms); ${successorWrites} controller-manager writes under ${successor.token}`,
        `      after SIGCONT ${staleHost}: ${refused.length} lines of refused (fenced/superseded) writes, ${afterStop.length} accepted writes audited after the stop (${staleAccepted.length} under a superseded token, committed after it was superseded); ${ownBeforeStop} accepted before the stop under token ${stale.token}`,
        `      total ${elapsed()}`,
      ].join('\n'),
    );
    if (staleAccepted.length > 0 || refused.length > 0) {
      const shown = woken.filter((message) => auditedWrite(message) !== undefined || /Fenced|superseded|leader election/i.test(message)).slice(0, 40);
      console.log(`      ${staleHost} after the stop:\n${shown.map((message) => `        ${message}`).join('\n')}`);
    }

    expect(watchFailure, 'a watch ended with an error').to.equal(undefined);
    expect(ledger.seen, 'pods the watch saw (50 before, 50 of the rollout at least)').to.be.at.least(2 * REPLICAS);
    expect(ledger.maxLive, `live pods at once (reached during ${ledger.maxLiveAt})`).to.be.at.most(REPLICAS + MAX_SURGE);
    expect(ledger.doubleBindings, 'pods whose nodeName changed once set').to.deep.equal([]);
    expect(boundTwice, 'pods with more than one accepted bind').to.deep.equal([]);
    expect(settled(done.d, done.sets, finalImage, REPLICAS)).to.equal(true);
    expect(kills.some((kill) => kill.held.some((held) => held.lease === 'kube-controller-manager'))).to.equal(true);
    expect(kills.some((kill) => kill.held.some((held) => held.lease === 'kube-scheduler'))).to.equal(true);
    expect(audits.filter((write) => write.component === 'controller-manager').length, 'controller-manager writes audited').to.be.greaterThan(0);
    expect(ownBeforeStop, `writes ${stale.identity} got accepted before the SIGSTOP`).to.be.greaterThan(0);
    expect(successorWrites, `writes ${successor.identity} got accepted under token ${successor.token}`).to.be.greaterThan(0);
    expect(staleAccepted.map((write) => `${write.component} ${write.verb} ${write.kind} ${write.namespace}/${write.name} at ${write.resourceVersion} with token ${write.token ?? 'none'}`), `writes accepted from ${staleHost} under a superseded token`).to.deep.equal([]);
  };

  it('completes the rollout within replicas + maxSurge pods, binds no pod twice, and accepts no write from a resumed stale leader', async function () {
    try {
      await scenario();
    } catch (error) {
      if (error instanceof Error) error.message = `${error.message}\n${await situation()}`;
      throw error;
    }
  });
});
