// The CronJob controller's decision, as a pure function of the CronJob, the
// Jobs of its namespace and the time, following Kubernetes' cronjob
// controller (v2):
//  - status.active follows the CronJob's unfinished Jobs; a finished one
//    leaves it and moves lastSuccessfulTime forward when it completed;
//  - finished Jobs beyond successfulJobsHistoryLimit (3) and
//    failedJobsHistoryLimit (1) are deleted, the oldest first;
//  - unless suspended, the most recent schedule missed since
//    lastScheduleTime (or creation; no earlier than startingDeadlineSeconds
//    ago) starts a Job named <cronjob>-<scheduled minutes since the epoch>,
//    unless it is too late, already started, or a Job is still active and
//    concurrencyPolicy is Forbid; with Replace, the active Jobs go first;
//  - and the CronJob is synced again at its next schedule.

import type { CronJob, CronJobStatus, Job } from '../../../proto/gen/resources/v1/batch.js';
import type { ObjectReference } from '../../../proto/gen/resources/v1/core.js';
import type { OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { formatTimestamp, parseTimestampMs } from '../../client/timestamps.js';
import { jobFinishedType, type PlanEvent } from '../job/reconcile.js';
import { MINUTE_MS, timeZone, UnknownTimeZoneError, type TimeZone } from './reconcile-calendar.js';
import { CronSyntaxError, MAX_MISSED_SCHEDULES, missedSchedules, nextRun, parseCron, type CronSchedule } from './reconcile-cron.js';

export const SCHEDULED_TIMESTAMP_ANNOTATION = 'batch.kubernetes.io/cronjob-scheduled-timestamp';
export const DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT = 3;
export const DEFAULT_FAILED_JOBS_HISTORY_LIMIT = 1;

export interface CronJobPlan {
  /** Jobs to delete (Replace, then history limits), in this order. */
  readonly deleteJobs: Job[];
  /** The Job to create, and the schedule it is for. */
  readonly createJob: { readonly job: Job; readonly scheduledMs: number } | undefined;
  /** The status to write; a created Job is added to status.active by the caller, which learns its uid. */
  readonly status: CronJobStatus;
  /** When the next schedule comes (sync again then), if one does. */
  readonly nextScheduleMs: number | undefined;
  readonly events: PlanEvent[];
}

/** Kubernetes' getJobName: the scheduled time in minutes, so a schedule makes at most one Job. */
export function jobNameFor(cronJob: CronJob, scheduledMs: number): string {
  return `${cronJob.metadata?.name ?? ''}-${Math.floor(scheduledMs / MINUTE_MS)}`;
}

export function cronJobOwnerReference(cronJob: CronJob): OwnerReference {
  return { apiVersion: 'batch/v1', kind: 'CronJob', name: cronJob.metadata?.name ?? '', uid: cronJob.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true };
}

export function jobReference(job: Job): ObjectReference {
  return { apiVersion: 'batch/v1', kind: 'Job', namespace: job.metadata?.namespace ?? '', name: job.metadata?.name ?? '', uid: job.metadata?.uid ?? '', resourceVersion: job.metadata?.resourceVersion ?? '' };
}

/** The Job for one schedule, from spec.jobTemplate (Kubernetes' getJobFromTemplate2). */
export function jobForSchedule(cronJob: CronJob, scheduledMs: number, zone: TimeZone): Job {
  const template = cronJob.spec?.jobTemplate ?? {};
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: jobNameFor(cronJob, scheduledMs),
      namespace: cronJob.metadata?.namespace ?? 'default',
      ...(template.metadata?.labels ? { labels: { ...template.metadata.labels } } : {}),
      annotations: { ...(template.metadata?.annotations ?? {}), [SCHEDULED_TIMESTAMP_ANNOTATION]: formatTimestamp(scheduledMs, zone.offsetMs(scheduledMs)) },
      ownerReferences: [cronJobOwnerReference(cronJob)],
    },
    ...(template.spec ? { spec: structuredClone(template.spec) } : {}),
  };
}

/** Kubernetes' byJobStartTime: by status.startTime (Jobs without one last), then by name. */
function byStartTime(a: Job, b: Job): number {
  const startA = parseTimestampMs(a.status?.startTime);
  const startB = parseTimestampMs(b.status?.startTime);
  if (startA === undefined || startB === undefined) {
    if (startA !== startB) return startA === undefined ? 1 : -1;
  } else if (startA !== startB) {
    return startA - startB;
  }
  return (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
}

/** The oldest of `jobs` beyond `limit`. */
function beyondLimit(jobs: readonly Job[], limit: number): Job[] {
  if (jobs.length <= limit) return [];
  return [...jobs].sort(byStartTime).slice(0, jobs.length - Math.max(0, limit));
}

function completionMs(job: Job): number | undefined {
  return parseTimestampMs(job.status?.completionTime);
}

/** status.active and lastSuccessfulTime from the owned Jobs (Kubernetes' syncCronJob, first half). */
function followJobs(cronJob: CronJob, owned: readonly Job[], events: PlanEvent[]): CronJobStatus {
  const status: CronJobStatus = structuredClone(cronJob.status ?? {});
  const byUid = new Map(owned.map((job) => [job.metadata?.uid ?? '', job]));
  const active: ObjectReference[] = [];
  for (const reference of status.active ?? []) {
    const job = byUid.get(reference.uid ?? '');
    // Gone: the caller has checked with the API server that it is.
    if (job === undefined) continue;
    const finished = jobFinishedType(job);
    if (finished !== undefined) {
      events.push({ type: 'Normal', reason: 'SawCompletedJob', message: `Saw completed job: ${job.metadata?.name ?? ''}, condition: ${finished}` });
      continue;
    }
    active.push(reference);
  }
  const listed = new Set(active.map((reference) => reference.uid));
  // A Job of ours that is unfinished but not listed: made just before a crash lost the status write. It is active all the same.
  for (const job of owned) {
    if (jobFinishedType(job) === undefined && job.metadata?.deletionTimestamp === undefined && !listed.has(job.metadata?.uid ?? '')) active.push(jobReference(job));
  }
  let lastSuccessMs = parseTimestampMs(status.lastSuccessfulTime);
  for (const job of owned) {
    const doneMs = completionMs(job);
    if (jobFinishedType(job) === 'Complete' && doneMs !== undefined && (lastSuccessMs === undefined || doneMs > lastSuccessMs)) lastSuccessMs = doneMs;
  }
  if (lastSuccessMs !== undefined && lastSuccessMs !== parseTimestampMs(status.lastSuccessfulTime)) status.lastSuccessfulTime = formatTimestamp(lastSuccessMs);
  if (active.length > 0) status.active = active;
  else delete status.active;
  return status;
}

/** The finished Jobs beyond the history limits (Kubernetes' cleanupFinishedJobs). */
function historyToDelete(cronJob: CronJob, owned: readonly Job[]): Job[] {
  const successfulLimit = cronJob.spec?.successfulJobsHistoryLimit ?? DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT;
  const failedLimit = cronJob.spec?.failedJobsHistoryLimit ?? DEFAULT_FAILED_JOBS_HISTORY_LIMIT;
  const live = owned.filter((job) => job.metadata?.deletionTimestamp === undefined);
  return [...beyondLimit(live.filter((job) => jobFinishedType(job) === 'Complete'), successfulLimit), ...beyondLimit(live.filter((job) => jobFinishedType(job) === 'Failed'), failedLimit)];
}

function scheduleOf(cronJob: CronJob, events: PlanEvent[]): { schedule: CronSchedule; zone: TimeZone } | undefined {
  let zone: TimeZone;
  try {
    zone = timeZone(cronJob.spec?.timeZone);
  } catch (error) {
    if (!(error instanceof UnknownTimeZoneError)) throw error;
    events.push({ type: 'Warning', reason: 'UnknownTimeZone', message: `invalid timeZone: ${JSON.stringify(cronJob.spec?.timeZone)}: ${error.message}` });
    return undefined;
  }
  try {
    return { schedule: parseCron(cronJob.spec?.schedule ?? ''), zone };
  } catch (error) {
    if (!(error instanceof CronSyntaxError)) throw error;
    events.push({ type: 'Warning', reason: 'UnparseableSchedule', message: `unparseable schedule: ${error.message}` });
    return undefined;
  }
}

export function planCronJob(cronJob: CronJob, jobs: readonly Job[], nowMs: number): CronJobPlan {
  const uid = cronJob.metadata?.uid ?? '';
  const namespace = cronJob.metadata?.namespace ?? 'default';
  const owned = jobs.filter((job) => (job.metadata?.namespace ?? 'default') === namespace && controllerOf(job)?.uid === uid);
  const events: PlanEvent[] = [];
  const status = followJobs(cronJob, owned, events);
  const history = historyToDelete(cronJob, owned);
  const idle = (nextScheduleMs: number | undefined): CronJobPlan => ({ deleteJobs: history, createJob: undefined, status, nextScheduleMs, events });
  if (cronJob.metadata?.deletionTimestamp !== undefined) return idle(undefined);
  const parsed = scheduleOf(cronJob, events);
  if (parsed === undefined || cronJob.spec?.suspend === true) return idle(undefined);
  const { schedule, zone } = parsed;
  const nextScheduleMs = nextRun(schedule, nowMs, zone);
  const deadlineSeconds = cronJob.spec?.startingDeadlineSeconds;
  let earliestMs = parseTimestampMs(status.lastScheduleTime) ?? parseTimestampMs(cronJob.metadata?.creationTimestamp) ?? nowMs;
  if (deadlineSeconds !== undefined) earliestMs = Math.max(earliestMs, nowMs - deadlineSeconds * 1000);
  const { mostRecentMs, missed } = missedSchedules(schedule, earliestMs, nowMs, zone);
  if (mostRecentMs === undefined) return idle(nextScheduleMs);
  if (missed > MAX_MISSED_SCHEDULES) {
    events.push({ type: 'Warning', reason: 'TooManyMissedTimes', message: `too many missed start times: more than ${MAX_MISSED_SCHEDULES}. Set or decrease .spec.startingDeadlineSeconds or check clock skew` });
  }
  if (deadlineSeconds !== undefined && mostRecentMs + deadlineSeconds * 1000 < nowMs) {
    events.push({ type: 'Warning', reason: 'MissSchedule', message: `Missed scheduled time to start a job: ${formatTimestamp(mostRecentMs)}` });
    return idle(nextScheduleMs);
  }
  const name = jobNameFor(cronJob, mostRecentMs);
  if (parseTimestampMs(status.lastScheduleTime) === mostRecentMs || jobs.some((job) => job.metadata?.namespace === namespace && job.metadata?.name === name)) {
    // Already started (perhaps before a crash lost the status write): record it, start nothing.
    if (owned.some((job) => job.metadata?.name === name)) status.lastScheduleTime = formatTimestamp(mostRecentMs);
    return idle(nextScheduleMs);
  }
  const active = status.active ?? [];
  const policy = cronJob.spec?.concurrencyPolicy ?? 'Allow';
  if (policy === 'Forbid' && active.length > 0) {
    events.push({ type: 'Normal', reason: 'JobAlreadyActive', message: 'Not starting job because prior execution is running and concurrency policy is Forbid' });
    return idle(nextScheduleMs);
  }
  const deleteJobs = [...history];
  if (policy === 'Replace' && active.length > 0) {
    const byUid = new Map(owned.map((job) => [job.metadata?.uid ?? '', job]));
    for (const reference of active) {
      const job = byUid.get(reference.uid ?? '');
      if (job !== undefined && !deleteJobs.includes(job)) deleteJobs.unshift(job);
    }
    delete status.active;
  }
  status.lastScheduleTime = formatTimestamp(mostRecentMs);
  return { deleteJobs, createJob: { job: jobForSchedule(cronJob, mostRecentMs, zone), scheduledMs: mostRecentMs }, status, nextScheduleMs, events };
}
