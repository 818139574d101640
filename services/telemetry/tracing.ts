// Traces: a TracerProvider per Telemetry (never registered globally), its
// exporter, and helpers that start spans under an explicit parent.
//
// Node needs a context manager (AsyncLocalStorage) for `context.active()` to
// follow async calls, and mast does not install one. So parents are passed by
// hand: every helper here takes an optional parent Context and hands back the
// Context that holds the new span, for the caller to pass to its children:
//
//   await withSpan(tracer, 'Create', { kind: 'Pod' }, async (_span, requestCtx) => {
//     const propose = startSpan(tracer, 'propose', {}, requestCtx);
//     const commit = startSpan(tracer, 'commit', {}, propose.context);
//     ...; endSpan(commit.span);
//     const apply = startSpan(tracer, 'apply', {}, propose.context);
//     ...; endSpan(apply.span);
//     endSpan(propose.span);
//   });
//
// Without a parent, a span's parent is `context.active()`: the root context,
// unless someone installed a context manager.

import { SpanStatusCode, context, trace } from '@opentelemetry/api';
import type { Attributes, Context, HrTime, Span, Tracer } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';

/**
 * Where finished spans go: nowhere (spans are not even recorded), stdout,
 * an OTLP/HTTP collector, or memory (for tests).
 */
export type TracesExporter = 'none' | 'console' | 'otlp' | 'memory';

export const DEFAULT_OTLP_TRACES_URL = 'http://127.0.0.1:4318/v1/traces';

/** A started span and the Context to pass as parent to its children. */
export interface ActiveSpan {
  readonly span: Span;
  readonly context: Context;
}

export interface TracingOptions {
  readonly exporter: TracesExporter;
  readonly otlpEndpoint?: string;
  readonly resource: Resource;
  readonly tracerName: string;
}

/** One process component's tracing: its provider, tracer and (for tests) memory. */
export interface Tracing {
  readonly provider: TracerProvider;
  readonly tracer: Tracer;
  /** Set only for the 'memory' exporter. */
  readonly memory: InMemorySpanExporter | undefined;
}

function processorsFor(exporter: TracesExporter, otlpEndpoint: string | undefined, memory: InMemorySpanExporter | undefined): SpanProcessor[] {
  switch (exporter) {
    case 'none':
      return [];
    case 'console':
      return [new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() })];
    case 'memory':
      return memory === undefined ? [] : [new SimpleSpanProcessor({ exporter: memory })];
    case 'otlp':
      return [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: otlpEndpoint ?? DEFAULT_OTLP_TRACES_URL }) })];
  }
}

export function createTracing(options: TracingOptions): Tracing {
  const memory = options.exporter === 'memory' ? new InMemorySpanExporter() : undefined;
  const provider = new TracerProvider({
    resource: options.resource,
    spanProcessors: processorsFor(options.exporter, options.otlpEndpoint, memory),
    // With nowhere to send spans, do not record them: ids only, no attributes or events.
    ...(options.exporter === 'none' ? { sampler: new AlwaysOffSampler() } : {}),
  });
  return { provider, tracer: provider.getTracer(options.tracerName), memory };
}

/** Starts a span under `parent` (default: `context.active()`). End it with endSpan. */
export function startSpan(tracer: Tracer, name: string, attributes: Attributes = {}, parent?: Context, startTime?: HrTime): ActiveSpan {
  const parentContext = parent ?? context.active();
  const span = tracer.startSpan(name, { attributes, ...(startTime === undefined ? {} : { startTime }) }, parentContext);
  return { span, context: trace.setSpan(parentContext, span) };
}

/** Marks a span failed: an exception event and ERROR status. */
export function recordSpanError(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.recordException(String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
}

/** Ends a span, first marking it failed if an error is given. */
export function endSpan(span: Span, error?: unknown, endTime?: HrTime): void {
  if (error !== undefined) recordSpanError(span, error);
  span.end(endTime);
}

/**
 * Now, for handing over from one span to the next at one instant: each span
 * converts its own clock readings (anchored when its trace began), so two
 * readings microseconds apart can come out in either order.
 */
export function spanTimeNow(): HrTime {
  return hrTime();
}

/**
 * Runs `fn` inside a new span under `parent` (default: `context.active()`).
 * `fn` gets the span and the Context to pass as parent to child spans. If
 * `fn` throws, the span gets an exception event and ERROR status and the
 * error is rethrown; either way the span is ended.
 */
export async function withSpan<T>(
  tracer: Tracer,
  name: string,
  attributes: Attributes,
  fn: (span: Span, spanContext: Context) => Promise<T>,
  parent?: Context,
): Promise<T> {
  const active = startSpan(tracer, name, attributes, parent);
  try {
    return await fn(active.span, active.context);
  } catch (error: unknown) {
    recordSpanError(active.span, error);
    throw error;
  } finally {
    active.span.end();
  }
}

/** Spans the memory exporter holds, after letting pending exports finish. */
export async function finishedSpansOf(tracing: Tracing): Promise<readonly ReadableSpan[]> {
  if (tracing.memory === undefined) return [];
  await tracing.provider.forceFlush();
  return tracing.memory.getFinishedSpans();
}
