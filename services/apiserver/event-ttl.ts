// Events expire, as in Kubernetes (kube-apiserver --event-ttl, one hour by
// default): otherwise every "Scheduled" and "BackOff" of a cluster's life
// would stay in the store and in every master's watch cache. The Raft
// leader's master sweeps now and then and deletes the Events whose last
// occurrence is older than the TTL, each at the version it saw (an Event
// counted up meanwhile stays).

import { kindInfo } from '../client/kinds.js';
import { ApiError, type Registry } from './registry.js';
import type { WatchCache } from './watch-cache.js';

export interface EventExpiryOptions {
  readonly ttlMs: number;
  /** Whether this member should act (the Raft leader). */
  readonly isActive: () => boolean;
  readonly now?: () => Date;
  readonly log: (message: string) => void;
}

/** At most this many deletions per sweep, so a backlog cannot swamp the log. */
const MAX_DELETIONS_PER_SWEEP = 500;

/** The Events a sweep at `now` deletes: last seen (lastTimestamp, else eventTime, else creation) before now - ttl. */
export function expiredEvents(cache: WatchCache, now: Date, ttlMs: number): Array<{ namespace: string; name: string; resourceVersion: string }> {
  const cutoff = now.getTime() - ttlMs;
  const expired: Array<{ namespace: string; name: string; resourceVersion: string }> = [];
  for (const cached of cache.list(kindInfo('Event')!, undefined)) {
    const event = cached.object;
    const seen = [event.lastTimestamp, event.eventTime, event.metadata.creationTimestamp].find((value) => typeof value === 'string' && value !== '');
    const at = typeof seen === 'string' ? Date.parse(seen) : Number.NaN;
    if (Number.isNaN(at) || at >= cutoff) continue;
    expired.push({ namespace: String(event.metadata.namespace), name: String(event.metadata.name), resourceVersion: String(event.metadata.resourceVersion) });
    if (expired.length === MAX_DELETIONS_PER_SWEEP) break;
  }
  return expired;
}

/** Sweep once: delete what has expired (only when active). Returns how many went. */
export async function sweepEvents(cache: WatchCache, registry: Registry, options: EventExpiryOptions): Promise<number> {
  if (!options.isActive()) return 0;
  let deleted = 0;
  for (const event of expiredEvents(cache, options.now?.() ?? new Date(), options.ttlMs)) {
    try {
      await registry.delete('Event', event.namespace, event.name, { resourceVersion: event.resourceVersion });
      deleted++;
    } catch (error) {
      // Gone already, or counted up since: either way it is not expired now.
      if (error instanceof ApiError && (error.reason === 'NotFound' || error.reason === 'Conflict')) continue;
      options.log(`expiring event ${event.namespace}/${event.name} failed: ${error instanceof Error ? error.message : String(error)}`);
      break;
    }
  }
  return deleted;
}
