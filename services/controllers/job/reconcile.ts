// The Job controller's decision (NonIndexed and Indexed completion modes),
// as a pure function of the Job, the pods of its namespace and the time,
// following Kubernetes' job controller:
//  - pods come from spec.template, labelled with the Job's name and uid,
//    owned by the Job and carrying the batch.kubernetes.io/job-tracking
//    finalizer; orphans the selector picks are adopted, owned pods it no
//    longer picks are released;
//  - a finished pod (Succeeded, Failed, or deleted before it succeeded) is
//    counted exactly once through the finalizer (see JobTracking);
//  - active pods are kept at min(parallelism, completions - succeeded),
//    new ones only after the failure backoff (10 s doubling, at most 6 min);
//  - failed > backoffLimit (or, with restartPolicy OnFailure, container
//    restarts reaching it) fails the Job: BackoffLimitExceeded; running past
//    activeDeadlineSeconds from status.startTime fails it: DeadlineExceeded;
//    either way its active pods are deleted;
//  - enough successes complete it (Complete, completionTime);
//  - spec.suspend deletes the active pods and sets Suspended;
//  - Indexed: one pod per index 0..completions-1 (annotation, label,
//    hostname <job>-<index>, JOB_COMPLETION_INDEX), succeeded indexes in
//    status.completedIndexes ("0-2,5"), duplicates of an index deleted.
// The Complete or Failed condition is written only once every finished
// pod is counted (Kubernetes does the same).

import type { Job, JobStatus } from '../../../proto/gen/resources/v1/batch.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { Condition, OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { selectorMatches, type Labels } from '../common/reconcile-selector.js';
import { formatTimestamp, parseTimestampMs } from '../../client/timestamps.js';
import { claimObjects } from '../common/reconcile-claim.js';
import { isActive, isReady, isTerminating } from '../common/reconcile-pod.js';
import { deletionOrder } from '../replicaset/reconcile.js';

export const JOB_TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking';
export const CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid';
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';
export const LEGACY_CONTROLLER_UID_LABEL = 'controller-uid';
export const LEGACY_JOB_NAME_LABEL = 'job-name';
export const COMPLETION_INDEX_ANNOTATION = 'batch.kubernetes.io/job-completion-index';

/**
 * Where the Job's tracking state lives. Kubernetes keeps it in
 * status.uncountedTerminatedPods beside status.succeeded/failed, which
 * mast's JobStatus schema does not have; it lives in this annotation
 * instead, written by a resourceVersion-pinned patch, and status.succeeded
 * and status.failed report it. (A Job replaced without it starts again
 * from its status counts.)
 */
export const JOB_TRACKING_ANNOTATION = 'batch.mast.io/job-tracking';

/**
 * Counting each finished pod exactly once, across crashes and restarts
 * (Kubernetes' protocol, with the uid lists in the annotation):
 *  1. a finished pod that still has the finalizer and is in neither
 *     uncounted list is added to one — written to the Job before anything else;
 *  2. only then is the finalizer removed from the pods in the lists;
 *  3. a uid in a list whose pod no longer has the finalizer (or is gone)
 *     moves into the count — one atomic write of the annotation.
 * A crash between 1 and 2 repeats 2; between 2 and 3 the next sync does 3;
 * a pod without the finalizer and not in a list is never counted again, and
 * one cannot lose it before it is in a list. The count and the lists change
 * together, so neither double counting nor a lost count is possible.
 * An Indexed Job records succeeded indexes instead (a set: adding one twice
 * changes nothing), before their pods' finalizers come off, as Kubernetes does.
 */
export interface JobTracking {
  readonly succeeded: number;
  readonly failed: number;
  readonly uncountedSucceeded: readonly string[];
  readonly uncountedFailed: readonly string[];
  /** Indexed Jobs: the succeeded indexes, as status.completedIndexes writes them. */
  readonly completedIndexes?: string;
}

export interface JobPlanOptions {
  /** The first wait after a pod failure before a replacement (Kubernetes: 10 s), doubled per further failure... */
  readonly podFailureBackoffBaseMs: number;
  /** ...up to this (Kubernetes: 6 minutes). */
  readonly podFailureBackoffMaxMs: number;
}

export const DEFAULT_JOB_PLAN_OPTIONS: JobPlanOptions = { podFailureBackoffBaseMs: 10_000, podFailureBackoffMaxMs: 360_000 };

/** Kubernetes creates or deletes at most this many pods per sync of one Job (MaxPodCreateDeletePerSync). */
export const MAX_POD_CHANGES_PER_SYNC = 500;

export interface PlanEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface JobPlan {
  /** Orphans to own, adding the tracking finalizer. */
  readonly adopt: Pod[];
  /** Owned pods the selector no longer picks: let go, finalizer and all (uncounted). */
  readonly release: Pod[];
  /** The tracking state to write (pinned to the Job's resourceVersion) before any finalizer is removed; undefined: unchanged. */
  readonly tracking: JobTracking | undefined;
  /** Pods to take the tracking finalizer off, after the tracking state is written. */
  readonly removeFinalizers: Pod[];
  /** Pods to delete, after the finalizer removals. */
  readonly delete: Pod[];
  readonly create: Pod[];
  /** The status to write (when it differs from the Job's). */
  readonly status: JobStatus;
  /** Sync again after this long (a backoff or the active deadline), if set. */
  readonly requeueAfterMs: number | undefined;
  readonly events: PlanEvent[];
}

/** The pod still holds the tracking finalizer (its end is not counted yet). */
export const hasFinalizer = (pod: Pod): boolean => (pod.metadata?.finalizers ?? []).includes(JOB_TRACKING_FINALIZER);
const phaseOf = (pod: Pod): string => pod.status?.phase ?? '';
const isSucceeded = (pod: Pod): boolean => phaseOf(pod) === 'Succeeded';
/** Kubernetes' isPodFailed (podReplacementPolicy TerminatingOrFailed): a pod deleted before it succeeded counts as failed. */
const isFailed = (pod: Pod): boolean => phaseOf(pod) === 'Failed' || (isTerminating(pod) && !isSucceeded(pod));

/** 'Complete' or 'Failed' once the Job has finished, as Kubernetes' IsJobFinished. */
export function jobFinishedType(job: Job): 'Complete' | 'Failed' | undefined {
  for (const condition of job.status?.conditions ?? []) {
    if ((condition.type === 'Complete' || condition.type === 'Failed') && condition.status === 'True') return condition.type;
  }
  return undefined;
}

/** The tracking state the Job carries; a Job without one starts from its status counts. */
export function trackingOf(job: Job): JobTracking {
  const text = job.metadata?.annotations?.[JOB_TRACKING_ANNOTATION];
  if (text !== undefined) {
    try {
      const value = JSON.parse(text) as Partial<Record<keyof JobTracking, unknown>>;
      const count = (field: unknown): field is number => typeof field === 'number' && Number.isInteger(field) && field >= 0;
      const uids = (field: unknown): field is string[] => Array.isArray(field) && field.every((uid) => typeof uid === 'string');
      if (count(value.succeeded) && count(value.failed) && uids(value.uncountedSucceeded) && uids(value.uncountedFailed) && (value.completedIndexes === undefined || typeof value.completedIndexes === 'string')) {
        const tracking = { succeeded: value.succeeded, failed: value.failed, uncountedSucceeded: value.uncountedSucceeded, uncountedFailed: value.uncountedFailed };
        return value.completedIndexes === undefined ? tracking : { ...tracking, completedIndexes: value.completedIndexes };
      }
    } catch {
      // Not ours to trust: start again from the status, as for a Job without one.
    }
  }
  const fromStatus = { succeeded: job.status?.succeeded ?? 0, failed: job.status?.failed ?? 0, uncountedSucceeded: [], uncountedFailed: [] };
  return job.spec?.completionMode === 'Indexed' ? { ...fromStatus, completedIndexes: job.status?.completedIndexes ?? '' } : fromStatus;
}

export function encodeTracking(tracking: JobTracking): string {
  const { succeeded, failed, uncountedSucceeded, uncountedFailed, completedIndexes } = tracking;
  return JSON.stringify(completedIndexes === undefined ? { succeeded, failed, uncountedSucceeded, uncountedFailed } : { succeeded, failed, uncountedSucceeded, uncountedFailed, completedIndexes });
}

/** Kubernetes' compressed index lists: "0-2,5,7-8". Indexes at or beyond `completions` are dropped. */
export function parseIndexes(text: string | undefined, completions: number): Set<number> {
  const indexes = new Set<number>();
  for (const part of (text ?? '').split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (match === null) continue;
    const low = Number(match[1]);
    const high = Math.min(match[2] === undefined ? low : Number(match[2]), completions - 1);
    for (let index = low; index <= high; index++) indexes.add(index);
  }
  return indexes;
}

export function formatIndexes(indexes: ReadonlySet<number>): string {
  const sorted = [...indexes].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let start = 0; start < sorted.length; ) {
    let end = start;
    while (end + 1 < sorted.length && sorted[end + 1] === sorted[end]! + 1) end++;
    parts.push(end === start ? String(sorted[start]) : `${sorted[start]}-${sorted[end]}`);
    start = end + 1;
  }
  return parts.join(',');
}

/** An Indexed Job's pod's index (annotation, else label); undefined when missing or not a whole number. */
export function completionIndexOf(pod: Pod): number | undefined {
  const text = pod.metadata?.annotations?.[COMPLETION_INDEX_ANNOTATION] ?? pod.metadata?.labels?.[COMPLETION_INDEX_ANNOTATION];
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

function sameTracking(a: JobTracking, b: JobTracking): boolean {
  return encodeTracking(a) === encodeTracking(b);
}

export function jobOwnerReference(job: Job): OwnerReference {
  return { apiVersion: 'batch/v1', kind: 'Job', name: job.metadata?.name ?? '', uid: job.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** Whether the Job selects these labels: its selector, or (none given, as the API server would generate) its uid label. */
export function jobSelects(job: Job, labels: Labels): boolean {
  const selector = job.spec?.selector;
  if (selector !== undefined) return selectorMatches(selector, labels);
  return labels?.[CONTROLLER_UID_LABEL] === job.metadata?.uid;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Whether a uid can be a label value (a Kubernetes UUID always can; a uid starting or ending with "-" or "_" cannot). */
export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

/** A new pod from the Job's template (the server names it from generateName); for an Indexed Job, the pod of one index. */
export function podForJob(job: Job, index?: number): Pod {
  const template = job.spec?.template ?? {};
  const name = job.metadata?.name ?? '';
  const uid = job.metadata?.uid ?? '';
  // A uid that is no valid label value (the API server would refuse the pod) is left out of the labels.
  const uidLabels: Record<string, string> = isLabelValue(uid) ? { [CONTROLLER_UID_LABEL]: uid, [LEGACY_CONTROLLER_UID_LABEL]: uid } : {};
  const nameLabels: Record<string, string> = isLabelValue(name) ? { [JOB_NAME_LABEL]: name, [LEGACY_JOB_NAME_LABEL]: name } : {};
  const indexed: Record<string, string> = index === undefined ? {} : { [COMPLETION_INDEX_ANNOTATION]: String(index) };
  const annotations = { ...(template.metadata?.annotations ?? {}), ...indexed };
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: index === undefined ? `${name}-` : `${name}-${index}-`,
      namespace: job.metadata?.namespace ?? 'default',
      labels: { ...(template.metadata?.labels ?? {}), ...uidLabels, ...nameLabels, ...indexed },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      ownerReferences: [jobOwnerReference(job)],
      finalizers: [JOB_TRACKING_FINALIZER],
    },
    ...(template.spec ? { spec: structuredClone(template.spec) } : {}),
  };
  if (index !== undefined && pod.spec !== undefined) {
    if ((pod.spec.hostname ?? '') === '') pod.spec.hostname = `${name}-${index}`;
    const variable = { name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${COMPLETION_INDEX_ANNOTATION}']` } } };
    for (const container of [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])]) {
      if (!(container.env ?? []).some((env) => env.name === variable.name)) container.env = [...(container.env ?? []), variable];
    }
  }
  return pod;
}

/** When a pod finished, as Kubernetes' getFinishedTime: its containers' last finish, else its Ready=False transition, else its deletion, else its creation. */
export function podFinishedMs(pod: Pod): number {
  const finishes = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
    .map((status) => parseTimestampMs(status.state?.terminated?.finishedAt))
    .filter((ms): ms is number => ms !== undefined);
  if (finishes.length > 0) return Math.max(...finishes);
  const notReady = (pod.status?.conditions ?? []).find((condition) => condition.type === 'Ready' && condition.status === 'False');
  return parseTimestampMs(notReady?.lastTransitionTime) ?? parseTimestampMs(pod.metadata?.deletionTimestamp) ?? parseTimestampMs(pod.metadata?.creationTimestamp) ?? 0;
}

/**
 * How long until a replacement may be created, from the pods' own finish
 * times (so it survives restarts): each failure since the last success
 * doubles the wait after the last failure, as Kubernetes' backoff record.
 */
export function podFailureBackoffRemainingMs(pods: readonly Pod[], nowMs: number, options: JobPlanOptions): number {
  const lastSuccessMs = Math.max(-Infinity, ...pods.filter(isSucceeded).map(podFinishedMs));
  const failures = pods.filter((pod) => (phaseOf(pod) === 'Failed' || (isFailed(pod) && hasFinalizer(pod))) && podFinishedMs(pod) > lastSuccessMs).map(podFinishedMs);
  if (failures.length === 0) return 0;
  let backoffMs = options.podFailureBackoffBaseMs;
  for (let failure = 1; failure < failures.length && backoffMs < options.podFailureBackoffMaxMs; failure++) backoffMs *= 2;
  backoffMs = Math.min(backoffMs, options.podFailureBackoffMaxMs);
  return Math.max(0, Math.max(...failures) + backoffMs - nowMs);
}

/** Kubernetes' pastBackoffLimitOnFailure: with restartPolicy OnFailure, container restarts of running pods count against backoffLimit. */
function pastBackoffLimitOnFailure(job: Job, pods: readonly Pod[]): boolean {
  if (job.spec?.template?.spec?.restartPolicy !== 'OnFailure') return false;
  const restarts = pods
    .filter((pod) => phaseOf(pod) === 'Running' || phaseOf(pod) === 'Pending' || phaseOf(pod) === '')
    .flatMap((pod) => [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])])
    .reduce((sum, status) => sum + (status.restartCount ?? 0), 0);
  const limit = job.spec?.backoffLimit ?? 6;
  return limit === 0 ? restarts > 0 : restarts >= limit;
}

/** Kubernetes' ensureJobConditionStatus: replace a condition that differs; add one only if it is not False. */
function ensureCondition(conditions: Condition[], type: string, status: string, reason: string, message: string, now: string): boolean {
  const index = conditions.findIndex((condition) => condition.type === type);
  const fresh: Condition = { type, status, reason, message, lastProbeTime: now, lastTransitionTime: now };
  if (index >= 0) {
    const current = conditions[index]!;
    if (current.status === status && current.reason === reason && current.message === message) return false;
    conditions[index] = fresh;
    return true;
  }
  if (status === 'False') return false;
  conditions.push(fresh);
  return true;
}

interface Ownership {
  readonly owned: Pod[];
  readonly adopt: Pod[];
  readonly release: Pod[];
}

function claimPods(job: Job, pods: readonly Pod[], finished: boolean): Ownership {
  const namespace = job.metadata?.namespace ?? 'default';
  return claimObjects(
    {
      uid: job.metadata?.uid ?? '',
      deleting: job.metadata?.deletionTimestamp !== undefined,
      selects: (pod) => jobSelects(job, pod.metadata?.labels),
      adoptable: (pod) => !finished && isActive(pod),
      // Without a selector of its own a Job keeps what it owns (its generated selector would be its own label).
      keepUnselected: job.spec?.selector === undefined,
    },
    pods.filter((pod) => (pod.metadata?.namespace ?? 'default') === namespace),
  );
}

/** Step 3 of JobTracking: uids whose pods lost the finalizer (or are gone) move into the counts. */
function flushUncounted(tracking: JobTracking, owned: readonly Pod[]): JobTracking {
  const withFinalizer = new Set(owned.filter(hasFinalizer).map((pod) => pod.metadata?.uid ?? ''));
  const keepSucceeded = tracking.uncountedSucceeded.filter((uid) => withFinalizer.has(uid));
  const keepFailed = tracking.uncountedFailed.filter((uid) => withFinalizer.has(uid));
  return {
    ...tracking,
    succeeded: tracking.succeeded + tracking.uncountedSucceeded.length - keepSucceeded.length,
    failed: tracking.failed + tracking.uncountedFailed.length - keepFailed.length,
    uncountedSucceeded: keepSucceeded,
    uncountedFailed: keepFailed,
  };
}

/** Pods finished since the last count that still hold the finalizer (Kubernetes' getNewFinishedPods). */
function newlyFinished(tracking: JobTracking, owned: readonly Pod[]): { succeeded: Pod[]; failed: Pod[] } {
  const listed = new Set([...tracking.uncountedSucceeded, ...tracking.uncountedFailed]);
  const fresh = owned.filter((pod) => hasFinalizer(pod) && !listed.has(pod.metadata?.uid ?? ''));
  return { succeeded: fresh.filter(isSucceeded), failed: fresh.filter(isFailed) };
}

interface Management {
  readonly create: Pod[];
  readonly delete: Pod[];
  /** Pods deleted by management (scale down, suspend): their finalizer comes off first, so they are not counted as failures. */
  readonly untracked: Pod[];
  readonly requeueAfterMs: number | undefined;
}

const NO_CHANGE: Management = { create: [], delete: [], untracked: [], requeueAfterMs: undefined };

function deletePods(doomed: readonly Pod[]): Management {
  const limited = doomed.slice(0, MAX_POD_CHANGES_PER_SYNC);
  return { ...NO_CHANGE, delete: limited, untracked: limited.filter(hasFinalizer) };
}

/** Kubernetes' manageJob for NonIndexed Jobs: how many pods to add or remove. */
function manage(job: Job, owned: readonly Pod[], active: readonly Pod[], succeeded: number, nowMs: number, options: JobPlanOptions): Management {
  if (job.spec?.suspend === true) return deletePods([...active].sort(deletionOrder));
  const parallelism = Math.max(0, job.spec?.parallelism ?? 1);
  const completions = job.spec?.completions;
  const wantActive = completions === undefined ? (succeeded > 0 ? active.length : parallelism) : Math.max(0, Math.min(parallelism, completions - succeeded));
  if (active.length > wantActive) return deletePods([...active].sort(deletionOrder).slice(0, active.length - wantActive));
  if (active.length < wantActive) {
    const waitMs = podFailureBackoffRemainingMs(owned, nowMs, options);
    if (waitMs > 0) return { ...NO_CHANGE, requeueAfterMs: waitMs };
    const count = Math.min(wantActive - active.length, MAX_POD_CHANGES_PER_SYNC);
    return { ...NO_CHANGE, create: Array.from({ length: count }, () => podForJob(job)) };
  }
  return NO_CHANGE;
}

/**
 * manageJob for Indexed Jobs: one active pod per index not yet succeeded,
 * lowest indexes first, at most parallelism; pods of a succeeded index, of
 * an index taken twice, or without a valid index are deleted.
 */
function manageIndexed(job: Job, owned: readonly Pod[], active: readonly Pod[], completed: ReadonlySet<number>, nowMs: number, options: JobPlanOptions): Management {
  if (job.spec?.suspend === true) return deletePods([...active].sort(deletionOrder));
  const completions = job.spec?.completions ?? 1;
  const kept = new Map<number, Pod>();
  const doomed: Pod[] = [];
  // The best pod of an index (last in deletion order) is kept.
  for (const pod of [...active].sort(deletionOrder).reverse()) {
    const index = completionIndexOf(pod);
    if (index === undefined || index >= completions || completed.has(index) || kept.has(index)) doomed.push(pod);
    else kept.set(index, pod);
  }
  const wantActive = Math.max(0, Math.min(Math.max(0, job.spec?.parallelism ?? 1), completions - completed.size));
  if (kept.size > wantActive) doomed.push(...[...kept.values()].sort(deletionOrder).slice(0, kept.size - wantActive));
  if (doomed.length > 0) return deletePods(doomed);
  if (kept.size >= wantActive) return NO_CHANGE;
  const waitMs = podFailureBackoffRemainingMs(owned, nowMs, options);
  if (waitMs > 0) return { ...NO_CHANGE, requeueAfterMs: waitMs };
  const create: Pod[] = [];
  for (let index = 0; index < completions && create.length < Math.min(wantActive - kept.size, MAX_POD_CHANGES_PER_SYNC); index++) {
    if (!completed.has(index) && !kept.has(index)) create.push(podForJob(job, index));
  }
  return { ...NO_CHANGE, create };
}

interface Finish {
  readonly type: 'Complete' | 'Failed';
  readonly reason: string;
  readonly message: string;
}

/** The failure the Job has reached, if any, and when its deadline comes otherwise. */
function failure(job: Job, owned: readonly Pod[], failed: number, startMs: number | undefined, nowMs: number): { finish: Finish | undefined; deadlineInMs: number | undefined } {
  const suspended = job.spec?.suspend === true;
  if (failed > (job.spec?.backoffLimit ?? 6) || pastBackoffLimitOnFailure(job, owned)) {
    return { finish: { type: 'Failed', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }, deadlineInMs: undefined };
  }
  const deadlineSeconds = job.spec?.activeDeadlineSeconds;
  if (deadlineSeconds === undefined || startMs === undefined || suspended) return { finish: undefined, deadlineInMs: undefined };
  const leftMs = startMs + deadlineSeconds * 1000 - nowMs;
  if (leftMs <= 0) return { finish: { type: 'Failed', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' }, deadlineInMs: undefined };
  return { finish: undefined, deadlineInMs: leftMs };
}

/** The plan for a Job that has already finished: only finalizers left on its pods come off (Kubernetes' orphan cleanup). */
function planFinished(job: Job, ownership: Ownership): JobPlan {
  const removeFinalizers = ownership.owned.filter(hasFinalizer);
  return { adopt: [], release: ownership.release, tracking: undefined, removeFinalizers, delete: [], create: [], status: job.status ?? {}, requeueAfterMs: undefined, events: [] };
}

/** What the Job's pods have achieved: the tracking state with this sync's flush, and the counts to decide on. */
interface Progress {
  readonly stored: JobTracking;
  readonly flushed: JobTracking;
  /** Indexed Jobs' succeeded indexes, including those finished since the last count. */
  readonly completed: Set<number>;
  readonly succeeded: number;
  readonly failed: number;
  /** An Indexed Job's pod's index when valid; undefined for NonIndexed Jobs. */
  readonly indexOf: (pod: Pod) => number | undefined;
}

function progressOf(job: Job, owned: readonly Pod[]): Progress {
  const indexed = job.spec?.completionMode === 'Indexed';
  const completions = job.spec?.completions ?? 1;
  const stored = trackingOf(job);
  const flushed = flushUncounted(stored, owned);
  const fresh = newlyFinished(flushed, owned);
  // Indexed: a success counts by its index (once, whatever pods had it); a pod without a valid index counts for nothing.
  const indexOf = (pod: Pod): number | undefined => {
    const index = indexed ? completionIndexOf(pod) : undefined;
    return index !== undefined && index < completions ? index : undefined;
  };
  const completed = parseIndexes(flushed.completedIndexes, completions);
  for (const pod of fresh.succeeded) if (indexOf(pod) !== undefined) completed.add(indexOf(pod)!);
  const freshFailed = indexed ? fresh.failed.filter((pod) => indexOf(pod) !== undefined) : fresh.failed;
  return {
    stored,
    flushed,
    completed,
    succeeded: indexed ? completed.size : flushed.succeeded + flushed.uncountedSucceeded.length + fresh.succeeded.length,
    failed: flushed.failed + flushed.uncountedFailed.length + freshFailed.length,
    indexOf,
  };
}

/**
 * Steps 1 and 2 of JobTracking: list what finished and free those pods.
 * Once the Job has finished (or is being deleted) every pod is let go, and
 * one that did not succeed counts as failed.
 */
function track(job: Job, owned: readonly Pod[], progress: Progress, management: Management, letGo: boolean, failing: boolean): { tracking: JobTracking; removeFinalizers: Pod[] } {
  const indexed = job.spec?.completionMode === 'Indexed';
  const { flushed } = progress;
  const untracked = new Set(management.untracked.map((pod) => pod.metadata?.uid ?? ''));
  const uncountedSucceeded = [...flushed.uncountedSucceeded];
  const uncountedFailed = [...flushed.uncountedFailed];
  const removeFinalizers: Pod[] = [...management.untracked];
  const listed = new Set([...uncountedSucceeded, ...uncountedFailed]);
  for (const pod of owned) {
    const uid = pod.metadata?.uid ?? '';
    if (!hasFinalizer(pod) || untracked.has(uid)) continue;
    if (listed.has(uid)) {
      removeFinalizers.push(pod);
      continue;
    }
    if (!(isSucceeded(pod) || isFailed(pod) || letGo)) continue;
    removeFinalizers.push(pod);
    if (indexed && progress.indexOf(pod) === undefined) continue;
    if (isSucceeded(pod)) {
      // Indexed successes are already in progress.completed.
      if (!indexed) uncountedSucceeded.push(uid);
    } else if (isFailed(pod) || failing) {
      uncountedFailed.push(uid);
    }
  }
  const tracking = { ...flushed, uncountedSucceeded, uncountedFailed };
  return { tracking: indexed ? { ...tracking, completedIndexes: formatIndexes(progress.completed) } : tracking, removeFinalizers };
}

export function planJob(job: Job, pods: readonly Pod[], nowMs: number, options: JobPlanOptions = DEFAULT_JOB_PLAN_OPTIONS): JobPlan {
  const ownership = claimPods(job, pods, jobFinishedType(job) !== undefined);
  if (jobFinishedType(job) !== undefined) return planFinished(job, ownership);
  const now = formatTimestamp(nowMs);
  const { owned } = ownership;
  const deleting = job.metadata?.deletionTimestamp !== undefined;
  const suspended = job.spec?.suspend === true;
  const indexed = job.spec?.completionMode === 'Indexed';
  const completions = job.spec?.completions;
  const progress = progressOf(job, owned);
  const { succeeded } = progress;
  const active = owned.filter(isActive);
  const status: JobStatus = structuredClone(job.status ?? {});
  const conditions = status.conditions ?? [];
  const events: PlanEvent[] = [];
  if (status.startTime === undefined && !suspended) status.startTime = now;
  const { finish: failedWith, deadlineInMs } = failure(job, owned, progress.failed, parseTimestampMs(status.startTime), nowMs);
  let finish = failedWith;
  let management: Management = NO_CHANGE;
  if (finish !== undefined) {
    // A failed Job's active pods are deleted keeping their finalizers: each is counted as failed.
    management = { ...management, delete: [...active] };
  } else {
    if (!deleting) management = indexed ? manageIndexed(job, owned, active, progress.completed, nowMs, options) : manage(job, owned, active, succeeded, nowMs, options);
    const activeAfter = active.length + management.create.length - management.delete.length;
    const complete = completions === undefined ? succeeded > 0 && activeAfter === 0 : succeeded >= completions && activeAfter === 0;
    if (complete) finish = { type: 'Complete', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' };
    else if (!deleting && suspended) {
      if (ensureCondition(conditions, 'Suspended', 'True', 'JobSuspended', 'Job suspended', now)) events.push({ type: 'Normal', reason: 'Suspended', message: 'Job suspended' });
    } else if (!deleting && ensureCondition(conditions, 'Suspended', 'False', 'JobResumed', 'Job resumed', now)) {
      events.push({ type: 'Normal', reason: 'Resumed', message: 'Job resumed' });
      // activeDeadlineSeconds counts time continuously active: it starts again on resume.
      status.startTime = now;
    }
  }
  const { tracking, removeFinalizers } = track(job, owned, progress, management, finish !== undefined || deleting, finish !== undefined);
  // Kubernetes' enactJobFinished: the final condition waits until every finished pod is counted.
  if (finish !== undefined && tracking.uncountedSucceeded.length === 0 && tracking.uncountedFailed.length === 0) {
    ensureCondition(conditions, finish.type, 'True', finish.reason, finish.message, now);
    if (finish.type === 'Complete') status.completionTime = now;
    events.push(finish.type === 'Complete' ? { type: 'Normal', reason: 'Completed', message: 'Job completed' } : { type: 'Warning', reason: finish.reason, message: finish.message });
  }
  const deleted = new Set(management.delete.map((pod) => pod.metadata?.uid ?? ''));
  const remaining = active.filter((pod) => !deleted.has(pod.metadata?.uid ?? ''));
  status.active = remaining.length + management.create.length;
  status.ready = remaining.filter(isReady).length;
  status.terminating = owned.filter((pod) => isTerminating(pod) && !isSucceeded(pod) && phaseOf(pod) !== 'Failed').length + management.delete.length;
  status.succeeded = indexed ? progress.completed.size : tracking.succeeded + tracking.uncountedSucceeded.length;
  if (indexed) status.completedIndexes = formatIndexes(progress.completed);
  status.failed = tracking.failed + tracking.uncountedFailed.length;
  if (conditions.length > 0) status.conditions = conditions;
  const requeues = [management.requeueAfterMs, finish === undefined ? deadlineInMs : undefined].filter((ms): ms is number => ms !== undefined);
  return {
    adopt: ownership.adopt,
    release: ownership.release,
    // A Job without the annotation gets one only once there is something to track.
    tracking: sameTracking(tracking, progress.stored) ? undefined : tracking,
    removeFinalizers,
    delete: management.delete,
    create: management.create,
    status,
    requeueAfterMs: requeues.length === 0 ? undefined : Math.min(...requeues),
    events,
  };
}
