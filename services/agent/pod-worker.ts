// One worker per pod bound to this node: it observes what the runtime holds
// for the pod (by the io.kubernetes.pod.uid label, so a restarted agent
// adopts what it left running), asks computePodActions what to do, does it
// through the CRI and the PodEnvironment, and hands the resulting PodStatus
// to onStatus. Syncs of one pod never overlap; requests that arrive during
// a sync coalesce into one more. It syncs when the agent's relist (pleg.ts)
// sees its pod's containers or sandboxes change (that is how it sees a
// container exit), at once when a probe result changes, when a back-off
// expires, and every resyncIntervalMs while anything runs.
//
// A pod being deleted is stopped with its grace period (containers, then
// sandboxes), its last status reported, its containers, sandboxes and
// volumes removed; then onTerminated lets the agent delete the object.

import type { Container as CriContainer, ContainerStatus as CriContainerStatus, PodSandbox, PodSandboxConfig } from '../../proto/gen/cri/v1/api.js';
import { ContainerState, PodSandboxState } from '../../proto/gen/cri/v1/api.js';
import type { Container, Pod, PodStatus } from '../../proto/gen/resources/v1/core.js';
import { Backoff, containerBackoffKey, formatDelay, imageBackoffKey } from './backoff.js';
import type { CriRuntime } from './cri.js';
import type { PodEnvironment } from './pod-environment-types.js';
import {
  ANNOTATION_CONTAINER_HASH,
  ANNOTATION_RESTART_COUNT,
  LABEL_CONTAINER_NAME,
  LABEL_POD_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POD_UID,
  asksForAction,
  computePodActions,
  containerSpecHash,
  deletionGracePeriodSeconds,
  isHostNetwork,
  newestFirst,
  type ContainerToStart,
  type ObservedContainer,
  type ObservedContainerState,
  type ObservedSandbox,
  type PodActions,
  type PodObservation,
} from './pod-actions.js';
import { computePodStatus, type WaitingReason } from './pod-status.js';
import { fingerprints } from './pleg.js';
import { systemClock, type WorkerClock } from './pod-worker-clock.js';
import { ProbeManager, type ProbeManagerOptions } from './probes.js';

export interface PodWorkerOptions {
  readonly runtime: CriRuntime;
  readonly environment: PodEnvironment;
  /** The node's IP: status.hostIP, and the pod IP of hostNetwork pods. */
  readonly hostIP: string;
  /** The containerID scheme ("containerd://…"); asked of the runtime's Version when absent. */
  readonly runtimeName?: string;
  /** The runtime handler for a pod (its RuntimeClass); '' is the runtime's default. */
  readonly runtimeHandler?: (pod: Pod) => string;
  readonly onStatus: (pod: Pod, status: PodStatus) => void;
  /** The deleted pod's containers and sandboxes are gone: its API object may be deleted. */
  readonly onTerminated?: (pod: Pod) => void;
  readonly clock?: WorkerClock;
  /** Shared by the agent's workers or one each; keys start with the pod uid. */
  readonly backoff?: Backoff;
  /** Re-sync period while anything of the pod runs (default 1 s). */
  readonly resyncIntervalMs?: number;
  readonly runProbe?: ProbeManagerOptions['runProbe'];
  readonly log?: (line: string) => void;
}

export const DEFAULT_RESYNC_INTERVAL_MS = 1000;

type WorkerState = 'active' | 'terminating' | 'terminated' | 'stopped';

/** What a PodEnvironment throws when a pod cannot start yet (matched by name: the class may come from another module copy). */
function podConfigErrorOf(error: unknown): { reason: string; message: string } | undefined {
  if (error instanceof Error && error.name === 'PodConfigError') return { reason: String((error as { reason?: unknown }).reason ?? ''), message: error.message };
  return undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function nsToMs(nanoseconds: number): number {
  // Rounded: int64 nanoseconds lose a few hundred ns as JS numbers, which floor could turn into a whole millisecond.
  return nanoseconds > 0 ? Math.round(nanoseconds / 1e6) : 0;
}

function observedState(state: ContainerState): ObservedContainerState {
  switch (state) {
    case ContainerState.CONTAINER_CREATED:
      return 'created';
    case ContainerState.CONTAINER_RUNNING:
      return 'running';
    case ContainerState.CONTAINER_EXITED:
      return 'exited';
    default:
      return 'unknown';
  }
}

/** The kubelet's default pull policy: Always for :latest or an untagged image, else IfNotPresent. */
export function imagePullPolicyOf(container: Container): 'Always' | 'IfNotPresent' | 'Never' {
  const policy = container.imagePullPolicy;
  if (policy === 'Always' || policy === 'IfNotPresent' || policy === 'Never') return policy;
  const image = container.image ?? '';
  if (image.includes('@')) return 'IfNotPresent';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : '';
  return tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** A look at the pod's runtime state: its fingerprint and the sequence number of when it was taken. */
interface RuntimeView {
  readonly fingerprint: string | undefined;
  readonly at: number;
}

/** Whether two versions of a pod ask for the same thing of the node (they may differ in status and bookkeeping). */
export function sameDesiredState(a: Pod, b: Pod): boolean {
  const desired = (pod: Pod): string =>
    JSON.stringify([pod.spec, pod.metadata?.labels, pod.metadata?.annotations, pod.metadata?.deletionTimestamp, pod.metadata?.deletionGracePeriodSeconds]);
  return desired(a) === desired(b);
}

export class PodWorker {
  private pod: Pod;
  private state: WorkerState = 'active';
  private syncing: Promise<void> | undefined;
  private pending = false;
  private cancelResync: (() => void) | undefined;
  private lastStatus: PodStatus | undefined;
  private waiting = new Map<string, WaitingReason>();
  /**
   * Container statuses that hold while the list shows the same state: a
   * running container's (until it exits) and an exited one's (for good).
   */
  private readonly stableStatuses = new Map<string, CriContainerStatus>();
  /** The network of each ready sandbox, which does not change while it lives. */
  private readonly sandboxNetworks = new Map<string, { ip: string; additionalIps: string[] }>();
  private readonly probes: ProbeManager;
  private readonly backoff: Backoff;
  private readonly clock: WorkerClock;
  private runtimeName: string | undefined;
  /** The soonest a back-off (crash loop or image pull) expires, found during a sync. */
  private wakeAtMs: number | undefined;
  private removedGraceSeconds: number | undefined;
  /**
   * Orders relist reports and observations: a relist reported before an
   * observation started saw nothing that observation missed. (A counter,
   * not a clock: only the order matters.)
   */
  private sequence = 0;
  /** The runtime state of the pod as the last observation saw it (pleg.ts's fingerprint; '' for nothing), and when it started. */
  private lastSeen: RuntimeView = { fingerprint: undefined, at: 0 };
  /** The last observed state that was decided on: acted upon, or found to need nothing. */
  private decided: RuntimeView = { fingerprint: undefined, at: 0 };
  private relistReportedAt = 0;
  /** A sync is pending for a reason other than a relist report. */
  private pendingOther = false;
  private resolveTerminated: () => void = () => {};
  /** Resolves once a deleted pod is stopped and cleaned up. */
  readonly terminated: Promise<void>;

  constructor(
    pod: Pod,
    private readonly options: PodWorkerOptions,
  ) {
    if (pod.metadata?.uid === undefined || pod.metadata.uid === '') throw new Error('PodWorker needs a pod with metadata.uid');
    this.pod = pod;
    this.lastStatus = pod.status;
    this.clock = options.clock ?? systemClock;
    this.backoff = options.backoff ?? new Backoff();
    this.runtimeName = options.runtimeName;
    this.terminated = new Promise((resolve) => (this.resolveTerminated = resolve));
    this.probes = new ProbeManager({
      runtime: options.runtime,
      clock: this.clock,
      onChange: () => this.requestSync(),
      log: (line) => this.log(line),
      runProbe: options.runProbe,
    });
  }

  get uid(): string {
    return this.pod.metadata?.uid ?? '';
  }

  /** The last status handed to onStatus. */
  get status(): PodStatus | undefined {
    return this.lastStatus;
  }

  get phase(): WorkerState {
    return this.state;
  }

  /** Begin syncing (the first sync adopts whatever the runtime already runs for the pod). */
  start(): void {
    this.requestSync();
  }

  /**
   * A newer version of the pod from the informer. Only a change of what the
   * pod asks for (spec, labels, annotations, deletion) needs a sync; a
   * status-only change — most often the echo of this worker's own status
   * write — just replaces the copy.
   */
  update(pod: Pod): void {
    if (pod.metadata?.uid !== this.uid) throw new Error(`pod worker for ${this.uid} got pod ${pod.metadata?.uid ?? ''}`);
    if (this.state === 'terminated' || this.state === 'stopped') return;
    const changed = !sameDesiredState(this.pod, pod);
    this.pod = pod;
    if (changed) this.requestSync();
  }

  /**
   * The relist saw the pod's runtime state change (pleg.ts). A state this
   * worker has already observed — usually what its own sync just did — needs
   * no second look.
   */
  runtimeChanged(fingerprint: string): void {
    if (fingerprint === this.decided.fingerprint) return;
    this.relistReportedAt = ++this.sequence;
    this.request(false);
  }

  /** The API object is gone (deleted without waiting for this node): stop and clean up the pod all the same. */
  podRemoved(gracePeriodSeconds?: number): void {
    if (this.state === 'terminated' || this.state === 'stopped') return;
    this.removedGraceSeconds = gracePeriodSeconds ?? deletionGracePeriodSeconds(this.pod);
    this.requestSync();
  }

  /** The agent shuts down: stop timers and probes, leave the pod running in the runtime (a new agent adopts it). */
  stop(): void {
    if (this.state === 'terminated') return;
    this.state = 'stopped';
    this.cancelResync?.();
    this.probes.stop();
  }

  requestSync(): void {
    this.request(true);
  }

  private request(other: boolean): void {
    if (this.state === 'terminated' || this.state === 'stopped') return;
    this.pending = true;
    this.pendingOther ||= other;
    if (this.syncing === undefined) this.syncing = this.loop();
  }

  /**
   * A sync asked for only by relist reports is not needed when the state
   * decided on last was observed after the last report: it saw that state,
   * or a newer one. (A relist that ran while a sync was starting the pod
   * reports a state between the two, which the sync's own second look
   * already covered.)
   */
  private get syncNeeded(): boolean {
    return this.pendingOther || this.relistReportedAt > this.decided.at;
  }

  /** Resolves when no sync runs or waits and no probe is in flight. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.syncing !== undefined) {
        await this.syncing;
        continue;
      }
      await this.probes.idle();
      if (this.syncing === undefined && !this.pending) return;
    }
  }

  /** Sync now and wait for it (and whatever it triggered) to finish. */
  async syncNow(): Promise<void> {
    this.requestSync();
    await this.idle();
  }

  private async loop(): Promise<void> {
    // Requests made in the same turn (an informer burst) join this sync.
    await Promise.resolve();
    let synced = false;
    let nextInMs: number | undefined;
    while (this.pending && this.state !== 'terminated' && this.state !== 'stopped') {
      const needed = this.syncNeeded;
      this.pending = false;
      this.pendingOther = false;
      if (!needed) continue;
      synced = true;
      try {
        nextInMs = await this.syncOnce();
      } catch (error) {
        this.log(`sync failed: ${errorMessage(error)}`);
        nextInMs = this.resyncIntervalMs;
      }
    }
    this.syncing = undefined;
    // A skipped request leaves the timer of the last sync as it was.
    if (synced) this.schedule(nextInMs);
  }

  private get resyncIntervalMs(): number {
    return this.options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
  }

  private schedule(delayMs: number | undefined): void {
    this.cancelResync?.();
    this.cancelResync = undefined;
    if (delayMs === undefined || this.state === 'terminated' || this.state === 'stopped') return;
    this.cancelResync = this.clock.setTimer(() => {
      this.cancelResync = undefined;
      this.requestSync();
    }, delayMs);
  }

  private log(line: string): void {
    this.options.log?.(`pod ${this.pod.metadata?.namespace ?? ''}/${this.pod.metadata?.name ?? ''}: ${line}`);
  }

  private describePod(): string {
    return `${this.pod.metadata?.name ?? ''}_${this.pod.metadata?.namespace ?? ''}(${this.uid})`;
  }

  private async syncOnce(): Promise<number | undefined> {
    this.runtimeName ??= (await this.options.runtime.version()).runtimeName || 'cri';
    if (this.pod.metadata?.deletionTimestamp !== undefined || this.removedGraceSeconds !== undefined) return this.terminate();
    return this.syncActive();
  }

  /** What the runtime holds for this pod, in the shape the pure decisions take. */
  private async observe(): Promise<PodObservation> {
    const { runtime } = this.options;
    const labelSelector = { [LABEL_POD_UID]: this.uid };
    const at = ++this.sequence;
    const [sandboxes, containers] = await Promise.all([runtime.listPodSandbox({ labelSelector }), runtime.listContainers({ labelSelector })]);
    this.lastSeen = { fingerprint: fingerprints(sandboxes, containers).get(this.uid) ?? '', at };
    const listedSandboxes = new Set(sandboxes.map((sandbox) => sandbox.id));
    for (const id of [...this.sandboxNetworks.keys()]) if (!listedSandboxes.has(id)) this.sandboxNetworks.delete(id);
    const observedSandboxes = await Promise.all(
      sandboxes.map(async (sandbox): Promise<ObservedSandbox> => {
        const listedReady = sandbox.state === PodSandboxState.SANDBOX_READY;
        if (!listedReady) this.sandboxNetworks.delete(sandbox.id);
        const network = listedReady ? (this.sandboxNetworks.get(sandbox.id) ?? (await this.sandboxNetwork(sandbox.id))) : undefined;
        return {
          id: sandbox.id,
          state: network !== undefined ? 'ready' : 'notready',
          attempt: sandbox.metadata?.attempt ?? 0,
          createdAtMs: nsToMs(sandbox.createdAt),
          ip: network?.ip ?? '',
          additionalIps: network?.additionalIps ?? [],
        };
      }),
    );
    const listed = new Set(containers.map((container) => container.id));
    for (const id of [...this.stableStatuses.keys()]) if (!listed.has(id)) this.stableStatuses.delete(id);
    const observedContainers = await Promise.all(
      containers.map(async (container): Promise<ObservedContainer | undefined> => {
        const known = this.stableStatuses.get(container.id);
        const status = known !== undefined && known.state === container.state ? known : await runtime.containerStatus(container.id);
        if (status === undefined) return undefined; // removed since the list
        if (status.state === ContainerState.CONTAINER_RUNNING || status.state === ContainerState.CONTAINER_EXITED) this.stableStatuses.set(container.id, status);
        else this.stableStatuses.delete(container.id);
        const annotations = { ...container.annotations, ...status.annotations };
        const attempt = status.metadata?.attempt ?? container.metadata?.attempt ?? 0;
        const restartCount = Number.parseInt(annotations[ANNOTATION_RESTART_COUNT] ?? '', 10);
        return {
          id: container.id,
          sandboxId: container.podSandboxId,
          name: container.labels[LABEL_CONTAINER_NAME] ?? container.metadata?.name ?? status.metadata?.name ?? '',
          state: observedState(status.state),
          attempt,
          restartCount: Number.isFinite(restartCount) ? restartCount : attempt,
          hash: annotations[ANNOTATION_CONTAINER_HASH] ?? '',
          createdAtMs: nsToMs(status.createdAt || container.createdAt),
          startedAtMs: nsToMs(status.startedAt),
          finishedAtMs: nsToMs(status.finishedAt),
          exitCode: status.exitCode,
          reason: status.reason,
          message: status.message,
          image: status.image?.image ?? container.image?.image ?? '',
          imageRef: status.imageRef || container.imageRef,
        };
      }),
    );
    return { sandboxes: observedSandboxes, containers: observedContainers.filter((container): container is ObservedContainer => container !== undefined) };
  }

  /** The state last observed is decided on. */
  private decide(): void {
    this.decided = this.lastSeen;
  }

  /** A ready sandbox's network, from its status (remembered while it stays ready); undefined if it is not ready after all. */
  private async sandboxNetwork(id: string): Promise<{ ip: string; additionalIps: string[] } | undefined> {
    const status = await this.options.runtime.podSandboxStatus(id);
    // Gone or stopped since the list: not ready.
    if (status === undefined || status.state !== PodSandboxState.SANDBOX_READY) return undefined;
    // A runtime that reports no network at all runs the pod in the node's network.
    const network = {
      ip: status.network === undefined ? this.options.hostIP : status.network.ip,
      additionalIps: (status.network?.additionalIps ?? []).map((entry) => entry.ip).filter((entry) => entry !== ''),
    };
    this.sandboxNetworks.set(id, network);
    return network;
  }

  private async syncActive(): Promise<number | undefined> {
    const pod = this.pod;
    const nowMs = this.clock.now();
    this.wakeAtMs = undefined;
    let observed = await this.observe();
    const actions = computePodActions({ pod, observed, probes: this.probes.snapshot(), backoff: this.backoff, nowMs });
    this.decide();
    const waiting = new Map<string, WaitingReason>();
    for (const wait of actions.waitingBackoff) {
      waiting.set(wait.name, { reason: 'CrashLoopBackOff', message: `back-off ${formatDelay(wait.delayMs)} restarting failed container=${wait.name} pod=${this.describePod()}` });
      this.wakeAt(wait.untilMs);
    }
    if (await this.execute(pod, actions, observed, waiting)) {
      observed = await this.observe();
      // A state that asks for nothing is settled: the relist seeing it needs no second look. One that asks
      // for more (a container that exited at once, an image still to pull) is left to the sync the relist starts.
      if (!asksForAction(computePodActions({ pod, observed, probes: this.probes.snapshot(), backoff: this.backoff, nowMs: this.clock.now() }))) this.decide();
    }
    this.waiting = waiting;
    this.report(pod, observed, false);

    const alive = observed.sandboxes.some((sandbox) => sandbox.state === 'ready') || observed.containers.some((container) => container.state === 'running' || container.state === 'created');
    if (actions.podDone && !alive) return undefined; // finished: nothing to watch until the pod changes
    const untilWake = this.wakeAtMs === undefined ? Infinity : Math.max(0, this.wakeAtMs - this.clock.now());
    return Math.min(this.resyncIntervalMs, untilWake);
  }

  private wakeAt(atMs: number): void {
    this.wakeAtMs = this.wakeAtMs === undefined ? atMs : Math.min(this.wakeAtMs, atMs);
  }

  private report(pod: Pod, observed: PodObservation, terminal: boolean): void {
    if (this.state === 'stopped') return; // the agent is shutting down: a newer agent reports
    const running = observed.containers.filter((container) => container.state === 'running');
    const specs = new Map([...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((spec) => [spec.name ?? '', spec]));
    const podIP = this.podIPOf(pod, observed);
    if (!terminal) {
      this.probes.sync(
        running.flatMap((container) => {
          const spec = specs.get(container.name);
          return spec === undefined ? [] : [{ id: container.id, spec, startedAtMs: container.startedAtMs }];
        }),
        podIP,
      );
    }
    const status = computePodStatus({
      pod,
      observed,
      probes: this.probes.snapshot(),
      waiting: this.waiting,
      previous: this.lastStatus,
      nowMs: this.clock.now(),
      hostIP: this.options.hostIP,
      runtimeName: this.runtimeName ?? 'cri',
      terminal,
    });
    this.lastStatus = status;
    this.options.onStatus(pod, status);
  }

  private podIPOf(pod: Pod, observed: PodObservation): string {
    if (isHostNetwork(pod)) return this.options.hostIP;
    return newestFirst(observed.sandboxes).find((sandbox) => sandbox.state === 'ready')?.ip ?? '';
  }

  /** Do what computePodActions asked; answers whether the runtime changed. */
  private async execute(pod: Pod, actions: PodActions, observed: PodObservation, waiting: Map<string, WaitingReason>): Promise<boolean> {
    const { runtime } = this.options;
    let changed = false;
    if (actions.killPod !== undefined) {
      this.log(`stopping the pod: ${actions.killPod.reason}`);
      await this.killPod(observed, actions.killPod.gracePeriodSeconds);
      changed = true;
    }
    if (actions.containersToKill.length > 0) {
      await Promise.all(
        actions.containersToKill.map((kill) => {
          this.log(`stopping container ${kill.name} (${kill.id}): ${kill.reason}`);
          return runtime.stopContainer(kill.id, kill.gracePeriodSeconds);
        }),
      );
      changed = true;
    }
    for (const id of actions.containersToRemove) await runtime.removeContainer(id);
    for (const id of actions.sandboxesToRemove) await runtime.removePodSandbox(id);
    changed ||= actions.containersToRemove.length > 0 || actions.sandboxesToRemove.length > 0;

    const starts = [...(actions.nextInitContainerToStart === undefined ? [] : [actions.nextInitContainerToStart]), ...actions.containersToStart];
    if (actions.createSandbox === undefined && starts.length === 0) return changed;

    const prepared = await this.prepareVolumes(pod, starts, waiting);
    if (!prepared) return changed;

    let sandboxId = actions.sandboxId;
    let attempt = newestFirst(observed.sandboxes).find((sandbox) => sandbox.id === sandboxId)?.attempt ?? 0;
    let podIP = this.podIPOf(pod, observed);
    if (actions.createSandbox !== undefined) attempt = actions.createSandbox.attempt;
    const sandboxConfig = this.sandboxConfig(pod, attempt);
    if (actions.createSandbox !== undefined) {
      const created = await this.createSandbox(pod, attempt, sandboxConfig);
      if (created === undefined) return changed;
      changed = true;
      sandboxId = created.id;
      podIP = created.ip;
    }
    for (const start of starts) {
      changed = (await this.startContainer(pod, start, sandboxId, sandboxConfig, podIP, waiting)) || changed;
    }
    return changed;
  }

  private async prepareVolumes(pod: Pod, starts: readonly ContainerToStart[], waiting: Map<string, WaitingReason>): Promise<boolean> {
    try {
      await this.options.environment.prepareVolumes(pod);
      return true;
    } catch (error) {
      const config = podConfigErrorOf(error);
      if (config === undefined) throw error;
      this.log(`volumes not ready (${config.reason}): ${config.message}`);
      // As the kubelet: the containers stay ContainerCreating (or PodInitializing); the message says why.
      const reason = (pod.spec?.initContainers ?? []).length > 0 ? 'PodInitializing' : 'ContainerCreating';
      const names = starts.length > 0 ? starts.map((start) => start.name) : (pod.spec?.containers ?? []).map((spec) => spec.name ?? '');
      for (const name of names) waiting.set(name, { reason, message: `${config.reason !== '' ? `${config.reason}: ` : ''}${config.message}` });
      return false;
    }
  }

  /** RunPodSandbox's config, with the labels the worker finds its sandboxes by. */
  private sandboxConfig(pod: Pod, attempt: number): PodSandboxConfig {
    const config = this.options.environment.sandboxConfig(pod, attempt);
    return {
      ...config,
      metadata: { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', uid: this.uid, ...config.metadata, attempt },
      labels: { ...config.labels, [LABEL_POD_UID]: this.uid, [LABEL_POD_NAME]: pod.metadata?.name ?? '', [LABEL_POD_NAMESPACE]: pod.metadata?.namespace ?? '' },
    };
  }

  private async createSandbox(pod: Pod, attempt: number, config: PodSandboxConfig): Promise<{ id: string; ip: string } | undefined> {
    const { runtime } = this.options;
    let id: string;
    try {
      id = await runtime.runPodSandbox(config, this.options.runtimeHandler?.(pod) ?? '');
    } catch (error) {
      this.log(`creating its sandbox (attempt ${attempt}) failed: ${errorMessage(error)}`);
      return undefined;
    }
    this.log(`sandbox ${id} (attempt ${attempt}) running`);
    if (isHostNetwork(pod)) return { id, ip: this.options.hostIP };
    const status = await runtime.podSandboxStatus(id);
    return { id, ip: status?.network === undefined ? this.options.hostIP : status.network.ip };
  }

  /** Make the image present per the container's pull policy; answers why the container must wait, if it must. */
  private async ensureImage(pod: Pod, container: Container, sandboxConfig: PodSandboxConfig): Promise<WaitingReason | undefined> {
    const { runtime } = this.options;
    const image = container.image ?? '';
    if (image === '') return { reason: 'InvalidImageName', message: 'the container names no image' };
    const policy = imagePullPolicyOf(container);
    if (policy !== 'Always' && (await runtime.imageStatus(image)) !== undefined) return undefined;
    if (policy === 'Never') return { reason: 'ErrImageNeverPull', message: `Container image "${image}" is not present with pull policy of Never` };
    const key = imageBackoffKey(this.uid, image);
    const blockedUntilMs = this.backoff.blockedUntilMs(key, this.clock.now());
    if (blockedUntilMs !== undefined) {
      this.wakeAt(blockedUntilMs);
      return { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` };
    }
    try {
      await runtime.pullImage(image, { sandboxConfig });
      this.backoff.forget(key);
      return undefined;
    } catch (error) {
      const delayMs = this.backoff.recordFailure(key, this.clock.now());
      this.wakeAt(this.clock.now() + delayMs);
      this.log(`pulling image ${image} for ${pod.metadata?.name ?? ''} failed: ${errorMessage(error)}`);
      return { reason: 'ErrImagePull', message: errorMessage(error) };
    }
  }

  /** Image, config, create, start; answers whether a container was created. */
  private async startContainer(pod: Pod, start: ContainerToStart, sandboxId: string, sandboxConfig: PodSandboxConfig, podIP: string, waiting: Map<string, WaitingReason>): Promise<boolean> {
    const { runtime, environment } = this.options;
    const imageWait = await this.ensureImage(pod, start.container, sandboxConfig);
    if (imageWait !== undefined) {
      waiting.set(start.name, imageWait);
      return false;
    }
    let config;
    try {
      config = await environment.containerConfig(pod, start.container, { attempt: start.attempt, podIP, init: start.init });
    } catch (error) {
      const configError = podConfigErrorOf(error);
      if (configError === undefined) throw error;
      this.log(`container ${start.name} cannot be configured: ${configError.message}`);
      waiting.set(start.name, { reason: configError.reason !== '' ? configError.reason : 'CreateContainerConfigError', message: configError.message });
      return false;
    }
    // The worker finds its containers and tells their history by these, whatever the builder wrote.
    config = {
      ...config,
      metadata: { name: start.name, attempt: start.attempt },
      labels: { ...config.labels, [LABEL_POD_UID]: this.uid, [LABEL_POD_NAME]: pod.metadata?.name ?? '', [LABEL_POD_NAMESPACE]: pod.metadata?.namespace ?? '', [LABEL_CONTAINER_NAME]: start.name },
      annotations: { ...config.annotations, [ANNOTATION_CONTAINER_HASH]: containerSpecHash(start.container), [ANNOTATION_RESTART_COUNT]: String(start.attempt) },
    };
    let id: string;
    try {
      id = await runtime.createContainer(sandboxId, config, sandboxConfig);
    } catch (error) {
      this.log(`creating container ${start.name} failed: ${errorMessage(error)}`);
      waiting.set(start.name, { reason: 'CreateContainerError', message: errorMessage(error) });
      return false;
    }
    if (start.restartOfExitAtMs !== undefined) this.backoff.recordRestart(containerBackoffKey(this.uid, start.name), start.restartOfExitAtMs, this.clock.now());
    try {
      await runtime.startContainer(id);
    } catch (error) {
      this.log(`starting container ${start.name} failed: ${errorMessage(error)}`);
      waiting.set(start.name, { reason: 'RunContainerError', message: errorMessage(error) });
      return true;
    }
    waiting.delete(start.name);
    this.log(`container ${start.name} started (${id}, restart ${start.attempt})`);
    return true;
  }

  /** Stop every live container with the grace period, then every ready sandbox. */
  private async killPod(observed: PodObservation, gracePeriodSeconds: number): Promise<void> {
    const { runtime } = this.options;
    const live = observed.containers.filter((container) => container.state !== 'exited');
    await Promise.all(live.map((container) => runtime.stopContainer(container.id, gracePeriodSeconds)));
    await Promise.all(observed.sandboxes.filter((sandbox) => sandbox.state === 'ready').map((sandbox) => runtime.stopPodSandbox(sandbox.id)));
  }

  /** The pod is deleted (or its object is gone): stop it with the grace period, report it, remove it, clean up. */
  private async terminate(): Promise<undefined> {
    const { runtime } = this.options;
    const pod = this.pod;
    if (this.state === 'active') this.log('terminating');
    this.state = 'terminating';
    this.probes.stop();
    const gracePeriodSeconds = this.removedGraceSeconds ?? deletionGracePeriodSeconds(pod);
    let observed = await this.observe();
    if (observed.containers.some((container) => container.state !== 'exited') || observed.sandboxes.some((sandbox) => sandbox.state === 'ready')) {
      await this.killPod(observed, gracePeriodSeconds);
      observed = await this.observe();
    }
    this.waiting = new Map();
    this.report(pod, observed, true);
    for (const container of observed.containers) await runtime.removeContainer(container.id);
    for (const sandbox of observed.sandboxes) await runtime.removePodSandbox(sandbox.id);
    await this.options.environment.cleanup(this.uid);
    this.backoff.forgetPrefix(`${this.uid}/`);
    this.state = 'terminated';
    this.cancelResync?.();
    this.log('terminated');
    this.options.onTerminated?.(pod);
    this.resolveTerminated();
    return undefined;
  }
}

/** Sandboxes and containers of pods no longer bound to this node (by their io.kubernetes.pod.uid label). */
export interface Orphans {
  readonly uids: readonly string[];
  readonly sandboxes: readonly PodSandbox[];
  readonly containers: readonly CriContainer[];
}

/** What the runtime runs for pods this node no longer has; things without the pod uid label are not the agent's and are left alone. */
export async function findOrphans(runtime: CriRuntime, knownUids: ReadonlySet<string>): Promise<Orphans> {
  const [sandboxes, containers] = await Promise.all([runtime.listPodSandbox(), runtime.listContainers()]);
  const orphaned = (labels: Readonly<Record<string, string>>): boolean => {
    const uid = labels[LABEL_POD_UID];
    return uid !== undefined && uid !== '' && !knownUids.has(uid);
  };
  const orphanSandboxes = sandboxes.filter((sandbox) => orphaned(sandbox.labels));
  const orphanContainers = containers.filter((container) => orphaned(container.labels));
  const uids = new Set([...orphanSandboxes, ...orphanContainers].map((item) => item.labels[LABEL_POD_UID] ?? ''));
  return { uids: [...uids].sort(), sandboxes: orphanSandboxes, containers: orphanContainers };
}

/** Stop (with the grace period) and remove what findOrphans found. */
export async function removeOrphans(runtime: CriRuntime, orphans: Orphans, gracePeriodSeconds = 0): Promise<void> {
  await Promise.all(orphans.containers.filter((container) => container.state !== ContainerState.CONTAINER_EXITED).map((container) => runtime.stopContainer(container.id, gracePeriodSeconds)));
  for (const sandbox of orphans.sandboxes) await runtime.stopPodSandbox(sandbox.id);
  for (const container of orphans.containers) await runtime.removeContainer(container.id);
  for (const sandbox of orphans.sandboxes) await runtime.removePodSandbox(sandbox.id);
}
