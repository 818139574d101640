import { expect } from 'chai';
import { prefixEnd } from '../../raft/kv/keys.js';
import { MvccStore } from '../../raft/kv/mvcc.js';
import type { WatchBatch } from '../../raft/kv/watch.js';
import { WatchHub } from '../../raft/kv/watch.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const s = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const describe_ = (batches: WatchBatch[]): string[] =>
  batches.flatMap((batch) => batch.events.map((e) => `${e.type} ${s(e.kv.key)}@${e.kv.modRevision}${e.prevKv ? ` prev=${s(e.prevKv.value)}` : ''}`));

describe('raft/kv watch hub', () => {
  it('delivers live changes in a range, in revision order, one batch per revision', () => {
    const store = new MvccStore();
    const hub = new WatchHub(store);
    const seen: WatchBatch[] = [];
    hub.watch({ key: b('app/'), rangeEnd: prefixEnd(b('app/')) }, (batch) => seen.push(batch));
    store.put({ key: b('app/a'), value: b('1') });
    store.put({ key: b('elsewhere'), value: b('1') });
    store.txn({ compare: [], success: [{ kind: 'put', request: { key: b('app/b'), value: b('1') } }, { kind: 'delete-range', request: { key: b('app/a') } }], failure: [] });
    expect(describe_(seen)).to.deep.equal(['put app/a@1', 'put app/b@3', 'delete app/a@3']);
    expect(seen.map((batch) => batch.revision)).to.deep.equal([1, 3]);
  });

  it('replays history from a start revision, then goes live without a gap or a duplicate', () => {
    const store = new MvccStore();
    const hub = new WatchHub(store);
    store.put({ key: b('k'), value: b('1') });
    store.put({ key: b('k'), value: b('2') });
    store.put({ key: b('k'), value: b('3') });
    const seen: WatchBatch[] = [];
    hub.watch({ key: b('k'), startRevision: 2, prevKv: true }, (batch) => seen.push(batch));
    store.put({ key: b('k'), value: b('4') });
    expect(describe_(seen)).to.deep.equal(['put k@2 prev=1', 'put k@3 prev=2', 'put k@4 prev=3']);
  });

  it('applies filters and hides previous values unless asked', () => {
    const store = new MvccStore();
    const hub = new WatchHub(store);
    const deletesOnly: WatchBatch[] = [];
    hub.watch({ key: b('k'), noPut: true }, (batch) => deletesOnly.push(batch));
    store.put({ key: b('k'), value: b('1') });
    store.deleteRange({ key: b('k') });
    expect(describe_(deletesOnly)).to.deep.equal(['delete k@2']);
  });

  it('refuses a start revision that was compacted, naming the compact revision', () => {
    const store = new MvccStore();
    const hub = new WatchHub(store);
    for (let i = 0; i < 5; i++) store.put({ key: b('k'), value: b(String(i)) });
    store.compact(4);
    const start = hub.watch({ key: b('k'), startRevision: 2 }, () => {});
    expect(start).to.deep.include({ kind: 'compacted', compactRevision: 4 });
    expect(hub.size).to.equal(0);
  });

  it('stops delivering after cancel', () => {
    const store = new MvccStore();
    const hub = new WatchHub(store);
    const seen: WatchBatch[] = [];
    const start = hub.watch({ key: b('k') }, (batch) => seen.push(batch));
    store.put({ key: b('k'), value: b('1') });
    if (start.kind === 'created') start.cancel();
    store.put({ key: b('k'), value: b('2') });
    expect(describe_(seen)).to.deep.equal(['put k@1']);
    expect(hub.size).to.equal(0);
  });

  it('a watcher starting in the future sees nothing before its start revision', () => {
    const store = new MvccStore();
    const hub = new WatchHub(store);
    const seen: WatchBatch[] = [];
    hub.watch({ key: b('k'), startRevision: 3 }, (batch) => seen.push(batch));
    for (let i = 1; i <= 4; i++) store.put({ key: b('k'), value: b(String(i)) });
    expect(describe_(seen)).to.deep.equal(['put k@3', 'put k@4']);
  });
});
