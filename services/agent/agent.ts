// The node agent (the kubelet's role), assembled: it serves its own API
// (logs, exec) first so the Node it registers can say where; registers the
// Node and heartbeats its Lease; watches the pods bound to it and runs one
// PodWorker per pod over the CRI runtime; posts each pod's status when it
// changes; finishes deletions (the final delete, grace 0, once the pod is
// stopped and cleaned up); removes what the runtime runs for pods that are
// no longer bound here; and reports usage for the HPA and `mastctl top`.

import * as grpc from '@grpc/grpc-js';
import { Informer } from '../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../client/resources.js';
import type { ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, PodStatus, Secret, Service } from '../../proto/gen/resources/v1/core.js';
import { startAgentServer, type AgentServer, type ContainerAttempt, type PodContainers } from './agent-server.js';
import { Backoff, DEFAULT_BACKOFF_POLICY } from './backoff.js';
import type { CriRuntime } from './cri.js';
import { NodeStatusReporter } from './node-status.js';
import { LABEL_CONTAINER_NAME, LABEL_POD_UID, NodePodEnvironment } from './pod-environment.js';
import { findOrphans, PodWorker, removeOrphans } from './pod-worker.js';
import { ContainerState } from '../../proto/gen/cri/v1/api.js';
import { UsageReporter } from './usage.js';
import { LifecycleEvents } from './pleg.js';
import { DEFAULT_CGROUP_ROOT, PodCgroups } from './pod-cgroups.js';

export interface AgentOptions {
  readonly client: ResourceClient;
  readonly runtime: CriRuntime;
  readonly nodeName: string;
  readonly nodeIp: string;
  readonly nodeLabels?: Readonly<Record<string, string>>;
  readonly rootDir: string;
  readonly podCidr?: string;
  readonly maxPods?: number;
  readonly clusterDns?: readonly string[];
  readonly clusterDomain?: string;
  /** host:port of the agent API ("" = nodeIp:10250). */
  readonly listenAddress: string;
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile: string } | undefined;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  readonly nodeStatusUpdateFrequencyMs?: number;
  /** Pods' cgroup parent root ("" = the runtime's default). */
  readonly cgroupRoot?: string;
  readonly usageIntervalMs?: number;
  readonly log: (line: string) => void;
}

/** How often a pod worker syncs without a reason to (runtime changes, probes and back-off expiry wake it sooner). */
export const POD_RESYNC_INTERVAL_MS = 10_000;

/** Whether two JSON values are the same (object key order aside): a status to post or not. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, index) => sameJson(item, other[index]));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left).filter((key) => left[key] !== undefined);
  if (keys.length !== Object.keys(right).filter((key) => right[key] !== undefined).length) return false;
  return keys.every((key) => sameJson(left[key], right[key]));
}

function sameStatus(a: PodStatus | undefined, b: PodStatus | undefined): boolean {
  return sameJson(a ?? {}, b ?? {});
}

export class Agent {
  private readonly pods: Informer<KubeObject>;
  private readonly services: Informer<KubeObject>;
  private readonly configMaps: Informer<KubeObject>;
  private readonly secrets: Informer<KubeObject>;
  private readonly claims: Informer<KubeObject>;
  private readonly volumes: Informer<KubeObject>;
  private readonly workers = new Map<string, PodWorker>();
  private readonly backoff: Backoff;
  /** Statuses being posted and the next one to post, by pod uid (one write at a time per pod). */
  private readonly posting = new Map<string, { running: Promise<void>; next: { pod: Pod; status: PodStatus } | undefined }>();
  private readonly posted = new Map<string, PodStatus>();
  private environment: NodePodEnvironment | undefined;
  private nodeStatus: NodeStatusReporter | undefined;
  private server: AgentServer | undefined;
  private usage: UsageReporter | undefined;
  private lifecycle: LifecycleEvents | undefined;
  private runtimeName = '';
  private orphanTimer: NodeJS.Timeout | undefined;
  /** Pod-level cgroups, released once the runtime holds nothing of a pod. */
  private readonly cgroups: PodCgroups;
  private stopped = false;
  /** When this agent first saw each pod that was not yet Running (for the start-duration metric). */
  private readonly firstSeenMs = new Map<string, number>();
  private readonly podStartListeners: Array<(seconds: number) => void> = [];
  private statusUpdates = 0;
  private statusUpdateFailures = 0;

  constructor(private readonly options: AgentOptions) {
    const { client, log } = options;
    this.pods = new Informer(client, 'Pod', { fieldSelector: `spec.nodeName=${options.nodeName}`, log });
    this.services = new Informer(client, 'Service', { log });
    this.configMaps = new Informer(client, 'ConfigMap', { log });
    this.secrets = new Informer(client, 'Secret', { log });
    this.claims = new Informer(client, 'PersistentVolumeClaim', { log });
    this.volumes = new Informer(client, 'PersistentVolume', { log });
    this.cgroups = new PodCgroups({ cgroupRoot: options.cgroupRoot ?? DEFAULT_CGROUP_ROOT, log });
    this.backoff = new Backoff({ ...DEFAULT_BACKOFF_POLICY, initialMs: options.backoffInitialMs ?? DEFAULT_BACKOFF_POLICY.initialMs, maxMs: options.backoffMaxMs ?? DEFAULT_BACKOFF_POLICY.maxMs });
  }

  /** The agent API's port (after start). */
  get port(): number {
    return this.server?.port ?? 0;
  }

  async start(): Promise<void> {
    const { client, runtime, nodeName, log } = this.options;
    const version = await runtime.version();
    const runtimeName = version.runtimeName;
    this.runtimeName = runtimeName;
    this.server = await startAgentServer({ address: this.options.listenAddress, containers: this.podContainers(), ...(this.options.tls === undefined ? {} : { tls: this.options.tls }) });
    log(`agent API on ${this.options.listenAddress.replace(/:0$/, '')}:${this.server.port}; runtime ${runtimeName} ${version.runtimeVersion}`);
    this.nodeStatus = new NodeStatusReporter({
      client,
      nodeName,
      rootDir: this.options.rootDir,
      runtimeVersion: `${runtimeName}://${version.runtimeVersion}`,
      runtimeReady: async () => {
        const status = await runtime.status();
        const notReady = (status.status?.conditions ?? []).filter((condition) => !condition.status);
        return notReady.length === 0 ? { ready: true, message: '' } : { ready: false, message: notReady.map((condition) => `${condition.type}: ${condition.reason} ${condition.message}`.trim()).join('; ') };
      },
      labels: this.options.nodeLabels ?? {},
      maxPods: this.options.maxPods,
      internalIP: this.options.nodeIp,
      ...(this.options.podCidr === undefined ? {} : { podCIDR: this.options.podCidr }),
      daemonPort: this.server.port,
      nodeStatusUpdateFrequencyMs: this.options.nodeStatusUpdateFrequencyMs,
      log,
    });
    const cache = <T>(informer: Informer<KubeObject>, namespace: string, name: string): T | undefined => informer.get(namespace, name) as T | undefined;
    this.environment = new NodePodEnvironment({
      rootDir: this.options.rootDir,
      nodeName,
      hostIP: this.options.nodeIp,
      ...(this.options.clusterDns === undefined ? {} : { clusterDNS: this.options.clusterDns }),
      ...(this.options.clusterDomain === undefined ? {} : { clusterDomain: this.options.clusterDomain }),
      ...(this.options.cgroupRoot === undefined ? {} : { cgroupRoot: this.options.cgroupRoot }),
      nodeLabels: () => this.nodeStatus?.nodeLabels() ?? {},
      objects: {
        listServices: (namespace) => this.services.list().filter((service) => service.metadata?.namespace === namespace) as Service[],
        getConfigMap: (namespace, name) => cache<ConfigMap>(this.configMaps, namespace, name),
        getSecret: (namespace, name) => cache<Secret>(this.secrets, namespace, name),
        getClaim: (namespace, name) => cache<PersistentVolumeClaim>(this.claims, namespace, name),
        getVolume: (name) => cache<PersistentVolume>(this.volumes, '', name),
      },
      onWarning: (pod, reason, message) => log(`pod ${pod.metadata?.namespace}/${pod.metadata?.name}: ${reason}: ${message}`),
    });
    for (const informer of [this.services, this.configMaps, this.secrets, this.claims, this.volumes]) informer.start();
    await Promise.all([this.services, this.configMaps, this.secrets, this.claims, this.volumes].map((informer) => informer.waitForSync()));
    await this.nodeStatus.start();

    this.pods.onAdd((pod) => this.podChanged(pod as Pod));
    this.pods.onUpdate((_old, pod) => this.podChanged(pod as Pod));
    this.pods.onDelete((pod) => this.podGone(pod as Pod));
    this.pods.start();
    await this.pods.waitForSync();
    await this.removeOrphans();
    // Workers sync when the runtime's state of their pod changes (one relist a second for all pods), and every resync interval.
    this.lifecycle = new LifecycleEvents({ runtime, onChange: (uid, fingerprint) => this.workers.get(uid)?.runtimeChanged(fingerprint), log });
    this.lifecycle.start();
    // Pods deleted while the agent was down, or bound elsewhere, leave containers behind: sweep now and then.
    this.orphanTimer = setInterval(() => {
      void this.removeOrphans();
      // Back-off entries of pods that went without being terminated here (orphans, another agent's) expire.
      this.backoff.gc(Date.now());
    }, 30_000);
    this.usage = new UsageReporter({ client, nodeName, listContainerStats: () => runtime.listContainerStats(), intervalMs: this.options.usageIntervalMs ?? 15_000, log });
    this.usage.start();
    log(`node ${nodeName} registered; ${this.workers.size} pods bound here`);
  }

  /** What the agent's Prometheus metrics report (see services/cmd/agent.ts). */
  metrics(): { pods: number; runningPods: number; containerRestarts: number; statusUpdates: number; statusUpdateFailures: number } {
    let runningPods = 0;
    let containerRestarts = 0;
    for (const status of this.posted.values()) {
      if (status.phase === 'Running') runningPods++;
      for (const container of status.containerStatuses ?? []) containerRestarts += container.restartCount ?? 0;
    }
    return { pods: this.workers.size, runningPods, containerRestarts, statusUpdates: this.statusUpdates, statusUpdateFailures: this.statusUpdateFailures };
  }

  /** Called with the seconds from this agent first seeing a pod to its status saying Running (pods adopted Running are not counted). */
  onPodStarted(listener: (seconds: number) => void): void {
    this.podStartListeners.push(listener);
  }

  /** Stop acting; pods keep running in the runtime, and the next agent adopts them. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.orphanTimer !== undefined) clearInterval(this.orphanTimer);
    for (const informer of [this.pods, this.services, this.configMaps, this.secrets, this.claims, this.volumes]) informer.stop();
    for (const worker of this.workers.values()) worker.stop();
    this.nodeStatus?.stop();
    await this.lifecycle?.stop();
    await this.usage?.stop();
    await Promise.all([...this.posting.values()].map((entry) => entry.running));
    await this.server?.close();
  }

  private podChanged(pod: Pod): void {
    if (this.stopped) return;
    const uid = pod.metadata?.uid ?? '';
    if (uid === '') return;
    const existing = this.workers.get(uid);
    if (existing !== undefined) {
      existing.update(pod);
      return;
    }
    if (pod.status?.phase !== 'Running') this.firstSeenMs.set(uid, performance.now());
    const worker = new PodWorker(pod, {
      runtime: this.options.runtime,
      environment: this.environment!,
      hostIP: this.options.nodeIp,
      runtimeName: this.runtimeName,
      backoff: this.backoff,
      // The lifecycle relist triggers syncs on runtime changes; this is the safety net (the kubelet's is a minute).
      resyncIntervalMs: POD_RESYNC_INTERVAL_MS,
      onStatus: (current, status) => this.postStatus(current, status),
      onTerminated: (current) => void this.finishDeletion(current),
      log: this.options.log,
    });
    this.workers.set(uid, worker);
    worker.start();
  }

  /** The pod object is gone from the API (deleted with grace 0, or no longer bound here): stop it all the same. */
  private podGone(pod: Pod): void {
    const worker = this.workers.get(pod.metadata?.uid ?? '');
    if (worker === undefined) return;
    worker.podRemoved(0);
    void worker.terminated.then(() => this.forget(pod.metadata?.uid ?? ''));
  }

  private forget(uid: string): void {
    this.workers.delete(uid);
    this.posted.delete(uid);
    this.firstSeenMs.delete(uid);
    // The worker removed the pod's sandbox: its cgroup goes once the runtime's writes for it are on disk.
    this.cgroups.later(uid, performance.now());
  }

  /** A deleted pod is stopped and cleaned up: the kubelet's final delete (grace 0) removes the object. */
  private async finishDeletion(pod: Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    await this.posting.get(uid)?.running;
    try {
      if (pod.metadata?.deletionTimestamp !== undefined) {
        await this.options.client.delete('Pod', pod.metadata.namespace ?? 'default', pod.metadata.name ?? '', { gracePeriodSeconds: 0, resourceVersion: '' });
      }
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.NOT_FOUND) this.options.log(`pod ${pod.metadata?.namespace}/${pod.metadata?.name}: final delete failed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.forget(uid);
    }
  }

  /** Post a status unless it is what was posted last; one write per pod at a time, the latest wins. */
  private postStatus(pod: Pod, status: PodStatus): void {
    if (this.stopped) return;
    const uid = pod.metadata?.uid ?? '';
    if (sameStatus(this.posted.get(uid) ?? pod.status, status)) return;
    const entry = this.posting.get(uid);
    if (entry !== undefined) {
      entry.next = { pod, status };
      return;
    }
    const run = async (first: { pod: Pod; status: PodStatus }): Promise<void> => {
      let next: { pod: Pod; status: PodStatus } | undefined = first;
      while (next !== undefined && !this.stopped) {
        const { pod: target, status: wanted } = next;
        await this.writeStatus(target, wanted);
        const current = this.posting.get(uid);
        next = current?.next;
        if (current !== undefined) current.next = undefined;
      }
      this.posting.delete(uid);
    };
    const record = { running: Promise.resolve(), next: undefined as { pod: Pod; status: PodStatus } | undefined };
    this.posting.set(uid, record);
    record.running = run({ pod, status });
  }

  private async writeStatus(pod: Pod, status: PodStatus): Promise<void> {
    const { client, log } = this.options;
    const namespace = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    // The stored pod (not the worker's copy): status writes must not undo spec or metadata changes.
    // After a conflict the informer may still hold the old version: the fresh read is used instead.
    let fresh: Pod | undefined;
    for (let attempt = 0; attempt < 5 && !this.stopped; attempt++) {
      try {
        const stored = fresh ?? (this.pods.get(namespace, name) as Pod | undefined) ?? ((await client.get('Pod', namespace, name)) as Pod);
        if (stored.metadata?.uid !== pod.metadata?.uid) return; // replaced by a pod of the same name
        await client.updateStatus('Pod', { ...(stored as KubeObject), status: status as Record<string, unknown> } as KubeObject);
        this.posted.set(pod.metadata?.uid ?? '', status);
        this.statusUpdates++;
        this.startedIfRunning(pod.metadata?.uid ?? '', status);
        return;
      } catch (error) {
        const code = statusCodeOf(error);
        if (code === grpc.status.NOT_FOUND) return;
        if (code === grpc.status.ABORTED) {
          fresh = (await client.get('Pod', namespace, name).catch(() => undefined)) as Pod | undefined;
          if (fresh === undefined) return;
          continue;
        }
        fresh = undefined;
        this.statusUpdateFailures++;
        log(`pod ${namespace}/${name}: status update failed: ${error instanceof Error ? error.message : String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
      }
    }
  }

  private startedIfRunning(uid: string, status: PodStatus): void {
    const seenAt = this.firstSeenMs.get(uid);
    if (seenAt === undefined || status.phase !== 'Running') return;
    this.firstSeenMs.delete(uid);
    const seconds = (performance.now() - seenAt) / 1000;
    for (const listener of this.podStartListeners) listener(seconds);
  }

  private async removeOrphans(): Promise<void> {
    if (this.stopped) return;
    try {
      const known = new Set([...this.workers.keys()]);
      const orphans = await findOrphans(this.options.runtime, known);
      if (orphans.uids.length > 0) {
        this.options.log(`removing what the runtime runs for ${orphans.uids.length} pod(s) no longer bound here: ${orphans.uids.join(', ')}`);
        await removeOrphans(this.options.runtime, orphans);
      }
      // Cgroups of pods gone from the runtime (a pod still running keeps its container cgroups: those stay).
      await this.cgroups.sweep(known, performance.now());
    } catch (error) {
      this.options.log(`orphan sweep failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** The agent API's view of the runtime: a pod's container attempts by uid and name. */
  private podContainers(): PodContainers {
    const runtime = this.options.runtime;
    return {
      attempts: async (podUid, container) => {
        const listed = await runtime.listContainers({ labelSelector: { [LABEL_POD_UID]: podUid, [LABEL_CONTAINER_NAME]: container } });
        const attempts: ContainerAttempt[] = [];
        for (const entry of listed) {
          const status = await runtime.containerStatus(entry.id);
          attempts.push({ id: entry.id, attempt: entry.metadata?.attempt ?? 0, running: entry.state === ContainerState.CONTAINER_RUNNING, logPath: status?.logPath ?? '' });
        }
        return attempts;
      },
      running: async (id) => (await runtime.containerStatus(id))?.state === ContainerState.CONTAINER_RUNNING,
      execSync: (id, command, timeoutSeconds) => runtime.execSync(id, command, timeoutSeconds),
    };
  }
}
