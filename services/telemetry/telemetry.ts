// One process's telemetry: a MeterProvider whose Prometheus exporter serves
// /metrics on its own HTTP server, and a TracerProvider with the chosen span
// exporter. Both are held here and never registered as the global providers,
// so several Telemetry objects can live in one process (tests start several)
// without seeing each other's metrics or spans.
//
// Port 0 is refused: the Prometheus exporter reads its port as
// `config.port || 9464`, so 0 would silently bind 9464, and it keeps its
// server private, so the bound port could not be learned anyway. Tests find a
// free port first (bind a net server to port 0, read it, close it).

import { createNoopMeter } from '@opentelemetry/api';
import type { Meter, Tracer } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { MasterMetrics } from './metrics.js';
import { createTracing, finishedSpansOf, type TracesExporter, type Tracing } from './tracing.js';

/** Instrumentation scope name of mast's meters and tracers. */
const SCOPE_NAME = 'mast';
/** The path the Prometheus exporter serves. */
const METRICS_PATH = '/metrics';

export interface TelemetryOptions {
  /** e.g. 'mast-master'; the `service.name` resource attribute. */
  readonly serviceName: string;
  /** The member name; the `service.instance.id` resource attribute. */
  readonly instanceId: string;
  /**
   * Where to serve Prometheus text, e.g. 'http://127.0.0.1:2381': metrics are
   * at `/metrics` on that host and port. The port must not be 0.
   * Without it, metrics are recorded on a no-op Meter and cost next to nothing.
   */
  readonly metricsUrl?: string;
  /** Default 'none'. */
  readonly tracesExporter?: TracesExporter;
  /** For 'otlp': the OTLP/HTTP traces URL, default http://127.0.0.1:4318/v1/traces. */
  readonly otlpEndpoint?: string;
}

export interface Telemetry {
  readonly serviceName: string;
  readonly instanceId: string;
  /** Where Prometheus text is served, e.g. 'http://127.0.0.1:2381/metrics'; undefined if not served. */
  readonly metricsUrl: string | undefined;
  /** For instruments beyond the master's own. */
  readonly meter: Meter;
  readonly metrics: MasterMetrics;
  readonly tracer: Tracer;
  /** For tracesExporter 'memory': the finished spans, after pending exports complete; else empty. */
  finishedSpans(): Promise<readonly ReadableSpan[]>;
  /** Sends buffered spans now. */
  forceFlush(): Promise<void>;
  /** Stops the metrics server and flushes and stops the span exporter; never rejects. Idempotent. */
  shutdown(): Promise<void>;
}

export class TelemetryError extends Error {
  override readonly name = 'TelemetryError';
}

interface MetricsEndpoint {
  readonly host: string;
  readonly port: number;
  readonly url: string;
}

/** Host and port to serve metrics on, from a URL like 'http://127.0.0.1:2381'. */
export function parseMetricsUrl(metricsUrl: string): MetricsEndpoint {
  let url: URL;
  try {
    url = new URL(metricsUrl);
  } catch {
    throw new TelemetryError(`metrics URL ${JSON.stringify(metricsUrl)} is not a URL`);
  }
  if (url.protocol !== 'http:') throw new TelemetryError(`metrics URL ${metricsUrl} must be http://`);
  if (url.pathname !== '/' && url.pathname !== METRICS_PATH) {
    throw new TelemetryError(`metrics URL ${metricsUrl} must have no path (metrics are served at ${METRICS_PATH})`);
  }
  const port = url.port === '' ? 80 : Number(url.port); // URL drops the scheme's default port
  if (port === 0) throw new TelemetryError(`metrics URL ${metricsUrl} needs a port other than 0`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port, url: `http://${url.host}${METRICS_PATH}` };
}

function resourceOf(options: TelemetryOptions): Resource {
  return defaultResource().merge(
    resourceFromAttributes({ 'service.name': options.serviceName, 'service.instance.id': options.instanceId }),
  );
}

interface Metering {
  readonly provider: MeterProvider | undefined;
  readonly meter: Meter;
}

async function startPrometheus(endpoint: MetricsEndpoint, resource: Resource): Promise<MeterProvider> {
  const exporter = new PrometheusExporter({
    host: endpoint.host,
    port: endpoint.port,
    endpoint: METRICS_PATH,
    // Scope labels (otel_scope_name=...) on every series add nothing for one scope.
    withoutScopeInfo: true,
  });
  const provider = new MeterProvider({ resource, readers: [exporter] });
  try {
    await exporter.startServer(); // the constructor's listen; this awaits it
  } catch (error: unknown) {
    await provider.shutdown();
    throw new TelemetryError(`cannot serve metrics on ${endpoint.url}: ${String(error)}`, { cause: error });
  }
  return provider;
}

async function startMetering(endpoint: MetricsEndpoint | undefined, resource: Resource): Promise<Metering> {
  if (endpoint === undefined) return { provider: undefined, meter: createNoopMeter() };
  const provider = await startPrometheus(endpoint, resource);
  return { provider, meter: provider.getMeter(SCOPE_NAME) };
}

class ProcessTelemetry implements Telemetry {
  readonly metrics: MasterMetrics;
  readonly tracer: Tracer;
  private stopped: Promise<void> | undefined;

  constructor(
    readonly serviceName: string,
    readonly instanceId: string,
    readonly metricsUrl: string | undefined,
    private readonly metering: Metering,
    private readonly tracing: Tracing,
  ) {
    this.metrics = new MasterMetrics(metering.meter);
    this.tracer = tracing.tracer;
  }

  get meter(): Meter {
    return this.metering.meter;
  }

  finishedSpans(): Promise<readonly ReadableSpan[]> {
    return finishedSpansOf(this.tracing);
  }

  forceFlush(): Promise<void> {
    return this.tracing.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    this.stopped ??= this.stop();
    return this.stopped;
  }

  /**
   * Shutting down flushes pending spans; if the collector cannot take them
   * (say it is down) they are dropped, as export failures are while running,
   * and shutdown still succeeds.
   */
  private async stop(): Promise<void> {
    await Promise.allSettled([this.metering.provider?.shutdown(), this.tracing.provider.shutdown()]);
  }
}

/**
 * Starts metrics (served when `metricsUrl` is given) and tracing. Resolves
 * once the metrics server listens; rejects with TelemetryError if the URL is
 * unusable or the port cannot be bound.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const endpoint = options.metricsUrl === undefined ? undefined : parseMetricsUrl(options.metricsUrl);
  const resource = resourceOf(options);
  const metering = await startMetering(endpoint, resource);
  const tracing = createTracing({
    exporter: options.tracesExporter ?? 'none',
    resource,
    tracerName: SCOPE_NAME,
    otlpEndpoint: options.otlpEndpoint,
  });
  return new ProcessTelemetry(options.serviceName, options.instanceId, endpoint?.url, metering, tracing);
}
