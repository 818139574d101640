// Leader election on a Lease with fencing, against a real master: one
// leader at a time; a leader cut off from the Lease is replaced, and its
// writes — still carrying its old token — are refused; a leader that stops
// releases the Lease so another takes over at once.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { LeaderElector, type LeaderElectionOptions, type Leadership } from '../../services/client/leader-election.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { failure } from '../support/refusals.js';

interface Candidate {
  readonly identity: string;
  readonly elector: LeaderElector;
  readonly leaseClient: ResourceClient;
  readonly workClient: ResourceClient;
  readonly leaderships: Leadership[];
  /** Holders this candidate has seen, in order. */
  readonly seen: string[];
  stopped: number;
}

describe('client: leader election with fencing', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  const candidates: Candidate[] = [];

  const candidate = (identity: string, leaseName = 'scheduler', overrides: Partial<LeaderElectionOptions> = {}): Candidate => {
    const leaseClient = new ResourceClient({ endpoints: cluster.endpoints });
    const workClient = new ResourceClient({ endpoints: cluster.endpoints });
    const leaderships: Leadership[] = [];
    const seen: string[] = [];
    const made: Candidate = {
      identity,
      leaseClient,
      workClient,
      leaderships,
      seen,
      stopped: 0,
      elector: new LeaderElector({
        client: leaseClient,
        fenced: [workClient],
        namespace: 'kube-system',
        name: leaseName,
        identity,
        leaseDurationMs: 600,
        renewDeadlineMs: 400,
        retryPeriodMs: 100,
        onStartedLeading: (leadership) => leaderships.push(leadership),
        onStoppedLeading: () => made.stopped++,
        onNewLeader: (holder) => seen.push(holder),
        ...overrides,
      }),
    };
    candidates.push(made);
    return made;
  };

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-election-')) });
    const client = new ResourceClient({ endpoints: cluster.endpoints });
    try {
      await waitForNamespace(client, 'kube-system');
    } finally {
      client.close();
    }
  });

  after(async function () {
    for (const one of candidates) {
      await one.elector.stop();
      one.leaseClient.close();
      one.workClient.close();
    }
    await cluster?.destroy();
  });

  it('elects one leader, replaces one cut off from the Lease, and refuses the old one’s writes', async function () {
    const a = candidate('a');
    const b = candidate('b');
    a.elector.start();
    await waitFor('a to lead', async () => (a.elector.isLeader ? true : undefined), 30_000, 10);
    b.elector.start();
    await waitFor('b to see a as the leader', async () => (b.seen.includes('a') ? true : undefined), 30_000, 10);
    const tokenA = a.leaderships[0]!.fence.token;
    await a.workClient.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'by-a', namespace: 'default' } });

    // a loses its way to the Lease (its lease client is gone) but keeps its work client.
    a.leaseClient.close();
    await waitFor('b to take over', async () => (b.elector.isLeader ? true : undefined), 30_000, 10);
    await waitFor('a to step down', async () => (!a.elector.isLeader ? true : undefined), 30_000, 10);
    expect(a.stopped).to.equal(1);
    expect(a.leaderships[0]!.signal.aborted).to.equal(true);
    const tokenB = b.leaderships[0]!.fence.token;
    expect(Number(tokenB)).to.be.greaterThan(Number(tokenA));
    expect([b.seen[0], b.seen.at(-1)]).to.deep.equal(['a', 'b']);

    // Whatever a still sends is refused: its client keeps the superseded token.
    const refused = await failure(a.workClient.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'late-a', namespace: 'default' } }));
    expect(refused.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(refused.details).to.contain(`this writer's fencing token ${tokenA} is superseded`);
    await b.workClient.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'by-b', namespace: 'default' } });

    const lease = await b.leaseClient.get('Lease', 'kube-system', 'scheduler');
    expect((lease.spec as { holderIdentity: string }).holderIdentity).to.equal('b');
    expect((lease.spec as { leaseTransitions: number }).leaseTransitions).to.equal(1);
    expect(lease.metadata?.annotations).to.deep.equal({ 'coordination.mast.io/lease-duration-ms': '600' });
  });

  it('hands over at once when the leader stops and releases the Lease', async function () {
    const c = candidate('c', 'controller-manager');
    c.elector.start();
    await waitFor('c to lead', async () => (c.elector.isLeader ? true : undefined), 30_000, 10);
    const d = candidate('d', 'controller-manager');
    d.elector.start();
    await c.elector.stop();
    expect(c.stopped).to.equal(1);
    // Released: d need not wait out the lease duration since it last saw c renew.
    await waitFor('d to lead', async () => (d.elector.isLeader ? true : undefined), 30_000, 10);
    const refused = await failure(c.workClient.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-stop', namespace: 'default' } }));
    expect(refused.code).to.equal(grpc.status.FAILED_PRECONDITION);
  });

  it('a preferred candidate takes a Lease its holder keeps renewing at once, and the holder stops at once', async function () {
    // Durations no test waits out: only the preference can move this Lease, only seeing it moved can stop its holder.
    const long = { leaseDurationMs: 600_000, renewDeadlineMs: 400_000, retryPeriodMs: 100 };
    let preferH = false;
    const g = candidate('g', 'preferred', long);
    const h = candidate('h', 'preferred', { ...long, preferred: () => preferH });
    g.elector.start();
    await waitFor('g to lead', async () => (g.elector.isLeader ? true : undefined), 30_000, 10);
    h.elector.start();
    h.elector.prefer(); // not preferred yet: nothing happens
    await waitFor('h to see g as the leader', async () => (h.seen.includes('g') ? true : undefined), 30_000, 10);
    const renewedBy = async (): Promise<string> => String((await g.leaseClient.get('Lease', 'kube-system', 'preferred')).metadata?.resourceVersion);
    const before = await renewedBy();
    await waitFor('g to renew', async () => ((await renewedBy()) !== before ? true : undefined), 30_000, 10);
    expect(h.elector.isLeader).to.equal(false);
    expect(g.elector.isLeader).to.equal(true);

    preferH = true;
    h.elector.prefer();
    await waitFor('h to take over', async () => (h.elector.isLeader ? true : undefined), 30_000, 10);
    await waitFor('g to step down', async () => (!g.elector.isLeader ? true : undefined), 30_000, 10);
    expect(g.stopped).to.equal(1);
    expect(g.leaderships[0]!.signal.aborted).to.equal(true);
    const refused = await failure(g.workClient.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'by-g-after', namespace: 'default' } }));
    expect(refused.code).to.equal(grpc.status.FAILED_PRECONDITION);
    await h.workClient.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'by-h', namespace: 'default' } });
    const lease = await h.leaseClient.get('Lease', 'kube-system', 'preferred');
    expect((lease.spec as { holderIdentity: string }).holderIdentity).to.equal('h');
    expect((lease.spec as { leaseTransitions: number }).leaseTransitions).to.equal(1);
  });

  it('stopped while a renewal is in flight, does not lead again and still releases the Lease', async function () {
    const real = new ResourceClient({ endpoints: cluster.endpoints });
    let gate: (() => void) | undefined;
    let blocked: (() => void) | undefined;
    const blockedOnce = new Promise<void>((resolve) => (blocked = resolve));
    // The Lease client, with a way to hold one renewal (an update) in flight.
    const held = new Proxy(real, {
      get(target, property) {
        if (property === 'update' && gate === undefined && leaderships.length > 0) {
          return async (kind: string, object: never) => {
            await new Promise<void>((resolve) => {
              gate = resolve;
              blocked?.();
            });
            return target.update(kind, object);
          };
        }
        const value = Reflect.get(target, property) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const leaderships: Leadership[] = [];
    let stoppedLeading = 0;
    const elector = new LeaderElector({
      client: held,
      fenced: [],
      namespace: 'kube-system',
      name: 'stopped-in-flight',
      identity: 'e',
      onStartedLeading: (leadership) => leaderships.push(leadership),
      onStoppedLeading: () => stoppedLeading++,
    });
    try {
      elector.start();
      await blockedOnce;
      const stopping = elector.stop();
      gate!();
      await stopping;
      expect(leaderships).to.have.length(1);
      expect(stoppedLeading).to.equal(1);
      expect(elector.isLeader).to.equal(false);
      const lease = await real.get('Lease', 'kube-system', 'stopped-in-flight');
      expect((lease.spec as { holderIdentity?: string }).holderIdentity).to.equal('');
    } finally {
      await elector.stop();
      real.close();
    }
  });

  it('takes a Lease whose renewTime is already past at once, but never one its holder keeps renewing, on a frozen monotonic clock', async function () {
    const client = new ResourceClient({ endpoints: cluster.endpoints });
    const lease = (name: string, durationMs: number, renewedAgoMs: number): KubeObject => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: 'kube-system', annotations: { 'coordination.mast.io/lease-duration-ms': String(durationMs) } },
      spec: { holderIdentity: 'ghost', leaseDurationSeconds: Math.ceil(durationMs / 1000), renewTime: new Date(Date.now() - renewedAgoMs).toISOString().replace(/Z$/, '000Z') },
    });
    const reads = new Map<string, number>();
    // Each elector's reads counted, so the test can tell watching from polling.
    const counted = (name: string): ResourceClient =>
      new Proxy(client, {
        get(target, property) {
          const value = Reflect.get(target, property) as unknown;
          if (property === 'get') reads.set(name, (reads.get(name) ?? 0) + 1);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
    const frozen = (): number => 0;
    const seen = new Map<string, string>();
    const elector = (name: string, leaderships: Leadership[]): LeaderElector =>
      new LeaderElector({
        client: counted(name),
        fenced: [],
        namespace: 'kube-system',
        name,
        identity: `taker-${name}`,
        now: frozen,
        onNewLeader: (holder) => seen.set(name, holder),
        onStartedLeading: (leadership) => leaderships.push(leadership),
      });
    const tookStale: Leadership[] = [];
    const tookFresh: Leadership[] = [];
    const stale = elector('stale-renewal', tookStale);
    const fresh = elector('fresh-renewal', tookFresh);
    let renewing: NodeJS.Timeout | undefined;
    try {
      // Observation alone would never expire it (the monotonic clock stands still): the renewTime says it has.
      await client.create('Lease', lease('stale-renewal', 600, 10_000));
      stale.start();
      await waitFor('the stale Lease taken', async () => (tookStale.length === 1 ? true : undefined), 30_000, 10);
      // A live holder of a 2 s lease, renewing every 100 ms (the waiting candidate sees each renewal through its watch).
      // A candidate that polled instead would read it again every 2 s, and take it after one interval of a frozen clock.
      await client.create('Lease', lease('fresh-renewal', 2_000, 0));
      let renewals = 0;
      renewing = setInterval(() => {
        void client
          .get('Lease', 'kube-system', 'fresh-renewal')
          .then((current) => client.update('Lease', { ...current, spec: { ...(current.spec as object), renewTime: new Date().toISOString().replace(/Z$/, '000Z') } }))
          .then(() => renewals++)
          .catch(() => undefined);
      }, 100);
      await waitFor('a first renewal', async () => (renewals >= 1 ? true : undefined), 30_000, 10);
      fresh.start();
      // Its first sight of the Lease comes from its first read or from its watch, whichever is first.
      await waitFor('the candidate seeing the holder', async () => (seen.get('fresh-renewal') === 'ghost' ? true : undefined), 30_000, 10);
      const before = renewals;
      await waitFor('60 renewals while the candidate waits', async () => (renewals >= before + 60 ? true : undefined), 60_000, 10);
      clearInterval(renewing);
      expect(tookFresh).to.have.length(0);
      // It did not poll: each renewal it saw restarted its wait (polling would have read at least 3 times in 6 s).
      expect(reads.get('fresh-renewal') ?? 0).to.be.at.most(2);
      expect(((await client.get('Lease', 'kube-system', 'fresh-renewal')).spec as { holderIdentity: string }).holderIdentity).to.equal('ghost');
    } finally {
      clearInterval(renewing);
      await stale.stop();
      await fresh.stop();
      client.close();
    }
  });

  it('seen late (as a dead Raft leader’s last renewal is), a renewal is timed by its renewTime, not by when it was seen', async function () {
    const client = new ResourceClient({ endpoints: cluster.endpoints });
    // A 10 s lease whose holder last renewed 9.9 s ago, seen for the first time now.
    await client.create('Lease', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'late-renewal', namespace: 'kube-system', annotations: { 'coordination.mast.io/lease-duration-ms': '10000' } },
      spec: { holderIdentity: 'ghost', leaseDurationSeconds: 10, renewTime: new Date(Date.now() - 9_900).toISOString().replace(/Z$/, '000Z') },
    });
    const took: Leadership[] = [];
    const elector = new LeaderElector({ client, fenced: [], namespace: 'kube-system', name: 'late-renewal', identity: 'taker-late', onStartedLeading: (leadership) => took.push(leadership) });
    try {
      elector.start();
      // Waiting a lease duration from the sighting would take 10 s; the renewTime expires it in about 0.2 s.
      await waitFor('the late-seen Lease taken', async () => (took.length === 1 ? true : undefined), 5_000, 10);
      expect(((await client.get('Lease', 'kube-system', 'late-renewal')).spec as { holderIdentity: string }).holderIdentity).to.equal('taker-late');
    } finally {
      await elector.stop();
      client.close();
    }
  });

  it('refuses durations that cannot work', function () {
    const client = new ResourceClient({ endpoints: ['127.0.0.1:1'] });
    try {
      expect(() => new LeaderElector({ client, fenced: [], namespace: 'kube-system', name: 'x', identity: 'x', leaseDurationMs: 500, renewDeadlineMs: 500, onStartedLeading: () => {} })).to.throw('renewDeadlineMs (500) must be less than leaseDurationMs (500)');
    } finally {
      client.close();
    }
  });
});
