// The linearizability checker the chaos suite runs on its recorded histories:
// hand-made histories whose verdict is known, the textbook register examples,
// histories recorded from a simulated linearizable register (always
// linearizable) with one read corrupted into a stale read or a new-old
// inversion (never), and agreement with a brute-force search on small random
// histories (which checks the checker's shortcuts and prunings are sound).

import { expect } from 'chai';
import { checkHistory, describe as describeOperation, HistoryError, type CasOperation, type CheckResult, type GetOperation, type Operation, type PutOperation } from './linearizability.js';

/** Builds operations with ids in the order they are written. */
class History {
  readonly operations: Operation[] = [];

  put(client: number, key: string, value: string, invokeMs: number, completeMs: number): PutOperation {
    return this.add<PutOperation>({ id: this.operations.length, client, key, kind: 'put', value, invokeMs, completeMs, result: { ok: true } });
  }

  /** A put whose client never heard back. */
  putUnknown(client: number, key: string, value: string, invokeMs: number, gaveUpMs?: number): PutOperation {
    return this.add<PutOperation>({ id: this.operations.length, client, key, kind: 'put', value, invokeMs, completeMs: gaveUpMs });
  }

  putFailed(client: number, key: string, value: string, invokeMs: number, completeMs: number): PutOperation {
    return this.add<PutOperation>({ id: this.operations.length, client, key, kind: 'put', value, invokeMs, completeMs, result: { ok: false } });
  }

  get(client: number, key: string, value: string | null, invokeMs: number, completeMs: number): GetOperation {
    return this.add<GetOperation>({ id: this.operations.length, client, key, kind: 'get', invokeMs, completeMs, result: { ok: true, value } });
  }

  getUnknown(client: number, key: string, invokeMs: number): GetOperation {
    return this.add<GetOperation>({ id: this.operations.length, client, key, kind: 'get', invokeMs, completeMs: undefined });
  }

  cas(client: number, key: string, expected: string | null, value: string, succeeded: boolean, invokeMs: number, completeMs: number): CasOperation {
    return this.add<CasOperation>({ id: this.operations.length, client, key, kind: 'cas', expected, value, invokeMs, completeMs, result: { ok: true, succeeded } });
  }

  casUnknown(client: number, key: string, expected: string | null, value: string, invokeMs: number): CasOperation {
    return this.add<CasOperation>({ id: this.operations.length, client, key, kind: 'cas', expected, value, invokeMs, completeMs: undefined });
  }

  check(maxSteps?: number): CheckResult {
    return checkHistory(this.operations, maxSteps === undefined ? {} : { maxSteps });
  }

  private add<T extends Operation>(operation: T): T {
    this.operations.push(operation);
    return operation;
  }
}

function expectLinearizable(result: CheckResult, keys = 1): void {
  expect(result, JSON.stringify(result)).to.deep.equal({ linearizable: true, keys });
}

/** The explanation of a violation, after checking it names the key and the given operations. */
function expectViolation(result: CheckResult, key: string, ...named: number[]): string {
  if (result.linearizable !== false) throw new Error(`expected a violation on ${key}, got ${JSON.stringify(result)}`);
  expect(result.key).to.equal(key);
  expect(result.explanation).to.contain(`key ${JSON.stringify(key)}: not linearizable`);
  for (const id of named) {
    expect(result.explanation, result.explanation).to.match(new RegExp(`#${id} \\(client`));
    expect(result.operations).to.include(id);
  }
  return result.explanation;
}

describe('chaos: linearizability checker', function () {
  describe('linearizable histories', function () {
    it('sequential operations, starting from an absent key', function () {
      const h = new History();
      h.get(1, 'x', null, 0, 1);
      h.put(1, 'x', 'a', 2, 3);
      h.get(2, 'x', 'a', 4, 5);
      h.put(2, 'x', 'b', 6, 7);
      h.get(1, 'x', 'b', 8, 9);
      expectLinearizable(h.check());
    });

    it('a get overlapping a put may see the old value or the new one', function () {
      for (const seen of ['a', 'b']) {
        const h = new History();
        h.put(1, 'x', 'a', 0, 1);
        h.put(1, 'x', 'b', 10, 20);
        h.get(2, 'x', seen, 12, 18);
        h.get(2, 'x', 'b', 21, 22);
        expectLinearizable(h.check());
      }
    });

    it('operations touching at the same millisecond count as concurrent', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 5);
      h.get(2, 'x', null, 5, 6); // invoked the millisecond the put completed: may still precede it
      expectLinearizable(h.check());
    });

    it('a chain of compare-and-swaps, with failures that saw another value', function () {
      const h = new History();
      h.cas(1, 'x', null, 'a', true, 0, 1);
      h.cas(2, 'x', null, 'z', false, 2, 3);
      h.cas(1, 'x', 'a', 'b', true, 4, 5);
      h.cas(2, 'x', 'a', 'c', false, 6, 7);
      h.cas(2, 'x', 'b', 'c', true, 8, 9);
      h.get(1, 'x', 'c', 10, 11);
      expectLinearizable(h.check());
    });

    it('concurrent cas operations racing for the same expected value: exactly one wins', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      h.cas(1, 'x', 'a', 'b', false, 2, 10);
      h.cas(2, 'x', 'a', 'c', true, 3, 9);
      h.cas(3, 'x', 'a', 'd', false, 4, 11);
      h.get(1, 'x', 'c', 12, 13);
      expectLinearizable(h.check());
    });

    it('concurrent puts, with reads that see them in one order consistent with some linearization', function () {
      const h = new History();
      h.put(1, 'x', '1', 0, 10);
      h.put(2, 'x', '2', 0, 10);
      h.get(3, 'x', '1', 1, 9);
      h.get(4, 'x', '2', 2, 8); // overlaps the read of 1: put 1, read 1, put 2, read 2
      h.get(3, 'x', '2', 11, 12);
      h.get(4, 'x', '2', 13, 14);
      expectLinearizable(h.check());
    });

    it('an indeterminate put whose value is read later took effect; one never read did not', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      h.putUnknown(2, 'x', 'seen', 2, 5); // the client gave up at 5
      h.putUnknown(3, 'x', 'never', 2);
      h.get(1, 'x', 'a', 6, 7);
      h.get(1, 'x', 'seen', 8, 9);
      h.get(2, 'x', 'seen', 10, 11);
      expectLinearizable(h.check());
    });

    it('an indeterminate put may take effect long after its client gave up, even after later acknowledged writes', function () {
      const h = new History();
      h.putUnknown(1, 'x', 'late', 0, 5);
      h.put(2, 'x', 'b', 10, 11);
      h.get(2, 'x', 'b', 12, 13);
      h.get(3, 'x', 'late', 20, 21);
      expectLinearizable(h.check());
    });

    it('an indeterminate cas took effect if its value is seen, and need not have', function () {
      const seen = new History();
      seen.put(1, 'x', 'a', 0, 1);
      seen.casUnknown(2, 'x', 'a', 'b', 2);
      seen.get(1, 'x', 'a', 3, 4);
      seen.get(1, 'x', 'b', 10, 11);
      expectLinearizable(seen.check());
      const unseen = new History();
      unseen.put(1, 'x', 'a', 0, 1);
      unseen.casUnknown(2, 'x', 'a', 'b', 2);
      unseen.get(1, 'x', 'a', 10, 11);
      expectLinearizable(unseen.check());
    });

    it('an indeterminate put nobody reads can be what made a concurrent cas fail', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      h.putUnknown(2, 'x', 'x-lost', 2);
      h.cas(1, 'x', 'a', 'c', false, 5, 6); // only fails if x-lost took effect first
      h.put(1, 'x', 'b', 7, 8);
      h.get(3, 'x', 'b', 9, 10);
      expectLinearizable(h.check());
    });

    it('indeterminate gets and failed-for-sure operations constrain nothing', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      h.getUnknown(2, 'x', 2);
      h.putFailed(2, 'x', 'refused', 3, 4);
      h.get(1, 'x', 'a', 5, 6);
      expectLinearizable(h.check());
    });

    it('several keys are checked independently and counted', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 10);
      h.put(2, 'y', 'a', 0, 10);
      h.get(3, 'x', null, 1, 2);
      h.get(3, 'y', 'a', 3, 4);
      h.cas(1, 'z', null, 'q', true, 11, 12);
      h.get(2, 'z', 'q', 13, 14);
      expectLinearizable(h.check(), 3);
    });

    it('the input order does not matter', function () {
      const h = new History();
      h.put(1, 'x', '1', 0, 10);
      h.put(2, 'x', '2', 0, 10);
      h.get(3, 'x', '1', 1, 9);
      h.get(3, 'x', '2', 11, 12);
      h.get(4, 'x', '1', 13, 14);
      const forward = h.check();
      const backward = checkHistory([...h.operations].reverse());
      expect(backward).to.deep.equal(forward);
      expect(forward.linearizable).to.equal(false);
    });
  });

  describe('non-linearizable histories', function () {
    it('a stale read: invoked after a put completed, it returns the value before', function () {
      const h = new History();
      const first = h.put(1, 'x', 'a', 0, 1);
      const second = h.put(1, 'x', 'b', 2, 3);
      const stale = h.get(2, 'x', 'a', 4, 5);
      const explanation = expectViolation(h.check(), 'x', stale.id, first.id, second.id);
      expect(explanation).to.equal(
        'key "x": not linearizable. #2 (client 2) get → "a" [4 ms, 5 ms] reads "a", a stale value: every write of "a" (#0 (client 1) put "a" [0 ms, 1 ms]) ' +
          'completed before #1 (client 1) put "b" [2 ms, 3 ms] began, which completed before it began.',
      );
    });

    it('a stale read of absence after a write was acknowledged', function () {
      const h = new History();
      const write = h.put(1, 'x', 'a', 0, 1);
      const read = h.get(2, 'x', null, 2, 3);
      expectViolation(h.check(), 'x', read.id, write.id);
    });

    it('a lost acknowledged write: the newer value is read, then the older one again', function () {
      const h = new History();
      h.put(1, 'x', 'old', 0, 1);
      const acknowledged = h.put(2, 'x', 'new', 2, 3);
      h.get(3, 'x', 'new', 4, 5);
      const lost = h.get(3, 'x', 'old', 6, 7);
      expectViolation(h.check(), 'x', lost.id, acknowledged.id);
    });

    it('two clients see two concurrent puts in contradictory orders', function () {
      // Both reads pairs run while both puts are in flight. A reads 1 then 2,
      // so put 1 precedes put 2; B reads 2 then 1, so put 2 precedes put 1.
      const h = new History();
      const one = h.put(1, 'x', '1', 0, 100);
      const two = h.put(2, 'x', '2', 0, 100);
      const a1 = h.get(3, 'x', '1', 10, 20);
      const a2 = h.get(3, 'x', '2', 30, 40);
      const b1 = h.get(4, 'x', '2', 10, 20);
      const b2 = h.get(4, 'x', '1', 30, 40);
      const explanation = expectViolation(h.check(), 'x', one.id, two.id, a1.id, a2.id, b1.id, b2.id);
      // Not refuted by a shortcut: the search shows both orders fail.
      expect(explanation).to.contain('#1 (client 2) put "2" [0 ms, 100 ms]: it would overwrite "1", which #5 (client 4) get → "1" [30 ms, 40 ms] still has to observe');
      expect(explanation).to.contain('No order tried could overwrite "2" and still place #3 (client 3) get → "2" [30 ms, 40 ms], which observes it.');
    });

    it('a cas that succeeded although the key held another value', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      const swap = h.cas(2, 'x', 'b', 'c', true, 2, 3);
      const explanation = expectViolation(h.check(), 'x', swap.id);
      expect(explanation).to.contain('succeeded expecting "b", which no operation on this key writes');
    });

    it('a cas that succeeded on a value overwritten before it began', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      h.put(1, 'x', 'b', 2, 3);
      const swap = h.cas(2, 'x', 'a', 'c', true, 4, 5);
      expect(expectViolation(h.check(), 'x', swap.id)).to.contain('succeeded expecting "a", a stale value');
    });

    it('a cas that failed although the key held the expected value', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      const swap = h.cas(2, 'x', 'a', 'c', false, 2, 3);
      expect(expectViolation(h.check(), 'x', swap.id)).to.contain('it failed, so it needs the key to hold something other than "a"');
    });

    it('an indeterminate put invoked after the cas completed cannot explain its failure', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      const swap = h.cas(1, 'x', 'a', 'c', false, 5, 6);
      h.putUnknown(2, 'x', 'x-lost', 7);
      expectViolation(h.check(), 'x', swap.id);
    });

    it('a get of a value nobody wrote', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      const read = h.get(2, 'x', 'ghost', 2, 3);
      expect(expectViolation(h.check(), 'x', read.id)).to.contain('reads "ghost", which no operation on this key writes');
    });

    it('a get of a value written only after it completed, or only by a put that failed for sure', function () {
      const future = new History();
      const read = future.get(1, 'x', 'a', 0, 1);
      const write = future.put(2, 'x', 'a', 2, 3);
      expect(expectViolation(future.check(), 'x', read.id, write.id)).to.contain('invoked after it completed');
      const refused = new History();
      const refusedWrite = refused.putFailed(1, 'x', 'a', 0, 1);
      const refusedRead = refused.get(2, 'x', 'a', 2, 3);
      expect(expectViolation(refused.check(), 'x', refusedRead.id, refusedWrite.id)).to.contain('failed for sure, so took no effect');
    });

    it('an indeterminate cas whose expected value the key never held cannot have written', function () {
      const h = new History();
      h.put(1, 'x', 'a', 0, 1);
      h.casUnknown(2, 'x', 'z', 'b', 2);
      const read = h.get(1, 'x', 'b', 10, 11);
      expectViolation(h.check(), 'x', read.id);
    });

    it('one bad key among good ones is the one reported', function () {
      const h = new History();
      h.put(1, 'a', '1', 0, 1);
      h.get(1, 'a', '1', 2, 3);
      h.put(2, 'b', '1', 0, 1);
      h.put(2, 'b', '2', 2, 3);
      const stale = h.get(3, 'b', '1', 4, 5);
      h.put(3, 'c', '1', 0, 1);
      expectViolation(h.check(), 'b', stale.id);
    });
  });

  describe('textbook examples (Herlihy & Wing; Lamport\'s regular vs atomic registers)', function () {
    // A register that starts at 0 (here: written first), written 1 by A while B and C read.
    const base = (): History => {
      const h = new History();
      h.put(0, 'r', '0', 0, 1);
      h.put(1, 'r', '1', 10, 50); // A: write(1), long
      return h;
    };

    it('new-old inversion by one reader (allowed for a regular register, not a linearizable one)', function () {
      const h = base();
      h.get(2, 'r', '1', 15, 20);
      const inverted = h.get(2, 'r', '0', 25, 30);
      const explanation = expectViolation(h.check(), 'r', inverted.id);
      // Not a stale read (the write of 1 is still in flight): the search finds it.
      expect(explanation).to.contain('#2 (client 2) get → "1" [15 ms, 20 ms] must take effect by 20 ms, but it needs the key to hold "1"');
      expect(explanation).to.contain('#1 (client 1) put "1" [10 ms, 50 ms]: it would overwrite "0", which #3 (client 2) get → "0" [25 ms, 30 ms] still has to observe');
    });

    it('new-old inversion across readers: C reads 0 after B\'s read of 1 completed', function () {
      const h = base();
      h.get(2, 'r', '1', 15, 20);
      const inverted = h.get(3, 'r', '0', 21, 30);
      expectViolation(h.check(), 'r', inverted.id);
    });

    it('overlapping reads of the old and the new value during the write are linearizable', function () {
      const h = base();
      h.get(2, 'r', '0', 12, 30);
      h.get(3, 'r', '1', 14, 25);
      h.get(2, 'r', '1', 51, 52);
      expectLinearizable(h.check());
    });

    it('Herlihy & Wing, figure 1 adapted: a value observed earlier than its writer began is impossible; writes in flight may order either way', function () {
      // H1 (linearizable): A writes x, B writes y concurrently; B then reads x:
      // y must be linearized before x.
      const h1 = new History();
      h1.put(1, 'q', 'x', 0, 10);
      h1.put(2, 'q', 'y', 1, 11);
      h1.get(2, 'q', 'x', 12, 13);
      expectLinearizable(h1.check());
      // H2 (not): x's write completed before y's began, and after y's write
      // completed B reads x.
      const h2 = new History();
      h2.put(1, 'q', 'x', 0, 5);
      h2.put(2, 'q', 'y', 6, 11);
      const read = h2.get(2, 'q', 'x', 12, 13);
      expectViolation(h2.check(), 'q', read.id);
    });
  });

  describe('results and inputs', function () {
    it('a search that runs out of steps is unknown, with the key and the budget; a violation elsewhere still wins', function () {
      const history = simulate(7, { clients: 10, keys: 1, operations: 300 });
      const budget = checkHistory(history, { maxSteps: 50 });
      if (budget.linearizable !== 'unknown') throw new Error(JSON.stringify(budget));
      expect(budget.key).to.equal('k0');
      expect(budget.reason).to.match(/^key "k0": search step budget of 50 exhausted \(\d+ operations, \d+ states cached\)/);
      expect(checkHistory(history).linearizable).to.equal(true);
      const h = new History();
      h.put(1, 'zz', 'a', 0, 1);
      h.put(1, 'zz', 'b', 2, 3);
      h.get(2, 'zz', 'a', 4, 5);
      const both = checkHistory([...history, ...h.operations.map((operation) => ({ ...operation, id: operation.id + 100_000 }))], { maxSteps: 50 });
      expect(both.linearizable).to.equal(false);
      expect(both.linearizable === false && both.key).to.equal('zz');
    });

    it('thirty writes lost in a master kill (never answered, never read) do not make a later violation expensive', function () {
      // Each could be linearized anywhere after its call; trying them all
      // costs 2^30. Only ever needed right before a failed cas expecting the
      // value they overwrite, they are not tried at all here.
      const h = new History();
      for (let client = 0; client < 30; client += 1) h.putUnknown(client, 'x', `lost-${client}`, 100 + client);
      let t = 200;
      for (let round = 0; round < 20; round += 1, t += 10) {
        h.put(100, 'x', `v${round}`, t, t + 1);
        h.cas(100, 'x', 'zz', `q${round}`, false, t + 4, t + 5);
      }
      const one = h.put(101, 'x', '1', t, t + 100);
      const two = h.put(102, 'x', '2', t, t + 100);
      h.get(103, 'x', '1', t + 10, t + 20);
      h.get(103, 'x', '2', t + 30, t + 40);
      h.get(104, 'x', '2', t + 10, t + 20);
      h.get(104, 'x', '1', t + 30, t + 40);
      expectViolation(h.check(10_000), 'x', one.id, two.id);
    });

    it('a pathological history (twenty writes in flight at once, then contradictory reads) ends unknown, not hanging', function () {
      const h = new History();
      for (let client = 0; client < 20; client += 1) h.put(client, 'x', `v${client}`, 0, 100);
      h.get(100, 'x', 'v0', 50, 60);
      h.get(100, 'x', 'v1', 70, 80);
      h.get(101, 'x', 'v1', 50, 60);
      h.get(101, 'x', 'v0', 70, 80);
      const result = h.check(100_000);
      expect(result.linearizable).to.equal('unknown');
      expect(result.linearizable === 'unknown' && result.reason).to.match(/^key "x": search step budget of 100000 exhausted \(24 operations, \d+ states cached\)/);
    });

    it('refuses histories that cannot have been recorded', function () {
      const h = new History();
      h.put(1, 'x', 'a', 5, 4);
      expect(() => h.check()).to.throw(HistoryError, 'operation #0 (put on "x"): completed at 4 ms, before it was invoked at 5 ms');
      const noTime: Operation = { id: 1, client: 1, key: 'x', kind: 'get', invokeMs: 0, completeMs: undefined, result: { ok: true, value: 'a' } };
      expect(() => checkHistory([noTime])).to.throw(HistoryError, 'has a result but no completeMs');
      const twice = new History();
      twice.put(1, 'x', 'a', 0, 1);
      expect(() => checkHistory([...twice.operations, ...twice.operations])).to.throw(HistoryError, 'operation id 0 appears twice');
      expect(() => checkHistory([], { maxSteps: 0 })).to.throw(RangeError);
    });

    it('an empty history, or one of only failed operations, is linearizable over no keys', function () {
      expectLinearizable(checkHistory([]), 0);
      const h = new History();
      h.putFailed(1, 'x', 'a', 0, 1);
      expectLinearizable(h.check(), 0);
    });

    it('describes operations in one line', function () {
      const h = new History();
      expect(describeOperation(h.get(3, 'x', 'b', 110, 120))).to.equal('#0 (client 3) get → "b" [110 ms, 120 ms]');
      expect(describeOperation(h.cas(1, 'x', null, 'a', false, 1, 2))).to.equal('#1 (client 1) cas absent → "a" failed [1 ms, 2 ms]');
      expect(describeOperation(h.putUnknown(2, 'x', 'v', 5, 9))).to.equal('#2 (client 2) put "v" [5 ms, ? (gave up at 9 ms)]');
      expect(describeOperation(h.casUnknown(2, 'x', 'a', 'b', 5))).to.equal('#3 (client 2) cas "a" → "b" outcome unknown [5 ms, ?]');
    });
  });

  describe('histories recorded from a simulated linearizable register', function () {
    it('are linearizable; with one read corrupted they are not, and the explanation names it (200 seeds)', function () {
      const refuted = { stale: 0, inversion: 0, bySearch: 0 };
      for (let seed = 1; seed <= 200; seed += 1) {
        const random = mulberry32(seed);
        const options = { clients: 2 + Math.floor(random() * 9), keys: 1 + Math.floor(random() * 3), operations: 20 + Math.floor(random() * 180) };
        const history = simulate(seed, options);
        const verdict = checkHistory(history);
        expect(verdict.linearizable, `seed ${seed}: ${JSON.stringify(verdict)}`).to.equal(true);
        for (const kind of ['stale', 'inversion'] as const) {
          const corruption = kind === 'stale' ? corruptIntoStaleRead(history, random) : corruptIntoInversion(history, random);
          if (corruption === undefined) continue;
          const broken = checkHistory(corruption.history);
          const { read } = corruption;
          if (broken.linearizable !== false) throw new Error(`seed ${seed}: ${kind} #${read.id} went unnoticed: ${JSON.stringify(broken)}`);
          expect(broken.key, `seed ${seed}`).to.equal(read.key);
          expect(broken.operations, `seed ${seed} ${kind}: ${broken.explanation}`).to.include(read.id);
          expect(broken.explanation).to.contain(`#${read.id} (client ${read.client}) get → `);
          refuted[kind] += 1;
          if (broken.explanation.includes('cannot be extended')) refuted.bySearch += 1;
        }
      }
      console.log(`      (refuted ${refuted.stale} stale reads and ${refuted.inversion} inversions, ${refuted.bySearch} of them by the search rather than a shortcut)`);
      expect(refuted.stale).to.be.greaterThan(150);
      expect(refuted.inversion).to.be.greaterThan(150);
      expect(refuted.bySearch).to.be.greaterThan(50);
    });

    it('agrees with a brute-force search on 3,000 small random histories (repeated values, any outcomes)', function () {
      const verdicts = { true: 0, false: 0 };
      for (let seed = 1; seed <= 3000; seed += 1) {
        const history = randomSmallHistory(mulberry32(seed * 31 + 7));
        const expected = bruteForceLinearizable(history);
        const verdict = checkHistory(history);
        expect(verdict.linearizable, `seed ${seed}: ${JSON.stringify(history)} ${JSON.stringify(verdict)}`).to.equal(expected);
        verdicts[expected ? 'true' : 'false'] += 1;
      }
      console.log(`      (${verdicts.true} linearizable, ${verdicts.false} not)`);
      expect(verdicts.true, JSON.stringify(verdicts)).to.be.greaterThan(600);
      expect(verdicts.false, JSON.stringify(verdicts)).to.be.greaterThan(600);
    });

    it('performance: 5,000 operations, 10 clients, 3 keys (timing printed, not asserted)', function () {
      const history = simulate(42, { clients: 10, keys: 3, operations: 5000 });
      const started = performance.now();
      const verdict = checkHistory(history);
      const elapsedMs = performance.now() - started;
      expect(verdict).to.deep.equal({ linearizable: true, keys: 3 });
      const corruption = corruptIntoStaleRead(history, mulberry32(42), 0.9);
      if (corruption === undefined) throw new Error('nothing to corrupt');
      const brokenStarted = performance.now();
      const broken = checkHistory(corruption.history);
      const brokenMs = performance.now() - brokenStarted;
      expect(broken.linearizable).to.equal(false);
      const indeterminate = history.filter((operation) => operation.result === undefined).length;
      console.log(
        `      (5,000 operations, 10 clients, 3 keys, ${indeterminate} indeterminate: linearizable in ${elapsedMs.toFixed(1)} ms; ` +
          `with one stale read near the end: refuted in ${brokenMs.toFixed(1)} ms)`,
      );
    });
  });
});

// ---------------------------------------------------------------------------
// A simulated register: clients issue operations one at a time; each one that
// takes effect does so at a random instant (its linearization point) inside
// its interval, or, if indeterminate, at any instant after its call, or never.

interface SimulationOptions {
  readonly clients: number;
  readonly keys: number;
  readonly operations: number;
  /** Share of operations whose client never hears back. */
  readonly indeterminateRate?: number;
  /** Share refused for sure (no effect). */
  readonly failedRate?: number;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Planned {
  readonly id: number;
  readonly client: number;
  readonly key: string;
  readonly kind: 'put' | 'get' | 'cas';
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly fate: 'completed' | 'indeterminate' | 'failed';
  /** When it takes effect; Infinity: never. */
  readonly pointMs: number;
}

function simulate(seed: number, options: SimulationOptions): Operation[] {
  const random = mulberry32(seed * 7919 + 1);
  const pick = (n: number): number => Math.floor(random() * n);
  const freeAtMs = new Array<number>(options.clients).fill(0);
  const planned: Planned[] = [];
  for (let id = 0; id < options.operations; id += 1) {
    const client = pick(options.clients);
    const invokeMs = (freeAtMs[client] ?? 0) + pick(4);
    const durationMs = random() < 0.05 ? 20 + pick(40) : 1 + pick(8);
    const completeMs = invokeMs + durationMs;
    freeAtMs[client] = completeMs;
    const draw = random();
    const fate = draw < (options.failedRate ?? 0.02) ? 'failed' : draw < (options.failedRate ?? 0.02) + (options.indeterminateRate ?? 0.03) ? 'indeterminate' : 'completed';
    const kindDraw = random();
    const kind = kindDraw < 0.4 ? 'get' : kindDraw < 0.7 ? 'put' : 'cas';
    let pointMs = invokeMs + random() * durationMs;
    if (fate === 'failed') pointMs = Infinity;
    if (fate === 'indeterminate') pointMs = random() < 0.5 ? Infinity : invokeMs + random() * durationMs * 4;
    planned.push({ id, client, key: `k${pick(options.keys)}`, kind, invokeMs, completeMs, fate, pointMs });
  }
  return recordOutcomes(planned, random);
}

/** Applies the operations in the order of their linearization points and writes down what each client saw. */
function recordOutcomes(planned: readonly Planned[], random: () => number): Operation[] {
  const registers = new Map<string, string | null>();
  const written = new Map<string, string[]>();
  const outcomes = new Map<number, Operation>();
  const inOrder = [...planned].sort((a, b) => a.pointMs - b.pointMs || a.id - b.id);
  for (const op of inOrder) {
    const current = registers.get(op.key) ?? null;
    const history = written.get(op.key) ?? [];
    const value = `c${op.client}-${op.id}`;
    const common = { id: op.id, client: op.client, key: op.key, invokeMs: op.invokeMs, completeMs: op.fate === 'completed' || op.fate === 'failed' ? op.completeMs : random() < 0.5 ? op.completeMs : undefined };
    const applies = op.pointMs !== Infinity;
    const fate = op.fate === 'failed' ? ({ ok: false } as const) : undefined;
    if (op.kind === 'get') {
      const result = op.fate === 'completed' ? { ok: true as const, value: current } : fate;
      outcomes.set(op.id, { ...common, kind: 'get', ...(result === undefined ? {} : { result }) });
    } else if (op.kind === 'put') {
      if (applies) registers.set(op.key, value);
      outcomes.set(op.id, { ...common, kind: 'put', value, ...(op.fate === 'completed' ? { result: { ok: true } } : fate === undefined ? {} : { result: fate }) });
    } else {
      // The client guesses what the key holds: usually right (it read it), sometimes stale.
      const expected = random() < 0.6 || history.length === 0 ? current : random() < 0.2 ? null : (history[Math.floor(random() * history.length)] ?? null);
      const succeeded = applies && current === expected;
      if (succeeded) registers.set(op.key, value);
      const result = op.fate === 'completed' ? { ok: true as const, succeeded } : fate;
      outcomes.set(op.id, { ...common, kind: 'cas', expected, value, ...(result === undefined ? {} : { result }) });
    }
    if (applies && registers.get(op.key) === value) written.set(op.key, [...history, value]);
  }
  return planned.map((op) => outcomes.get(op.id)).filter((operation): operation is Operation => operation !== undefined);
}

/** The completed writes of a key (puts and successful cas operations): each surely took effect within its interval. */
function completedWrites(history: readonly Operation[], key: string): { value: string; invokeMs: number; completeMs: number }[] {
  const writes: { value: string; invokeMs: number; completeMs: number }[] = [];
  for (const operation of history) {
    if (operation.key !== key || operation.result?.ok !== true || operation.completeMs === undefined) continue;
    if (operation.kind === 'put' || (operation.kind === 'cas' && operation.result.succeeded)) {
      writes.push({ value: operation.value, invokeMs: operation.invokeMs, completeMs: operation.completeMs });
    }
  }
  return writes;
}

function completedReads(history: readonly Operation[]): GetOperation[] {
  return history.filter((operation): operation is GetOperation => operation.kind === 'get' && operation.result?.ok === true);
}

function withRead(history: readonly Operation[], read: GetOperation, value: string | null): { history: Operation[]; read: GetOperation } {
  const corrupted: GetOperation = { ...read, result: { ok: true, value } };
  return { history: history.map((operation) => (operation === read ? corrupted : operation)), read: corrupted };
}

/**
 * Turns one completed read into a stale one: it returns a value (or absence)
 * surely overwritten before the read began — written by a completed write W,
 * followed by another completed write that began after W completed and
 * completed before the read began. Values are unique, so no linearization
 * can make the read fit. `after` picks reads late in the history (0..1).
 */
function corruptIntoStaleRead(history: readonly Operation[], random: () => number, after = 0): { history: Operation[]; read: GetOperation } | undefined {
  const reads = completedReads(history.slice(Math.floor(after * history.length)));
  for (let attempt = 0; attempt < 20 && reads.length > 0; attempt += 1) {
    const read = reads[Math.floor(random() * reads.length)];
    if (read === undefined || read.result?.ok !== true) continue;
    const original = read.result.value;
    const writes = completedWrites(history, read.key);
    const stale: (string | null)[] = [];
    if (writes.some((write) => write.completeMs < read.invokeMs)) stale.push(null);
    for (const write of writes) {
      if (writes.some((later) => later.value !== write.value && write.completeMs < later.invokeMs && later.completeMs < read.invokeMs)) stale.push(write.value);
    }
    const choices = stale.filter((candidate) => candidate !== original);
    const value = choices[Math.floor(random() * choices.length)];
    if (value !== undefined) return withRead(history, read, value);
  }
  return undefined;
}

/**
 * A new-old inversion: a read R2 returns the value just before the one an
 * earlier read R1 (completed before R2 began) returned. Every write of the
 * older value completed before the write of R1's value began, so after R1 the
 * older value can never come back. The write R1 saw may still be in flight
 * when R2 begins, so a stale-read shortcut does not always see it.
 */
function corruptIntoInversion(history: readonly Operation[], random: () => number): { history: Operation[]; read: GetOperation } | undefined {
  const reads = completedReads(history);
  let fallback: { history: Operation[]; read: GetOperation } | undefined;
  for (let attempt = 0; attempt < 50 && reads.length > 0; attempt += 1) {
    const second = reads[Math.floor(random() * reads.length)];
    if (second === undefined || second.result?.ok !== true) continue;
    const original = second.result.value;
    let first: GetOperation | undefined;
    for (const read of reads) {
      if (read.key !== second.key || read.result?.ok !== true || read.result.value === null || read.completeMs === undefined) continue;
      if (read.completeMs < second.invokeMs && (first?.completeMs ?? -Infinity) < read.completeMs) first = read;
    }
    const newer = first?.result?.ok === true ? first.result.value : null;
    const newerWrite = history.find((operation) => operation.key === second.key && operation.kind !== 'get' && operation.value === newer);
    if (newerWrite === undefined) continue;
    const writes = completedWrites(history, second.key);
    const older = writes.filter((write) => write.completeMs < newerWrite.invokeMs);
    const latest = older.reduce<(typeof older)[number] | undefined>((best, write) => (best === undefined || write.completeMs > best.completeMs ? write : best), undefined);
    const value = latest === undefined ? null : latest.value;
    if (value === original) continue;
    // Prefer those the stale-read shortcut cannot see: no completed write of
    // another value began after the older value's write completed and
    // completed before R2 began. The search has to find these.
    const shortcutSees = writes.some((write) => write.value !== value && write.completeMs < second.invokeMs && write.invokeMs > (latest?.completeMs ?? -Infinity));
    if (!shortcutSees) return withRead(history, second, value);
    fallback ??= withRead(history, second, value);
  }
  return fallback;
}

// ---------------------------------------------------------------------------
// A reference: every order of the operations of one key, tried in full.

/** A few operations on one key from 2–3 clients, values from a small set, outcomes drawn at random. */
function randomSmallHistory(random: () => number): Operation[] {
  const values = ['a', 'b', 'c'];
  const pickValue = (): string => values[Math.floor(random() * values.length)] ?? 'a';
  const pickRead = (): string | null => (random() < 0.25 ? null : pickValue());
  const count = 2 + Math.floor(random() * 7);
  const freeAtMs = [0, 0, 0];
  const history: Operation[] = [];
  for (let id = 0; id < count; id += 1) {
    const client = Math.floor(random() * 3);
    const invokeMs = (freeAtMs[client] ?? 0) + Math.floor(random() * 3);
    const completeMs = invokeMs + Math.floor(random() * 6);
    freeAtMs[client] = completeMs + 1;
    const fate = random();
    const indeterminate = fate < 0.2;
    const failed = fate >= 0.2 && fate < 0.25;
    const common = { id, client, key: 'k', invokeMs, completeMs: indeterminate ? undefined : completeMs };
    const kind = random();
    if (kind < 0.35) {
      history.push({ ...common, kind: 'get', ...(indeterminate ? {} : { result: failed ? { ok: false } : { ok: true, value: pickRead() } }) });
    } else if (kind < 0.65) {
      history.push({ ...common, kind: 'put', value: random() < 0.3 ? `u${id}` : pickValue(), ...(indeterminate ? {} : { result: failed ? { ok: false } : { ok: true } }) });
    } else {
      const result = failed ? { ok: false as const } : { ok: true as const, succeeded: random() < 0.5 };
      history.push({ ...common, kind: 'cas', expected: pickRead(), value: random() < 0.3 ? `u${id}` : pickValue(), ...(indeterminate ? {} : { result }) });
    }
  }
  return history;
}

/** Tries every order (indeterminate operations may be left out: the same as last). */
function bruteForceLinearizable(history: readonly Operation[]): boolean {
  const ops = history.filter((operation) => operation.result?.ok !== false && !(operation.kind === 'get' && operation.result === undefined));
  const returnMs = (operation: Operation): number => (operation.result?.ok === true && operation.completeMs !== undefined ? operation.completeMs : Infinity);
  const step = (operation: Operation, state: string | null): string | null | undefined => {
    const result = operation.result;
    if (operation.kind === 'put') return operation.value;
    if (operation.kind === 'get') return result?.ok === true && 'value' in result && result.value === state ? state : undefined;
    const matches = state === operation.expected;
    if (result === undefined) return matches ? operation.value : state;
    const succeeded = result.ok === true && 'succeeded' in result && result.succeeded;
    if (succeeded !== matches) return undefined;
    return matches ? operation.value : state;
  };
  const placed = new Set<Operation>();
  const search = (state: string | null): boolean => {
    if (ops.every((operation) => placed.has(operation) || returnMs(operation) === Infinity)) return true;
    for (const operation of ops) {
      if (placed.has(operation)) continue;
      // Not before an unplaced operation that returned before this one was called.
      if (ops.some((other) => other !== operation && !placed.has(other) && returnMs(other) < operation.invokeMs)) continue;
      const next = step(operation, state);
      if (next === undefined) continue;
      placed.add(operation);
      const found = search(next);
      placed.delete(operation);
      if (found) return true;
    }
    return false;
  };
  return search(null);
}
