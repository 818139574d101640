// The CronJob controller's loop: informers on CronJobs and on Jobs (its
// own); a Job's change enqueues its CronJob; workers read the caches, ask
// the pure plan (reconcile.ts), delete and create Jobs, write the status,
// and requeue the CronJob for its next schedule with addAfter. Time comes
// from the injected clock; resync() enqueues every CronJob, for a caller
// (a test) that moved that clock. Writes go through the given (fenced) client.

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { CronJob, CronJobStatus, Job } from '../../../proto/gen/resources/v1/batch.js';
import type { EventRecorder } from '../../client/events.js';
import { keyOf } from '../../client/informer.js';
import type { KubeObject, ResourceClient } from '../../client/resources.js';
import { runWorkers, WorkQueue } from '../../client/workqueue.js';
import { isCode, MAX_REQUEUE_DELAY_MS } from '../common/loop.js';
import { sameJson } from '../common/reconcile-json.js';
import type { PlanEvent } from '../job/reconcile.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { jobReference, planCronJob, type CronJobPlan } from './reconcile.js';

export interface CronJobControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
  readonly events?: EventRecorder;
}

/** Kubernetes syncs a CronJob this long after its schedule, so the clock has surely passed it. */
const NEXT_SCHEDULE_DELTA_MS = 100;

export class CronJobController {
  private readonly cronJobs: InformerView<KubeObject>;
  private readonly jobs: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();

  constructor(private readonly options: CronJobControllerOptions) {
    this.cronJobs = informerFor(options, 'CronJob');
    this.jobs = informerFor(options, 'Job');
  }

  /** Run until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    this.cronJobs.onAdd((cronJob) => this.queue.add(keyOf(cronJob)));
    this.cronJobs.onUpdate((_old, cronJob) => this.queue.add(keyOf(cronJob)));
    this.cronJobs.onDelete((cronJob) => this.queue.add(keyOf(cronJob)));
    const jobChanged = (job: KubeObject): void => {
      const controller = controllerOf(job as Job);
      if (controller?.kind === 'CronJob') this.queue.add(`${job.metadata?.namespace ?? ''}/${controller.name ?? ''}`);
    };
    this.jobs.onAdd(jobChanged);
    this.jobs.onUpdate((old, job) => {
      jobChanged(old);
      jobChanged(job);
    });
    this.jobs.onDelete(jobChanged);
    this.cronJobs.start();
    this.jobs.start();
    signal.addEventListener('abort', () => {
      this.queue.shutDown();
      this.cronJobs.stop();
      this.jobs.stop();
    }, { once: true });
    await this.cronJobs.waitForSync();
    await this.jobs.waitForSync();
    await runWorkers(this.queue, this.options.workers ?? 2, (key) => this.sync(key), (key, error) => this.options.log?.(`CronJob ${key}: ${error instanceof Error ? error.message : String(error)}`));
  }

  /** Sync every CronJob now (after the injected clock moved). */
  resync(): void {
    for (const cronJob of this.cronJobs.list()) this.queue.add(keyOf(cronJob));
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private async sync(key: string): Promise<void> {
    const cronJob = this.cronJobs.getByKey(key) as CronJob | undefined;
    if (cronJob === undefined) return; // gone: the garbage collector removes its Jobs
    const namespace = cronJob.metadata?.namespace ?? '';
    const jobs = (this.jobs.list() as Job[]).filter((job) => job.metadata?.namespace === namespace);
    const plan = planCronJob(cronJob, [...jobs, ...(await this.activeMissingFromCache(cronJob, jobs))], this.now());
    const status = await this.apply(cronJob, plan);
    if (!sameJson(status, cronJob.status ?? {})) await this.options.client.updateStatus('CronJob', { ...(cronJob as KubeObject), status });
    for (const event of plan.events) this.record(cronJob, event);
    if (plan.nextScheduleMs !== undefined) this.queue.addAfter(key, Math.min(plan.nextScheduleMs - this.now() + NEXT_SCHEDULE_DELTA_MS, MAX_REQUEUE_DELAY_MS));
  }

  /** Jobs listed as active that the cache does not show (yet): asked of the API server before the plan drops them, as Kubernetes does. */
  private async activeMissingFromCache(cronJob: CronJob, cached: readonly Job[]): Promise<Job[]> {
    const known = new Set(cached.map((job) => job.metadata?.uid));
    const found: Job[] = [];
    for (const reference of cronJob.status?.active ?? []) {
      if (known.has(reference.uid)) continue;
      try {
        const job = (await this.options.client.get('Job', reference.namespace ?? cronJob.metadata?.namespace ?? '', reference.name ?? '')) as Job;
        if (job.metadata?.uid === reference.uid) found.push(job);
      } catch (error) {
        if (!isCode(error, grpc.status.NOT_FOUND)) throw error;
      }
    }
    return found;
  }

  /** Delete and create as planned; the status with the created Job in it. */
  private async apply(cronJob: CronJob, plan: CronJobPlan): Promise<CronJobStatus> {
    const client = this.options.client;
    for (const job of plan.deleteJobs) {
      try {
        await client.delete('Job', job.metadata?.namespace ?? '', job.metadata?.name ?? '', { propagationPolicy: 'Background' });
        this.record(cronJob, { type: 'Normal', reason: 'SuccessfulDelete', message: `Deleted job ${job.metadata?.name ?? ''}` });
      } catch (error) {
        if (!isCode(error, grpc.status.NOT_FOUND)) throw error;
      }
    }
    const status: CronJobStatus = structuredClone(plan.status);
    if (plan.createJob === undefined) return status;
    const wanted = plan.createJob.job;
    let created: Job;
    try {
      created = (await client.create('Job', wanted as KubeObject)) as Job;
      this.record(cronJob, { type: 'Normal', reason: 'SuccessfulCreate', message: `Created job ${wanted.metadata?.name ?? ''}` });
    } catch (error) {
      if (!isCode(error, grpc.status.ALREADY_EXISTS)) {
        this.record(cronJob, { type: 'Warning', reason: 'FailedCreate', message: `Error creating job: ${error instanceof Error ? error.message : String(error)}` });
        throw error;
      }
      // Ours from an earlier try whose status write was lost, or someone else's: either way this schedule is taken.
      created = (await client.get('Job', wanted.metadata?.namespace ?? '', wanted.metadata?.name ?? '')) as Job;
      if (controllerOf(created)?.uid !== cronJob.metadata?.uid) return status;
    }
    status.active = [...(status.active ?? []).filter((reference) => reference.uid !== created.metadata?.uid), jobReference(created)];
    return status;
  }

  private record(cronJob: CronJob, event: PlanEvent): void {
    this.options.log?.(`CronJob ${cronJob.metadata?.namespace ?? ''}/${cronJob.metadata?.name ?? ''}: ${event.reason}: ${event.message}`);
    void this.options.events?.record({ apiVersion: 'batch/v1', kind: 'CronJob', namespace: cronJob.metadata?.namespace ?? '', name: cronJob.metadata?.name ?? '', uid: cronJob.metadata?.uid ?? '' }, event.type, event.reason, event.message);
  }
}
