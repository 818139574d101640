// The CronJob controller's pure decision under a fake clock: missed
// schedules, startingDeadlineSeconds, each concurrency policy, history
// limits, and the status it keeps.

import { expect } from 'chai';
import type { CronJob, Job } from '../../proto/gen/resources/v1/batch.js';
import { jobNameFor, planCronJob, SCHEDULED_TIMESTAMP_ANNOTATION } from '../../services/controllers/cronjob/reconcile.js';

const at = (text: string): number => Date.parse(text);
const stamp = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');
const CREATED = '2026-01-01T00:00:30Z';

function cronJob(spec: CronJob['spec'] = {}, status: CronJob['status'] = {}): CronJob {
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'report', namespace: 'ops', uid: 'cj-uid', creationTimestamp: CREATED },
    spec: {
      schedule: '*/5 * * * *',
      jobTemplate: { metadata: { labels: { app: 'report' }, annotations: { team: 'ops' } }, spec: { backoffLimit: 2, template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'c', image: 'busybox' }] } } } },
      ...spec,
    },
    status,
  };
}

type JobState = 'active' | 'Complete' | 'Failed';
function job(scheduled: string, state: JobState, options: { ownerUid?: string; finishedAt?: string } = {}): Job {
  const scheduledMs = at(scheduled);
  const finished = state === 'active' ? undefined : (options.finishedAt ?? stamp(scheduledMs + 60_000));
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: `report-${scheduledMs / 60_000}`,
      namespace: 'ops',
      uid: `job-${scheduledMs / 60_000}`,
      resourceVersion: '7',
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'report', uid: options.ownerUid ?? 'cj-uid', controller: true }],
    },
    status: {
      startTime: scheduled,
      ...(finished === undefined ? {} : { conditions: [{ type: state, status: 'True' }], ...(state === 'Complete' ? { completionTime: finished } : {}) }),
    },
  };
}

const reference = (owned: Job) => ({ apiVersion: 'batch/v1', kind: 'Job', namespace: 'ops', name: owned.metadata?.name, uid: owned.metadata?.uid, resourceVersion: '7' });
const deleted = (plan: ReturnType<typeof planCronJob>): string[] => plan.deleteJobs.map((one) => one.metadata?.name ?? '');

describe('controllers: cronjob', function () {
  it('starts nothing before the first schedule, and asks to be synced at it', function () {
    const plan = planCronJob(cronJob(), [], at('2026-01-01T00:04:00Z'));
    expect(plan.createJob).to.equal(undefined);
    expect(plan.nextScheduleMs).to.equal(at('2026-01-01T00:05:00Z'));
    expect(plan.status).to.deep.equal({});
  });

  it('creates the Job for a schedule, named with its minute, from the template', function () {
    const plan = planCronJob(cronJob(), [], at('2026-01-01T00:05:01Z'));
    expect(plan.createJob?.scheduledMs).to.equal(at('2026-01-01T00:05:00Z'));
    expect(plan.createJob?.job).to.deep.equal({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: `report-${at('2026-01-01T00:05:00Z') / 60_000}`,
        namespace: 'ops',
        labels: { app: 'report' },
        annotations: { team: 'ops', [SCHEDULED_TIMESTAMP_ANNOTATION]: '2026-01-01T00:05:00Z' },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'report', uid: 'cj-uid', controller: true, blockOwnerDeletion: true }],
      },
      spec: { backoffLimit: 2, template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    expect(jobNameFor(cronJob(), at('2026-01-01T00:05:00Z'))).to.equal('report-29453765');
    expect(plan.status.lastScheduleTime).to.equal('2026-01-01T00:05:00Z');
    expect(plan.nextScheduleMs).to.equal(at('2026-01-01T00:10:00Z'));
    // In a time zone, the annotation carries its offset.
    const paris = planCronJob(cronJob({ timeZone: 'Europe/Paris', schedule: '1 1 * * *' }), [], at('2026-01-01T00:01:40Z'));
    expect(paris.createJob?.job.metadata?.annotations?.[SCHEDULED_TIMESTAMP_ANNOTATION]).to.equal('2026-01-01T01:01:00+01:00');
  });

  it('runs only the most recent of several missed schedules', function () {
    const plan = planCronJob(cronJob({}, { lastScheduleTime: '2026-01-01T00:05:00Z' }), [], at('2026-01-01T00:22:00Z'));
    expect(plan.createJob?.scheduledMs).to.equal(at('2026-01-01T00:20:00Z'));
    expect(plan.events).to.deep.equal([]);
    const many = planCronJob(cronJob(), [], at('2026-01-02T00:00:00Z'));
    expect(many.createJob?.scheduledMs).to.equal(at('2026-01-02T00:00:00Z'));
    expect(many.events.map((event) => event.reason)).to.deep.equal(['TooManyMissedTimes']);
  });

  it('skips a schedule older than startingDeadlineSeconds', function () {
    const now = at('2026-01-01T00:07:00Z');
    expect(planCronJob(cronJob({ startingDeadlineSeconds: 60 }), [], now).createJob).to.equal(undefined);
    expect(planCronJob(cronJob({ startingDeadlineSeconds: 130 }), [], now).createJob?.scheduledMs).to.equal(at('2026-01-01T00:05:00Z'));
    // A deadline also bounds how far back missed schedules are counted.
    const late = planCronJob(cronJob({ startingDeadlineSeconds: 600 }), [], at('2026-01-02T00:03:00Z'));
    expect(late.createJob?.scheduledMs).to.equal(at('2026-01-02T00:00:00Z'));
    expect(late.events).to.deep.equal([]);
  });

  it('does not start a schedule twice', function () {
    expect(planCronJob(cronJob({}, { lastScheduleTime: '2026-01-01T00:05:00Z' }), [], at('2026-01-01T00:06:00Z')).createJob).to.equal(undefined);
    // Made before a crash lost the status write: recorded, listed as active, not made again.
    const made = job('2026-01-01T00:05:00Z', 'active');
    const plan = planCronJob(cronJob(), [made], at('2026-01-01T00:06:00Z'));
    expect(plan.createJob).to.equal(undefined);
    expect(plan.status).to.deep.equal({ lastScheduleTime: '2026-01-01T00:05:00Z', active: [reference(made)] });
  });

  it('Allow starts a Job while another is active; Forbid skips the schedule; Replace deletes the active one first', function () {
    const running = job('2026-01-01T00:05:00Z', 'active');
    const now = at('2026-01-01T00:10:01Z');
    const status = { lastScheduleTime: '2026-01-01T00:05:00Z', active: [reference(running)] };
    const allow = planCronJob(cronJob({ concurrencyPolicy: 'Allow' }, status), [running], now);
    expect(allow.createJob?.scheduledMs).to.equal(at('2026-01-01T00:10:00Z'));
    expect(allow.status.active).to.deep.equal([reference(running)]);
    expect(allow.deleteJobs).to.deep.equal([]);
    const forbid = planCronJob(cronJob({ concurrencyPolicy: 'Forbid' }, status), [running], now);
    expect(forbid.createJob).to.equal(undefined);
    expect(forbid.status).to.deep.equal(status);
    expect(forbid.events).to.deep.equal([{ type: 'Normal', reason: 'JobAlreadyActive', message: 'Not starting job because prior execution is running and concurrency policy is Forbid' }]);
    expect(forbid.nextScheduleMs).to.equal(at('2026-01-01T00:15:00Z'));
    // Once it finishes, the skipped schedule runs (it is still the most recent), as in Kubernetes.
    const done = job('2026-01-01T00:05:00Z', 'Complete', { finishedAt: '2026-01-01T00:11:00Z' });
    const after = planCronJob(cronJob({ concurrencyPolicy: 'Forbid' }, status), [done], at('2026-01-01T00:11:30Z'));
    expect(after.createJob?.scheduledMs).to.equal(at('2026-01-01T00:10:00Z'));
    expect(after.status).to.deep.equal({ lastScheduleTime: '2026-01-01T00:10:00Z', lastSuccessfulTime: '2026-01-01T00:11:00Z' });
    const replace = planCronJob(cronJob({ concurrencyPolicy: 'Replace' }, status), [running], now);
    expect(deleted(replace)).to.deep.equal([running.metadata?.name]);
    expect(replace.createJob?.scheduledMs).to.equal(at('2026-01-01T00:10:00Z'));
    expect(replace.status.active).to.equal(undefined);
  });

  it('keeps status.active and lastSuccessfulTime with the Jobs', function () {
    const finished = job('2026-01-01T00:05:00Z', 'Complete', { finishedAt: '2026-01-01T00:06:00Z' });
    const failed = job('2026-01-01T00:10:00Z', 'Failed');
    const running = job('2026-01-01T00:15:00Z', 'active');
    const gone = { ...reference(job('2026-01-01T00:00:00Z', 'active')) };
    const theirs = job('2026-01-01T00:20:00Z', 'active', { ownerUid: 'other' });
    const plan = planCronJob(
      cronJob({}, { lastScheduleTime: '2026-01-01T00:15:00Z', lastSuccessfulTime: '2026-01-01T00:01:00Z', active: [reference(finished), reference(failed), gone] }),
      [finished, failed, running, theirs],
      at('2026-01-01T00:16:00Z'),
    );
    expect(plan.status).to.deep.equal({ lastScheduleTime: '2026-01-01T00:15:00Z', lastSuccessfulTime: '2026-01-01T00:06:00Z', active: [reference(running)] });
    expect(plan.events.map((event) => `${event.reason}: ${event.message}`)).to.deep.equal([`SawCompletedJob: Saw completed job: ${finished.metadata?.name}, condition: Complete`, `SawCompletedJob: Saw completed job: ${failed.metadata?.name}, condition: Failed`]);
  });

  it('deletes the oldest finished Jobs beyond the history limits', function () {
    const complete = ['00:05', '00:10', '00:15', '00:20', '00:25'].map((minute) => job(`2026-01-01T${minute}:00Z`, 'Complete'));
    const failed = ['00:30', '00:35', '00:40'].map((minute) => job(`2026-01-01T${minute}:00Z`, 'Failed'));
    const running = job('2026-01-01T00:45:00Z', 'active');
    const all = [...complete, ...failed, running];
    const status = { lastScheduleTime: '2026-01-01T00:45:00Z', active: [reference(running)] };
    const defaults = planCronJob(cronJob({}, status), all, at('2026-01-01T00:46:00Z'));
    expect(deleted(defaults)).to.deep.equal([complete[0]!, complete[1]!, failed[0]!, failed[1]!].map((one) => one.metadata?.name));
    const none = planCronJob(cronJob({ successfulJobsHistoryLimit: 0, failedJobsHistoryLimit: 0 }, status), all, at('2026-01-01T00:46:00Z'));
    expect(none.deleteJobs).to.have.length(8);
    expect(planCronJob(cronJob({ successfulJobsHistoryLimit: 10, failedJobsHistoryLimit: 10 }, status), all, at('2026-01-01T00:46:00Z')).deleteJobs).to.deep.equal([]);
  });

  it('starts nothing while suspended, with a bad schedule or time zone (saying why)', function () {
    const suspended = planCronJob(cronJob({ suspend: true }), [], at('2026-01-01T00:06:00Z'));
    expect(suspended.createJob).to.equal(undefined);
    expect(suspended.nextScheduleMs).to.equal(undefined);
    const bad = planCronJob(cronJob({ schedule: '*/5 * * * MOO' }), [], at('2026-01-01T00:06:00Z'));
    expect(bad.createJob).to.equal(undefined);
    expect(bad.events).to.have.length(1);
    expect(bad.events[0]).to.deep.include({ type: 'Warning', reason: 'UnparseableSchedule' });
    expect(bad.events[0]!.message).to.contain('day-of-week');
    const zone = planCronJob(cronJob({ timeZone: 'Nowhere/Land' }), [], at('2026-01-01T00:06:00Z'));
    expect(zone.createJob).to.equal(undefined);
    expect(zone.events.map((event) => event.reason)).to.deep.equal(['UnknownTimeZone']);
  });
});
