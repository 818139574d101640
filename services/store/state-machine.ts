// The masters' replicated state machine: every member applies the same log
// entries in the same order to the same state, so this file is deterministic
// (no clocks, no randomness): MVCC keys and leases (raft/kv), the member
// table, the lease renewal marks and the window of recent request ids.
//
// What it tells the rest of the process (answers for waiting clients, lease
// countdowns, member changes) goes out through the listener; the listener
// never feeds anything back into the state.

import type { Entry, LogIndex, NodeId, Snapshot } from '../../raft/core/index.js';
import { KvError, MvccStore, WatchHub, decodeStoreSnapshot, encodeStoreSnapshot } from '../../raft/kv/index.js';
import type * as kv from '../../raft/kv/index.js';
import * as store from '../../proto/gen/store.js';
import { deleteRangeFromWire, putFromWire, txnFromWire } from './etcd-convert.js';

/** The result of one applied command, for the client that sent it. */
export type Outcome =
  | { readonly kind: 'put'; readonly response: kv.PutResponse }
  | { readonly kind: 'delete-range'; readonly response: kv.DeleteRangeResponse }
  | { readonly kind: 'txn'; readonly response: kv.TxnResponse }
  | { readonly kind: 'compaction'; readonly revision: number }
  | { readonly kind: 'lease-granted'; readonly id: number; readonly ttlSeconds: number }
  | { readonly kind: 'lease-revoked'; readonly revision: number }
  | { readonly kind: 'lease-renewed'; readonly id: number; readonly ttlSeconds: number }
  | { readonly kind: 'lease-expired'; readonly expired: boolean }
  | { readonly kind: 'member-published' }
  | { readonly kind: 'error'; readonly error: KvError };

export interface MemberInfo {
  readonly id: NodeId;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
}

export interface StateListener {
  /** A command was applied; `requestId` lets its proposer answer the client. */
  /** A command is committed and about to be applied (for tracing the two apart). */
  committed(requestId: string): void;
  applied(requestId: string, outcome: Outcome, index: LogIndex): void;
  /** A lease was granted or renewed: restart its countdown. */
  leaseRenewed(id: number, ttlSeconds: number): void;
  leaseRemoved(id: number): void;
  /** The member table changed (a member added, removed or published), or a snapshot replaced it. */
  membersChanged(): void;
}

/** How many applied request ids are remembered to skip a re-proposed duplicate. */
export const REQUEST_ID_WINDOW = 16384;

export class StoreStateMachine {
  private mvcc = new MvccStore();
  readonly hub: WatchHub;
  private readonly memberTable = new Map<NodeId, MemberInfo>();
  /** Log index of each live lease's latest grant or renewal. */
  private readonly renewals = new Map<number, LogIndex>();
  /**
   * Request id → its position among id-bearing commands applied, in the order
   * applied; only the last REQUEST_ID_WINDOW count (members must agree
   * exactly, so the window is defined by positions, not by when it is trimmed).
   */
  private recentIds = new Map<string, number>();
  private idsApplied = 0;
  private appliedIndex: LogIndex = 0;

  constructor(
    /** Founding members (from --initial-cluster), known before any entry is applied. */
    private readonly founders: readonly MemberInfo[],
    private readonly listener: StateListener,
  ) {
    this.hub = new WatchHub(this.mvcc);
  }

  get kv(): MvccStore {
    return this.mvcc;
  }

  get applied(): LogIndex {
    return this.appliedIndex;
  }

  members(): MemberInfo[] {
    return [...this.memberTable.values()].sort((a, b) => a.id - b.id);
  }

  member(id: NodeId): MemberInfo | undefined {
    return this.memberTable.get(id);
  }

  renewedAt(leaseId: number): LogIndex | undefined {
    return this.renewals.get(leaseId);
  }

  apply(entry: Entry): void {
    this.appliedIndex = entry.index;
    if (entry.kind === 'conf-change') {
      this.applyConfChange(entry.change.type, entry.change.nodeId, entry.change.context);
      return;
    }
    if (entry.data.byteLength === 0) return; // a new leader's no-op
    let command: store.Command;
    try {
      command = store.Command.decode(entry.data);
    } catch (error) {
      // Every member sees the same bytes, so every member skips it alike.
      this.listener.applied('', { kind: 'error', error: new KvError('invalid-argument', `entry ${entry.index} is not a command: ${String(error)}`) }, entry.index);
      return;
    }
    if (command.requestId !== '') {
      if (this.isRecent(command.requestId)) return; // re-proposed after a leader change; applied once already
      this.remember(command.requestId);
    }
    if (command.requestId !== '') this.listener.committed(command.requestId);
    const outcome = this.execute(command, entry.index);
    this.listener.applied(command.requestId, outcome, entry.index);
  }

  private isRecent(requestId: string): boolean {
    const position = this.recentIds.get(requestId);
    return position !== undefined && position > this.idsApplied - REQUEST_ID_WINDOW;
  }

  private remember(requestId: string): void {
    this.recentIds.delete(requestId); // re-inserted at the end: the map stays in applied order
    this.recentIds.set(requestId, ++this.idsApplied);
    // Forget in steps (cheaper than one delete per command); isRecent ignores the stale ones meanwhile.
    if (this.recentIds.size >= REQUEST_ID_WINDOW + 1024) {
      for (const [id, position] of this.recentIds) {
        if (position > this.idsApplied - REQUEST_ID_WINDOW) break;
        this.recentIds.delete(id);
      }
    }
  }

  private execute(command: store.Command, index: LogIndex): Outcome {
    const op = command.op;
    try {
      switch (op?.$case) {
        case 'put':
          return { kind: 'put', response: this.mvcc.put(putFromWire(op.value)) };
        case 'deleteRange':
          return { kind: 'delete-range', response: this.mvcc.deleteRange(deleteRangeFromWire(op.value)) };
        case 'txn':
          return { kind: 'txn', response: this.mvcc.txn(txnFromWire(op.value)) };
        case 'compaction':
          this.mvcc.compact(op.value.revision);
          return { kind: 'compaction', revision: this.mvcc.revision };
        case 'leaseGrant': {
          const { id, ttlSeconds } = op.value;
          this.mvcc.grantLease(id, ttlSeconds);
          this.renewals.set(id, index);
          this.listener.leaseRenewed(id, ttlSeconds);
          return { kind: 'lease-granted', id, ttlSeconds };
        }
        case 'leaseRevoke':
          return { kind: 'lease-revoked', revision: this.removeLease(op.value.id) };
        case 'leaseRenew': {
          const lease = this.mvcc.lease(op.value.id);
          if (lease === undefined) throw new KvError('lease-not-found', `etcdserver: requested lease not found (lease ${op.value.id.toString(16)})`);
          this.renewals.set(op.value.id, index);
          this.listener.leaseRenewed(op.value.id, lease.ttlSeconds);
          return { kind: 'lease-renewed', id: op.value.id, ttlSeconds: lease.ttlSeconds };
        }
        case 'leaseExpire': {
          const { id, renewedAt } = op.value;
          // A renewal applied after the leader decided wins over the expiry.
          if (this.renewals.get(id) !== renewedAt) return { kind: 'lease-expired', expired: false };
          this.removeLease(id);
          return { kind: 'lease-expired', expired: true };
        }
        case 'memberPublish': {
          const { id, name, clientUrls } = op.value;
          const known = this.memberTable.get(id);
          if (known !== undefined) {
            this.memberTable.set(id, { ...known, name, clientUrls });
            this.listener.membersChanged();
          }
          return { kind: 'member-published' };
        }
        case undefined:
          throw new KvError('invalid-argument', 'a command without an operation');
      }
    } catch (error) {
      if (error instanceof KvError) return { kind: 'error', error };
      throw error;
    }
  }

  private removeLease(id: number): number {
    if (this.mvcc.lease(id) === undefined) throw new KvError('lease-not-found', `etcdserver: requested lease not found (lease ${id.toString(16)})`);
    const { revision } = this.mvcc.revokeLease(id);
    this.renewals.delete(id);
    this.listener.leaseRemoved(id);
    return revision;
  }

  private applyConfChange(type: 'add-voter' | 'add-learner' | 'remove', id: NodeId, context: Uint8Array | undefined): void {
    if (type === 'remove') {
      this.memberTable.delete(id);
    } else {
      const described = context === undefined ? undefined : memberFromWire(store.MemberInfo.decode(context));
      const known = this.memberTable.get(id) ?? this.founders.find((member) => member.id === id);
      this.memberTable.set(id, described ?? known ?? { id, name: '', peerUrls: [], clientUrls: [] });
    }
    this.listener.membersChanged();
  }

  // ------------------------------------------------------------ snapshots

  snapshot(): Uint8Array {
    return store.Snapshot.encode({
      kv: Buffer.from(encodeStoreSnapshot(this.mvcc)),
      members: this.members().map(memberToWire),
      renewals: [...this.renewals].map(([id, renewedAt]) => ({ id, renewedAt })),
      recentRequestIds: [...this.recentIds].filter(([, position]) => position > this.idsApplied - REQUEST_ID_WINDOW).map(([id]) => id),
      clusterId: 0,
    }).finish();
  }

  restore(snapshot: Snapshot): void {
    const decoded = store.Snapshot.decode(snapshot.data);
    const mvcc = decodeStoreSnapshot(decoded.kv);
    for (const id of this.renewals.keys()) this.listener.leaseRemoved(id);
    this.mvcc = mvcc;
    this.hub.replaceStore(mvcc);
    this.memberTable.clear();
    for (const member of decoded.members) this.memberTable.set(member.id, memberFromWire(member));
    this.renewals.clear();
    for (const { id, renewedAt } of decoded.renewals) {
      this.renewals.set(id, renewedAt);
      const lease = mvcc.lease(id);
      if (lease !== undefined) this.listener.leaseRenewed(id, lease.ttlSeconds);
    }
    this.recentIds = new Map(decoded.recentRequestIds.map((id, index) => [id, index + 1]));
    this.idsApplied = decoded.recentRequestIds.length;
    this.appliedIndex = snapshot.meta.index;
    this.listener.membersChanged();
  }
}

export function memberToWire(member: MemberInfo): store.MemberInfo {
  return { id: member.id, name: member.name, peerUrls: [...member.peerUrls], clientUrls: [...member.clientUrls] };
}

export function memberFromWire(member: store.MemberInfo): MemberInfo {
  return { id: member.id, name: member.name, peerUrls: member.peerUrls, clientUrls: member.clientUrls };
}
