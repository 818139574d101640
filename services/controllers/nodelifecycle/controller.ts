// The node lifecycle controller's loop (Kubernetes' monitorNodeHealth and
// TaintNodesByCondition, keyed by node): informers on Nodes and on the
// kubelets' Leases in kube-node-lease; a node is synced when it or its
// Lease changes, and again the moment its grace period would run out.
// A sync asks the pure plans (reconcile.ts) whether the kubelet went
// silent — then the conditions become Unknown (a status update) — and
// which taints the conditions call for (a patch of spec.taints, pinned to
// the version it was computed from), and marks the pods of a node that is
// not ready NotReady. New NoExecute taints, which start evictions, are
// rate-limited per zone and stop when every zone is fully disrupted
// (reconcile-zones.ts). The pods themselves are evicted by the
// TaintEvictionController (taint-eviction.ts).

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Node, Pod } from '../../../proto/gen/resources/v1/core.js';
import type { Lease } from '../../../proto/gen/resources/v1/coordination.js';
import type { EventRecorder } from '../../client/events.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { runWorkers, WorkQueue } from '../../client/workqueue.js';
import { PodsByNode } from './pods-by-node.js';
import { notReadyPodStatus } from './reconcile-eviction.js';
import { assessNodeHealth, DEFAULT_NODE_MONITOR_GRACE_PERIOD_MS, DEFAULT_NODE_STARTUP_GRACE_PERIOD_MS, planTaints, readyStatusOf, type NoExecuteMode } from './reconcile.js';
import {
  DEFAULT_EVICTIONS_PER_SECOND,
  DEFAULT_LARGE_CLUSTER_SIZE_THRESHOLD,
  DEFAULT_SECONDARY_EVICTIONS_PER_SECOND,
  DEFAULT_UNHEALTHY_ZONE_THRESHOLD,
  EVICTION_BURST,
  TokenBucket,
  ZoneReadiness,
  zoneEvictionRate,
  zoneKeyOf,
  type EvictionRates,
} from './reconcile-zones.js';

/** Where kubelets renew their Leases (one per node, named after it). */
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

export interface NodeLifecycleControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
  /** Silence after which a node's conditions become Unknown (default 40 s, Kubernetes'). */
  readonly nodeMonitorGracePeriodMs?: number;
  /** The same for a node that never posted a Ready condition (default 60 s). */
  readonly nodeStartupGracePeriodMs?: number;
  /** NoExecute taints put on nodes per second per zone (default 10; Kubernetes' --node-eviction-rate is 0.1). */
  readonly evictionsPerSecond?: number;
  /** The rate in a large partially disrupted zone (default 0.01). */
  readonly secondaryEvictionsPerSecond?: number;
  /** A partially disrupted zone of at most this many nodes stops evicting (default 50). */
  readonly largeClusterSizeThreshold?: number;
  /** The share of not-ready nodes that makes a zone (of more than 2 such) partially disrupted (default 0.55). */
  readonly unhealthyZoneThreshold?: number;
  /** NodeNotReady events about nodes and their pods (optional). */
  readonly events?: EventRecorder;
}

export class NodeLifecycleController {
  private readonly nodes: InformerView<KubeObject>;
  private readonly leases: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  private readonly podsByNode = new PodsByNode();
  private readonly zones = new ZoneReadiness();
  private readonly buckets = new Map<string, TokenBucket>();
  /** Per node: since when it is watched (a heartbeat that long ago at least). */
  private readonly observedSince = new Map<string, number>();
  private allFullyDisrupted = false;
  private readonly gracePeriodMs: number;
  private readonly startupGracePeriodMs: number;
  private readonly unhealthyZoneThreshold: number;
  private readonly rates: EvictionRates;

  constructor(private readonly options: NodeLifecycleControllerOptions) {
    this.nodes = informerFor(options, 'Node');
    this.leases = informerFor(options, 'Lease', { namespace: NODE_LEASE_NAMESPACE });
    this.gracePeriodMs = options.nodeMonitorGracePeriodMs ?? DEFAULT_NODE_MONITOR_GRACE_PERIOD_MS;
    this.startupGracePeriodMs = options.nodeStartupGracePeriodMs ?? DEFAULT_NODE_STARTUP_GRACE_PERIOD_MS;
    this.unhealthyZoneThreshold = options.unhealthyZoneThreshold ?? DEFAULT_UNHEALTHY_ZONE_THRESHOLD;
    this.rates = {
      evictionsPerSecond: options.evictionsPerSecond ?? DEFAULT_EVICTIONS_PER_SECOND,
      secondaryEvictionsPerSecond: options.secondaryEvictionsPerSecond ?? DEFAULT_SECONDARY_EVICTIONS_PER_SECOND,
      largeClusterSizeThreshold: options.largeClusterSizeThreshold ?? DEFAULT_LARGE_CLUSTER_SIZE_THRESHOLD,
    };
    if (!(this.gracePeriodMs > 0 && this.startupGracePeriodMs > 0)) throw new Error('NodeLifecycleController: grace periods must be positive');
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.nodes.onAdd((node) => this.nodeChanged(node as Node));
    this.nodes.onUpdate((_old, node) => this.nodeChanged(node as Node));
    this.nodes.onDelete((node) => this.nodeDeleted(node as Node));
    this.leases.onAdd((lease) => this.leaseChanged(lease as Lease));
    this.leases.onUpdate((_old, lease) => this.leaseChanged(lease as Lease));
    this.podsByNode.follow(this.options.pods);
    this.options.pods.onAdd((pod) => this.podChanged(pod as Pod));
    this.options.pods.onUpdate((_old, pod) => this.podChanged(pod as Pod));
    this.nodes.start();
    this.leases.start();
    signal.addEventListener('abort', () => {
      this.queue.shutDown();
      this.nodes.stop();
      this.leases.stop();
    }, { once: true });
    await Promise.all([this.nodes.waitForSync(), this.leases.waitForSync(), this.options.pods.waitForSync()]);
    this.zonesChanged();
    await runWorkers(this.queue, this.options.workers ?? 4, (name) => this.sync(name), (name, error) => this.options.log?.(`node lifecycle ${name}: ${error instanceof Error ? error.message : String(error)}`));
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private nodeChanged(node: Node): void {
    const name = node.metadata?.name ?? '';
    if (!this.observedSince.has(name)) this.observedSince.set(name, this.now());
    this.countInZone(node);
    this.queue.add(name);
  }

  private countInZone(node: Node): void {
    this.zones.set(node.metadata?.name ?? '', zoneKeyOf(node), readyStatusOf(node.status?.conditions) === 'True');
    this.zonesChanged();
  }

  private nodeDeleted(node: Node): void {
    const name = node.metadata?.name ?? '';
    this.observedSince.delete(name);
    this.zones.remove(name);
    this.zonesChanged();
  }

  private leaseChanged(lease: Lease): void {
    const name = lease.metadata?.name ?? '';
    if (this.nodes.getByKey(name) !== undefined) this.queue.add(name);
  }

  /** A Ready pod on a node that is not: the node's sync marks it NotReady. */
  private podChanged(pod: Pod): void {
    const node = pod.spec?.nodeName ?? '';
    const ready = (pod.status?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True');
    if (node === '' || !ready) return;
    const status = readyStatusOf((this.nodes.getByKey(node) as Node | undefined)?.status?.conditions);
    if (status !== undefined && status !== 'True') this.queue.add(node);
  }

  /**
   * Bring each zone's eviction rate in line with its state. Entering the
   * all-zones-disrupted mode, every node is synced (to drop its NoExecute
   * taint); leaving it, every node gets a fresh grace period, as in Kubernetes.
   */
  private zonesChanged(): void {
    // The first list is still arriving node by node: judge the zones once it is all in.
    if (!this.nodes.hasSynced) return;
    const nowMs = this.now();
    const all = this.zones.allFullyDisrupted(this.unhealthyZoneThreshold);
    for (const zone of [...this.buckets.keys()]) if (this.zones.size(zone) === 0) this.buckets.delete(zone);
    for (const zone of this.zones.zones()) {
      const rate = zoneEvictionRate(this.zones.state(zone, this.unhealthyZoneThreshold), this.zones.size(zone), all, this.rates);
      const bucket = this.buckets.get(zone);
      if (bucket === undefined) this.buckets.set(zone, new TokenBucket(rate, EVICTION_BURST));
      else if (bucket.rate !== rate) bucket.setRate(rate, nowMs);
    }
    if (all === this.allFullyDisrupted) return;
    this.allFullyDisrupted = all;
    this.options.log?.(all ? 'node lifecycle: no node in any zone is ready: entering master disruption mode, evictions stop' : 'node lifecycle: some node is ready again: leaving master disruption mode');
    for (const node of this.nodes.list()) {
      const name = node.metadata?.name ?? '';
      if (!all) this.observedSince.set(name, nowMs);
      this.queue.add(name);
    }
  }

  private async sync(name: string): Promise<void> {
    const cached = this.nodes.getByKey(name) as Node | undefined;
    if (cached === undefined) return;
    const nowMs = this.now();
    const observedSinceMs = this.observedSince.get(name) ?? nowMs;
    this.observedSince.set(name, observedSinceMs);
    const lease = this.leases.get(NODE_LEASE_NAMESPACE, name) as Lease | undefined;
    const health = assessNodeHealth({ node: cached, lease, observedSinceMs, nowMs, gracePeriodMs: this.gracePeriodMs, startupGracePeriodMs: this.startupGracePeriodMs });
    let node = cached;
    if (health.conditions !== undefined) {
      const wasReady = readyStatusOf(cached.status?.conditions) === 'True';
      node = (await this.options.client.updateStatus('Node', { ...structuredClone(cached), status: { ...cached.status, conditions: health.conditions } } as KubeObject)) as Node;
      // Count it not ready now, not when the informer brings the write back: it may be what disrupts the whole zone.
      this.countInZone(node);
      this.options.log?.(`node lifecycle: node ${name} stopped posting status: conditions set to Unknown`);
      if (wasReady) void this.options.events?.record({ kind: 'Node', name, uid: cached.metadata?.uid ?? '' }, 'Normal', 'NodeNotReady', `Node ${name} status is now: NodeNotReady`);
    } else if (!health.stale) {
      // Look again the moment the grace period would run out.
      this.queue.addAfter(name, health.deadlineMs - nowMs + 1);
    }
    await this.taint(node, nowMs);
    const ready = readyStatusOf(node.status?.conditions);
    if (ready !== undefined && ready !== 'True') await this.markPodsNotReady(name, nowMs);
  }

  /** Write the taints the node's conditions call for, a new NoExecute one only when its zone's rate allows. */
  private async taint(node: Node, nowMs: number): Promise<void> {
    const name = node.metadata?.name ?? '';
    const conditions = node.status?.conditions ?? [];
    const bucket = this.buckets.get(zoneKeyOf(node));
    const mode: NoExecuteMode = this.allFullyDisrupted ? 'clear' : 'add';
    let plan = planTaints(node, conditions, nowMs, mode);
    if (plan.addsNoExecute && !(bucket?.tryTake(nowMs) ?? false)) plan = planTaints(node, conditions, nowMs, 'hold');
    if (plan.heldNoExecute) {
      const waitMs = bucket?.waitMs(nowMs) ?? Infinity;
      // At rate 0 the zone's state must change first, and that syncs the node again.
      if (waitMs !== Infinity) this.queue.addAfter(name, Math.max(1, waitMs));
    }
    if (!plan.changed) return;
    await this.options.client.patch('Node', '', name, { metadata: { resourceVersion: node.metadata?.resourceVersion }, spec: { taints: plan.taints.length === 0 ? null : plan.taints } });
    if (plan.addsNoExecute) this.options.log?.(`node lifecycle: node ${name} tainted ${plan.taints.filter((taint) => taint.effect === 'NoExecute').map((taint) => taint.key).join(', ')}:NoExecute`);
  }

  private async markPodsNotReady(node: string, nowMs: number): Promise<void> {
    for (const key of this.podsByNode.podKeys(node)) {
      const pod = this.options.pods.getByKey(key) as Pod | undefined;
      const status = pod === undefined ? undefined : notReadyPodStatus(pod, nowMs);
      if (pod === undefined || status === undefined) continue;
      try {
        await this.options.client.updateStatus('Pod', { ...structuredClone(pod), status } as KubeObject);
      } catch (error) {
        // Gone meanwhile: nothing to mark. Anything else: the node's sync is retried.
        if (statusCodeOf(error) === grpc.status.NOT_FOUND) continue;
        throw error;
      }
      void this.options.events?.record({ kind: 'Pod', namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' }, 'Warning', 'NodeNotReady', 'Node is not ready');
    }
  }
}
