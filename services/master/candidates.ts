// The leader-elected components: a scheduler candidate and a
// controller-manager candidate run in every master (and, standalone, in
// `mast scheduler` / `mast controller-manager`). The one holding
// kube-system/kube-scheduler binds pods, the one holding
// kube-system/kube-controller-manager runs the controllers — each through a
// client whose writes carry its Lease's fencing token. When its process
// dies, the Lease expires and another candidate takes over; when it is
// merely slow or cut off, its fence makes anything it still sends bounce.
// In a master, the candidates of the Raft leader are preferred: when a master
// becomes the Raft leader its candidates take the Leases over at once (fencing
// makes that safe), so the components fail over with the Raft leader, in a
// Raft election's time, and work where their writes are proposed without a
// forwarding hop. The Leases are then long and renewed once a second (their
// expiry only matters when the Raft leader runs no such candidate): each
// renewal is a replicated write, the idle control plane's main cost.
// A waiting candidate keeps its component's informers running, so when it
// takes over it acts at once instead of listing everything first. The two
// candidates of one master share those informers (the scheduler's kinds are
// a subset of the controller-manager's): one watch per kind per master, not
// two, so every pod write is sent to a master's components once.

import { readFileSync } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { nanoid } from 'nanoid';
import { LeaderElector } from '../client/leader-election.js';
import { ResourceClient, type AcceptedWrite } from '../client/resources.js';
import { CONTROLLER_MANAGER_INFORMERS, runControllerManager, type ControllerManagerOptions } from '../controllers/manager.js';
import { SharedInformers, type Selection } from '../client/shared-informers.js';
import { Scheduler } from '../scheduler/scheduler.js';
import type { MasterFlags } from './flags.js';

/** Where the scheduler's Lease lives (Kubernetes' names). */
export const SCHEDULER_LEASE = { namespace: 'kube-system', name: 'kube-scheduler' } as const;
export const CONTROLLER_MANAGER_LEASE = { namespace: 'kube-system', name: 'kube-controller-manager' } as const;

export type Component = 'scheduler' | 'controller-manager';

export const COMPONENT_LEASES: Readonly<Record<Component, { readonly namespace: string; readonly name: string }>> = {
  scheduler: SCHEDULER_LEASE,
  'controller-manager': CONTROLLER_MANAGER_LEASE,
};

export interface Candidates {
  /** The preference may have turned true: take the Lease now if not holding it. */
  prefer(): void;
  stop(): Promise<void>;
}

/** The Raft leadership of the master candidates run in: while it leads, they are preferred. */
export interface RaftLeadership {
  isLeader(): boolean;
  /** Calls back each time this master becomes the Raft leader; returns the unsubscribe. */
  onBecameLeader(listener: () => void): () => void;
}

/**
 * In-master candidates' Lease timing (ms). A preferred candidate takes over
 * at once, so the duration only bounds failover when the Raft leader has no
 * candidate of a component; the renewal (retry) period is the steady cost.
 */
export const IN_MASTER_LEASE_TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 1000 } as const;

export interface CandidateOptions {
  readonly endpoints: readonly string[];
  readonly credentials?: grpc.ChannelCredentials;
  /** Who this candidate is ("NAME_random": unique per process, so a restart is a new holder). */
  readonly identityPrefix: string;
  readonly component: Component;
  readonly log: (line: string) => void;
  /** Where to audit each write the API accepted from this component, with its commit revision and fencing token (absent: no audit). */
  readonly debug?: (line: string) => void;
  /** The controller-manager's settings. */
  readonly controllerManager?: Omit<ControllerManagerOptions, 'log' | 'informers'>;
  /** Informers shared with the process's other candidates (the caller warms and stops them); absent: the candidate's own. */
  readonly informers?: SharedInformers;
  /** Whether this candidate should hold its Lease now, taking it from another holder (absent: never); see LeaderElector. */
  readonly preferred?: () => boolean;
  /** Lease timing (absent: LeaderElector's sub-second defaults). */
  readonly timing?: { readonly leaseDurationMs: number; readonly renewDeadlineMs: number; readonly retryPeriodMs: number };
}

/** What a component does while it leads (until the signal aborts). */
function work(options: CandidateOptions, informers: SharedInformers): (client: ResourceClient, signal: AbortSignal) => Promise<void> {
  const { component, log } = options;
  if (component === 'controller-manager') return (client, signal) => runControllerManager(client, signal, { host: options.identityPrefix, ...options.controllerManager, log, informers });
  return (client, signal) => new Scheduler({ client, log, informers }).run(signal);
}

/** The informers each component reads, kept warm while its candidate waits. */
const WARM_INFORMERS: Readonly<Record<Component, ReadonlyArray<string | readonly [string, Selection]>>> = {
  scheduler: ['Pod', 'Node', 'PersistentVolumeClaim', 'PersistentVolume'],
  'controller-manager': CONTROLLER_MANAGER_INFORMERS,
};

/** The audit line of an accepted write: what stale-leader checks (bench, chaos) read back. */
export function auditLine(component: Component, write: AcceptedWrite): string {
  return `${component}: write accepted: ${write.verb} ${write.kind} ${write.namespace}/${write.name} at resourceVersion ${write.resourceVersion} with fencing token ${write.fence?.token ?? 'none'}`;
}

/** Parses auditLine's output. */
export const AUDIT_LINE = /^(scheduler|controller-manager): write accepted: (\S+) (\S+) (\S*)\/(\S+) at resourceVersion (\d+) with fencing token (\S+)$/;

/** One leader-elected component: it works while it holds its Lease, through a client fenced by it. */
export function startCandidate(options: CandidateOptions): Candidates {
  const { log, component } = options;
  const lease = COMPONENT_LEASES[component];
  const connection = { endpoints: options.endpoints, ...(options.credentials === undefined ? {} : { credentials: options.credentials }) };
  const leaseClient = new ResourceClient({ ...connection, timeoutMs: 2000 });
  const debug = options.debug;
  const workClient = new ResourceClient({
    ...connection,
    timeoutMs: 10_000,
    ...(debug === undefined ? {} : { onWriteAccepted: (write: AcceptedWrite) => debug(auditLine(component, write)) }),
  });
  // Shared informers are the caller's to stop.
  const warm = options.informers === undefined ? warmInformers(connection, [component], log) : { informers: options.informers, stop: () => {} };
  const run = work(options, warm.informers);
  let running: Promise<void> | undefined;
  const elector = new LeaderElector({
    client: leaseClient,
    fenced: [workClient],
    ...lease,
    identity: `${options.identityPrefix}_${nanoid(8)}`,
    ...options.timing,
    ...(options.preferred === undefined ? {} : { preferred: options.preferred }),
    onStartedLeading: (leadership) => {
      running = run(workClient, leadership.signal).catch((error: unknown) => log(`${lease.name} stopped: ${String(error)}`));
    },
    log,
  });
  elector.start();
  return {
    prefer: () => elector.prefer(),
    stop: async () => {
      await elector.stop();
      await running;
      warm.stop();
      leaseClient.close();
      workClient.close();
    },
  };
}

/** Informers warm with what these components read, through a client of their own. */
function warmInformers(connection: { readonly endpoints: readonly string[]; readonly credentials?: grpc.ChannelCredentials }, components: readonly Component[], log: (line: string) => void): { informers: SharedInformers; stop(): void } {
  // Reads, unfenced and without a deadline for long lists: the caches a new leader starts from.
  const readClient = new ResourceClient({ ...connection, timeoutMs: 60_000 });
  const informers = new SharedInformers(readClient, log);
  for (const component of components) informers.warm(WARM_INFORMERS[component]);
  return {
    informers,
    stop: () => {
      informers.stop();
      readClient.close();
    },
  };
}

/**
 * Start the candidates `flags` ask for, as clients of this master's own
 * client URL. `credentials` reach it: with TLS, its own certificate (mast
 * init makes it a system:masters one) identifies it to itself. They are
 * preferred while `raft` says this master leads.
 */
export function startCandidates(flags: MasterFlags, credentials: grpc.ChannelCredentials, raft: RaftLeadership, log: (line: string) => void, debug?: (line: string) => void): Candidates {
  const endpoint = (flags.advertiseClientUrls[0] ?? '').replace(/^https?:\/\//, '');
  const components: Component[] = [...(flags.scheduler ? (['scheduler'] as const) : []), ...(flags.controllers ? (['controller-manager'] as const) : [])];
  if (components.length === 0) return { prefer: () => undefined, stop: async () => undefined };
  const shared = warmInformers({ endpoints: [endpoint], credentials }, components, log);
  const controllerManager = { nodeMonitorGracePeriodMs: flags.nodeMonitorGracePeriodMs, loadBalancerIpPool: flags.loadBalancerIpPool, ...(flags.trustedCaFile === '' ? {} : { rootCaPem: readFileSync(flags.trustedCaFile, 'utf8') }) };
  const started = components.map((component) =>
    startCandidate({ endpoints: [endpoint], credentials, identityPrefix: flags.name, component, log, informers: shared.informers, ...(debug === undefined ? {} : { debug }), controllerManager, preferred: () => raft.isLeader(), timing: IN_MASTER_LEASE_TIMING }),
  );
  const prefer = (): void => {
    for (const one of started) one.prefer();
  };
  const unsubscribe = raft.onBecameLeader(prefer);
  return {
    prefer,
    stop: async () => {
      unsubscribe();
      await Promise.all(started.map((one) => one.stop()));
      shared.stop();
    },
  };
}
