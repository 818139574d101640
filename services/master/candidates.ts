// The leader-elected components a master hosts: every master runs a
// scheduler candidate and a controller-manager candidate; the one holding
// kube-system/kube-scheduler binds pods, the one holding
// kube-system/kube-controller-manager runs the controllers — each through a
// client of this master's own client URL whose writes carry its Lease's
// fencing token. When this master dies, the Lease expires
// and a candidate in another master takes over; when it is merely slow or cut
// off, its fence makes anything it still sends bounce.

import type * as grpc from '@grpc/grpc-js';
import { nanoid } from 'nanoid';
import { LeaderElector } from '../client/leader-election.js';
import { ResourceClient } from '../client/resources.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { Informer } from '../client/informer.js';
import { ReplicaController } from '../controllers/replicaset/controller.js';
import { EndpointsController } from '../controllers/endpoints/controller.js';
import type { MasterFlags } from './flags.js';

/** Where the scheduler's Lease lives (Kubernetes' names). */
export const SCHEDULER_LEASE = { namespace: 'kube-system', name: 'kube-scheduler' } as const;
export const CONTROLLER_MANAGER_LEASE = { namespace: 'kube-system', name: 'kube-controller-manager' } as const;

export interface Candidates {
  stop(): Promise<void>;
}

/** One leader-elected component: `run` does its work while this candidate leads (until the signal aborts). */
function candidate(flags: MasterFlags, credentials: grpc.ChannelCredentials, lease: { namespace: string; name: string }, log: (line: string) => void, run: (client: ResourceClient, signal: AbortSignal) => Promise<void>): Candidates {
  const endpoint = (flags.advertiseClientUrls[0] ?? '').replace(/^https?:\/\//, '');
  const leaseClient = new ResourceClient({ endpoints: [endpoint], credentials, timeoutMs: 2000 });
  const workClient = new ResourceClient({ endpoints: [endpoint], credentials, timeoutMs: 10_000 });
  let running: Promise<void> | undefined;
  const elector = new LeaderElector({
    client: leaseClient,
    fenced: [workClient],
    ...lease,
    identity: `${flags.name}_${nanoid(8)}`,
    onStartedLeading: (leadership) => {
      running = run(workClient, leadership.signal).catch((error: unknown) => log(`${lease.name} stopped: ${String(error)}`));
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

/** The controller-manager: a shared pod informer and the controllers on it. */
async function runControllers(client: ResourceClient, signal: AbortSignal, log: (line: string) => void): Promise<void> {
  const pods = new Informer(client, 'Pod', { log });
  pods.start();
  signal.addEventListener('abort', () => pods.stop(), { once: true });
  const controllers = [new ReplicaController({ client, kind: 'ReplicaSet', pods, log }), new ReplicaController({ client, kind: 'ReplicationController', pods, log }), new EndpointsController({ client, pods, log })];
  await Promise.all(controllers.map((controller) => controller.run(signal)));
}

/**
 * Start the candidates `flags` ask for. `credentials` reach this master's own
 * client URL: with TLS, its own certificate (mast init makes it a
 * system:masters one) identifies it to itself.
 */
export function startCandidates(flags: MasterFlags, credentials: grpc.ChannelCredentials, log: (line: string) => void): Candidates {
  const started: Candidates[] = [];
  if (flags.scheduler) started.push(candidate(flags, credentials, SCHEDULER_LEASE, log, (client, signal) => new Scheduler({ client, log }).run(signal)));
  if (flags.controllers) started.push(candidate(flags, credentials, CONTROLLER_MANAGER_LEASE, log, (client, signal) => runControllers(client, signal, log)));
  return { stop: async () => void (await Promise.all(started.map((one) => one.stop()))) };
}
