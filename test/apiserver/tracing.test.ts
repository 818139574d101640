// A traced write: the request's span gets a child for Raft (propose until
// committed) and one for applying it to the store, in that order.

import { expect } from 'chai';
import { Registry } from '../../services/apiserver/registry.js';
import { endSpan, startSpan, startTelemetry, type Telemetry } from '../../services/telemetry/index.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';

describe('apiserver: traces of writes', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let telemetry: Telemetry;

  before(async function () {
    ({ store, close } = await openSingleStore());
    telemetry = await startTelemetry({ serviceName: 'mast-master', instanceId: 'test', tracesExporter: 'memory' });
  });

  after(async function () {
    await telemetry.shutdown();
    await close();
  });

  it('puts propose and apply under the request span, one after the other', async function () {
    const registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
    const request = startSpan(telemetry.tracer, 'mast.api/create', { 'mast.kind': 'Namespace' });
    await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'traced' } }, { trace: { tracer: telemetry.tracer, parent: request.context } });
    endSpan(request.span);
    // An untraced write adds no spans.
    await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'untraced' } });
    const spans = await telemetry.finishedSpans();
    expect(spans.map((span) => span.name).sort()).to.deep.equal(['mast.api/create', 'raft.propose', 'store.apply']);
    const parent = spans.find((span) => span.name === 'mast.api/create')!;
    const propose = spans.find((span) => span.name === 'raft.propose')!;
    const apply = spans.find((span) => span.name === 'store.apply')!;
    for (const child of [propose, apply]) {
      expect(child.parentSpanContext?.spanId).to.equal(parent.spanContext().spanId);
      expect(child.spanContext().traceId).to.equal(parent.spanContext().traceId);
    }
    const nanos = (time: readonly [number, number]): bigint => BigInt(time[0]) * 1_000_000_000n + BigInt(time[1]);
    expect(nanos(propose.endTime) <= nanos(apply.startTime)).to.equal(true);
  });
});
