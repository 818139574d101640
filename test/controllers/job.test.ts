// The Job controller's pure decision: pods from the template, parallelism
// and completions arithmetic, counting finished pods exactly once through
// the tracking finalizer (also across a crash between any two writes),
// backoffLimit, the failure backoff, activeDeadlineSeconds, suspend.

import { expect } from 'chai';
import type { Job } from '../../proto/gen/resources/v1/batch.js';
import type { Pod } from '../../proto/gen/resources/v1/core.js';
import { COMPLETION_INDEX_ANNOTATION, DEFAULT_JOB_PLAN_OPTIONS, encodeTracking, formatIndexes, isLabelValue, JOB_TRACKING_ANNOTATION, JOB_TRACKING_FINALIZER, parseIndexes, planJob, podFailureBackoffRemainingMs, trackingOf, type JobPlan } from '../../services/controllers/job/reconcile.js';

const T0 = Date.parse('2026-11-25T12:00:00Z');
const stamp = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

function job(spec: Job['spec'] = {}, extra: Partial<Job> = {}): Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'pi', namespace: 'batch', uid: 'job-uid', resourceVersion: '10', creationTimestamp: stamp(T0) },
    spec: {
      parallelism: 1,
      completions: 1,
      backoffLimit: 6,
      selector: { matchLabels: { [`batch.kubernetes.io/controller-uid`]: 'job-uid' } },
      template: { metadata: { labels: { app: 'pi' } }, spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'perl' }] } },
      ...spec,
    },
    ...extra,
  };
}

interface PodOptions {
  readonly phase?: string;
  readonly finalizer?: boolean;
  readonly finishedAt?: number;
  readonly deleting?: boolean;
  readonly restarts?: number;
  readonly ownerUid?: string | null;
  readonly labels?: Record<string, string>;
}

function pod(name: string, options: PodOptions = {}): Pod {
  const phase = options.phase ?? 'Running';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'batch',
      uid: `uid-${name}`,
      resourceVersion: '5',
      creationTimestamp: stamp(T0),
      labels: options.labels ?? { app: 'pi', 'batch.kubernetes.io/controller-uid': 'job-uid' },
      ...(options.finalizer === false ? {} : { finalizers: [JOB_TRACKING_FINALIZER] }),
      ...(options.deleting ? { deletionTimestamp: stamp(T0), deletionGracePeriodSeconds: 30 } : {}),
      ...(options.ownerUid === null ? {} : { ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'pi', uid: options.ownerUid ?? 'job-uid', controller: true, blockOwnerDeletion: true }] }),
    },
    spec: { nodeName: 'n1', restartPolicy: 'Never', containers: [{ name: 'c', image: 'perl' }] },
    status: {
      phase,
      containerStatuses: [
        {
          name: 'c',
          restartCount: options.restarts ?? 0,
          ...(phase === 'Succeeded' || phase === 'Failed' ? { state: { terminated: { exitCode: phase === 'Succeeded' ? 0 : 1, finishedAt: stamp(options.finishedAt ?? T0) } } } : {}),
        },
      ],
    },
  };
}

const names = (pods: readonly Pod[]): string[] => pods.map((one) => one.metadata?.name ?? '').sort();
const withTracking = (base: Job, succeeded: number, failed: number, uncountedSucceeded: string[] = [], uncountedFailed: string[] = []): Job => ({
  ...base,
  metadata: { ...base.metadata, annotations: { [JOB_TRACKING_ANNOTATION]: encodeTracking({ succeeded, failed, uncountedSucceeded, uncountedFailed }) } },
});
const conditionOf = (plan: JobPlan, type: string) => plan.status.conditions?.find((condition) => condition.type === type);

/**
 * An API server in miniature for multi-sync scenarios: applies a plan's
 * writes in the controller's order, optionally stopping after `upTo` of
 * them (a crash), and names created pods.
 */
class World {
  pods: Pod[] = [];
  private created = 0;
  constructor(public job: Job) {}

  apply(plan: JobPlan, upTo: 'tracking' | 'finalizers' | 'all' = 'all'): void {
    if (plan.tracking !== undefined) this.job = { ...this.job, metadata: { ...this.job.metadata, annotations: { [JOB_TRACKING_ANNOTATION]: encodeTracking(plan.tracking) } } };
    if (upTo === 'tracking') return;
    for (const target of plan.removeFinalizers) this.update(target.metadata?.name ?? '', (found) => ({ ...found, metadata: { ...found.metadata, finalizers: [] } }));
    if (upTo === 'finalizers') return;
    for (const target of plan.delete) this.update(target.metadata?.name ?? '', (found) => ({ ...found, metadata: { ...found.metadata, deletionTimestamp: stamp(T0) } }));
    for (const fresh of plan.create) {
      this.created++;
      this.pods.push({ ...fresh, metadata: { ...fresh.metadata, name: `pi-${this.created}`, uid: `uid-pi-${this.created}`, creationTimestamp: stamp(T0) }, status: { phase: 'Pending' } });
    }
    this.job = { ...this.job, status: plan.status };
  }

  /** A pod being deleted goes once it holds no finalizer. */
  update(name: string, change: (found: Pod) => Pod): void {
    this.pods = this.pods.map((found) => (found.metadata?.name === name ? change(found) : found)).filter((found) => !(found.metadata?.deletionTimestamp !== undefined && (found.metadata.finalizers ?? []).length === 0));
  }

  finish(name: string, phase: 'Succeeded' | 'Failed', atMs = T0): void {
    this.update(name, (found) => ({ ...found, status: { phase, containerStatuses: [{ name: 'c', state: { terminated: { exitCode: phase === 'Succeeded' ? 0 : 1, finishedAt: stamp(atMs) } } }] } }));
  }

  active(): Pod[] {
    return this.pods.filter((found) => found.metadata?.deletionTimestamp === undefined && found.status?.phase !== 'Succeeded' && found.status?.phase !== 'Failed');
  }

  sync(nowMs = T0, upTo: 'tracking' | 'finalizers' | 'all' = 'all'): JobPlan {
    const plan = planJob(this.job, this.pods, nowMs);
    this.apply(plan, upTo);
    return plan;
  }
}

describe('controllers: job', function () {
  it('creates pods from the template, labelled, owned and tracked, and starts the clock', function () {
    const plan = planJob(job({ parallelism: 2, completions: 5 }), [], T0);
    expect(plan.create).to.have.length(2);
    expect(plan.create[0]!.metadata).to.deep.equal({
      generateName: 'pi-',
      namespace: 'batch',
      labels: { app: 'pi', 'batch.kubernetes.io/controller-uid': 'job-uid', 'batch.kubernetes.io/job-name': 'pi', 'controller-uid': 'job-uid', 'job-name': 'pi' },
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'pi', uid: 'job-uid', controller: true, blockOwnerDeletion: true }],
      finalizers: [JOB_TRACKING_FINALIZER],
    });
    expect(plan.create[0]!.spec).to.deep.equal({ restartPolicy: 'Never', containers: [{ name: 'c', image: 'perl' }] });
    expect(plan.status).to.deep.include({ startTime: '2026-11-25T12:00:00Z', active: 2, succeeded: 0, failed: 0, ready: 0, terminating: 0 });
    expect(plan.tracking).to.equal(undefined);
    // Without a selector, orphans are told apart by the uid label.
    const unselected = job({ selector: undefined });
    expect(names(planJob(unselected, [pod('a', { ownerUid: null })], T0).adopt)).to.deep.equal(['a']);
    const other = planJob(unselected, [pod('a', { ownerUid: null, labels: { app: 'pi' } })], T0);
    expect(other.adopt).to.deep.equal([]);
    expect(other.create).to.have.length(1);
    // mast's uids may start or end with "-" or "_", which no label value may: such a uid is left out of the labels.
    expect(isLabelValue('job-uid')).to.equal(true);
    expect(isLabelValue('-x1Zf4r9oKpx-JAZ7ZvXJ')).to.equal(false);
    expect(isLabelValue('x1Zf4r9oKpx-JAZ7ZvX_')).to.equal(false);
    const odd = planJob(job({}, { metadata: { name: 'pi', namespace: 'batch', uid: '_odd' } }), [], T0).create[0]!;
    expect(odd.metadata?.labels).to.deep.equal({ app: 'pi', 'batch.kubernetes.io/job-name': 'pi', 'job-name': 'pi' });
    expect(odd.metadata?.ownerReferences?.[0]?.uid).to.equal('_odd');
  });

  it('keeps min(parallelism, completions - succeeded) pods active', function () {
    const running = (count: number): Pod[] => Array.from({ length: count }, (_, index) => pod(`r${index}`));
    expect(planJob(job({ parallelism: 3, completions: 10 }), running(1), T0).create).to.have.length(2);
    // Four of five done: one more is enough; the extra active pod goes, freed first so it is not counted as failed.
    const nearly = planJob(withTracking(job({ parallelism: 3, completions: 5 }), 4, 0), running(2), T0);
    expect(nearly.create).to.have.length(0);
    expect(nearly.delete).to.have.length(1);
    expect(nearly.removeFinalizers).to.deep.equal(nearly.delete);
    expect(nearly.status.active).to.equal(1);
    // Parallelism 0 pauses: every active pod goes.
    expect(planJob(job({ parallelism: 0, completions: 3 }), running(2), T0).delete).to.have.length(2);
    // No completions (a work queue): parallelism pods; after the first success no new ones, and done when none is active.
    expect(planJob(job({ parallelism: 3, completions: undefined }), running(1), T0).create).to.have.length(2);
    const queue = planJob(withTracking(job({ parallelism: 3, completions: undefined }), 1, 0), running(1), T0);
    expect(queue.create).to.have.length(0);
    expect(conditionOf(queue, 'Complete')).to.equal(undefined);
    expect(conditionOf(planJob(withTracking(job({ parallelism: 3, completions: undefined }), 1, 0), [], T0), 'Complete')).to.deep.include({ status: 'True' });
  });

  it('counts a finished pod once: listed first, freed next, counted when its finalizer is gone', function () {
    const world = new World(job({ parallelism: 2, completions: 2 }));
    world.sync();
    expect(names(world.pods)).to.deep.equal(['pi-1', 'pi-2']);
    world.finish('pi-1', 'Succeeded');
    const listing = world.sync();
    expect(listing.tracking).to.deep.equal({ succeeded: 0, failed: 0, uncountedSucceeded: ['uid-pi-1'], uncountedFailed: [] });
    expect(names(listing.removeFinalizers)).to.deep.equal(['pi-1']);
    expect(listing.status).to.deep.include({ succeeded: 1, active: 1 });
    const counting = world.sync();
    expect(counting.tracking).to.deep.equal({ succeeded: 1, failed: 0, uncountedSucceeded: [], uncountedFailed: [] });
    expect(counting.removeFinalizers).to.deep.equal([]);
    expect(counting.status.succeeded).to.equal(1);
    // Nothing changes on a repeated sync.
    const again = planJob(world.job, world.pods, T0);
    expect(again.tracking).to.equal(undefined);
    expect(again.status).to.deep.equal(world.job.status);
    world.finish('pi-2', 'Succeeded');
    // Enough successes, but the Job completes only once every success is counted.
    const listed = world.sync(T0 + 5000);
    expect(listed.status.succeeded).to.equal(2);
    expect(conditionOf(listed, 'Complete')).to.equal(undefined);
    const done = world.sync(T0 + 6000);
    expect(done.status).to.deep.include({ succeeded: 2, failed: 0, active: 0, completionTime: '2026-11-25T12:00:06Z' });
    expect(conditionOf(done, 'Complete')).to.deep.include({ status: 'True', reason: 'CompletionsReached', lastTransitionTime: '2026-11-25T12:00:06Z' });
    expect(done.events).to.deep.equal([{ type: 'Normal', reason: 'Completed', message: 'Job completed' }]);
    // A finished Job only frees what still holds the finalizer.
    const after = planJob(world.job, [...world.pods, pod('late', { phase: 'Succeeded' })], T0 + 7000);
    expect(names(after.removeFinalizers)).to.deep.equal(['late']);
    expect(after.create.length + after.delete.length).to.equal(0);
    expect(after.tracking).to.equal(undefined);
    expect(after.status).to.equal(world.job.status);
  });

  it('neither double counts nor loses a count when the controller stops between any two writes', function () {
    for (const crashAfter of ['tracking', 'finalizers'] as const) {
      const world = new World(job({ parallelism: 3, completions: 3 }));
      world.sync();
      world.finish('pi-1', 'Succeeded');
      world.finish('pi-2', 'Failed');
      world.sync(T0, crashAfter);
      // A new controller: same state, same answers; then the same pods are deleted by someone.
      world.sync(T0 + 20_000);
      world.update('pi-1', (found) => ({ ...found, metadata: { ...found.metadata, deletionTimestamp: stamp(T0) } }));
      world.update('pi-2', (found) => ({ ...found, metadata: { ...found.metadata, deletionTimestamp: stamp(T0) } }));
      for (let sync = 0; sync < 3; sync++) world.sync(T0 + 20_000);
      expect(trackingOf(world.job), crashAfter).to.deep.equal({ succeeded: 1, failed: 1, uncountedSucceeded: [], uncountedFailed: [] });
      expect(world.job.status, crashAfter).to.deep.include({ succeeded: 1, failed: 1 });
    }
  });

  it('counts a pod deleted before it finished as failed, and frees a pod being deleted', function () {
    const plan = planJob(job({ parallelism: 1, completions: 1 }), [pod('evicted', { deleting: true })], T0);
    expect(plan.tracking?.uncountedFailed).to.deep.equal(['uid-evicted']);
    expect(names(plan.removeFinalizers)).to.deep.equal(['evicted']);
    expect(plan.status).to.deep.include({ failed: 1, terminating: 1 });
    // A finished pod without the finalizer (counted before) is not counted again.
    expect(planJob(withTracking(job(), 0, 1), [pod('old', { phase: 'Failed', finalizer: false })], T0).status.failed).to.equal(1);
  });

  it('fails the Job past backoffLimit: deletes its active pods, counts them, then sets Failed', function () {
    const world = new World(job({ parallelism: 1, completions: 1, backoffLimit: 2 }));
    world.sync();
    world.finish('pi-1', 'Failed', T0);
    const first = world.sync(T0 + 1000);
    expect(first.create).to.have.length(0); // backing off: 10 s after the failure
    expect(first.requeueAfterMs).to.equal(9000);
    expect(world.sync(T0 + 11_000).create).to.have.length(1);
    world.finish('pi-2', 'Failed', T0 + 12_000);
    const second = world.sync(T0 + 13_000);
    expect(second.status.failed).to.equal(2);
    expect(second.requeueAfterMs).to.equal(19_000); // 20 s after the second failure
    expect(conditionOf(second, 'Failed')).to.equal(undefined);
    expect(world.sync(T0 + 32_000).create).to.have.length(1);
    world.finish('pi-3', 'Failed', T0 + 33_000);
    const failing = world.sync(T0 + 34_000);
    expect(failing.create).to.have.length(0);
    expect(conditionOf(failing, 'Failed')).to.equal(undefined); // pi-3 is not counted yet
    const settled = world.sync(T0 + 35_000);
    expect(conditionOf(settled, 'Failed')).to.deep.include({ status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' });
    expect(settled.status).to.deep.include({ failed: 3, succeeded: 0, active: 0 });
    expect(settled.status.completionTime).to.equal(undefined);
    expect(settled.events).to.deep.equal([{ type: 'Warning', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }]);
    expect(world.pods.filter((found) => (found.metadata?.finalizers ?? []).length > 0)).to.deep.equal([]);
    // With pods still running, they are deleted keeping their finalizers, and counted as failed.
    const busy = planJob(withTracking(job({ parallelism: 2, completions: 4, backoffLimit: 0 }), 0, 0), [pod('bad', { phase: 'Failed' }), pod('busy')], T0);
    expect(names(busy.delete)).to.deep.equal(['busy']);
    expect(busy.tracking?.uncountedFailed.slice().sort()).to.deep.equal(['uid-bad', 'uid-busy']);
    expect(busy.status).to.deep.include({ active: 0, failed: 2, terminating: 1 });
    expect(conditionOf(busy, 'Failed')).to.equal(undefined);
  });

  it('counts container restarts against backoffLimit with restartPolicy OnFailure', function () {
    const onFailure = (limit: number): Job => job({ backoffLimit: limit, template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'c', image: 'perl' }] } } });
    expect(planJob(onFailure(3), [pod('crashy', { restarts: 2 })], T0).delete).to.have.length(0);
    expect(names(planJob(onFailure(3), [pod('crashy', { restarts: 3 })], T0).delete)).to.deep.equal(['crashy']);
    expect(names(planJob(onFailure(0), [pod('crashy', { restarts: 1 })], T0).delete)).to.deep.equal(['crashy']);
    // With Never, restarts do not count.
    expect(planJob(job({ backoffLimit: 3 }), [pod('crashy', { restarts: 5 })], T0).delete).to.have.length(0);
  });

  it('waits 10 s after a failure before a replacement, doubling per failure up to 6 minutes', function () {
    const failed = (count: number, lastAtMs: number): Pod[] => Array.from({ length: count }, (_, index) => pod(`f${index}`, { phase: 'Failed', finishedAt: lastAtMs - (count - 1 - index) * 1000 }));
    expect(podFailureBackoffRemainingMs(failed(1, T0), T0 + 4000, DEFAULT_JOB_PLAN_OPTIONS)).to.equal(6000);
    expect(podFailureBackoffRemainingMs(failed(1, T0), T0 + 10_000, DEFAULT_JOB_PLAN_OPTIONS)).to.equal(0);
    expect(podFailureBackoffRemainingMs(failed(3, T0), T0, DEFAULT_JOB_PLAN_OPTIONS)).to.equal(40_000);
    expect(podFailureBackoffRemainingMs(failed(20, T0), T0, DEFAULT_JOB_PLAN_OPTIONS)).to.equal(360_000);
    // A success after them resets the count.
    expect(podFailureBackoffRemainingMs([...failed(3, T0), pod('ok', { phase: 'Succeeded', finishedAt: T0 + 1 })], T0, DEFAULT_JOB_PLAN_OPTIONS)).to.equal(0);
    const waiting = planJob(withTracking(job({ completions: 2 }), 0, 1), [pod('f', { phase: 'Failed', finalizer: false, finishedAt: T0 })], T0 + 3000);
    expect(waiting.create).to.have.length(0);
    expect(waiting.requeueAfterMs).to.equal(7000);
    expect(planJob(withTracking(job({ completions: 2 }), 0, 1), [pod('f', { phase: 'Failed', finalizer: false, finishedAt: T0 })], T0 + 10_000).create).to.have.length(1);
  });

  it('fails the Job at activeDeadlineSeconds from its start, and syncs again at the deadline', function () {
    const started = (seconds: number): Job => ({ ...job({ activeDeadlineSeconds: seconds }), status: { startTime: stamp(T0), active: 1 } });
    const early = planJob(started(100), [pod('a')], T0 + 40_000);
    expect(early.requeueAfterMs).to.equal(60_000);
    expect(early.delete).to.have.length(0);
    const late = planJob(started(100), [pod('a')], T0 + 100_000);
    expect(names(late.delete)).to.deep.equal(['a']);
    expect(late.tracking?.uncountedFailed).to.deep.equal(['uid-a']);
    // Once the deleted pod is counted, the condition.
    const counted = planJob({ ...withTracking(started(100), 0, 1), status: late.status }, [], T0 + 101_000);
    expect(conditionOf(counted, 'Failed')).to.deep.include({ status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' });
  });

  it('suspends: deletes active pods without counting them, and restarts the clock on resume', function () {
    const suspended = planJob({ ...job({ suspend: true, activeDeadlineSeconds: 10 }), status: { startTime: stamp(T0), active: 1 } }, [pod('a')], T0 + 60_000);
    expect(names(suspended.delete)).to.deep.equal(['a']);
    expect(names(suspended.removeFinalizers)).to.deep.equal(['a']);
    expect(suspended.tracking).to.equal(undefined);
    expect(suspended.status.failed).to.equal(0);
    expect(conditionOf(suspended, 'Suspended')).to.deep.include({ status: 'True', reason: 'JobSuspended', message: 'Job suspended' });
    expect(conditionOf(suspended, 'Failed')).to.equal(undefined);
    // Created suspended: no start time.
    expect(planJob(job({ suspend: true }), [], T0).status.startTime).to.equal(undefined);
    const resumed = planJob({ ...job({ suspend: false }), status: suspended.status }, [], T0 + 120_000);
    expect(conditionOf(resumed, 'Suspended')).to.deep.include({ status: 'False', reason: 'JobResumed' });
    expect(resumed.status.startTime).to.equal('2026-11-25T12:02:00Z');
    expect(resumed.create).to.have.length(1);
  });

  it('adopts matching orphans with the finalizer, releases pods it no longer selects, ignores other owners', function () {
    const plan = planJob(job({ parallelism: 3, completions: 3 }), [pod('orphan', { ownerUid: null, finalizer: false }), pod('theirs', { ownerUid: 'other' }), pod('relabelled', { labels: { app: 'pi' } }), pod('mine')], T0);
    expect(names(plan.adopt)).to.deep.equal(['orphan']);
    expect(names(plan.release)).to.deep.equal(['relabelled']);
    expect(plan.create).to.have.length(1);
    expect(plan.status.active).to.equal(3);
  });

  it('frees every pod of a Job being deleted, counting what finished', function () {
    const plan = planJob(job({}, { metadata: { name: 'pi', namespace: 'batch', uid: 'job-uid', deletionTimestamp: stamp(T0) } }), [pod('done', { phase: 'Succeeded' }), pod('running')], T0);
    expect(names(plan.removeFinalizers)).to.deep.equal(['done', 'running']);
    expect(plan.tracking?.uncountedSucceeded).to.deep.equal(['uid-done']);
    expect(plan.tracking?.uncountedFailed).to.deep.equal([]);
    expect(plan.create).to.have.length(0);
  });

  it('writes index lists as Kubernetes does', function () {
    expect(formatIndexes(new Set([5, 0, 1, 2, 7, 8]))).to.equal('0-2,5,7-8');
    expect(formatIndexes(new Set())).to.equal('');
    expect([...parseIndexes('0-2,5,7-8', 8)]).to.deep.equal([0, 1, 2, 5, 7]);
    expect([...parseIndexes('', 3)]).to.deep.equal([]);
  });

  it('Indexed: one pod per index, lowest first; successes recorded by index; duplicates deleted', function () {
    const world = new World(job({ completionMode: 'Indexed', completions: 4, parallelism: 2 }));
    const first = world.sync();
    expect(first.create.map((one) => one.metadata?.generateName)).to.deep.equal(['pi-0-', 'pi-1-']);
    expect(first.create[1]!.metadata?.annotations).to.deep.equal({ [COMPLETION_INDEX_ANNOTATION]: '1' });
    expect(first.create[1]!.metadata?.labels?.[COMPLETION_INDEX_ANNOTATION]).to.equal('1');
    expect(first.create[1]!.spec?.hostname).to.equal('pi-1');
    expect(first.create[1]!.spec?.containers?.[0]?.env).to.deep.equal([{ name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${COMPLETION_INDEX_ANNOTATION}']` } } }]);
    expect(first.status.completedIndexes).to.equal('');
    // Index 1 succeeds: recorded before its finalizer comes off; index 2 is next.
    world.finish('pi-2', 'Succeeded');
    const second = world.sync();
    expect(second.tracking?.completedIndexes).to.equal('1');
    expect(second.tracking?.uncountedSucceeded).to.deep.equal([]);
    expect(second.removeFinalizers.map((one) => one.metadata?.name)).to.deep.equal(['pi-2']);
    expect(second.status).to.deep.include({ succeeded: 1, completedIndexes: '1', active: 2 });
    expect(second.create.map((one) => one.metadata?.generateName)).to.deep.equal(['pi-2-']);
    // A second pod for index 0 (say, made by a controller that crashed) goes.
    world.pods.push({ ...world.pods[0]!, metadata: { ...world.pods[0]!.metadata, name: 'pi-0-dup', uid: 'uid-dup' } });
    const dedup = world.sync();
    expect(dedup.delete).to.have.length(1);
    expect(dedup.create).to.deep.equal([]);
    // The remaining indexes succeed; index 1 succeeds a second time (a pod from before a crash), which adds nothing.
    const late = pod('late-1', { phase: 'Succeeded' });
    world.pods.push({ ...late, metadata: { ...late.metadata, annotations: { [COMPLETION_INDEX_ANNOTATION]: '1' } } });
    for (const found of world.active()) world.finish(found.metadata!.name!, 'Succeeded');
    world.sync();
    for (const found of world.active()) world.finish(found.metadata!.name!, 'Succeeded');
    const last = world.sync();
    expect(last.status.completedIndexes).to.equal('0-3');
    const done = world.sync();
    expect(done.status).to.deep.include({ succeeded: 4, completedIndexes: '0-3', active: 0 });
    expect(done.status.conditions?.find((condition) => condition.type === 'Complete')).to.deep.include({ status: 'True' });
    expect(world.pods.filter((found) => (found.metadata?.finalizers ?? []).length > 0)).to.deep.equal([]);
  });
});
