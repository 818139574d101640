// The scheduler's binding loop, around the pure plugins: informers keep
// nodes and pods; pods without a node (for this scheduler, not being
// deleted) wait in a queue; one at a time each is placed on the snapshot
// (schedule, then assume at once so the next pod sees it), and the binding
// — an update of the pod's spec.nodeName pinned to the version it was
// scheduled from (the Bind call), through a fenced client — goes on in the background, many
// in flight. A bind that fails forgets the assumption and retries with
// backoff; one refused as Fenced means this scheduler was superseded: it
// stops. A pod no node fits gets PodScheduled=False with Kubernetes'
// "0/N nodes are available: ..." and waits until nodes or pods change — or,
// when it names PersistentVolumeClaims, until a claim or volume changes.

import type { Node, PersistentVolume, PersistentVolumeClaim, Pod } from '../../proto/gen/resources/v1/core.js';
import type { EventRecorder, InvolvedObject } from '../client/events.js';
import { keyOf } from '../client/informer.js';
import { informerFor, type InformerView, type SharedInformers } from '../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../client/resources.js';
import { WorkQueue } from '../client/workqueue.js';
import { assume, buildSnapshot, forget, podInfoOf, schedule, type ClusterSnapshot, type StorageLister } from './plugins/index.js';

export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';
/** Binds in flight by default: enough to keep Raft's batches full (the bench: 256 beat 100 by 15%; 600 was worse). */
export const DEFAULT_MAX_BINDS_IN_FLIGHT = 256;

export interface SchedulerOptions {
  /** Fenced with the scheduler's Lease when leader-elected. */
  readonly client: ResourceClient;
  readonly schedulerName?: string;
  /** Binds in flight at once (the binding cycle runs beside the scheduling one). */
  readonly maxBindsInFlight?: number;
  readonly events?: EventRecorder;
  readonly log?: (line: string) => void;
  /** Warm informers shared with others (a standby keeps them running); absent: the scheduler's own. */
  readonly informers?: SharedInformers;
  /** Kubernetes' percentageOfNodesToScore (0 or absent: adaptive; 100: score every feasible node). */
  readonly percentageOfNodesToScore?: number;
}


export class Scheduler {
  private readonly pods: InformerView;
  private readonly nodes: InformerView;
  private readonly claims: InformerView;
  private readonly volumes: InformerView;
  /** Claims and volumes as the snapshot reads them: straight from the caches. */
  private readonly storage: StorageLister;
  private readonly queue = new WorkQueue<string>({ baseBackoffMs: 10, maxBackoffMs: 5000 });
  /** Pods no node fits now: tried again when nodes or pods change. */
  private readonly parked = new Set<string>();
  /** The parked pods that name claims: tried again when claims or volumes change too. */
  private readonly parkedWithClaims = new Set<string>();
  /** Pods assumed on a node whose bind is not yet seen by the informer. */
  private readonly assumed = new Map<string, string>();
  private snapshot: ClusterSnapshot | undefined;
  private readonly schedulerName: string;
  private readonly maxBindsInFlight: number;
  private bindsInFlight = 0;
  private bindSlot: (() => void) | undefined;
  private stopped = false;
  /** Where the next pod's filtering starts: every node gets its turn in large clusters. */
  private nextStartIndex = 0;
  /** Counters for benchmarks and tests. */
  bound = 0;
  unschedulable = 0;

  constructor(private readonly options: SchedulerOptions) {
    this.schedulerName = options.schedulerName ?? DEFAULT_SCHEDULER_NAME;
    this.maxBindsInFlight = options.maxBindsInFlight ?? DEFAULT_MAX_BINDS_IN_FLIGHT;
    this.pods = informerFor(options, 'Pod');
    this.nodes = informerFor(options, 'Node');
    this.claims = informerFor(options, 'PersistentVolumeClaim');
    this.volumes = informerFor(options, 'PersistentVolume');
    this.storage = {
      claim: (namespace, name) => this.claims.get(namespace, name) as PersistentVolumeClaim | undefined,
      volume: (name) => this.volumes.get('', name) as PersistentVolume | undefined,
    };
  }

  /** Run until `signal` aborts (leadership lost) or the scheduler is superseded. */
  async run(signal: AbortSignal): Promise<void> {
    const stop = (): void => this.stop();
    signal.addEventListener('abort', stop, { once: true });
    this.nodes.onAdd(() => this.nodesChanged());
    this.nodes.onUpdate(() => this.nodesChanged());
    this.nodes.onDelete(() => this.nodesChanged());
    this.pods.onAdd((pod) => this.podChanged(undefined, pod as Pod));
    this.pods.onUpdate((old, pod) => this.podChanged(old as Pod, pod as Pod));
    this.pods.onDelete((pod) => this.podChanged(pod as Pod, undefined));
    for (const storage of [this.claims, this.volumes]) {
      storage.onAdd(() => this.storageChanged());
      storage.onUpdate(() => this.storageChanged());
      storage.onDelete(() => this.storageChanged());
    }
    const informers = [this.nodes, this.pods, this.claims, this.volumes];
    for (const informer of informers) informer.start();
    try {
      await Promise.all(informers.map((informer) => informer.waitForSync()));
      while (!this.stopped) {
        const key = await this.queue.get();
        if (key === undefined) break;
        try {
          await this.scheduleOne(key);
        } finally {
          this.queue.done(key);
        }
      }
    } finally {
      signal.removeEventListener('abort', stop);
      this.stop();
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.shutDown();
    this.pods.stop();
    this.nodes.stop();
    this.claims.stop();
    this.volumes.stop();
    this.bindSlot?.();
  }

  private wants(pod: Pod | undefined): boolean {
    return pod !== undefined && (pod.spec?.nodeName ?? '') === '' && (pod.spec?.schedulerName ?? DEFAULT_SCHEDULER_NAME) === this.schedulerName && pod.metadata?.deletionTimestamp === undefined;
  }

  private nodesChanged(): void {
    this.snapshot = undefined;
    this.unpark();
  }

  private unpark(): void {
    for (const key of this.parked) this.queue.add(key);
    this.parked.clear();
    this.parkedWithClaims.clear();
  }

  /** A claim or volume changed: only the parked pods that name claims may fit now. */
  private storageChanged(): void {
    for (const key of this.parkedWithClaims) {
      if (this.parked.delete(key)) this.queue.add(key);
    }
    this.parkedWithClaims.clear();
  }

  private podChanged(old: Pod | undefined, pod: Pod | undefined): void {
    const key = keyOf((pod ?? old) as KubeObject);
    const oldNode = old?.spec?.nodeName ?? '';
    const newNode = pod?.spec?.nodeName ?? '';
    // An assumption ends when the informer shows the pod bound (or gone): from then on the real object counts.
    const assumedOn = this.assumed.get(key);
    const assumptionEnds = assumedOn !== undefined && (pod === undefined || newNode !== '');
    if (assumptionEnds) this.assumed.delete(key);
    const snapshot = this.snapshot;
    if (snapshot !== undefined) {
      if (old !== undefined && oldNode !== '') forget(snapshot, old, oldNode);
      if (assumptionEnds) forget(snapshot, (old ?? pod)!, assumedOn);
      if (pod !== undefined && newNode !== '') assume(snapshot, pod, newNode);
    }
    if (this.wants(pod)) this.queue.add(key);
    // A pod that went away or left its node frees room: the parked may fit now.
    if ((pod === undefined && oldNode !== '') || (oldNode !== '' && oldNode !== newNode)) this.unpark();
  }

  private currentSnapshot(): ClusterSnapshot {
    if (this.snapshot === undefined) {
      const pods = this.pods.list() as Pod[];
      this.snapshot = buildSnapshot(this.nodes.list() as Node[], pods, { storage: this.storage });
      for (const [key, node] of this.assumed) {
        const pod = this.pods.getByKey(key) as Pod | undefined;
        if (pod !== undefined && (pod.spec?.nodeName ?? '') === '') assume(this.snapshot, pod, node);
      }
    }
    return this.snapshot;
  }

  private async scheduleOne(key: string): Promise<void> {
    const pod = this.pods.getByKey(key) as Pod | undefined;
    if (!this.wants(pod) || this.assumed.has(key)) return;
    const snapshot = this.currentSnapshot();
    const result = schedule(pod!, snapshot, { percentageOfNodesToScore: this.options.percentageOfNodesToScore ?? 0, startIndex: this.nextStartIndex });
    this.nextStartIndex = result.nextStartIndex;
    if (result.node === undefined) {
      this.parked.add(key);
      if (podInfoOf(pod!).claimNames.length > 0) this.parkedWithClaims.add(key);
      this.unschedulable++;
      void this.reportUnschedulable(pod!, result.reason ?? 'no node fits');
      return;
    }
    assume(snapshot, pod!, result.node);
    this.assumed.set(key, result.node);
    await this.waitForBindSlot();
    this.bindsInFlight++;
    void this.bind(key, pod!, result.node).finally(() => {
      this.bindsInFlight--;
      const slot = this.bindSlot;
      this.bindSlot = undefined;
      slot?.();
    });
  }

  private async waitForBindSlot(): Promise<void> {
    while (this.bindsInFlight >= this.maxBindsInFlight && !this.stopped) {
      await new Promise<void>((resolve) => (this.bindSlot = resolve));
    }
  }

  private async bind(key: string, pod: Pod, node: string): Promise<void> {
    try {
      await this.options.client.bind(pod.metadata?.namespace ?? 'default', pod.metadata?.name ?? '', node, pod.metadata?.resourceVersion ?? '');
      this.bound++;
      void this.options.events?.record(involvedPod(pod), 'Normal', 'Scheduled', `Successfully assigned ${key} to ${node}`);
    } catch (error) {
      // Not bound: take the assumption back.
      if (this.assumed.get(key) === node) {
        this.assumed.delete(key);
        if (this.snapshot !== undefined) forget(this.snapshot, pod, node);
      }
      const code = statusCodeOf(error);
      if (code === grpc.status.FAILED_PRECONDITION) {
        this.options.log?.(`scheduler: superseded (${(error as Error).message}); stopping`);
        this.stop();
        return;
      }
      if (code === grpc.status.NOT_FOUND) return;
      this.options.log?.(`scheduler: binding ${key} to ${node} failed: ${(error as Error).message}; will retry`);
      if (!this.stopped) this.queue.addRateLimited(key);
    }
  }

  private async reportUnschedulable(pod: Pod, message: string): Promise<void> {
    const conditions = (pod.status?.conditions ?? []).filter((condition) => condition.type !== 'PodScheduled');
    const previous = (pod.status?.conditions ?? []).find((condition) => condition.type === 'PodScheduled');
    if (previous?.status === 'False' && previous.message === message) return;
    const key = keyOf(pod as KubeObject);
    try {
      await this.options.client.updateStatus('Pod', {
        ...pod,
        status: { ...pod.status, phase: pod.status?.phase ?? 'Pending', conditions: [...conditions, { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }] },
      } as KubeObject);
      void this.options.events?.record(involvedPod(pod), 'Warning', 'FailedScheduling', message);
    } catch (error) {
      if (statusCodeOf(error) === grpc.status.FAILED_PRECONDITION) this.stop();
      else this.options.log?.(`scheduler: reporting ${key} unschedulable failed: ${(error as Error).message}`);
    }
  }
}

/** A pod as the subject of an Event. */
function involvedPod(pod: Pod): InvolvedObject {
  return { apiVersion: 'v1', kind: 'Pod', namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' };
}
