// A client of the resource API (proto/api.proto) that knows every master.
// Reads, and writes whose repetition is harmless, move to the next master
// when one is unreachable; a write that may have reached a master that then
// died is retried only when it is safe (create: AlreadyExists after a retry
// means it was ours is NOT assumed — the error is returned; update and
// delete carry a resourceVersion, so a repeated one fails with a conflict
// rather than applying twice). Watches resume on another master from the
// last resourceVersion they delivered: no event is missed or repeated.

import * as grpc from '@grpc/grpc-js';
import * as api from '../../proto/gen/api.js';
import { isRetriable } from './etcd.js';

export type KubeObject = Record<string, unknown> & {
  apiVersion?: string;
  kind?: string;
  metadata?: Record<string, unknown> & { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
};

export interface ResourceClientOptions {
  readonly endpoints: readonly string[];
  readonly credentials?: grpc.ChannelCredentials;
  readonly timeoutMs?: number;
  /** A bearer token sent with every call (the "authorization" metadata). */
  readonly token?: string;
  /** Called with each write the API accepted (audits: which writer committed what, at which revision, under which fence). */
  readonly onWriteAccepted?: (write: AcceptedWrite) => void;
}

export interface AcceptedWrite {
  readonly verb: 'create' | 'update' | 'updateStatus' | 'patch' | 'delete' | 'bind';
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** The object's resourceVersion in the answer: the revision that committed the write. */
  readonly resourceVersion: string;
  /** The fence the write carried. */
  readonly fence: WriteFence | undefined;
}

/** The gRPC status code of a failed call (undefined for anything else). */
export function statusCodeOf(error: unknown): grpc.status | undefined {
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'number' ? (error as { code: grpc.status }).code : undefined;
}

/** Request metadata naming the Lease a fenced write holds ("namespace/name"), and its token; the API server reads the same names. */
export const FENCING_LEASE_METADATA = 'mast-fencing-lease';
export const FENCING_TOKEN_METADATA = 'mast-fencing-token';

/** The Lease a leader-elected writer holds, and its fencing token (the resourceVersion at which it became holder). */
export interface WriteFence {
  readonly namespace: string;
  readonly name: string;
  readonly token: string;
}

export interface ListResult {
  readonly items: KubeObject[];
  readonly resourceVersion: string;
  readonly continue: string;
}

export interface WatchHandlers {
  readonly onEvent: (type: string, object: KubeObject) => void;
  /** The watch ended for good (e.g. its resourceVersion was compacted: OUT_OF_RANGE — list again). */
  readonly onError?: (error: grpc.ServiceError) => void;
}

export interface DeleteParams {
  /** Only if the object is still at this version. */
  readonly resourceVersion?: string;
  readonly gracePeriodSeconds?: number;
  /** Background (default), Foreground or Orphan: what becomes of the object's dependents. */
  readonly propagationPolicy?: string;
}

export interface WatchParams {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly resourceVersion?: string;
  readonly allowBookmarks?: boolean;
}

/** What part of a container's log to read (the pods/log subresource's options, as kubectl names them). */
export interface PodLogsOptions {
  /** Empty or absent: the pod's only container (the master names the choices when it has several). */
  readonly container?: string;
  /** Keep the stream open for new lines until cancelled or the log ends. */
  readonly follow?: boolean;
  /** The previous attempt's log (after a restart). */
  readonly previous?: boolean;
  readonly tailLines?: number;
  readonly sinceSeconds?: number;
  readonly timestamps?: boolean;
  readonly limitBytes?: number;
}

/** A log stream being read: `done` settles when it ends (resolves on the server's end or on cancel, rejects with the call's error). */
export interface PodLogsStream {
  readonly done: Promise<void>;
  cancel(): void;
}

export interface PodExecOptions {
  /** Empty or absent: the pod's only container. */
  readonly container?: string;
  /** How long the command may run (absent or 0: the agent's default, 60 s). */
  readonly timeoutSeconds?: number;
}

export interface PodExecResult {
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  readonly exitCode: number;
}

/** The agent's exec timeout when the caller gives none (proto/api.proto: PodExecRequest.timeout_seconds). */
const DEFAULT_EXEC_TIMEOUT_SECONDS = 60;
/** Beyond the command's own timeout, how long an exec call waits for the master and the agent to answer. */
const EXEC_DEADLINE_MARGIN_MS = 15_000;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 50,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
};

/** How long a master that failed to answer is passed over (etcd's client balancer does the same). */
export const UNHEALTHY_MS = 3000;

function decode(bytes: Uint8Array): KubeObject {
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as KubeObject;
}

/** A replace pinned to a resourceVersion is safe to repeat: a repeat fails with a conflict instead of applying twice. */
function pinnedToVersion(object: KubeObject): boolean {
  return typeof object.metadata?.resourceVersion === 'string' && object.metadata.resourceVersion !== '';
}

function encode(object: unknown): Buffer {
  return Buffer.from(JSON.stringify(object));
}

export class ResourceClient {
  private readonly clients: api.ResourcesClient[];
  private next = 0;
  /** Per master: until when calls pass it over (Date.now() ms). */
  private readonly unhealthyUntil: number[] = [];
  private readonly timeoutMs: number;
  private fence: WriteFence | undefined;

  constructor(private readonly options: ResourceClientOptions) {
    if (options.endpoints.length === 0) throw new Error('ResourceClient needs at least one endpoint');
    const credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.clients = options.endpoints.map((endpoint) => new api.ResourcesClient(endpoint.replace(/^https?:\/\//, '').replace(/\/$/, ''), credentials, CHANNEL_OPTIONS));
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  close(): void {
    for (const client of this.clients) client.close();
  }

  /**
   * Fence every later write with a Lease's token (undefined: stop fencing).
   * The API server refuses them once the Lease has had a newer holder.
   */
  setFence(fence: WriteFence | undefined): void {
    this.fence = fence;
  }

  private metadata(write = false): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.options.token !== undefined) metadata.set('authorization', `Bearer ${this.options.token}`);
    if (write && this.fence !== undefined) {
      metadata.set(FENCING_LEASE_METADATA, `${this.fence.namespace}/${this.fence.name}`);
      metadata.set(FENCING_TOKEN_METADATA, this.fence.token);
    }
    return metadata;
  }

  /** Decodes a write's answer, auditing it (with the fence in force when the write was sent) if asked to. */
  private accepted(verb: AcceptedWrite['verb'], kind: string): (response: api.ObjectResponse) => KubeObject {
    const fence = this.fence;
    return (response) => {
      const object = decode(response.object);
      this.options.onWriteAccepted?.({ verb, kind, namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '', resourceVersion: object.metadata?.resourceVersion ?? '', fence });
      return object;
    };
  }

  create(kind: string, object: unknown): Promise<KubeObject> {
    return this.call<api.ObjectResponse>(false, (client, options, done) => client.create({ kind, object: encode(object) }, this.metadata(true), options, done)).then(this.accepted('create', kind));
  }

  get(kind: string, namespace: string, name: string): Promise<KubeObject> {
    return this.call<api.ObjectResponse>(true, (client, options, done) => client.get({ kind, namespace, name }, this.metadata(), options, done)).then((response) => decode(response.object));
  }

  list(kind: string, params: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number; continue?: string; resourceVersion?: string } = {}): Promise<ListResult> {
    const request = api.ListRequest.fromPartial({ kind, ...params });
    return this.call<api.ListResponse>(true, (client, options, done) => client.list(request, this.metadata(), options, done)).then((response) => ({
      items: response.items.map(decode),
      resourceVersion: response.resourceVersion,
      continue: response.continue,
    }));
  }

  update(kind: string, object: KubeObject): Promise<KubeObject> {
    return this.call<api.ObjectResponse>(pinnedToVersion(object), (client, options, done) => client.update({ kind, object: encode(object) }, this.metadata(true), options, done)).then(this.accepted('update', kind));
  }

  updateStatus(kind: string, object: KubeObject): Promise<KubeObject> {
    return this.call<api.ObjectResponse>(pinnedToVersion(object), (client, options, done) => client.updateStatus({ kind, object: encode(object) }, this.metadata(true), options, done)).then(this.accepted('updateStatus', kind));
  }

  patch(kind: string, namespace: string, name: string, patch: unknown): Promise<KubeObject> {
    return this.call<api.ObjectResponse>(false, (client, options, done) => client.patch({ kind, namespace, name, patch: encode(patch) }, this.metadata(true), options, done)).then(this.accepted('patch', kind));
  }

  /** Assign a pending pod to a node (pods/binding), only while it is at `resourceVersion` when given. */
  bind(namespace: string, name: string, nodeName: string, resourceVersion = ''): Promise<KubeObject> {
    const request = api.BindRequest.fromPartial({ kind: 'Pod', namespace, name, nodeName, resourceVersion });
    return this.call<api.ObjectResponse>(resourceVersion !== '', (client, options, done) => client.bind(request, this.metadata(true), options, done)).then(this.accepted('bind', 'Pod'));
  }

  /** Delete (or, for objects with finalizers and pods in their grace period, mark for deletion: the answer shows which). */
  delete(kind: string, namespace: string, name: string, params: DeleteParams = {}): Promise<KubeObject> {
    const request = api.DeleteRequest.fromPartial({ kind, namespace, name, ...params });
    return this.call<api.ObjectResponse>(request.resourceVersion !== '', (client, options, done) => client.delete(request, this.metadata(true), options, done)).then(this.accepted('delete', kind));
  }

  /**
   * Watch a kind. When the master serving the stream goes away, the watch
   * continues on another one from the last resourceVersion delivered
   * (bookmarks included). Returns a function that stops it.
   */
  watch(kind: string, params: WatchParams, handlers: WatchHandlers): () => void {
    let resourceVersion = params.resourceVersion ?? '';
    let stopped = false;
    let stream: grpc.ClientReadableStream<api.WatchEvent> | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let initialDone = false;
    const open = (): void => {
      if (stopped) return;
      const client = this.clients[this.pick()]!;
      // Bookmarks are always asked for: they move the resume point forward
      // (the first marks the end of the initial ADDED events). The caller sees
      // them only if it asked.
      const current = client.watch(api.WatchRequest.fromPartial({ kind, ...params, resourceVersion, allowBookmarks: true }), this.metadata());
      stream = current;
      // One reconnect per stream, however it ends ('error' and 'end' can both come).
      const reconnect = (): void => {
        if (stopped || stream !== current) return;
        stream = undefined;
        current.cancel();
        retryTimer = setTimeout(open, 100);
      };
      current.on('data', (event: api.WatchEvent) => {
        if (stopped || stream !== current) return;
        const object = decode(event.object);
        const version = object.metadata?.resourceVersion;
        // Resume after the newest revision seen. The initial ADDED events of a
        // watch without a resourceVersion carry their objects' own versions;
        // the bookmark after them sets the resume point to the list's.
        if (event.type === 'BOOKMARK' || event.type !== 'ADDED' || params.resourceVersion !== undefined || initialDone) {
          if (typeof version === 'string' && (resourceVersion === '' || Number(version) > Number(resourceVersion))) resourceVersion = version;
        }
        if (event.type === 'BOOKMARK') initialDone = true;
        if (event.type !== 'BOOKMARK' || params.allowBookmarks === true) handlers.onEvent(event.type, object);
      });
      current.on('error', (error: grpc.ServiceError) => {
        if (stopped || stream !== current) return;
        if (isRetriable(error) || error.code === grpc.status.INTERNAL) {
          reconnect();
          return;
        }
        stopped = true;
        handlers.onError?.(error);
      });
      current.on('end', reconnect);
    };
    open();
    return () => {
      stopped = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      stream?.cancel();
    };
  }

  /**
   * A container's log (pods/log): each chunk of text to `onData` as the
   * master relays it from the pod's node agent. A log is not resumable, so
   * the stream stays on the master it started on; it moves to another only
   * when the first could not be reached at all. Without `follow`, it ends
   * with the log; with it, when cancelled or when the log ends for good.
   */
  podLogs(namespace: string, name: string, options: PodLogsOptions, onData: (chunk: Uint8Array) => void): PodLogsStream {
    const request = api.PodLogsRequest.fromPartial({
      namespace,
      name,
      container: options.container ?? '',
      follow: options.follow ?? false,
      previous: options.previous ?? false,
      tailLines: options.tailLines,
      sinceSeconds: options.sinceSeconds,
      timestamps: options.timestamps ?? false,
      limitBytes: options.limitBytes,
    });
    let cancelled = false;
    let stream: grpc.ClientReadableStream<api.PodLogsChunk> | undefined;
    const done = new Promise<void>((resolve, reject) => {
      // Each master at most once, and only while nothing was received: a log is not resumable.
      const open = (attemptsLeft: number): void => {
        if (cancelled) return resolve();
        const index = this.pick();
        const current = this.clients[index]!.podLogs(request, this.metadata());
        stream = current;
        let received = false;
        current.on('data', (chunk: api.PodLogsChunk) => {
          received = true;
          if (!cancelled) onData(chunk.data);
        });
        current.on('end', () => resolve());
        current.on('error', (error: grpc.ServiceError) => {
          if (cancelled || error.code === grpc.status.CANCELLED) return resolve();
          const neverSent = error.code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED/.test(error.message);
          if (neverSent) this.unhealthyUntil[index] = Date.now() + UNHEALTHY_MS;
          if (neverSent && !received && attemptsLeft > 1) open(attemptsLeft - 1);
          else reject(error);
        });
      };
      open(this.clients.length);
    });
    return {
      done,
      cancel: () => {
        cancelled = true;
        stream?.cancel();
      },
    };
  }

  /**
   * Run a command in a pod's container (pods/exec, non-interactive) and wait
   * for it. Never repeated on another master once it may have been sent:
   * a command is not safe to run twice. A non-zero exit code is an answer,
   * not an error.
   */
  podExec(namespace: string, name: string, command: readonly string[], options: PodExecOptions = {}): Promise<PodExecResult> {
    const timeoutSeconds = options.timeoutSeconds ?? 0;
    const request = api.PodExecRequest.fromPartial({ namespace, name, container: options.container ?? '', command: [...command], timeoutSeconds });
    const deadlineMs = (timeoutSeconds > 0 ? timeoutSeconds : DEFAULT_EXEC_TIMEOUT_SECONDS) * 1000 + EXEC_DEADLINE_MARGIN_MS;
    return this.call<api.PodExecResponse>(false, (client, callOptions, done) => client.podExec(request, this.metadata(), { ...callOptions, deadline: Date.now() + Math.max(deadlineMs, this.timeoutMs) }, done)).then((response) => ({
      stdout: response.stdout,
      stderr: response.stderr,
      exitCode: response.exitCode,
    }));
  }

  /** The next master, round robin, passing over those that recently failed to answer (while any other is left). */
  private pick(): number {
    const now = Date.now();
    for (let tried = 0; tried < this.clients.length; tried++) {
      const index = this.next++ % this.clients.length;
      if ((this.unhealthyUntil[index] ?? 0) <= now) return index;
    }
    return this.next++ % this.clients.length;
  }

  private async call<T>(retrySafe: boolean, run: (client: api.ResourcesClient, options: Partial<grpc.CallOptions>, done: (error: grpc.ServiceError | null, response: T) => void) => void): Promise<T> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const index = this.pick();
      const client = this.clients[index]!;
      try {
        return await new Promise<T>((resolve, reject) => run(client, { deadline: Date.now() + this.timeoutMs }, (error, response) => (error === null ? resolve(response) : reject(error))));
      } catch (error) {
        const code = (error as grpc.ServiceError).code;
        // A master that did not answer (down, stopped, cut off) is passed over for a while, so one bad master does not cost every third call a timeout.
        if (code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED) this.unhealthyUntil[index] = Date.now() + UNHEALTHY_MS;
        // UNAVAILABLE before a connection existed never reached a master: always safe to retry.
        const neverSent = code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED/.test((error as Error).message);
        if (!(neverSent || (retrySafe && isRetriable(error))) || Date.now() > deadline) throw error;
      }
    }
  }
}
