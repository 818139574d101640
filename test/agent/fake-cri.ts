// In-memory stand-ins for the pod worker's tests: a CRI runtime whose
// containers exit when the test says so (FakeCri), a PodEnvironment that
// builds plain configs or throws what the test scripts (FakePodEnvironment),
// and a clock whose timers fire when the test advances it (FakeClock).
// FakeCri keeps a log of every call, to assert what the worker asked.

import * as grpc from '@grpc/grpc-js';
import {
  ContainerConfig,
  ContainerState,
  PodSandboxConfig,
  PodSandboxState,
  type Container as CriContainer,
  type ContainerStats,
  type ContainerStatus,
  type Image,
  type PodSandbox,
  type PodSandboxStatus,
  type StatusResponse,
  type VersionResponse,
} from '../../proto/gen/cri/v1/api.js';
import type { Container, Pod } from '../../proto/gen/resources/v1/core.js';
import { CriError, type ContainerFilter, type ContainerStatsFilter, type CriRuntime, type ExecSyncResult, type PullImageOptions, type SandboxFilter } from '../../services/agent/cri.js';
import { PodConfigError, type PodEnvironment } from '../../services/agent/pod-environment-types.js';
import type { WorkerClock } from '../../services/agent/pod-worker-clock.js';

export interface FakeCall {
  readonly method: string;
  readonly args: readonly unknown[];
}

interface FakeSandbox {
  readonly id: string;
  readonly config: PodSandboxConfig;
  readonly runtimeHandler: string;
  state: PodSandboxState;
  readonly createdAtNs: number;
  ip: string;
}

interface FakeContainer {
  readonly id: string;
  readonly sandboxId: string;
  readonly config: ContainerConfig;
  state: ContainerState;
  readonly createdAtNs: number;
  startedAtNs: number;
  finishedAtNs: number;
  exitCode: number;
  reason: string;
  message: string;
  readonly imageRef: string;
}

export type ExecHandler = (containerId: string, cmd: readonly string[], timeoutSeconds: number) => ExecSyncResult | Promise<ExecSyncResult>;

function matches(labels: Readonly<Record<string, string>>, selector: Readonly<Record<string, string>> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([key, value]) => labels[key] === value);
}

export class FakeCri implements CriRuntime {
  readonly calls: FakeCall[] = [];
  readonly sandboxes = new Map<string, FakeSandbox>();
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Map<string, Image>();
  /** Pulls of these refs fail with this message. */
  readonly pullFailures = new Map<string, string>();
  /** The exit code a stopped container reports, by container name (default 143: it died of the SIGTERM). */
  readonly stopExitCodes = new Map<string, number>();
  /** StartContainer of these container names fails. */
  readonly startFailures = new Set<string>();
  /** Containers (by name) that exit with this code as soon as they start. */
  readonly exitOnStart = new Map<string, number>();
  exec: ExecHandler = () => ({ stdout: Buffer.from(''), stderr: Buffer.from(''), exitCode: 0 });
  runtimeName = 'fake';
  private nextId = 1;
  private nextHost = 2;
  private readonly failures = new Map<string, CriError>();

  constructor(private readonly nowMs: () => number = () => Date.now()) {}

  // ---- test controls ----

  /** The container's process exits with this code. */
  exit(containerId: string, exitCode: number, options: { reason?: string; message?: string } = {}): void {
    const container = this.containers.get(containerId);
    if (container === undefined || container.state !== ContainerState.CONTAINER_RUNNING) throw new Error(`fake CRI: container ${containerId} is not running`);
    this.finish(container, exitCode, options.reason ?? (exitCode === 0 ? 'Completed' : 'Error'), options.message ?? '');
  }

  /** The sandbox dies (its network is gone, its containers are killed). */
  killSandbox(sandboxId: string): void {
    const sandbox = this.sandboxes.get(sandboxId);
    if (sandbox === undefined) throw new Error(`fake CRI: no sandbox ${sandboxId}`);
    this.stopSandbox(sandbox);
  }

  addImage(ref: string): void {
    this.images.set(ref, { id: `sha256:${ref.replace(/[^a-z0-9]/g, '')}`, repoTags: [ref], repoDigests: [], size: 1, uid: undefined, username: '', spec: { image: ref, annotations: {}, userSpecifiedImage: ref, runtimeHandler: '' }, pinned: false, imageSource: '' });
  }

  /** The next call of method fails with error. */
  failNext(method: string, error: CriError): void {
    this.failures.set(method, error);
  }

  callsOf(method: string): FakeCall[] {
    return this.calls.filter((call) => call.method === method);
  }

  /** The running containers with this name (any pod). */
  running(name: string): FakeContainer[] {
    return [...this.containers.values()].filter((container) => container.config.metadata?.name === name && container.state === ContainerState.CONTAINER_RUNNING);
  }

  /** The newest container with this name (any pod, any state). */
  latest(name: string): FakeContainer | undefined {
    return [...this.containers.values()].filter((container) => container.config.metadata?.name === name).pop();
  }

  // ---- helpers ----

  private get nowNs(): number {
    return this.nowMs() * 1e6;
  }

  private record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
    const failure = this.failures.get(method);
    if (failure !== undefined) {
      this.failures.delete(method);
      throw failure;
    }
  }

  private finish(container: FakeContainer, exitCode: number, reason: string, message: string): void {
    container.state = ContainerState.CONTAINER_EXITED;
    container.exitCode = exitCode;
    container.reason = reason;
    container.message = message;
    container.finishedAtNs = this.nowNs;
  }

  private stopSandbox(sandbox: FakeSandbox): void {
    for (const container of this.containers.values()) {
      if (container.sandboxId === sandbox.id && container.state === ContainerState.CONTAINER_RUNNING) this.finish(container, 137, 'Error', '');
    }
    sandbox.state = PodSandboxState.SANDBOX_NOTREADY;
    sandbox.ip = '';
  }

  private notFound(what: string): CriError {
    return new CriError('fake', grpc.status.NOT_FOUND, `${what} not found`);
  }

  private listed(container: FakeContainer): CriContainer {
    return {
      id: container.id,
      podSandboxId: container.sandboxId,
      metadata: container.config.metadata,
      image: container.config.image,
      imageRef: container.imageRef,
      state: container.state,
      createdAt: container.createdAtNs,
      labels: { ...container.config.labels },
      annotations: { ...container.config.annotations },
      imageId: container.imageRef,
    };
  }

  // ---- CriRuntime ----

  async version(): Promise<VersionResponse> {
    this.record('version');
    return { version: '0.1.0', runtimeName: this.runtimeName, runtimeVersion: '1.0.0', runtimeApiVersion: 'v1' };
  }

  async status(): Promise<StatusResponse> {
    this.record('status');
    return { status: { conditions: [{ type: 'RuntimeReady', status: true, reason: '', message: '' }, { type: 'NetworkReady', status: true, reason: '', message: '' }] }, info: {}, runtimeHandlers: [], features: undefined };
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
    this.record('runPodSandbox', config, runtimeHandler);
    const id = `sandbox-${this.nextId++}`;
    this.sandboxes.set(id, { id, config: PodSandboxConfig.fromPartial(config), runtimeHandler, state: PodSandboxState.SANDBOX_READY, createdAtNs: this.nowNs, ip: `10.88.0.${this.nextHost++}` });
    return id;
  }

  async stopPodSandbox(id: string): Promise<void> {
    this.record('stopPodSandbox', id);
    const sandbox = this.sandboxes.get(id);
    if (sandbox !== undefined) this.stopSandbox(sandbox);
  }

  async removePodSandbox(id: string): Promise<void> {
    this.record('removePodSandbox', id);
    for (const container of [...this.containers.values()]) if (container.sandboxId === id) this.containers.delete(container.id);
    this.sandboxes.delete(id);
  }

  async podSandboxStatus(id: string): Promise<PodSandboxStatus | undefined> {
    this.record('podSandboxStatus', id);
    const sandbox = this.sandboxes.get(id);
    if (sandbox === undefined) return undefined;
    return {
      id,
      metadata: sandbox.config.metadata,
      state: sandbox.state,
      createdAt: sandbox.createdAtNs,
      network: { ip: sandbox.ip, additionalIps: [] },
      linux: undefined,
      labels: { ...sandbox.config.labels },
      annotations: { ...sandbox.config.annotations },
      runtimeHandler: sandbox.runtimeHandler,
    };
  }

  async listPodSandbox(filter: SandboxFilter = {}): Promise<PodSandbox[]> {
    this.record('listPodSandbox', filter);
    return [...this.sandboxes.values()]
      .filter((sandbox) => (filter.id === undefined || filter.id === sandbox.id) && (filter.state === undefined || filter.state === sandbox.state) && matches(sandbox.config.labels, filter.labelSelector))
      .map((sandbox) => ({ id: sandbox.id, metadata: sandbox.config.metadata, state: sandbox.state, createdAt: sandbox.createdAtNs, labels: { ...sandbox.config.labels }, annotations: { ...sandbox.config.annotations }, runtimeHandler: sandbox.runtimeHandler }));
  }

  async createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    this.record('createContainer', sandboxId, config, sandboxConfig);
    const sandbox = this.sandboxes.get(sandboxId);
    if (sandbox === undefined) throw this.notFound(`sandbox ${sandboxId}`);
    if (sandbox.state !== PodSandboxState.SANDBOX_READY) throw new CriError('CreateContainer', grpc.status.FAILED_PRECONDITION, `sandbox ${sandboxId} is not ready`);
    const ref = config.image?.image ?? '';
    const image = this.images.get(ref);
    if (image === undefined) throw new CriError('CreateContainer', grpc.status.NOT_FOUND, `image "${ref}" not found`);
    const id = `container-${this.nextId++}`;
    this.containers.set(id, { id, sandboxId, config: ContainerConfig.fromPartial(config), state: ContainerState.CONTAINER_CREATED, createdAtNs: this.nowNs, startedAtNs: 0, finishedAtNs: 0, exitCode: 0, reason: '', message: '', imageRef: image.id });
    return id;
  }

  async startContainer(id: string): Promise<void> {
    this.record('startContainer', id);
    const container = this.containers.get(id);
    if (container === undefined) throw this.notFound(`container ${id}`);
    if (container.state !== ContainerState.CONTAINER_CREATED) throw new CriError('StartContainer', grpc.status.FAILED_PRECONDITION, `container ${id} is not in the created state`);
    if (this.startFailures.has(container.config.metadata?.name ?? '')) {
      this.finish(container, 128, 'StartError', 'exec: "nope": executable file not found in $PATH');
      throw new CriError('StartContainer', grpc.status.UNKNOWN, 'failed to start: exec: "nope": executable file not found in $PATH');
    }
    container.state = ContainerState.CONTAINER_RUNNING;
    container.startedAtNs = this.nowNs;
    const exitCode = this.exitOnStart.get(container.config.metadata?.name ?? '');
    if (exitCode !== undefined) this.finish(container, exitCode, exitCode === 0 ? 'Completed' : 'Error', '');
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    this.record('stopContainer', id, timeoutSeconds);
    const container = this.containers.get(id);
    if (container === undefined) return;
    if (container.state === ContainerState.CONTAINER_RUNNING) this.finish(container, this.stopExitCodes.get(container.config.metadata?.name ?? '') ?? 143, 'Error', '');
    else if (container.state === ContainerState.CONTAINER_CREATED) this.finish(container, 0, 'Stopped', '');
  }

  async removeContainer(id: string): Promise<void> {
    this.record('removeContainer', id);
    this.containers.delete(id);
  }

  async listContainers(filter: ContainerFilter = {}): Promise<CriContainer[]> {
    this.record('listContainers', filter);
    return [...this.containers.values()]
      .filter(
        (container) =>
          (filter.id === undefined || filter.id === container.id) &&
          (filter.state === undefined || filter.state === container.state) &&
          (filter.podSandboxId === undefined || filter.podSandboxId === container.sandboxId) &&
          matches(container.config.labels, filter.labelSelector),
      )
      .map((container) => this.listed(container));
  }

  async containerStatus(id: string): Promise<ContainerStatus | undefined> {
    this.record('containerStatus', id);
    const container = this.containers.get(id);
    if (container === undefined) return undefined;
    return {
      id,
      metadata: container.config.metadata,
      state: container.state,
      createdAt: container.createdAtNs,
      startedAt: container.startedAtNs,
      finishedAt: container.finishedAtNs,
      exitCode: container.exitCode,
      image: container.config.image,
      imageRef: container.imageRef,
      reason: container.reason,
      message: container.message,
      labels: { ...container.config.labels },
      annotations: { ...container.config.annotations },
      mounts: [],
      logPath: container.config.logPath,
      resources: undefined,
      imageId: container.imageRef,
      user: undefined,
      imageSource: '',
    };
  }

  async execSync(id: string, cmd: readonly string[], timeoutSeconds: number): Promise<ExecSyncResult> {
    this.record('execSync', id, cmd, timeoutSeconds);
    const container = this.containers.get(id);
    if (container === undefined) throw this.notFound(`container ${id}`);
    if (container.state !== ContainerState.CONTAINER_RUNNING) throw new CriError('ExecSync', grpc.status.FAILED_PRECONDITION, `container ${id} is not running`);
    return this.exec(id, cmd, timeoutSeconds);
  }

  async containerStats(id: string): Promise<ContainerStats | undefined> {
    this.record('containerStats', id);
    const container = this.containers.get(id);
    return container === undefined ? undefined : this.stats(container);
  }

  async listContainerStats(filter: ContainerStatsFilter = {}): Promise<ContainerStats[]> {
    this.record('listContainerStats', filter);
    return [...this.containers.values()]
      .filter((container) => (filter.id === undefined || filter.id === container.id) && (filter.podSandboxId === undefined || filter.podSandboxId === container.sandboxId) && matches(container.config.labels, filter.labelSelector))
      .map((container) => this.stats(container));
  }

  private stats(container: FakeContainer): ContainerStats {
    return {
      attributes: { id: container.id, metadata: container.config.metadata, labels: { ...container.config.labels }, annotations: { ...container.config.annotations } },
      cpu: { timestamp: this.nowNs, usageCoreNanoSeconds: { value: 1_000_000 }, usageNanoCores: { value: 1000 } },
      memory: undefined,
      writableLayer: undefined,
      swap: undefined,
    };
  }

  async imageStatus(ref: string): Promise<Image | undefined> {
    this.record('imageStatus', ref);
    return this.images.get(ref);
  }

  async pullImage(ref: string, options: PullImageOptions = {}): Promise<string> {
    this.record('pullImage', ref, options);
    const failure = this.pullFailures.get(ref);
    if (failure !== undefined) throw new CriError('PullImage', grpc.status.UNKNOWN, failure);
    if (!this.images.has(ref)) this.addImage(ref);
    return this.images.get(ref)?.id ?? '';
  }
}

/** A PodEnvironment that builds minimal configs, with scripted failures. */
export class FakePodEnvironment implements PodEnvironment {
  readonly calls: FakeCall[] = [];
  volumeError: PodConfigError | undefined;
  /** containerConfig of these container names throws. */
  readonly configErrors = new Map<string, PodConfigError>();

  async prepareVolumes(pod: Pod): Promise<void> {
    this.calls.push({ method: 'prepareVolumes', args: [pod.metadata?.uid] });
    if (this.volumeError !== undefined) throw this.volumeError;
  }

  sandboxConfig(pod: Pod, attempt: number): PodSandboxConfig {
    this.calls.push({ method: 'sandboxConfig', args: [pod.metadata?.uid, attempt] });
    const metadata = { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', uid: pod.metadata?.uid ?? '', attempt };
    return PodSandboxConfig.fromPartial({
      metadata,
      hostname: metadata.name,
      labels: { 'io.kubernetes.pod.name': metadata.name, 'io.kubernetes.pod.namespace': metadata.namespace, 'io.kubernetes.pod.uid': metadata.uid },
    });
  }

  async containerConfig(pod: Pod, container: Container, options: { readonly attempt: number; readonly podIP: string; readonly init: boolean }): Promise<ContainerConfig> {
    this.calls.push({ method: 'containerConfig', args: [container.name, options] });
    const error = this.configErrors.get(container.name ?? '');
    if (error !== undefined) throw error;
    return ContainerConfig.fromPartial({
      metadata: { name: container.name ?? '', attempt: options.attempt },
      image: { image: container.image ?? '' },
      command: container.command ?? [],
      args: container.args ?? [],
      envs: [{ key: 'POD_IP', value: options.podIP }],
      labels: { 'io.kubernetes.container.name': container.name ?? '', 'io.kubernetes.pod.uid': pod.metadata?.uid ?? '' },
      annotations: { 'io.kubernetes.container.hash': 'set-by-builder', 'io.kubernetes.container.restartCount': String(options.attempt) },
    });
  }

  async cleanup(podUid: string): Promise<void> {
    this.calls.push({ method: 'cleanup', args: [podUid] });
  }
}

export { PodConfigError };

interface FakeTimer {
  readonly atMs: number;
  readonly sequence: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/** A settled event loop: every promise chain that only waits on other promises has run. */
export function macrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A clock that stands still until advance(); timers fire in time order as it passes them. */
export class FakeClock implements WorkerClock {
  private nowMs: number;
  private sequence = 0;
  private timers: FakeTimer[] = [];

  constructor(startMs = Date.UTC(2024, 0, 1, 12, 0, 0)) {
    this.nowMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  setTimer(callback: () => void, delayMs: number): () => void {
    const timer: FakeTimer = { atMs: this.nowMs + Math.max(0, delayMs), sequence: this.sequence++, callback, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  get pendingTimers(): number {
    return this.timers.filter((timer) => !timer.cancelled).length;
  }

  /** Move time forward by ms, firing each due timer at its own time and letting what it started settle (settle defaults to one macrotask). */
  async advance(ms: number, settle: () => Promise<void> = macrotask): Promise<void> {
    const targetMs = this.nowMs + ms;
    await settle();
    for (;;) {
      this.timers = this.timers.filter((timer) => !timer.cancelled);
      const next = [...this.timers].sort((a, b) => a.atMs - b.atMs || a.sequence - b.sequence)[0];
      if (next === undefined || next.atMs > targetMs) break;
      this.timers = this.timers.filter((timer) => timer !== next);
      this.nowMs = Math.max(this.nowMs, next.atMs);
      next.callback();
      await settle();
    }
    this.nowMs = targetMs;
  }
}
