// The ReplicaSet and ReplicationController controllers' loop, as
// sample-controller writes one: informers on the owners and on pods; event
// handlers only enqueue owner keys (a pod's change enqueues its controller,
// or every owner whose selector picks an orphan); workers take a key, read
// the owner and its namespace's pods from the caches, ask the pure plan
// (reconcile.ts) what to do, and write the difference — adoptions and
// releases, creates, deletes — then the status. Level-triggered: a lost or
// repeated event changes nothing, the next sync sees the world as it is.
// Writes go through the controller-manager's fenced client.

import { runLoop } from '../common/loop.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { LabelSelector } from '../../../proto/gen/resources/v1/meta.js';
import { keyOf } from '../../client/informer.js';
import type { KubeObject, ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { equalitySelects, selectorMatches } from '../common/reconcile-selector.js';
import { PodExpectations } from '../common/pod-expectations.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { ownerReference, planReplicas, type ReplicatedOwner } from './reconcile.js';

export interface ReplicaControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** 'ReplicaSet' (apps/v1, label selector) or 'ReplicationController' (v1, equality selector). */
  readonly kind: 'ReplicaSet' | 'ReplicationController';
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
}

interface OwnerObject extends KubeObject {
  spec?: { replicas?: number; minReadySeconds?: number; selector?: LabelSelector | Record<string, string>; template?: ReplicatedOwner['template'] };
}

export class ReplicaController {
  private readonly owners: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  private readonly apiVersion: string;
  /** client-go's expectations: after creating or deleting pods, an owner is not synced again until the caches show those changes. */
  private readonly expectations: PodExpectations;

  constructor(private readonly options: ReplicaControllerOptions) {
    this.apiVersion = options.kind === 'ReplicaSet' ? 'apps/v1' : 'v1';
    this.owners = informerFor(options, options.kind);
    this.expectations = new PodExpectations(options.kind, () => this.now());
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.owners.onAdd((owner) => this.queue.add(keyOf(owner)));
    this.owners.onUpdate((_old, owner) => this.queue.add(keyOf(owner)));
    this.owners.onDelete((owner) => this.queue.add(keyOf(owner)));
    this.expectations.watch(this.options.pods, (pod) => this.podChanged(pod));
    await runLoop({ signal, queue: this.queue, own: [this.owners], shared: [this.options.pods], workers: this.options.workers ?? 4, name: this.options.kind, sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private podChanged(pod: Pod): void {
    const namespace = pod.metadata?.namespace ?? '';
    const controller = controllerOf(pod);
    if (controller !== undefined) {
      if (controller.kind === this.options.kind) this.queue.add(`${namespace}/${controller.name ?? ''}`);
      return;
    }
    // An orphan: every owner in its namespace that selects it may adopt it.
    for (const owner of this.owners.list() as OwnerObject[]) {
      if (owner.metadata?.namespace === namespace && this.ownerOf(owner).selects(pod.metadata?.labels)) this.queue.add(keyOf(owner));
    }
  }

  private ownerOf(object: OwnerObject): ReplicatedOwner {
    const selector = object.spec?.selector;
    return {
      apiVersion: this.apiVersion,
      kind: this.options.kind,
      metadata: object.metadata ?? {},
      replicas: object.spec?.replicas ?? 1,
      minReadySeconds: object.spec?.minReadySeconds ?? 0,
      template: object.spec?.template,
      selects:
        this.options.kind === 'ReplicaSet'
          ? (labels) => selectorMatches(selector as LabelSelector | undefined, labels)
          : (labels) => equalitySelects((selector as Record<string, string> | undefined) ?? object.spec?.template?.metadata?.labels, labels),
    };
  }

  private async sync(key: string): Promise<void> {
    const object = this.owners.getByKey(key) as OwnerObject | undefined;
    if (object === undefined) {
      this.expectations.forget(key);
      return; // gone: the garbage collector removes its pods
    }
    // Still waiting to see its last creates and deletes: the events that satisfy it enqueue it again.
    if (!this.expectations.satisfied(key)) return;
    const owner = this.ownerOf(object);
    const namespace = owner.metadata.namespace ?? '';
    const pods = (this.options.pods.list() as Pod[]).filter((pod) => pod.metadata?.namespace === namespace);
    const plan = planReplicas(owner, pods, this.now());
    const client = this.options.client;
    for (const pod of plan.adopt) {
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: [...(pod.metadata?.ownerReferences ?? []), ownerReference(owner)], resourceVersion: pod.metadata?.resourceVersion } });
    }
    for (const pod of plan.release) {
      const kept = (pod.metadata?.ownerReferences ?? []).filter((reference) => reference.uid !== owner.metadata.uid);
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: kept.length === 0 ? null : kept, resourceVersion: pod.metadata?.resourceVersion } });
    }
    if (plan.create.length > 0 || plan.delete.length > 0) {
      const expected = this.expectations.expect(key, plan.create.length, plan.delete.length);
      // A write that failed will never be observed: stop expecting it (and fail the sync, so it is retried).
      const creates = Promise.all(plan.create.map((pod) => client.create('Pod', pod as KubeObject).catch((error: unknown) => {
        expected.adds--;
        throw error;
      })));
      const deletes = Promise.all(plan.delete.map((pod) => client.delete('Pod', namespace, pod.metadata?.name ?? '', { resourceVersion: pod.metadata?.resourceVersion ?? '' }).catch((error: unknown) => {
        expected.deletes--;
        throw error;
      })));
      await Promise.all([creates, deletes]);
    }
    const status = (object.status ?? {}) as Record<string, unknown>;
    const next = { ...status, ...plan.status };
    if (Object.entries(plan.status).some(([field, value]) => status[field] !== value)) {
      await client.updateStatus(this.options.kind, { ...object, status: next });
    }
  }
}
