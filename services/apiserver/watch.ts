// Watches of resources, as Kubernetes has them: ADDED/MODIFIED/DELETED
// events in revision order, each revision once, plus BOOKMARKs. A put of a
// new key is ADDED, of an existing one MODIFIED, a delete DELETED (carrying
// the last state, at the deleting revision). With selectors, an object that
// starts matching is ADDED and one that stops is DELETED, so a client's view
// of "what matches" stays exact.
//
// Served from the master's watch cache whenever it still holds the history
// the watch needs; a watch from further back reads the store's own history
// (which answers "too old" once compacted).

import type { WatchBatch, WatchEvent as KvWatchEvent } from '../../raft/kv/index.js';
import type { ReplicatedStore } from '../store/index.js';
import { listPrefix, objectKey, type KindInfo } from '../client/kinds.js';
import { ApiError, encodeContinue, objectFromStored, parseSelectors, prefixEnd, Registry, type ListOptions } from './registry.js';
import { bookmarkEvent, CachedObject, matchesFilter, translateChange, type CacheWatchEvent, type CacheWatchFilter, type WatchCache } from './watch-cache.js';

export interface WatchOptions {
  readonly namespace?: string | undefined;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
  /**
   * Changes after this version. Absent: the current objects (a linearizable
   * read) as ADDED, then changes; "0": the same from this master's state.
   */
  readonly resourceVersion?: string | undefined;
  /** Bookmarks wanted: one also marks the end of the initial ADDED events, at the list's version. */
  readonly allowBookmarks?: boolean | undefined;
}

/** A running watch. */
export interface WatchHandle {
  /** Send a BOOKMARK at `revision` (or at what the watcher has seen, if later). */
  bookmark(revision: number): void;
  cancel(): void;
}

/**
 * Start a watch; `emit` gets events in order, `fail` the one error that ends
 * it (history compacted). Throws ApiError for a bad request.
 */
export async function startWatch(
  store: ReplicatedStore,
  cache: WatchCache,
  info: KindInfo,
  options: WatchOptions,
  emit: (event: CacheWatchEvent) => void,
  fail: (error: ApiError) => void,
): Promise<WatchHandle> {
  const { labels, fields } = parseSelectors(info, options.labelSelector, options.fieldSelector);
  const filter: CacheWatchFilter = { info, namespace: options.namespace, labels, fields };
  const given = options.resourceVersion ?? '';
  if (given === '' || given === '0') {
    if (given === '') await store.linearizableBarrier();
    // From here to cache.watch nothing awaits: the list and the watch meet exactly.
    const from = cache.revision;
    for (const cached of cache.list(info, options.namespace)) {
      if (matchesFilter(filter, cached)) emit({ type: 'ADDED', object: cached });
    }
    const watcher = cache.watch(filter, from, emit, fail);
    if (options.allowBookmarks === true) watcher.bookmark(from);
    return watcher;
  }
  if (!/^\d+$/.test(given)) throw new ApiError('BadRequest', `resourceVersion "${given}" is not a resourceVersion (a decimal revision)`);
  const from = Number(given);
  if (cache.canServeFrom(from)) return cache.watch(filter, from, emit, fail);
  return StoreWatch.start(store, filter, from, emit, fail);
}

/**
 * A list of the latest state served from the watch cache: the same answer
 * as Registry.list() without reading the store, each item already encoded.
 * Undefined when the request needs the store (a continue token or a
 * resourceVersion to read at).
 */
export async function listCached(store: ReplicatedStore, cache: WatchCache, kindName: string, options: ListOptions = {}): Promise<{ items: CachedObject[]; resourceVersion: string; continue: string } | undefined> {
  const info = Registry.kind(kindName);
  const { labels, fields } = parseSelectors(info, options.labelSelector, options.fieldSelector);
  if ((options.continue ?? '') !== '' || !['', '0'].includes(options.resourceVersion ?? '')) return undefined;
  if ((options.resourceVersion ?? '') === '') await store.linearizableBarrier();
  const filter: CacheWatchFilter = { info, namespace: options.namespace, labels, fields };
  const limit = options.limit !== undefined && options.limit > 0 ? options.limit : 0;
  const revision = cache.revision;
  const items: CachedObject[] = [];
  for (const cached of cache.list(info, options.namespace)) {
    if (!matchesFilter(filter, cached)) continue;
    if (limit > 0 && items.length === limit) {
      const start = objectKey(info, (cached.object.metadata.namespace as string | undefined) ?? '', cached.object.metadata.name as string);
      return { items, resourceVersion: String(revision), continue: encodeContinue({ rv: revision, start }) };
    }
    items.push(cached);
  }
  return { items, resourceVersion: String(revision), continue: '' };
}

/** A watch on the store's history, for versions older than the cache's window. */
class StoreWatch implements WatchHandle {
  private cancelHub: (() => void) | undefined;

  private constructor(
    private readonly filter: CacheWatchFilter,
    private lastRevision: number,
    private readonly emit: (event: CacheWatchEvent) => void,
    private readonly fail: (error: ApiError) => void,
  ) {}

  static start(store: ReplicatedStore, filter: CacheWatchFilter, from: number, emit: (event: CacheWatchEvent) => void, fail: (error: ApiError) => void): StoreWatch {
    const watch = new StoreWatch(filter, from, emit, fail);
    const prefix = listPrefix(filter.info, filter.info.namespaced ? filter.namespace : undefined);
    const started = store.watchHub.watch({ key: Buffer.from(prefix), rangeEnd: prefixEnd(prefix), startRevision: from + 1, prevKv: true }, (batch) => watch.deliver(batch));
    if (started.kind === 'compacted') {
      throw new ApiError('Gone', `too old resource version: ${from} (the history before ${started.compactRevision} was compacted); list again`);
    }
    watch.cancelHub = started.cancel;
    return watch;
  }

  bookmark(revision: number): void {
    if (revision > this.lastRevision) this.lastRevision = revision;
    this.emit(bookmarkEvent(this.filter.info, this.lastRevision));
  }

  cancel(): void {
    this.cancelHub?.();
    this.cancelHub = undefined;
  }

  private deliver(batch: WatchBatch): void {
    if (batch.compactRevision !== undefined) {
      this.cancel();
      this.fail(new ApiError('Gone', `too old resource version: ${this.lastRevision} (compacted to ${batch.compactRevision}); list again`));
      return;
    }
    for (const event of batch.events) {
      const translated = this.translate(event);
      if (translated !== undefined) this.emit(translated);
    }
    if (batch.revision > this.lastRevision) this.lastRevision = batch.revision;
  }

  private translate(event: KvWatchEvent): CacheWatchEvent | undefined {
    const revision = event.kv.modRevision;
    const before = event.prevKv !== undefined ? new CachedObject(objectFromStored(event.prevKv.value, event.prevKv.modRevision)) : undefined;
    const after = event.type === 'put' ? new CachedObject(objectFromStored(event.kv.value, revision)) : undefined;
    return translateChange(this.filter, event.type, before, after, () => before!.atRevision(revision));
  }
}
