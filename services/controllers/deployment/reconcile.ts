// The Deployment controller's decision, as a pure function of the
// Deployment, the ReplicaSets and pods of its namespace and the time — the
// order of Kubernetes' syncDeployment:
//  1. claim: adopt orphan ReplicaSets its selector picks, release owned
//     ones it no longer picks (and decide nothing else until that is done);
//  2. being deleted: the status only;
//  3. the Progressing condition says when it is paused and resumed;
//  4. paused, or replicas changed: scale without rolling out;
//  5. otherwise roll out by the strategy (reconcile-rollout.ts).
// The result is the writes: a ReplicaSet to create (named
// <deployment>-<pod-template-hash>, so creating it twice fails instead of
// doubling it), ReplicaSets to update (as read, changed) and to delete
// (history), the revision annotation of the Deployment, and its status.

import type { Deployment, DeploymentStatus, ReplicaSet } from '../../../proto/gen/resources/v1/apps.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import { selectorMatches } from '../common/reconcile-selector.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { canonicalJson, hasProgressDeadline, ownerReferenceTo, REVISION_ANNOTATION, sameTemplate, viewOf, type DeploymentView } from './reconcile-replicasets.js';
import { isScalingEvent, rolloutRecreate, rolloutRolling, syncScale, type Outcome } from './reconcile-rollout.js';
import { calculateStatus, conditionOf, newCondition, REASON, setCondition } from './reconcile-status.js';
import { present, Work } from './reconcile-work.js';

export interface DeploymentPlan {
  readonly adopt: ReplicaSet[];
  readonly release: ReplicaSet[];
  readonly create: ReplicaSet | undefined;
  /** Whole ReplicaSets to write, at the resourceVersion they were read at. */
  readonly update: ReplicaSet[];
  readonly delete: ReplicaSet[];
  /** The Deployment's new deployment.kubernetes.io/revision, when it changes. */
  readonly revision: string | undefined;
  /** The Deployment's new status, when it changes. */
  readonly status: DeploymentStatus | undefined;
  /** Sync again after this long (the progress deadline). */
  readonly recheckAfterMs: number | undefined;
}

const NOTHING: DeploymentPlan = { adopt: [], release: [], create: undefined, update: [], delete: [], revision: undefined, status: undefined, recheckAfterMs: undefined };

/** No selector, or an empty one (which would select every pod). */
function emptySelector(d: DeploymentView): boolean {
  return d.selector === undefined || (Object.keys(d.selector.matchLabels ?? {}).length === 0 && (d.selector.matchExpressions ?? []).length === 0);
}

/** Kubernetes' ClaimReplicaSets: the owned ReplicaSets, and the ownership changes to make first. */
export function claimReplicaSets(d: DeploymentView, replicaSets: readonly ReplicaSet[]): { owned: ReplicaSet[]; adopt: ReplicaSet[]; release: ReplicaSet[] } {
  const owned: ReplicaSet[] = [];
  const adopt: ReplicaSet[] = [];
  const release: ReplicaSet[] = [];
  for (const rs of replicaSets) {
    if (rs.metadata?.namespace !== d.namespace) continue;
    const controller = controllerOf(rs);
    const matches = selectorMatches(d.selector, rs.metadata.labels);
    if (controller !== undefined) {
      if (controller.uid !== d.uid) continue;
      if (matches) owned.push(rs);
      else if (!d.deleting) release.push(rs);
    } else if (matches && !d.deleting && rs.metadata.deletionTimestamp === undefined) {
      adopt.push(rs);
    }
  }
  return { owned, adopt, release };
}

/** Kubernetes' checkPausedConditions (a reported deadline is never overwritten). */
function notePaused(work: Work): void {
  const d = work.d;
  if (!hasProgressDeadline(d)) return;
  const reason = conditionOf(work.status, 'Progressing')?.reason;
  if (reason === REASON.timedOut) return;
  if (d.paused && reason !== REASON.paused) setCondition(work.status, newCondition('Progressing', 'Unknown', REASON.paused, 'Deployment is paused', work.nowMs));
  else if (!d.paused && reason === REASON.paused) setCondition(work.status, newCondition('Progressing', 'Unknown', REASON.resumed, 'Deployment is resumed', work.nowMs));
}

function decide(work: Work, pods: readonly Pod[]): Outcome {
  const d = work.d;
  if (d.deleting) {
    const { newRS, oldRSs } = work.syncRevision(false);
    return { status: calculateStatus(d, work.status, present([...oldRSs, newRS]), newRS, work.nowMs), recheckAfterMs: undefined };
  }
  notePaused(work);
  if (d.paused || isScalingEvent(work)) return syncScale(work);
  return d.strategy === 'Recreate' ? rolloutRecreate(work, pods) : rolloutRolling(work);
}

/**
 * What to write for one Deployment. `replicaSets` and `pods` are those of
 * its namespace (the plan picks its own). Throws DeploymentSpecError for a
 * spec it cannot act on.
 */
export function planDeployment(deployment: Deployment, replicaSets: readonly ReplicaSet[], pods: readonly Pod[], nowMs: number): DeploymentPlan {
  const d = viewOf(deployment);
  const current = deployment.status ?? {};
  if (emptySelector(d)) {
    // Kubernetes refuses to act on a selector that picks every pod; it only records that it saw the spec.
    return (current.observedGeneration ?? 0) < d.generation ? { ...NOTHING, status: { ...current, observedGeneration: d.generation } } : NOTHING;
  }
  const { owned, adopt, release } = claimReplicaSets(d, replicaSets);
  if (adopt.length > 0 || release.length > 0) return { ...NOTHING, adopt, release };
  const names = new Set(replicaSets.filter((rs) => rs.metadata?.namespace === d.namespace).map((rs) => rs.metadata?.name ?? ''));
  const work = new Work(d, owned, (name) => names.has(name), nowMs);
  const outcome = decide(work, pods);
  const revision = work.revision !== undefined && work.revision !== deployment.metadata?.annotations?.[REVISION_ANNOTATION] ? work.revision : undefined;
  return {
    adopt: [],
    release: [],
    create: work.created,
    update: work.updates(),
    delete: work.deletes(),
    revision,
    status: canonicalJson(outcome.status) === canonicalJson(current) ? undefined : outcome.status,
    recheckAfterMs: outcome.recheckAfterMs,
  };
}

/** After a create failed with AlreadyExists: whether the ReplicaSet there is this Deployment's for its template (else a hash collision). */
export function isNewReplicaSetOf(deployment: Deployment, rs: ReplicaSet): boolean {
  const d = viewOf(deployment);
  return controllerOf(rs)?.uid === d.uid && sameTemplate(rs.spec?.template, d.template);
}

export { ownerReferenceTo, viewOf };
export { DeploymentSpecError, templateHash, REVISION_ANNOTATION, CHANGE_CAUSE_ANNOTATION, POD_TEMPLATE_HASH_LABEL } from './reconcile-replicasets.js';
