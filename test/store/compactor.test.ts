// Automatic compaction (etcd's --auto-compaction-*), with a fake clock: only
// the leader compacts, revision mode keeps the last N revisions, periodic
// mode keeps a span of time, and a retention of 0 never compacts.

import { expect } from 'chai';
import { Compactor, type CompactorTarget } from '../../services/store/index.js';

function target(): CompactorTarget & { time: number; rev: number; compacted: number; leader: boolean; calls: number[] } {
  const state = {
    time: 0,
    rev: 0,
    compacted: 0,
    leader: true,
    calls: [] as number[],
    isLeader: () => state.leader,
    revision: () => state.rev,
    compactRevision: () => state.compacted,
    now: () => state.time,
    compact: async (revision: number) => {
      state.calls.push(revision);
      state.compacted = revision;
    },
  };
  return state;
}

describe('auto-compaction', function () {
  it('revision mode keeps the last N revisions, on the leader only', async function () {
    const store = target();
    const compactor = new Compactor({ mode: 'revision', retention: 100 }, store);
    store.rev = 50;
    await compactor.tick();
    expect(store.calls).to.deep.equal([]);
    store.rev = 250;
    store.leader = false;
    await compactor.tick();
    expect(store.calls).to.deep.equal([]);
    store.leader = true;
    await compactor.tick();
    await compactor.tick();
    expect(store.calls).to.deep.equal([150]);
  });

  it('periodic mode compacts to the revision seen one retention ago', async function () {
    const store = target();
    const compactor = new Compactor({ mode: 'periodic', retention: 60_000 }, store);
    for (let minute = 0; minute <= 90; minute += 6) {
      store.time = minute * 1000;
      store.rev = minute * 10;
      await compactor.tick();
    }
    // At t = 90 s the newest sample at least 60 s old is t = 30 s, revision 300.
    expect(store.calls[store.calls.length - 1]).to.equal(300);
    expect(store.calls.every((revision, i) => i === 0 || revision > store.calls[i - 1]!)).to.equal(true);
  });

  it('never compacts with a retention of 0', async function () {
    const store = target();
    const compactor = new Compactor({ mode: 'revision', retention: 0 }, store);
    store.rev = 1_000_000;
    await compactor.tick();
    expect(store.calls).to.deep.equal([]);
  });
});
