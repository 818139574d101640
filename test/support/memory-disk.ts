// A member's disk in memory, for the simulator, the interaction scripts and
// unit tests: it persists a Ready the way real storage must (a snapshot
// replaces the whole log; entries replace everything from their first index
// on) and rebuilds the state a restarted member starts from.

import type { ConfState, Entry, HardState, InitialState, LogIndex, Ready, Snapshot, Term } from '../../raft/core/index.js';

export class MemoryDisk {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];

  persist(ready: Pick<Ready, 'hardState' | 'entries' | 'snapshot'>): void {
    if (ready.snapshot !== undefined) {
      this.snapshot = ready.snapshot;
      this.entries = [];
    }
    if (ready.entries.length > 0) {
      const first = ready.entries[0]!.index;
      this.entries = this.entries.filter((entry) => entry.index < first).concat(ready.entries);
    }
    if (ready.hardState !== undefined) this.hardState = ready.hardState;
  }

  /** The term of the stored entry at `index` (the snapshot's for its own index), or undefined. */
  termAt(index: LogIndex): Term | undefined {
    if (index === 0) return 0;
    if (this.snapshot?.meta.index === index) return this.snapshot.meta.term;
    return this.entries.find((entry) => entry.index === index)?.term;
  }

  /** Keep the application's snapshot and drop the entries it covers (all but the last `keep`). */
  saveSnapshot(snapshot: Snapshot, keep: number): void {
    this.snapshot = snapshot;
    this.entries = this.entries.filter((entry) => entry.index > snapshot.meta.index - keep);
  }

  /** What a member restarting from this disk starts from. */
  initialState(conf: ConfState, applied: LogIndex): InitialState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries, conf, applied };
  }
}
