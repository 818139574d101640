// A minimal synchronous cluster for unit tests of the core: every member's
// Ready is persisted, sent and applied at once; messages are delivered in FIFO
// order unless dropped by the `linkUp` predicate.

import { Raft } from '../../raft/core/index.js';
import { MemoryDisk } from '../support/memory-disk.js';
import type { Config, ConfState, Entry, InitialState, Message, NodeId, Rng } from '../../raft/core/index.js';

export interface MiniClusterOptions {
  readonly seed?: number;
  /** Overrides of the members' configuration (limits, pre-vote, check-quorum). */
  readonly config?: Partial<Omit<Config, 'id' | 'rng'>>;
  /** Builds each member; tests inject deliberately broken cores here. */
  readonly factory?: (config: Config, initial: InitialState) => Raft;
}

export class CountingRng implements Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  nextInt(maxExclusive: number): number {
    // xorshift32: deterministic, good enough for election jitter in tests.
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state % maxExclusive;
  }
}

export class MiniCluster {
  readonly members = new Map<NodeId, Raft>();
  readonly disks = new Map<NodeId, MemoryDisk>();
  readonly applied = new Map<NodeId, Entry[]>();
  queue: Message[] = [];
  /** Messages for which this returns false are dropped on delivery. */
  deliverable: (message: Message) => boolean = () => true;

  constructor(
    private readonly conf: ConfState,
    private readonly options: MiniClusterOptions = {},
  ) {
    for (const id of conf.voters) this.start(id);
  }

  start(id: NodeId): Raft {
    const seed = this.options.seed ?? 1;
    const factory = this.options.factory ?? ((config, initial) => new Raft(config, initial));
    const disk = this.disks.get(id) ?? new MemoryDisk();
    this.disks.set(id, disk);
    this.applied.set(id, []);
    const raft = factory(
      { electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, ...this.options.config, id, rng: new CountingRng(seed * 31 + id) },
      disk.initialState(this.conf, disk.snapshot?.meta.index ?? 0),
    );
    this.members.set(id, raft);
    return raft;
  }

  crash(id: NodeId): void {
    this.members.delete(id);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
  }

  /** Process every Ready and deliver every message until nothing moves. */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const [id, raft] of this.members) {
        while (raft.hasReady()) {
          moved = true;
          const ready = raft.ready();
          const disk = this.disks.get(id)!;
          this.queue.push(...ready.messages);
          if (ready.snapshot !== undefined) this.applied.get(id)!.length = 0;
          disk.persist(ready);
          this.queue.push(...ready.messagesAfterPersist);
          this.applied.get(id)!.push(...ready.committedEntries);
          raft.advance(ready);
        }
      }
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        const target = this.members.get(m.to);
        if (target === undefined || !this.deliverable(m)) continue;
        moved = true;
        target.step(m);
      }
      if (!moved) return;
    }
    throw new Error('cluster did not stabilize');
  }

  /** The entry each live member applied at `index`, as "term/index data". */
  appliedAt(index: number): Map<NodeId, string> {
    const result = new Map<NodeId, string>();
    for (const [id, entries] of this.applied) {
      const entry = entries.find((e) => e.index === index);
      if (entry !== undefined) result.set(id, `${entry.term}/${entry.index}`);
    }
    return result;
  }

  leader(): Raft | undefined {
    return [...this.members.values()].find((raft) => raft.status().role === 'leader');
  }

  appliedData(id: NodeId): string[] {
    const decoder = new TextDecoder();
    return this.applied
      .get(id)!
      .filter((e): e is Entry & { kind: 'normal' } => e.kind === 'normal' && e.data.byteLength > 0)
      .map((e) => decoder.decode(e.data));
  }
}
