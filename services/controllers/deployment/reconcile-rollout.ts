// The Deployment strategies and scaling, step by step as Kubernetes'
// rolling.go, recreate.go and sync.go (pure, on a sync's Work):
//  - RollingUpdate: grow the new ReplicaSet while all pods stay within
//    replicas + maxSurge, shrink old ones (unavailable pods first) while
//    available pods stay at least replicas - maxUnavailable;
//  - Recreate: scale every old ReplicaSet to 0, wait until none of their
//    pods is left, then create (or grow) the new one;
//  - scaling (a paused Deployment, or replicas changed): the one active
//    ReplicaSet takes the new count, or several share it in proportion.

import type { DeploymentStatus, ReplicaSet } from '../../../proto/gen/resources/v1/apps.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import { selectorMatches } from '../common/reconcile-selector.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { byCreation, bySizeNewer, bySizeOlder, DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, replicasOf } from './reconcile-replicasets.js';
import { calculateStatus, deploymentComplete, recheckAfterMs, rolloutStatus } from './reconcile-status.js';
import { active, newReplicaSetReplicas, present, sumOf, type Work } from './reconcile-work.js';

export interface Outcome {
  readonly status: DeploymentStatus;
  /** Sync again after this long to see whether the progress deadline passed. */
  readonly recheckAfterMs: number | undefined;
}

/**
 * Available pods of a ReplicaSet, at most its spec: the status of one just
 * scaled down still counts the pods it is deleting.
 */
function availableOf(rs: ReplicaSet): number {
  return Math.min(replicasOf(rs), rs.status?.availableReplicas ?? 0);
}

function finishRollout(work: Work, all: ReadonlyArray<ReplicaSet | undefined>, newRS: ReplicaSet | undefined): Outcome {
  const status = rolloutStatus(work.d, work.status, present(all), newRS, work.nowMs);
  return { status, recheckAfterMs: recheckAfterMs(work.d, status, work.nowMs) };
}

// ------------------------------------------------------------------ RollingUpdate

export function rolloutRolling(work: Work): Outcome {
  const d = work.d;
  const { newRS, oldRSs } = work.syncRevision(true);
  // A hash collision: the status carries the new collisionCount; the next sync tries another name.
  if (newRS === undefined) return { status: work.status, recheckAfterMs: undefined };
  const all = [...oldRSs, newRS];
  if (reconcileNewReplicaSet(work, all, newRS)) return finishRollout(work, all, newRS);
  if (reconcileOldReplicaSets(work, all, active(oldRSs), newRS)) return finishRollout(work, all, newRS);
  if (deploymentComplete(d, work.status)) work.cleanup(oldRSs);
  return finishRollout(work, all, newRS);
}

/** Grow the new ReplicaSet as far as maxSurge allows (or shrink it to replicas); whether it was resized. */
export function reconcileNewReplicaSet(work: Work, all: readonly ReplicaSet[], newRS: ReplicaSet): boolean {
  const d = work.d;
  if (replicasOf(newRS) === d.replicas) return false;
  if (replicasOf(newRS) > d.replicas) return work.scale(newRS, d.replicas);
  return work.scale(newRS, newReplicaSetReplicas(d, all, newRS));
}

/** Shrink old ReplicaSets as far as maxUnavailable allows; whether any was resized. */
export function reconcileOldReplicaSets(work: Work, all: readonly ReplicaSet[], oldActive: readonly ReplicaSet[], newRS: ReplicaSet): boolean {
  const d = work.d;
  if (sumOf(oldActive, replicasOf) === 0) return false;
  const minAvailable = d.replicas - d.maxUnavailable;
  const newUnavailable = replicasOf(newRS) - availableOf(newRS);
  // Pods that may go: all there are, less those that must stay available, less the new ones not yet available.
  const maxScaledDown = sumOf(all, replicasOf) - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return false;
  const cleaned = cleanupUnhealthyReplicas(work, oldActive, maxScaledDown);
  const scaledDown = scaleDownOldReplicaSets(work, all, oldActive);
  return cleaned + scaledDown > 0;
}

/** Unavailable pods of old ReplicaSets go first, oldest ReplicaSet first: they cost no availability. */
function cleanupUnhealthyReplicas(work: Work, oldActive: readonly ReplicaSet[], maxCleanup: number): number {
  let total = 0;
  for (const rs of [...oldActive].sort(byCreation)) {
    if (total >= maxCleanup) break;
    const unhealthy = replicasOf(rs) - availableOf(rs);
    if (unhealthy <= 0) continue;
    const count = Math.min(maxCleanup - total, unhealthy);
    work.scale(rs, replicasOf(rs) - count);
    total += count;
  }
  return total;
}

/** Then available ones, down to replicas - maxUnavailable available pods in all, oldest ReplicaSet first. */
function scaleDownOldReplicaSets(work: Work, all: readonly ReplicaSet[], oldActive: readonly ReplicaSet[]): number {
  const minAvailable = work.d.replicas - work.d.maxUnavailable;
  const available = sumOf(all, availableOf);
  if (available <= minAvailable) return 0;
  const toScaleDown = available - minAvailable;
  let total = 0;
  for (const rs of [...oldActive].sort(byCreation)) {
    if (total >= toScaleDown) break;
    if (replicasOf(rs) === 0) continue;
    const count = Math.min(replicasOf(rs), toScaleDown - total);
    work.scale(rs, replicasOf(rs) - count);
    total += count;
  }
  return total;
}

// ------------------------------------------------------------------ Recreate

export function rolloutRecreate(work: Work, pods: readonly Pod[]): Outcome {
  const d = work.d;
  let { newRS, oldRSs } = work.syncRevision(false);
  let scaledDown = false;
  for (const rs of active(oldRSs)) if (work.scale(rs, 0)) scaledDown = true;
  if (scaledDown || oldPodsRunning(work, newRS, oldRSs, pods)) return finishRollout(work, [...oldRSs, newRS], newRS);
  if (newRS === undefined) {
    ({ newRS, oldRSs } = work.syncRevision(true));
    if (newRS === undefined) return { status: work.status, recheckAfterMs: undefined };
  }
  work.scale(newRS, d.replicas);
  if (deploymentComplete(d, work.status)) work.cleanup(oldRSs);
  return finishRollout(work, [...oldRSs, newRS], newRS);
}

/** Whether a pod of an old ReplicaSet still exists and has not finished (terminating ones count). */
function oldPodsRunning(work: Work, newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[], pods: readonly Pod[]): boolean {
  if (sumOf(oldRSs, (rs) => rs.status?.replicas ?? 0) > 0) return true;
  const oldUids = new Set(oldRSs.map((rs) => rs.metadata?.uid).filter((uid) => uid !== undefined && uid !== newRS?.metadata?.uid));
  return pods.some((pod) => {
    const owner = controllerOf(pod)?.uid;
    const phase = pod.status?.phase;
    return owner !== undefined && oldUids.has(owner) && selectorMatches(work.d.selector, pod.metadata?.labels) && phase !== 'Failed' && phase !== 'Succeeded';
  });
}

// ------------------------------------------------------------------ scaling

function annotatedNumber(rs: ReplicaSet, key: string): number | undefined {
  const text = rs.metadata?.annotations?.[key];
  return text !== undefined && /^-?\d+$/.test(text) ? Number(text) : undefined;
}

/** Whether an active ReplicaSet was sized for another replica count than the Deployment's (isScalingEvent). */
export function isScalingEvent(work: Work): boolean {
  const { newRS, oldRSs } = work.syncRevision(false);
  return active([...oldRSs, newRS]).some((rs) => {
    const desired = annotatedNumber(rs, DESIRED_REPLICAS_ANNOTATION);
    return desired !== undefined && desired !== work.d.replicas;
  });
}

/** Kubernetes' sync: scale (and, paused, clean up history) without rolling out; then the status. */
export function syncScale(work: Work): Outcome {
  const { newRS, oldRSs } = work.syncRevision(false);
  scaleReplicaSets(work, newRS, oldRSs);
  if (work.d.paused) work.cleanup(oldRSs);
  return { status: calculateStatus(work.d, work.status, present([...oldRSs, newRS]), newRS, work.nowMs), recheckAfterMs: undefined };
}

/** The only active ReplicaSet, or the newest when none is active; undefined when several are (FindActiveOrLatest). */
function activeOrLatest(newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[]): ReplicaSet | undefined {
  if (newRS === undefined && oldRSs.length === 0) return undefined;
  const newestFirst = [...oldRSs].sort((a, b) => byCreation(b, a));
  const running = active([...newestFirst, newRS]);
  if (running.length === 0) return newRS ?? newestFirst[0];
  return running.length === 1 ? running[0] : undefined;
}

function isSaturated(work: Work, rs: ReplicaSet | undefined): boolean {
  const replicas = work.d.replicas;
  return rs !== undefined && annotatedNumber(rs, DESIRED_REPLICAS_ANNOTATION) === replicas && replicasOf(rs) === replicas && (rs.status?.availableReplicas ?? 0) === replicas;
}

/** Go's integer.RoundToInt32: halves away from zero. */
function roundHalfAway(value: number): number {
  return value < 0 ? Math.ceil(value - 0.5) : Math.floor(value + 0.5);
}

/** How much a ReplicaSet's size changes when the Deployment's total goes to replicas + maxSurge (getReplicaSetFraction). */
function replicaSetFraction(work: Work, rs: ReplicaSet): number {
  const d = work.d;
  if (d.replicas === 0) return -replicasOf(rs);
  const annotated = annotatedNumber(rs, MAX_REPLICAS_ANNOTATION) ?? work.status.replicas ?? 0;
  if (annotated <= 0) return 0;
  return roundHalfAway((replicasOf(rs) * (d.replicas + d.maxSurge)) / annotated) - replicasOf(rs);
}

/** Kubernetes' scale: one active ReplicaSet takes it all; otherwise proportional scaling, leftovers to the largest. */
export function scaleReplicaSets(work: Work, newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[]): void {
  const d = work.d;
  const only = activeOrLatest(newRS, oldRSs);
  if (only !== undefined) {
    if (replicasOf(only) !== d.replicas) work.scale(only, d.replicas);
    return;
  }
  if (isSaturated(work, newRS)) {
    for (const rs of active(oldRSs)) work.scale(rs, 0);
    return;
  }
  if (d.strategy !== 'RollingUpdate') return;
  const running = active([...oldRSs, newRS]);
  const allowed = d.replicas > 0 ? d.replicas + d.maxSurge : 0;
  const toAdd = allowed - sumOf(running, replicasOf);
  const ordered = toAdd > 0 ? [...running].sort(bySizeNewer) : toAdd < 0 ? [...running].sort(bySizeOlder) : running;
  let added = 0;
  const sizes = ordered.map((rs) => {
    if (toAdd === 0 || toAdd === added) return replicasOf(rs);
    const fraction = replicaSetFraction(work, rs);
    const proportion = toAdd > 0 ? Math.min(fraction, toAdd - added) : Math.max(fraction, toAdd - added);
    added += proportion;
    return replicasOf(rs) + proportion;
  });
  ordered.forEach((rs, index) => {
    const leftover = index === 0 ? toAdd - added : 0;
    work.scale(rs, Math.max(sizes[index]! + leftover, 0));
  });
}
