// Telemetry end to end: the exact Prometheus text a scrape of /metrics gets,
// parent/child links and error marks of spans in the memory exporter, two
// Telemetry objects in one process that do not see each other, and the
// no-export configuration.

import { expect } from 'chai';
import { createConnection, createServer } from 'node:net';
import { SpanStatusCode } from '@opentelemetry/api';
import {
  DURATION_BUCKETS_SECONDS,
  METRIC_NAMES,
  TelemetryError,
  endSpan,
  parseMetricsUrl,
  startSpan,
  startTelemetry,
  withSpan,
  type RaftMetricsSource,
  type Telemetry,
} from '../../services/telemetry/index.js';

/** A loopback port nobody listens on (bound to 0, read, released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).to.equal(200);
  return response.text();
}

function linesOf(text: string): string[] {
  return text.split('\n');
}

/** Metric family names from the `# TYPE` lines. */
function familiesOf(text: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const line of linesOf(text)) {
    const match = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) families.set(match[1], match[2]);
  }
  return families;
}

function fixedRaft(values: { term: number; leader: boolean }): RaftMetricsSource {
  return {
    term: () => values.term,
    commitIndex: () => 42,
    appliedIndex: () => 41,
    isLeader: () => values.leader,
    hasLeader: () => true,
    leaderChanges: () => 3,
    revision: () => 100,
  };
}

describe('telemetry', function () {
  describe('Prometheus metrics', function () {
    let port: number;
    let telemetry: Telemetry;
    const raft = { term: 7, leader: true };

    before(async function () {
      port = await freePort();
      telemetry = await startTelemetry({ serviceName: 'mast-master', instanceId: 'm1', metricsUrl: `http://127.0.0.1:${port}`, tracesExporter: 'none' });
      const { metrics } = telemetry;
      metrics.recordApiRequest({ verb: 'create', kind: 'Pod', code: 'OK', durationMs: 3 });
      metrics.recordApiRequest({ verb: 'create', kind: 'Pod', code: 'OK', durationMs: 20 });
      metrics.recordApiRequest({ verb: 'create', kind: 'Pod', code: 'ALREADY_EXISTS', durationMs: 0.2 });
      metrics.recordApiRequest({ verb: 'get', kind: 'Node', code: 'NOT_FOUND', durationMs: 12_000 });
      metrics.recordEtcdRequest({ method: 'Range', code: 'OK', durationMs: 1.5 });
      metrics.watchEventsSent('Pod', 'ADDED', 5);
      metrics.watchEventsSent('Pod', 'DELETED', 0);
      metrics.watchStarted('Service');
      metrics.watchEnded('Service');
      metrics.observeRaft(fixedRaft(raft));
    });

    after(async function () {
      await telemetry.shutdown();
      expect(await isListening(port)).to.equal(false);
    });

    it('serves at the URL it reports', function () {
      expect(telemetry.metricsUrl).to.equal(`http://127.0.0.1:${port}/metrics`);
    });

    it('exposes exactly the listed metric names with their types', async function () {
      const families = familiesOf(await scrape(port));
      families.delete('target_info');
      expect(Object.fromEntries(families)).to.deep.equal({
        mast_apiserver_requests_total: 'counter',
        mast_apiserver_request_duration_seconds: 'histogram',
        mast_apiserver_watchers: 'gauge',
        mast_apiserver_watch_events_total: 'counter',
        mast_etcd_requests_total: 'counter',
        mast_etcd_request_duration_seconds: 'histogram',
        mast_raft_term: 'gauge',
        mast_raft_commit_index: 'gauge',
        mast_raft_applied_index: 'gauge',
        mast_raft_is_leader: 'gauge',
        mast_raft_has_leader: 'gauge',
        mast_raft_leader_changes_seen_total: 'counter',
        mast_store_revision: 'gauge',
      });
      expect([...families.keys()].sort()).to.deep.equal(Object.values(METRIC_NAMES).sort());
    });

    it('counts API requests by verb, kind and code', async function () {
      const lines = linesOf(await scrape(port));
      expect(lines).to.include.members([
        'mast_apiserver_requests_total{verb="create",kind="Pod",code="OK"} 2',
        'mast_apiserver_requests_total{verb="create",kind="Pod",code="ALREADY_EXISTS"} 1',
        'mast_apiserver_requests_total{verb="get",kind="Node",code="NOT_FOUND"} 1',
      ]);
    });

    it('records request durations in seconds in the fixed buckets', async function () {
      const lines = linesOf(await scrape(port));
      const pod = (le: string): string => `mast_apiserver_request_duration_seconds_bucket{verb="create",kind="Pod",le="${le}"}`;
      for (const bound of DURATION_BUCKETS_SECONDS) expect(lines.some((line) => line.startsWith(pod(String(bound)) + ' '))).to.equal(true, `bucket ${bound}`);
      expect(lines).to.include.members([
        `${pod('0.0005')} 1`,
        `${pod('0.0025')} 1`,
        `${pod('0.005')} 2`,
        `${pod('0.025')} 3`,
        `${pod('+Inf')} 3`,
        'mast_apiserver_request_duration_seconds_count{verb="create",kind="Pod"} 3',
        'mast_apiserver_request_duration_seconds_sum{verb="create",kind="Pod"} 0.0232',
        'mast_apiserver_request_duration_seconds_bucket{verb="get",kind="Node",le="10"} 0',
        'mast_apiserver_request_duration_seconds_bucket{verb="get",kind="Node",le="+Inf"} 1',
        'mast_etcd_requests_total{method="Range",code="OK"} 1',
        'mast_etcd_request_duration_seconds_bucket{method="Range",le="0.001"} 0',
        'mast_etcd_request_duration_seconds_bucket{method="Range",le="0.0025"} 1',
        'mast_etcd_request_duration_seconds_count{method="Range"} 1',
      ]);
    });

    it('reads the Raft and store gauges from the source at each scrape', async function () {
      expect(linesOf(await scrape(port))).to.include.members([
        'mast_raft_term 7',
        'mast_raft_commit_index 42',
        'mast_raft_applied_index 41',
        'mast_raft_is_leader 1',
        'mast_raft_has_leader 1',
        'mast_raft_leader_changes_seen_total 3',
        'mast_store_revision 100',
      ]);
      raft.term = 8;
      raft.leader = false;
      expect(linesOf(await scrape(port))).to.include.members(['mast_raft_term 8', 'mast_raft_is_leader 0']);
    });

    it('counts open watches up and down, and watch events by type', async function () {
      const { metrics } = telemetry;
      metrics.watchStarted('Pod');
      metrics.watchStarted('Pod');
      metrics.watchStarted('Node');
      let lines = linesOf(await scrape(port));
      expect(lines).to.include.members(['mast_apiserver_watchers{kind="Pod"} 2', 'mast_apiserver_watchers{kind="Node"} 1']);
      metrics.watchEnded('Pod');
      metrics.watchEnded('Node');
      lines = linesOf(await scrape(port));
      expect(lines).to.include.members(['mast_apiserver_watchers{kind="Pod"} 1', 'mast_apiserver_watchers{kind="Node"} 0']);
      expect(lines).to.include('mast_apiserver_watch_events_total{kind="Pod",type="ADDED"} 5');
      expect(lines.some((line) => line.includes('type="DELETED"'))).to.equal(false);
    });

    it('labels the target with service name and instance', async function () {
      const target = linesOf(await scrape(port)).find((line) => line.startsWith('target_info{'));
      expect(target).to.include('service_name="mast-master"').and.include('service_instance_id="m1"');
    });

    it('answers 404 off /metrics', async function () {
      const response = await fetch(`http://127.0.0.1:${port}/other`);
      expect(response.status).to.equal(404);
      await response.body?.cancel();
    });
  });

  describe('spans', function () {
    let telemetry: Telemetry;

    before(async function () {
      telemetry = await startTelemetry({ serviceName: 'mast-master', instanceId: 'm1', tracesExporter: 'memory' });
    });

    after(async function () {
      await telemetry.shutdown();
    });

    it('nests request → propose → commit, apply through explicit parents', async function () {
      const { tracer } = telemetry;
      const result = await withSpan(tracer, 'Create', { verb: 'create', kind: 'Pod' }, async (_span, requestCtx) => {
        const propose = startSpan(tracer, 'propose', { 'raft.index': 12 }, requestCtx);
        const commit = startSpan(tracer, 'commit', {}, propose.context);
        endSpan(commit.span);
        await withSpan(tracer, 'apply', {}, () => Promise.resolve(), propose.context);
        endSpan(propose.span);
        return 'created';
      });
      expect(result).to.equal('created');

      const spans = new Map((await telemetry.finishedSpans()).map((span) => [span.name, span]));
      const [request, propose, commit, apply] = ['Create', 'propose', 'commit', 'apply'].map((name) => spans.get(name));
      if (request === undefined || propose === undefined || commit === undefined || apply === undefined) throw new Error('missing span');
      expect(request.parentSpanContext).to.equal(undefined);
      expect(propose.parentSpanContext?.spanId).to.equal(request.spanContext().spanId);
      expect(commit.parentSpanContext?.spanId).to.equal(propose.spanContext().spanId);
      expect(apply.parentSpanContext?.spanId).to.equal(propose.spanContext().spanId);
      for (const span of [propose, commit, apply]) expect(span.spanContext().traceId).to.equal(request.spanContext().traceId);
      expect(request.attributes).to.deep.equal({ verb: 'create', kind: 'Pod' });
      expect(propose.attributes).to.deep.equal({ 'raft.index': 12 });
      expect(request.status.code).to.equal(SpanStatusCode.UNSET);
      expect(request.ended).to.equal(true);
    });

    it('marks a failed span ERROR with an exception event, ends it and rethrows', async function () {
      const { tracer } = telemetry;
      const failure = await withSpan(tracer, 'Delete', {}, (_span, ctx) =>
        withSpan(tracer, 'propose', {}, () => Promise.reject(new Error('not the leader')), ctx),
      ).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).to.be.instanceOf(Error).with.property('message', 'not the leader');

      const spans = await telemetry.finishedSpans();
      const parent = spans.find((span) => span.name === 'Delete');
      const child = spans.find((span) => span.name === 'propose' && span.status.code === SpanStatusCode.ERROR);
      if (parent === undefined || child === undefined) throw new Error('missing span');
      expect(child.parentSpanContext?.spanId).to.equal(parent.spanContext().spanId);
      expect(child.status).to.deep.equal({ code: SpanStatusCode.ERROR, message: 'not the leader' });
      expect(parent.status.code).to.equal(SpanStatusCode.ERROR);
      const event = child.events[0];
      expect(event?.name).to.equal('exception');
      expect(event?.attributes?.['exception.message']).to.equal('not the leader');
      expect(event?.attributes?.['exception.type']).to.equal('Error');
      expect(child.ended).to.equal(true);
    });

    it('records a thrown non-Error as an exception too', async function () {
      const failure = await withSpan(telemetry.tracer, 'odd', {}, () => Promise.reject('plain string')).catch((error: unknown) => error);
      expect(failure).to.equal('plain string');
      const span = (await telemetry.finishedSpans()).find((s) => s.name === 'odd');
      expect(span?.status).to.deep.equal({ code: SpanStatusCode.ERROR, message: 'plain string' });
      expect(span?.events[0]?.name).to.equal('exception');
    });
  });

  describe('two in one process', function () {
    let ports: [number, number];
    let a: Telemetry;
    let b: Telemetry;

    before(async function () {
      ports = [await freePort(), await freePort()];
      a = await startTelemetry({ serviceName: 'mast-master', instanceId: 'a', metricsUrl: `http://127.0.0.1:${ports[0]}`, tracesExporter: 'memory' });
      b = await startTelemetry({ serviceName: 'mast-master', instanceId: 'b', metricsUrl: `http://127.0.0.1:${ports[1]}`, tracesExporter: 'memory' });
    });

    after(async function () {
      await Promise.all([a.shutdown(), b.shutdown()]);
      expect(await isListening(ports[0])).to.equal(false);
      expect(await isListening(ports[1])).to.equal(false);
    });

    it('keep their own metrics, Raft sources and spans', async function () {
      a.metrics.recordApiRequest({ verb: 'list', kind: 'Pod', code: 'OK', durationMs: 1 });
      a.metrics.observeRaft(fixedRaft({ term: 5, leader: true }));
      b.metrics.observeRaft(fixedRaft({ term: 6, leader: false }));
      endSpan(startSpan(a.tracer, 'only-a').span);

      const [textA, textB] = [await scrape(ports[0]), await scrape(ports[1])];
      expect(linesOf(textA)).to.include.members(['mast_apiserver_requests_total{verb="list",kind="Pod",code="OK"} 1', 'mast_raft_term 5', 'mast_raft_is_leader 1']);
      expect(textB).not.to.include('mast_apiserver_requests_total');
      expect(linesOf(textB)).to.include.members(['mast_raft_term 6', 'mast_raft_is_leader 0']);
      expect(textA).to.include('service_instance_id="a"').and.not.include('service_instance_id="b"');

      expect((await a.finishedSpans()).map((span) => span.name)).to.deep.equal(['only-a']);
      expect(await b.finishedSpans()).to.deep.equal([]);
    });

    it('shut down independently', async function () {
      await b.shutdown();
      await b.shutdown(); // idempotent
      expect(await isListening(ports[1])).to.equal(false);
      expect(linesOf(await scrape(ports[0]))).to.include('mast_raft_term 5');
    });
  });

  describe('without exporters', function () {
    it('records and traces into nothing', async function () {
      const telemetry = await startTelemetry({ serviceName: 'mast-master', instanceId: 'm1', tracesExporter: 'none' });
      expect(telemetry.metricsUrl).to.equal(undefined);
      telemetry.metrics.recordApiRequest({ verb: 'get', kind: 'Pod', code: 'OK', durationMs: 1 });
      telemetry.metrics.watchStarted('Pod');
      const detach = telemetry.metrics.observeRaft(fixedRaft({ term: 1, leader: false }));
      detach();
      const value = await withSpan(telemetry.tracer, 'noop', { a: 1 }, (span) => Promise.resolve(span.isRecording()));
      expect(value).to.equal(false);
      expect(await telemetry.finishedSpans()).to.deep.equal([]);
      await telemetry.shutdown();
    });
  });

  describe('metrics URL', function () {
    it('takes host and port, and serves at /metrics', function () {
      expect(parseMetricsUrl('http://127.0.0.1:2381')).to.deep.equal({ host: '127.0.0.1', port: 2381, url: 'http://127.0.0.1:2381/metrics' });
      expect(parseMetricsUrl('http://[::1]:2381/metrics')).to.deep.equal({ host: '::1', port: 2381, url: 'http://[::1]:2381/metrics' });
    });

    it('refuses port 0, other schemes, other paths and non-URLs', function () {
      for (const bad of ['http://127.0.0.1:0', 'https://127.0.0.1:2381', 'http://127.0.0.1:2381/stats', '127.0.0.1:2381']) {
        expect(() => parseMetricsUrl(bad), bad).to.throw(TelemetryError);
      }
    });

    it('rejects a port already in use', async function () {
      const blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const address = blocker.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      try {
        const failure = await startTelemetry({ serviceName: 'mast-master', instanceId: 'm1', metricsUrl: `http://127.0.0.1:${address.port}` }).catch(
          (error: unknown) => error,
        );
        expect(failure).to.be.instanceOf(TelemetryError);
        expect(String(failure)).to.include('EADDRINUSE');
      } finally {
        await new Promise<void>((resolve) => blocker.close(() => resolve()));
      }
    });
  });
});
