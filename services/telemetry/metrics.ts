// The master's metrics: typed instruments on an OpenTelemetry Meter, named so
// that the Prometheus exporter exposes them exactly as written here. The
// exporter appends `_total` only to monotonic sums whose name lacks it (so
// every counter below already ends in `_total`), never appends a unit suffix
// (the unit goes to a `# UNIT` comment), and histograms expose
// `<name>_bucket`, `<name>_sum` and `<name>_count`. Durations are recorded in
// seconds, whatever unit the caller measured in.

import { ValueType } from '@opentelemetry/api';
import type {
  BatchObservableCallback,
  BatchObservableResult,
  Counter,
  Histogram,
  Meter,
  Observable,
  UpDownCounter,
} from '@opentelemetry/api';

/** Every metric name the master exposes, exactly as Prometheus shows it. */
export const METRIC_NAMES = {
  apiRequests: 'mast_apiserver_requests_total',
  apiRequestDuration: 'mast_apiserver_request_duration_seconds',
  watchers: 'mast_apiserver_watchers',
  watchEvents: 'mast_apiserver_watch_events_total',
  etcdRequests: 'mast_etcd_requests_total',
  etcdRequestDuration: 'mast_etcd_request_duration_seconds',
  raftTerm: 'mast_raft_term',
  raftCommitIndex: 'mast_raft_commit_index',
  raftAppliedIndex: 'mast_raft_applied_index',
  raftIsLeader: 'mast_raft_is_leader',
  raftHasLeader: 'mast_raft_has_leader',
  raftLeaderChanges: 'mast_raft_leader_changes_seen_total',
  storeRevision: 'mast_store_revision',
} as const;

/** Histogram bucket bounds in seconds, from half a millisecond to ten seconds. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** One API request as the apiserver answered it. */
export interface ApiRequest {
  /** e.g. 'create', 'get', 'list', 'watch'. */
  readonly verb: string;
  /** Resource kind, e.g. 'Pod'. */
  readonly kind: string;
  /** gRPC status name, e.g. 'OK', 'NOT_FOUND'. */
  readonly code: string;
  readonly durationMs: number;
}

/** One etcd API call as the etcd service answered it. */
export interface EtcdRequest {
  /** RPC name, e.g. 'Range', 'Put', 'Txn', 'LeaseGrant'. */
  readonly method: string;
  /** gRPC status name, e.g. 'OK'. */
  readonly code: string;
  readonly durationMs: number;
}

/** Where the Raft and store gauges read their values at each scrape. */
export interface RaftMetricsSource {
  term(): number;
  commitIndex(): number;
  appliedIndex(): number;
  isLeader(): boolean;
  hasLeader(): boolean;
  /** Leader changes this member has seen since it started (monotonic). */
  leaderChanges(): number;
  revision(): number;
}

type Attributes<K extends string> = Record<K, string>;

interface RaftInstruments {
  readonly term: Observable;
  readonly commitIndex: Observable;
  readonly appliedIndex: Observable;
  readonly isLeader: Observable;
  readonly hasLeader: Observable;
  readonly leaderChanges: Observable;
  readonly revision: Observable;
}

function secondsOf(durationMs: number): number {
  return durationMs / 1000;
}

function durationHistogram<K extends string>(meter: Meter, name: string, description: string): Histogram<Attributes<K>> {
  return meter.createHistogram<Attributes<K>>(name, {
    description,
    unit: 's',
    advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_SECONDS] },
  });
}

function intCounter<K extends string>(meter: Meter, name: string, description: string): Counter<Attributes<K>> {
  return meter.createCounter<Attributes<K>>(name, { description, valueType: ValueType.INT });
}

function intGauge(meter: Meter, name: string, description: string): Observable {
  return meter.createObservableGauge(name, { description, valueType: ValueType.INT });
}

function raftInstruments(meter: Meter): RaftInstruments {
  return {
    term: intGauge(meter, METRIC_NAMES.raftTerm, 'Current Raft term of this member.'),
    commitIndex: intGauge(meter, METRIC_NAMES.raftCommitIndex, 'Highest Raft log index known to be committed.'),
    appliedIndex: intGauge(meter, METRIC_NAMES.raftAppliedIndex, 'Highest Raft log index applied to the state machine.'),
    isLeader: intGauge(meter, METRIC_NAMES.raftIsLeader, '1 if this member is the Raft leader, else 0.'),
    hasLeader: intGauge(meter, METRIC_NAMES.raftHasLeader, '1 if this member knows a Raft leader, else 0.'),
    leaderChanges: meter.createObservableCounter(METRIC_NAMES.raftLeaderChanges, {
      description: 'Raft leader changes seen by this member.',
      valueType: ValueType.INT,
    }),
    revision: intGauge(meter, METRIC_NAMES.storeRevision, 'Current revision of the key-value store.'),
  };
}

function observeSource(result: BatchObservableResult, raft: RaftInstruments, source: RaftMetricsSource): void {
  result.observe(raft.term, source.term());
  result.observe(raft.commitIndex, source.commitIndex());
  result.observe(raft.appliedIndex, source.appliedIndex());
  result.observe(raft.isLeader, source.isLeader() ? 1 : 0);
  result.observe(raft.hasLeader, source.hasLeader() ? 1 : 0);
  result.observe(raft.leaderChanges, source.leaderChanges());
  result.observe(raft.revision, source.revision());
}

/**
 * The master's instruments on one Meter. Recording is cheap (an attribute
 * lookup and an add); on a no-op Meter it costs a call.
 */
export class MasterMetrics {
  private readonly apiRequests: Counter<Attributes<'verb' | 'kind' | 'code'>>;
  private readonly apiRequestDuration: Histogram<Attributes<'verb' | 'kind'>>;
  private readonly watchers: UpDownCounter<Attributes<'kind'>>;
  private readonly watchEvents: Counter<Attributes<'kind' | 'type'>>;
  private readonly etcdRequests: Counter<Attributes<'method' | 'code'>>;
  private readonly etcdRequestDuration: Histogram<Attributes<'method'>>;
  private readonly raft: RaftInstruments;
  private raftCallback: BatchObservableCallback | undefined;

  constructor(private readonly meter: Meter) {
    this.apiRequests = intCounter(meter, METRIC_NAMES.apiRequests, 'API requests answered, by verb, kind and gRPC status.');
    this.apiRequestDuration = durationHistogram(meter, METRIC_NAMES.apiRequestDuration, 'API request latency in seconds.');
    this.watchers = meter.createUpDownCounter(METRIC_NAMES.watchers, {
      description: 'Open watches, by kind.',
      valueType: ValueType.INT,
    });
    this.watchEvents = intCounter(meter, METRIC_NAMES.watchEvents, 'Watch events sent to clients, by kind and event type.');
    this.etcdRequests = intCounter(meter, METRIC_NAMES.etcdRequests, 'etcd API requests answered, by method and gRPC status.');
    this.etcdRequestDuration = durationHistogram(meter, METRIC_NAMES.etcdRequestDuration, 'etcd API request latency in seconds.');
    this.raft = raftInstruments(meter);
  }

  recordApiRequest(request: ApiRequest): void {
    const { verb, kind, code } = request;
    this.apiRequests.add(1, { verb, kind, code });
    this.apiRequestDuration.record(secondsOf(request.durationMs), { verb, kind });
  }

  recordEtcdRequest(request: EtcdRequest): void {
    const { method, code } = request;
    this.etcdRequests.add(1, { method, code });
    this.etcdRequestDuration.record(secondsOf(request.durationMs), { method });
  }

  watchStarted(kind: string): void {
    this.watchers.add(1, { kind });
  }

  watchEnded(kind: string): void {
    this.watchers.add(-1, { kind });
  }

  watchEventsSent(kind: string, type: string, count: number): void {
    if (count > 0) this.watchEvents.add(count, { kind, type });
  }

  /**
   * Reads the Raft and store gauges from `source` at every collection. One
   * source at a time: a second call replaces the first. Returns a function
   * that detaches the source (the gauges then stop being reported).
   */
  observeRaft(source: RaftMetricsSource): () => void {
    this.detachRaft();
    const callback: BatchObservableCallback = (result) => observeSource(result, this.raft, source);
    this.meter.addBatchObservableCallback(callback, Object.values(this.raft));
    this.raftCallback = callback;
    return () => {
      if (this.raftCallback === callback) this.detachRaft();
    };
  }

  private detachRaft(): void {
    if (this.raftCallback === undefined) return;
    this.meter.removeBatchObservableCallback(this.raftCallback, Object.values(this.raft));
    this.raftCallback = undefined;
  }
}
