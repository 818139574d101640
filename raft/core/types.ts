// Public types of the Raft core. Everything here is plain data: the core never
// performs I/O, reads a clock or draws randomness of its own.

/** A member's id. 0 is never a valid id: it means "none" (no leader, no vote). */
export type NodeId = number;
export type Term = number;
export type LogIndex = number;

export const NONE: NodeId = 0;

/**
 * A membership change. `context` is opaque to the core: the application puts
 * what it needs to know about the member there (its name and addresses).
 */
export type ConfChange =
  | { readonly type: 'add-voter'; readonly nodeId: NodeId; readonly context?: Uint8Array } // also promotes a learner
  | { readonly type: 'add-learner'; readonly nodeId: NodeId; readonly context?: Uint8Array }
  | { readonly type: 'remove'; readonly nodeId: NodeId; readonly context?: Uint8Array };

/** A log entry. `normal` entries with empty data are the no-op a new leader appends. */
export type Entry =
  | { readonly kind: 'normal'; readonly term: Term; readonly index: LogIndex; readonly data: Uint8Array }
  | { readonly kind: 'conf-change'; readonly term: Term; readonly index: LogIndex; readonly change: ConfChange };

/** The membership: voters elect and commit; learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** What must be durable before a member answers a vote or acknowledges entries. */
export interface HardState {
  readonly term: Term;
  readonly vote: NodeId;
  readonly commit: LogIndex;
}

export interface SnapshotMeta {
  readonly index: LogIndex;
  readonly term: Term;
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The application's serialized state machine at meta.index. */
  readonly data: Uint8Array;
}

/** Fields every message carries. */
interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

export type Message = Envelope & MessageBody;

export type MessageBody =
  | { readonly kind: 'pre-vote'; readonly lastLogIndex: LogIndex; readonly lastLogTerm: Term }
  | {
      readonly kind: 'vote';
      readonly lastLogIndex: LogIndex;
      readonly lastLogTerm: Term;
      /** Set when the campaign follows a TimeoutNow: voters skip the leader-lease check. */
      readonly transfer: boolean;
    }
  | { readonly kind: 'pre-vote-response'; readonly granted: boolean }
  | { readonly kind: 'vote-response'; readonly granted: boolean }
  | {
      readonly kind: 'append';
      readonly prevIndex: LogIndex;
      readonly prevTerm: Term;
      readonly entries: readonly Entry[];
      readonly commit: LogIndex;
    }
  | {
      readonly kind: 'append-response';
      /** On success: the highest index now known to match the leader. On reject: the rejected prevIndex. */
      readonly index: LogIndex;
      readonly reject: boolean;
      /** On reject: the index at which the leader should retry and the follower's term there. */
      readonly hintIndex: LogIndex;
      readonly hintTerm: Term;
    }
  | { readonly kind: 'heartbeat'; readonly commit: LogIndex; readonly context: string }
  | { readonly kind: 'heartbeat-response'; readonly context: string }
  | { readonly kind: 'snapshot'; readonly snapshot: Snapshot }
  | { readonly kind: 'timeout-now' }
  /** A proposal a follower forwards to its leader. */
  | { readonly kind: 'propose'; readonly entries: readonly ProposalPayload[] }
  /** A ReadIndex request a follower forwards to its leader, and the answer. */
  | { readonly kind: 'read-index'; readonly context: string }
  | { readonly kind: 'read-index-response'; readonly context: string; readonly index: LogIndex };

export type MessageKind = MessageBody['kind'];

/** What a client proposes; the leader assigns term and index. */
export type ProposalPayload =
  | { readonly kind: 'normal'; readonly data: Uint8Array }
  | { readonly kind: 'conf-change'; readonly change: ConfChange };

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/** A ReadIndex result: once the application has applied `index`, it may serve the read `context`. */
export interface ReadState {
  readonly context: string;
  readonly index: LogIndex;
}

/**
 * The work the core hands out. The driver must, in this order:
 *  1. send `messages` (may be concurrent with 2);
 *  2. persist `snapshot`, `entries` (replacing any stored entries from entries[0].index on)
 *     and `hardState` — synced to disk when `mustSync`;
 *  3. only then send `messagesAfterPersist` (votes and acknowledgements that promise durability);
 *  4. apply `snapshot` (if any) and then `committedEntries` to the state machine, in order;
 *  5. call `advance(ready)`.
 */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | undefined;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

/** The result of a proposal or read request. Refusals are values, with a message a user can act on. */
export type ProposeResult =
  | { readonly kind: 'accepted'; readonly term: Term; readonly index: LogIndex }
  | { readonly kind: 'forwarded'; readonly leader: NodeId }
  | { readonly kind: 'refused'; readonly reason: RefusalReason; readonly leader: NodeId; readonly message: string };

export type ReadIndexResult =
  | { readonly kind: 'pending' }
  | { readonly kind: 'refused'; readonly reason: RefusalReason; readonly leader: NodeId; readonly message: string };

export type TransferResult =
  | { readonly kind: 'started'; readonly target: NodeId }
  | { readonly kind: 'refused'; readonly reason: RefusalReason; readonly leader: NodeId; readonly message: string };

export type RefusalReason =
  | 'not-leader' // forwarding is disabled; `leader` names the known leader (NONE if unknown)
  | 'no-leader' // no leader is known to forward to
  | 'uncommitted-limit' // the leader holds too many uncommitted bytes; retry later
  | 'transfer-in-progress' // leadership is being transferred; retry at the new leader
  | 'conf-change-pending' // a membership change is still being applied
  | 'invalid-conf-change' // the change is not valid in the current membership
  | 'invalid-transfer' // the transfer target is not another voter
  | 'read-limit' // too many ReadIndex requests are pending; retry later
  | 'removed'; // this member is not part of the configuration

/** The injected source of randomness: returns an integer in [0, maxExclusive). */
export interface Rng {
  nextInt(maxExclusive: number): number;
}

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

export interface Config {
  readonly id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [n, 2n)). */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly rng: Rng;
  readonly logger?: Logger;
  /** Ask peers whether they would vote before disrupting the cluster with a new term. */
  readonly preVote?: boolean;
  /** A leader that hears from no quorum within an election timeout steps down. */
  readonly checkQuorum?: boolean;
  /** Refuse proposals on followers (naming the leader) instead of forwarding them. */
  readonly disableProposalForwarding?: boolean;
  /** Limit on the payload bytes of entries in one append message (at least one entry is always sent). */
  readonly maxMessageBytes?: number;
  /** Limit on append messages in flight to one follower in replicate mode. */
  readonly maxInflightMessages?: number;
  /** Limit on the payload bytes in flight to one follower. */
  readonly maxInflightBytes?: number;
  /** Limit on payload bytes appended by the leader but not yet committed; proposals beyond are refused. */
  readonly maxUncommittedBytes?: number;
  /** Limit on payload bytes of committed entries handed out in one Ready. */
  readonly maxCommittedBytesPerReady?: number;
}

/** The durable state a member restarts from (empty for a brand-new member). */
export interface InitialState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | undefined;
  /** Entries after the snapshot, contiguous. */
  readonly entries: readonly Entry[];
  /**
   * The membership of a brand-new cluster. A founding member with empty storage
   * writes it into its log as committed entries 1..n of term 1 (identical on
   * every founding member). Ignored once storage holds state; empty for a
   * member that joins an existing cluster (it learns the membership from the log).
   */
  readonly conf: ConfState;
  /** The highest index the application had applied before the restart (0 if it keeps no state). */
  readonly applied: LogIndex;
}

export interface ProgressStatus {
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly inflight: number;
  readonly learner: boolean;
}

export interface Status {
  readonly id: NodeId;
  readonly term: Term;
  readonly vote: NodeId;
  readonly role: Role;
  readonly leader: NodeId;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly conf: ConfState;
  readonly transferee: NodeId;
  /** Only on the leader. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | undefined;
}

export function payloadBytes(entry: Entry | ProposalPayload): number {
  return entry.kind === 'normal' ? entry.data.byteLength : 16;
}
