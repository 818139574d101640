// The checks of a chaos run that need no cluster: what the watchers saw
// against the store's own history, the acknowledged writes against it, and
// the in-master components' audited writes against their fencing tokens.

import type { AckedWrite } from './chaos-history.js';

/** One event of a watch on the workload's keys. */
export interface WatchedEvent {
  readonly key: string;
  /** null: a deletion. */
  readonly value: string | null;
  readonly revision: number;
}

const describe = (event: WatchedEvent): string => `${event.key}=${event.value ?? '<deleted>'}@${event.revision}`;

/**
 * A watcher must have seen exactly the reference (every committed revision of
 * the watched keys, read back after the run) up to `upTo`, in increasing
 * order, each once. Returns the problems (empty: none), at most `limit`.
 */
export function checkWatcher(name: string, seen: readonly WatchedEvent[], reference: readonly WatchedEvent[], upTo: number, limit = 10): string[] {
  const problems: string[] = [];
  const add = (problem: string): void => {
    if (problems.length < limit) problems.push(`${name}: ${problem}`);
  };
  let last = 0;
  const seenAt = new Map<number, WatchedEvent>();
  for (const event of seen) {
    if (event.revision <= last) add(`revision ${event.revision} (${describe(event)}) after ${last}: ${event.revision === last ? 'a duplicate' : 'out of order'}`);
    last = Math.max(last, event.revision);
    if (seenAt.has(event.revision)) continue;
    seenAt.set(event.revision, event);
  }
  const expected = new Map(reference.filter((event) => event.revision <= upTo).map((event) => [event.revision, event]));
  for (const [revision, event] of expected) {
    const got = seenAt.get(revision);
    if (got === undefined) add(`missed ${describe(event)}`);
    else if (got.key !== event.key || got.value !== event.value) add(`saw ${describe(got)} where the store has ${describe(event)}`);
  }
  for (const [revision, event] of seenAt) if (revision <= upTo && !expected.has(revision)) add(`saw ${describe(event)}, which the store's history does not have`);
  return problems;
}

/** Every acknowledged write must be in the store's history at the revision it was acknowledged with. */
export function checkAckedWrites(acked: readonly AckedWrite[], reference: readonly WatchedEvent[]): string[] {
  const byRevision = new Map(reference.map((event) => [event.revision, event]));
  const lost: string[] = [];
  for (const write of acked) {
    const event = byRevision.get(write.revision);
    if (event === undefined || event.key !== write.key || event.value !== write.value) {
      lost.push(`operation #${write.id} ${write.key}=${write.value} acknowledged at revision ${write.revision}; the store has ${event === undefined ? 'no event of these keys there' : describe(event)}`);
    }
  }
  return lost;
}

/** The reference history must end in what a linearizable range reads now. */
export function checkCurrent(reference: readonly WatchedEvent[], current: ReadonlyMap<string, { value: string; revision: number }>): string[] {
  const lastOf = new Map<string, WatchedEvent>();
  for (const event of reference) lastOf.set(event.key, event);
  const problems: string[] = [];
  for (const [key, now] of current) {
    const last = lastOf.get(key);
    if (last === undefined || last.revision !== now.revision || last.value !== now.value) problems.push(`${key} reads ${now.value}@${now.revision}; its history ends in ${last === undefined ? 'nothing' : describe(last)}`);
  }
  return problems;
}

export interface AuditEntry {
  readonly member: string;
  readonly component: 'scheduler' | 'controller-manager';
  readonly lease: string;
  readonly description: string;
  readonly resourceVersion: number;
  readonly token: number | undefined;
}

export interface TakeoverEntry {
  readonly lease: string;
  readonly identity: string;
  readonly token: number;
}

/**
 * Writes accepted from a superseded holder: a write under token t of a
 * Lease committed at a revision after some other holder took that Lease
 * over with a token t' > t (the takeover committed at t', so the write came
 * after it). A write without a token cannot be judged and is not counted.
 */
export function staleLeaderWrites(audits: readonly AuditEntry[], takeovers: readonly TakeoverEntry[]): string[] {
  const tokensByLease = new Map<string, number[]>();
  for (const taken of takeovers) tokensByLease.set(taken.lease, [...(tokensByLease.get(taken.lease) ?? []), taken.token]);
  const stale: string[] = [];
  for (const write of audits) {
    if (write.token === undefined) continue;
    const newer = (tokensByLease.get(write.lease) ?? []).filter((token) => token > write.token! && token < write.resourceVersion);
    if (newer.length > 0) stale.push(`${write.member} ${write.component}: ${write.description} at ${write.resourceVersion} under token ${write.token}, superseded by token ${Math.min(...newer)}`);
  }
  return stale;
}

/** Pods with more than one accepted bind (from the schedulers' audit lines). */
export function boundTwice(binds: ReadonlyArray<{ readonly pod: string; readonly at: string }>): string[] {
  const byPod = new Map<string, string[]>();
  for (const bind of binds) byPod.set(bind.pod, [...(byPod.get(bind.pod) ?? []), bind.at]);
  return [...byPod].filter(([, at]) => at.length > 1).map(([pod, at]) => `${pod}: ${at.join(', ')}`);
}
