// Watches of resources: the store's key watches turned into Kubernetes watch
// events. A put of a new key is ADDED, of an existing one MODIFIED, a delete
// DELETED (carrying the last state, at the deleting revision). With
// selectors, an object that starts matching is ADDED and one that stops is
// DELETED, as Kubernetes does, so a client's view of "what matches" stays
// exact. Events come in revision order, each revision once.

import type { WatchBatch, WatchEvent as KvWatchEvent } from '../../raft/kv/index.js';
import type { ReplicatedStore } from '../store/index.js';
import { listPrefix, type KindInfo } from '../client/kinds.js';
import { ApiError, objectFromStored, parseSelectors, prefixEnd, type ApiObject, type Registry } from './registry.js';
import { matchesFields, matchesLabels, type FieldRequirement, type Requirement } from './selectors.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface ApiWatchEvent {
  readonly type: WatchEventType;
  readonly object: ApiObject;
}

export interface WatchOptions {
  readonly namespace?: string | undefined;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
  /** Changes after this version; absent: the current objects as ADDED, then changes. */
  readonly resourceVersion?: string | undefined;
  /** Bookmarks wanted: one also marks the end of the initial ADDED events, at the list's version. */
  readonly allowBookmarks?: boolean | undefined;
}


export class ResourceWatch {
  private cancelHub: (() => void) | undefined;
  private lastRevision = 0;

  private constructor(
    private readonly info: KindInfo,
    private readonly labels: readonly Requirement[],
    private readonly fields: readonly FieldRequirement[],
    private readonly emit: (event: ApiWatchEvent) => void,
    private readonly fail: (error: ApiError) => void,
  ) {}

  /**
   * Start a watch; `emit` gets events in order, `fail` the one error that ends
   * it (history compacted). Throws ApiError for a bad request.
   */
  static async start(store: ReplicatedStore, registry: Registry, info: KindInfo, options: WatchOptions, emit: (event: ApiWatchEvent) => void, fail: (error: ApiError) => void): Promise<ResourceWatch> {
    const { labels, fields } = parseSelectors(info, options.labelSelector, options.fieldSelector);
    const watch = new ResourceWatch(info, labels, fields, emit, fail);
    let from: number;
    const given = options.resourceVersion ?? '';
    if (given === '' || given === '0') {
      // Current state first: a consistent list, then changes after it.
      const list = await registry.list(info.kind, { namespace: options.namespace, labelSelector: options.labelSelector, fieldSelector: options.fieldSelector });
      for (const object of list.items) emit({ type: 'ADDED', object });
      from = Number(list.resourceVersion);
      watch.lastRevision = from;
      if (options.allowBookmarks === true) watch.bookmark(from);
    } else {
      if (!/^\d+$/.test(given)) throw new ApiError('BadRequest', `resourceVersion "${given}" is not a resourceVersion (a decimal revision)`);
      from = Number(given);
    }
    watch.lastRevision = from;
    const prefix = listPrefix(info, info.namespaced ? options.namespace : undefined);
    const started = store.watchHub.watch({ key: Buffer.from(prefix), rangeEnd: prefixEnd(prefix), startRevision: from + 1, prevKv: true }, (batch) => watch.deliver(batch));
    if (started.kind === 'compacted') {
      throw new ApiError('Gone', `too old resource version: ${from} (the history before ${started.compactRevision} was compacted); list again`);
    }
    watch.cancelHub = started.cancel;
    return watch;
  }

  /** The revision the watcher has seen everything up to (for bookmarks). */
  get revision(): number {
    return this.lastRevision;
  }

  bookmark(revision: number): void {
    if (revision > this.lastRevision) this.lastRevision = revision;
    this.emit({ type: 'BOOKMARK', object: { apiVersion: this.info.apiVersion, kind: this.info.kind, metadata: { resourceVersion: String(this.lastRevision) } } });
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

  private matches(object: ApiObject | undefined): boolean {
    return object !== undefined && matchesLabels(this.labels, object.metadata.labels as Record<string, string> | undefined) && matchesFields(this.fields, object);
  }

  private translate(event: KvWatchEvent): ApiWatchEvent | undefined {
    const revision = event.kv.modRevision;
    const before = event.prevKv !== undefined ? objectFromStored(event.prevKv.value, event.prevKv.modRevision) : undefined;
    if (event.type === 'delete') {
      if (before === undefined || !this.matches(before)) return undefined;
      before.metadata.resourceVersion = String(revision);
      return { type: 'DELETED', object: before };
    }
    const after = objectFromStored(event.kv.value, revision);
    const matchedBefore = this.matches(before);
    const matchesNow = this.matches(after);
    if (matchesNow) return { type: matchedBefore ? 'MODIFIED' : 'ADDED', object: after };
    // It stopped matching: to this watcher it is gone.
    return matchedBefore ? { type: 'DELETED', object: after } : undefined;
  }
}
