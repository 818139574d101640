// The running containers: starting their processes, copying their output
// into CRI logs, stopping them, seeing them exit, and, after a restart of
// mast cri, adopting those still running (recognised by pid and start time).
//
// When a container's main process exits, what is left of its session is
// killed (as the kernel does to a pid namespace whose init dies), its
// output is copied to the end, and only then is it reported EXITED, so a
// client that sees EXITED finds the whole log.

import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { nowNs } from './clock.js';
import { CriError, failedPrecondition } from './errors.js';
import { LogTailer } from './logs.js';
import { isRunning, killGroup, signalSession, WatchedProcess, type ExitStatus } from './processes.js';
import type { ContainerRecord, Store } from './state.js';
import type { CriLogger } from './logger.js';

/** How often new output is copied into the CRI logs. */
const LOG_PUMP_INTERVAL_MS = 200;
/** Offsets moved by copying are persisted at most this often (a crash may repeat up to this much log). */
const OFFSET_PERSIST_INTERVAL_MS = 1000;
/** How long a container may take to go after SIGKILL before StopContainer gives up. */
const KILL_WAIT_MS = 10_000;
/** Longest wait setTimeout can express. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Running {
  readonly process: WatchedProcess;
  readonly tailer: LogTailer | undefined;
  /** Process groups of its ExecSync commands, killed with it. */
  readonly execs: Set<number>;
  /** Settles once the record says EXITED. */
  done: Promise<void>;
  /** SIGKILL was sent: an adopted process's unseen exit code is then known to be 137. */
  killed: boolean;
}

function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.min(ms, MAX_TIMER_MS));
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export function envObject(env: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const entry of env) {
    const equals = entry.indexOf('=');
    result[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return result;
}

export class Supervisor {
  private readonly running = new Map<string, Running>();
  private readonly starting = new Map<string, Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private offsetsDirty = false;
  private offsetsPersistedAtMs = 0;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly log: CriLogger,
  ) {
    this.timer = setInterval(() => this.pumpLogs(), LOG_PUMP_INTERVAL_MS);
    this.timer.unref();
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  /** Spawns a CREATED container's process; rejects when it cannot start. */
  async start(record: ContainerRecord): Promise<void> {
    const starting = this.spawn(record);
    this.starting.set(record.id, starting);
    try {
      await starting;
    } finally {
      this.starting.delete(record.id);
    }
  }

  private async spawn(record: ContainerRecord): Promise<void> {
    // The log file exists from the start (kubelet reads it even when the container says nothing).
    const tailer = this.tailerFor(record);
    try {
      tailer?.reopen();
    } catch (error) {
      tailer?.close();
      throw new Error(`cannot create the container log ${record.logPath}: ${(error as Error).message}`);
    }
    const process = await WatchedProcess.spawn(record.argv, {
      cwd: record.cwd,
      env: envObject(record.env),
      stdoutPath: join(record.dir, 'stdout'),
      stderrPath: join(record.dir, 'stderr'),
    }).catch((error: unknown) => {
      tailer?.close();
      throw error;
    });
    record.state = 'RUNNING';
    record.pid = process.pid;
    record.pidStartTime = process.startTimeTicks;
    record.startedAtNs = nowNs();
    this.log.info(`container ${record.id} (${record.metadata.name}) started: pid ${process.pid}, ${JSON.stringify(record.argv)}`);
    this.watch(record, process, tailer);
    this.store.persist();
  }

  /** After a restart: adopts the RUNNING containers whose process still runs, and closes the others' records. */
  recover(): void {
    for (const record of this.store.containers.values()) {
      if (record.state !== 'RUNNING') continue;
      if (isRunning(record.pid, record.pidStartTime)) {
        this.watch(record, WatchedProcess.adopt(record.pid, record.pidStartTime), this.tailerFor(record));
        this.log.info(`container ${record.id} (${record.metadata.name}) still runs as pid ${record.pid}: adopted`);
      } else {
        const gone = { tailer: this.tailerFor(record), execs: new Set<number>(), killed: false };
        this.finish(record, gone, { exitCode: 255, signal: null, known: false }, 'exited while mast cri was not running');
      }
    }
    this.store.persist();
  }

  private tailerFor(record: ContainerRecord): LogTailer | undefined {
    if (record.logPath === '') return undefined;
    const sources = { stdout: join(record.dir, 'stdout'), stderr: join(record.dir, 'stderr') };
    return new LogTailer(sources, record.logPath, { stdout: record.stdoutOffset, stderr: record.stderrOffset }, (message) => this.log.warn(message));
  }

  private watch(record: ContainerRecord, process: WatchedProcess, tailer: LogTailer | undefined): void {
    const running: Running = { process, tailer, execs: new Set(), done: Promise.resolve(), killed: false };
    running.done = process.exited.then((exit) => {
      if (!this.closed) this.finish(record, running, exit, undefined);
    });
    this.running.set(record.id, running);
  }

  private finish(record: ContainerRecord, running: Pick<Running, 'tailer' | 'execs' | 'killed'>, exit: ExitStatus, unknownMessage: string | undefined): void {
    signalSession(record.pid, record.pidStartTime, 'SIGKILL');
    for (const group of running.execs) killGroup(group);
    if (running.tailer !== undefined) {
      running.tailer.pump(true);
      this.saveOffsets(record, running.tailer);
      running.tailer.close();
    }
    record.state = 'EXITED';
    record.finishedAtNs = nowNs();
    if (exit.known || running.killed) {
      record.exitCode = exit.known ? exit.exitCode : 137;
      record.reason = record.exitCode === 0 ? 'Completed' : 'Error';
      record.message = exit.signal !== null ? `killed by ${exit.signal}` : exit.known ? '' : 'killed by SIGKILL';
    } else {
      record.exitCode = 255;
      record.reason = 'Unknown';
      record.message = unknownMessage ?? 'exit code unknown: the process was started by an earlier mast cri and exited after that one stopped';
    }
    this.running.delete(record.id);
    this.log.info(`container ${record.id} (${record.metadata.name}) exited: code ${record.exitCode} ${record.reason}${record.message === '' ? '' : ` (${record.message})`}`);
    if (this.store.containers.has(record.id)) this.store.persist();
  }

  private saveOffsets(record: ContainerRecord, tailer: LogTailer): void {
    record.stdoutOffset = tailer.offsets.stdout;
    record.stderrOffset = tailer.offsets.stderr;
  }

  private pumpLogs(): void {
    for (const [id, running] of this.running) {
      const record = this.store.containers.get(id);
      if (running.tailer === undefined || record === undefined) continue;
      if (running.tailer.pump(false)) {
        this.saveOffsets(record, running.tailer);
        this.offsetsDirty = true;
      }
    }
    if (this.offsetsDirty && Date.now() - this.offsetsPersistedAtMs >= OFFSET_PERSIST_INTERVAL_MS) {
      this.offsetsDirty = false;
      this.offsetsPersistedAtMs = Date.now();
      this.store.persist();
    }
  }

  /**
   * SIGTERM to the container's process group, SIGKILL after timeoutSeconds
   * (at once for 0); resolves when it has exited. Nothing to do when it does not run.
   */
  async stop(record: ContainerRecord, timeoutSeconds: number): Promise<void> {
    await this.starting.get(record.id)?.catch(() => undefined);
    const running = this.running.get(record.id);
    if (running === undefined) return;
    if (timeoutSeconds > 0) {
      signalSession(record.pid, record.pidStartTime, 'SIGTERM');
      if (await settlesWithin(running.done, timeoutSeconds * 1000)) return;
    }
    running.killed = true;
    signalSession(record.pid, record.pidStartTime, 'SIGKILL');
    if (!(await settlesWithin(running.done, KILL_WAIT_MS))) {
      throw new CriError(status.DEADLINE_EXCEEDED, `container "${record.id}" (pid ${record.pid}) has not exited ${KILL_WAIT_MS / 1000} s after SIGKILL`);
    }
  }

  /** Stops every running container (SIGTERM, SIGKILL after timeoutSeconds). */
  async stopAll(timeoutSeconds: number): Promise<void> {
    const records = [...this.running.keys()].map((id) => this.store.containers.get(id)).filter((record) => record !== undefined);
    await Promise.all(records.map((record) => this.stop(record, timeoutSeconds)));
  }

  execStarted(id: string, group: number): void {
    this.running.get(id)?.execs.add(group);
  }

  execEnded(id: string, group: number): void {
    this.running.get(id)?.execs.delete(group);
  }

  reopenLog(record: ContainerRecord): void {
    const running = this.running.get(record.id);
    if (running === undefined) throw failedPrecondition(`container "${record.id}" is ${record.state}: only a running container's log is reopened`);
    running.tailer?.reopen();
  }

  /** Stops watching and copying; the processes keep running for the next mast cri to adopt. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const [id, running] of this.running) {
      const record = this.store.containers.get(id);
      running.process.dispose();
      if (running.tailer === undefined) continue;
      running.tailer.pump(false);
      if (record !== undefined) this.saveOffsets(record, running.tailer);
      running.tailer.close();
    }
    this.running.clear();
    this.store.persist();
  }
}
