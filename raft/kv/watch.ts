// Watchers over the MVCC store. A watcher starting at revision R first gets
// the history from R (replayed from the store), then every later change as it
// is applied: never lost, duplicated or reordered, since apply is synchronous
// and the replay ends exactly at the revision the live events start after.
// A start revision that was compacted away fails with the compact revision,
// so the client can re-list and watch again (etcd's behaviour).

import { KvError } from './errors.js';
import { inRange, rangeEndOf, toKey, type KeyString, type RangeEnd } from './keys.js';
import type { MvccStore } from './mvcc.js';
import type { Bytes, WatchEvent } from './types.js';

export interface WatchRequest {
  readonly key: Bytes;
  readonly rangeEnd?: Bytes | undefined;
  /** 0 or absent: from the next change on. */
  readonly startRevision?: number | undefined;
  readonly prevKv?: boolean | undefined;
  readonly noPut?: boolean | undefined;
  readonly noDelete?: boolean | undefined;
}

/** Events of one revision (or of a replay), delivered together. */
export interface WatchBatch {
  readonly watchId: number;
  /** The store revision the batch brings the watcher up to. */
  readonly revision: number;
  readonly events: readonly WatchEvent[];
  /**
   * Set when the watcher was cancelled because the history it needed was
   * compacted away (after the store was replaced by a snapshot): re-list.
   */
  readonly compactRevision?: number;
}

export type WatchStart =
  | { readonly kind: 'created'; readonly watchId: number; readonly cancel: () => void }
  | { readonly kind: 'compacted'; readonly compactRevision: number; readonly message: string };

interface Watcher {
  readonly id: number;
  readonly start: KeyString;
  readonly end: RangeEnd;
  readonly request: WatchRequest;
  /** Events below this revision were already delivered (or predate the watch). */
  nextRevision: number;
  readonly sink: (batch: WatchBatch) => void;
}

export class WatchHub {
  private readonly watchers = new Map<number, Watcher>();
  private nextId = 1;

  constructor(private store: MvccStore) {
    store.onEvents = (events) => this.publish(events);
  }

  /**
   * Follow a new store (restored from a snapshot). Each watcher catches up from
   * its next revision in the new store's history; one whose history was
   * compacted away is cancelled with the compact revision.
   */
  replaceStore(store: MvccStore): void {
    this.store.onEvents = () => {};
    this.store = store;
    store.onEvents = (events) => this.publish(events);
    for (const watcher of [...this.watchers.values()]) {
      if (watcher.nextRevision > store.revision) continue;
      let history: WatchEvent[];
      try {
        history = store.eventsSince(watcher.request.key, watcher.request.rangeEnd, watcher.nextRevision);
      } catch (error) {
        if (!(error instanceof KvError && error.code === 'compacted')) throw error;
        this.watchers.delete(watcher.id);
        watcher.sink({ watchId: watcher.id, revision: store.revision, events: [], compactRevision: store.compactRevision });
        continue;
      }
      watcher.nextRevision = store.revision + 1;
      const replay = this.shape(watcher, history);
      if (replay.length > 0) watcher.sink({ watchId: watcher.id, revision: store.revision, events: replay });
    }
  }

  get size(): number {
    return this.watchers.size;
  }

  watch(request: WatchRequest, sink: (batch: WatchBatch) => void): WatchStart {
    const current = this.store.revision;
    const from = request.startRevision !== undefined && request.startRevision > 0 ? request.startRevision : current + 1;
    let history: WatchEvent[] = [];
    if (from <= current) {
      try {
        history = this.store.eventsSince(request.key, request.rangeEnd, from);
      } catch (error) {
        if (error instanceof KvError && error.code === 'compacted') {
          return { kind: 'compacted', compactRevision: this.store.compactRevision, message: error.message };
        }
        throw error;
      }
    }
    const watcher: Watcher = {
      id: this.nextId++,
      start: toKey(request.key),
      end: rangeEndOf(request.rangeEnd),
      request,
      nextRevision: Math.max(from, current + 1),
      sink,
    };
    this.watchers.set(watcher.id, watcher);
    const replay = this.shape(watcher, history);
    if (replay.length > 0) sink({ watchId: watcher.id, revision: current, events: replay });
    return { kind: 'created', watchId: watcher.id, cancel: () => this.watchers.delete(watcher.id) };
  }

  /** The revision every watcher is now known to be up to (for progress notifications). */
  progressRevision(): number {
    return this.store.revision;
  }

  private publish(events: readonly WatchEvent[]): void {
    const revision = events[0]?.kv.modRevision ?? this.store.revision;
    for (const watcher of this.watchers.values()) {
      if (revision < watcher.nextRevision) continue;
      const matching = this.shape(
        watcher,
        events.filter((event) => inRange(toKey(event.kv.key), watcher.start, watcher.end)),
      );
      watcher.nextRevision = revision + 1;
      if (matching.length > 0) watcher.sink({ watchId: watcher.id, revision, events: matching });
    }
  }

  /** Apply the watcher's filters and its prevKv choice. */
  private shape(watcher: Watcher, events: readonly WatchEvent[]): WatchEvent[] {
    const { noPut, noDelete, prevKv } = watcher.request;
    return events
      .filter((event) => !(event.type === 'put' && noPut === true) && !(event.type === 'delete' && noDelete === true))
      .map((event) => (prevKv === true || event.prevKv === undefined ? event : { ...event, prevKv: undefined }));
  }
}
