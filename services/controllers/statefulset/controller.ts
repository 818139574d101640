// The StatefulSet controller's loop: informers on StatefulSets and
// PersistentVolumeClaims (its own) and pods (shared); handlers only enqueue
// StatefulSet keys — a pod's change its controller (or every set that may
// adopt an orphan), a claim's change or deletion the sets whose templates
// name it. A sync asks the pure plan (reconcile.ts) and writes adoptions,
// claims, then pods, deletions, then the status. Pod names are fixed, so a
// sync that runs before the cache shows its last create gets AlreadyExists
// and simply tries again later; deletes carry the resourceVersion seen, so
// a pod made again under the same name is never deleted by mistake.

import { runLoop } from '../common/loop.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { StatefulSet } from '../../../proto/gen/resources/v1/apps.js';
import type { PersistentVolumeClaim, Pod, PodTemplateSpec } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { selectorMatches } from '../common/reconcile-selector.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { ordinalOf, planStatefulSet, statefulSetOwnerReference, type StatefulSetPlan } from './reconcile.js';

export interface StatefulSetControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** Shared: the caller starts it. */
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
}

export class StatefulSetController {
  private readonly sets: InformerView<KubeObject>;
  private readonly claims: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  /**
   * Per set key, the templates of its current and update revisions as this
   * process saw them (no ControllerRevisions are stored): a pod below the
   * partition is made again from the current one when it is known here.
   */
  private readonly revisions = new Map<string, ReadonlyMap<string, PodTemplateSpec>>();

  constructor(private readonly options: StatefulSetControllerOptions) {
    this.sets = informerFor(options, 'StatefulSet');
    this.claims = informerFor(options, 'PersistentVolumeClaim');
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.options.pods.onAdd((pod) => this.podChanged(pod as Pod));
    this.options.pods.onUpdate((old, pod) => {
      this.podChanged(old as Pod);
      this.podChanged(pod as Pod);
    });
    this.options.pods.onDelete((pod) => this.podChanged(pod as Pod));
    this.sets.onAdd((set) => this.queue.add(keyOf(set)));
    this.sets.onUpdate((_old, set) => this.queue.add(keyOf(set)));
    this.sets.onDelete((set) => this.queue.add(keyOf(set)));
    this.claims.onAdd((claim) => this.claimChanged(claim as PersistentVolumeClaim));
    this.claims.onUpdate((_old, claim) => this.claimChanged(claim as PersistentVolumeClaim));
    this.claims.onDelete((claim) => this.claimChanged(claim as PersistentVolumeClaim));
    await runLoop({ signal, queue: this.queue, own: [this.sets, this.claims], shared: [this.options.pods], workers: this.options.workers ?? 2, name: 'StatefulSet', sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private podChanged(pod: Pod): void {
    const namespace = pod.metadata?.namespace ?? '';
    const controller = controllerOf(pod);
    if (controller !== undefined) {
      if (controller.kind === 'StatefulSet') this.queue.add(`${namespace}/${controller.name ?? ''}`);
      return;
    }
    for (const set of this.sets.list() as StatefulSet[]) {
      const name = set.metadata?.name ?? '';
      if (set.metadata?.namespace === namespace && ordinalOf(name, pod.metadata?.name ?? '') !== undefined && selectorMatches(set.spec?.selector, pod.metadata?.labels)) this.queue.add(keyOf(set as KubeObject));
    }
  }

  /** The sets whose claim templates name this claim ("<template>-<set>-<ordinal>"). */
  private claimChanged(claim: PersistentVolumeClaim): void {
    const namespace = claim.metadata?.namespace ?? '';
    const claimName = claim.metadata?.name ?? '';
    for (const set of this.sets.list() as StatefulSet[]) {
      if (set.metadata?.namespace !== namespace) continue;
      const setName = set.metadata?.name ?? '';
      const named = (set.spec?.volumeClaimTemplates ?? []).some((template) => {
        const prefix = `${template.metadata?.name ?? ''}-`;
        return claimName.startsWith(prefix) && ordinalOf(setName, claimName.slice(prefix.length)) !== undefined;
      });
      if (named) this.queue.add(keyOf(set as KubeObject));
    }
  }

  private async sync(key: string): Promise<void> {
    const object = this.sets.getByKey(key) as (StatefulSet & KubeObject) | undefined;
    if (object === undefined) {
      // Gone: the garbage collector removes its pods; its claims stay (Retain).
      this.revisions.delete(key);
      return;
    }
    const namespace = object.metadata?.namespace ?? '';
    const plan = planStatefulSet({
      statefulSet: object,
      pods: (this.options.pods.list() as Pod[]).filter((pod) => pod.metadata?.namespace === namespace),
      claims: (this.claims.list() as PersistentVolumeClaim[]).filter((claim) => claim.metadata?.namespace === namespace),
      nowMs: this.now(),
      revisions: this.revisions.get(key),
    });
    this.revisions.set(key, plan.templates);
    await this.claimPods(object, plan);
    await this.writePods(key, namespace, plan);
    if (plan.requeueAfterMs !== undefined) this.queue.addAfter(key, plan.requeueAfterMs);
    const status = (object.status ?? {}) as Record<string, unknown>;
    if (Object.entries(plan.status).some(([field, value]) => status[field] !== value)) {
      await this.options.client.updateStatus('StatefulSet', { ...object, status: { ...status, ...plan.status } });
    }
  }

  /** Adoptions, releases and identity labels, as merge patches pinned to the version seen. */
  private async claimPods(set: StatefulSet, plan: StatefulSetPlan): Promise<void> {
    const client = this.options.client;
    const namespace = set.metadata?.namespace ?? '';
    for (const pod of plan.adopt) {
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: [...(pod.metadata?.ownerReferences ?? []), statefulSetOwnerReference(set)], resourceVersion: pod.metadata?.resourceVersion } });
    }
    for (const pod of plan.release) {
      const kept = (pod.metadata?.ownerReferences ?? []).filter((reference) => reference.uid !== set.metadata?.uid);
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: kept.length === 0 ? null : kept, resourceVersion: pod.metadata?.resourceVersion } });
    }
    for (const { pod, labels } of plan.relabel) {
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { labels, resourceVersion: pod.metadata?.resourceVersion } });
    }
  }

  /** Claims first (a pod never starts without its volumes), then pods made and deleted. */
  private async writePods(key: string, namespace: string, plan: StatefulSetPlan): Promise<void> {
    const client = this.options.client;
    const tolerate = (code: grpc.status) => (error: unknown) => {
      if (statusCodeOf(error) !== code) throw error;
      // The cache is behind our own write (or someone else's): look again later.
      this.queue.addRateLimited(key);
    };
    await settleAll(plan.createClaims.map((claim) => client.create('PersistentVolumeClaim', claim as KubeObject).catch(tolerate(grpc.status.ALREADY_EXISTS))));
    await settleAll([
      ...plan.createPods.map((pod) => client.create('Pod', pod as KubeObject).catch(tolerate(grpc.status.ALREADY_EXISTS))),
      ...plan.deletePods.map((pod) => client.delete('Pod', namespace, pod.metadata?.name ?? '', { resourceVersion: pod.metadata?.resourceVersion ?? '' }).catch(tolerate(grpc.status.NOT_FOUND))),
    ]);
  }
}

/** Wait for every write; then fail with the first error, if any (the sync is retried). */
async function settleAll(writes: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(writes);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}
