// The Resources gRPC service (proto/api.proto) over the registry. Every call
// is authenticated and authorized (access.ts) before the registry sees it;
// lists and watches are served from the watch cache where they can be;
// writes may carry a fence (a Lease's token) and a trace parent. Objects in
// and out are JSON bytes; refusals become gRPC statuses with the Kubernetes
// reason in the "mast-reason" trailer; each call is counted in the metrics.

import * as grpc from '@grpc/grpc-js';
import * as api from '../../proto/gen/api.js';
import { toServiceError } from '../etcdapi/index.js';
import type { ReplicatedStore } from '../store/index.js';
import { ApiError, namespaceOf, Registry, type ApiObject, type Fence, type Reason, type RegistryOptions, type WriteContext } from './registry.js';
import { listCached, startWatch, type WatchHandle } from './watch.js';
import type { WatchCache } from './watch-cache.js';
import type { Access } from './access.js';
import { AgentCallError, NodeProxy, podTarget } from './node-proxy.js';
import type { UserInfo } from './rbac.js';
import { isJsonObject } from './schema.js';
import { kindInfo, objectKey, type KindInfo } from '../client/kinds.js';
import { FENCING_LEASE_METADATA, FENCING_TOKEN_METADATA } from '../client/resources.js';
import { endSpan, startSpan, type MasterMetrics } from '../telemetry/index.js';
import type { Tracer } from '@opentelemetry/api';

const REASON_CODES: Readonly<Record<Reason, grpc.status>> = {
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  Conflict: grpc.status.ABORTED,
  Invalid: grpc.status.INVALID_ARGUMENT,
  BadRequest: grpc.status.INVALID_ARGUMENT,
  Gone: grpc.status.OUT_OF_RANGE,
  TooLarge: grpc.status.INVALID_ARGUMENT,
  Fenced: grpc.status.FAILED_PRECONDITION,
  Forbidden: grpc.status.PERMISSION_DENIED,
  Unauthorized: grpc.status.UNAUTHENTICATED,
};

/** The fence a call's metadata carries, if any (BadRequest when half there or malformed). */
export function fenceOf(metadata: grpc.Metadata): Fence | undefined {
  const lease = metadata.get(FENCING_LEASE_METADATA)[0];
  const token = metadata.get(FENCING_TOKEN_METADATA)[0];
  if (lease === undefined && token === undefined) return undefined;
  if (lease === undefined || token === undefined) throw new ApiError('BadRequest', `a fenced write needs both ${FENCING_LEASE_METADATA} and ${FENCING_TOKEN_METADATA} metadata`);
  const match = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(String(lease));
  if (match === null) throw new ApiError('BadRequest', `${FENCING_LEASE_METADATA} "${String(lease)}" is not NAMESPACE/NAME`);
  if (!/^[1-9]\d*$/.test(String(token))) throw new ApiError('BadRequest', `${FENCING_TOKEN_METADATA} "${String(token)}" is not a resourceVersion`);
  return { namespace: match[1]!, name: match[2]!, token: Number(token) };
}

export interface ResourceServiceOptions {
  /** Send a BOOKMARK to a watcher that asked for them after this long without events. */
  readonly bookmarkIntervalMs: number;
  /** Requests and watches are counted here when given. */
  readonly metrics?: MasterMetrics;
  /** Each request is a span (its writes' propose and apply are children) when given. */
  readonly tracer?: Tracer;
  /** How pods/log and pods/exec reach node agents (absent: insecure channels). */
  readonly agentCredentials?: grpc.ChannelCredentials;
}

/** Kubernetes' cacher keeps 100 events per resource by default and grows under load; one window for all kinds here. */
export const DEFAULT_WATCH_CACHE_EVENTS = 10_000;

export function statusOf(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof AgentCallError) return { ...error.status };
  if (error instanceof ApiError) {
    const metadata = new grpc.Metadata();
    metadata.set('mast-reason', error.reason);
    return { code: REASON_CODES[error.reason], details: error.message, metadata };
  }
  return toServiceError(error);
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ApiError('BadRequest', `${what} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function bytesOf(object: ApiObject): Buffer {
  return Buffer.from(JSON.stringify(object));
}

function requireKind(kind: string): void {
  if (kind === '') throw new ApiError('BadRequest', 'kind is required');
}

/** What a handler knows about its caller. */
interface Caller {
  readonly user: UserInfo;
  readonly context: WriteContext;
}

/** The object a create or update carries: its kind's info, namespace and name (for authorization, before validation). */
function target(kind: string, object: unknown): { info: KindInfo; namespace: string; name: string } {
  const info = Registry.kind(kind);
  const meta = isJsonObject(object) && isJsonObject(object.metadata) ? object.metadata : {};
  const namespace = namespaceOf(info, typeof meta.namespace === 'string' ? meta.namespace : undefined);
  return { info, namespace, name: typeof meta.name === 'string' ? meta.name : '' };
}

/** The kind as a metric label: only served kinds, so random requests cannot grow the label set. */
function kindLabel(kind: string): string {
  return kindInfo(kind) === undefined ? 'unknown' : kind;
}

function codeName(code: grpc.status | undefined): string {
  return grpc.status[code ?? grpc.status.OK] ?? String(code);
}

export function resourceHandlers(store: ReplicatedStore, registry: Registry, cache: WatchCache, access: Access, options: ResourceServiceOptions): api.ResourcesServer {
  const metrics = options.metrics;
  /** A unary handler: authenticates the caller, runs `run`, answers with its result or its error as a status, and counts it. */
  const unary = <Req extends { kind: string }, Res>(verb: string, run: (request: Req, caller: Caller) => Promise<Res>): grpc.handleUnaryCall<Req, Res> => {
    return (call, callback) => {
      const started = performance.now();
      const tracer = options.tracer;
      const kind = kindLabel(call.request.kind);
      const span = tracer === undefined ? undefined : startSpan(tracer, `mast.api/${verb}`, { 'mast.kind': kind });
      const finish = (error: Partial<grpc.StatusObject> | null, response?: Res): void => {
        metrics?.recordApiRequest({ verb, kind, code: codeName(error?.code), durationMs: performance.now() - started });
        if (span !== undefined) endSpan(span.span, error === null ? undefined : new Error(error.details ?? codeName(error.code)));
        if (error === null) callback(null, response);
        else callback(error);
      };
      let running: Promise<Res>;
      try {
        requireKind(call.request.kind);
        const user = access.authenticate(call.metadata, call.getAuthContext());
        running = run(call.request, { user, context: { fence: fenceOf(call.metadata), trace: tracer === undefined || span === undefined ? undefined : { tracer, parent: span.context } } });
      } catch (error) {
        running = Promise.reject(error);
      }
      running.then(
        (response) => finish(null, response),
        (error: unknown) => finish(statusOf(error)),
      );
    };
  };
  const current = (info: KindInfo, namespace: string, name: string): ApiObject | undefined => cache.get(info, objectKey(info, namespace, name))?.object;
  const nodeProxy = new NodeProxy({ credentials: options.agentCredentials ?? grpc.credentials.createInsecure() });
  const podInfo = Registry.kind('Pod');
  const nodeInfo = Registry.kind('Node');
  /**
   * The pod a pods/log or pods/exec call names, authorized for `verb` on
   * `subresource`, and where its container runs. Read after a linearizable
   * barrier (registry.get), so a pod just created elsewhere is found here.
   */
  const podCall = async (metadata: grpc.Metadata, authContext: ReturnType<grpc.ServerInterceptingCallInterface['getAuthContext']>, request: { namespace: string; name: string; container: string }, verb: 'get' | 'create', subresource: 'log' | 'exec') => {
    const user = access.authenticate(metadata, authContext);
    const namespace = namespaceOf(podInfo, request.namespace);
    access.authorize(user, { verb, info: podInfo, namespace, name: request.name, subresource });
    const pod = await registry.get('Pod', namespace, request.name);
    return podTarget(pod, request.container, (node) => current(nodeInfo, '', node));
  };

  return {
    create: unary('create', async (request: api.CreateRequest, { user, context }) => {
      const object = parseJson(request.object, 'object');
      const { info, namespace, name } = target(request.kind, object);
      access.authorize(user, { verb: 'create', info, namespace, name });
      return { object: bytesOf(await registry.create(request.kind, object, context)) };
    }),
    get: unary('get', async (request: api.GetRequest, { user }) => {
      const info = Registry.kind(request.kind);
      access.authorize(user, { verb: 'get', info, namespace: namespaceOf(info, request.namespace), name: request.name });
      return { object: bytesOf(await registry.get(request.kind, request.namespace, request.name)) };
    }),
    list: unary('list', async (request: api.ListRequest, { user }) => {
      const info = Registry.kind(request.kind);
      access.authorize(user, { verb: 'list', info, namespace: request.namespace });
      const options = {
        namespace: request.namespace,
        labelSelector: request.labelSelector,
        fieldSelector: request.fieldSelector,
        limit: request.limit,
        continue: request.continue,
        resourceVersion: request.resourceVersion,
      };
      const cached = await listCached(store, cache, request.kind, options);
      if (cached !== undefined) return { items: cached.items.map((item) => item.bytes), resourceVersion: cached.resourceVersion, continue: cached.continue };
      const list = await registry.list(request.kind, options);
      return { items: list.items.map(bytesOf), resourceVersion: list.resourceVersion, continue: list.continue };
    }),
    update: unary('update', async (request: api.UpdateRequest, { user, context }) => {
      const object = parseJson(request.object, 'object');
      const { info, namespace, name } = target(request.kind, object);
      access.authorize(user, { verb: 'update', info, namespace, name, current: current(info, namespace, name) });
      return { object: bytesOf(await registry.update(request.kind, object, context)) };
    }),
    updateStatus: unary('update', async (request: api.UpdateRequest, { user, context }) => {
      const object = parseJson(request.object, 'object');
      const { info, namespace, name } = target(request.kind, object);
      access.authorize(user, { verb: 'update', info, namespace, name, subresource: 'status', current: current(info, namespace, name) });
      return { object: bytesOf(await registry.updateStatus(request.kind, object, context)) };
    }),
    patch: unary('patch', async (request: api.PatchRequest, { user, context }) => {
      const info = Registry.kind(request.kind);
      const namespace = namespaceOf(info, request.namespace);
      access.authorize(user, { verb: 'patch', info, namespace, name: request.name, current: current(info, namespace, request.name) });
      return { object: bytesOf(await registry.patch(request.kind, request.namespace, request.name, parseJson(request.patch, 'patch'), context)) };
    }),
    delete: unary('delete', async (request: api.DeleteRequest, { user, context }) => {
      const info = Registry.kind(request.kind);
      const namespace = namespaceOf(info, request.namespace);
      access.authorize(user, { verb: 'delete', info, namespace, name: request.name, current: current(info, namespace, request.name) });
      return { object: bytesOf(await registry.delete(request.kind, request.namespace, request.name, { ...context, resourceVersion: request.resourceVersion, gracePeriodSeconds: request.gracePeriodSeconds, propagationPolicy: request.propagationPolicy })) };
    }),
    bind: unary('bind', async (request: api.BindRequest, { user, context }) => {
      const info = Registry.kind(request.kind);
      if (info.kind !== 'Pod') throw new ApiError('BadRequest', `only pods are bound to nodes, not ${info.kind}`);
      const namespace = namespaceOf(info, request.namespace);
      access.authorize(user, { verb: 'create', info, namespace, name: request.name, subresource: 'binding' });
      return { object: bytesOf(await registry.bind(namespace, request.name, request.nodeName, { ...context, resourceVersion: request.resourceVersion })) };
    }),
    podLogs: (call: grpc.ServerWritableStream<api.PodLogsRequest, api.PodLogsChunk>) => {
      const request = call.request;
      let relay: { done: Promise<void>; cancel: () => void } | undefined;
      let ended = false;
      const end = (error?: unknown): void => {
        if (ended) return;
        ended = true;
        relay?.cancel();
        if (error === undefined) call.end();
        else call.emit('error', Object.assign(new Error(statusOf(error).details ?? 'logs failed'), statusOf(error)));
      };
      call.on('cancelled', () => end());
      (async () => {
        const target = await podCall(call.metadata, call.getAuthContext(), request, 'get', 'log');
        if (ended) return;
        const options = { follow: request.follow, previous: request.previous, tailLines: request.tailLines, sinceSeconds: request.sinceSeconds, timestamps: request.timestamps, limitBytes: request.limitBytes };
        relay = nodeProxy.logs(target, options, (data) => {
          if (!ended) call.write({ data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) });
        });
        await relay.done;
        end();
      })().catch((error: unknown) => end(error));
    },
    podExec: (call: grpc.ServerUnaryCall<api.PodExecRequest, api.PodExecResponse>, callback: grpc.sendUnaryData<api.PodExecResponse>) => {
      const request = call.request;
      (async () => {
        const target = await podCall(call.metadata, call.getAuthContext(), request, 'create', 'exec');
        const response = await nodeProxy.exec(target, request.command, request.timeoutSeconds);
        return { stdout: response.stdout, stderr: response.stderr, exitCode: response.exitCode };
      })().then(
        (response) => callback(null, response),
        (error: unknown) => callback(statusOf(error)),
      );
    },
    watch: (call: grpc.ServerWritableStream<api.WatchRequest, api.WatchEvent>) => {
      const request = call.request;
      let watch: WatchHandle | undefined;
      let bookmarkTimer: NodeJS.Timeout | undefined;
      let lastSent = performance.now();
      let ended = false;
      let counted = false;
      const end = (error?: unknown): void => {
        if (ended) return;
        ended = true;
        if (counted) metrics?.watchEnded(kindLabel(request.kind));
        watch?.cancel();
        if (bookmarkTimer !== undefined) clearInterval(bookmarkTimer);
        if (error === undefined) call.end();
        // grpc-js sends a stream's status on 'error' (destroy() would drop it: the client would wait forever).
        else call.emit('error', Object.assign(new Error(statusOf(error).details ?? 'watch failed'), statusOf(error)));
      };
      call.on('cancelled', () => end());
      call.on('close', () => end());
      const send = (type: string, object: Buffer): void => {
        if (ended) return;
        lastSent = performance.now();
        call.write({ type, object });
        metrics?.watchEventsSent(kindLabel(request.kind), type, 1);
      };
      (async () => {
        requireKind(request.kind);
        const info = Registry.kind(request.kind);
        access.authorize(access.authenticate(call.metadata, call.getAuthContext()), { verb: 'watch', info, namespace: request.namespace });
        watch = await startWatch(
          store,
          cache,
          info,
          { namespace: request.namespace, labelSelector: request.labelSelector, fieldSelector: request.fieldSelector, resourceVersion: request.resourceVersion, allowBookmarks: request.allowBookmarks },
          (event) => send(event.type, event.object.bytes),
          (error) => end(error),
        );
        if (ended) {
          watch.cancel();
          return;
        }
        metrics?.watchStarted(kindLabel(request.kind));
        counted = true;
        if (request.allowBookmarks) {
          bookmarkTimer = setInterval(() => {
            if (watch !== undefined && performance.now() - lastSent >= options.bookmarkIntervalMs) watch.bookmark(cache.revision);
          }, Math.max(10, Math.floor(options.bookmarkIntervalMs / 2)));
        }
      })().catch((error: unknown) => end(error));
    },
  };
}

/** The Resources service on `server`, with its registry, over a started watch cache and access control. */
export function addResourceService(server: grpc.Server, store: ReplicatedStore, cache: WatchCache, access: Access, options: ResourceServiceOptions & RegistryOptions): Registry {
  const registry = new Registry(store, options);
  server.addService(api.ResourcesService, resourceHandlers(store, registry, cache, access, options));
  return registry;
}
