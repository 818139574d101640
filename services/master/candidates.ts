// The leader-elected components a master hosts: every master runs a
// scheduler candidate; the one holding the kube-system/kube-scheduler Lease
// binds pods, through a client of this master's own client URL whose writes
// carry the Lease's fencing token. When this master dies, the Lease expires
// and a candidate in another master takes over; when it is merely slow or cut
// off, its fence makes anything it still sends bounce.

import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { nanoid } from 'nanoid';
import { LeaderElector } from '../client/leader-election.js';
import { ResourceClient } from '../client/resources.js';
import { Scheduler } from '../scheduler/scheduler.js';
import type { MasterFlags } from './flags.js';

/** Where the scheduler's Lease lives (Kubernetes' names). */
export const SCHEDULER_LEASE = { namespace: 'kube-system', name: 'kube-scheduler' } as const;

function selfCredentials(flags: MasterFlags): grpc.ChannelCredentials {
  const url = flags.advertiseClientUrls[0] ?? '';
  if (!url.startsWith('https://')) return grpc.credentials.createInsecure();
  // The master's own certificate (mast init makes it a system:masters one) identifies it to itself.
  return grpc.credentials.createSsl(flags.trustedCaFile === '' ? null : readFileSync(flags.trustedCaFile), readFileSync(flags.keyFile), readFileSync(flags.certFile));
}

export interface Candidates {
  stop(): Promise<void>;
}

export function startCandidates(flags: MasterFlags, log: (line: string) => void): Candidates {
  if (!flags.scheduler) return { stop: async () => {} };
  const endpoint = (flags.advertiseClientUrls[0] ?? '').replace(/^https?:\/\//, '');
  const credentials = selfCredentials(flags);
  const leaseClient = new ResourceClient({ endpoints: [endpoint], credentials, timeoutMs: 2000 });
  const workClient = new ResourceClient({ endpoints: [endpoint], credentials, timeoutMs: 10_000 });
  let running: Promise<void> | undefined;
  const elector = new LeaderElector({
    client: leaseClient,
    fenced: [workClient],
    ...SCHEDULER_LEASE,
    identity: `${flags.name}_${nanoid(8)}`,
    onStartedLeading: (leadership) => {
      const scheduler = new Scheduler({ client: workClient, log });
      running = scheduler.run(leadership.signal).catch((error: unknown) => log(`scheduler stopped: ${String(error)}`));
    },
    log,
  });
  elector.start();
  return {
    stop: async () => {
      await elector.stop();
      await running;
      leaseClient.close();
      workClient.close();
    },
  };
}
