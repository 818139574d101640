import { expect } from 'chai';
import { Raft, type LogIndex, type NodeId, type Term } from '../../raft/core/index.js';
import { chainHash, SafetyChecker } from './checker.js';
import { simulate, type RaftFactory } from './simulator.js';

/** Seeds run by `npm test`; `npm run sim -- --seeds N` runs more. */
const TEST_SEEDS = 300;

describe('simulator', function () {
  this.timeout(300_000);

  it(`finds no violation in ${TEST_SEEDS} seeds of 3- and 5-member clusters under faults`, () => {
    const failures: string[] = [];
    const voters = new Set<number>();
    let committed = 0;
    for (let seed = 1; seed <= TEST_SEEDS; seed++) {
      const result = simulate({ seed });
      voters.add(result.voters);
      committed += result.proposalsCommitted;
      for (const violation of result.violations) {
        failures.push(`seed ${seed} [${violation.check}] ${violation.message} — replay: npm run sim -- --seed ${seed}`);
      }
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
    expect([...voters].sort()).to.deep.equal([3, 5]);
    expect(committed).to.be.greaterThan(TEST_SEEDS * 50);
  });

  it('replays a seed byte for byte', () => {
    const traceOf = (seed: number): string => {
      const lines: string[] = [];
      simulate({ seed, trace: (line) => lines.push(line) });
      return lines.join('\n');
    };
    const first = traceOf(42);
    expect(first.split('\n').length).to.be.greaterThan(1000);
    expect(traceOf(42)).to.equal(first);
    expect(traceOf(43)).to.not.equal(first);
  });

  describe('catches bugs injected into the core', () => {
    /** Runs seeds until the first violation; returns the checks that fired. */
    function firstViolation(factory: RaftFactory, maxSeeds: number): { seed: number; check: string } | undefined {
      for (let seed = 1; seed <= maxSeeds; seed++) {
        const result = simulate({ seed, factory, stopAtFirstViolation: true });
        const violation = result.violations[0];
        if (violation !== undefined) return { seed, check: violation.check };
      }
      return undefined;
    }

    it('granting two votes in one term breaks election safety', () => {
      class GrantsEveryVote extends Raft {
        protected override canGrantVote(): boolean {
          return true;
        }
      }
      const found = firstViolation((config, initial) => new GrantsEveryVote(config, initial), 100);
      expect(found, 'no violation found').to.not.equal(undefined);
      expect(found!.check).to.be.oneOf(['election-safety', 'core-assertion']);
    });

    it('ignoring the election restriction breaks leader completeness', () => {
      class IgnoresLogAge extends Raft {
        protected override isLogUpToDate(): boolean {
          return true;
        }
      }
      const found = firstViolation((config, initial) => new IgnoresLogAge(config, initial), 100);
      expect(found, 'no violation found').to.not.equal(undefined);
      expect(found!.check).to.be.oneOf(['leader-completeness', 'state-machine-safety', 'log-matching', 'core-assertion']);
    });
  });
});

describe('safety checker', () => {
  const entry = (term: Term, index: LogIndex, text: string) => ({ kind: 'normal' as const, term, index, data: new TextEncoder().encode(text) });
  const now = (): number => 0;

  it('flags two leaders in one term', () => {
    const checker = new SafetyChecker(now);
    checker.onLeader(1, 5, () => undefined, 1, 0);
    checker.onLeader(2, 5, () => undefined, 1, 0);
    expect(checker.violations.map((v) => v.check)).to.deep.equal(['election-safety']);
  });

  it('flags different entries persisted under the same index and term', () => {
    const checker = new SafetyChecker(now);
    checker.onPersist(1, [entry(2, 7, 'a')], 2);
    checker.onPersist(2, [entry(2, 7, 'b')], 2);
    expect(checker.violations.map((v) => v.check)).to.deep.equal(['log-matching']);
  });

  it('flags equal entries with different histories', () => {
    const checker = new SafetyChecker(now);
    checker.onPersist(1, [entry(3, 7, 'a')], 2);
    checker.onPersist(2, [entry(3, 7, 'a')], 1);
    expect(checker.violations.map((v) => v.check)).to.deep.equal(['log-matching']);
  });

  it('flags two members applying different entries at one index', () => {
    const checker = new SafetyChecker(now);
    const a = entry(1, 1, 'a');
    const b = entry(2, 1, 'b');
    checker.onApply(1, a, chainHash(0, a));
    checker.onApply(2, b, chainHash(0, b));
    expect(checker.violations.map((v) => v.check)).to.deep.equal(['state-machine-safety']);
  });

  it('flags a leader missing a committed entry', () => {
    const checker = new SafetyChecker(now);
    const a = entry(2, 1, 'a');
    checker.onApply(1, a, chainHash(0, a));
    const termAt = (index: LogIndex): Term | undefined => (index === 1 ? 3 : undefined);
    checker.onLeader(3 as NodeId, 4, termAt, 1, 1);
    expect(checker.violations.map((v) => v.check)).to.deep.equal(['leader-completeness']);
  });

  it('flags a read that misses an acknowledged write and a lost acknowledged write', () => {
    const checker = new SafetyChecker(now);
    const a = entry(1, 4, 'p1');
    checker.onApply(1, a, 1);
    checker.onAcknowledge('p1', 4);
    checker.onReadInvoke('r1', 2);
    checker.onReadResult('r1', 3);
    checker.checkDurability(new Map([[2, { appliedIndex: 3 }]]));
    expect(checker.violations.map((v) => v.check)).to.deep.equal(['linearizable-read', 'durability']);
  });

  it('accepts a consistent history', () => {
    const checker = new SafetyChecker(now);
    const a = entry(1, 1, 'p1');
    checker.onLeader(1, 1, () => 1, 1, 1);
    checker.onPersist(1, [a], 0);
    checker.onPersist(2, [a], 0);
    checker.onApply(1, a, chainHash(0, a));
    checker.onApply(2, a, chainHash(0, a));
    checker.onAcknowledge('p1', 1);
    checker.onReadInvoke('r1', 2);
    checker.onReadResult('r1', 1);
    checker.checkDurability(new Map([[1, { appliedIndex: 1 }], [2, { appliedIndex: 1 }]]));
    expect(checker.violations).to.deep.equal([]);
  });
});
