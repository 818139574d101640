// The taint eviction controller (Kubernetes' NoExecuteTaintManager) and
// PodGC's orphan rule, keyed by pod: a pod is synced when it changes, when
// its node's NoExecute taints change, and again at its toleration deadline.
// A sync asks the pure plan (reconcile-eviction.ts) whether the pod
// tolerates its node's NoExecute taints, and for how long, and deletes it
// when it does not (any more). A pod bound to a node that does not exist
// is deleted at once (grace period 0: no kubelet will ever finish it) once
// the node has been missing for the quarantine and the API server, not
// only the cache, says it is gone.

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Node, Pod, Taint } from '../../../proto/gen/resources/v1/core.js';
import type { EventRecorder } from '../../client/events.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { runWorkers, WorkQueue } from '../../client/workqueue.js';
import { parseTimestampMs } from '../../client/timestamps.js';
import { PodsByNode } from './pods-by-node.js';
import { planEviction, type TimedTaint } from './reconcile-eviction.js';

/** Kubernetes' PodGC quarantine: how long a pod's node must be missing before the pod goes. */
export const DEFAULT_ORPHAN_QUARANTINE_MS = 40_000;

export interface TaintEvictionControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
  /** How long a pod's node must have been missing before the pod is deleted (default 40 s). */
  readonly orphanQuarantineMs?: number;
  /** TaintManagerEviction events about the pods evicted (optional). */
  readonly events?: EventRecorder;
}

function noExecuteTaints(node: Node): Taint[] {
  return (node.spec?.taints ?? []).filter((taint) => taint.effect === 'NoExecute');
}

function taintId(taint: Taint): string {
  return JSON.stringify([taint.key ?? '', taint.value ?? '', taint.effect ?? '']);
}

export class TaintEvictionController {
  private readonly nodes: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  private readonly podsByNode = new PodsByNode();
  /** Per node, per NoExecute taint without timeAdded: when it was first seen. */
  private readonly taintSeen = new Map<string, Map<string, number>>();
  /** Per pod key: since when its node has been missing. */
  private readonly orphanSince = new Map<string, number>();
  private readonly quarantineMs: number;

  constructor(private readonly options: TaintEvictionControllerOptions) {
    this.nodes = informerFor(options, 'Node');
    this.quarantineMs = options.orphanQuarantineMs ?? DEFAULT_ORPHAN_QUARANTINE_MS;
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.nodes.onAdd((node) => this.nodeChanged(undefined, node as Node));
    this.nodes.onUpdate((old, node) => this.nodeChanged(old as Node, node as Node));
    this.nodes.onDelete((node) => this.nodeDeleted(node as Node));
    this.podsByNode.follow(this.options.pods);
    this.options.pods.onAdd((pod) => this.podChanged(pod as Pod));
    this.options.pods.onUpdate((_old, pod) => this.podChanged(pod as Pod));
    this.options.pods.onDelete((pod) => this.orphanSince.delete(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`));
    this.nodes.start();
    signal.addEventListener('abort', () => {
      this.queue.shutDown();
      this.nodes.stop();
    }, { once: true });
    await Promise.all([this.nodes.waitForSync(), this.options.pods.waitForSync()]);
    await runWorkers(this.queue, this.options.workers ?? 4, (key) => this.sync(key), (key, error) => this.options.log?.(`taint eviction ${key}: ${error instanceof Error ? error.message : String(error)}`));
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private podChanged(pod: Pod): void {
    if ((pod.spec?.nodeName ?? '') !== '') this.queue.add(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`);
  }

  private nodeChanged(old: Node | undefined, node: Node): void {
    const name = node.metadata?.name ?? '';
    const taints = noExecuteTaints(node);
    // Remember when each NoExecute taint without a timeAdded was first seen (as long as it stays).
    const seen = this.taintSeen.get(name) ?? new Map<string, number>();
    const kept = new Map<string, number>();
    for (const taint of taints) if (taint.timeAdded === undefined) kept.set(taintId(taint), seen.get(taintId(taint)) ?? this.now());
    if (kept.size === 0) this.taintSeen.delete(name);
    else this.taintSeen.set(name, kept);
    // A new node may be the one its orphans were waiting for; otherwise only NoExecute taints matter.
    if (old !== undefined && JSON.stringify(noExecuteTaints(old)) === JSON.stringify(taints)) return;
    for (const key of this.podsByNode.podKeys(name)) this.queue.add(key);
  }

  private nodeDeleted(node: Node): void {
    const name = node.metadata?.name ?? '';
    this.taintSeen.delete(name);
    for (const key of this.podsByNode.podKeys(name)) this.queue.add(key);
  }

  private async sync(key: string): Promise<void> {
    const pod = this.options.pods.getByKey(key) as Pod | undefined;
    const nodeName = pod?.spec?.nodeName ?? '';
    if (pod === undefined || nodeName === '') {
      this.orphanSince.delete(key);
      return;
    }
    const node = this.nodes.getByKey(nodeName) as Node | undefined;
    if (node === undefined) {
      await this.collectOrphan(key, pod, nodeName);
      return;
    }
    this.orphanSince.delete(key);
    const nowMs = this.now();
    const seen = this.taintSeen.get(nodeName);
    const taints: TimedTaint[] = noExecuteTaints(node).map((taint) => ({ taint, sinceMs: parseTimestampMs(taint.timeAdded) ?? seen?.get(taintId(taint)) ?? nowMs }));
    const decision = planEviction(pod, taints, nowMs);
    if (decision.kind === 'keep') return;
    if (decision.kind === 'evictAt') {
      this.queue.addAfter(key, decision.atMs - nowMs);
      return;
    }
    await this.delete(pod, {});
    this.options.log?.(`taint eviction: evicted pod ${key} from node ${nodeName}`);
    void this.options.events?.record({ kind: 'Pod', namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' }, 'Normal', 'TaintManagerEviction', `Marking for deletion Pod ${key}`);
  }

  /** PodGC's orphans: after the quarantine, and only if the API server confirms the node is gone. */
  private async collectOrphan(key: string, pod: Pod, nodeName: string): Promise<void> {
    const nowMs = this.now();
    const since = this.orphanSince.get(key) ?? nowMs;
    this.orphanSince.set(key, since);
    const waitMs = since + this.quarantineMs - nowMs;
    if (waitMs > 0) {
      this.queue.addAfter(key, waitMs);
      return;
    }
    try {
      await this.options.client.get('Node', '', nodeName);
      // The cache is behind: the node's add event syncs the pod again.
      return;
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
    }
    await this.delete(pod, { gracePeriodSeconds: 0 });
    this.orphanSince.delete(key);
    this.options.log?.(`taint eviction: deleted pod ${key}: its node ${nodeName} does not exist`);
  }

  /** Delete the pod as it was read (a pod of the same name made since is not touched); gone already is done. */
  private async delete(pod: Pod, params: { gracePeriodSeconds?: number }): Promise<void> {
    try {
      await this.options.client.delete('Pod', pod.metadata?.namespace ?? '', pod.metadata?.name ?? '', { resourceVersion: pod.metadata?.resourceVersion ?? '', ...params });
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
    }
  }
}
