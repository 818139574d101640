// Safety checkers of the simulator, fed by the simulated world after every
// step. Each check is one of the Raft paper's properties (Figure 3) or a
// client-visible guarantee built on them.

import { describeEntry, type Entry, type LogIndex, type NodeId, type Term } from '../../raft/core/index.js';

export type CheckName =
  | 'election-safety' // at most one leader per term
  | 'log-matching' // same index and term => same entry and same history
  | 'leader-completeness' // a new leader holds every committed entry
  | 'state-machine-safety' // no two members apply different entries at an index
  | 'durability' // no acknowledged proposal is lost
  | 'linearizable-read' // a ReadIndex covers every write acknowledged before the read began
  | 'liveness' // after healing, everything pending commits within the budget
  | 'core-assertion' // the core detected a broken invariant itself and stopped
  | 'lazy-tick'; // a tick the core said was not yet due did something (drivers skip such ticks)

export interface Violation {
  readonly check: CheckName;
  readonly time: number;
  readonly message: string;
}

/** The application's fingerprint of an entry: what "the same entry" means. */
export function fingerprint(entry: Entry): string {
  return describeEntry(entry);
}

/** One step of the state hash chain: state after applying `entry` to a state hashed `previous`. */
export function chainHash(previous: number, entry: Entry): number {
  let hash = previous ^ 0x811c9dc5;
  const text = fingerprint(entry);
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

export class SafetyChecker {
  readonly violations: Violation[] = [];
  private readonly leaderOfTerm = new Map<Term, NodeId>();
  /** "index/term" -> fingerprint and the term of the entry before it. */
  private readonly logEntries = new Map<string, { fingerprint: string; previousTerm: Term | undefined }>();
  /** Per applied index: the entry's fingerprint and the state hash after applying it. */
  private readonly applied = new Map<LogIndex, { fingerprint: string; term: Term; hash: number }>();
  private highestApplied: LogIndex = 0;
  /** Proposals acknowledged to clients: payload -> index. */
  readonly acknowledged = new Map<string, LogIndex>();
  private highestAcknowledged: LogIndex = 0;
  private readonly reads = new Map<string, { mustCover: LogIndex; node: NodeId }>();

  constructor(private readonly now: () => number) {}

  private fail(check: CheckName, message: string): void {
    this.violations.push({ check, time: this.now(), message });
  }

  /** Member `id` acted on a tick although ticksUntilTimeout() had said `due` ticks (> 1) were left. */
  onEarlyTickActed(id: NodeId, due: number, role: string): void {
    this.fail('lazy-tick', `member ${id} (${role}) acted on a tick although ticksUntilTimeout() said ${due} ticks were left`);
  }

  /** `id` became leader of `term`; `termAt` reads its log, `firstIndex` is its first log index. */
  onLeader(id: NodeId, term: Term, termAt: (index: LogIndex) => Term | undefined, firstIndex: LogIndex, lastIndex: LogIndex): void {
    const previous = this.leaderOfTerm.get(term);
    if (previous !== undefined && previous !== id) {
      this.fail('election-safety', `members ${previous} and ${id} are both leaders of term ${term}`);
    }
    this.leaderOfTerm.set(term, id);
    for (let index = Math.max(1, firstIndex); index <= this.highestApplied; index++) {
      const committed = this.applied.get(index);
      if (committed === undefined) continue;
      const ours = index <= lastIndex ? termAt(index) : undefined;
      if (ours !== committed.term) {
        this.fail(
          'leader-completeness',
          `leader ${id} of term ${term} lacks committed entry ${committed.fingerprint} (it has term ${ours ?? 'none'} at ${index})`,
        );
        return;
      }
    }
  }

  /** `id` persisted `entries`; `previousTerm` is the term of the entry before the first (undefined if compacted). */
  onPersist(id: NodeId, entries: readonly Entry[], previousTerm: Term | undefined): void {
    let before = previousTerm;
    for (const entry of entries) {
      const key = `${entry.index}/${entry.term}`;
      const print = fingerprint(entry);
      const known = this.logEntries.get(key);
      if (known === undefined) {
        this.logEntries.set(key, { fingerprint: print, previousTerm: before });
      } else if (known.fingerprint !== print) {
        this.fail('log-matching', `member ${id} holds ${print} where another member holds ${known.fingerprint}`);
      } else if (before !== undefined && known.previousTerm !== undefined && known.previousTerm !== before) {
        this.fail(
          'log-matching',
          `member ${id} holds ${print} after an entry of term ${before}; another member has term ${known.previousTerm} there`,
        );
      } else if (known.previousTerm === undefined && before !== undefined) {
        this.logEntries.set(key, { fingerprint: print, previousTerm: before });
      }
      before = entry.term;
    }
  }

  /** `id` applied `entry`, reaching state hash `hash`. */
  onApply(id: NodeId, entry: Entry, hash: number): void {
    const known = this.applied.get(entry.index);
    const print = fingerprint(entry);
    if (known === undefined) {
      this.applied.set(entry.index, { fingerprint: print, term: entry.term, hash });
      this.highestApplied = Math.max(this.highestApplied, entry.index);
      return;
    }
    if (known.fingerprint !== print) {
      this.fail('state-machine-safety', `member ${id} applied ${print} at ${entry.index}; another member applied ${known.fingerprint}`);
    } else if (known.hash !== hash) {
      this.fail('state-machine-safety', `member ${id} reached another state than its peers after applying ${print}`);
    }
  }

  /** `id` installed a snapshot whose state hash at `index` is `hash`. */
  onRestore(id: NodeId, index: LogIndex, hash: number): void {
    const known = this.applied.get(index);
    if (known !== undefined && known.hash !== hash) {
      this.fail('state-machine-safety', `member ${id} installed a snapshot at ${index} whose state differs from what its peers applied`);
    }
  }

  /** A client learned that `payload` committed at `index`. */
  onAcknowledge(payload: string, index: LogIndex): void {
    if (this.acknowledged.has(payload)) return;
    this.acknowledged.set(payload, index);
    this.highestAcknowledged = Math.max(this.highestAcknowledged, index);
  }

  onReadInvoke(context: string, node: NodeId): void {
    this.reads.set(context, { mustCover: this.highestAcknowledged, node });
  }

  /** The ReadIndex `context` came back with `index`; returns whether the read was known. */
  onReadResult(context: string, index: LogIndex): boolean {
    const read = this.reads.get(context);
    if (read === undefined) return false;
    this.reads.delete(context);
    if (index < read.mustCover) {
      this.fail('linearizable-read', `read ${context} on member ${read.node} got index ${index}, but ${read.mustCover} was acknowledged before it began`);
    }
    return true;
  }

  /** At the end: every acknowledged proposal is applied at its index by every member in `histories`. */
  checkDurability(histories: ReadonlyMap<NodeId, { appliedIndex: LogIndex }>): void {
    for (const [payload, index] of this.acknowledged) {
      const committed = this.applied.get(index);
      if (committed === undefined || !committed.fingerprint.endsWith(JSON.stringify(payload))) {
        this.fail('durability', `acknowledged proposal ${payload} at ${index} is not what was applied there`);
        continue;
      }
      for (const [id, history] of histories) {
        if (history.appliedIndex < index) {
          this.fail('durability', `member ${id} ends at applied index ${history.appliedIndex}, without acknowledged ${payload} at ${index}`);
        }
      }
    }
  }

  failLiveness(message: string): void {
    this.fail('liveness', message);
  }

  /** A member was handed entries to apply out of order. */
  failApplyOrder(message: string): void {
    this.fail('state-machine-safety', message);
  }

  failAssertion(message: string): void {
    this.fail('core-assertion', message);
  }
}
