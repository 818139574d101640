// The DaemonSet controller's decision (pure), after Kubernetes' daemon
// controller: claim the pods (adopt matching orphans, release owned pods
// that stopped matching), then manage — a pod on every node that should run
// one, none on a node that should not, failed ones deleted, extras beyond
// one a node (two while surging) deleted, pods on nodes that are gone
// deleted — and, only when manage has nothing to do, one step of the
// rolling update; then the status.
//
// Daemon pods are created with spec.nodeName set, as Kubernetes did before
// 1.12, rather than with a matchFields node affinity for the scheduler to
// honour: the controller already decided the node, and the scheduler need
// not understand matchFields.

import type { DaemonSet } from '../../../proto/gen/resources/v1/apps.js';
import type { Node, Pod, Toleration } from '../../../proto/gen/resources/v1/core.js';
import type { OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { selectorMatches } from '../common/reconcile-selector.js';
import { parseTimestampMs } from '../../client/timestamps.js';
import { daemonTolerations, nodeFit, type NodeFit } from './reconcile-node.js';
import { claimObjects, type Claimed } from '../common/reconcile-claim.js';
import { isActive, isAvailable, isReady, isTerminating, untilAvailableMs } from '../common/reconcile-pod.js';
import { REVISION_LABEL, scaledValue, soonestMs, templateHash } from './reconcile-pod.js';

/** Kubernetes' BurstReplicas for DaemonSets: at most this many pods created per sync. */
export const MAX_CREATES_PER_SYNC = 250;

/**
 * Why a pod goes: it failed or finished on its node, it is an extra on its
 * node, its node should not run it, its node is gone (deleted with no
 * grace: no kubelet will confirm it — Kubernetes' pod GC does this), or it
 * is an old revision making way for the new one.
 */
export type DeleteReason = 'failed' | 'succeeded' | 'excess' | 'not-eligible' | 'node-gone' | 'update';

export interface PodDeletion {
  readonly pod: Pod;
  readonly reason: DeleteReason;
}

export interface DaemonSetCounts {
  readonly desiredNumberScheduled: number;
  readonly currentNumberScheduled: number;
  readonly numberMisscheduled: number;
  readonly numberReady: number;
  readonly numberAvailable: number;
  readonly numberUnavailable: number;
  readonly updatedNumberScheduled: number;
  readonly observedGeneration: number;
}

export interface DaemonSetPlan {
  readonly hash: string;
  readonly adopt: Pod[];
  readonly release: Pod[];
  readonly create: Pod[];
  readonly delete: PodDeletion[];
  /** Nodes whose failed pod waits out its backoff before being replaced. */
  readonly backingOff: string[];
  /** Undefined while the DaemonSet is being deleted: nothing is written then. */
  readonly status: DaemonSetCounts | undefined;
  /** Sync again this much later (a ready pod becomes available). */
  readonly requeueAfterMs: number | undefined;
}

export interface DaemonSetInputs {
  readonly daemonSet: DaemonSet;
  readonly nodes: readonly Node[];
  /** Pods of the DaemonSet's namespace. */
  readonly pods: readonly Pod[];
  readonly nowMs: number;
  /** Nodes whose failed daemon pod was replaced recently: a new failure there waits (Kubernetes' failedPodsBackoff). */
  readonly failedBackoffNodes?: ReadonlySet<string>;
}

/** What one sync knows of the set: its pods by node, each node's fit, and the limits. */
interface Context {
  readonly inputs: DaemonSetInputs;
  readonly hash: string;
  readonly minReadySeconds: number;
  readonly nodes: readonly Node[];
  readonly fits: ReadonlyMap<string, NodeFit>;
  readonly podsByNode: ReadonlyMap<string, Pod[]>;
  readonly surge: boolean;
}

export function daemonSetOwnerReference(daemonSet: DaemonSet): OwnerReference {
  return { apiVersion: 'apps/v1', kind: 'DaemonSet', name: daemonSet.metadata?.name ?? '', uid: daemonSet.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** The pod for one node: the template, the revision label, the node, the daemon tolerations. */
export function daemonPod(daemonSet: DaemonSet, nodeName: string, hash: string, tolerations: readonly Toleration[]): Pod {
  const template = daemonSet.spec?.template ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${daemonSet.metadata?.name ?? ''}-`,
      namespace: daemonSet.metadata?.namespace ?? 'default',
      labels: { ...(template.metadata?.labels ?? {}), [REVISION_LABEL]: hash },
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [daemonSetOwnerReference(daemonSet)],
    },
    spec: { ...structuredClone(template.spec ?? {}), nodeName, tolerations: structuredClone([...tolerations]) },
  };
}

/** podByCreationTimestampAndPhase: scheduled first, then oldest, then by name. */
export function oldestFirst(a: Pod, b: Pod): number {
  const scheduled = (pod: Pod): number => ((pod.spec?.nodeName ?? '') === '' ? 1 : 0);
  if (scheduled(a) !== scheduled(b)) return scheduled(a) - scheduled(b);
  const created = (pod: Pod): number => parseTimestampMs(pod.metadata?.creationTimestamp) ?? 0;
  if (created(a) !== created(b)) return created(a) - created(b);
  const nameA = a.metadata?.name ?? '';
  const nameB = b.metadata?.name ?? '';
  return nameA < nameB ? -1 : nameA > nameB ? 1 : 0;
}

const isUpdated = (pod: Pod, hash: string): boolean => pod.metadata?.labels?.[REVISION_LABEL] === hash;
const phaseOf = (pod: Pod): string => pod.status?.phase ?? '';

/** ClaimPods: orphans adopted while active (not terminating, not finished). */
function claim(inputs: DaemonSetInputs): Claimed<Pod> {
  const metadata = inputs.daemonSet.metadata ?? {};
  const selector = inputs.daemonSet.spec?.selector;
  return claimObjects(
    {
      uid: metadata.uid,
      deleting: metadata.deletionTimestamp !== undefined,
      selects: (pod) => selectorMatches(selector, pod.metadata?.labels),
      adoptable: isActive,
    },
    inputs.pods.filter((pod) => pod.metadata?.namespace === metadata.namespace),
  );
}

export function planDaemonSet(inputs: DaemonSetInputs): DaemonSetPlan {
  const { daemonSet } = inputs;
  const template = daemonSet.spec?.template;
  const hash = templateHash(template);
  const tolerations = daemonTolerations(template?.spec);
  const { adopt, release, owned } = claim(inputs);
  const nameOf = (node: Node): string => node.metadata?.name ?? '';
  const nodes = [...inputs.nodes].sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
  const fits = new Map(nodes.map((node) => [node.metadata?.name ?? '', nodeFit(template?.spec, tolerations, node)]));
  const podsByNode = new Map<string, Pod[]>();
  for (const pod of owned) {
    const node = pod.spec?.nodeName ?? '';
    if (node !== '') podsByNode.set(node, [...(podsByNode.get(node) ?? []), pod]);
  }
  const rolling = daemonSet.spec?.updateStrategy?.rollingUpdate;
  const context: Context = { inputs, hash, minReadySeconds: daemonSet.spec?.minReadySeconds ?? 0, nodes, fits, podsByNode, surge: (scaledValue(rolling?.maxSurge, 1, true) ?? 0) > 0 };
  const empty = { hash, adopt, release, create: [], delete: [], backingOff: [] };
  if (daemonSet.metadata?.deletionTimestamp !== undefined) return { ...empty, status: undefined, requeueAfterMs: undefined };
  const managed = manage(context);
  const manageWrites = managed.createOn.length + managed.delete.length > 0;
  const updating = !manageWrites && (daemonSet.spec?.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
  const step = updating ? (context.surge ? surgeUpdate(context) : unavailableUpdate(context)) : { createOn: [], delete: [] };
  const createOn = [...managed.createOn, ...step.createOn].slice(0, MAX_CREATES_PER_SYNC);
  const { counts, requeueAfterMs } = countStatus(context);
  return {
    hash,
    adopt,
    release,
    create: createOn.map((node) => daemonPod(daemonSet, node, hash, tolerations)),
    delete: [...managed.delete, ...step.delete],
    backingOff: managed.backingOff,
    status: counts,
    requeueAfterMs,
  };
}

interface Step {
  readonly createOn: string[];
  readonly delete: PodDeletion[];
}

/** Kubernetes' podsShouldBeOnNode for every node, and pods on nodes that are gone. */
function manage(context: Context): Step & { backingOff: string[] } {
  const createOn: string[] = [];
  const remove: PodDeletion[] = [];
  const backingOff: string[] = [];
  for (const [node, pods] of context.podsByNode) {
    if (!context.fits.has(node)) remove.push(...pods.map((pod) => ({ pod, reason: 'node-gone' as const })));
  }
  for (const node of context.nodes) {
    const name = node.metadata?.name ?? '';
    const fit = context.fits.get(name)!;
    const pods = context.podsByNode.get(name) ?? [];
    if (fit.shouldRun && pods.length === 0) {
      createOn.push(name);
    } else if (fit.shouldContinueRunning) {
      const running: Pod[] = [];
      for (const pod of pods) {
        if (isTerminating(pod)) continue;
        if (phaseOf(pod) === 'Failed') {
          if (context.inputs.failedBackoffNodes?.has(name) === true) backingOff.push(name);
          else remove.push({ pod, reason: 'failed' });
        } else if (phaseOf(pod) === 'Succeeded') remove.push({ pod, reason: 'succeeded' });
        else running.push(pod);
      }
      running.sort(oldestFirst);
      if (!context.surge) remove.push(...running.slice(1).map((pod) => ({ pod, reason: 'excess' as const })));
      else if (running.length === 0 && fit.shouldRun) createOn.push(name);
      else if (running.length > 1) remove.push(...surgeExcess(context, running));
    } else {
      remove.push(...pods.filter((pod) => !isTerminating(pod)).map((pod) => ({ pod, reason: 'not-eligible' as const })));
    }
  }
  return { createOn, delete: remove, backingOff };
}

/**
 * While surging a node may have two pods: the oldest new one and the oldest
 * old one. The old one goes once it is not ready or the new one is
 * available; every other pod goes at once.
 */
function surgeExcess(context: Context, running: readonly Pod[]): PodDeletion[] {
  let oldestNew: Pod | undefined;
  let oldestOld: Pod | undefined;
  const remove: PodDeletion[] = [];
  for (const pod of running) {
    if (isUpdated(pod, context.hash) && oldestNew === undefined) oldestNew = pod;
    else if (!isUpdated(pod, context.hash) && oldestOld === undefined) oldestOld = pod;
    else remove.push({ pod, reason: 'excess' });
  }
  if (oldestNew !== undefined && oldestOld !== undefined && (!isReady(oldestOld) || isAvailable(oldestNew, context.minReadySeconds, context.inputs.nowMs))) {
    remove.push({ pod: oldestOld, reason: 'update' });
  }
  return remove;
}

/** findUpdatedPodsOnNode: the node's live new and old pod; undefined when it has more than one of either. */
function podsOnNode(context: Context, node: string): { newPod: Pod | undefined; oldPod: Pod | undefined } | undefined {
  let newPod: Pod | undefined;
  let oldPod: Pod | undefined;
  for (const pod of context.podsByNode.get(node) ?? []) {
    if (isTerminating(pod)) continue;
    if (isUpdated(pod, context.hash)) {
      if (newPod !== undefined) return undefined;
      newPod = pod;
    } else {
      if (oldPod !== undefined) return undefined;
      oldPod = pod;
    }
  }
  return { newPod, oldPod };
}

function desiredNumber(context: Context): number {
  return [...context.fits.values()].filter((fit) => fit.shouldRun).length;
}

/** updatedDesiredNodeCounts: maxSurge (default 0) and maxUnavailable (default 1) of the desired count, rounded up; never both 0. */
function limits(context: Context): { maxSurge: number; maxUnavailable: number; desired: number } {
  const desired = desiredNumber(context);
  const rolling = context.inputs.daemonSet.spec?.updateStrategy?.rollingUpdate;
  const maxSurge = scaledValue(rolling?.maxSurge, desired, true) ?? 0;
  let maxUnavailable = scaledValue(rolling?.maxUnavailable, desired, true) ?? 1;
  if (desired > 0 && maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable, desired };
}

/**
 * Without surge: delete old pods (the manage step then creates their
 * replacements) while fewer than maxUnavailable nodes are unavailable. An
 * old pod that is not available is replaced regardless.
 */
function unavailableUpdate(context: Context): Step {
  const { maxUnavailable } = limits(context);
  const { nowMs } = context.inputs;
  let unavailable = 0;
  const replace: Pod[] = [];
  const candidates: Pod[] = [];
  for (const node of context.nodes) {
    const name = node.metadata?.name ?? '';
    if (!context.podsByNode.has(name)) continue;
    const found = podsOnNode(context, name);
    if (found === undefined || (found.newPod === undefined) === (found.oldPod === undefined)) {
      // Extras, nothing live, or both: manage's business; counts as unavailable.
      unavailable++;
    } else if (found.newPod !== undefined) {
      if (!isAvailable(found.newPod, context.minReadySeconds, nowMs)) unavailable++;
    } else if (!isAvailable(found.oldPod!, context.minReadySeconds, nowMs)) {
      replace.push(found.oldPod!);
    } else if (unavailable < maxUnavailable) {
      candidates.push(found.oldPod!);
    }
  }
  const room = Math.min(Math.max(maxUnavailable - unavailable, 0), candidates.length);
  return { createOn: [], delete: [...replace, ...candidates.slice(0, room)].map((pod) => ({ pod, reason: 'update' as const })) };
}

/**
 * With surge: a new pod beside each old one, at most maxSurge at a time
 * (at once where the old one is unavailable); the old one goes when the new
 * one is available (surgeExcess, in manage). Old pods on nodes that should
 * no longer run them go only while more than the desired number are
 * available elsewhere.
 */
function surgeUpdate(context: Context): Step {
  const { maxSurge, desired } = limits(context);
  const { nowMs } = context.inputs;
  let surging = 0;
  let available = 0;
  const remove: Pod[] = [];
  const notWanted: Pod[] = [];
  const allowed: string[] = [];
  const candidates: string[] = [];
  for (const node of context.nodes) {
    const name = node.metadata?.name ?? '';
    if (!context.podsByNode.has(name)) continue;
    const found = podsOnNode(context, name);
    if (found === undefined) {
      surging++;
      continue;
    }
    const { newPod, oldPod } = found;
    const shown = oldPod ?? newPod;
    if (shown !== undefined && isAvailable(shown, context.minReadySeconds, nowMs)) available++;
    if (oldPod === undefined) continue;
    const shouldRun = context.fits.get(name)?.shouldRun === true;
    if (newPod !== undefined) {
      if (!isAvailable(newPod, context.minReadySeconds, nowMs)) surging++;
      else remove.push(oldPod);
    } else if (!isAvailable(oldPod, context.minReadySeconds, nowMs)) {
      if (shouldRun) allowed.push(name);
      else remove.push(oldPod);
    } else if (!shouldRun) {
      notWanted.push(oldPod);
    } else if (surging < maxSurge) {
      candidates.push(name);
    }
  }
  const deletable = Math.min(Math.max(available - desired, 0), notWanted.length);
  const room = Math.min(Math.max(maxSurge - surging, 0), candidates.length);
  return { createOn: [...allowed, ...candidates.slice(0, room)], delete: [...remove, ...notWanted.slice(0, deletable)].map((pod) => ({ pod, reason: 'update' as const })) };
}

/** updateDaemonSetStatus, from the pods as they are (before this sync's writes land). */
function countStatus(context: Context): { counts: DaemonSetCounts; requeueAfterMs: number | undefined } {
  let desired = 0;
  let current = 0;
  let misscheduled = 0;
  let ready = 0;
  let available = 0;
  let updated = 0;
  const waits: (number | undefined)[] = [];
  for (const node of context.nodes) {
    const name = node.metadata?.name ?? '';
    const pods = (context.podsByNode.get(name) ?? []).filter((pod) => !(isTerminating(pod) && (phaseOf(pod) === 'Failed' || phaseOf(pod) === 'Succeeded')));
    const scheduled = pods.length > 0;
    if (!context.fits.get(name)!.shouldRun) {
      if (scheduled) misscheduled++;
      continue;
    }
    desired++;
    if (!scheduled) continue;
    current++;
    const pod = [...pods].sort(oldestFirst)[0]!;
    if (isReady(pod)) {
      ready++;
      if (isAvailable(pod, context.minReadySeconds, context.inputs.nowMs)) available++;
      else waits.push(untilAvailableMs(pod, context.minReadySeconds, context.inputs.nowMs));
    }
    if (isUpdated(pod, context.hash)) updated++;
  }
  const counts: DaemonSetCounts = {
    desiredNumberScheduled: desired,
    currentNumberScheduled: current,
    numberMisscheduled: misscheduled,
    numberReady: ready,
    numberAvailable: available,
    numberUnavailable: desired - available,
    updatedNumberScheduled: updated,
    observedGeneration: context.inputs.daemonSet.metadata?.generation ?? 0,
  };
  return { counts, requeueAfterMs: soonestMs(waits) };
}
