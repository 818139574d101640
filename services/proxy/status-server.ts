// The proxy's HTTP endpoint, where kube-proxy has it (127.0.0.1:10249 by
// default): GET /proxyMode answers the mode in use, /healthz whether the
// last apply succeeded (with kube-proxy's lastUpdated/currentTime body),
// /metrics the Prometheus metrics — apply durations, network programming
// latency (change seen → applied), counts of syncs, failures and repairs,
// the programmed service ports and backends, and whatever gauges and
// histograms the agent adds (userspace connections, DNS queries, its pods).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ValueType } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider, AggregationType } from '@opentelemetry/sdk-metrics';
import type { ApplyRecord, Proxier } from './proxier.js';

export const DEFAULT_PROXY_STATUS_ADDRESS = '127.0.0.1:10249';

/** A value read when /metrics is scraped: a running total (counter, named ..._total) or a current value (gauge). */
export interface ProxyGauge {
  readonly name: string;
  readonly help: string;
  readonly kind: 'counter' | 'gauge';
  read(): number;
}

/** A distribution in seconds, fed by its source through `subscribe`. */
export interface ProxyHistogram {
  readonly name: string;
  readonly help: string;
  subscribe(record: (seconds: number) => void): void;
}

export interface ProxyStatusServerOptions {
  readonly proxier: Proxier;
  /** HOST:PORT (port 0: any free port). */
  readonly address: string;
  readonly gauges?: readonly ProxyGauge[];
  readonly histograms?: readonly ProxyHistogram[];
}

const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class ProxyStatusServer {
  private readonly server: Server;
  private readonly exporter = new PrometheusExporter({ preventServerStart: true });
  private readonly provider: MeterProvider;
  private lastSuccessMs: number | undefined;
  private lastFailed = false;
  private boundPort = 0;

  private constructor(private readonly options: ProxyStatusServerOptions) {
    this.provider = new MeterProvider({
      readers: [this.exporter],
      views: [{ instrumentName: '*_seconds', aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: DURATION_BUCKETS_SECONDS } } }],
    });
    const meter = this.provider.getMeter('mast-proxy');
    const applyDuration = meter.createHistogram('mast_proxy_sync_duration_seconds', { description: 'How long applying the rules took, by kind (full or partial)', unit: 's' });
    const programming = meter.createHistogram('mast_proxy_network_programming_duration_seconds', { description: 'From a Service or Endpoints change being seen to its rules applied', unit: 's' });
    const applies = meter.createCounter('mast_proxy_syncs_total', { description: 'Applies of the rules, by kind and result' });
    const proxier = options.proxier;
    proxier.onApply((record: ApplyRecord) => {
      applies.add(1, { kind: record.kind, result: record.ok ? 'ok' : 'error' });
      if (!record.ok) {
        this.lastFailed = true;
        return;
      }
      this.lastFailed = false;
      this.lastSuccessMs = Date.now();
      applyDuration.record(record.durationMs / 1000, { kind: record.kind });
      if (record.programmingMs !== undefined) programming.record(record.programmingMs / 1000);
    });
    const repairs = meter.createObservableCounter('mast_proxy_repairs_total', { description: 'Full syncs made because the programmed rules had been changed outside the proxy', valueType: ValueType.INT });
    repairs.addCallback((result) => result.observe(proxier.counts.repairs));
    const servicePorts = meter.createObservableGauge('mast_proxy_service_ports', { description: 'Service ports programmed', valueType: ValueType.INT });
    servicePorts.addCallback((result) => result.observe(proxier.appliedRules.services.length));
    const backends = meter.createObservableGauge('mast_proxy_backends', { description: 'Ready backends programmed, over all service ports', valueType: ValueType.INT });
    backends.addCallback((result) => result.observe(proxier.appliedRules.services.reduce((sum, rule) => sum + rule.backends.length, 0)));
    for (const gauge of options.gauges ?? []) {
      const instrument = gauge.kind === 'counter' ? meter.createObservableCounter(gauge.name, { description: gauge.help, valueType: ValueType.INT }) : meter.createObservableGauge(gauge.name, { description: gauge.help, valueType: ValueType.INT });
      instrument.addCallback((result) => result.observe(gauge.read()));
    }
    for (const histogram of options.histograms ?? []) {
      const instrument = meter.createHistogram(histogram.name, { description: histogram.help, unit: 's' });
      histogram.subscribe((seconds) => instrument.record(seconds));
    }
    this.server = createServer((request, response) => this.serve(request, response));
  }

  static async start(options: ProxyStatusServerOptions): Promise<ProxyStatusServer> {
    const { host, port } = parseHostPort(options.address);
    const server = new ProxyStatusServer(options);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', (error) => reject(new Error(`cannot serve the proxy status on ${options.address}: ${error.message}`)));
      server.server.listen(port, host, () => resolve());
    });
    const address = server.server.address();
    server.boundPort = typeof address === 'object' && address !== null ? address.port : port;
    return server;
  }

  get port(): number {
    return this.boundPort;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.provider.shutdown().catch(() => undefined);
  }

  private serve(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/proxyMode':
        response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(this.options.proxier.mode);
        return;
      case '/healthz': {
        const healthy = this.lastSuccessMs !== undefined && !this.lastFailed;
        const body = { lastUpdated: this.lastSuccessMs === undefined ? '' : new Date(this.lastSuccessMs).toISOString(), currentTime: new Date().toISOString(), mode: this.options.proxier.mode };
        response.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        return;
      }
      case '/metrics':
        this.exporter.getMetricsRequestHandler(request, response);
        return;
      default:
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`no ${path} here: /proxyMode, /healthz, /metrics\n`);
    }
  }
}

function parseHostPort(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  const port = Number(address.slice(index + 1));
  const host = address.slice(0, index);
  if (index <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`proxy status address ${JSON.stringify(address)} is not HOST:PORT`);
  return { host, port };
}
