// The Service proxy's loop, kube-proxy's role on one node: informers on
// Services and Endpoints; on any change, the desired rules (rules.ts) are
// computed from the caches and only the difference from what was last
// applied goes to the backend. Changes arriving while an apply runs are
// coalesced into the next one. Every sync period the backend verifies
// that the programmed state is still what was applied — rules removed or
// altered by hand are repaired with a full sync — and a failed apply is
// retried with a full sync after a back-off.

import { Informer } from '../client/informer.js';
import type { ListerWatcher } from '../client/informer.js';
import type { Endpoints, Service } from '../../proto/gen/resources/v1/core.js';
import type { ProxyBackend } from './backend.js';
import { desiredRules, diffRules, isEmptyChange, RulesCache, type ProxyRules, type ServicePortRule } from './rules.js';

export interface ProxierOptions {
  readonly client: ListerWatcher;
  readonly backend: ProxyBackend;
  /** Rules programmed whatever the API holds, e.g. the cluster DNS address → this node's DNS server. */
  readonly staticRules?: readonly ServicePortRule[];
  /** How often the programmed state is verified (and repaired); default 30 s, as kube-proxy's --iptables-sync-period. */
  readonly syncPeriodMs?: number;
  /** Called with the caches' contents whenever they changed, before the rules are computed (cluster DNS follows the same world). */
  readonly onWorld?: (services: readonly Service[], endpoints: readonly Endpoints[]) => void;
  readonly log?: (line: string) => void;
  /** Milliseconds, monotonic; injectable for tests. */
  readonly now?: () => number;
}

/** One apply, for metrics. */
export interface ApplyRecord {
  readonly kind: 'full' | 'partial';
  readonly ok: boolean;
  /** How long the backend took. */
  readonly durationMs: number;
  /** From the first change this apply covers being seen to the apply completing (undefined for a periodic repair). */
  readonly programmingMs: number | undefined;
  readonly servicePorts: number;
  readonly backends: number;
}

const EMPTY_RULES: ProxyRules = { services: [] };
const RETRY_INITIAL_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class Proxier {
  private readonly services: Informer;
  private readonly endpoints: Informer;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private applied: ProxyRules = EMPTY_RULES;
  /** Each Service's rules, recomputed only when its Service or Endpoints object changed. */
  private readonly cache = new RulesCache();
  /** The next apply must replace everything (first sync, after a failure, on repair). */
  private needsFull = true;
  /** When the oldest change not yet applied was seen; undefined: nothing pending. */
  private dirtySince: number | undefined;
  private running: Promise<void> | undefined;
  private scheduled = false;
  private retryMs = RETRY_INITIAL_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private periodTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly listeners: ((record: ApplyRecord) => void)[] = [];
  /** Counters, for metrics and tests. */
  readonly counts = { fullSyncs: 0, partialSyncs: 0, failures: 0, repairs: 0 };
  private last: ApplyRecord | undefined;

  constructor(private readonly options: ProxierOptions) {
    this.log = options.log ?? (() => {});
    this.now = options.now ?? (() => performance.now());
    this.services = new Informer(options.client, 'Service', { log: this.log });
    this.endpoints = new Informer(options.client, 'Endpoints', { log: this.log });
    for (const informer of [this.services, this.endpoints]) {
      informer.onAdd(() => this.changed());
      informer.onUpdate((before, after) => {
        if (before.metadata?.resourceVersion !== after.metadata?.resourceVersion) this.changed();
      });
      informer.onDelete(() => this.changed());
    }
  }

  get mode(): ProxyBackend['mode'] {
    return this.options.backend.mode;
  }

  /** The rules last applied successfully. */
  get appliedRules(): ProxyRules {
    return this.applied;
  }

  get lastApply(): ApplyRecord | undefined {
    return this.last;
  }

  /** Told of every apply (metrics). */
  onApply(listener: (record: ApplyRecord) => void): void {
    this.listeners.push(listener);
  }

  /** Starts watching; resolves after the first full sync was attempted. */
  async start(): Promise<void> {
    this.services.start();
    this.endpoints.start();
    await Promise.all([this.services.waitForSync(), this.endpoints.waitForSync()]);
    this.changed();
    await this.settle();
    const period = this.options.syncPeriodMs ?? 30_000;
    if (period > 0) {
      this.periodTimer = setInterval(() => void this.verifyAndRepair(), period);
      this.periodTimer.unref();
    }
  }

  /** Resolves when no apply is running or scheduled (tests, benchmarks). */
  async settle(): Promise<void> {
    while (this.running !== undefined || this.scheduled) {
      await (this.running ?? new Promise((resolve) => setImmediate(resolve)));
    }
  }

  /** Checks the programmed state and repairs it with a full sync when it was altered. */
  async verifyAndRepair(): Promise<boolean> {
    if (this.stopped || this.running !== undefined || this.scheduled) return true;
    let intact: boolean;
    try {
      intact = await this.options.backend.verify();
    } catch (error) {
      this.log(`proxy: cannot verify the ${this.mode} rules: ${String(error)}`);
      intact = false;
    }
    if (!intact && !this.stopped) {
      this.log(`proxy: the programmed ${this.mode} rules differ from the last applied (changed outside the proxy, or some could not be applied); full sync`);
      this.counts.repairs++;
      this.needsFull = true;
      this.schedule();
      await this.settle();
    }
    return intact;
  }

  async stop(options: { readonly removeRules?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearInterval(this.periodTimer);
    clearTimeout(this.retryTimer);
    this.services.stop();
    this.endpoints.stop();
    await this.running;
    if (options.removeRules === true) await this.options.backend.close();
  }

  private changed(): void {
    if (this.dirtySince === undefined) this.dirtySince = this.now();
    this.schedule();
  }

  /** Runs an apply soon; changes arriving in the same turn (or during an apply) share it. */
  private schedule(): void {
    if (this.scheduled || this.stopped || this.retryTimer !== undefined) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.running === undefined) this.running = this.apply().finally(() => (this.running = undefined));
      else void this.running.then(() => this.schedule());
    });
  }

  private async apply(): Promise<void> {
    if (this.stopped) return;
    if (!this.services.hasSynced || !this.endpoints.hasSynced) return;
    const services = this.services.list() as Service[];
    const endpoints = this.endpoints.list() as Endpoints[];
    this.options.onWorld?.(services, endpoints);
    const desired = withStaticRules(desiredRules(services, endpoints, this.cache), this.options.staticRules ?? []);
    const since = this.dirtySince;
    this.dirtySince = undefined;
    const full = this.needsFull;
    const change = diffRules(this.applied, desired);
    if (!full && isEmptyChange(change)) return;
    const started = this.now();
    try {
      if (full) await this.options.backend.sync(desired);
      else await this.options.backend.update(change, desired);
      this.applied = desired;
      this.needsFull = false;
      this.retryMs = RETRY_INITIAL_MS;
      if (full) this.counts.fullSyncs++;
      else this.counts.partialSyncs++;
      this.record({ kind: full ? 'full' : 'partial', ok: true, durationMs: this.now() - started, programmingMs: since === undefined ? undefined : this.now() - since, servicePorts: desired.services.length, backends: countBackends(desired) });
    } catch (error) {
      this.counts.failures++;
      this.needsFull = true;
      if (this.dirtySince === undefined) this.dirtySince = since;
      this.record({ kind: full ? 'full' : 'partial', ok: false, durationMs: this.now() - started, programmingMs: undefined, servicePorts: desired.services.length, backends: countBackends(desired) });
      this.log(`proxy: applying the ${this.mode} rules failed (retrying with a full sync in ${this.retryMs} ms): ${String(error)}`);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.schedule();
      }, this.retryMs);
      this.retryTimer.unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    }
  }

  private record(record: ApplyRecord): void {
    this.last = record;
    for (const listener of this.listeners) listener(record);
  }
}

function countBackends(rules: ProxyRules): number {
  return rules.services.reduce((sum, rule) => sum + rule.backends.length, 0);
}

/** The API's rules plus the static ones (a static rule wins over an API rule with the same id). */
function withStaticRules(rules: ProxyRules, staticRules: readonly ServicePortRule[]): ProxyRules {
  if (staticRules.length === 0) return rules;
  const ids = new Set(staticRules.map((rule) => rule.id));
  const services = [...rules.services.filter((rule) => !ids.has(rule.id)), ...staticRules];
  services.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { services };
}
