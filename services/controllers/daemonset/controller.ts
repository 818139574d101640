// The DaemonSet controller's loop: informers on DaemonSets and Nodes (its
// own) and pods (shared); handlers only enqueue DaemonSet keys — a pod's
// change its controller (or every DaemonSet that may adopt an orphan), a
// node's arrival or departure every DaemonSet, a node's change those whose
// fit for it changed. A sync asks the pure plan (reconcile.ts) and writes
// adoptions, creates, deletes, then the status. Expectations, as the
// ReplicaSet controller's, keep a sync that runs before the cache catches
// up from creating a second pod on a node. Writes go through the client
// given (fenced in the controller-manager).

import { runLoop } from '../common/loop.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { DaemonSet } from '../../../proto/gen/resources/v1/apps.js';
import type { Node, Pod } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { selectorMatches } from '../common/reconcile-selector.js';
import { daemonTolerations, nodeFit } from './reconcile-node.js';
import { PodExpectations } from '../common/pod-expectations.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { daemonSetOwnerReference, planDaemonSet, type DaemonSetPlan } from './reconcile.js';

export interface DaemonSetControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** Shared: the caller starts it. */
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
}

/** Kubernetes' failedPodsBackoff: a node whose daemon pod keeps failing is retried after 1 s, doubling to 15 min. */
const FAILED_POD_BACKOFF_BASE_MS = 1000;
const FAILED_POD_BACKOFF_MAX_MS = 15 * 60_000;

interface Backoff {
  delayMs: number;
  updatedAtMs: number;
}

export class DaemonSetController {
  private readonly daemonSets: InformerView<KubeObject>;
  private readonly nodes: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  /** As the ReplicaSet controller's: a DaemonSet is not synced again until the caches show its pod creations and deletions. */
  private readonly expectations = new PodExpectations('DaemonSet', () => this.now());
  /** Per DaemonSet key, per node: the failed-pod backoff (entries expire after twice the max). */
  private readonly failedBackoff = new Map<string, Map<string, Backoff>>();

  constructor(private readonly options: DaemonSetControllerOptions) {
    this.daemonSets = informerFor(options, 'DaemonSet');
    this.nodes = informerFor(options, 'Node');
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.expectations.watch(this.options.pods, (pod) => this.podChanged(pod));
    this.daemonSets.onAdd((daemonSet) => this.queue.add(keyOf(daemonSet)));
    this.daemonSets.onUpdate((_old, daemonSet) => this.queue.add(keyOf(daemonSet)));
    this.daemonSets.onDelete((daemonSet) => this.queue.add(keyOf(daemonSet)));
    this.nodes.onAdd(() => this.enqueueAll());
    this.nodes.onDelete(() => this.enqueueAll());
    this.nodes.onUpdate((old, node) => this.nodeChanged(old as Node, node as Node));
    await runLoop({ signal, queue: this.queue, own: [this.daemonSets, this.nodes], shared: [this.options.pods], workers: this.options.workers ?? 2, name: 'DaemonSet', sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private enqueueAll(): void {
    for (const daemonSet of this.daemonSets.list()) this.queue.add(keyOf(daemonSet));
  }

  /** Only the DaemonSets whose fit for the node changed (labels, taints...). */
  private nodeChanged(old: Node, node: Node): void {
    for (const daemonSet of this.daemonSets.list() as DaemonSet[]) {
      const spec = daemonSet.spec?.template?.spec;
      const tolerations = daemonTolerations(spec);
      const before = nodeFit(spec, tolerations, old);
      const after = nodeFit(spec, tolerations, node);
      if (before.shouldRun !== after.shouldRun || before.shouldContinueRunning !== after.shouldContinueRunning) this.queue.add(keyOf(daemonSet as KubeObject));
    }
  }

  private podChanged(pod: Pod): void {
    const namespace = pod.metadata?.namespace ?? '';
    const controller = controllerOf(pod);
    if (controller !== undefined) {
      if (controller.kind === 'DaemonSet') this.queue.add(`${namespace}/${controller.name ?? ''}`);
      return;
    }
    for (const daemonSet of this.daemonSets.list() as DaemonSet[]) {
      if (daemonSet.metadata?.namespace === namespace && selectorMatches(daemonSet.spec?.selector, pod.metadata?.labels)) this.queue.add(keyOf(daemonSet as KubeObject));
    }
  }

  /** Nodes of this DaemonSet still in their failed-pod backoff; expired entries are dropped. */
  private backingOff(key: string, nowMs: number): Set<string> {
    const entries = this.failedBackoff.get(key);
    const nodes = new Set<string>();
    if (entries === undefined) return nodes;
    for (const [node, entry] of entries) {
      if (nowMs - entry.updatedAtMs > 2 * FAILED_POD_BACKOFF_MAX_MS) entries.delete(node);
      else if (nowMs - entry.updatedAtMs < entry.delayMs) nodes.add(node);
    }
    if (entries.size === 0) this.failedBackoff.delete(key);
    return nodes;
  }

  /** A failed pod on `node` is being replaced: the next failure there waits twice as long (flowcontrol.Backoff.Next). */
  private backOff(key: string, node: string, nowMs: number): void {
    const entries = this.failedBackoff.get(key) ?? new Map<string, Backoff>();
    this.failedBackoff.set(key, entries);
    const entry = entries.get(node);
    const delayMs = entry === undefined ? FAILED_POD_BACKOFF_BASE_MS : Math.min(entry.delayMs * 2, FAILED_POD_BACKOFF_MAX_MS);
    entries.set(node, { delayMs, updatedAtMs: nowMs });
  }

  private async sync(key: string): Promise<void> {
    const object = this.daemonSets.getByKey(key) as (DaemonSet & KubeObject) | undefined;
    if (object === undefined) {
      // Gone: the garbage collector removes its pods.
      this.expectations.forget(key);
      this.failedBackoff.delete(key);
      return;
    }
    // Still waiting to see its last creates and deletes: the events that satisfy it enqueue it again.
    if (!this.expectations.satisfied(key)) return;
    const namespace = object.metadata?.namespace ?? '';
    const nowMs = this.now();
    const plan = planDaemonSet({
      daemonSet: object,
      nodes: this.nodes.list() as Node[],
      pods: (this.options.pods.list() as Pod[]).filter((pod) => pod.metadata?.namespace === namespace),
      nowMs,
      failedBackoffNodes: this.backingOff(key, nowMs),
    });
    const client = this.options.client;
    for (const pod of plan.adopt) {
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: [...(pod.metadata?.ownerReferences ?? []), daemonSetOwnerReference(object)], resourceVersion: pod.metadata?.resourceVersion } });
    }
    for (const pod of plan.release) {
      const kept = (pod.metadata?.ownerReferences ?? []).filter((reference) => reference.uid !== object.metadata?.uid);
      await client.patch('Pod', namespace, pod.metadata?.name ?? '', { metadata: { ownerReferences: kept.length === 0 ? null : kept, resourceVersion: pod.metadata?.resourceVersion } });
    }
    for (const deletion of plan.delete) if (deletion.reason === 'failed') this.backOff(key, deletion.pod.spec?.nodeName ?? '', nowMs);
    await this.writePods(key, namespace, plan);
    if (plan.requeueAfterMs !== undefined) this.queue.addAfter(key, plan.requeueAfterMs);
    for (const node of plan.backingOff) {
      const entry = this.failedBackoff.get(key)?.get(node);
      if (entry !== undefined) this.queue.addAfter(key, Math.max(entry.updatedAtMs + entry.delayMs - nowMs, 1));
    }
    if (plan.status === undefined) return;
    const status = (object.status ?? {}) as Record<string, unknown>;
    if (Object.entries(plan.status).some(([field, value]) => status[field] !== value)) {
      await client.updateStatus('DaemonSet', { ...object, status: { ...status, ...plan.status } });
    }
  }

  /** The plan's creates and deletes, all at once, under expectations. */
  private async writePods(key: string, namespace: string, plan: DaemonSetPlan): Promise<void> {
    if (plan.create.length === 0 && plan.delete.length === 0) return;
    const client = this.options.client;
    const expected = this.expectations.expect(key, plan.create.length, plan.delete.length);
    // A write that failed will never be observed: stop expecting it (and fail the sync, so it is retried).
    const creates = plan.create.map((pod) =>
      client.create('Pod', pod as KubeObject).catch((error: unknown) => {
        expected.adds--;
        throw error;
      }),
    );
    const deletes = plan.delete.map(({ pod, reason }) =>
      client
        .delete('Pod', namespace, pod.metadata?.name ?? '', { resourceVersion: pod.metadata?.resourceVersion ?? '', ...(reason === 'node-gone' ? { gracePeriodSeconds: 0 } : {}) })
        .catch((error: unknown) => {
          expected.deletes--;
          if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
        }),
    );
    const results = await Promise.allSettled([...creates, ...deletes]);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }
}
