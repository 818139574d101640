// The Resources gRPC service (proto/api.proto) over the registry. Objects
// in and out are JSON bytes; refusals become gRPC statuses with the
// Kubernetes reason in the "mast-reason" trailer.

import * as grpc from '@grpc/grpc-js';
import * as api from '../../proto/gen/api.js';
import { toServiceError } from '../etcdapi/index.js';
import type { ReplicatedStore } from '../store/index.js';
import { ApiError, Registry, type ApiObject, type Fence, type Reason, type RegistryOptions, type WriteContext } from './registry.js';
import { listCached, startWatch, type WatchHandle } from './watch.js';
import { WatchCache } from './watch-cache.js';

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
};

/** Request metadata naming the Lease whose fencing token a write carries ("namespace/name"), and the token. */
export const FENCING_LEASE_METADATA = 'mast-fencing-lease';
export const FENCING_TOKEN_METADATA = 'mast-fencing-token';

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
  /** How many recent events the watch cache keeps for watches that resume from the past. */
  readonly watchCacheEvents?: number;
}

/** Kubernetes' cacher keeps 100 events per resource by default and grows under load; one window for all kinds here. */
const DEFAULT_WATCH_CACHE_EVENTS = 10_000;

export function statusOf(error: unknown): Partial<grpc.StatusObject> {
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

/** A unary handler: `run` gets the request and what the call's metadata says about the writer. */
function unary<Req, Res>(run: (request: Req, context: WriteContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let running: Promise<Res>;
    try {
      running = run(call.request, { fence: fenceOf(call.metadata) });
    } catch (error) {
      running = Promise.reject(error);
    }
    running.then(
      (response) => callback(null, response),
      (error: unknown) => callback(statusOf(error)),
    );
  };
}

export function resourceHandlers(store: ReplicatedStore, registry: Registry, cache: WatchCache, options: ResourceServiceOptions): api.ResourcesServer {
  return {
    create: unary(async (request: api.CreateRequest, context) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.create(request.kind, parseJson(request.object, 'object'), context)) };
    }),
    get: unary(async (request: api.GetRequest) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.get(request.kind, request.namespace, request.name)) };
    }),
    list: unary(async (request: api.ListRequest) => {
      requireKind(request.kind);
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
    update: unary(async (request: api.UpdateRequest, context) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.update(request.kind, parseJson(request.object, 'object'), context)) };
    }),
    updateStatus: unary(async (request: api.UpdateRequest, context) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.updateStatus(request.kind, parseJson(request.object, 'object'), context)) };
    }),
    patch: unary(async (request: api.PatchRequest, context) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.patch(request.kind, request.namespace, request.name, parseJson(request.patch, 'patch'), context)) };
    }),
    delete: unary(async (request: api.DeleteRequest, context) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.delete(request.kind, request.namespace, request.name, { ...context, resourceVersion: request.resourceVersion, gracePeriodSeconds: request.gracePeriodSeconds, propagationPolicy: request.propagationPolicy })) };
    }),
    watch: (call: grpc.ServerWritableStream<api.WatchRequest, api.WatchEvent>) => {
      const request = call.request;
      let watch: WatchHandle | undefined;
      let bookmarkTimer: NodeJS.Timeout | undefined;
      let lastSent = performance.now();
      let ended = false;
      const end = (error?: unknown): void => {
        if (ended) return;
        ended = true;
        watch?.cancel();
        if (bookmarkTimer !== undefined) clearInterval(bookmarkTimer);
        if (error === undefined) call.end();
        else call.destroy(Object.assign(new Error(statusOf(error).details ?? 'watch failed'), statusOf(error)));
      };
      call.on('cancelled', () => end());
      call.on('close', () => end());
      const send = (type: string, object: Buffer): void => {
        if (ended) return;
        lastSent = performance.now();
        call.write({ type, object });
      };
      (async () => {
        requireKind(request.kind);
        const info = Registry.kind(request.kind);
        watch = await startWatch(
          store,
          cache,
          info,
          { namespace: request.namespace, labelSelector: request.labelSelector, fieldSelector: request.fieldSelector, resourceVersion: request.resourceVersion, allowBookmarks: request.allowBookmarks },
          (event) => send(event.type, event.object.bytes),
          (error) => end(error),
        );
        if (ended) watch.cancel();
        else if (request.allowBookmarks) {
          bookmarkTimer = setInterval(() => {
            if (watch !== undefined && performance.now() - lastSent >= options.bookmarkIntervalMs) watch.bookmark(cache.revision);
          }, Math.max(10, Math.floor(options.bookmarkIntervalMs / 2)));
        }
      })().catch((error: unknown) => end(error));
    },
  };
}

/** The Resources service on `server`, with its registry and watch cache (started: it follows the store from now on). */
export function addResourceService(server: grpc.Server, store: ReplicatedStore, options: ResourceServiceOptions & RegistryOptions): { registry: Registry; cache: WatchCache } {
  const registry = new Registry(store, options);
  const cache = new WatchCache(store, { historyEvents: options.watchCacheEvents ?? DEFAULT_WATCH_CACHE_EVENTS });
  cache.start();
  server.addService(api.ResourcesService, resourceHandlers(store, registry, cache, options));
  return { registry, cache };
}
