import { expect } from 'chai';
import { KvError } from '../../raft/kv/errors.js';
import { prefixEnd } from '../../raft/kv/keys.js';
import { MvccStore } from '../../raft/kv/mvcc.js';
import type { KeyValue, WatchEvent } from '../../raft/kv/types.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const s = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const ALL = new Uint8Array([0]);
const summary = (kv: KeyValue): string => `${s(kv.key)}=${s(kv.value)} c${kv.createRevision} m${kv.modRevision} v${kv.version}`;

function expectKvError(run: () => unknown, code: KvError['code'], message: RegExp): void {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(KvError);
    expect((error as KvError).code).to.equal(code);
    expect((error as KvError).message).to.match(message);
    return;
  }
  expect.fail(`expected a ${code} error`);
}

describe('raft/kv MVCC store', () => {
  it('bumps the revision once per write and tracks create/mod revisions and versions', () => {
    const store = new MvccStore();
    expect(store.put({ key: b('a'), value: b('1') }).revision).to.equal(1);
    expect(store.put({ key: b('b'), value: b('1') }).revision).to.equal(2);
    const previous = store.put({ key: b('a'), value: b('2'), prevKv: true });
    expect(previous.revision).to.equal(3);
    expect(summary(previous.prevKv!)).to.equal('a=1 c1 m1 v1');
    expect(store.range({ key: b('a') }).kvs.map(summary)).to.deep.equal(['a=2 c1 m3 v2']);
  });

  it('ranges over a key, a half-open range, a prefix and everything, with limit, count and sorting', () => {
    const store = new MvccStore();
    for (const key of ['a', 'b/1', 'b/2', 'b/3', 'c']) store.put({ key: b(key), value: b(key.toUpperCase()) });
    const keys = (r: { kvs: readonly KeyValue[] }): string[] => r.kvs.map((kv) => s(kv.key));
    expect(keys(store.range({ key: b('b/1'), rangeEnd: b('b/3') }))).to.deep.equal(['b/1', 'b/2']);
    expect(keys(store.range({ key: b('b/'), rangeEnd: prefixEnd(b('b/')) }))).to.deep.equal(['b/1', 'b/2', 'b/3']);
    expect(keys(store.range({ key: b('b'), rangeEnd: ALL }))).to.deep.equal(['b/1', 'b/2', 'b/3', 'c']);
    const limited = store.range({ key: b('a'), rangeEnd: ALL, limit: 2 });
    expect([keys(limited), limited.more, limited.count]).to.deep.equal([['a', 'b/1'], true, 5]);
    expect(keys(store.range({ key: b('a'), rangeEnd: ALL, sortOrder: 'descend', sortTarget: 'key' }))).to.deep.equal(['c', 'b/3', 'b/2', 'b/1', 'a']);
    const countOnly = store.range({ key: b('a'), rangeEnd: ALL, countOnly: true });
    expect([countOnly.kvs.length, countOnly.count]).to.deep.equal([0, 5]);
    expect(store.range({ key: b('a'), keysOnly: true }).kvs[0]!.value.byteLength).to.equal(0);
  });

  it('reads at a past revision and refuses future and compacted ones', () => {
    const store = new MvccStore();
    store.put({ key: b('k'), value: b('v1') });
    store.put({ key: b('k'), value: b('v2') });
    store.deleteRange({ key: b('k') });
    expect(store.range({ key: b('k'), revision: 1 }).kvs.map(summary)).to.deep.equal(['k=v1 c1 m1 v1']);
    expect(store.range({ key: b('k'), revision: 2 }).kvs.map(summary)).to.deep.equal(['k=v2 c1 m2 v2']);
    expect(store.range({ key: b('k') }).kvs).to.deep.equal([]);
    expectKvError(() => store.range({ key: b('k'), revision: 9 }), 'future-revision', /revision 9 is in the future/);
    store.compact(2);
    expectKvError(() => store.range({ key: b('k'), revision: 1 }), 'compacted', /revision 1 has been compacted/);
    expect(store.range({ key: b('k'), revision: 2 }).kvs.map(summary)).to.deep.equal(['k=v2 c1 m2 v2']);
    expectKvError(() => store.compact(2), 'compacted', /already compacted/);
  });

  it('deletes ranges with previous values; a recreated key starts a new life', () => {
    const store = new MvccStore();
    store.put({ key: b('x/1'), value: b('a') });
    store.put({ key: b('x/2'), value: b('b') });
    const deleted = store.deleteRange({ key: b('x/'), rangeEnd: prefixEnd(b('x/')), prevKv: true });
    expect([deleted.revision, deleted.deleted, deleted.prevKvs.map(summary)]).to.deep.equal([3, 2, ['x/1=a c1 m1 v1', 'x/2=b c2 m2 v1']]);
    expect(store.deleteRange({ key: b('x/1') })).to.deep.equal({ revision: 3, deleted: 0, prevKvs: [] });
    store.put({ key: b('x/1'), value: b('again') });
    expect(store.range({ key: b('x/1') }).kvs.map(summary)).to.deep.equal(['x/1=again c4 m4 v1']);
  });

  it('runs a txn: compares pick the branch; reads see earlier writes; one revision for all', () => {
    const store = new MvccStore();
    store.put({ key: b('counter'), value: b('1') });
    const result = store.txn({
      compare: [{ key: b('counter'), target: 'value', result: 'equal', operand: b('1') }],
      success: [
        { kind: 'put', request: { key: b('counter'), value: b('2') } },
        { kind: 'put', request: { key: b('log'), value: b('bumped') } },
        { kind: 'range', request: { key: b('counter') } },
      ],
      failure: [],
    });
    expect(result.succeeded).to.equal(true);
    expect(result.revision).to.equal(2);
    const read = result.responses[2];
    expect(read?.kind === 'range' ? read.response.kvs.map(summary) : []).to.deep.equal(['counter=2 c1 m2 v2']);
    const failed = store.txn({
      compare: [{ key: b('counter'), target: 'version', result: 'greater', operand: 5 }],
      success: [],
      failure: [{ kind: 'range', request: { key: b('log') } }],
    });
    expect([failed.succeeded, failed.revision]).to.deep.equal([false, 2]);
    const missing = store.txn({ compare: [{ key: b('nope'), target: 'value', result: 'equal', operand: b('') }], success: [], failure: [] });
    expect(missing.succeeded).to.equal(false);
    const created = store.txn({ compare: [{ key: b('nope'), target: 'create', result: 'equal', operand: 0 }], success: [], failure: [] });
    expect(created.succeeded).to.equal(true);
  });

  it('applies a txn atomically: an error in any operation changes nothing', () => {
    const store = new MvccStore();
    store.put({ key: b('a'), value: b('1') });
    const events: WatchEvent[] = [];
    store.onEvents = (batch) => events.push(...batch);
    expectKvError(
      () =>
        store.txn({
          compare: [],
          success: [
            { kind: 'put', request: { key: b('a'), value: b('2') } },
            { kind: 'put', request: { key: b('b'), value: b('x'), lease: 77 } },
          ],
          failure: [],
        }),
      'lease-not-found',
      /lease 77 not found/,
    );
    expectKvError(
      () =>
        store.txn({
          compare: [],
          success: [
            { kind: 'put', request: { key: b('c'), value: b('1') } },
            { kind: 'put', request: { key: b('c'), value: b('2') } },
          ],
          failure: [],
        }),
      'duplicate-key',
      /same key twice/,
    );
    expect(store.revision).to.equal(1);
    expect(store.range({ key: b('a'), rangeEnd: ALL }).kvs.map(summary)).to.deep.equal(['a=1 c1 m1 v1']);
    expect(events).to.deep.equal([]);
  });

  it('replays the changes since a revision in order, with previous values, for watchers', () => {
    const store = new MvccStore();
    store.put({ key: b('w/a'), value: b('1') });
    store.put({ key: b('w/b'), value: b('1') });
    store.put({ key: b('w/a'), value: b('2') });
    store.deleteRange({ key: b('w/b') });
    store.put({ key: b('other'), value: b('x') });
    const events = store.eventsSince(b('w/'), prefixEnd(b('w/')), 2);
    expect(events.map((e) => `${e.type} ${s(e.kv.key)}@${e.kv.modRevision} prev=${e.prevKv === undefined ? '-' : s(e.prevKv.value)}`)).to.deep.equal([
      'put w/b@2 prev=-',
      'put w/a@3 prev=1',
      'delete w/b@4 prev=1',
    ]);
    store.compact(3);
    expectKvError(() => store.eventsSince(b('w/'), prefixEnd(b('w/')), 2), 'compacted', /revision 2 has been compacted/);
  });

  it('attaches keys to leases; revoking deletes them in one revision', () => {
    const store = new MvccStore();
    store.grantLease(7, 10);
    expectKvError(() => store.grantLease(7, 10), 'lease-exists', /already exists/);
    store.put({ key: b('session/1'), value: b('x'), lease: 7 });
    store.put({ key: b('session/2'), value: b('y'), lease: 7 });
    store.put({ key: b('keep'), value: b('z') });
    expect(store.lease(7)?.keys.map(s)).to.deep.equal(['session/1', 'session/2']);
    const revoked = store.revokeLease(7);
    expect([revoked.revision, revoked.deleted]).to.deep.equal([4, 2]);
    expect(store.range({ key: b('a'), rangeEnd: ALL }).kvs.map((kv) => s(kv.key))).to.deep.equal(['keep']);
    expectKvError(() => store.revokeLease(7), 'lease-not-found', /lease 7 not found/);
    expectKvError(() => store.put({ key: b('k'), value: b('v'), lease: 7 }), 'lease-not-found', /lease 7 not found/);
  });

  it('exports and imports its whole state', () => {
    const store = new MvccStore();
    store.grantLease(3, 60);
    store.put({ key: b('a'), value: b('1'), lease: 3 });
    store.put({ key: b('b'), value: b('1') });
    store.deleteRange({ key: b('b') });
    store.compact(2);
    const copy = MvccStore.importState(store.exportState());
    expect(copy.revision).to.equal(3);
    expect(copy.compactRevision).to.equal(2);
    expect(copy.range({ key: b('a'), rangeEnd: ALL }).kvs.map(summary)).to.deep.equal(['a=1 c1 m1 v1']);
    expect(copy.lease(3)?.keys.map(s)).to.deep.equal(['a']);
  });
});

describe('raft/kv store snapshots', () => {
  it('round-trips the whole store, history and leases included', async () => {
    const { encodeStoreSnapshot, decodeStoreSnapshot } = await import('../../raft/kv/snapshot.js');
    const store = new MvccStore();
    store.grantLease(9, 30);
    store.put({ key: b('a'), value: b('1') });
    store.put({ key: b('a'), value: b('2'), lease: 9 });
    store.put({ key: new Uint8Array([0, 255, 7]), value: new Uint8Array([1, 2, 3]) });
    store.deleteRange({ key: b('a') });
    const copy = decodeStoreSnapshot(encodeStoreSnapshot(store));
    expect(copy.exportState()).to.deep.equal(store.exportState());
    expect(copy.range({ key: b('a'), revision: 2 }).kvs.map(summary)).to.deep.equal(['a=2 c1 m2 v2']);
  });

  it('refuses a truncated or foreign snapshot', async () => {
    const { encodeStoreSnapshot, decodeStoreSnapshot } = await import('../../raft/kv/snapshot.js');
    const store = new MvccStore();
    store.put({ key: b('a'), value: b('1') });
    const data = encodeStoreSnapshot(store);
    expectKvError(() => decodeStoreSnapshot(data.subarray(0, data.length - 3)), 'invalid-argument', /truncated/);
    expectKvError(() => decodeStoreSnapshot(b('hello world')), 'invalid-argument', /bad magic/);
  });
});
