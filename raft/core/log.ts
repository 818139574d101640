// The in-memory Raft log of one member: a compaction offset, the entries after
// it, the latest application snapshot, and the bookkeeping of what has been
// handed out for persistence and application and what is known durable.
//
// Index layout:   offset | entries[0] ... entries[n-1]
//                 (offsetIndex, offsetTerm) is the last compacted entry; the
//                 snapshot, when present, is at an index >= offsetIndex.

import { assert } from './assert.js';
import type { Entry, LogIndex, Snapshot, Term } from './types.js';
import { payloadBytes } from './types.js';

export class RaftLog {
  private offsetIndex: LogIndex = 0;
  private offsetTerm: Term = 0;
  private entries: Entry[] = [];
  private snapshotValue: Snapshot | undefined = undefined;

  /** Highest index known committed. */
  commit: LogIndex = 0;
  /** Highest index the application has acknowledged applying (advance). */
  applied: LogIndex = 0;
  /** Highest index handed out for application (>= applied). */
  applying: LogIndex = 0;
  /** Highest index known to be durable on this member's disk. */
  stableLast: LogIndex = 0;
  /** First index not yet handed out for persistence. */
  private unstableFrom: LogIndex = 1;
  /** A snapshot received from the leader that is not yet handed out for persistence. */
  pendingSnapshot: Snapshot | undefined = undefined;

  /** A log rebuilt from storage; `durable` is false for bootstrap entries not yet written. */
  static restore(
    snapshot: Snapshot | undefined,
    entries: readonly Entry[],
    commit: LogIndex,
    applied: LogIndex,
    durable = true,
  ): RaftLog {
    const log = new RaftLog();
    if (snapshot !== undefined) {
      log.snapshotValue = snapshot;
      log.offsetIndex = snapshot.meta.index;
      log.offsetTerm = snapshot.meta.term;
    }
    for (const entry of entries) {
      if (entry.index <= log.offsetIndex) continue;
      assert(entry.index === log.lastIndex() + 1, `restored log is not contiguous at index ${entry.index}`);
      log.entries.push(entry);
    }
    log.stableLast = durable ? log.lastIndex() : log.offsetIndex;
    log.unstableFrom = durable ? log.lastIndex() + 1 : log.firstIndex();
    log.commit = Math.max(commit, log.offsetIndex);
    assert(log.commit <= log.lastIndex(), `restored commit ${log.commit} is beyond the last index ${log.lastIndex()}`);
    log.applied = Math.min(Math.max(applied, log.offsetIndex), log.commit);
    log.applying = log.applied;
    return log;
  }

  firstIndex(): LogIndex {
    return this.offsetIndex + 1;
  }

  lastIndex(): LogIndex {
    return this.offsetIndex + this.entries.length;
  }

  lastTerm(): Term {
    return this.entries.length === 0 ? this.offsetTerm : this.entries[this.entries.length - 1]!.term;
  }

  snapshot(): Snapshot | undefined {
    return this.snapshotValue;
  }

  /** The term at `index`, or undefined when it is compacted away or past the end. */
  term(index: LogIndex): Term | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1]!.term;
  }

  entry(index: LogIndex): Entry | undefined {
    if (index <= this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1];
  }

  matchTerm(index: LogIndex, term: Term): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [low, high), stopping once `maxBytes` of payload is reached
   * (at least one entry is returned when the range is not empty).
   */
  slice(low: LogIndex, high: LogIndex, maxBytes: number): Entry[] {
    assert(low > this.offsetIndex, `slice from ${low} reaches into the compacted log (offset ${this.offsetIndex})`);
    const end = Math.min(high, this.lastIndex() + 1);
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = low; index < end; index++) {
      const entry = this.entries[index - this.offsetIndex - 1]!;
      bytes += payloadBytes(entry);
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  /** Append entries from a leader's message, replacing a conflicting suffix. */
  appendFromLeader(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const conflict = this.findConflict(entries);
    if (conflict === 0) return;
    const first = entries[0]!.index;
    this.append(entries.slice(conflict - first));
  }

  /** Append entries starting at entries[0].index, truncating anything from there on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(first > this.commit, `truncating committed entries at index ${first} (commit ${this.commit})`);
    assert(first <= this.lastIndex() + 1, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    this.entries.length = first - this.offsetIndex - 1;
    for (const entry of entries) this.entries.push(entry);
    this.unstableFrom = Math.min(this.unstableFrom, first);
    this.stableLast = Math.min(this.stableLast, first - 1);
  }

  /** The index of the first entry that is new or conflicts with ours, or 0 when all are present. */
  private findConflict(entries: readonly Entry[]): LogIndex {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The greatest index j <= index whose term is <= term (or the offset): where a
   * leader should probe next after a rejection (fast backtracking, Raft §5.3).
   */
  findConflictByTerm(index: LogIndex, term: Term): { index: LogIndex; term: Term } {
    // Below our compaction point nothing can be compared: a leader then sends its snapshot.
    if (index < this.offsetIndex) return { index, term: 0 };
    let probe = Math.min(index, this.lastIndex());
    while (probe > this.offsetIndex) {
      const probeTerm = this.term(probe)!;
      if (probeTerm <= term) return { index: probe, term: probeTerm };
      probe--;
    }
    return { index: this.offsetIndex, term: this.offsetTerm };
  }

  commitTo(index: LogIndex): void {
    if (index <= this.commit) return;
    assert(index <= this.lastIndex(), `commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.commit = index;
  }

  /** Replace the whole log with a snapshot received from the leader. */
  restoreSnapshot(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.commit, 'restoring a snapshot behind the commit index');
    this.entries = [];
    this.offsetIndex = snapshot.meta.index;
    this.offsetTerm = snapshot.meta.term;
    this.snapshotValue = snapshot;
    this.pendingSnapshot = snapshot;
    this.commit = snapshot.meta.index;
    this.applying = snapshot.meta.index;
    this.unstableFrom = snapshot.meta.index + 1;
    // Nothing after the old durable state is known to match the new log until
    // the snapshot itself is persisted (see acknowledgePersisted).
    this.stableLast = Math.min(this.stableLast, 0);
  }

  /**
   * The application snapshotted its state at `index` (<= applied): keep the
   * snapshot, and drop the log up to `index - keepEntries` so slow followers
   * can still catch up from entries instead of a snapshot.
   */
  compact(snapshot: Snapshot, keepEntries: number): void {
    const index = snapshot.meta.index;
    assert(index <= this.applied, `snapshot index ${index} is beyond the applied index ${this.applied}`);
    assert(index <= this.stableLast, `snapshot index ${index} is beyond the durable index ${this.stableLast}`);
    if (this.snapshotValue === undefined || index > this.snapshotValue.meta.index) this.snapshotValue = snapshot;
    const cut = Math.max(this.offsetIndex, index - keepEntries);
    if (cut <= this.offsetIndex) return;
    const cutTerm = this.term(cut)!;
    this.entries = this.entries.slice(cut - this.offsetIndex);
    this.offsetIndex = cut;
    this.offsetTerm = cutTerm;
  }

  /** Entries to hand out for persistence; marks them handed out. */
  takeUnstable(): Entry[] {
    const from = Math.max(this.unstableFrom, this.firstIndex());
    if (from > this.lastIndex()) return [];
    const result = this.entries.slice(from - this.offsetIndex - 1);
    this.unstableFrom = this.lastIndex() + 1;
    return result;
  }

  hasUnstable(): boolean {
    return Math.max(this.unstableFrom, this.firstIndex()) <= this.lastIndex();
  }

  /** The driver persisted entries up to `last` (if the log still holds that entry) and maybe a snapshot. */
  acknowledgePersisted(last: Entry | undefined, snapshot: Snapshot | undefined): void {
    if (snapshot !== undefined && this.matchTerm(snapshot.meta.index, snapshot.meta.term)) {
      this.stableLast = Math.max(this.stableLast, snapshot.meta.index);
    }
    // If the log was truncated since the Ready was handed out, the entry is gone
    // (or has another term) and the replacement will come in the next Ready.
    if (last !== undefined && this.matchTerm(last.index, last.term)) {
      this.stableLast = Math.max(this.stableLast, last.index);
    }
  }

  /** Committed entries not yet handed out, up to `maxBytes` (at least one); marks them handed out. */
  takeCommitted(maxBytes: number): Entry[] {
    const high = Math.min(this.commit, this.lastIndex());
    if (this.applying >= high) return [];
    const result = this.slice(this.applying + 1, high + 1, maxBytes);
    this.applying = result[result.length - 1]!.index;
    return result;
  }

  hasCommittedToApply(): boolean {
    return this.applying < Math.min(this.commit, this.lastIndex());
  }
}
