// Container probes, as the kubelet's prober: exec (through the runtime's
// ExecSync), tcpSocket (a connect) and httpGet (HTTP only: 200–399 passes),
// and a ProbeManager that runs each probe of each running container of one
// pod on its schedule — initialDelaySeconds after the container started,
// then every periodSeconds, each try bounded by timeoutSeconds — and reports
// a result only after successThreshold successes or failureThreshold
// failures in a row. Liveness and readiness wait until the startup probe
// (if any) succeeded; a failed liveness or startup probe goes quiet until
// the container is replaced. A try that could not run at all (the runtime
// erred) counts neither way.

import * as http from 'node:http';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Container, Probe } from '../../proto/gen/resources/v1/core.js';
import type { IntOrString } from '../../proto/gen/resources/v1/meta.js';
import { CriError, type CriRuntime } from './cri.js';
import type { ContainerProbeResults, ProbeResult, ProbeSnapshot } from './pod-actions.js';
import type { WorkerClock } from './pod-worker-clock.js';

export type ProbeKind = 'liveness' | 'readiness' | 'startup';

export interface ProbeOutcome {
  readonly result: ProbeResult | 'unknown';
  readonly message: string;
}

export interface ProbeTarget {
  readonly runtime: CriRuntime;
  readonly containerId: string;
  readonly container: Container;
  readonly podIP: string;
}

/** Kubernetes' probe defaults. */
export const PROBE_DEFAULTS = { periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3, initialDelaySeconds: 0 } as const;
/** How much of a probe's output goes into a message. */
const OUTPUT_LIMIT_CHARS = 1024;
const USER_AGENT = 'kube-probe/mast';

function timeoutSecondsOf(probe: Probe): number {
  return probe.timeoutSeconds !== undefined && probe.timeoutSeconds > 0 ? probe.timeoutSeconds : PROBE_DEFAULTS.timeoutSeconds;
}

/** A probe's port: a number, or the name of one of the container's ports. */
export function resolveProbePort(port: IntOrString | undefined, container: Container): number | Error {
  if (typeof port === 'number') return port > 0 && port < 65536 ? port : new Error(`invalid port ${port}`);
  if (port === undefined || port === '') return new Error('no port given');
  if (/^\d+$/.test(port)) return resolveProbePort(Number(port), container);
  const named = (container.ports ?? []).find((candidate) => candidate.name === port);
  if (named?.containerPort === undefined) return new Error(`container ${container.name ?? ''} has no port named "${port}"`);
  return named.containerPort;
}

function trimmed(text: string): string {
  const clean = text.trim();
  return clean.length > OUTPUT_LIMIT_CHARS ? `${clean.slice(0, OUTPUT_LIMIT_CHARS)}…` : clean;
}

export async function execProbe(runtime: CriRuntime, containerId: string, command: readonly string[], timeoutSeconds: number): Promise<ProbeOutcome> {
  try {
    const result = await runtime.execSync(containerId, command, timeoutSeconds);
    const output = trimmed(`${result.stdout.toString('utf8')}${result.stderr.toString('utf8')}`);
    if (result.exitCode === 0) return { result: 'success', message: output };
    return { result: 'failure', message: `command ${JSON.stringify(command)} exited with ${result.exitCode}${output !== '' ? `: ${output}` : ''}` };
  } catch (error) {
    if (error instanceof CriError && error.code === grpc.status.DEADLINE_EXCEEDED) return { result: 'failure', message: `command ${JSON.stringify(command)} timed out after ${timeoutSeconds}s` };
    return { result: 'unknown', message: error instanceof Error ? error.message : String(error) };
  }
}

export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (outcome: ProbeOutcome): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ result: 'failure', message: `dial tcp ${host}:${port}: timed out after ${timeoutMs}ms` }), timeoutMs);
    socket.once('connect', () => finish({ result: 'success', message: '' }));
    socket.once('error', (error) => finish({ result: 'failure', message: `dial tcp ${host}:${port}: ${error.message}` }));
  });
}

export interface HttpProbeRequest {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: string }>;
}

export function httpProbe(request: HttpProbeRequest, timeoutMs: number): Promise<ProbeOutcome> {
  const headers: Record<string, string> = { 'User-Agent': USER_AGENT, Accept: '*/*' };
  for (const header of request.headers) headers[header.name] = header.value;
  const path = request.path.startsWith('/') ? request.path : `/${request.path}`;
  const url = `http://${request.host.includes(':') ? `[${request.host}]` : request.host}:${request.port}${path}`;
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: ProbeOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      outgoing.destroy();
      resolve(outcome);
    };
    const outgoing = http.get({ host: request.host, port: request.port, path, headers, agent: false }, (response) => {
      const code = response.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let length = 0;
      response.on('data', (chunk: Buffer) => {
        if (length < OUTPUT_LIMIT_CHARS) chunks.push(chunk);
        length += chunk.length;
      });
      response.once('end', () => {
        const body = trimmed(Buffer.concat(chunks).toString('utf8'));
        // Redirects pass without being followed.
        if (code >= 200 && code < 400) finish({ result: 'success', message: body });
        else finish({ result: 'failure', message: `HTTP probe of ${url} failed with status code ${code}${body !== '' ? `: ${body}` : ''}` });
      });
      response.once('error', (error) => finish({ result: 'failure', message: `HTTP probe of ${url}: ${error.message}` }));
    });
    const timer = setTimeout(() => finish({ result: 'failure', message: `HTTP probe of ${url} timed out after ${timeoutMs}ms` }), timeoutMs);
    outgoing.once('error', (error) => finish({ result: 'failure', message: `HTTP probe of ${url}: ${error.message}` }));
  });
}

/** Run one try of a probe against a container. */
export async function runProbe(probe: Probe, target: ProbeTarget): Promise<ProbeOutcome> {
  const timeoutSeconds = timeoutSecondsOf(probe);
  if (probe.exec !== undefined) return execProbe(target.runtime, target.containerId, probe.exec.command ?? [], timeoutSeconds);
  if (probe.tcpSocket !== undefined) {
    const port = resolveProbePort(probe.tcpSocket.port, target.container);
    if (port instanceof Error) return { result: 'failure', message: `tcpSocket probe: ${port.message}` };
    return tcpProbe(probe.tcpSocket.host ?? target.podIP, port, timeoutSeconds * 1000);
  }
  if (probe.httpGet !== undefined) {
    const action = probe.httpGet;
    const scheme = (action.scheme ?? 'HTTP').toUpperCase();
    if (scheme !== 'HTTP') return { result: 'failure', message: `httpGet probe: scheme ${scheme} is not supported by mast (only HTTP)` };
    const port = resolveProbePort(action.port, target.container);
    if (port instanceof Error) return { result: 'failure', message: `httpGet probe: ${port.message}` };
    const host = action.host !== undefined && action.host !== '' ? action.host : target.podIP;
    const headers = (action.httpHeaders ?? []).map((header) => ({ name: header.name ?? '', value: header.value ?? '' })).filter((header) => header.name !== '');
    return httpProbe({ host, port, path: action.path ?? '/', headers }, timeoutSeconds * 1000);
  }
  if (probe.grpc !== undefined) return { result: 'failure', message: 'grpc probes are not supported by mast' };
  return { result: 'failure', message: 'probe has no handler (exec, httpGet or tcpSocket)' };
}

export interface ProbedContainer {
  readonly id: string;
  readonly spec: Container;
  readonly startedAtMs: number;
}

export interface ProbeManagerOptions {
  readonly runtime: CriRuntime;
  readonly clock: WorkerClock;
  /** A reported result changed: the pod worker re-syncs. */
  readonly onChange: (containerId: string, kind: ProbeKind, result: ProbeResult) => void;
  readonly log?: (line: string) => void;
  /** How one try runs (tests may replace it). */
  readonly runProbe?: (probe: Probe, target: ProbeTarget) => Promise<ProbeOutcome>;
}

type MutableResults = { -readonly [K in keyof ContainerProbeResults]: ContainerProbeResults[K] };

/** One probe of one container instance on its schedule. */
class ProbeLoop {
  private lastResult: ProbeResult | undefined;
  private run = 0;
  private onHold = false;
  private stopped = false;
  private cancelTimer: (() => void) | undefined;
  inFlight: Promise<void> | undefined;

  constructor(
    private readonly manager: ProbeManager,
    private readonly prober: ContainerProber,
    private readonly kind: ProbeKind,
    private readonly probe: Probe,
  ) {}

  start(startedAtMs: number): void {
    const initialDelayMs = (this.probe.initialDelaySeconds ?? PROBE_DEFAULTS.initialDelaySeconds) * 1000;
    this.schedule(startedAtMs + initialDelayMs - this.manager.clock.now());
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  private get periodMs(): number {
    const period = this.probe.periodSeconds;
    return (period !== undefined && period > 0 ? period : PROBE_DEFAULTS.periodSeconds) * 1000;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.cancelTimer = this.manager.clock.setTimer(() => this.tick(), Math.max(0, delayMs));
  }

  private tick(): void {
    this.cancelTimer = undefined;
    if (this.stopped) return;
    const tickAtMs = this.manager.clock.now();
    const results = this.prober.results;
    if (this.kind === 'startup' && results.startup === 'success') return; // started: the startup probe is done
    const waitsForStartup = this.kind !== 'startup' && this.prober.spec.startupProbe !== undefined && results.startup !== 'success';
    if (this.onHold || waitsForStartup) {
      this.schedule(this.periodMs);
      return;
    }
    this.inFlight = this.manager
      .runOne(this.probe, this.prober)
      .then((outcome) => this.handle(outcome))
      .finally(() => {
        this.inFlight = undefined;
        this.schedule(tickAtMs + this.periodMs - this.manager.clock.now());
      });
  }

  private handle(outcome: ProbeOutcome): void {
    if (this.stopped || outcome.result === 'unknown') {
      if (outcome.result === 'unknown') this.manager.log?.(`${this.kind} probe of ${this.prober.spec.name ?? ''} could not run: ${outcome.message}`);
      return;
    }
    const result = outcome.result;
    if (result === this.lastResult) {
      this.run += 1;
    } else {
      this.lastResult = result;
      this.run = 1;
    }
    if (result === 'failure') this.manager.log?.(`${this.kind} probe of ${this.prober.spec.name ?? ''} failed (${this.run} in a row): ${outcome.message}`);
    const threshold = result === 'failure' ? this.probe.failureThreshold : this.kind === 'readiness' ? this.probe.successThreshold : 1;
    const defaultThreshold = result === 'failure' ? PROBE_DEFAULTS.failureThreshold : PROBE_DEFAULTS.successThreshold;
    if (this.run < (threshold !== undefined && threshold > 0 ? threshold : defaultThreshold)) return;
    this.prober.set(this.kind, result);
    if (result === 'failure' && this.kind !== 'readiness') {
      // The container is about to be killed: leave it alone until it is replaced.
      this.onHold = true;
      this.run = 0;
    }
  }
}

class ContainerProber {
  readonly results: MutableResults = {};
  private readonly loops: ProbeLoop[] = [];

  constructor(
    private readonly manager: ProbeManager,
    readonly id: string,
    readonly spec: Container,
  ) {}

  start(startedAtMs: number): void {
    const probes: Array<[ProbeKind, Probe | undefined]> = [
      ['startup', this.spec.startupProbe],
      ['liveness', this.spec.livenessProbe],
      ['readiness', this.spec.readinessProbe],
    ];
    for (const [kind, probe] of probes) {
      if (probe === undefined) continue;
      const loop = new ProbeLoop(this.manager, this, kind, probe);
      this.loops.push(loop);
      loop.start(startedAtMs);
    }
  }

  set(kind: ProbeKind, result: ProbeResult): void {
    if (this.results[kind] === result) return;
    this.results[kind] = result;
    this.manager.changed(this.id, kind, result);
  }

  stop(): void {
    for (const loop of this.loops) loop.stop();
  }

  inFlight(): Array<Promise<void>> {
    return this.loops.flatMap((loop) => (loop.inFlight === undefined ? [] : [loop.inFlight]));
  }
}

/** The probes of one pod's running containers. */
export class ProbeManager {
  private readonly probers = new Map<string, ContainerProber>();
  private podIP = '';
  private stopped = false;

  constructor(private readonly options: ProbeManagerOptions) {}

  get clock(): WorkerClock {
    return this.options.clock;
  }

  get log(): ((line: string) => void) | undefined {
    return this.options.log;
  }

  /** Probe exactly these running containers (new ids start fresh, gone ones stop). */
  sync(containers: readonly ProbedContainer[], podIP: string): void {
    if (this.stopped) return;
    this.podIP = podIP;
    const wanted = new Map(containers.map((container) => [container.id, container]));
    for (const [id, prober] of this.probers) {
      if (!wanted.has(id)) {
        prober.stop();
        this.probers.delete(id);
      }
    }
    for (const container of containers) {
      if (this.probers.has(container.id)) continue;
      const { livenessProbe, readinessProbe, startupProbe } = container.spec;
      if (livenessProbe === undefined && readinessProbe === undefined && startupProbe === undefined) continue;
      const prober = new ContainerProber(this, container.id, container.spec);
      this.probers.set(container.id, prober);
      prober.start(container.startedAtMs);
    }
  }

  snapshot(): ProbeSnapshot {
    return new Map([...this.probers].map(([id, prober]) => [id, { ...prober.results }]));
  }

  /** Resolves when no probe is running (tests use it to settle after advancing a fake clock). */
  async idle(): Promise<void> {
    for (;;) {
      const pending = [...this.probers.values()].flatMap((prober) => prober.inFlight());
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const prober of this.probers.values()) prober.stop();
    this.probers.clear();
  }

  /** @internal */
  runOne(probe: Probe, prober: ContainerProber): Promise<ProbeOutcome> {
    const target: ProbeTarget = { runtime: this.options.runtime, containerId: prober.id, container: prober.spec, podIP: this.podIP };
    return (this.options.runProbe ?? runProbe)(probe, target).catch((error: unknown) => ({ result: 'unknown' as const, message: error instanceof Error ? error.message : String(error) }));
  }

  /** @internal */
  changed(containerId: string, kind: ProbeKind, result: ProbeResult): void {
    if (!this.stopped && this.probers.has(containerId)) this.options.onChange(containerId, kind, result);
  }
}
