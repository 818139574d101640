// Lease countdowns. Every member keeps one per lease, restarted whenever it
// applies the lease's grant or renewal, so any member can answer how long a
// lease has left. Only the leader acts on them: it proposes the expiry of a
// lease whose countdown ran out, through the log (with the renewal it saw, so
// a keep-alive that raced with it wins). A member that becomes leader first
// restarts every countdown: its clock says nothing about how long the old
// leader's clients went without a chance to renew.

export interface LessorClock {
  now(): number;
}

export interface ExpiryProposal {
  readonly id: number;
}

export class Lessor {
  private readonly deadlines = new Map<number, { deadline: number; ttlSeconds: number }>();
  /** Leases whose expiry was proposed and not yet applied, with when it was proposed. */
  private readonly expiring = new Map<number, number>();
  private leading = false;

  constructor(
    private readonly clock: LessorClock,
    /** Propose the expiry of a lease (the leader only). */
    private readonly proposeExpiry: (id: number) => void,
    /** How long to wait for a proposed expiry to apply before proposing it again. */
    private readonly retryMs = 2000,
  ) {}

  renewed(id: number, ttlSeconds: number): void {
    this.deadlines.set(id, { deadline: this.clock.now() + ttlSeconds * 1000, ttlSeconds });
    this.expiring.delete(id);
  }

  removed(id: number): void {
    this.deadlines.delete(id);
    this.expiring.delete(id);
  }

  clear(): void {
    this.deadlines.clear();
    this.expiring.clear();
  }

  /** Seconds left (rounded up), or undefined for an unknown lease. */
  remainingSeconds(id: number): number | undefined {
    const entry = this.deadlines.get(id);
    if (entry === undefined) return undefined;
    return Math.max(0, Math.ceil((entry.deadline - this.clock.now()) / 1000));
  }

  setLeader(leading: boolean): void {
    if (leading && !this.leading) {
      const now = this.clock.now();
      for (const entry of this.deadlines.values()) entry.deadline = Math.max(entry.deadline, now + entry.ttlSeconds * 1000);
      this.expiring.clear();
    }
    this.leading = leading;
  }

  /** Called periodically: on the leader, propose the expiry of every lease past its deadline. */
  check(): void {
    if (!this.leading) return;
    const now = this.clock.now();
    for (const [id, { deadline }] of this.deadlines) {
      if (deadline > now) continue;
      const proposedAt = this.expiring.get(id);
      if (proposedAt !== undefined && now - proposedAt < this.retryMs) continue;
      this.expiring.set(id, now);
      this.proposeExpiry(id);
    }
  }
}
