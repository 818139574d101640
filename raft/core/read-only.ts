// ReadIndex (Raft thesis §6.4): a leader answers a linearizable read with its
// commit index once a quorum has confirmed, by answering a heartbeat sent after
// the read arrived, that it is still the leader.

import { quorumSize } from './progress.js';
import type { LogIndex, NodeId } from './types.js';

export interface ReadRequest {
  readonly context: string;
  /** Who asked: the leader itself or a follower that forwarded the read. */
  readonly from: NodeId;
  /** The leader's commit index when the read arrived. */
  readonly index: LogIndex;
  readonly acks: Set<NodeId>;
}

export class ReadOnlyQueue {
  private readonly queue: ReadRequest[] = [];

  constructor(private readonly maxPending: number) {}

  full(): boolean {
    return this.queue.length >= this.maxPending;
  }

  has(context: string): boolean {
    return this.queue.some((request) => request.context === context);
  }

  add(request: ReadRequest): void {
    this.queue.push(request);
  }

  /** The context to carry on the next heartbeat: acknowledging it confirms every earlier read too. */
  lastContext(): string {
    return this.queue.length === 0 ? '' : this.queue[this.queue.length - 1]!.context;
  }

  /**
   * Record that `from` answered the heartbeat carrying `context`. Returns the
   * reads now confirmed by a quorum of `voters`, in arrival order.
   */
  acknowledge(context: string, from: NodeId, voters: ReadonlySet<NodeId>): ReadRequest[] {
    const position = this.queue.findIndex((request) => request.context === context);
    if (position < 0) return [];
    const request = this.queue[position]!;
    if (voters.has(from)) request.acks.add(from);
    let confirmed = 0;
    for (const id of request.acks) if (voters.has(id)) confirmed++;
    if (confirmed < quorumSize(voters.size)) return [];
    return this.queue.splice(0, position + 1);
  }

  clear(): void {
    this.queue.length = 0;
  }
}
