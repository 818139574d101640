// The masters' replicated state machine: commands applied as etcd would,
// re-proposed requests applied once, lease expiry that loses to a racing
// renewal, membership from conf-change contexts, and snapshots that restore
// a state which then behaves exactly like the original.

import { expect } from 'chai';
import type { Entry } from '../../raft/core/index.js';
import * as storepb from '../../proto/gen/store.js';
import * as etcd from '../../proto/gen/etcd/rpc.js';
import { REQUEST_ID_WINDOW, StoreStateMachine, type MemberInfo, type Outcome, type StateListener } from '../../services/store/index.js';

class Recorder implements StateListener {
  readonly outcomes: Array<{ requestId: string; outcome: Outcome; index: number }> = [];
  readonly renewed: Array<[number, number]> = [];
  readonly removed: number[] = [];
  memberChanges = 0;
  readonly committedIds: string[] = [];
  committed(requestId: string): void {
    this.committedIds.push(requestId);
  }
  applied(requestId: string, outcome: Outcome, index: number): void {
    this.outcomes.push({ requestId, outcome, index });
  }
  leaseRenewed(id: number, ttlSeconds: number): void {
    this.renewed.push([id, ttlSeconds]);
  }
  leaseRemoved(id: number): void {
    this.removed.push(id);
  }
  membersChanged(): void {
    this.memberChanges++;
  }
}

const founders: MemberInfo[] = [
  { id: 1, name: 'a', peerUrls: ['http://127.0.0.1:1'], clientUrls: [] },
  { id: 2, name: 'b', peerUrls: ['http://127.0.0.1:2'], clientUrls: [] },
];

class Log {
  index = 0;
  entry(requestId: string, op: storepb.Command['op']): Entry {
    return { kind: 'normal', term: 1, index: ++this.index, data: storepb.Command.encode({ requestId, op }).finish() };
  }
}

const put = (key: string, value: string, lease = 0): storepb.Command['op'] => ({
  $case: 'put',
  value: etcd.PutRequest.fromPartial({ key: Buffer.from(key), value: Buffer.from(value), lease }),
});

describe('store state machine', function () {
  it('applies puts, answers with the outcome, and applies a re-proposed request once', function () {
    const recorder = new Recorder();
    const machine = new StoreStateMachine(founders, recorder);
    const log = new Log();
    machine.apply(log.entry('r1', put('/k', 'v1')));
    machine.apply(log.entry('r1', put('/k', 'v1'))); // the same request proposed again after a leader change
    machine.apply(log.entry('r2', put('/k', 'v2')));
    expect(recorder.outcomes.map((entry) => entry.requestId)).to.deep.equal(['r1', 'r2']);
    // Each is announced as committed once, before it is applied (the repeat is not).
    expect(recorder.committedIds).to.deep.equal(['r1', 'r2']);
    const latest = machine.kv.range({ key: Buffer.from('/k') }).kvs[0]!;
    expect(Buffer.from(latest.value).toString()).to.equal('v2');
    expect(latest.version).to.equal(2);
    expect(machine.kv.revision).to.equal(2);
  });

  it('reports a failing command as an error outcome without changing the store', function () {
    const recorder = new Recorder();
    const machine = new StoreStateMachine(founders, recorder);
    const log = new Log();
    machine.apply(log.entry('r1', put('/k', 'v', 12345)));
    expect(recorder.outcomes[0]!.outcome.kind).to.equal('error');
    expect(machine.kv.revision).to.equal(0);
  });

  it('expires a lease only when no renewal was applied after the one the leader saw', function () {
    const recorder = new Recorder();
    const machine = new StoreStateMachine(founders, recorder);
    const log = new Log();
    machine.apply(log.entry('g', { $case: 'leaseGrant', value: { id: 7, ttlSeconds: 5 } }));
    machine.apply(log.entry('p', put('/leased', 'x', 7)));
    const seenByLeader = machine.renewedAt(7)!;
    machine.apply(log.entry('renew', { $case: 'leaseRenew', value: { id: 7 } }));
    machine.apply(log.entry('expire-stale', { $case: 'leaseExpire', value: { id: 7, renewedAt: seenByLeader } }));
    expect(machine.kv.lease(7)).to.not.equal(undefined);
    machine.apply(log.entry('expire', { $case: 'leaseExpire', value: { id: 7, renewedAt: machine.renewedAt(7)! } }));
    expect(machine.kv.lease(7)).to.equal(undefined);
    expect(machine.kv.range({ key: Buffer.from('/leased') }).count).to.equal(0);
    expect(recorder.removed).to.deep.equal([7]);
    expect(recorder.renewed).to.deep.equal([
      [7, 5],
      [7, 5],
    ]);
  });

  it('learns members from conf-change contexts and client URLs from publish commands', function () {
    const machine = new StoreStateMachine(founders, new Recorder());
    machine.apply({ kind: 'conf-change', term: 1, index: 1, change: { type: 'add-voter', nodeId: 1 } });
    machine.apply({ kind: 'conf-change', term: 1, index: 2, change: { type: 'add-voter', nodeId: 2 } });
    const context = storepb.MemberInfo.encode({ id: 9, name: '', peerUrls: ['http://127.0.0.1:9'], clientUrls: [] }).finish();
    machine.apply({ kind: 'conf-change', term: 2, index: 3, change: { type: 'add-learner', nodeId: 9, context } });
    const log = new Log();
    log.index = 3;
    machine.apply(log.entry('pub', { $case: 'memberPublish', value: { id: 9, name: 'nine', clientUrls: ['http://127.0.0.1:19'] } }));
    expect(machine.members().map((member) => [member.id, member.name, member.clientUrls[0]])).to.deep.equal([
      [1, 'a', undefined],
      [2, 'b', undefined],
      [9, 'nine', 'http://127.0.0.1:19'],
    ]);
    machine.apply({ kind: 'conf-change', term: 2, index: 5, change: { type: 'remove', nodeId: 2 } });
    expect(machine.members().map((member) => member.id)).to.deep.equal([1, 9]);
  });

  it('restores from its snapshot to a state that behaves like the original, dedupe window included', function () {
    const original = new StoreStateMachine(founders, new Recorder());
    const log = new Log();
    original.apply({ kind: 'conf-change', term: 1, index: ++log.index, change: { type: 'add-voter', nodeId: 1 } });
    original.apply(log.entry('g', { $case: 'leaseGrant', value: { id: 3, ttlSeconds: 10 } }));
    for (let i = 0; i < 50; i++) original.apply(log.entry(`w${i}`, put(`/k/${i % 7}`, `v${i}`, i % 2 === 0 ? 3 : 0)));
    original.apply(log.entry('c', { $case: 'compaction', value: { revision: 20, physical: false } }));
    const snapshot = { meta: { index: log.index, term: 1, conf: { voters: [1], learners: [] } }, data: original.snapshot() };
    const restored = new StoreStateMachine([], new Recorder());
    restored.restore(snapshot);
    expect(restored.kv.exportState()).to.deep.equal(original.kv.exportState());
    expect(restored.members()).to.deep.equal(original.members());
    expect(restored.renewedAt(3)).to.equal(original.renewedAt(3));
    // The same next entries, including a duplicate, leave both in the same state.
    const next = [log.entry('w10', put('/dup', 'x')), log.entry('new', put('/new', 'y'))];
    for (const entry of next) {
      original.apply(entry);
      restored.apply(entry);
    }
    expect(restored.kv.exportState()).to.deep.equal(original.kv.exportState());
    expect(restored.kv.range({ key: Buffer.from('/dup') }).count).to.equal(0);
  });

  it('remembers exactly the last REQUEST_ID_WINDOW request ids, on every member alike', function () {
    const machine = new StoreStateMachine(founders, new Recorder());
    const log = new Log();
    for (let i = 0; i < REQUEST_ID_WINDOW + 1500; i++) machine.apply(log.entry(`id${i}`, { $case: 'leaseRevoke', value: { id: 1 } }));
    const restored = new StoreStateMachine(founders, new Recorder());
    restored.restore({ meta: { index: log.index, term: 1, conf: { voters: [1], learners: [] } }, data: machine.snapshot() });
    // id0..id1499 fell out of the window: re-applied on both; the newest ids are skipped on both.
    for (const target of [machine, restored]) {
      const before = target.kv.revision;
      target.apply(log.entry('id1499', put('/old', 'x')));
      target.apply(log.entry(`id${REQUEST_ID_WINDOW + 1499}`, put('/recent', 'x')));
      expect(target.kv.range({ key: Buffer.from('/old') }).count).to.equal(1);
      expect(target.kv.range({ key: Buffer.from('/recent') }).count).to.equal(0);
      expect(target.kv.revision).to.equal(before + 1);
    }
  });
});
