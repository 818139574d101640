// The Resources gRPC service (proto/api.proto) over the registry. Objects
// in and out are JSON bytes; refusals become gRPC statuses with the
// Kubernetes reason in the "mast-reason" trailer.

import * as grpc from '@grpc/grpc-js';
import * as api from '../../proto/gen/api.js';
import { toServiceError, unary as etcdUnary } from '../etcdapi/index.js';
import type { ReplicatedStore } from '../store/index.js';
import { ApiError, Registry, type ApiObject, type Reason, type RegistryOptions } from './registry.js';
import { ResourceWatch } from './watch.js';

const REASON_CODES: Readonly<Record<Reason, grpc.status>> = {
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  Conflict: grpc.status.ABORTED,
  Invalid: grpc.status.INVALID_ARGUMENT,
  BadRequest: grpc.status.INVALID_ARGUMENT,
  Gone: grpc.status.OUT_OF_RANGE,
  TooLarge: grpc.status.INVALID_ARGUMENT,
};

export interface ResourceServiceOptions {
  /** Send a BOOKMARK to a watcher that asked for them after this long without events. */
  readonly bookmarkIntervalMs: number;
}

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

function unary<Req, Res>(run: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return etcdUnary(run, statusOf);
}

export function resourceHandlers(store: ReplicatedStore, registry: Registry, options: ResourceServiceOptions): api.ResourcesServer {
  return {
    create: unary(async (request: api.CreateRequest) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.create(request.kind, parseJson(request.object, 'object'))) };
    }),
    get: unary(async (request: api.GetRequest) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.get(request.kind, request.namespace, request.name)) };
    }),
    list: unary(async (request: api.ListRequest) => {
      requireKind(request.kind);
      const list = await registry.list(request.kind, {
        namespace: request.namespace,
        labelSelector: request.labelSelector,
        fieldSelector: request.fieldSelector,
        limit: request.limit,
        continue: request.continue,
        resourceVersion: request.resourceVersion,
      });
      return { items: list.items.map(bytesOf), resourceVersion: list.resourceVersion, continue: list.continue };
    }),
    update: unary(async (request: api.UpdateRequest) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.update(request.kind, parseJson(request.object, 'object'))) };
    }),
    updateStatus: unary(async (request: api.UpdateRequest) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.updateStatus(request.kind, parseJson(request.object, 'object'))) };
    }),
    patch: unary(async (request: api.PatchRequest) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.patch(request.kind, request.namespace, request.name, parseJson(request.patch, 'patch'))) };
    }),
    delete: unary(async (request: api.DeleteRequest) => {
      requireKind(request.kind);
      return { object: bytesOf(await registry.delete(request.kind, request.namespace, request.name, { resourceVersion: request.resourceVersion, gracePeriodSeconds: request.gracePeriodSeconds })) };
    }),
    watch: (call: grpc.ServerWritableStream<api.WatchRequest, api.WatchEvent>) => {
      const request = call.request;
      let watch: ResourceWatch | undefined;
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
      const send = (type: string, object: ApiObject): void => {
        if (ended) return;
        lastSent = performance.now();
        call.write({ type, object: bytesOf(object) });
      };
      (async () => {
        requireKind(request.kind);
        const info = Registry.kind(request.kind);
        watch = await ResourceWatch.start(
          store,
          registry,
          info,
          { namespace: request.namespace, labelSelector: request.labelSelector, fieldSelector: request.fieldSelector, resourceVersion: request.resourceVersion, allowBookmarks: request.allowBookmarks },
          (event) => send(event.type, event.object),
          (error) => end(error),
        );
        if (ended) watch.cancel();
        else if (request.allowBookmarks) {
          bookmarkTimer = setInterval(() => {
            if (watch !== undefined && performance.now() - lastSent >= options.bookmarkIntervalMs) watch.bookmark(store.watchHub.progressRevision());
          }, Math.max(10, Math.floor(options.bookmarkIntervalMs / 2)));
        }
      })().catch((error: unknown) => end(error));
    },
  };
}

export function addResourceService(server: grpc.Server, store: ReplicatedStore, options: ResourceServiceOptions & RegistryOptions): Registry {
  const registry = new Registry(store, options);
  server.addService(api.ResourcesService, resourceHandlers(store, registry, options));
  return registry;
}
