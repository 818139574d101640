// The watch cache: each master keeps every resource object in memory, fed by
// ONE watch on the store, and serves watches (and latest lists) from it — so
// a thousand watchers cost one store watch and one JSON decode per change,
// not a thousand. Kubernetes' apiserver has the same thing (the "cacher").
//
// The cache is exact, not eventually consistent: the store applies entries
// and publishes their events synchronously, so after any apply the cache
// holds precisely the store's state at the store's revision. A watch from a
// resourceVersion is served from the cache when the cache still holds every
// event after that version (a bounded window of recent events); older ones
// fall back to a watch on the store itself, which knows about compaction.
//
// Objects in the cache are shared between watchers: nobody may mutate them.
// Each carries its JSON bytes, encoded once on first use.

import { lowerBound, type WatchBatch, type WatchEvent as KvWatchEvent } from '../../raft/kv/index.js';
import type { ReplicatedStore } from '../store/index.js';
import { KINDS, listPrefix, type KindInfo } from '../client/kinds.js';
import { ApiError, objectFromStored, prefixEnd, type ApiObject } from './registry.js';
import { matchesFields, matchesLabels, type FieldRequirement, type Requirement } from './selectors.js';

const REGISTRY_PREFIX = '/registry/';
const KEY_DECODER = new TextDecoder();
const KIND_PREFIXES = new Set(KINDS.map((info) => listPrefix(info, undefined)));

/** An object as the cache holds it: decoded once, encoded once. */
export class CachedObject {
  private encoded: Buffer | undefined;

  constructor(readonly object: ApiObject) {}

  get bytes(): Buffer {
    this.encoded ??= Buffer.from(JSON.stringify(this.object));
    return this.encoded;
  }

  /** The same object at another resourceVersion (a deletion is reported at the deleting revision). */
  atRevision(revision: number): CachedObject {
    return new CachedObject({ ...this.object, metadata: { ...this.object.metadata, resourceVersion: String(revision) } });
  }
}

export type CacheEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface CacheWatchEvent {
  readonly type: CacheEventType;
  readonly object: CachedObject;
}

interface StoredEvent {
  readonly revision: number;
  readonly key: string;
  readonly type: 'put' | 'delete';
  readonly before: CachedObject | undefined;
  readonly after: CachedObject | undefined;
  /** For deletes, made on first use: the last state at the deleting revision. */
  tombstone?: CachedObject;
}

export interface CacheWatchFilter {
  readonly info: KindInfo;
  readonly namespace: string | undefined;
  readonly labels: readonly Requirement[];
  readonly fields: readonly FieldRequirement[];
}

/** One watcher of the cache. */
export class CacheWatcher {
  /** Events up to this revision were delivered (or are not wanted). */
  private seen: number;
  private readonly prefix: string;
  cancelled = false;

  constructor(
    private readonly filter: CacheWatchFilter,
    from: number,
    private readonly emit: (event: CacheWatchEvent) => void,
    readonly fail: (error: ApiError) => void,
    private readonly detach: (watcher: CacheWatcher) => void,
  ) {
    this.seen = from;
    this.prefix = listPrefix(filter.info, filter.info.namespaced ? filter.namespace : undefined);
  }

  get kindPrefix(): string {
    return listPrefix(this.filter.info, undefined);
  }

  get revision(): number {
    return this.seen;
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.detach(this);
  }

  bookmark(revision: number): void {
    if (revision > this.seen) this.seen = revision;
    this.emit(bookmarkEvent(this.filter.info, this.seen));
  }

  /** @internal Offer one store event (in revision order). */
  offer(event: StoredEvent): void {
    if (this.cancelled || event.revision <= this.seen || !event.key.startsWith(this.prefix)) return;
    const translated = this.translate(event);
    if (translated !== undefined) this.emit(translated);
  }

  /** @internal Everything up to `revision` has been offered. */
  advance(revision: number): void {
    if (revision > this.seen) this.seen = revision;
  }

  private translate(event: StoredEvent): CacheWatchEvent | undefined {
    return translateChange(this.filter, event.type, event.before, event.after, () => (event.tombstone ??= event.before!.atRevision(event.revision)));
  }
}

/** A BOOKMARK: the kind, and the version the watcher has seen everything up to. */
export function bookmarkEvent(info: KindInfo, revision: number): CacheWatchEvent {
  return { type: 'BOOKMARK', object: new CachedObject({ apiVersion: info.apiVersion, kind: info.kind, metadata: { resourceVersion: String(revision) } }) };
}

/** Whether an object passes a watch's selectors. */
export function matchesFilter(filter: CacheWatchFilter, cached: CachedObject | undefined): boolean {
  if (cached === undefined) return false;
  const { labels, fields } = filter;
  if (labels.length === 0 && fields.length === 0) return true;
  return matchesLabels(labels, cached.object.metadata.labels as Record<string, string> | undefined) && matchesFields(fields, cached.object);
}

/**
 * What one change of a key is to a watcher with `filter` (undefined: nothing).
 * `deleted` makes the last state at the deleting revision.
 */
export function translateChange(filter: CacheWatchFilter, type: 'put' | 'delete', before: CachedObject | undefined, after: CachedObject | undefined, deleted: () => CachedObject): CacheWatchEvent | undefined {
  const matchedBefore = matchesFilter(filter, before);
  if (type === 'delete') return matchedBefore ? { type: 'DELETED', object: deleted() } : undefined;
  if (matchesFilter(filter, after)) return { type: matchedBefore ? 'MODIFIED' : 'ADDED', object: after! };
  // It stopped matching: to this watcher it is gone.
  return matchedBefore ? { type: 'DELETED', object: after! } : undefined;
}

/** A change of one object: `after` undefined for a delete; all undefined for a reset of the whole cache. */
export type ChangeListener = (key: string | undefined, before: CachedObject | undefined, after: CachedObject | undefined) => void;

export interface WatchCacheOptions {
  /** How many recent events the cache keeps for watches that start in the past. */
  readonly historyEvents: number;
}

export class WatchCache {
  /** kind prefix (/registry/pods/) → key → object. */
  private readonly objects = new Map<string, KindBucket>();
  private readonly watchers = new Map<string, Set<CacheWatcher>>();
  /** Recent events, oldest first, at most options.historyEvents. */
  private history: StoredEvent[] = [];
  private historyStart = 0;
  /** Watches from any revision >= this are served from the cache. */
  private servableFrom = 0;
  private cachedRevision = 0;
  private cancelStoreWatch: (() => void) | undefined;
  private readonly changeListeners = new Set<ChangeListener>();

  constructor(
    private readonly store: ReplicatedStore,
    private readonly options: WatchCacheOptions,
  ) {}

  /** Load every object and follow the store from there. */
  start(): void {
    this.objects.clear();
    this.history = [];
    this.historyStart = 0;
    const start = Buffer.from(REGISTRY_PREFIX);
    const page = this.store.kv.range({ key: start, rangeEnd: prefixEnd(REGISTRY_PREFIX) });
    for (const kv of page.kvs) {
      const key = KEY_DECODER.decode(kv.key);
      const prefix = kindPrefixOf(key);
      if (prefix === undefined) continue;
      this.bucket(prefix).set(key, new CachedObject(objectFromStored(kv.value, kv.modRevision)));
    }
    this.cachedRevision = page.revision;
    this.servableFrom = page.revision;
    const started = this.store.watchHub.watch({ key: start, rangeEnd: prefixEnd(REGISTRY_PREFIX), startRevision: page.revision + 1, prevKv: true }, (batch) => this.receive(batch));
    if (started.kind === 'compacted') throw new Error(`watch cache: the store compacted revision ${page.revision + 1} while it was being read`);
    this.cancelStoreWatch = started.cancel;
  }

  stop(): void {
    this.cancelStoreWatch?.();
    this.cancelStoreWatch = undefined;
    for (const set of this.watchers.values()) for (const watcher of set) watcher.cancel();
  }

  /**
   * Be told of every change to every object (after the cache has it), and
   * of a reset (`key` undefined: everything may have changed). Returns the
   * unsubscribe function.
   */
  onChange(listener: ChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Every object of every kind (for listeners that index them all). */
  *all(): IterableIterator<[string, CachedObject]> {
    for (const bucket of this.objects.values()) yield* bucket.objects;
  }

  /** The revision the cache is exactly up to date with. */
  get revision(): number {
    return Math.max(this.cachedRevision, this.store.kv.revision);
  }

  get watcherCount(): number {
    let count = 0;
    for (const set of this.watchers.values()) count += set.size;
    return count;
  }

  /** Whether every event after `revision` is still in the cache's window. */
  canServeFrom(revision: number): boolean {
    return revision >= this.servableFrom;
  }

  /** The objects of a kind (in a namespace), sorted by key, as of `this.revision`. */
  list(info: KindInfo, namespace: string | undefined): CachedObject[] {
    return this.objects.get(listPrefix(info, undefined))?.list(listPrefix(info, info.namespaced ? namespace : undefined)) ?? [];
  }

  /** One object by key, if present. */
  get(info: KindInfo, key: string): CachedObject | undefined {
    return this.objects.get(listPrefix(info, undefined))?.objects.get(key);
  }

  /** One object by storage key alone. */
  getKey(key: string): CachedObject | undefined {
    const prefix = kindPrefixOf(key);
    return prefix === undefined ? undefined : this.objects.get(prefix)?.objects.get(key);
  }

  /**
   * Watch changes after `from` (which canServeFrom must allow). Events come
   * synchronously with the store's apply, in revision order.
   */
  watch(filter: CacheWatchFilter, from: number, emit: (event: CacheWatchEvent) => void, fail: (error: ApiError) => void): CacheWatcher {
    if (!this.canServeFrom(from)) throw new Error(`watch cache: revision ${from} is outside the window (from ${this.servableFrom})`);
    const watcher = new CacheWatcher(filter, from, emit, fail, (gone) => this.watchers.get(gone.kindPrefix)?.delete(gone));
    for (let index = this.historyStart; index < this.history.length; index++) {
      const event = this.history[index]!;
      if (event.revision > from) watcher.offer(event);
    }
    watcher.advance(this.revision);
    let set = this.watchers.get(watcher.kindPrefix);
    if (set === undefined) {
      set = new Set();
      this.watchers.set(watcher.kindPrefix, set);
    }
    set.add(watcher);
    return watcher;
  }

  private bucket(prefix: string): KindBucket {
    let bucket = this.objects.get(prefix);
    if (bucket === undefined) {
      bucket = new KindBucket();
      this.objects.set(prefix, bucket);
    }
    return bucket;
  }

  private receive(batch: WatchBatch): void {
    if (batch.compactRevision !== undefined) {
      // The store was replaced by a snapshot whose history no longer reaches
      // the cache's revision: start over, and tell every watcher to re-list.
      const watchers = [...this.watchers.values()].flatMap((set) => [...set]);
      this.watchers.clear();
      this.cancelStoreWatch = undefined;
      this.start();
      const error = new ApiError('Gone', `too old resource version: this master restored a snapshot at revision ${batch.revision}; list again`);
      for (const watcher of watchers) {
        watcher.cancelled = true;
        watcher.fail(error);
      }
      for (const listener of this.changeListeners) listener(undefined, undefined, undefined);
      return;
    }
    const touched = new Set<string>();
    for (const kvEvent of batch.events) {
      const event = this.record(kvEvent);
      if (event === undefined) continue;
      const prefix = kindPrefixOf(event.key)!;
      touched.add(prefix);
      const set = this.watchers.get(prefix);
      if (set !== undefined) for (const watcher of set) watcher.offer(event);
      for (const listener of this.changeListeners) listener(event.key, event.before, event.after);
    }
    if (batch.revision > this.cachedRevision) this.cachedRevision = batch.revision;
    for (const prefix of touched) {
      const set = this.watchers.get(prefix);
      if (set !== undefined) for (const watcher of set) watcher.advance(batch.revision);
    }
  }

  /** Apply one store event to the cache and its history. */
  private record(kvEvent: KvWatchEvent): StoredEvent | undefined {
    const key = KEY_DECODER.decode(kvEvent.kv.key);
    const prefix = kindPrefixOf(key);
    if (prefix === undefined) return undefined;
    const bucket = this.bucket(prefix);
    const revision = kvEvent.kv.modRevision;
    const before = bucket.objects.get(key);
    let event: StoredEvent;
    if (kvEvent.type === 'delete') {
      bucket.delete(key);
      event = { revision, key, type: 'delete', before, after: undefined };
    } else {
      const after = new CachedObject(objectFromStored(kvEvent.kv.value, revision));
      bucket.set(key, after);
      event = { revision, key, type: 'put', before, after };
    }
    this.remember(event);
    return event;
  }

  private remember(event: StoredEvent): void {
    this.history.push(event);
    const excess = this.history.length - this.historyStart - this.options.historyEvents;
    if (excess > 0) {
      // Dropping an event of revision r means watches from before r can no longer be served.
      this.servableFrom = Math.max(this.servableFrom, this.history[this.historyStart + excess - 1]!.revision);
      this.historyStart += excess;
      // Compact the array now and then rather than shifting on every event.
      if (this.historyStart > this.options.historyEvents) {
        this.history = this.history.slice(this.historyStart);
        this.historyStart = 0;
      }
    }
  }
}

/**
 * One kind's objects, and their keys kept sorted (binary insertion on create
 * and delete), so a list walks its prefix instead of sorting every key.
 */
class KindBucket {
  readonly objects = new Map<string, CachedObject>();
  private readonly keys: string[] = [];

  set(key: string, object: CachedObject): void {
    if (!this.objects.has(key)) this.keys.splice(lowerBound(this.keys, key), 0, key);
    this.objects.set(key, object);
  }

  delete(key: string): void {
    if (this.objects.delete(key)) this.keys.splice(lowerBound(this.keys, key), 1);
  }

  /** The objects whose keys start with `prefix`, in key order. */
  list(prefix: string): CachedObject[] {
    const found: CachedObject[] = [];
    for (let index = lowerBound(this.keys, prefix); index < this.keys.length && this.keys[index]!.startsWith(prefix); index++) found.push(this.objects.get(this.keys[index]!)!);
    return found;
  }
}

/** "/registry/pods/" for "/registry/pods/default/web"; undefined for keys that are not objects (allocations, fencing). */
function kindPrefixOf(key: string): string | undefined {
  const slash = key.indexOf('/', REGISTRY_PREFIX.length);
  if (slash < 0 || !key.startsWith(REGISTRY_PREFIX)) return undefined;
  const prefix = key.slice(0, slash + 1);
  return KIND_PREFIXES.has(prefix) ? prefix : undefined;
}
