// The resource API server of every master: kinds, strict decoding,
// validation, the registry on the replicated store, watches, gRPC service.
export { ensureCreated, ensureNamespaces } from './bootstrap.js';
export { KINDS, kindInfo, resolveKind, type KindInfo } from '../client/kinds.js';
export { ApiError, Registry, fencingKey, mergePatch, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, type DeleteOptions, type Fence, type WriteContext, type ApiObject, type ListOptions, type ObjectList, type Reason } from './registry.js';
export { addResourceService, DEFAULT_WATCH_CACHE_EVENTS, fenceOf, resourceHandlers, statusOf, type ResourceServiceOptions } from './service.js';
export { Access, adminOnlyInterceptor, NODE_LEASE_NAMESPACE, nodeNameOf, nodeRestriction, type AccessOptions, type AccessRequest, type TokenUser } from './access.js';
export { BOOTSTRAP_CLUSTER_ROLE_BINDINGS, BOOTSTRAP_CLUSTER_ROLES, type UserInfo } from './rbac.js';
export { startWatch, type WatchHandle, type WatchOptions } from './watch.js';
export { CachedObject, WatchCache, type CacheWatchEvent, type CacheEventType } from './watch-cache.js';
export { GarbageCollector, type GarbageCollectorOptions } from './garbage-collector.js';
export { EventRecorder, type EventObject, type EventSink } from '../client/events.js';
export { registryEventSink } from './bootstrap.js';
export { expiredEvents, sweepEvents, type EventExpiryOptions } from './event-ttl.js';
