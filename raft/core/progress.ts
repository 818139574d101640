// The leader's view of one follower's log, and the flow control of appends to it.
//
//  probe:     the follower's match is unknown; send one append, then wait for
//             its answer (or a heartbeat answer) before sending the next.
//  replicate: the follower is known to match; stream appends optimistically,
//             at most `Inflights` messages/bytes unacknowledged.
//  snapshot:  the follower needs a snapshot; send nothing until it answers.

import { assert } from './assert.js';
import type { LogIndex, NodeId, ProgressStatus } from './types.js';

/** A bounded window of append messages sent to one follower and not yet acknowledged. */
export class Inflights {
  private readonly lastIndexes: LogIndex[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {
    assert(maxMessages >= 1, 'maxInflightMessages must be at least 1');
  }

  add(lastIndex: LogIndex, bytes: number): void {
    assert(!this.full(), 'adding to a full inflight window');
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Forget every message whose entries are all at or below `index`. */
  freeTo(index: LogIndex): void {
    let freed = 0;
    while (freed < this.lastIndexes.length && this.lastIndexes[freed]! <= index) {
      this.bytes -= this.sizes[freed]!;
      freed++;
    }
    this.lastIndexes.splice(0, freed);
    this.sizes.splice(0, freed);
  }

  freeFirst(): void {
    const first = this.lastIndexes[0];
    if (first !== undefined) this.freeTo(first);
  }

  full(): boolean {
    return this.lastIndexes.length >= this.maxMessages || this.bytes >= this.maxBytes;
  }

  count(): number {
    return this.lastIndexes.length;
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match: LogIndex = 0;
  next: LogIndex;
  state: ProgressState = 'probe';
  /** In probe state: an append is outstanding; wait for an answer before the next one. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot sent. */
  pendingSnapshot: LogIndex = 0;
  /** In snapshot state: ticks since the snapshot was sent (to retry one that was lost). */
  snapshotElapsedTicks = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The highest commit index this follower can have learned from what was sent to it. */
  sentCommit: LogIndex = 0;
  /**
   * The highest index this follower waits on to answer a client (a proposal
   * it forwarded, a read it asked for): commit news up to it is sent at once,
   * other commit news rides on the next append or tick.
   */
  commitWanted: LogIndex = 0;
  /** sentCommit as of the previous tick: commit news that is moving needs no extra message. */
  sentCommitAtTick: LogIndex = 0;
  readonly inflights: Inflights;

  constructor(
    next: LogIndex,
    public learner: boolean,
    maxInflightMessages: number,
    maxInflightBytes: number,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMessages, maxInflightBytes);
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.resetState('probe');
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.resetState('replicate');
  }

  becomeSnapshot(snapshotIndex: LogIndex): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotElapsedTicks = 0;
    this.inflights.reset();
  }

  /** The follower acknowledged `index`; returns whether that was news. */
  maybeUpdate(index: LogIndex): boolean {
    const updated = index > this.match;
    if (updated) {
      this.match = index;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The follower rejected an append at `rejected`; `retryAt` is where its hint
   * says to try next. Returns false when the rejection is stale (out of order).
   */
  maybeDecreaseTo(rejected: LogIndex, retryAt: LogIndex): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, retryAt + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Record an append sent with entries up to `lastIndex` (`entryCount` entries, `bytes` payload). */
  sentEntries(lastIndex: LogIndex, entryCount: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  status(): ProgressStatus {
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      inflight: this.inflights.count(),
      learner: this.learner,
    };
  }
}

export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** The highest index that a quorum of `voters` has reached. */
export function quorumMatchIndex(voters: ReadonlySet<NodeId>, matchOf: (id: NodeId) => LogIndex): LogIndex {
  if (voters.size === 0) return 0;
  const matches = [...voters].map(matchOf).sort((a, b) => b - a);
  return matches[quorumSize(voters.size) - 1]!;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

export function tallyVotes(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const needed = quorumSize(voters.size);
  if (granted >= needed) return 'won';
  if (rejected > voters.size - needed) return 'lost';
  return 'pending';
}
