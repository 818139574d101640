// One master's replicated store: the Raft node on disk and network, the state
// machine it applies to, the lessor, and the bookkeeping that lets any member
// take a client's request.
//
// Writes: the request becomes a Command with a unique id, proposed through
// the local Raft node (a follower forwards it to the leader inside Raft). The
// member answers its client when it applies the entry carrying that id. If
// the leader changes before that, the member proposes it again; so it does
// when the write is not applied within a while under the same leader (a
// forwarded proposal lost on a peer link that broke, a leadership transfer
// that gave up). The state machine applies an id at most once, so a retry is
// safe, and a client whose request was in flight during a failover or a
// broken link simply sees it succeed late.
//
// Reads: linearizable reads share ReadIndex rounds (all reads that arrive
// while one round is in flight ride on the next), then read the local store.

import { nanoid } from 'nanoid';
import type * as grpc from '@grpc/grpc-js';
import { NONE, type ConfChange, type LogIndex, type Message, type NodeId, type ProposeResult, type Ready, type Status } from '../../raft/core/index.js';
import type { MvccStore, WatchHub } from '../../raft/kv/index.js';
import { NodeStopped, ProposalRefused, RaftNode, ReadTimedOut } from '../../raft/node/index.js';
import { LevelRaftStorage } from '../../raft/storage/index.js';
import { GrpcTransport, type TransportLogger } from '../../raft/transport/index.js';
import * as storepb from '../../proto/gen/store.js';
import { Compactor, type CompactionMode } from './compactor.js';
import { Lessor, type LessorClock } from './lessor.js';
import { clusterIdOf, formatId, memberIdOf } from './members.js';
import { StoreStateMachine, memberToWire, type MemberInfo, type Outcome, type StateListener } from './state-machine.js';

export type CommandOp = NonNullable<storepb.Command['op']>;

/** Why a request could not be served; the API layer maps `code` to a gRPC status. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: 'timeout' | 'too-many-requests' | 'stopped' | 'not-leader' | 'no-leader' | 'invalid' | 'not-found' | 'failed-precondition',
    message: string,
    readonly leader: NodeId = NONE,
  ) {
    super(message);
  }
}

export interface StoreLogger extends TransportLogger {
  error(message: string): void;
}

export interface StoreOptions {
  readonly name: string;
  readonly dataDir: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  /** The founding members (from --initial-cluster). */
  readonly initialCluster: readonly MemberInfo[];
  /** 'new': found a cluster with initialCluster; 'existing': join one (storage empty, wait for the leader). */
  readonly initialClusterState: 'new' | 'existing';
  readonly clusterToken: string;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly snapshotCount: number;
  readonly snapshotCatchUpEntries: number;
  readonly requestTimeoutMs: number;
  /** Larger commands are refused (etcd's --max-request-bytes). */
  readonly maxRequestBytes: number;
  readonly peerCredentials: grpc.ChannelCredentials;
  readonly logger: StoreLogger;
  readonly onFatal: (error: Error) => void;
  readonly clock?: LessorClock;
  /** etcd's --auto-compaction-mode/--auto-compaction-retention (retention 0: off). */
  readonly autoCompaction?: { readonly mode: CompactionMode; readonly retention: number; readonly intervalMs?: number };
}

interface PendingWrite {
  readonly data: Uint8Array;
  readonly resolve: (outcome: Outcome) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly observer: WriteObserver | undefined;
  /** performance.now() of its latest proposal. */
  proposedAt: number;
  /** How its latest proposal went: 'accepted' means it is in this leader's own log. */
  proposal: ProposeResult['kind'];
  /** Proposals so far; each retry waits twice as long as the one before. */
  proposals: number;
}

/** Told when a write this member proposed is committed (before it is applied here). */
export interface WriteObserver {
  committed(): void;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** A seeded-enough RNG for election timeouts (the core takes it injected). */
function systemRng(): { nextInt(maxExclusive: number): number } {
  return { nextInt: (maxExclusive) => Math.floor(Math.random() * maxExclusive) };
}

/** How soon a failed publish of this member's client URLs is tried again. */
const PUBLISH_RETRY_MS = 1000;

/**
 * A write not applied this long after its proposal is proposed again (at
 * least; an election timeout if longer): Raft does not tell a follower that
 * the proposal it forwarded was lost, and a healthy cluster applies a write in
 * milliseconds, so by then it is lost or stuck behind a fault.
 */
const REPROPOSE_AFTER_MS = 1000;

export class ReplicatedStore implements StateListener {
  readonly memberId: NodeId;
  readonly clusterId: number;
  private node!: RaftNode;
  private storage!: LevelRaftStorage;
  readonly stateMachine: StoreStateMachine;
  readonly transport: GrpcTransport;
  private readonly lessor: Lessor;
  private readonly pending = new Map<string, PendingWrite>();
  private readonly requestPrefix = nanoid(8);
  private requestSequence = 0;
  private leader: NodeId = NONE;
  private term = 0;
  private isLeader = false;
  private readWaiting: Waiter[] = [];
  private reading = false;
  private lessorTimer: NodeJS.Timeout | undefined;
  private compactionTimer: NodeJS.Timeout | undefined;
  private reproposeTimer: NodeJS.Timeout | undefined;
  private published = false;
  private stopped = false;
  private readonly leaderListeners = new Set<(leader: NodeId) => void>();

  private constructor(private readonly options: StoreOptions) {
    this.memberId = memberIdOf(options.peerUrls, options.clusterToken);
    this.clusterId = clusterIdOf(options.clusterToken);
    const clock = options.clock ?? { now: () => performance.now() };
    this.lessor = new Lessor(clock, (id) => this.proposeExpiry(id));
    this.stateMachine = new StoreStateMachine(options.initialCluster, this);
    this.transport = new GrpcTransport(
      { self: this.memberId, credentials: options.peerCredentials, logger: options.logger },
      {
        step: (message) => this.node.step(message),
        reportUnreachable: (peer) => this.node.reportUnreachable(peer),
        reportSnapshot: (peer, ok) => this.node.reportSnapshot(peer, ok),
      },
    );
  }

  static async open(options: StoreOptions): Promise<ReplicatedStore> {
    const store = new ReplicatedStore(options);
    await store.openNode();
    return store;
  }

  private async openNode(): Promise<void> {
    const { options } = this;
    const self = options.initialCluster.find((member) => member.id === this.memberId);
    if (options.initialClusterState === 'new' && self === undefined) {
      throw new StoreError(
        'invalid',
        `--initial-cluster does not list this member's peer URLs (${options.peerUrls.join(',')}); member ${options.name} would have id ${formatId(this.memberId)}`,
      );
    }
    const { storage, state } = await LevelRaftStorage.open(options.dataDir);
    this.storage = storage;
    for (const member of options.initialCluster) if (member.peerUrls[0] !== undefined) this.transport.setPeer(member.id, member.peerUrls[0]);
    // Ticks finer than the heartbeat: the randomized election timeout then
    // takes many distinct values (with one tick per heartbeat, 250-500 ms
    // would have only five), so two followers rarely campaign at once and
    // split the vote after a leader dies.
    const tickMs = Math.max(1, Math.floor(options.heartbeatIntervalMs / 5));
    const heartbeatTicks = Math.max(1, Math.round(options.heartbeatIntervalMs / tickMs));
    const electionTicks = Math.max(2 * heartbeatTicks, Math.round(options.electionTimeoutMs / tickMs));
    this.node = new RaftNode({
      config: {
        id: this.memberId,
        electionTimeoutTicks: electionTicks,
        heartbeatIntervalTicks: heartbeatTicks,
        rng: systemRng(),
        preVote: true,
        checkQuorum: true,
        maxMessageBytes: 1024 * 1024,
        maxInflightMessages: 256,
        maxUncommittedBytes: 64 * 1024 * 1024,
        logger: {
          debug: () => {},
          info: (message) => options.logger.info(message),
          warn: (message) => options.logger.warn(message),
        },
      },
      storage,
      stored: state,
      stateMachine: this.stateMachine,
      transport: this.transport,
      initialVoters: options.initialClusterState === 'new' ? options.initialCluster.map((member) => member.id) : [],
      tickIntervalMs: tickMs,
      snapshotEveryEntries: options.snapshotCount,
      snapshotCatchUpEntries: options.snapshotCatchUpEntries,
      onReady: (ready) => this.onReady(ready),
      onFatal: (error) => options.onFatal(error),
    });
  }

  start(): void {
    this.node.start();
    this.lessorTimer = setInterval(() => this.lessor.check(), 100);
    const reproposeAfterMs = Math.max(REPROPOSE_AFTER_MS, this.options.electionTimeoutMs);
    this.reproposeTimer = setInterval(() => this.reproposeStale(reproposeAfterMs), reproposeAfterMs / 4);
    const auto = this.options.autoCompaction;
    if (auto !== undefined && auto.retention > 0) {
      // etcd checks revision mode every 5 minutes and periodic mode at a tenth of the retention.
      const intervalMs = auto.intervalMs ?? (auto.mode === 'revision' ? 5 * 60_000 : Math.max(1000, Math.floor(auto.retention / 10)));
      const compactor = new Compactor(
        { mode: auto.mode, retention: auto.retention },
        {
          isLeader: () => this.isLeader,
          revision: () => this.kv.revision,
          compactRevision: () => this.kv.compactRevision,
          now: () => performance.now(),
          compact: async (revision) => {
            const outcome = await this.write({ $case: 'compaction', value: { revision, physical: false } });
            if (outcome.kind === 'error') this.options.logger.warn(`auto-compaction to revision ${revision} failed: ${outcome.error.message}`);
            else this.options.logger.info(`auto-compacted the history up to revision ${revision}`);
          },
        },
      );
      this.compactionTimer = setInterval(() => {
        compactor.tick().catch((error: unknown) => this.options.logger.warn(`auto-compaction failed: ${String(error)}; will retry`));
      }, intervalMs);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.lessorTimer !== undefined) clearInterval(this.lessorTimer);
    if (this.compactionTimer !== undefined) clearInterval(this.compactionTimer);
    if (this.reproposeTimer !== undefined) clearInterval(this.reproposeTimer);
    const stopped = this.stoppedError();
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(stopped);
    }
    this.pending.clear();
    for (const waiter of this.readWaiting) waiter.reject(stopped);
    this.readWaiting = [];
    await this.node.stop();
    this.transport.close();
    await this.storage.close();
  }

  private stoppedError(): StoreError {
    return new StoreError('stopped', `member ${this.options.name} is shutting down`);
  }

  get kv(): MvccStore {
    return this.stateMachine.kv;
  }

  get watchHub(): WatchHub {
    return this.stateMachine.hub;
  }

  /** Whether this member leads the Raft group now. */
  get leading(): boolean {
    return this.isLeader;
  }

  raftStatus(): Status {
    return this.node.status();
  }

  /** A message from a peer (the transport server). */
  step(message: Message): void {
    if (!this.stopped) this.node.step(message);
  }

  onLeaderChange(listener: (leader: NodeId) => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  // ------------------------------------------------------------ writes

  /** Propose a command and resolve with its outcome once applied here. */
  write(op: CommandOp, observer?: WriteObserver): Promise<Outcome> {
    if (this.stopped) return Promise.reject(this.stoppedError());
    const requestId = `${this.requestPrefix}${(++this.requestSequence).toString(36)}`;
    const data = storepb.Command.encode({ requestId, op }).finish();
    if (data.byteLength > this.options.maxRequestBytes) {
      return Promise.reject(new StoreError('invalid', `etcdserver: request is too large (${data.byteLength} bytes; --max-request-bytes is ${this.options.maxRequestBytes})`));
    }
    return new Promise<Outcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new StoreError('timeout', 'etcdserver: request timed out'));
      }, this.options.requestTimeoutMs);
      const pending: PendingWrite = { data, resolve, reject, timer, observer, proposedAt: 0, proposal: 'refused', proposals: 0 };
      this.pending.set(requestId, pending);
      this.submit(requestId, pending);
    });
  }

  private submit(requestId: string, pending: PendingWrite): void {
    pending.proposedAt = performance.now();
    pending.proposals++;
    const result = this.node.submit(pending.data);
    pending.proposal = result.kind;
    if (result.kind !== 'refused') return;
    switch (result.reason) {
      case 'no-leader':
      case 'transfer-in-progress':
        return; // proposed again when a leader is known
      case 'uncommitted-limit':
        this.fail(requestId, new StoreError('too-many-requests', `etcdserver: too many requests (${result.message})`));
        return;
      default:
        this.fail(requestId, new StoreError('failed-precondition', result.message, result.leader));
    }
  }

  /**
   * Propose again each pending write that a known leader has not applied
   * within `afterMs` (doubling with each retry of that write, so an overloaded
   * leader gets at most a few copies). A write in this leader's own log is not
   * lost while it stays leader; a leader change proposes everything again.
   */
  private reproposeStale(afterMs: number): void {
    if (this.leader === NONE) return; // proposed again when a leader is known
    // Still applying what is committed: the writes may be among it. (This also keeps a copy from landing
    // far behind its original, beyond the state machine's window of request ids.)
    const status = this.node.status();
    if (status.applied < status.commit) return;
    const now = performance.now();
    let count = 0;
    for (const [requestId, pending] of this.pending) {
      if (pending.proposal === 'accepted') continue;
      if (now - pending.proposedAt < afterMs * 2 ** (pending.proposals - 1)) continue;
      count++;
      this.submit(requestId, pending);
    }
    if (count > 0) this.options.logger.warn(`proposing ${count} write(s) again: not applied within ${afterMs} ms under leader ${formatId(this.leader)}`);
  }

  /** The pending write with this id, no longer pending (undefined if another member proposed it). */
  private takePending(requestId: string): PendingWrite | undefined {
    const pending = this.pending.get(requestId);
    if (pending === undefined) return undefined;
    this.pending.delete(requestId);
    clearTimeout(pending.timer);
    return pending;
  }

  private fail(requestId: string, error: Error): void {
    this.takePending(requestId)?.reject(error);
  }

  private proposeExpiry(id: number): void {
    const renewedAt = this.stateMachine.renewedAt(id);
    if (renewedAt === undefined) return;
    this.write({ $case: 'leaseExpire', value: { id, renewedAt } }).catch((error: unknown) =>
      this.options.logger.warn(`proposing the expiry of lease ${formatId(id)} failed: ${String(error)}; will retry`),
    );
  }

  // ------------------------------------------------------------ reads

  /** Resolve once this member has applied everything committed before the call. */
  linearizableBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(this.stoppedError());
    return new Promise<void>((resolve, reject) => {
      this.readWaiting.push({ resolve, reject });
      if (!this.reading) this.startReadRound();
    });
  }

  private startReadRound(): void {
    const round = this.readWaiting;
    this.readWaiting = [];
    this.reading = true;
    this.confirmReadIndex(performance.now() + this.options.requestTimeoutMs)
      .then(
        () => round.forEach((waiter) => waiter.resolve()),
        (error: Error) => round.forEach((waiter) => waiter.reject(error)),
      )
      .finally(() => {
        this.reading = false;
        if (this.readWaiting.length > 0 && !this.stopped) this.startReadRound();
      });
  }

  private async confirmReadIndex(deadline: number): Promise<void> {
    const attemptMs = Math.max(2 * this.options.electionTimeoutMs, 200);
    for (;;) {
      if (this.stopped) throw this.stoppedError();
      try {
        await this.node.readBarrier(attemptMs);
        return;
      } catch (error) {
        const retriable = error instanceof ReadTimedOut || (error instanceof ProposalRefused && (error.reason === 'no-leader' || error.reason === 'read-limit' || error.reason === 'transfer-in-progress'));
        if (error instanceof NodeStopped) throw new StoreError('stopped', error.message);
        if (!retriable) throw error instanceof ProposalRefused ? new StoreError('failed-precondition', error.message, error.leader) : error;
        if (performance.now() > deadline) throw new StoreError('timeout', 'etcdserver: request timed out (no leader confirmed the read)');
        if (error instanceof ProposalRefused) await this.waitForLeader(deadline);
      }
    }
  }

  private waitForLeader(deadline: number): Promise<void> {
    if (this.leader !== NONE) return new Promise((resolve) => setTimeout(resolve, this.options.heartbeatIntervalMs));
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, deadline - performance.now()));
      const unsubscribe = this.onLeaderChange(() => done());
      function done(): void {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
  }

  // ------------------------------------------------------------ membership

  /** Add a member (as a learner when asked). Only the leader can; others get not-leader naming it. */
  async addMember(peerUrls: readonly string[], learner: boolean): Promise<MemberInfo> {
    this.requireLeader();
    const id = memberIdOf(peerUrls, this.options.clusterToken);
    if (this.stateMachine.member(id) !== undefined) throw new StoreError('failed-precondition', `etcdserver: member ID already exist (peer URLs ${peerUrls.join(',')} belong to member ${formatId(id)})`);
    for (const member of this.stateMachine.members()) {
      if (member.peerUrls.some((url) => peerUrls.includes(url))) throw new StoreError('failed-precondition', `etcdserver: Peer URLs already exists (member ${formatId(member.id)})`);
    }
    const info: MemberInfo = { id, name: '', peerUrls, clientUrls: [] };
    const context = storepb.MemberInfo.encode(memberToWire(info)).finish();
    await this.changeMembership({ type: learner ? 'add-learner' : 'add-voter', nodeId: id, context });
    return info;
  }

  async promoteMember(id: NodeId): Promise<void> {
    this.requireLeader();
    const status = this.node.status();
    if (!status.conf.learners.includes(id)) {
      if (status.conf.voters.includes(id)) throw new StoreError('failed-precondition', 'etcdserver: can only promote a learner member');
      throw new StoreError('not-found', `etcdserver: member not found (${formatId(id)})`);
    }
    const progress = status.progress?.get(id);
    if (progress !== undefined && progress.match + 1000 < status.lastIndex) {
      throw new StoreError('failed-precondition', `etcdserver: can only promote a learner member which is in sync with leader (it has ${progress.match} of ${status.lastIndex})`);
    }
    await this.changeMembership({ type: 'add-voter', nodeId: id });
  }

  async removeMember(id: NodeId): Promise<void> {
    this.requireLeader();
    if (this.stateMachine.member(id) === undefined) throw new StoreError('not-found', `etcdserver: member not found (${formatId(id)})`);
    await this.changeMembership({ type: 'remove', nodeId: id });
  }

  private requireLeader(): void {
    if (!this.isLeader) throw new StoreError(this.leader === NONE ? 'no-leader' : 'not-leader', 'etcdserver: not leader', this.leader);
  }

  private async changeMembership(change: ConfChange): Promise<void> {
    try {
      await this.node.proposeConfChange(change);
    } catch (error) {
      if (error instanceof ProposalRefused) throw new StoreError('failed-precondition', `etcdserver: ${error.message}`, error.leader);
      throw error;
    }
  }

  transferLeadership(target: NodeId): void {
    this.requireLeader();
    try {
      this.node.transferLeadership(target);
    } catch (error) {
      if (error instanceof ProposalRefused) throw new StoreError('failed-precondition', error.message, error.leader);
      throw error;
    }
  }

  // ------------------------------------------------------------ the Raft side

  private onReady(ready: Ready): void {
    const soft = ready.softState;
    if (ready.hardState !== undefined) this.term = ready.hardState.term;
    if (soft === undefined) return;
    const changed = soft.leader !== this.leader;
    this.leader = soft.leader;
    const leading = soft.role === 'leader';
    if (leading !== this.isLeader) {
      this.isLeader = leading;
      this.lessor.setLeader(leading);
    }
    if (!changed) return;
    this.options.logger.info(`member ${this.options.name} (${formatId(this.memberId)}) sees leader ${formatId(soft.leader)} at term ${this.term}`);
    if (soft.leader !== NONE) {
      // Propose again what waited for a leader or may have been lost with the old one.
      for (const [requestId, pending] of this.pending) this.submit(requestId, pending);
      if (!this.published) this.publish();
    }
    for (const listener of this.leaderListeners) listener(soft.leader);
  }

  private publish(): void {
    this.published = true;
    const value = { id: this.memberId, name: this.options.name, clientUrls: [...this.options.clientUrls] };
    this.write({ $case: 'memberPublish', value }).catch((error: unknown) => {
      this.published = false;
      if (this.stopped) return;
      // A new cluster's first leader is busy at first (or a write times out): try again soon, not only at the next leader change.
      this.options.logger.warn(`publishing this member's client URLs failed: ${String(error)}; retrying in ${PUBLISH_RETRY_MS} ms`);
      setTimeout(() => {
        if (!this.published && !this.stopped && this.leader !== NONE) this.publish();
      }, PUBLISH_RETRY_MS).unref();
    });
  }

  committed(requestId: string): void {
    this.pending.get(requestId)?.observer?.committed();
  }

  applied(requestId: string, outcome: Outcome, _index: LogIndex): void {
    this.takePending(requestId)?.resolve(outcome);
  }

  leaseRenewed(id: number, ttlSeconds: number): void {
    this.lessor.renewed(id, ttlSeconds);
  }

  leaseRemoved(id: number): void {
    this.lessor.removed(id);
  }

  leaseRemainingSeconds(id: number): number | undefined {
    return this.lessor.remainingSeconds(id);
  }

  membersChanged(): void {
    const members = this.stateMachine.members();
    const known = new Set<NodeId>();
    for (const member of members) {
      known.add(member.id);
      if (member.peerUrls[0] !== undefined) this.transport.setPeer(member.id, member.peerUrls[0]);
    }
    for (const peer of this.transport.peerIds()) if (!known.has(peer)) this.transport.removePeer(peer);
  }

  /** The etcd response header for an answer given now. */
  header(revision = this.kv.revision): { clusterId: number; memberId: number; revision: number; raftTerm: number } {
    return { clusterId: this.clusterId, memberId: this.memberId, revision, raftTerm: this.term };
  }
}
