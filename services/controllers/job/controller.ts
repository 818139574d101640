// The Job controller's loop, as sample-controller writes one: an informer on
// Jobs and the shared pod informer; event handlers only enqueue keys (a
// pod's change enqueues its Job, or every Job whose selector picks an
// orphan, or — for a pod that still holds the tracking finalizer and has
// no Job — the pod itself); workers read the caches, ask the pure plan
// (reconcile.ts) and write, in the order the tracking protocol needs:
// the tracking state, adoptions and releases, finalizer removals, pod
// deletions and creations, then the status. Level-triggered: a lost or
// repeated event changes nothing. Writes go through the given (fenced) client.

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Job } from '../../../proto/gen/resources/v1/batch.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { EventRecorder } from '../../client/events.js';
import { keyOf } from '../../client/informer.js';
import type { KubeObject, ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { sameJson } from '../common/reconcile-json.js';
import { isCode, MAX_REQUEUE_DELAY_MS, runLoop } from '../common/loop.js';
import { PodExpectations } from '../common/pod-expectations.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { DEFAULT_JOB_PLAN_OPTIONS, encodeTracking, hasFinalizer, JOB_TRACKING_ANNOTATION, JOB_TRACKING_FINALIZER, jobOwnerReference, jobSelects, planJob, type JobPlan, type JobPlanOptions, type PlanEvent } from './reconcile.js';

export interface JobControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** The shared pod informer: the caller starts it. */
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
  readonly events?: EventRecorder;
  /** The wait before replacing a failed pod, doubled per further failure (Kubernetes: 10 s)... */
  readonly podFailureBackoffBaseMs?: number;
  /** ...up to this (Kubernetes: 6 minutes). */
  readonly podFailureBackoffMaxMs?: number;
}

/** Queue keys for an orphan pod that still holds the finalizer; "pod:" cannot start a namespace name. */
const POD_KEY_PREFIX = 'pod:';


export class JobController {
  private readonly jobs: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  /** As the ReplicaSet controller's: a Job is not synced again until the caches show its pod creations and deletions. */
  private readonly expectations = new PodExpectations('Job', () => this.now());
  private readonly planOptions: JobPlanOptions;

  constructor(private readonly options: JobControllerOptions) {
    this.jobs = informerFor(options, 'Job');
    this.planOptions = {
      podFailureBackoffBaseMs: options.podFailureBackoffBaseMs ?? DEFAULT_JOB_PLAN_OPTIONS.podFailureBackoffBaseMs,
      podFailureBackoffMaxMs: options.podFailureBackoffMaxMs ?? DEFAULT_JOB_PLAN_OPTIONS.podFailureBackoffMaxMs,
    };
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.jobs.onAdd((job) => this.queue.add(keyOf(job)));
    this.jobs.onUpdate((_old, job) => this.queue.add(keyOf(job)));
    this.jobs.onDelete((job) => this.queue.add(keyOf(job)));
    this.expectations.watch(this.options.pods, (pod) => this.podChanged(pod));
    await runLoop({ signal, queue: this.queue, own: [this.jobs], shared: [this.options.pods], workers: this.options.workers ?? 4, name: 'Job', sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private podChanged(pod: Pod): void {
    const namespace = pod.metadata?.namespace ?? '';
    const controller = controllerOf(pod);
    if (controller?.kind === 'Job') {
      this.queue.add(`${namespace}/${controller.name ?? ''}`);
      return;
    }
    if (hasFinalizer(pod)) this.queue.add(`${POD_KEY_PREFIX}${namespace}/${pod.metadata?.name ?? ''}`);
    if (controller !== undefined) return;
    // An orphan: every Job in its namespace that selects it may adopt it.
    for (const job of this.jobs.list() as Job[]) {
      if (job.metadata?.namespace === namespace && jobSelects(job, pod.metadata?.labels)) this.queue.add(keyOf(job as KubeObject));
    }
  }

  private async sync(key: string): Promise<void> {
    if (key.startsWith(POD_KEY_PREFIX)) return this.syncOrphanPod(key.slice(POD_KEY_PREFIX.length));
    const job = this.jobs.getByKey(key) as Job | undefined;
    const [namespace = '', name = ''] = key.split('/');
    const pods = (this.options.pods.list() as Pod[]).filter((pod) => pod.metadata?.namespace === namespace);
    if (job === undefined) {
      this.expectations.forget(key);
      await this.releaseJobGone(namespace, name, pods);
      return;
    }
    // Pods of an earlier Job of the same name (gone, since the name is taken again) are let go.
    const stale = pods.filter((pod) => controllerOf(pod)?.kind === 'Job' && controllerOf(pod)?.name === name && controllerOf(pod)?.uid !== job.metadata?.uid && hasFinalizer(pod));
    await this.removeFinalizers(stale);
    // Still waiting to see its last creates and deletes: the events that satisfy it enqueue it again.
    if (!this.expectations.satisfied(key)) return;
    const plan = planJob(job, pods, this.now(), this.planOptions);
    await this.apply(key, job, plan);
  }

  /** The Job is gone (asked of the API server, not only the cache): its pods' finalizers come off, uncounted. */
  private async releaseJobGone(namespace: string, name: string, pods: readonly Pod[]): Promise<void> {
    const held = pods.filter((pod) => controllerOf(pod)?.kind === 'Job' && controllerOf(pod)?.name === name && hasFinalizer(pod));
    if (held.length === 0) return;
    try {
      const live = (await this.options.client.get('Job', namespace, name)) as Job;
      // Still there (the cache is behind): its events will come. A different Job of that name: only the old one's pods go.
      const orphans = held.filter((pod) => controllerOf(pod)?.uid !== live.metadata?.uid);
      await this.removeFinalizers(orphans);
    } catch (error) {
      if (!isCode(error, grpc.status.NOT_FOUND)) throw error;
      await this.removeFinalizers(held);
    }
  }

  private async syncOrphanPod(podKey: string): Promise<void> {
    const pod = this.options.pods.getByKey(podKey) as Pod | undefined;
    if (pod === undefined || !hasFinalizer(pod) || controllerOf(pod)?.kind === 'Job') return;
    await this.removeFinalizers([pod]);
  }

  /** Take the tracking finalizer off (pinned to each pod's version); the uids whose removal failed. Gone pods count as done. */
  private async removeFinalizers(pods: readonly Pod[]): Promise<Set<string>> {
    const failed = new Set<string>();
    const errors: unknown[] = [];
    await Promise.all(pods.map(async (pod) => {
      const finalizers = (pod.metadata?.finalizers ?? []).filter((finalizer) => finalizer !== JOB_TRACKING_FINALIZER);
      try {
        await this.options.client.patch('Pod', pod.metadata?.namespace ?? '', pod.metadata?.name ?? '', { metadata: { finalizers: finalizers.length === 0 ? null : finalizers, resourceVersion: pod.metadata?.resourceVersion } });
      } catch (error) {
        if (isCode(error, grpc.status.NOT_FOUND)) return;
        failed.add(pod.metadata?.uid ?? '');
        errors.push(error);
      }
    }));
    if (errors.length > 0) this.options.log?.(`Job controller: ${errors.length} finalizer removal(s) failed (retried): ${errors[0] instanceof Error ? errors[0].message : String(errors[0])}`);
    return failed;
  }

  private async apply(key: string, job: Job, plan: JobPlan): Promise<void> {
    const client = this.options.client;
    const namespace = job.metadata?.namespace ?? '';
    let current = job;
    // Step 1 of the tracking protocol comes before any finalizer removal.
    if (plan.tracking !== undefined) {
      current = (await client.patch('Job', namespace, job.metadata?.name ?? '', { metadata: { annotations: { [JOB_TRACKING_ANNOTATION]: encodeTracking(plan.tracking) }, resourceVersion: job.metadata?.resourceVersion } })) as Job;
    }
    for (const pod of plan.adopt) {
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: [...(pod.metadata?.ownerReferences ?? []), jobOwnerReference(job)], finalizers: [...(pod.metadata?.finalizers ?? []), JOB_TRACKING_FINALIZER], resourceVersion: pod.metadata?.resourceVersion } });
    }
    for (const pod of plan.release) {
      // Released: no longer this Job's to count, so its finalizer goes in the same write.
      const kept = (pod.metadata?.ownerReferences ?? []).filter((reference) => reference.uid !== job.metadata?.uid);
      const finalizers = (pod.metadata?.finalizers ?? []).filter((finalizer) => finalizer !== JOB_TRACKING_FINALIZER);
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: kept.length === 0 ? null : kept, finalizers: finalizers.length === 0 ? null : finalizers, resourceVersion: pod.metadata?.resourceVersion } });
    }
    const released = new Set(plan.release.map((pod) => pod.metadata?.uid));
    const notFreed = await this.removeFinalizers(plan.removeFinalizers.filter((pod) => !released.has(pod.metadata?.uid)));
    // A pod whose finalizer should have come off first is not deleted: it would be counted as a failure.
    const deletes = plan.delete.filter((pod) => !notFreed.has(pod.metadata?.uid ?? ''));
    await this.changePods(key, namespace, deletes, plan.create);
    if (!sameJson(plan.status, job.status ?? {})) await client.updateStatus('Job', { ...(current as KubeObject), status: plan.status });
    for (const event of plan.events) this.record(job, event);
    if (plan.requeueAfterMs !== undefined) this.queue.addAfter(key, Math.min(plan.requeueAfterMs, MAX_REQUEUE_DELAY_MS));
    if (notFreed.size > 0) throw new Error(`${notFreed.size} pod finalizer removal(s) failed`);
  }

  private async changePods(key: string, namespace: string, deletes: readonly Pod[], creates: readonly Pod[]): Promise<void> {
    if (deletes.length === 0 && creates.length === 0) return;
    const client = this.options.client;
    const expected = this.expectations.expect(key, creates.length, deletes.length);
    // A write that failed will never be observed: stop expecting it (and fail the sync, so it is retried).
    const deleting = Promise.all(deletes.map((pod) => client.delete('Pod', namespace, pod.metadata?.name ?? '').catch((error: unknown) => {
      expected.deletes--;
      if (!isCode(error, grpc.status.NOT_FOUND)) throw error;
    })));
    const creating = Promise.all(creates.map(async (pod) => {
      try {
        const created = await client.create('Pod', pod as KubeObject);
        this.recordPod(key, 'SuccessfulCreate', `Created pod: ${created.metadata?.name ?? ''}`);
      } catch (error) {
        expected.adds--;
        throw error;
      }
    }));
    await Promise.all([deleting, creating]);
    for (const pod of deletes) this.recordPod(key, 'SuccessfulDelete', `Deleted pod: ${pod.metadata?.name ?? ''}`);
  }

  private recordPod(key: string, reason: string, message: string): void {
    const job = this.jobs.getByKey(key) as Job | undefined;
    if (job !== undefined) this.record(job, { type: 'Normal', reason, message });
  }

  private record(job: Job, event: PlanEvent): void {
    this.options.log?.(`Job ${job.metadata?.namespace ?? ''}/${job.metadata?.name ?? ''}: ${event.reason}: ${event.message}`);
    void this.options.events?.record({ apiVersion: 'batch/v1', kind: 'Job', namespace: job.metadata?.namespace ?? '', name: job.metadata?.name ?? '', uid: job.metadata?.uid ?? '' }, event.type, event.reason, event.message);
  }
}
