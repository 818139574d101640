// The driver of one Raft member: it turns the pure core into a running
// process. It ticks on a timer, steps messages from the transport, and runs
// the Ready loop: send, persist (one synced batch = group commit), send what
// waited for the persist, apply, advance.
//
// Clients wait here: a proposal resolves when its entry is applied (or fails
// when the entry at its index turns out to belong to another term), a read
// resolves when the ReadIndex it obtained has been applied locally.

import {
  Raft,
  type Config,
  type ConfChange,
  type Entry,
  type LogIndex,
  type Message,
  type NodeId,
  type ProposeResult,
  type Ready,
  type Snapshot,
  type Status,
  type Term,
} from '../core/index.js';
import type { LevelRaftStorage, StoredState } from '../storage/index.js';

/** The replicated application: applies committed entries in order and snapshots its state. */
export interface StateMachine {
  apply(entry: Entry): void;
  /** Replace the whole state with a snapshot's data. */
  restore(snapshot: Snapshot): void;
  /** Serialize the state as of the last applied entry. */
  snapshot(): Uint8Array;
}

export interface Transport {
  send(messages: readonly Message[]): void;
}

/** A refusal from the core, surfaced to callers as an error they can act on. */
export class ProposalRefused extends Error {
  override readonly name = 'ProposalRefused';
  constructor(
    readonly reason: string,
    readonly leader: NodeId,
    message: string,
  ) {
    super(message);
  }
}

/** The entry a proposal got was overwritten by a new leader: it did not commit. */
export class ProposalDropped extends Error {
  override readonly name = 'ProposalDropped';
}

export class ReadTimedOut extends Error {
  override readonly name = 'ReadTimedOut';
}

export class NodeStopped extends Error {
  override readonly name = 'NodeStopped';
}

export interface RaftNodeOptions {
  readonly config: Config;
  readonly storage: LevelRaftStorage;
  readonly stored: StoredState;
  readonly stateMachine: StateMachine;
  readonly transport: Transport;
  /** The initial membership of a brand-new cluster. */
  readonly initialVoters: readonly NodeId[];
  readonly tickIntervalMs: number;
  /** Snapshot and compact after this many applied entries. */
  readonly snapshotEveryEntries: number;
  /** Entries kept behind a snapshot for followers that are only a little behind. */
  readonly snapshotCatchUpEntries: number;
  readonly onReady?: (ready: Ready) => void;
  /** The member cannot go on (a storage failure): the process should log it and exit. */
  readonly onFatal: (error: Error) => void;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** The longest the tick timer sleeps (in ticks), whatever the core says. */
const MAX_TICKS_ASLEEP = 100;

export class RaftNode {
  private readonly raft: Raft;
  /** The timer that delivers the next ticks, and when it is due (performance.now() ms). */
  private ticker: NodeJS.Timeout | undefined;
  private tickerDueAtMs = Infinity;
  /** The time the last delivered tick stands for: ticks are counted from it, so timer lateness never accumulates. */
  private lastTickAtMs = 0;
  private processing = false;
  private rerun = false;
  private stopped = false;
  private snapshotIndex: LogIndex;
  /** The last entry applied to the state machine (ahead of the core's count until advance). */
  private appliedIndex: LogIndex;
  /** Proposals accepted locally, keyed by index: resolved once applied with the same term. */
  private readonly appliedWaiters = new Map<LogIndex, { term: Term; waiter: Waiter<LogIndex> }>();
  /** Reads waiting for their ReadIndex (by context), then for the apply of that index. */
  private readonly readWaiters = new Map<string, Waiter<LogIndex>>();
  private readonly indexWaiters: Array<{ index: LogIndex; context: string; waiter: Waiter<LogIndex> }> = [];
  private readSequence = 0;
  private failure: Error | undefined;

  constructor(private readonly options: RaftNodeOptions) {
    const { stored } = options;
    if (stored.snapshot !== undefined) options.stateMachine.restore(stored.snapshot);
    this.snapshotIndex = stored.snapshot?.meta.index ?? 0;
    this.appliedIndex = this.snapshotIndex;
    this.raft = new Raft(options.config, {
      hardState: stored.hardState,
      snapshot: stored.snapshot,
      entries: stored.entries,
      conf: { voters: options.initialVoters, learners: [] },
      applied: this.snapshotIndex,
    });
  }

  get id(): NodeId {
    return this.raft.id;
  }

  /**
   * Ticks are delivered lazily: the timer is set for when the core next has
   * something to do on its own (a leader at its next heartbeat, or every
   * tick while commit news waits; a follower at its election timeout), and
   * every tick that passed is delivered before anything else reaches the
   * core. An idle leader wakes per heartbeat and a follower a few times a
   * second instead of every tick; what they decide is what ticking every
   * tickIntervalMs would have decided.
   */
  start(): void {
    this.lastTickAtMs = performance.now();
    this.schedule();
  }

  /** Deliver every tick that has passed since the last one. */
  private catchUpTicks(): void {
    const tickMs = this.options.tickIntervalMs;
    const due = Math.floor((performance.now() - this.lastTickAtMs) / tickMs);
    if (due <= 0) return;
    this.lastTickAtMs += due * tickMs;
    for (let tick = 0; tick < due && !this.stopped; tick++) this.raft.tick();
  }

  /** Set the tick timer for the core's next timeout, unless it is set for sooner. */
  private armTicker(): void {
    if (this.stopped || this.failure !== undefined) return;
    // A member that cannot campaign still wakes now and then: applying the log may make it a voter.
    const ticks = Math.min(this.raft.ticksUntilTimeout(), MAX_TICKS_ASLEEP);
    const dueAtMs = this.lastTickAtMs + ticks * this.options.tickIntervalMs;
    if (this.ticker !== undefined && this.tickerDueAtMs <= dueAtMs) return;
    if (this.ticker !== undefined) clearTimeout(this.ticker);
    this.tickerDueAtMs = dueAtMs;
    this.ticker = setTimeout(() => {
      this.ticker = undefined;
      this.tickerDueAtMs = Infinity;
      this.catchUpTicks();
      this.schedule();
    }, Math.max(0, dueAtMs - performance.now()));
  }

  async stop(): Promise<void> {
    this.halt(new NodeStopped(`member ${this.id} is stopping`));
    while (this.processing) await new Promise((resolve) => setImmediate(resolve));
  }

  /** Stop ticking and fail every waiter with `error`. */
  private halt(error: Error): void {
    this.stopped = true;
    if (this.ticker !== undefined) clearTimeout(this.ticker);
    this.ticker = undefined;
    for (const { waiter } of this.appliedWaiters.values()) waiter.reject(error);
    for (const waiter of this.readWaiters.values()) waiter.reject(error);
    for (const { waiter } of this.indexWaiters) waiter.reject(error);
    this.appliedWaiters.clear();
    this.readWaiters.clear();
    this.indexWaiters.length = 0;
  }

  status(): Status {
    return this.raft.status();
  }

  step(message: Message): void {
    if (this.stopped) return;
    this.catchUpTicks();
    this.raft.step(message);
    this.schedule();
  }

  campaign(): void {
    this.catchUpTicks();
    this.raft.campaign();
    this.schedule();
  }

  /** Propose data on the leader and resolve with its index once applied here. */
  propose(data: Uint8Array): Promise<LogIndex> {
    return this.waitForProposal(this.raft.propose(data));
  }

  /**
   * Propose data without waiting here: on a follower the core forwards it to
   * the leader. The caller tracks the outcome itself (by what it finds when
   * the entry is applied) — the way to propose from any member.
   */
  submit(data: Uint8Array): ProposeResult {
    if (this.stopped) return { kind: 'refused', reason: 'removed', leader: 0, message: `member ${this.id} is stopped` };
    const result = this.raft.propose(data);
    if (result.kind !== 'refused') this.schedule();
    return result;
  }

  proposeConfChange(change: ConfChange): Promise<LogIndex> {
    return this.waitForProposal(this.raft.proposeConfChange(change));
  }

  transferLeadership(target: NodeId): void {
    const result = this.raft.transferLeadership(target);
    if (result.kind === 'refused') throw new ProposalRefused(result.reason, result.leader, result.message);
    this.schedule();
  }

  /**
   * A linearizable read barrier: resolves once everything committed before
   * the call is applied here. Gives up after `timeoutMs` (a ReadIndex sent to
   * a leader that died is never answered) with ReadTimedOut.
   */
  readBarrier(timeoutMs = 0): Promise<LogIndex> {
    const context = `${this.id}-${++this.readSequence}`;
    const result = this.raft.readIndex(context);
    if (result.kind === 'refused') return Promise.reject(new ProposalRefused(result.reason, result.leader, result.message));
    const promise = new Promise<LogIndex>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.readWaiters.delete(context);
              const pending = this.indexWaiters.findIndex((waiting) => waiting.context === context);
              if (pending >= 0) this.indexWaiters.splice(pending, 1);
              reject(new ReadTimedOut(`no answer to read ${context} within ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      this.readWaiters.set(context, {
        resolve: (index) => {
          clearTimeout(timer);
          resolve(index);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
    this.schedule();
    return promise;
  }

  reportUnreachable(peer: NodeId): void {
    this.raft.reportUnreachable(peer);
  }

  reportSnapshot(peer: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(peer, ok);
    this.schedule();
  }

  private waitForProposal(result: ProposeResult): Promise<LogIndex> {
    if (result.kind === 'refused') return Promise.reject(new ProposalRefused(result.reason, result.leader, result.message));
    if (result.kind === 'forwarded') {
      this.schedule();
      return Promise.reject(
        new ProposalRefused('not-leader', result.leader, `forwarded to leader ${result.leader}; its outcome is not tracked here`),
      );
    }
    const promise = new Promise<LogIndex>((resolve, reject) =>
      this.appliedWaiters.set(result.index, { term: result.term, waiter: { resolve, reject } }),
    );
    this.schedule();
    return promise;
  }

  private schedule(): void {
    if (this.stopped || this.failure !== undefined) return;
    // What was just stepped may bring the next timeout closer (a new leader, commit news to send).
    this.armTicker();
    if (this.processing) {
      this.rerun = true;
      return;
    }
    this.processing = true;
    queueMicrotask(() => void this.processReadyLoop());
  }

  private async processReadyLoop(): Promise<void> {
    try {
      do {
        this.rerun = false;
        while (!this.stopped && this.raft.hasReady()) await this.handleReady(this.raft.ready());
      } while (this.rerun && !this.stopped);
      // Applying entries may have changed what the core waits for (a membership that makes it a voter).
      this.armTicker();
    } catch (error) {
      // Storage failures are fatal: continuing could acknowledge what is not durable.
      this.failure = error instanceof Error ? error : new Error(String(error));
      this.halt(this.failure);
      this.options.onFatal(this.failure);
    } finally {
      this.processing = false;
    }
  }

  private async handleReady(ready: Ready): Promise<void> {
    const { transport, storage, stateMachine } = this.options;
    if (ready.messages.length > 0) transport.send(ready.messages);
    // A hard state that only moves the commit index is not written on its own:
    // a stale commit index on disk is safe (restart re-learns it from the
    // leader) and skipping the write takes a disk round trip off every commit.
    // The next write carries the current hard state, commit included.
    const mustPersist = ready.snapshot !== undefined || ready.entries.length > 0 || ready.mustSync;
    let persisting = mustPersist
      ? storage.persist({ hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot }, ready.mustSync)
      : undefined;
    if (ready.snapshot !== undefined) {
      await persisting;
      persisting = undefined;
      stateMachine.restore(ready.snapshot);
      this.snapshotIndex = ready.snapshot.meta.index;
      this.appliedIndex = ready.snapshot.meta.index;
    } else if (persisting !== undefined) {
      // Reported when awaited below; this only keeps an early throw from leaving it unobserved.
      persisting.catch(() => {});
    }
    // Committed entries are durable on a quorum already, so they are applied
    // while this member's own write is in flight (the state machine lives in
    // memory and is rebuilt from snapshot + log on restart): clients hear back
    // without waiting for an fsync that does not protect their data.
    for (const entry of ready.committedEntries) {
      stateMachine.apply(entry);
      this.appliedIndex = entry.index;
      this.settleProposal(entry);
    }
    for (const readState of ready.readStates) {
      const waiter = this.readWaiters.get(readState.context);
      if (waiter === undefined) continue;
      this.readWaiters.delete(readState.context);
      this.indexWaiters.push({ index: readState.index, context: readState.context, waiter });
    }
    this.settleIndexWaiters();
    this.options.onReady?.(ready);
    if (persisting !== undefined) await persisting;
    // Votes and acknowledgements promise durability: only after the write.
    if (ready.messagesAfterPersist.length > 0) transport.send(ready.messagesAfterPersist);
    this.raft.advance(ready);
    await this.maybeSnapshot();
  }

  private settleProposal(entry: Entry): void {
    const pending = this.appliedWaiters.get(entry.index);
    if (pending === undefined) return;
    this.appliedWaiters.delete(entry.index);
    if (pending.term === entry.term) pending.waiter.resolve(entry.index);
    else pending.waiter.reject(new ProposalDropped(`entry ${entry.index} was replaced by a newer leader's entry; retry`));
  }

  private settleIndexWaiters(): void {
    const applied = this.appliedIndex;
    if (this.indexWaiters.length === 0) return;
    for (let position = this.indexWaiters.length - 1; position >= 0; position--) {
      const pending = this.indexWaiters[position]!;
      if (pending.index > applied) continue;
      this.indexWaiters.splice(position, 1);
      pending.waiter.resolve(pending.index);
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const applied = this.appliedIndex;
    if (applied - this.snapshotIndex < this.options.snapshotEveryEntries) return;
    const data = this.options.stateMachine.snapshot();
    this.raft.compact(applied, data, this.options.snapshotCatchUpEntries);
    const snapshot = this.raft.lastSnapshot()!;
    await this.options.storage.saveSnapshot(snapshot);
    await this.options.storage.compact(this.raft.status().firstIndex - 1);
    this.snapshotIndex = applied;
  }
}
