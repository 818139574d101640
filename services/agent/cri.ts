// The agent's view of a container runtime: the CRI v1 calls it makes, as
// promises, behind the CriRuntime interface (tests use an in-memory fake),
// and connectCri, which speaks them over the runtime's unix socket with the
// generated gRPC clients. Every gRPC failure becomes a CriError naming the
// call, its status code and the runtime's own message. As in the kubelet,
// stopping or removing something already gone succeeds, and asking for the
// status of something unknown answers undefined.

import * as grpc from '@grpc/grpc-js';
import {
  ImageServiceClient,
  RuntimeServiceClient,
  type AuthConfig,
  type Container,
  type ContainerConfig,
  type ContainerState,
  type ContainerStats,
  type ContainerStatus,
  type Image,
  type PodSandbox,
  type PodSandboxConfig,
  type PodSandboxState,
  type PodSandboxStatus,
  type StatusResponse,
  type VersionResponse,
} from '../../proto/gen/cri/v1/api.js';

/** A CRI call failed; code is the gRPC status code the runtime answered. */
export class CriError extends Error {
  override readonly name = 'CriError';
  constructor(
    readonly method: string,
    readonly code: grpc.status,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(`CRI ${method} failed: ${details !== '' ? details : (grpc.status[code] ?? `code ${code}`)}`, options);
  }
}

export function isCriNotFound(error: unknown): boolean {
  return error instanceof CriError && error.code === grpc.status.NOT_FOUND;
}

export interface SandboxFilter {
  readonly id?: string;
  readonly state?: PodSandboxState;
  readonly labelSelector?: Readonly<Record<string, string>>;
}

export interface ContainerFilter {
  readonly id?: string;
  readonly state?: ContainerState;
  readonly podSandboxId?: string;
  readonly labelSelector?: Readonly<Record<string, string>>;
}

export interface ContainerStatsFilter {
  readonly id?: string;
  readonly podSandboxId?: string;
  readonly labelSelector?: Readonly<Record<string, string>>;
}

export interface ExecSyncResult {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly exitCode: number;
}

export interface PullImageOptions {
  readonly auth?: AuthConfig;
  readonly sandboxConfig?: PodSandboxConfig;
}

/** The CRI calls the agent makes. Times in the answers are nanoseconds since the epoch, as JS numbers. */
export interface CriRuntime {
  version(): Promise<VersionResponse>;
  status(): Promise<StatusResponse>;
  /** Create and start a sandbox; answers its id. */
  runPodSandbox(config: PodSandboxConfig, runtimeHandler?: string): Promise<string>;
  /** Idempotent: a sandbox already gone is stopped. */
  stopPodSandbox(id: string): Promise<void>;
  /** Idempotent; takes the sandbox's containers with it. */
  removePodSandbox(id: string): Promise<void>;
  /** undefined when the runtime does not know the sandbox. */
  podSandboxStatus(id: string): Promise<PodSandboxStatus | undefined>;
  listPodSandbox(filter?: SandboxFilter): Promise<PodSandbox[]>;
  /** Answers the new container's id. */
  createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** SIGTERM, then SIGKILL after timeoutSeconds (0: at once). Idempotent. */
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  /** Idempotent. */
  removeContainer(id: string): Promise<void>;
  listContainers(filter?: ContainerFilter): Promise<Container[]>;
  /** undefined when the runtime does not know the container. */
  containerStatus(id: string): Promise<ContainerStatus | undefined>;
  /** Run a command in the container; a command that outlives timeoutSeconds (0: none) fails with DEADLINE_EXCEEDED. */
  execSync(id: string, cmd: readonly string[], timeoutSeconds: number): Promise<ExecSyncResult>;
  containerStats(id: string): Promise<ContainerStats | undefined>;
  listContainerStats(filter?: ContainerStatsFilter): Promise<ContainerStats[]>;
  /** undefined when the image is not present. */
  imageStatus(ref: string): Promise<Image | undefined>;
  /** Pull an image; answers the reference of what was pulled (its id or digest). */
  pullImage(ref: string, options?: PullImageOptions): Promise<string>;
}

export interface CriConnection extends CriRuntime {
  readonly endpoint: string;
  close(): void;
}

export interface ConnectCriOptions {
  /** Deadline of each call (the kubelet's runtime-request-timeout: 2 min). */
  readonly timeoutMs?: number;
  /** Deadline of an image pull, which can take long on a slow registry (default 30 min). */
  readonly pullImageTimeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_PULL_IMAGE_TIMEOUT_MS = 30 * 60_000;
/** List answers on a busy node can be big; the kubelet allows 16 MiB too. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** The gRPC target of a CRI endpoint: "unix:///run/containerd/containerd.sock" or a bare absolute path. */
export function criTarget(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint;
  if (endpoint.startsWith('unix:')) return `unix://${endpoint.slice('unix:'.length)}`;
  if (endpoint.startsWith('/')) return `unix://${endpoint}`;
  throw new Error(`CRI endpoint "${endpoint}": expected unix:///path/to/socket or /path/to/socket`);
}

type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Response) => void,
) => grpc.ClientUnaryCall;

function toCriError(method: string, error: grpc.ServiceError): CriError {
  return new CriError(method, error.code, error.details ?? error.message, { cause: error });
}

class GrpcCri implements CriConnection {
  private readonly runtime: RuntimeServiceClient;
  private readonly images: ImageServiceClient;
  private readonly timeoutMs: number;
  private readonly pullImageTimeoutMs: number;

  constructor(
    readonly endpoint: string,
    options: ConnectCriOptions,
  ) {
    const target = criTarget(endpoint);
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.default_authority': 'localhost',
    };
    this.runtime = new RuntimeServiceClient(target, grpc.credentials.createInsecure(), channelOptions);
    this.images = new ImageServiceClient(target, grpc.credentials.createInsecure(), channelOptions);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.pullImageTimeoutMs = options.pullImageTimeoutMs ?? DEFAULT_PULL_IMAGE_TIMEOUT_MS;
  }

  private call<Request, Response>(name: string, method: UnaryMethod<Request, Response>, client: grpc.Client, request: Request, timeoutMs = this.timeoutMs): Promise<Response> {
    return new Promise((resolve, reject) => {
      const options: Partial<grpc.CallOptions> = timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {};
      method.call(client, request, new grpc.Metadata(), options, (error, response) => {
        if (error !== null) reject(toCriError(name, error));
        else resolve(response);
      });
    });
  }

  /** A stop or remove: NOT_FOUND means it is already gone, which is what was asked. */
  private async idempotent(promise: Promise<unknown>): Promise<void> {
    try {
      await promise;
    } catch (error) {
      if (!isCriNotFound(error)) throw error;
    }
  }

  private async orUndefined<T>(promise: Promise<T>): Promise<T | undefined> {
    try {
      return await promise;
    } catch (error) {
      if (isCriNotFound(error)) return undefined;
      throw error;
    }
  }

  version(): Promise<VersionResponse> {
    return this.call('Version', this.runtime.version, this.runtime, { version: 'v1' });
  }

  async status(): Promise<StatusResponse> {
    return this.call('Status', this.runtime.status, this.runtime, { verbose: false });
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
    return (await this.call('RunPodSandbox', this.runtime.runPodSandbox, this.runtime, { config, runtimeHandler })).podSandboxId;
  }

  stopPodSandbox(id: string): Promise<void> {
    return this.idempotent(this.call('StopPodSandbox', this.runtime.stopPodSandbox, this.runtime, { podSandboxId: id }));
  }

  removePodSandbox(id: string): Promise<void> {
    return this.idempotent(this.call('RemovePodSandbox', this.runtime.removePodSandbox, this.runtime, { podSandboxId: id }));
  }

  async podSandboxStatus(id: string): Promise<PodSandboxStatus | undefined> {
    return (await this.orUndefined(this.call('PodSandboxStatus', this.runtime.podSandboxStatus, this.runtime, { podSandboxId: id, verbose: false })))?.status;
  }

  async listPodSandbox(filter: SandboxFilter = {}): Promise<PodSandbox[]> {
    const request = { filter: { id: filter.id ?? '', state: filter.state === undefined ? undefined : { state: filter.state }, labelSelector: { ...filter.labelSelector } } };
    return (await this.call('ListPodSandbox', this.runtime.listPodSandbox, this.runtime, request)).items;
  }

  async createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    return (await this.call('CreateContainer', this.runtime.createContainer, this.runtime, { podSandboxId: sandboxId, config, sandboxConfig })).containerId;
  }

  async startContainer(id: string): Promise<void> {
    await this.call('StartContainer', this.runtime.startContainer, this.runtime, { containerId: id });
  }

  stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    // The runtime waits up to timeoutSeconds before SIGKILL: the call may take that long.
    return this.idempotent(this.call('StopContainer', this.runtime.stopContainer, this.runtime, { containerId: id, timeout: timeoutSeconds }, this.timeoutMs + timeoutSeconds * 1000));
  }

  removeContainer(id: string): Promise<void> {
    return this.idempotent(this.call('RemoveContainer', this.runtime.removeContainer, this.runtime, { containerId: id }));
  }

  async listContainers(filter: ContainerFilter = {}): Promise<Container[]> {
    const request = {
      filter: { id: filter.id ?? '', state: filter.state === undefined ? undefined : { state: filter.state }, podSandboxId: filter.podSandboxId ?? '', labelSelector: { ...filter.labelSelector } },
    };
    return (await this.call('ListContainers', this.runtime.listContainers, this.runtime, request)).containers;
  }

  async containerStatus(id: string): Promise<ContainerStatus | undefined> {
    return (await this.orUndefined(this.call('ContainerStatus', this.runtime.containerStatus, this.runtime, { containerId: id, verbose: false })))?.status;
  }

  async execSync(id: string, cmd: readonly string[], timeoutSeconds: number): Promise<ExecSyncResult> {
    const deadlineMs = timeoutSeconds > 0 ? this.timeoutMs + timeoutSeconds * 1000 : 0;
    const response = await this.call('ExecSync', this.runtime.execSync, this.runtime, { containerId: id, cmd: [...cmd], timeout: timeoutSeconds }, deadlineMs);
    return { stdout: Buffer.from(response.stdout), stderr: Buffer.from(response.stderr), exitCode: response.exitCode };
  }

  async containerStats(id: string): Promise<ContainerStats | undefined> {
    return (await this.orUndefined(this.call('ContainerStats', this.runtime.containerStats, this.runtime, { containerId: id })))?.stats;
  }

  async listContainerStats(filter: ContainerStatsFilter = {}): Promise<ContainerStats[]> {
    const request = { filter: { id: filter.id ?? '', podSandboxId: filter.podSandboxId ?? '', labelSelector: { ...filter.labelSelector } } };
    return (await this.call('ListContainerStats', this.runtime.listContainerStats, this.runtime, request)).stats;
  }

  async imageStatus(ref: string): Promise<Image | undefined> {
    const response = await this.call('ImageStatus', this.images.imageStatus, this.images, { image: { image: ref, annotations: {}, userSpecifiedImage: ref, runtimeHandler: '' }, verbose: false });
    return response.image;
  }

  async pullImage(ref: string, options: PullImageOptions = {}): Promise<string> {
    const request = { image: { image: ref, annotations: {}, userSpecifiedImage: ref, runtimeHandler: '' }, auth: options.auth, sandboxConfig: options.sandboxConfig };
    return (await this.call('PullImage', this.images.pullImage, this.images, request, this.pullImageTimeoutMs)).imageRef;
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }
}

/** A CriRuntime over the runtime's socket. Connecting is lazy: a missing socket shows as UNAVAILABLE on the first call. */
export function connectCri(endpoint: string, options: ConnectCriOptions = {}): CriConnection {
  return new GrpcCri(endpoint, options);
}
