// Metrics and traces for a mast process: Prometheus text on /metrics, spans to
// the console, an OTLP/HTTP collector or memory. Imports only npm packages.
export {
  DURATION_BUCKETS_SECONDS,
  MasterMetrics,
  METRIC_NAMES,
  type ApiRequest,
  type EtcdRequest,
  type RaftMetricsSource,
} from './metrics.js';
export { parseMetricsUrl, startTelemetry, TelemetryError, type Telemetry, type TelemetryOptions } from './telemetry.js';
export {
  DEFAULT_OTLP_TRACES_URL,
  endSpan,
  recordSpanError,
  startSpan,
  spanTimeNow,
  withSpan,
  type ActiveSpan,
  type TracesExporter,
} from './tracing.js';
