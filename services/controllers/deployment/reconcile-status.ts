// A Deployment's status as Kubernetes computes it (pure): the counts summed
// over its ReplicaSets, the Available condition, and the Progressing
// condition whose lastUpdateTime moves only when the rollout makes progress,
// so that progressDeadlineSeconds without progress turns it False
// (ProgressDeadlineExceeded).

import type { DeploymentStatus, ReplicaSet } from '../../../proto/gen/resources/v1/apps.js';
import type { Condition } from '../../../proto/gen/resources/v1/meta.js';
import { formatTimestamp, parseTimestampMs } from '../../client/timestamps.js';
import { hasProgressDeadline, replicasOf, type DeploymentView } from './reconcile-replicasets.js';

// Kubernetes' condition reasons (pkg/controller/deployment/util).
export const REASON = {
  newReplicaSetCreated: 'NewReplicaSetCreated',
  foundNewReplicaSet: 'FoundNewReplicaSet',
  replicaSetUpdated: 'ReplicaSetUpdated',
  newReplicaSetAvailable: 'NewReplicaSetAvailable',
  timedOut: 'ProgressDeadlineExceeded',
  paused: 'DeploymentPaused',
  resumed: 'DeploymentResumed',
  minimumReplicasAvailable: 'MinimumReplicasAvailable',
  minimumReplicasUnavailable: 'MinimumReplicasUnavailable',
} as const;

export function newCondition(type: string, status: 'True' | 'False' | 'Unknown', reason: string, message: string, nowMs: number): Condition {
  const now = formatTimestamp(nowMs);
  return { type, status, lastUpdateTime: now, lastTransitionTime: now, reason, message };
}

export function conditionOf(status: DeploymentStatus, type: string): Condition | undefined {
  return (status.conditions ?? []).find((condition) => condition.type === type);
}

export function removeCondition(status: DeploymentStatus, type: string): void {
  status.conditions = (status.conditions ?? []).filter((condition) => condition.type !== type);
}

/**
 * Kubernetes' SetDeploymentCondition: the same status and reason change
 * nothing (not even lastUpdateTime); the same status keeps its
 * lastTransitionTime; the condition moves to the end of the list.
 */
export function setCondition(status: DeploymentStatus, condition: Condition): void {
  const current = conditionOf(status, condition.type ?? '');
  if (current !== undefined && current.status === condition.status && current.reason === condition.reason) return;
  const next = current !== undefined && current.status === condition.status ? { ...condition, lastTransitionTime: current.lastTransitionTime } : condition;
  status.conditions = [...(status.conditions ?? []).filter((existing) => existing.type !== condition.type), next];
}

const sum = (replicaSets: readonly ReplicaSet[], count: (rs: ReplicaSet) => number): number => replicaSets.reduce((total, rs) => total + count(rs), 0);

/** Kubernetes' calculateStatus: counts from the ReplicaSets, conditions carried over, Available (re)computed. */
export function calculateStatus(d: DeploymentView, current: DeploymentStatus, all: readonly ReplicaSet[], newRS: ReplicaSet | undefined, nowMs: number): DeploymentStatus {
  const available = sum(all, (rs) => rs.status?.availableReplicas ?? 0);
  const total = sum(all, replicasOf);
  const status: DeploymentStatus = {
    observedGeneration: d.generation,
    replicas: sum(all, (rs) => rs.status?.replicas ?? 0),
    updatedReplicas: newRS === undefined ? 0 : (newRS.status?.replicas ?? 0),
    readyReplicas: sum(all, (rs) => rs.status?.readyReplicas ?? 0),
    availableReplicas: available,
    unavailableReplicas: Math.max(total - available, 0),
    conditions: (current.conditions ?? []).map((condition) => ({ ...condition })),
    ...(current.collisionCount === undefined ? {} : { collisionCount: current.collisionCount }),
  };
  if (available >= d.replicas - d.maxUnavailable) setCondition(status, newCondition('Available', 'True', REASON.minimumReplicasAvailable, 'Deployment has minimum availability.', nowMs));
  else setCondition(status, newCondition('Available', 'False', REASON.minimumReplicasUnavailable, 'Deployment does not have minimum availability.', nowMs));
  return status;
}

/** Every replica updated and available, and the latest spec observed (DeploymentComplete). */
export function deploymentComplete(d: DeploymentView, status: DeploymentStatus): boolean {
  return (status.updatedReplicas ?? 0) === d.replicas && (status.replicas ?? 0) === d.replicas && (status.availableReplicas ?? 0) === d.replicas && (status.observedGeneration ?? 0) >= d.generation;
}

/** More updated, fewer old, more ready or more available replicas than last reported (DeploymentProgressing). */
export function deploymentProgressing(old: DeploymentStatus, next: DeploymentStatus): boolean {
  const oldReplicas = (status: DeploymentStatus): number => (status.replicas ?? 0) - (status.updatedReplicas ?? 0);
  return (
    (next.updatedReplicas ?? 0) > (old.updatedReplicas ?? 0) ||
    oldReplicas(next) < oldReplicas(old) ||
    (next.readyReplicas ?? 0) > (old.readyReplicas ?? 0) ||
    (next.availableReplicas ?? 0) > (old.availableReplicas ?? 0)
  );
}

/** When the Progressing condition's lastUpdateTime is older than the deadline (DeploymentTimedOut). */
export function progressDeadlineMs(d: DeploymentView, status: DeploymentStatus): number | undefined {
  if (!hasProgressDeadline(d)) return undefined;
  const condition = conditionOf(status, 'Progressing');
  if (condition === undefined || condition.reason === REASON.newReplicaSetAvailable || condition.reason === REASON.timedOut) return undefined;
  const fromMs = parseTimestampMs(condition.lastUpdateTime);
  return fromMs === undefined ? undefined : fromMs + d.progressDeadlineSeconds * 1000;
}

function deploymentTimedOut(d: DeploymentView, status: DeploymentStatus, nowMs: number): boolean {
  if (conditionOf(status, 'Progressing')?.reason === REASON.timedOut) return true;
  const deadlineMs = progressDeadlineMs(d, status);
  return deadlineMs !== undefined && deadlineMs < nowMs;
}

/** A ReplicaFailure condition of the new ReplicaSet, else of any (getReplicaFailures). */
function replicaFailure(all: readonly ReplicaSet[], newRS: ReplicaSet | undefined): Condition | undefined {
  const failureOf = (rs: ReplicaSet | undefined): Condition | undefined => (rs?.status?.conditions ?? []).find((condition) => condition.type === 'ReplicaFailure');
  const failure = failureOf(newRS) ?? all.map(failureOf).find((condition) => condition !== undefined);
  if (failure === undefined) return undefined;
  return { type: 'ReplicaFailure', status: failure.status, lastUpdateTime: failure.lastTransitionTime, lastTransitionTime: failure.lastTransitionTime, reason: failure.reason, message: failure.message };
}

/**
 * Kubernetes' syncRolloutStatus: the status of a rollout, with Progressing
 * True NewReplicaSetAvailable once complete, its lastUpdateTime refreshed
 * (ReplicaSetUpdated) whenever something progressed, and False
 * ProgressDeadlineExceeded once nothing has for progressDeadlineSeconds.
 */
export function rolloutStatus(d: DeploymentView, current: DeploymentStatus, all: readonly ReplicaSet[], newRS: ReplicaSet | undefined, nowMs: number): DeploymentStatus {
  const status = calculateStatus(d, current, all, newRS, nowMs);
  if (!hasProgressDeadline(d)) removeCondition(status, 'Progressing');
  const progressing = conditionOf(current, 'Progressing');
  const complete = status.replicas === status.updatedReplicas && progressing?.reason === REASON.newReplicaSetAvailable;
  if (hasProgressDeadline(d) && !complete) {
    const subject = newRS === undefined ? `Deployment "${d.name}"` : `ReplicaSet "${newRS.metadata?.name ?? ''}"`;
    if (deploymentComplete(d, status)) {
      setCondition(status, newCondition('Progressing', 'True', REASON.newReplicaSetAvailable, `${subject} has successfully progressed.`, nowMs));
    } else if (deploymentProgressing(current, status)) {
      // Progress refreshes lastUpdateTime even with the same reason (the deadline counts from it).
      const condition = newCondition('Progressing', 'True', REASON.replicaSetUpdated, `${subject} is progressing.`, nowMs);
      if (progressing?.status === 'True') condition.lastTransitionTime = progressing.lastTransitionTime;
      removeCondition(status, 'Progressing');
      setCondition(status, condition);
    } else if (deploymentTimedOut(d, status, nowMs)) {
      setCondition(status, newCondition('Progressing', 'False', REASON.timedOut, `${subject} has timed out progressing.`, nowMs));
    }
  }
  const failure = replicaFailure(all, newRS);
  if (failure !== undefined) setCondition(status, failure);
  else removeCondition(status, 'ReplicaFailure');
  return status;
}

/** When to look again for a stuck rollout's deadline: a second after it passes (requeueStuckDeployment). */
export function recheckAfterMs(d: DeploymentView, status: DeploymentStatus, nowMs: number): number | undefined {
  if (deploymentComplete(d, status)) return undefined;
  const deadlineMs = progressDeadlineMs(d, status);
  return deadlineMs === undefined ? undefined : Math.max(deadlineMs - nowMs, 0) + 1000;
}
