// Automatic compaction of the MVCC history, etcd's --auto-compaction-mode
// and --auto-compaction-retention. Only the leader compacts (through the log,
// like any client Compact):
//   revision mode: keep the last RETENTION revisions, checked every interval;
//   periodic mode: keep RETENTION milliseconds of history — the leader samples
//   the store revision as time passes and compacts to the revision it saw
//   RETENTION ago.

export type CompactionMode = 'revision' | 'periodic';

export interface CompactorOptions {
  readonly mode: CompactionMode;
  /** Revisions (revision mode) or milliseconds (periodic mode); 0 turns compaction off. */
  readonly retention: number;
}

export interface CompactorTarget {
  isLeader(): boolean;
  revision(): number;
  compactRevision(): number;
  compact(revision: number): Promise<void>;
  now(): number;
}

export class Compactor {
  private readonly samples: Array<{ at: number; revision: number }> = [];
  private running = false;

  constructor(
    private readonly options: CompactorOptions,
    private readonly target: CompactorTarget,
  ) {}

  /** The revision to compact to now, or undefined when there is nothing to do. */
  due(): number | undefined {
    const { mode, retention } = this.options;
    if (retention <= 0) return undefined;
    const now = this.target.now();
    const revision = this.target.revision();
    let goal: number | undefined;
    if (mode === 'revision') {
      goal = revision - retention;
    } else {
      this.samples.push({ at: now, revision });
      while (this.samples.length > 1 && this.samples[1]!.at <= now - retention) this.samples.shift();
      const oldest = this.samples[0]!;
      goal = oldest.at <= now - retention ? oldest.revision : undefined;
    }
    if (goal === undefined || goal <= this.target.compactRevision() || goal <= 0) return undefined;
    return goal;
  }

  /** One check (called periodically): on the leader, compact when due. */
  async tick(): Promise<void> {
    const goal = this.due();
    if (goal === undefined || !this.target.isLeader() || this.running) return;
    this.running = true;
    try {
      await this.target.compact(goal);
    } finally {
      this.running = false;
    }
  }
}
