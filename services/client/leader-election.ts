// Leader election on a Lease, with fencing — client-go's LeaderElector, made
// safe. client-go admits that a leader which stalls (GC pause, SIGSTOP, a
// partition) may still act after another has taken over; here every write
// the leader makes carries the Lease's fencing token, and the API server
// refuses it once the Lease has had a newer holder (the check is inside the
// write's own transaction). So at most one leader's writes are ever
// accepted, whatever the clocks and pauses.
//
// How it runs, as client-go: every retry period each candidate reads the
// Lease. A holder renews it (renewTime). A candidate that has seen the same
// version of the Lease for longer than the lease duration — measured on its
// own monotonic clock from when it first saw that version, never from the
// timestamps inside, so clock skew does not matter — takes it over with a
// compare-and-swap on that version. The write that makes it holder returns
// the Lease's resourceVersion: that is its fencing token, set on the client
// for every later write of the clients it works through (the Lease itself is
// written through a client of its own, unfenced). A holder that cannot renew
// within the renew deadline stops leading. The fence is never cleared: after
// losing the Lease, those clients' writes keep the old token and are refused.
//
// One exception, which fencing makes safe: a candidate that first sees a
// version late (its reads stalled while the Raft leader was re-elected, say)
// would wait a whole duration more; if the renewTime inside is already older
// than the duration by its own wall clock (allowing maxClockSkewMs), it takes
// over at once. Were its clock wrong, the cost is a needless handover — the
// old holder's writes bounce either way — never two writers.
//
// Waiting candidates do not poll: they watch the Lease, and each renewal
// they see restarts their wait; they read and try to take it only when the
// version they saw has gone unchanged for the lease duration (or at once
// when it is released or deleted). Only the holder writes every retry
// period. So an idle cluster pays one renewal per retry period per
// component, not a linearizable read per candidate as well. Should the
// watch stall (its master frozen), the candidate still reads the Lease once
// per duration: the wait it set from the last version it saw expires.
//
// A candidate may be *preferred* (mast's masters prefer the candidate in the
// Raft leader): it takes the Lease from another holder without waiting for
// it to expire, at once when `prefer()` is called and whenever it sees the
// Lease held by another while preferred. Fencing makes that as safe as any
// takeover, and a holder that sees another holder in the Lease stops at
// once. Failover then follows whatever decides the preference (a Raft
// election), and the lease duration only matters when no preferred
// candidate is there — so it can be long and renewals rare.
//
// Durations may be sub-second (failover within a second is the goal without
// a preference), so the Lease also carries them in milliseconds in an
// annotation; its leaseDurationSeconds is the same rounded up, for
// kubectl-minded readers.

import * as grpc from '@grpc/grpc-js';
import { statusCodeOf, type KubeObject, type ResourceClient, type WriteFence } from './resources.js';

export const LEASE_DURATION_MS_ANNOTATION = 'coordination.mast.io/lease-duration-ms';
export const DEFAULT_MAX_CLOCK_SKEW_MS = 100;
/** How often, at most, a preferred candidate tries to take the Lease from another holder (or the retry period, if shorter). */
export const PREFERRED_RETRY_MS = 200;

export interface Leadership {
  readonly identity: string;
  /** The fencing token: the Lease's resourceVersion when this candidate became its holder. */
  readonly fence: WriteFence;
  /** Aborted when leadership is lost or the elector stops. */
  readonly signal: AbortSignal;
}

export interface LeaderElectionOptions {
  /** For the Lease itself: its writes are never fenced (taking over must not carry the last, stale token). */
  readonly client: ResourceClient;
  /** The clients the leader works through: each gets the fence of every leadership, and keeps it after. */
  readonly fenced: readonly ResourceClient[];
  readonly namespace: string;
  readonly name: string;
  /** Unique per process (a restarted process must not reuse one): e.g. `${host}_${nanoid()}`. */
  readonly identity: string;
  /** How long a holder's silence means it is gone (default 600 ms). */
  readonly leaseDurationMs?: number;
  /** How long a holder keeps leading without a successful renewal (default 400 ms; less than the lease duration). */
  readonly renewDeadlineMs?: number;
  /**
   * How often holders renew (default 200 ms: two tries within the renew
   * deadline; each renewal is a replicated write, so this is the idle
   * cluster's steady load — at 100 ms the two components' renewals cost
   * three co-located masters about a tenth of a core more).
   */
  readonly retryPeriodMs?: number;
  readonly onStartedLeading: (leadership: Leadership) => void;
  readonly onStoppedLeading?: () => void;
  /** The holder as this candidate sees it changes ('' when none). */
  readonly onNewLeader?: (identity: string) => void;
  readonly log?: (line: string) => void;
  /** Monotonic milliseconds (tests); default performance.now. */
  readonly now?: () => number;
  /** Wall-clock milliseconds, to read renewTime against (tests); default Date.now. */
  readonly wallNow?: () => number;
  /** How far candidates' wall clocks may be apart (default 100 ms): a renewTime older than the lease duration plus this is expired. */
  readonly maxClockSkewMs?: number;
  /**
   * Whether this candidate should hold the Lease now, whoever holds it
   * (default never): while it says so, the candidate takes the Lease from
   * another holder without waiting for it to expire. Call prefer() when it
   * turns true.
   */
  readonly preferred?: () => boolean;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type LeaseObject = KubeObject & { spec?: LeaseSpec };

/** A Lease's duration in milliseconds: the annotation mast writes, else leaseDurationSeconds. */
function durationOf(lease: LeaseObject): number {
  const annotated = Number((lease.metadata?.annotations as Record<string, string> | undefined)?.[LEASE_DURATION_MS_ANNOTATION]);
  return Number.isFinite(annotated) && annotated > 0 ? annotated : (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
}

/** Why a holder stops when its Lease shows `holder` instead of it. */
function lostTo(holder: string): string {
  return holder === '' ? 'the Lease was released' : `${holder} holds the Lease`;
}

export function microTime(date: Date): string {
  return date.toISOString().replace(/Z$/, '000Z');
}


export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private busy = false;
  /** The version of the Lease last seen, and when (our clock) it was first seen. */
  private observed: { resourceVersion: string; holder: string; atMs: number; durationMs: number; renewedAtWallMs: number } | undefined;
  /** The Lease as this candidate last wrote it while holding it (renewals start from it). */
  private held: LeaseObject | undefined;
  /** Stops the watch on the Lease (waiting candidates learn of renewals from it). */
  private stopWatch: (() => void) | undefined;
  private leading: { fence: WriteFence; controller: AbortController; renewedAtMs: number } | undefined;
  /** The fence of this process's last leadership (valid while the Lease's holder has not changed). */
  private lastFence: WriteFence | undefined;
  private lastLeader = '';
  private stopping: Promise<void> | undefined;
  /** The acquire-or-renew attempt in progress, if any (settled: never rejects). */
  private inFlight: Promise<void> | undefined;
  /** When (monotonic ms) the last attempt started: a preferred candidate tries at most once per PREFERRED_RETRY_MS. */
  private lastAttemptAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: LeaderElectionOptions) {
    this.leaseDurationMs = options.leaseDurationMs ?? 600;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 400;
    this.retryPeriodMs = options.retryPeriodMs ?? 200;
    if (!(this.renewDeadlineMs < this.leaseDurationMs)) throw new Error(`renewDeadlineMs (${this.renewDeadlineMs}) must be less than leaseDurationMs (${this.leaseDurationMs})`);
    if (!(this.retryPeriodMs < this.renewDeadlineMs)) throw new Error(`retryPeriodMs (${this.retryPeriodMs}) must be less than renewDeadlineMs (${this.renewDeadlineMs})`);
    this.now = options.now ?? (() => performance.now());
  }

  get isLeader(): boolean {
    return this.leading !== undefined;
  }

  /** The fence of the current (or last) leadership. */
  get fence(): WriteFence | undefined {
    return this.lastFence;
  }

  start(): void {
    if (this.running || this.stopping !== undefined) return; // once stopped, for good
    this.running = true;
    const { client, namespace, name } = this.options;
    this.stopWatch = client.watch('Lease', { namespace, fieldSelector: `metadata.name=${name}` }, {
      onEvent: (type, object) => this.leaseEvent(type, object as LeaseObject),
      onError: (error) => this.options.log?.(`leader election: watching ${this.leaseName} ended: ${error.details}; reading it once per lease duration`),
    });
    this.schedule(0);
  }

  /** A change of the Lease seen by the watch: a waiting candidate restarts its wait (or tries at once if the Lease is free). */
  private leaseEvent(type: string, lease: LeaseObject): void {
    if (!this.running || type === 'BOOKMARK') return;
    // A watch may lag behind this candidate's own writes: an older version says nothing new.
    if (type !== 'DELETED' && Number(lease.metadata?.resourceVersion) < Number(this.observed?.resourceVersion)) return;
    if (type === 'DELETED') {
      this.observed = undefined;
      this.stepDown('the Lease was deleted');
    } else {
      this.observe(String(lease.metadata?.resourceVersion), lease.spec?.holderIdentity ?? '', durationOf(lease), lease.spec?.renewTime);
    }
    // Another holder took it: stop acting now (its fence already refuses our writes).
    if (this.observed !== undefined && this.observed.holder !== this.options.identity) this.stepDown(lostTo(this.observed.holder));
    if (this.busy || this.leading !== undefined) return; // the attempt in flight schedules the next one
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.schedule(this.nextAttemptInMs());
  }

  /**
   * When to try next: a holder renews every retry period; a waiting
   * candidate when the version it saw would expire — a lease duration after
   * it saw it, or sooner if its renewTime says it is older than that (plus
   * the clock skew allowed). The second matters after a leader dies: its
   * last renewal may be committed, and so seen, only once the next Raft
   * leader is elected, hundreds of milliseconds after it was written.
   */
  private nextAttemptInMs(): number {
    const observed = this.observed;
    if (this.leading !== undefined || observed === undefined || observed.holder === '' || observed.holder === this.options.identity) return this.retryPeriodMs;
    if (this.isPreferred()) return this.untilPreferredRetryMs();
    const bySight = observed.atMs + observed.durationMs + 1 - this.now();
    const byRenewTime = Number.isFinite(observed.renewedAtWallMs) ? this.renewTimeLeftMs(observed.renewedAtWallMs, observed.durationMs) + 1 : Infinity;
    return Math.max(this.retryPeriodMs, Math.min(bySight, byRenewTime));
  }

  /**
   * The preference may have turned true (this master became the Raft
   * leader, say): a candidate that does not hold the Lease tries to take it
   * now (or PREFERRED_RETRY_MS after its last try).
   */
  prefer(): void {
    if (!this.running || this.busy || this.leading !== undefined || !this.isPreferred()) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.schedule(this.untilPreferredRetryMs());
  }

  private isPreferred(): boolean {
    return this.options.preferred?.() ?? false;
  }

  /** How long a preferred candidate still waits before its next try (PREFERRED_RETRY_MS, or the retry period if shorter, after its last). */
  private untilPreferredRetryMs(): number {
    return Math.max(0, this.lastAttemptAtMs + Math.min(this.retryPeriodMs, PREFERRED_RETRY_MS) - this.now());
  }

  /**
   * Stop; a holder releases the Lease (empty holder) so another takes over
   * at once. An attempt in flight finishes first (it cannot make this a
   * leader again: it checks `running`), so the release sees its result.
   */
  async stop(): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    this.stopping = this.stopOnce();
    return this.stopping;
  }

  private async stopOnce(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.stopWatch?.();
    await this.inFlight;
    this.stepDown('stopping');
    if (this.lastFence === undefined) return;
    try {
      const lease = (await this.options.client.get('Lease', this.options.namespace, this.options.name)) as LeaseObject;
      if (lease.spec?.holderIdentity !== this.options.identity) return;
      await this.options.client.update('Lease', { ...lease, spec: { ...lease.spec, holderIdentity: '', renewTime: microTime(new Date()) } });
    } catch (error) {
      this.options.log?.(`leader election: releasing ${this.leaseName} failed: ${String(error)}`);
    }
  }

  private get leaseName(): string {
    return `${this.options.namespace}/${this.options.name}`;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    if (this.busy || !this.running) return;
    this.busy = true;
    this.lastAttemptAtMs = this.now();
    const attempt = this.tryAcquireOrRenew();
    this.inFlight = attempt.then(
      () => undefined,
      () => undefined,
    );
    try {
      await attempt;
    } catch (error) {
      this.options.log?.(`leader election: ${this.leaseName}: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.busy = false;
      // A holder that could not renew in time stops acting (its fence would stop its writes anyway).
      if (this.leading !== undefined && this.now() - this.leading.renewedAtMs > this.renewDeadlineMs) this.stepDown(`no renewal for ${this.renewDeadlineMs} ms`);
      this.schedule(this.nextAttemptInMs());
    }
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { client, namespace, name, identity } = this.options;
    // A holder renews from the version it wrote last: one compare-and-swap, no read first.
    // If the Lease changed since (another holder, a deletion), the read below decides.
    const held = this.held;
    if (this.leading !== undefined && held !== undefined) {
      try {
        const renewed = (await client.update('Lease', { ...held, spec: { ...held.spec, renewTime: microTime(new Date()) } })) as LeaseObject;
        this.held = renewed;
        this.observe(String(renewed.metadata?.resourceVersion), identity, this.leaseDurationMs);
        this.leading.renewedAtMs = this.now();
        return;
      } catch (error) {
        const code = statusCodeOf(error);
        if (code !== grpc.status.ABORTED && code !== grpc.status.NOT_FOUND) throw error;
        this.held = undefined;
      }
    }
    let lease: LeaseObject | undefined;
    try {
      lease = (await client.get('Lease', namespace, name)) as LeaseObject;
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
    }
    const now = new Date();
    const spec: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      renewTime: microTime(now),
    };
    const metadata = { name, namespace, annotations: { [LEASE_DURATION_MS_ANNOTATION]: String(this.leaseDurationMs) } };
    if (lease === undefined) {
      this.stepDown('the Lease was deleted');
      const created = await client.create('Lease', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 } });
      this.held = created as LeaseObject;
      this.becomeLeader(String(created.metadata?.resourceVersion));
      return;
    }
    const version = String(lease.metadata?.resourceVersion);
    const holder = lease.spec?.holderIdentity ?? '';
    this.observe(version, holder, durationOf(lease), lease.spec?.renewTime);
    if (holder === identity) {
      const renewed = await client.update('Lease', { ...lease, spec: { ...lease.spec, renewTime: microTime(now) } });
      this.held = renewed as LeaseObject;
      this.observe(String(renewed.metadata?.resourceVersion), identity, this.leaseDurationMs);
      if (this.leading !== undefined) {
        this.leading.renewedAtMs = this.now();
      } else if (this.lastFence !== undefined) {
        // It stepped down (a late renewal) but nobody took over: the holder never changed, so its token still holds.
        this.becomeLeader(this.lastFence.token);
      } else {
        // Held under this identity by an earlier life of it: its token is unknown, so release first;
        // the next take changes the holder and so the fence.
        await client.update('Lease', { ...renewed, spec: { ...(renewed as LeaseObject).spec, holderIdentity: '' } });
      }
      return;
    }
    this.stepDown(lostTo(holder));
    if (holder !== '' && !this.expired(lease) && !this.isPreferred()) return;
    // Free, expired, or held by another while this candidate is preferred: take it, by compare-and-swap on the version seen.
    const taken = await client.update('Lease', {
      ...lease,
      metadata: { ...lease.metadata, annotations: { ...(lease.metadata?.annotations as Record<string, string> | undefined), ...metadata.annotations } },
      spec: { ...spec, acquireTime: microTime(now), leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 },
    });
    this.held = taken as LeaseObject;
    this.observe(String(taken.metadata?.resourceVersion), identity, this.leaseDurationMs);
    this.becomeLeader(String(taken.metadata?.resourceVersion));
  }

  /** Remember when this version of the Lease was first seen. */
  private observe(resourceVersion: string, holder: string, durationMs: number, renewTime?: string): void {
    if (this.observed?.resourceVersion !== resourceVersion) this.observed = { resourceVersion, holder, atMs: this.now(), durationMs, renewedAtWallMs: Date.parse(renewTime ?? '') };
    if (holder !== this.lastLeader) {
      this.lastLeader = holder;
      this.options.onNewLeader?.(holder);
    }
  }

  private expired(lease: LeaseObject): boolean {
    const durationMs = durationOf(lease);
    if (this.observed !== undefined && this.now() - this.observed.atMs > durationMs) return true;
    const renewedAtMs = Date.parse(lease.spec?.renewTime ?? '');
    return Number.isFinite(renewedAtMs) && this.renewTimeLeftMs(renewedAtMs, durationMs) < 0;
  }

  /** Wall-clock ms until a Lease renewed at `renewedAtWallMs` (its renewTime) has expired, allowing for clock skew. */
  private renewTimeLeftMs(renewedAtWallMs: number, durationMs: number): number {
    return renewedAtWallMs + durationMs + (this.options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS) - (this.options.wallNow ?? Date.now)();
  }

  private becomeLeader(token: string): void {
    // Stopped while this attempt was in flight: stop() releases what it took.
    if (!this.running) {
      this.lastFence = { namespace: this.options.namespace, name: this.options.name, token };
      return;
    }
    const fence: WriteFence = { namespace: this.options.namespace, name: this.options.name, token };
    this.lastFence = fence;
    for (const client of this.options.fenced) client.setFence(fence);
    const controller = new AbortController();
    this.leading = { fence, controller, renewedAtMs: this.now() };
    this.options.log?.(`leader election: ${this.options.identity} now holds ${this.leaseName} (fencing token ${token})`);
    this.options.onStartedLeading({ identity: this.options.identity, fence, signal: controller.signal });
  }

  private stepDown(why: string): void {
    const leading = this.leading;
    if (leading === undefined) return;
    this.leading = undefined;
    // The client keeps the old fence: any write still in flight or made later is refused.
    this.options.log?.(`leader election: ${this.options.identity} stopped leading ${this.leaseName}: ${why}`);
    leading.controller.abort();
    this.options.onStoppedLeading?.();
  }
}
