// The Raft algorithm as a pure state machine (Ongaro & Ousterhout, "In Search
// of an Understandable Consensus Algorithm", and Ongaro's thesis).
//
// Inputs: tick(), step(message), propose..., readIndex, transferLeadership.
// Outputs: ready() hands out what to persist, send and apply; advance() says
// it was done. No I/O, clocks or randomness of its own: time is counted in
// ticks and randomness comes from the injected Rng, so a seed replays a run.
//
// Layout: step() applies the term rules once, then dispatches by role
// (stepLeader / stepCandidate / stepFollower), as etcd-io/raft does.

import { assert } from './assert.js';
import { describeConfChange } from './describe.js';
import { RaftLog } from './log.js';
import { Progress, quorumMatchIndex, tallyVotes } from './progress.js';
import { ReadOnlyQueue, type ReadRequest } from './read-only.js';
import {
  NONE,
  payloadBytes,
  type ConfChange,
  type ConfState,
  type Config,
  type Entry,
  type HardState,
  type InitialState,
  type LogIndex,
  type Logger,
  type Message,
  type MessageBody,
  type NodeId,
  type ProposalPayload,
  type ProposeResult,
  type ReadIndexResult,
  type ReadState,
  type Ready,
  type RefusalReason,
  type Role,
  type Snapshot,
  type SoftState,
  type Status,
  type Term,
  type TransferResult,
} from './types.js';

/** Defaults for the limits; each bounds a queue or window (TigerBeetle style: every queue has a limit). */
export const DEFAULT_LIMITS = {
  /** 1 MiB keeps one append under gRPC's default 4 MiB message limit with room to spare. */
  maxMessageBytes: 1 << 20,
  /** 256 in-flight appends cover a fast follower's round trip at high proposal rates. */
  maxInflightMessages: 256,
  maxInflightBytes: 32 << 20,
  /** A leader holds at most 64 MiB of proposals that a quorum has not yet accepted. */
  maxUncommittedBytes: 64 << 20,
  maxCommittedBytesPerReady: 64 << 20,
  /** ReadIndex requests waiting for confirmation or for the leader's first commit. */
  maxPendingReads: 4096,
} as const;

const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

/** Messages that promise durable state to their receiver and so must wait for the persist. */
function mustWaitForPersist(kind: MessageBody['kind']): boolean {
  return kind === 'vote' || kind === 'vote-response' || kind === 'append-response';
}

type Body<K extends MessageBody['kind']> = Extract<MessageBody, { kind: K }>;
type MessageOf<K extends MessageBody['kind']> = Message & Body<K>;

interface Membership {
  voters: Set<NodeId>;
  learners: Set<NodeId>;
}

function confStateOf(membership: Membership): ConfState {
  return {
    voters: [...membership.voters].sort((a, b) => a - b),
    learners: [...membership.learners].sort((a, b) => a - b),
  };
}

function membershipOf(conf: ConfState): Membership {
  return { voters: new Set(conf.voters), learners: new Set(conf.learners) };
}

/**
 * A brand-new founding member writes the initial membership into its log as
 * committed entries 1..n of term 1, identical on every founding member. A
 * member that joins later replays them (or gets a snapshot) and so learns the
 * whole membership from the log alone.
 */
function bootstrapIfNew(initial: InitialState): { hardState: HardState; entries: readonly Entry[] } {
  const fresh = initial.snapshot === undefined && initial.entries.length === 0 && initial.hardState.term === 0;
  if (!fresh || initial.conf.voters.length === 0) return { hardState: initial.hardState, entries: initial.entries };
  const changes: ConfChange[] = [
    ...initial.conf.voters.map((nodeId): ConfChange => ({ type: 'add-voter', nodeId })),
    ...initial.conf.learners.map((nodeId): ConfChange => ({ type: 'add-learner', nodeId })),
  ];
  const entries = changes.map((change, position): Entry => ({ kind: 'conf-change', term: 1, index: position + 1, change }));
  return { hardState: { term: 1, vote: NONE, commit: entries.length }, entries };
}

export class Raft {
  readonly id: NodeId;
  protected readonly electionTimeoutTicks: number;
  protected readonly heartbeatIntervalTicks: number;
  protected readonly preVote: boolean;
  protected readonly checkQuorum: boolean;
  protected readonly forwardProposals: boolean;
  protected readonly limits: { -readonly [K in keyof typeof DEFAULT_LIMITS]: number };
  protected readonly rng: Config['rng'];
  protected readonly logger: Logger;

  protected term: Term = 0;
  protected vote: NodeId = NONE;
  protected leader: NodeId = NONE;
  protected role: Role = 'follower';
  protected readonly log: RaftLog;

  protected membership: Membership;
  /** The index of the entry (or snapshot) that established the current membership. */
  protected membershipIndex: LogIndex;
  /** Memberships after the last compaction point, to snapshot at an earlier applied index. */
  protected membershipHistory: Array<{ index: LogIndex; conf: ConfState }> = [];

  /** Leader only: one per voter and learner, including this member. */
  protected readonly progress = new Map<NodeId, Progress>();
  protected readonly votes = new Map<NodeId, boolean>();

  protected electionElapsedTicks = 0;
  protected heartbeatElapsedTicks = 0;
  protected randomizedElectionTimeoutTicks = 0;

  protected transferee: NodeId = NONE;
  /** Leader only: a membership change may not be proposed until the log is applied past this. */
  protected pendingConfIndex: LogIndex = 0;
  protected uncommittedBytes = 0;
  protected readonly readOnly: ReadOnlyQueue;
  /** Reads that arrived before this leader committed an entry of its term (thesis §6.4 step 1). */
  protected pendingReads: Array<{ context: string; from: NodeId }> = [];
  /** Proposals appended since the last broadcast; sent together in the next Ready (batching). */
  protected broadcastPending = false;

  protected messages: Message[] = [];
  protected messagesAfterPersist: Message[] = [];
  protected readStates: ReadState[] = [];
  protected handedSoftState: SoftState;
  protected handedHardState: HardState;
  protected readyOutstanding = false;

  constructor(config: Config, initial: InitialState) {
    assert(config.id !== NONE, 'a member id must be non-zero');
    assert(config.electionTimeoutTicks > config.heartbeatIntervalTicks, 'the election timeout must exceed the heartbeat interval');
    assert(config.heartbeatIntervalTicks >= 1, 'the heartbeat interval must be at least one tick');
    this.id = config.id;
    this.electionTimeoutTicks = config.electionTimeoutTicks;
    this.heartbeatIntervalTicks = config.heartbeatIntervalTicks;
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.forwardProposals = !(config.disableProposalForwarding ?? false);
    this.limits = {
      maxMessageBytes: config.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes,
      maxInflightMessages: config.maxInflightMessages ?? DEFAULT_LIMITS.maxInflightMessages,
      maxInflightBytes: config.maxInflightBytes ?? DEFAULT_LIMITS.maxInflightBytes,
      maxUncommittedBytes: config.maxUncommittedBytes ?? DEFAULT_LIMITS.maxUncommittedBytes,
      maxCommittedBytesPerReady: config.maxCommittedBytesPerReady ?? DEFAULT_LIMITS.maxCommittedBytesPerReady,
      maxPendingReads: DEFAULT_LIMITS.maxPendingReads,
    };
    this.rng = config.rng;
    this.logger = config.logger ?? silentLogger;
    this.readOnly = new ReadOnlyQueue(this.limits.maxPendingReads);

    const { hardState, entries } = bootstrapIfNew(initial);
    const bootstrapped = entries !== initial.entries;
    this.log = RaftLog.restore(initial.snapshot, entries, hardState.commit, initial.applied, !bootstrapped);
    this.term = hardState.term;
    this.vote = hardState.vote;
    if (initial.snapshot !== undefined) {
      this.membership = membershipOf(initial.snapshot.meta.conf);
      this.membershipIndex = initial.snapshot.meta.index;
    } else {
      this.membership = membershipOf(initial.conf);
      // Bootstrap entries describe exactly this membership: it is in effect already.
      this.membershipIndex = bootstrapped ? entries.length : 0;
    }
    this.membershipHistory.push({ index: this.membershipIndex, conf: confStateOf(this.membership) });
    // Membership changes take effect when applied: replay those already applied.
    for (let index = this.log.firstIndex(); index <= this.log.applied; index++) {
      const entry = this.log.entry(index);
      if (entry?.kind === 'conf-change') this.applyConfChange(entry.change, entry.index);
    }
    this.handedSoftState = { leader: NONE, role: 'follower' };
    // What storage holds: bootstrap's hard state differs and goes out in the first Ready.
    this.handedHardState = initial.hardState;
    this.becomeFollower(this.term, NONE);
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /**
   * How many ticks may pass before tick() next does anything but count: a
   * leader at its next heartbeat or quorum check, or every tick while a
   * follower's commit news waits (it goes out once stalled for a tick) or a
   * snapshot is in flight; a follower or candidate when its election
   * timeout runs out; a member that cannot campaign never. A driver may
   * sleep that long, as long as it delivers the ticks it skipped before
   * anything else is stepped (elapsed time decides, for one, whether a vote
   * is granted). The simulator checks that a tick not yet due sends nothing.
   */
  ticksUntilTimeout(): number {
    if (this.role === 'leader') return this.leaderTicksUntilWork();
    if (!this.promotable()) return Infinity;
    return Math.max(1, this.randomizedElectionTimeoutTicks - this.electionElapsedTicks);
  }

  /** Start an election now, as an expired election timeout would. */
  campaign(): void {
    if (this.role === 'leader') return;
    this.startElection(false);
  }

  propose(data: Uint8Array): ProposeResult {
    return this.proposePayloads([{ kind: 'normal', data }]);
  }

  proposeConfChange(change: ConfChange): ProposeResult {
    return this.proposePayloads([{ kind: 'conf-change', change }]);
  }

  readIndex(context: string): ReadIndexResult {
    if (this.role === 'leader') {
      const refusal = this.handleReadIndex(context, this.id);
      return refusal ?? { kind: 'pending' };
    }
    if (this.leader === NONE) return this.refuse('no-leader', 'no leader is known to confirm the read; retry later');
    this.send({ to: this.leader, kind: 'read-index', context });
    return { kind: 'pending' };
  }

  transferLeadership(target: NodeId): TransferResult {
    if (this.role !== 'leader') {
      return this.refuse('not-leader', `only the leader can transfer leadership; the leader is ${this.leader}`);
    }
    if (target === this.id || !this.membership.voters.has(target)) {
      return this.refuse('invalid-transfer', `member ${target} is not another voter of this cluster`);
    }
    if (this.transferee === target) return { kind: 'started', target };
    this.transferee = target;
    // The transfer must finish within one election timeout (thesis §3.10).
    this.electionElapsedTicks = 0;
    this.logger.info(`${this.id} transfers leadership to ${target} at term ${this.term}`);
    const progress = this.progress.get(target)!;
    if (progress.match === this.log.lastIndex()) this.send({ to: target, kind: 'timeout-now' });
    else this.maybeSendAppend(target, true);
    return { kind: 'started', target };
  }

  step(m: Message): void {
    assert(m.to === this.id, `message for ${m.to} stepped into member ${this.id}`);
    if (m.term > this.term) {
      if (!this.acceptHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.handleLowerTerm(m);
      return;
    }
    if (m.kind === 'pre-vote' || m.kind === 'vote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  /** The transport could not reach `peer`: stop streaming to it optimistically. */
  reportUnreachable(peer: NodeId): void {
    const progress = this.progress.get(peer);
    if (this.role === 'leader' && progress?.state === 'replicate') progress.becomeProbe();
  }

  /** The transport finished (or failed) sending a snapshot to `peer`. */
  reportSnapshot(peer: NodeId, ok: boolean): void {
    const progress = this.progress.get(peer);
    if (this.role !== 'leader' || progress?.state !== 'snapshot') return;
    if (!ok) progress.pendingSnapshot = 0;
    progress.becomeProbe();
    // Wait for the follower's answer to a heartbeat before probing again.
    progress.probeSent = true;
  }

  /**
   * The application snapshotted its state machine at applied index `index`.
   * The log up to `index - keepEntries` is dropped; followers behind that
   * receive the snapshot instead.
   */
  compact(index: LogIndex, data: Uint8Array, keepEntries = 0): void {
    assert(index <= this.log.applied, `compact(${index}) is beyond the applied index ${this.log.applied}`);
    const current = this.log.snapshot();
    if (current !== undefined && index <= current.meta.index) return;
    if (index < this.log.firstIndex() - 1) return;
    const term = this.log.term(index);
    assert(term !== undefined, `compact(${index}): the entry is not in the log`);
    const snapshot: Snapshot = { meta: { index, term, conf: this.membershipAt(index) }, data };
    this.log.compact(snapshot, keepEntries);
    this.pruneMembershipHistory(index);
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    if (this.readyOutstanding) return false;
    this.flushBroadcast();
    return (
      this.messages.length > 0 ||
      this.messagesAfterPersist.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasUnstable() ||
      this.log.pendingSnapshot !== undefined ||
      this.log.hasCommittedToApply() ||
      this.softStateChanged() ||
      this.hardStateChanged()
    );
  }

  ready(): Ready {
    assert(!this.readyOutstanding, 'ready() called again before advance()');
    this.flushBroadcast();
    const snapshot = this.log.pendingSnapshot;
    this.log.pendingSnapshot = undefined;
    const entries = this.log.takeUnstable();
    const hardState = this.hardStateChanged() ? this.currentHardState() : undefined;
    const softState = this.softStateChanged() ? this.currentSoftState() : undefined;
    const committedEntries = this.log.takeCommitted(this.limits.maxCommittedBytesPerReady);
    if (this.role === 'leader') this.releaseUncommittedBytes(committedEntries);
    const termOrVoteChanged =
      hardState !== undefined && (hardState.term !== this.handedHardState.term || hardState.vote !== this.handedHardState.vote);
    const ready: Ready = {
      softState,
      hardState,
      entries,
      snapshot,
      committedEntries,
      messages: this.messages,
      messagesAfterPersist: this.messagesAfterPersist,
      readStates: this.readStates,
      mustSync: entries.length > 0 || snapshot !== undefined || termOrVoteChanged,
    };
    if (hardState !== undefined) this.handedHardState = hardState;
    if (softState !== undefined) this.handedSoftState = softState;
    this.messages = [];
    this.messagesAfterPersist = [];
    this.readStates = [];
    this.readyOutstanding = true;
    return ready;
  }

  /** The driver persisted, sent and applied everything in `ready`. */
  advance(ready: Ready): void {
    assert(this.readyOutstanding, 'advance() without an outstanding ready()');
    this.readyOutstanding = false;
    this.log.acknowledgePersisted(ready.entries[ready.entries.length - 1], ready.snapshot);
    if (ready.snapshot !== undefined) {
      this.log.applied = Math.max(this.log.applied, ready.snapshot.meta.index);
    }
    for (const entry of ready.committedEntries) {
      if (entry.index <= this.log.applied) continue;
      if (entry.kind === 'conf-change' && entry.index > this.membershipIndex) {
        this.applyConfChange(entry.change, entry.index);
      }
      this.log.applied = entry.index;
    }
    if (this.role !== 'leader') return;
    this.progress.get(this.id)!.match = this.log.stableLast;
    if (this.maybeCommit()) this.broadcastPending = true;
  }

  // ---------------------------------------------------------------- queries

  status(): Status {
    const progress =
      this.role === 'leader'
        ? new Map([...this.progress].map(([id, value]) => [id, value.status()] as const))
        : undefined;
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.leader,
      commit: this.log.commit,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      conf: confStateOf(this.membership),
      transferee: this.transferee,
      progress,
    };
  }

  logTerm(index: LogIndex): Term | undefined {
    return this.log.term(index);
  }

  logEntry(index: LogIndex): Entry | undefined {
    return this.log.entry(index);
  }

  lastSnapshot(): Snapshot | undefined {
    return this.log.snapshot();
  }

  // ------------------------------------------------- injection points (tests override)

  /** Raft §5.4.2: only entries of the leader's current term are committed by counting replicas. */
  protected mayCommitAt(index: LogIndex): boolean {
    return this.log.term(index) === this.term;
  }

  /** Raft §5.2: one vote per term; a pre-vote is free but not while following a live leader. */
  protected canGrantVote(candidate: NodeId, term: Term, preVote: boolean): boolean {
    return this.vote === candidate || (this.vote === NONE && this.leader === NONE) || (preVote && term > this.term);
  }

  /** Raft §5.4.1: the election restriction. */
  protected isLogUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    return this.log.isUpToDate(lastIndex, lastTerm);
  }

  // ---------------------------------------------------------------- terms and roles

  /** A message from a newer term arrived; returns whether to go on handling it. */
  private acceptHigherTerm(m: Message): boolean {
    if (m.kind === 'pre-vote' || m.kind === 'vote') {
      const forced = m.kind === 'vote' && m.transfer;
      // Check-quorum gives leaders a lease: while we hear from a live leader we
      // ignore campaigns, so a partitioned member that rejoins cannot disrupt it.
      const inLease = this.checkQuorum && this.leader !== NONE && this.electionElapsedTicks < this.electionTimeoutTicks;
      if (inLease && !forced) {
        this.logger.debug(`${this.id} ignores ${m.kind} from ${m.from} at term ${m.term}: leader ${this.leader} is live`);
        return false;
      }
    }
    if (m.kind === 'pre-vote') return true; // a pre-vote never changes our term
    if (m.kind === 'pre-vote-response' && m.granted) return true; // granted answers carry the future term
    const leader = m.kind === 'append' || m.kind === 'heartbeat' || m.kind === 'snapshot' ? m.from : NONE;
    this.logger.info(`${this.id} sees term ${m.term} from ${m.from} (${m.kind}) at term ${this.term}: becomes follower`);
    this.becomeFollower(m.term, leader);
    return true;
  }

  private handleLowerTerm(m: Message): void {
    if ((this.checkQuorum || this.preVote) && (m.kind === 'append' || m.kind === 'heartbeat')) {
      // A stale leader (for example one that was partitioned away) would never
      // learn of our term under pre-vote/check-quorum; tell it so it steps down.
      this.send({ to: m.from, kind: 'append-response', index: 0, reject: false, hintIndex: 0, hintTerm: 0 });
    } else if (m.kind === 'pre-vote') {
      this.send({ to: m.from, kind: 'pre-vote-response', granted: false });
    }
  }

  private handleVoteRequest(m: MessageOf<'pre-vote'> | MessageOf<'vote'>): void {
    const preVote = m.kind === 'pre-vote';
    const responseKind = preVote ? 'pre-vote-response' : 'vote-response';
    if (this.canGrantVote(m.from, m.term, preVote) && this.isLogUpToDate(m.lastLogIndex, m.lastLogTerm)) {
      this.logger.info(`${this.id} grants ${m.kind} to ${m.from} at term ${m.term}`);
      this.sendWithTerm({ to: m.from, kind: responseKind, granted: true }, m.term);
      if (!preVote) {
        this.electionElapsedTicks = 0;
        this.vote = m.from;
      }
    } else {
      this.logger.info(`${this.id} rejects ${m.kind} from ${m.from} at term ${m.term}`);
      this.send({ to: m.from, kind: responseKind, granted: false });
    }
  }

  protected becomeFollower(term: Term, leader: NodeId): void {
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    // A pre-candidate keeps its term and vote (thesis §9.6): nothing changes unless it would win.
    this.resetVolatile();
    this.role = 'pre-candidate';
    this.leader = NONE;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.vote = this.id;
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', `${this.id} becomes leader from ${this.role}`);
    this.resetVolatile();
    this.role = 'leader';
    this.leader = this.id;
    for (const id of [...this.membership.voters, ...this.membership.learners]) this.addProgress(id);
    this.progress.get(this.id)!.recentActive = true;
    // The no-op of the new term (§8): committing it commits everything before it,
    // enables ReadIndex, and only after it applies may the membership change.
    const noop = this.appendEntries([{ kind: 'normal', data: new Uint8Array(0) }]);
    this.pendingConfIndex = noop;
    this.logger.info(`${this.id} becomes leader at term ${this.term}`);
    this.broadcastPending = true;
  }

  private reset(term: Term): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    this.leader = NONE;
    this.resetVolatile();
  }

  private resetVolatile(): void {
    this.electionElapsedTicks = 0;
    this.heartbeatElapsedTicks = 0;
    this.randomizedElectionTimeoutTicks = this.electionTimeoutTicks + this.rng.nextInt(this.electionTimeoutTicks);
    this.transferee = NONE;
    this.votes.clear();
    this.progress.clear();
    this.readOnly.clear();
    this.pendingReads = [];
    this.uncommittedBytes = 0;
    this.pendingConfIndex = 0;
    this.broadcastPending = false;
  }

  private promotable(): boolean {
    return this.membership.voters.has(this.id);
  }

  // ---------------------------------------------------------------- elections

  private tickElection(): void {
    this.electionElapsedTicks++;
    if (this.promotable() && this.electionElapsedTicks >= this.randomizedElectionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      this.startElection(false);
    }
  }

  private startElection(transfer: boolean): void {
    if (!this.promotable()) {
      this.logger.warn(`${this.id} cannot campaign: it is not a voter`);
      return;
    }
    // A membership change that is committed but not applied could make us a non-voter.
    if (this.hasUnappliedConfChange()) {
      this.logger.warn(`${this.id} cannot campaign: a committed membership change is not yet applied`);
      return;
    }
    if (this.preVote && !transfer) {
      this.becomePreCandidate();
      this.requestVotes('pre-vote', this.term + 1, false);
    } else {
      this.becomeCandidate();
      this.requestVotes('vote', this.term, transfer);
    }
  }

  private hasUnappliedConfChange(): boolean {
    for (let index = Math.max(this.log.applied, this.membershipIndex) + 1; index <= this.log.commit; index++) {
      if (this.log.entry(index)?.kind === 'conf-change') return true;
    }
    return false;
  }

  private requestVotes(kind: 'pre-vote' | 'vote', term: Term, transfer: boolean): void {
    this.logger.info(`${this.id} starts ${kind === 'pre-vote' ? 'a pre-vote' : 'an election'} for term ${term}`);
    this.votes.set(this.id, true);
    if (this.tallyAndMaybeWin()) return;
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const id of this.membership.voters) {
      if (id === this.id) continue;
      const body: MessageBody =
        kind === 'pre-vote' ? { kind, lastLogIndex, lastLogTerm } : { kind, lastLogIndex, lastLogTerm, transfer };
      this.sendWithTerm({ to: id, ...body }, term);
    }
  }

  /** Count the votes; returns whether the election ended (won or lost). */
  private tallyAndMaybeWin(): boolean {
    const outcome = tallyVotes(this.membership.voters, this.votes);
    if (outcome === 'won') {
      if (this.role === 'pre-candidate') {
        this.becomeCandidate();
        this.requestVotes('vote', this.term, false);
      } else {
        this.becomeLeader();
      }
      return true;
    }
    if (outcome === 'lost') {
      this.logger.info(`${this.id} lost the ${this.role === 'pre-candidate' ? 'pre-vote' : 'election'} at term ${this.term}`);
      this.becomeFollower(this.term, NONE);
      return true;
    }
    return false;
  }

  private stepCandidate(m: Message): void {
    switch (m.kind) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'pre-vote-response':
      case 'vote-response': {
        const expected = this.role === 'pre-candidate' ? 'pre-vote-response' : 'vote-response';
        if (m.kind !== expected) return;
        this.votes.set(m.from, m.granted);
        this.tallyAndMaybeWin();
        return;
      }
      case 'propose':
        this.logger.info(`${this.id} drops a forwarded proposal from ${m.from}: no leader during the election`);
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- followers

  private stepFollower(m: Message): void {
    switch (m.kind) {
      case 'append':
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeout-now':
        this.logger.info(`${this.id} received timeout-now from ${m.from}: campaigns at once`);
        this.startElection(true);
        return;
      case 'propose':
      case 'read-index':
        // Forwarded to us by a member with an older idea of the leader; pass it on.
        if (this.leader === NONE || this.leader === m.from) return;
        if (m.kind === 'propose') this.send({ to: this.leader, kind: 'propose', entries: m.entries });
        else this.send({ to: this.leader, kind: 'read-index', context: m.context });
        return;
      case 'read-index-response':
        this.readStates.push({ context: m.context, index: m.index });
        return;
      default:
        return;
    }
  }

  private handleAppend(m: MessageOf<'append'>): void {
    const log = this.log;
    if (m.prevIndex < log.commit) {
      // Everything up to our commit index is settled; say how far we are.
      this.sendAppendResponse(m.from, log.commit);
      return;
    }
    if (log.matchTerm(m.prevIndex, m.prevTerm)) {
      // Entries at or below our commit are identical by log matching; skip them.
      log.appendFromLeader(m.entries);
      const lastNewIndex = m.prevIndex + m.entries.length;
      log.commitTo(Math.min(m.commit, lastNewIndex));
      this.sendAppendResponse(m.from, lastNewIndex);
      return;
    }
    const hint = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex()), m.prevTerm);
    this.logger.debug(`${this.id} rejects append at ${m.prevTerm}/${m.prevIndex} from ${m.from}; hint ${hint.term}/${hint.index}`);
    this.send({ to: m.from, kind: 'append-response', index: m.prevIndex, reject: true, hintIndex: hint.index, hintTerm: hint.term });
  }

  private sendAppendResponse(to: NodeId, index: LogIndex): void {
    this.send({ to, kind: 'append-response', index, reject: false, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(m: MessageOf<'heartbeat'>): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ to: m.from, kind: 'heartbeat-response', context: m.context });
  }

  private handleSnapshot(m: MessageOf<'snapshot'>): void {
    const snapshot = m.snapshot;
    const meta = snapshot.meta;
    if (meta.index <= this.log.commit) {
      this.sendAppendResponse(m.from, this.log.commit);
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: just learn that it is committed.
      this.log.commitTo(meta.index);
      this.sendAppendResponse(m.from, this.log.commit);
      return;
    }
    this.logger.info(`${this.id} restores a snapshot at ${meta.term}/${meta.index} from ${m.from}`);
    this.log.restoreSnapshot(snapshot);
    this.membership = membershipOf(meta.conf);
    this.membershipIndex = meta.index;
    this.membershipHistory = [{ index: meta.index, conf: meta.conf }];
    this.sendAppendResponse(m.from, this.log.lastIndex());
  }

  // ---------------------------------------------------------------- the leader

  private tickLeader(): void {
    this.heartbeatElapsedTicks++;
    this.electionElapsedTicks++;
    if (this.electionElapsedTicks >= this.electionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      if (this.checkQuorum && !this.checkQuorumActive()) {
        this.logger.warn(`${this.id} steps down at term ${this.term}: no quorum heard within an election timeout`);
        this.becomeFollower(this.term, NONE);
        return;
      }
      if (this.transferee !== NONE) {
        this.logger.warn(`${this.id} aborts the leadership transfer to ${this.transferee}: not done within an election timeout`);
        this.transferee = NONE;
      }
    }
    for (const [id, progress] of this.progress) {
      if (progress.state !== 'snapshot') continue;
      // A snapshot lost in transit would stall the follower forever; retry it.
      if (++progress.snapshotElapsedTicks >= this.electionTimeoutTicks) {
        progress.becomeProbe();
        this.maybeSendAppend(id, true);
      }
    }
    if (this.heartbeatElapsedTicks >= this.heartbeatIntervalTicks) {
      this.heartbeatElapsedTicks = 0;
      this.broadcastHeartbeat(this.readOnly.lastContext());
      return;
    }
    // Commit news that no follower waited for rides on the next append. When
    // none went out for a whole tick, send it on its own: followers' state
    // machines (and their watchers) trail the leader by two ticks at most.
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue;
      const stalled = progress.sentCommit === progress.sentCommitAtTick;
      if (stalled && this.commitNewsWaiting(progress)) {
        this.maybeSendAppend(id, true);
      }
      progress.sentCommitAtTick = progress.sentCommit;
    }
  }

  /** What tickLeader would next do something on, in ticks from now (see ticksUntilTimeout). */
  private leaderTicksUntilWork(): number {
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue;
      if (progress.state === 'snapshot') return 1;
      if (this.commitNewsWaiting(progress)) return 1;
    }
    return Math.max(1, Math.min(this.heartbeatIntervalTicks - this.heartbeatElapsedTicks, this.electionTimeoutTicks - this.electionElapsedTicks));
  }

  /** A replicating follower holds entries it has not been told are committed. */
  private commitNewsWaiting(progress: Progress): boolean {
    return progress.state === 'replicate' && progress.sentCommit < Math.min(progress.match, this.log.commit);
  }

  /** Whether a quorum of voters was heard from since the last check; resets the marks. */
  protected checkQuorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, progress] of this.progress) {
      active.set(id, id === this.id || progress.recentActive);
      if (id !== this.id) progress.recentActive = false;
    }
    return tallyVotes(this.membership.voters, active) === 'won';
  }

  private stepLeader(m: Message): void {
    switch (m.kind) {
      case 'propose': {
        const result = this.proposePayloads(m.entries);
        if (result.kind === 'refused') this.logger.info(`${this.id} drops a proposal forwarded by ${m.from}: ${result.message}`);
        else if (result.kind === 'accepted') this.wantCommit(m.from, result.index);
        return;
      }
      case 'read-index': {
        const refusal = this.handleReadIndex(m.context, m.from);
        if (refusal !== undefined) this.logger.info(`${this.id} drops a read forwarded by ${m.from}: ${refusal.message}`);
        return;
      }
      case 'append-response':
        this.handleAppendResponse(m);
        return;
      case 'heartbeat-response':
        this.handleHeartbeatResponse(m);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        assert(false, `two leaders in term ${m.term}: ${this.id} received ${m.kind} from ${m.from}`);
        return;
      default:
        return;
    }
  }

  private handleAppendResponse(m: MessageOf<'append-response'>): void {
    const progress = this.progress.get(m.from);
    if (progress === undefined) return;
    progress.recentActive = true;
    if (m.reject) {
      // Fast backtracking: jump to where our log and the hint can agree (§5.3).
      let retryAt = m.hintIndex;
      if (m.hintTerm > 0) retryAt = this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
      if (progress.maybeDecreaseTo(m.index, retryAt)) {
        if (progress.state === 'replicate') progress.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = progress.isPaused();
    if (!progress.maybeUpdate(m.index)) return;
    if (progress.state === 'probe') {
      progress.becomeReplicate();
    } else if (progress.state === 'snapshot' && progress.match + 1 >= this.log.firstIndex()) {
      progress.becomeProbe();
      progress.becomeReplicate();
    } else if (progress.state === 'replicate') {
      progress.inflights.freeTo(m.index);
    }
    if (this.maybeCommit()) {
      this.broadcastAppend();
    } else if (wasPaused) {
      // The follower may have missed commit news while paused: send it if it waits on it.
      this.sendCommitIfWanted(m.from, progress);
    }
    while (this.maybeSendAppend(m.from, false)) {
      // Stream more entries until the window is full or the follower is caught up.
    }
    if (m.from === this.transferee && progress.match === this.log.lastIndex()) {
      this.logger.info(`${this.id} sends timeout-now to ${m.from}: it has caught up`);
      this.send({ to: m.from, kind: 'timeout-now' });
    }
  }

  private handleHeartbeatResponse(m: MessageOf<'heartbeat-response'>): void {
    const progress = this.progress.get(m.from);
    if (progress === undefined) return;
    progress.recentActive = true;
    progress.probeSent = false;
    // An answer means the link works: if the window is full, a message may have
    // been lost; free a slot so replication can make progress again.
    if (progress.state === 'replicate' && progress.inflights.full()) progress.inflights.freeFirst();
    // A lagging follower gets an append even when `next` is past our log: if an
    // earlier append was lost, its rejection puts the follower back into probe.
    if (progress.match < this.log.lastIndex()) this.maybeSendAppend(m.from, true);
    if (m.context === '') return;
    for (const request of this.readOnly.acknowledge(m.context, m.from, this.membership.voters)) {
      this.answerRead(request.context, request.from, request.index);
    }
  }

  /** Commit the highest index a quorum holds, if that is allowed; returns whether commit moved. */
  private maybeCommit(): boolean {
    const index = quorumMatchIndex(this.membership.voters, (id) =>
      id === this.id ? this.log.stableLast : (this.progress.get(id)?.match ?? 0),
    );
    if (index <= this.log.commit || !this.mayCommitAt(index)) return false;
    this.log.commitTo(index);
    if (this.log.term(this.log.commit) === this.term) this.releasePendingReads();
    return true;
  }

  private proposePayloads(payloads: readonly ProposalPayload[]): ProposeResult {
    if (this.role !== 'leader') {
      if (this.leader === NONE) return this.refuse('no-leader', 'no leader is known; retry once one is elected');
      if (!this.forwardProposals) {
        return this.refuse('not-leader', `member ${this.id} is not the leader; send the proposal to ${this.leader}`);
      }
      this.send({ to: this.leader, kind: 'propose', entries: payloads });
      return { kind: 'forwarded', leader: this.leader };
    }
    if (this.transferee !== NONE) {
      return this.refuse('transfer-in-progress', `leadership is moving to ${this.transferee}; retry there`);
    }
    let bytes = 0;
    for (const payload of payloads) bytes += payloadBytes(payload);
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.limits.maxUncommittedBytes) {
      return this.refuse(
        'uncommitted-limit',
        `the leader holds ${this.uncommittedBytes} uncommitted bytes (limit ${this.limits.maxUncommittedBytes}); retry when replication catches up`,
      );
    }
    for (const payload of payloads) {
      if (payload.kind !== 'conf-change') continue;
      const refusal = this.validateConfChange(payload.change);
      if (refusal !== undefined) return refusal;
    }
    const lastIndex = this.appendEntries(payloads);
    for (const payload of payloads) if (payload.kind === 'conf-change') this.pendingConfIndex = lastIndex;
    this.uncommittedBytes += bytes;
    this.broadcastPending = true;
    return { kind: 'accepted', term: this.term, index: lastIndex };
  }

  /** Append payloads at the end of the leader's log; returns the last new index. */
  private appendEntries(payloads: readonly ProposalPayload[]): LogIndex {
    let index = this.log.lastIndex();
    const entries: Entry[] = payloads.map((payload) => {
      index++;
      return payload.kind === 'normal'
        ? { kind: 'normal', term: this.term, index, data: payload.data }
        : { kind: 'conf-change', term: this.term, index, change: payload.change };
    });
    this.log.append(entries);
    return index;
  }

  private releaseUncommittedBytes(committed: readonly Entry[]): void {
    for (const entry of committed) {
      if (entry.term === this.term) this.uncommittedBytes = Math.max(0, this.uncommittedBytes - payloadBytes(entry));
    }
  }

  private flushBroadcast(): void {
    if (!this.broadcastPending) return;
    this.broadcastPending = false;
    if (this.role === 'leader') this.broadcastAppend();
  }

  /**
   * Send each follower the entries it lacks. Commit news alone goes out only
   * to followers waiting on it (see Progress.commitWanted); the rest learn it
   * from the next append or the next tick. Sending every commit advance to
   * every follower at once costs each follower a message, an answer and a
   * round of work per write, on the path of the next client request.
   */
  private broadcastAppend(): void {
    for (const [id, progress] of this.progress) {
      if (id !== this.id && !this.maybeSendAppend(id, false)) this.sendCommitIfWanted(id, progress);
    }
  }

  /** Follower `id` waits for `index` to commit: send it commit news as soon as there is any. */
  private wantCommit(id: NodeId, index: LogIndex): void {
    const progress = this.progress.get(id);
    if (progress === undefined) return;
    progress.commitWanted = Math.max(progress.commitWanted, index);
    this.sendCommitIfWanted(id, progress);
  }

  private sendCommitIfWanted(id: NodeId, progress: Progress): void {
    if (progress.sentCommit < Math.min(this.log.commit, progress.commitWanted)) this.maybeSendAppend(id, true);
  }

  private broadcastHeartbeat(context: string): void {
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit past what it is known to hold.
      const commit = Math.min(progress.match, this.log.commit);
      this.send({ to: id, kind: 'heartbeat', commit, context });
      progress.sentCommit = Math.max(progress.sentCommit, commit);
    }
  }

  /** Send the next append (or a snapshot) to `to`; returns whether a message went out. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const progress = this.progress.get(to);
    if (progress === undefined || progress.isPaused()) return false;
    const prevIndex = progress.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) return this.sendSnapshot(to, progress);
    const entries = progress.next <= this.log.lastIndex()
      ? this.log.slice(progress.next, this.log.lastIndex() + 1, this.limits.maxMessageBytes)
      : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const entry of entries) bytes += payloadBytes(entry);
    this.send({ to, kind: 'append', prevIndex, prevTerm, entries, commit: this.log.commit });
    progress.sentEntries(prevIndex + entries.length, entries.length, bytes);
    // The follower commits no further than the last entry this append vouches for.
    progress.sentCommit = Math.max(progress.sentCommit, Math.min(this.log.commit, prevIndex + entries.length));
    return true;
  }

  private sendSnapshot(to: NodeId, progress: Progress): boolean {
    const snapshot = this.log.snapshot();
    assert(snapshot !== undefined, `follower ${to} needs index ${progress.next - 1}, compacted without a snapshot`);
    this.logger.info(`${this.id} sends snapshot ${snapshot.meta.term}/${snapshot.meta.index} to ${to} (next ${progress.next})`);
    this.send({ to, kind: 'snapshot', snapshot });
    progress.becomeSnapshot(snapshot.meta.index);
    return true;
  }

  private addProgress(id: NodeId): void {
    const progress = new Progress(
      this.log.lastIndex() + 1,
      this.membership.learners.has(id),
      this.limits.maxInflightMessages,
      this.limits.maxInflightBytes,
    );
    if (id === this.id) progress.match = this.log.stableLast;
    this.progress.set(id, progress);
  }

  // ---------------------------------------------------------------- ReadIndex

  /** Serve or queue a read for `from`; returns a refusal when it cannot. */
  private handleReadIndex(context: string, from: NodeId): Extract<ReadIndexResult, { kind: 'refused' }> | undefined {
    if (this.readOnly.full() || this.pendingReads.length >= this.limits.maxPendingReads) {
      return this.refuse('read-limit', `${this.limits.maxPendingReads} reads are already pending; retry later`);
    }
    if (this.log.term(this.log.commit) !== this.term) {
      // Until an entry of our term commits we may not know the latest commit index.
      this.pendingReads.push({ context, from });
      return undefined;
    }
    this.confirmRead(context, from);
    return undefined;
  }

  private confirmRead(context: string, from: NodeId): void {
    if (this.membership.voters.size === 1) {
      this.answerRead(context, from, this.log.commit);
      return;
    }
    if (!this.readOnly.has(context)) {
      const request: ReadRequest = { context, from, index: this.log.commit, acks: new Set([this.id]) };
      this.readOnly.add(request);
    }
    this.broadcastHeartbeat(context);
  }

  private releasePendingReads(): void {
    const pending = this.pendingReads;
    this.pendingReads = [];
    for (const read of pending) this.confirmRead(read.context, read.from);
  }

  private answerRead(context: string, from: NodeId, index: LogIndex): void {
    if (from === this.id) {
      this.readStates.push({ context, index });
      return;
    }
    this.send({ to: from, kind: 'read-index-response', context, index });
    // The reader answers once it has applied `index`, so it must learn that it is committed.
    this.wantCommit(from, index);
  }

  // ---------------------------------------------------------------- membership

  private validateConfChange(change: ConfChange): ProposeResult | undefined {
    if (this.pendingConfIndex > this.log.applied) {
      const what = this.log.term(this.pendingConfIndex) === this.term && this.pendingConfIndex === this.firstIndexOfTerm()
        ? `this leader's first entry (index ${this.pendingConfIndex})`
        : `a membership change (index ${this.pendingConfIndex})`;
      return this.refuse('conf-change-pending', `${what} is not yet applied; retry after it is`);
    }
    const { voters, learners } = this.membership;
    const id = change.nodeId;
    const invalid = (why: string): ProposeResult => this.refuse('invalid-conf-change', `${describeConfChange(change)}: ${why}`);
    if (id === NONE) return invalid('0 is not a valid member id');
    switch (change.type) {
      case 'add-voter':
        return voters.has(id) ? invalid(`${id} is already a voter`) : undefined;
      case 'add-learner':
        if (voters.has(id)) return invalid(`${id} is a voter; remove it first to demote it`);
        return learners.has(id) ? invalid(`${id} is already a learner`) : undefined;
      case 'remove':
        if (!voters.has(id) && !learners.has(id)) return invalid(`${id} is not a member`);
        if (voters.has(id) && voters.size === 1) return invalid('the last voter cannot be removed');
        return undefined;
    }
  }

  /** The index of the no-op this leader appended when elected. */
  private firstIndexOfTerm(): LogIndex {
    let index = this.log.lastIndex();
    while (index > this.log.firstIndex() && this.log.term(index - 1) === this.term) index--;
    return index;
  }

  private applyConfChange(change: ConfChange, index: LogIndex): void {
    const { voters, learners } = this.membership;
    const id = change.nodeId;
    switch (change.type) {
      case 'add-voter':
        learners.delete(id);
        voters.add(id);
        break;
      case 'add-learner':
        if (!voters.has(id)) learners.add(id);
        break;
      case 'remove':
        voters.delete(id);
        learners.delete(id);
        break;
    }
    this.membershipIndex = index;
    this.membershipHistory.push({ index, conf: confStateOf(this.membership) });
    this.logger.info(`${this.id} applies ${describeConfChange(change)} at ${index}: ${JSON.stringify(confStateOf(this.membership))}`);
    if (this.role !== 'leader') return;
    if (!voters.has(this.id)) {
      this.logger.info(`${this.id} steps down: it was removed from the voters`);
      this.becomeFollower(this.term, NONE);
      return;
    }
    if (change.type === 'remove') {
      this.progress.delete(id);
      if (this.transferee === id) this.transferee = NONE;
    } else if (!this.progress.has(id)) {
      this.addProgress(id);
    } else {
      this.progress.get(id)!.learner = learners.has(id);
    }
    // The quorum may have changed: entries may now be committed, and a new
    // member needs its first append.
    this.maybeCommit();
    this.broadcastPending = true;
  }

  /** Keep the membership in force at `index` and every later one. */
  private pruneMembershipHistory(index: LogIndex): void {
    let firstKept = 0;
    this.membershipHistory.forEach((record, position) => {
      if (record.index <= index) firstKept = position;
    });
    this.membershipHistory = this.membershipHistory.slice(firstKept);
  }

  private membershipAt(index: LogIndex): ConfState {
    let conf = this.membershipHistory[0]!.conf;
    for (const record of this.membershipHistory) if (record.index <= index) conf = record.conf;
    return conf;
  }

  // ---------------------------------------------------------------- plumbing

  private currentHardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.commit };
  }

  private currentSoftState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  private hardStateChanged(): boolean {
    const handed = this.handedHardState;
    return handed.term !== this.term || handed.vote !== this.vote || handed.commit !== this.log.commit;
  }

  private softStateChanged(): boolean {
    return this.handedSoftState.leader !== this.leader || this.handedSoftState.role !== this.role;
  }

  private refuse(reason: RefusalReason, message: string): { kind: 'refused'; reason: RefusalReason; leader: NodeId; message: string } {
    return { kind: 'refused', reason, leader: this.leader, message };
  }

  private send(message: DistributiveOmit<Message, 'from' | 'term'>): void {
    this.sendWithTerm(message, this.term);
  }

  private sendWithTerm(message: DistributiveOmit<Message, 'from' | 'term'>, term: Term): void {
    const full = { ...message, from: this.id, term } as Message;
    if (mustWaitForPersist(full.kind)) this.messagesAfterPersist.push(full);
    else this.messages.push(full);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
