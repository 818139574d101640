// An informer, as client-go's: it lists a kind (paginated), keeps the
// objects in a local cache, then watches from the list's resourceVersion and
// applies each event to the cache, telling handlers what was added, updated
// or deleted. Controllers read the cache instead of the API server and get
// keys to reconcile from the handlers.
//
// When the watch ends for good — typically OUT_OF_RANGE, "too old resource
// version": the history it needed was compacted — the informer lists again
// (with backoff) and reconciles its cache with the new list, so handlers see
// exactly the differences they missed: deletions, additions, changes.
// (ResourceClient.watch already survives the loss of a master by itself.)
//
// Objects handed to handlers, and returned by list() and get(), ARE the
// cache: they are read-only. A caller that wants to change one clones it
// (structuredClone) first.

import type { KubeObject, ResourceClient } from './resources.js';

/**
 * What an informer needs of the API: ResourceClient is one. Tests (and
 * controllers' in-memory tests) pass their own, as client-go's ListerWatcher.
 */
export type ListerWatcher = Pick<ResourceClient, 'list' | 'watch'>;

export interface InformerOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Every resyncMs, onUpdate(object, object) for every cached object (0 or absent: never). */
  readonly resyncMs?: number;
  /** Objects per list page (default LIST_PAGE_SIZE). */
  readonly listPageSize?: number;
  readonly log?: (line: string) => void;
}

export const LIST_PAGE_SIZE = 500;
/** Re-list backoff: the first wait, doubled per consecutive re-list, up to the max. */
export const RELIST_BASE_BACKOFF_MS = 100;
export const RELIST_MAX_BACKOFF_MS = 5000;
/** A watch that stayed up this long was healthy: the next re-list starts again from the base backoff. */
export const HEALTHY_WATCH_MS = 10_000;

export type AddHandler<T> = (object: T) => void;
export type UpdateHandler<T> = (oldObject: T, newObject: T) => void;
export type DeleteHandler<T> = (object: T) => void;

/** One difference between a cache and a fresh list. */
export type CacheChange<T> = { readonly kind: 'add'; readonly object: T } | { readonly kind: 'update'; readonly oldObject: T; readonly newObject: T } | { readonly kind: 'delete'; readonly object: T };

/** The cache key of an object: "namespace/name", or "name" when it has no namespace. */
export function keyOf(object: KubeObject): string {
  const namespace = object.metadata?.namespace ?? '';
  const name = object.metadata?.name ?? '';
  return namespace === '' ? name : `${namespace}/${name}`;
}

function versionOf(object: KubeObject): string {
  return object.metadata?.resourceVersion ?? '';
}

/** Whether version `a` is later than `b` (decimal store revisions; unparsable counts as later: apply it). */
function isNewer(a: string, b: string): boolean {
  const left = Number(a);
  const right = Number(b);
  if (a === '' || b === '' || !Number.isFinite(left) || !Number.isFinite(right)) return true;
  return left > right;
}

/**
 * What turns `cache` into `items` (a complete list): an update for each
 * object whose resourceVersion differs, an add for each new one (both in
 * list order), then a delete, with the last known state, for each object
 * the list no longer has — as client-go's DeltaFIFO.Replace.
 */
export function diffCache<T extends KubeObject>(cache: ReadonlyMap<string, T>, items: readonly T[]): CacheChange<T>[] {
  const changes: CacheChange<T>[] = [];
  const listed = new Set<string>();
  for (const object of items) {
    const key = keyOf(object);
    listed.add(key);
    const old = cache.get(key);
    if (old === undefined) changes.push({ kind: 'add', object });
    else if (versionOf(old) !== versionOf(object)) changes.push({ kind: 'update', oldObject: old, newObject: object });
  }
  for (const [key, object] of cache) {
    if (!listed.has(key)) changes.push({ kind: 'delete', object });
  }
  return changes;
}

export class Informer<T extends KubeObject = KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly addHandlers: AddHandler<T>[] = [];
  private readonly updateHandlers: UpdateHandler<T>[] = [];
  private readonly deleteHandlers: DeleteHandler<T>[] = [];
  private readonly log: (line: string) => void;
  private readonly listPageSize: number;
  private synced = false;
  private readonly syncedPromise: Promise<void>;
  private resolveSynced!: () => void;
  private rejectSynced!: (error: Error) => void;
  private version = '';
  private started = false;
  private stopped = false;
  private stopWatch: (() => void) | undefined;
  /** Ends the current wait (backoff sleep or running watch) early, on stop(). */
  private interrupt: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: ListerWatcher,
    readonly kind: string,
    private readonly options: InformerOptions = {},
  ) {
    this.log = options.log ?? (() => {});
    this.listPageSize = options.listPageSize ?? LIST_PAGE_SIZE;
    if (!(Number.isInteger(this.listPageSize) && this.listPageSize > 0)) throw new Error(`Informer: listPageSize must be a positive integer, not ${this.listPageSize}`);
    this.syncedPromise = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    // Nobody may be waiting when stop() rejects it: that is not an unhandled error.
    this.syncedPromise.catch(() => {});
  }

  /** Whether the first list is in the cache (its onAdd calls made) and the watch after it started. */
  get hasSynced(): boolean {
    return this.synced;
  }

  /** The version the cache is up to date with: the last list's, then advanced by events and bookmarks ('' before the first list). */
  get lastSyncResourceVersion(): string {
    return this.version;
  }

  /** Resolves once hasSynced; rejects if the informer is stopped first. */
  waitForSync(): Promise<void> {
    return this.syncedPromise;
  }

  /** Handle additions. A handler added after start() is first told of every object already cached. */
  onAdd(handler: AddHandler<T>): void {
    this.addHandlers.push(handler);
    for (const object of this.cache.values()) this.call('add', () => handler(object));
  }

  /** Stop calling handlers given earlier (client-go's RemoveEventHandler). */
  removeHandlers(handlers: { readonly add?: AddHandler<T>; readonly update?: UpdateHandler<T>; readonly delete?: DeleteHandler<T> }): void {
    const drop = <H>(list: H[], handler: H | undefined): void => {
      const index = handler === undefined ? -1 : list.indexOf(handler);
      if (index >= 0) list.splice(index, 1);
    };
    drop(this.addHandlers, handlers.add);
    drop(this.updateHandlers, handlers.update);
    drop(this.deleteHandlers, handlers.delete);
  }

  onUpdate(handler: UpdateHandler<T>): void {
    this.updateHandlers.push(handler);
  }

  /**
   * Handle deletions. From the watch, the object as it was deleted (or as it
   * stopped matching the selectors); after a re-list, the last state the
   * cache had — the final one is unknown (client-go's DeletedFinalStateUnknown).
   */
  onDelete(handler: DeleteHandler<T>): void {
    this.deleteHandlers.push(handler);
  }

  /** The cached objects (read-only). */
  list(): T[] {
    return [...this.cache.values()];
  }

  /** A cached object (read-only); namespace '' for a cluster-scoped kind. */
  get(namespace: string, name: string): T | undefined {
    return this.cache.get(namespace === '' ? name : `${namespace}/${name}`);
  }

  /** By the key keyOf() gives ("namespace/name", or "name"), as work queues carry it. */
  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** Begin listing and watching. Starting again while running does nothing; an informer stopped cannot start again. */
  start(): void {
    if (this.stopped) throw new Error(`informer ${this.kind}: stopped; make a new one`);
    if (this.started) return;
    this.started = true;
    const resyncMs = this.options.resyncMs ?? 0;
    if (resyncMs > 0) this.resyncTimer = setInterval(() => this.resync(), resyncMs);
    void this.run();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
    this.stopWatch?.();
    this.stopWatch = undefined;
    this.interrupt?.();
    if (!this.synced) this.rejectSynced(new Error(`informer ${this.kind}: stopped before it synced`));
  }

  /** List, watch until the watch fails, back off, and again — until stopped. */
  private async run(): Promise<void> {
    let relists = 0;
    let reason = '';
    while (!this.stopped) {
      if (reason !== '') {
        const delayMs = Math.min(RELIST_BASE_BACKOFF_MS * 2 ** relists, RELIST_MAX_BACKOFF_MS);
        relists++;
        this.log(`informer ${this.kind}: re-listing in ${delayMs} ms: ${reason}`);
        await this.sleep(delayMs);
        if (this.stopped) return;
      }
      try {
        await this.listAndReplace();
      } catch (error) {
        reason = `list failed: ${messageOf(error)}`;
        continue;
      }
      if (this.stopped) return;
      const watchStartMs = Date.now();
      const watching = this.watchUntilError();
      // Synced once the watch is asked for too: nothing after the list can be missed.
      this.markSynced();
      const error = await watching;
      if (error === undefined) return;
      if (Date.now() - watchStartMs >= HEALTHY_WATCH_MS) relists = 0;
      reason = `watch ended: ${messageOf(error)}`;
    }
  }

  private async listAndReplace(): Promise<void> {
    const items: T[] = [];
    let continueToken = '';
    let version = '';
    do {
      const page = await this.client.list(this.kind, { ...this.selection(), limit: this.listPageSize, continue: continueToken });
      if (this.stopped) return;
      items.push(...(page.items as T[]));
      continueToken = page.continue;
      version = page.resourceVersion;
    } while (continueToken !== '');
    this.version = version;
    this.replace(items);
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.resolveSynced();
  }

  /** Make the cache the list, telling handlers of each difference. */
  private replace(items: readonly T[]): void {
    for (const change of diffCache(this.cache, items)) {
      if (change.kind === 'delete') {
        this.cache.delete(keyOf(change.object));
        this.notifyDelete(change.object);
      } else if (change.kind === 'add') {
        this.cache.set(keyOf(change.object), change.object);
        this.notifyAdd(change.object);
      } else {
        this.cache.set(keyOf(change.newObject), change.newObject);
        this.notifyUpdate(change.oldObject, change.newObject);
      }
    }
  }

  /** Watch from this.version; resolves with the error that ended it, or undefined on stop(). */
  private watchUntilError(): Promise<Error | undefined> {
    return new Promise((resolve) => {
      let ended = false;
      const end = (error: Error | undefined): void => {
        if (ended) return;
        ended = true;
        this.interrupt = undefined;
        this.stopWatch = undefined;
        resolve(error);
      };
      this.interrupt = () => end(undefined);
      const params = { ...this.selection(), resourceVersion: this.version, allowBookmarks: true };
      let stop: () => void;
      try {
        stop = this.client.watch(this.kind, params, {
          onEvent: (type, object) => {
            if (!ended && !this.stopped) this.apply(type, object as T);
          },
          onError: (error) => end(error),
        });
      } catch (error) {
        end(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      // A watch may fail before watch() even returns.
      if (!ended) this.stopWatch = stop;
    });
  }

  /** One watch event into the cache and the handlers. */
  private apply(type: string, object: T): void {
    const version = versionOf(object);
    if (type === 'BOOKMARK') {
      this.advance(version);
      return;
    }
    const key = keyOf(object);
    const cached = this.cache.get(key);
    if (type === 'ADDED' || type === 'MODIFIED') {
      // A late or repeated event must not take the cache back in time.
      if (cached !== undefined && !isNewer(version, versionOf(cached))) return;
      this.cache.set(key, object);
      this.advance(version);
      if (cached === undefined) this.notifyAdd(object);
      else this.notifyUpdate(cached, object);
    } else if (type === 'DELETED') {
      this.advance(version);
      if (cached === undefined || !isNewer(version, versionOf(cached))) return;
      this.cache.delete(key);
      this.notifyDelete(object);
    } else {
      this.log(`informer ${this.kind}: ignored a watch event of unknown type ${type}`);
    }
  }

  private advance(version: string): void {
    if (version !== '' && isNewer(version, this.version)) this.version = version;
  }

  private resync(): void {
    if (!this.synced || this.stopped) return;
    for (const object of this.cache.values()) this.notifyUpdate(object, object);
  }

  private selection(): { namespace?: string; labelSelector?: string; fieldSelector?: string } {
    const { namespace, labelSelector, fieldSelector } = this.options;
    return {
      ...(namespace === undefined ? {} : { namespace }),
      ...(labelSelector === undefined ? {} : { labelSelector }),
      ...(fieldSelector === undefined ? {} : { fieldSelector }),
    };
  }

  private notifyAdd(object: T): void {
    for (const handler of this.addHandlers) this.call('add', () => handler(object));
  }

  private notifyUpdate(oldObject: T, newObject: T): void {
    for (const handler of this.updateHandlers) this.call('update', () => handler(oldObject, newObject));
  }

  private notifyDelete(object: T): void {
    for (const handler of this.deleteHandlers) this.call('delete', () => handler(object));
  }

  /** A throwing handler is logged; the others, and the informer, carry on. */
  private call(what: string, handler: () => void): void {
    try {
      handler();
    } catch (error) {
      this.log(`informer ${this.kind}: ${what} handler failed: ${messageOf(error)}`);
    }
  }

  /** Wait, unless stop() comes first. */
  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.interrupt = undefined;
        resolve();
      }, delayMs);
      this.interrupt = () => {
        clearTimeout(timer);
        this.interrupt = undefined;
        resolve();
      };
    });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
