// etcdserverpb.Lease: grant, revoke, keep-alive, time-to-live, list. Grants,
// revocations and renewals go through the log; expiry is the leader's
// decision, also through the log (see services/store/lessor.ts).

import { randomInt } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type * as etcd from '../../proto/gen/etcd/rpc.js';
import type { ReplicatedStore } from '../store/index.js';
import { ApiError, expectOutcome, toServiceError, unary } from './errors.js';

/** etcd's MaxLeaseTTL: 9,000,000,000 seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

export interface LeaseServiceOptions {
  /** Grants shorter than this are lengthened to it (etcd: 1.5 election timeouts, at least 1 s). */
  readonly minTtlSeconds: number;
}

export function leaseService(store: ReplicatedStore, options: LeaseServiceOptions): etcd.LeaseServer {
  const renew = async (id: number): Promise<number> => {
    const outcome = await store.write({ $case: 'leaseRenew', value: { id } });
    if (outcome.kind === 'error' && outcome.error.code === 'lease-not-found') return 0;
    return expectOutcome(outcome, 'lease-renewed').ttlSeconds;
  };
  return {
    leaseGrant: unary(async (request: etcd.LeaseGrantRequest) => {
      if (request.TTL > MAX_LEASE_TTL_SECONDS) throw new ApiError(grpc.status.OUT_OF_RANGE, `etcdserver: too large lease TTL (${request.TTL} s; at most ${MAX_LEASE_TTL_SECONDS})`);
      if (request.ID < 0 || request.ID > Number.MAX_SAFE_INTEGER) throw new ApiError(grpc.status.INVALID_ARGUMENT, `lease ID ${request.ID} is out of range (1 to ${Number.MAX_SAFE_INTEGER}, or 0 to let the server choose)`);
      const ttlSeconds = Math.max(request.TTL, options.minTtlSeconds);
      const id = request.ID > 0 ? request.ID : randomInt(1, 2 ** 47) * 64 + randomInt(0, 64);
      const granted = expectOutcome(await store.write({ $case: 'leaseGrant', value: { id, ttlSeconds } }), 'lease-granted');
      return { header: store.header(), ID: granted.id, TTL: granted.ttlSeconds, error: '' };
    }),
    leaseRevoke: unary(async (request: etcd.LeaseRevokeRequest) => {
      const { revision } = expectOutcome(await store.write({ $case: 'leaseRevoke', value: { id: request.ID } }), 'lease-revoked');
      return { header: store.header(revision) };
    }),
    leaseKeepAlive: (call: grpc.ServerDuplexStream<etcd.LeaseKeepAliveRequest, etcd.LeaseKeepAliveResponse>) => {
      let closed = false;
      call.on('data', (request: etcd.LeaseKeepAliveRequest) => {
        renew(request.ID).then(
          (ttl) => {
            if (!closed) call.write({ header: store.header(), ID: request.ID, TTL: ttl });
          },
          (error: unknown) => {
            if (closed) return;
            closed = true;
            call.emit('error', toServiceError(error));
          },
        );
      });
      call.on('end', () => {
        closed = true;
        call.end();
      });
      call.on('cancelled', () => {
        closed = true;
      });
      call.on('error', () => {
        closed = true;
      });
    },
    leaseTimeToLive: unary(async (request: etcd.LeaseTimeToLiveRequest) => {
      await store.linearizableBarrier();
      const lease = store.kv.lease(request.ID);
      if (lease === undefined) return { header: store.header(), ID: request.ID, TTL: -1, grantedTTL: 0, keys: [] };
      const remaining = store.leaseRemainingSeconds(request.ID) ?? lease.ttlSeconds;
      return {
        header: store.header(),
        ID: request.ID,
        TTL: remaining,
        grantedTTL: lease.ttlSeconds,
        keys: request.keys ? lease.keys.map((key) => Buffer.from(key)) : [],
      };
    }),
    leaseLeases: unary(async () => {
      await store.linearizableBarrier();
      return { header: store.header(), leases: store.kv.leaseIds().map((ID) => ({ ID })) };
    }),
  };
}
