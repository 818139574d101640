// The multi-version key-value store replicated by Raft: every applied write
// request bumps the store revision once (sub-revisions order the changes
// within it); every key keeps its versions, so reads and watches can start
// from any revision not yet compacted. Deterministic: it is the state machine
// every master applies in the same order.

import { KvError } from './errors.js';
import { fromKey, inRange, lowerBound, rangeEndOf, toKey, type KeyString, type RangeEnd } from './keys.js';
import type {
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchEvent,
} from './types.js';

/** One version of a key. */
export interface KeyRecord {
  readonly main: number;
  readonly sub: number;
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: number;
  readonly tombstone: boolean;
}

export interface Lease {
  readonly id: number;
  readonly ttlSeconds: number;
  readonly keys: Set<KeyString>;
}

/** The changes of one write request, all at revision `main`, staged until it succeeds. */
interface WriteBatch {
  readonly main: number;
  sub: number;
  readonly events: WatchEvent[];
  /** At most one change per key per request (etcd refuses a txn that writes a key twice). */
  readonly staged: Map<KeyString, KeyRecord>;
}

const EMPTY = new Uint8Array(0);

function recordToKeyValue(key: KeyString, record: KeyRecord): KeyValue {
  return {
    key: fromKey(key),
    value: record.value,
    createRevision: record.createRevision,
    modRevision: record.main,
    version: record.version,
    lease: record.lease,
  };
}

export class MvccStore {
  private currentRevision = 0;
  private compactedRevision = 0;
  /** Versions of each key, oldest first. */
  private readonly history = new Map<KeyString, KeyRecord[]>();
  /** Every key with history, sorted (byte order). */
  private sortedKeys: KeyString[] = [];
  private readonly leaseTable = new Map<number, Lease>();
  /** Called with the events of every write request, in revision order. */
  onEvents: (events: readonly WatchEvent[]) => void = () => {};

  get revision(): number {
    return this.currentRevision;
  }

  get compactRevision(): number {
    return this.compactedRevision;
  }

  // ---------------------------------------------------------------- reads

  range(request: RangeRequest): RangeResponse {
    return this.rangeIn(undefined, request);
  }

  /** A range read; inside a write request (`batch`), it also sees that request's earlier writes. */
  private rangeIn(batch: WriteBatch | undefined, request: RangeRequest): RangeResponse {
    const explicit = request.revision !== undefined && request.revision > 0;
    const revision = explicit || batch === undefined ? this.readRevision(request.revision) : batch.main;
    const view = explicit ? undefined : batch;
    let matches: KeyValue[] = [];
    for (const [key, record] of this.liveAt(view, toKey(request.key), rangeEndOf(request.rangeEnd), revision)) {
      if (this.passesFilters(request, record)) matches.push(recordToKeyValue(key, record));
    }
    const count = matches.length;
    matches = sortKeyValues(matches, request);
    const limit = request.limit ?? 0;
    const more = limit > 0 && matches.length > limit;
    if (limit > 0) matches = matches.slice(0, limit);
    if (request.countOnly === true) matches = [];
    else if (request.keysOnly === true) matches = matches.map((kv) => ({ ...kv, value: EMPTY }));
    return { revision: this.currentRevision, kvs: matches, more, count };
  }

  private readRevision(requested: number | undefined): number {
    const revision = requested === undefined || requested <= 0 ? this.currentRevision : requested;
    if (revision > this.currentRevision) {
      throw new KvError('future-revision', `revision ${revision} is in the future (the store is at ${this.currentRevision})`);
    }
    if (revision < this.compactedRevision) {
      throw new KvError('compacted', `revision ${revision} has been compacted; the oldest available is ${this.compactedRevision}`);
    }
    return revision;
  }

  private passesFilters(request: RangeRequest, record: KeyRecord): boolean {
    const atLeast = (value: number, bound: number | undefined): boolean => bound === undefined || bound <= 0 || value >= bound;
    const atMost = (value: number, bound: number | undefined): boolean => bound === undefined || bound <= 0 || value <= bound;
    return (
      atLeast(record.main, request.minModRevision) &&
      atMost(record.main, request.maxModRevision) &&
      atLeast(record.createRevision, request.minCreateRevision) &&
      atMost(record.createRevision, request.maxCreateRevision)
    );
  }

  /** Live keys in the range as of `revision` (plus the batch's staged writes), in key order. */
  private *liveAt(batch: WriteBatch | undefined, start: KeyString, end: RangeEnd, revision: number): Generator<[KeyString, KeyRecord]> {
    for (const key of this.keysIn(batch, start, end)) {
      const staged = batch?.staged.get(key);
      const record = staged ?? this.versionAt(key, revision);
      if (record !== undefined && !record.tombstone) yield [key, record];
    }
  }

  /** The version of `key` at `revision` (a tombstone if it was deleted then), or undefined. */
  private versionAt(key: KeyString, revision: number): KeyRecord | undefined {
    const records = this.history.get(key);
    if (records === undefined) return undefined;
    for (let i = records.length - 1; i >= 0; i--) {
      const record = records[i]!;
      if (record.main <= revision) return record;
    }
    return undefined;
  }

  /** Keys with history (or staged in `batch`) within the range, in key order. */
  private keysIn(batch: WriteBatch | undefined, start: KeyString, end: RangeEnd): KeyString[] {
    const keys: KeyString[] = [];
    if (end.kind === 'single') {
      if (this.history.has(start) || batch?.staged.has(start) === true) keys.push(start);
      return keys;
    }
    for (let i = lowerBound(this.sortedKeys, start); i < this.sortedKeys.length; i++) {
      const key = this.sortedKeys[i]!;
      if (!inRange(key, start, end)) break;
      keys.push(key);
    }
    if (batch === undefined) return keys;
    const fresh = [...batch.staged.keys()].filter((key) => !this.history.has(key) && inRange(key, start, end));
    return fresh.length === 0 ? keys : [...keys, ...fresh].sort();
  }

  // ---------------------------------------------------------------- writes

  put(request: PutRequest): PutResponse {
    return this.write((batch) => this.putIn(batch, request));
  }

  deleteRange(request: DeleteRangeRequest): DeleteRangeResponse {
    return this.write((batch) => this.deleteIn(batch, request));
  }

  txn(request: TxnRequest): TxnResponse {
    return this.write((batch) => this.txnIn(batch, request));
  }

  /**
   * Run one write request atomically: its changes are staged and committed
   * only if the whole request succeeds (a request that fails changes nothing,
   * on every member alike). The revision moves only if something changed.
   */
  private write<T extends { revision: number }>(run: (batch: WriteBatch) => T): T {
    const batch: WriteBatch = { main: this.currentRevision + 1, sub: 0, events: [], staged: new Map() };
    const result = run(batch);
    if (batch.staged.size === 0) return { ...result, revision: this.currentRevision };
    for (const [key, record] of batch.staged) this.commitRecord(key, record);
    this.currentRevision = batch.main;
    this.onEvents(batch.events);
    return { ...result, revision: this.currentRevision };
  }

  private commitRecord(key: KeyString, record: KeyRecord): void {
    const before = this.latest(key);
    if (before !== undefined && !before.tombstone && before.lease !== 0) this.leaseTable.get(before.lease)?.keys.delete(key);
    if (!record.tombstone && record.lease !== 0) this.leaseTable.get(record.lease)?.keys.add(key);
    const records = this.history.get(key);
    if (records !== undefined) {
      records.push(record);
      return;
    }
    this.history.set(key, [record]);
    this.sortedKeys.splice(lowerBound(this.sortedKeys, key), 0, key);
  }

  /** The live version of `key` as this request sees it. */
  private liveIn(batch: WriteBatch, key: KeyString): KeyRecord | undefined {
    const record = batch.staged.get(key) ?? this.latest(key);
    return record === undefined || record.tombstone ? undefined : record;
  }

  private stage(batch: WriteBatch, key: KeyString, record: KeyRecord): void {
    if (batch.staged.has(key)) throw new KvError('duplicate-key', 'a txn may not write the same key twice');
    batch.staged.set(key, record);
  }

  private putIn(batch: WriteBatch, request: PutRequest): PutResponse {
    const key = toKey(request.key);
    const before = this.liveIn(batch, key);
    if ((request.ignoreValue === true || request.ignoreLease === true) && before === undefined) {
      throw new KvError('key-not-found', 'ignore_value or ignore_lease needs an existing key');
    }
    const value = request.ignoreValue === true ? before!.value : request.value;
    const lease = request.ignoreLease === true ? before!.lease : (request.lease ?? 0);
    if (lease !== 0 && !this.leaseTable.has(lease)) throw new KvError('lease-not-found', `lease ${lease} not found`);
    const record: KeyRecord = {
      main: batch.main,
      sub: batch.sub++,
      value,
      createRevision: before?.createRevision ?? batch.main,
      version: (before?.version ?? 0) + 1,
      lease,
      tombstone: false,
    };
    this.stage(batch, key, record);
    const prevKv = before === undefined ? undefined : recordToKeyValue(key, before);
    batch.events.push({ type: 'put', kv: recordToKeyValue(key, record), prevKv });
    return { revision: batch.main, prevKv: request.prevKv === true ? prevKv : undefined };
  }

  private deleteIn(batch: WriteBatch, request: DeleteRangeRequest): DeleteRangeResponse {
    const victims = [...this.liveAt(batch, toKey(request.key), rangeEndOf(request.rangeEnd), batch.main)];
    const prevKvs: KeyValue[] = [];
    for (const [key, before] of victims) {
      const tombstone: KeyRecord = { main: batch.main, sub: batch.sub++, value: EMPTY, createRevision: 0, version: 0, lease: 0, tombstone: true };
      this.stage(batch, key, tombstone);
      const prevKv = recordToKeyValue(key, before);
      if (request.prevKv === true) prevKvs.push(prevKv);
      batch.events.push({ type: 'delete', kv: { ...recordToKeyValue(key, tombstone), createRevision: 0 }, prevKv });
    }
    return { revision: batch.main, deleted: victims.length, prevKvs };
  }

  private txnIn(batch: WriteBatch, request: TxnRequest): TxnResponse {
    const succeeded = request.compare.every((compare) => this.evaluate(batch, compare));
    const ops = succeeded ? request.success : request.failure;
    const responses = ops.map((op): ResponseOp => {
      switch (op.kind) {
        case 'range':
          return { kind: 'range', response: this.rangeIn(batch, op.request) };
        case 'put':
          return { kind: 'put', response: this.putIn(batch, op.request) };
        case 'delete-range':
          return { kind: 'delete-range', response: this.deleteIn(batch, op.request) };
        case 'txn':
          return { kind: 'txn', response: this.txnIn(batch, op.request) };
      }
    });
    return { revision: batch.main, succeeded, responses };
  }

  private evaluate(batch: WriteBatch, compare: Compare): boolean {
    const live = [...this.liveAt(batch, toKey(compare.key), rangeEndOf(compare.rangeEnd), batch.main)].map(([, record]) => record);
    if (live.length === 0) {
      // etcd: comparing the value of a missing key always fails; other targets compare against zero.
      if (compare.target === 'value') return false;
      return compareValues(0, compare.operand, compare.result);
    }
    return live.every((record) => {
      switch (compare.target) {
        case 'version':
          return compareValues(record.version, compare.operand, compare.result);
        case 'create':
          return compareValues(record.createRevision, compare.operand, compare.result);
        case 'mod':
          return compareValues(record.main, compare.operand, compare.result);
        case 'lease':
          return compareValues(record.lease, compare.operand, compare.result);
        case 'value':
          return compareValues(record.value, compare.operand, compare.result);
      }
    });
  }

  private latest(key: KeyString): KeyRecord | undefined {
    const records = this.history.get(key);
    return records?.[records.length - 1];
  }

  // ---------------------------------------------------------------- compaction

  /** Forget versions older than `revision` that no read at or after it can see. */
  compact(revision: number): void {
    if (revision > this.currentRevision) {
      throw new KvError('future-revision', `cannot compact to revision ${revision}: the store is at ${this.currentRevision}`);
    }
    if (revision <= this.compactedRevision) {
      throw new KvError('compacted', `revision ${revision} is already compacted (compacted up to ${this.compactedRevision})`);
    }
    const emptied: KeyString[] = [];
    for (const [key, records] of this.history) {
      let keepFrom = 0;
      for (let i = 0; i < records.length; i++) if (records[i]!.main <= revision) keepFrom = i;
      // The newest version at or before `revision` stays unless it is a deletion.
      if (records[keepFrom]!.main <= revision && records[keepFrom]!.tombstone) keepFrom++;
      if (keepFrom > 0) records.splice(0, keepFrom);
      if (records.length === 0) emptied.push(key);
    }
    if (emptied.length > 0) {
      const gone = new Set(emptied);
      for (const key of emptied) this.history.delete(key);
      this.sortedKeys = this.sortedKeys.filter((key) => !gone.has(key));
    }
    this.compactedRevision = revision;
  }

  // ---------------------------------------------------------------- watch history

  /**
   * Every change to keys in the range at or after `fromRevision`, in revision
   * order: what a watcher starting there must see before live events.
   */
  eventsSince(key: Uint8Array, rangeEnd: Uint8Array | undefined, fromRevision: number): WatchEvent[] {
    if (fromRevision < this.compactedRevision) {
      throw new KvError('compacted', `revision ${fromRevision} has been compacted; the oldest available is ${this.compactedRevision}`);
    }
    const found: Array<{ main: number; sub: number; event: WatchEvent }> = [];
    for (const name of this.keysIn(undefined, toKey(key), rangeEndOf(rangeEnd))) {
      const records = this.history.get(name)!;
      records.forEach((record, position) => {
        if (record.main < fromRevision) return;
        const before = records[position - 1];
        const prevKv = before === undefined || before.tombstone ? undefined : recordToKeyValue(name, before);
        const kv = recordToKeyValue(name, record);
        const event: WatchEvent = record.tombstone ? { type: 'delete', kv: { ...kv, createRevision: 0 }, prevKv } : { type: 'put', kv, prevKv };
        found.push({ main: record.main, sub: record.sub, event });
      });
    }
    found.sort((a, b) => a.main - b.main || a.sub - b.sub);
    return found.map((entry) => entry.event);
  }

  // ---------------------------------------------------------------- leases

  grantLease(id: number, ttlSeconds: number): void {
    if (id <= 0) throw new KvError('invalid-argument', `lease id ${id} must be positive`);
    if (this.leaseTable.has(id)) throw new KvError('lease-exists', `lease ${id} already exists`);
    this.leaseTable.set(id, { id, ttlSeconds, keys: new Set() });
  }

  /** Revoke a lease, deleting its keys in one revision. */
  revokeLease(id: number): DeleteRangeResponse {
    const lease = this.leaseTable.get(id);
    if (lease === undefined) throw new KvError('lease-not-found', `lease ${id} not found`);
    const keys = [...lease.keys].sort();
    const response = this.write((batch) => {
      let deleted = 0;
      for (const key of keys) deleted += this.deleteIn(batch, { key: fromKey(key) }).deleted;
      return { revision: batch.main, deleted, prevKvs: [] as KeyValue[] };
    });
    this.leaseTable.delete(id);
    return response;
  }

  lease(id: number): { ttlSeconds: number; keys: Uint8Array[] } | undefined {
    const lease = this.leaseTable.get(id);
    if (lease === undefined) return undefined;
    return { ttlSeconds: lease.ttlSeconds, keys: [...lease.keys].sort().map(fromKey) };
  }

  leaseIds(): number[] {
    return [...this.leaseTable.keys()].sort((a, b) => a - b);
  }

  // ---------------------------------------------------------------- snapshots

  /** Everything the store holds, for a Raft snapshot (see codec.ts). */
  exportState(): { revision: number; compactRevision: number; keys: Array<[KeyString, readonly KeyRecord[]]>; leases: Array<[number, number]> } {
    return {
      revision: this.currentRevision,
      compactRevision: this.compactedRevision,
      keys: this.sortedKeys.map((key) => [key, this.history.get(key)!]),
      leases: [...this.leaseTable.values()].map((lease) => [lease.id, lease.ttlSeconds]),
    };
  }

  static importState(state: ReturnType<MvccStore['exportState']>): MvccStore {
    const store = new MvccStore();
    store.currentRevision = state.revision;
    store.compactedRevision = state.compactRevision;
    for (const [id, ttlSeconds] of state.leases) store.leaseTable.set(id, { id, ttlSeconds, keys: new Set() });
    for (const [key, records] of state.keys) {
      store.history.set(key, [...records]);
      store.sortedKeys.push(key);
      const latest = records[records.length - 1];
      if (latest !== undefined && !latest.tombstone && latest.lease !== 0) store.leaseTable.get(latest.lease)?.keys.add(key);
    }
    store.sortedKeys.sort();
    return store;
  }
}

function compareValues(actual: number | Uint8Array, operand: number | Uint8Array, result: Compare['result']): boolean {
  let order: number;
  if (typeof actual === 'number' && typeof operand === 'number') order = Math.sign(actual - operand);
  else if (actual instanceof Uint8Array && operand instanceof Uint8Array) order = compareBytes(actual, operand);
  else throw new KvError('invalid-argument', 'compare operand does not match its target (bytes for value, a number otherwise)');
  switch (result) {
    case 'equal':
      return order === 0;
    case 'not-equal':
      return order !== 0;
    case 'greater':
      return order > 0;
    case 'less':
      return order < 0;
  }
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return Math.sign(a.length - b.length);
}

function sortKeyValues(kvs: KeyValue[], request: RangeRequest): KeyValue[] {
  const order = request.sortOrder ?? 'none';
  const target = request.sortTarget ?? 'key';
  if (order === 'none' || (order === 'ascend' && target === 'key')) return kvs; // already in key order
  const direction = order === 'descend' ? -1 : 1;
  const by = (kv: KeyValue): number | Uint8Array => {
    switch (target) {
      case 'key':
        return kv.key;
      case 'version':
        return kv.version;
      case 'create':
        return kv.createRevision;
      case 'mod':
        return kv.modRevision;
      case 'value':
        return kv.value;
    }
  };
  return [...kvs].sort((a, b) => {
    const x = by(a);
    const y = by(b);
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : compareBytes(x as Uint8Array, y as Uint8Array);
    return direction * order || compareBytes(a.key, b.key);
  });
}
