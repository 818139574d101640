// Host processes as containers: each container's process is spawned
// detached (setsid: it leads its own session and process group), with its
// stdout and stderr appended to files rather than piped, so it keeps running
// and keeps its output when mast cri stops. A process is known by its pid
// and its start time (field 22 of /proc/<pid>/stat), which tells it from a
// later process that reuses the pid. Its exit is seen through the child's
// exit event, or, for a process adopted after a restart (no longer our
// child), by polling /proc.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';

export const CLOCK_TICKS_PER_SECOND = 100;
export const PAGE_SIZE_BYTES = 4096;
/** How often an adopted process is looked for in /proc. */
export const ADOPTED_POLL_INTERVAL_MS = 500;

export interface ProcStat {
  readonly pid: number;
  /** R, S, D, Z (zombie), T, X, ... */
  readonly state: string;
  readonly ppid: number;
  readonly pgid: number;
  readonly sid: number;
  readonly utimeTicks: number;
  readonly stimeTicks: number;
  readonly cutimeTicks: number;
  readonly cstimeTicks: number;
  readonly startTimeTicks: number;
}

/** /proc/<pid>/stat; the command name may hold spaces and parentheses, so fields are counted after the last ")". */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const fields = text.slice(close + 2).trim().split(' ');
  const field = (number: number): number => Number(fields[number - 3]);
  return {
    pid: Number(text.slice(0, open).trim()),
    state: fields[0] ?? '?',
    ppid: field(4),
    pgid: field(5),
    sid: field(6),
    utimeTicks: field(14),
    stimeTicks: field(15),
    cutimeTicks: field(16),
    cstimeTicks: field(17),
    startTimeTicks: field(22),
  };
}

export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every process on the host (those that vanish while reading are skipped). */
export function scanProcesses(): ProcStat[] {
  const found: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name));
    if (stat !== undefined) found.push(stat);
  }
  return found;
}

/** Resident set size from /proc/<pid>/statm (field 2, pages). */
export function readRssBytes(pid: number): number {
  try {
    const resident = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return Number.isFinite(resident) ? resident * PAGE_SIZE_BYTES : 0;
  } catch {
    return 0;
  }
}

/** Whether the process with this pid is the one that started at startTime, and has not exited. */
export function isRunning(pid: number, startTimeTicks: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.startTimeTicks === startTimeTicks && stat.state !== 'Z' && stat.state !== 'X';
}

/** The processes of a container: its session and process group (what is left of them once the leader has gone, too). */
export function sessionMembers(leader: number, startTimeTicks: number, processes: readonly ProcStat[] = scanProcesses()): ProcStat[] {
  const leaderStat = processes.find((process) => process.pid === leader);
  // A live pid with another start time is a later process: the session is not ours.
  if (leaderStat !== undefined && leaderStat.startTimeTicks !== startTimeTicks) return [];
  return processes.filter((process) => process.sid === leader || process.pgid === leader);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already (ESRCH), or not ours to signal.
  }
}

/** SIGKILL to a process group (an ExecSync command's). */
export function killGroup(leader: number): void {
  signal(-leader, 'SIGKILL');
}

/** Signals the container's process group, and any session member that left it. */
export function signalSession(leader: number, startTimeTicks: number, name: NodeJS.Signals): void {
  const members = sessionMembers(leader, startTimeTicks);
  if (members.length === 0) return;
  signal(-leader, name);
  for (const member of members) if (member.pgid !== leader) signal(member.pid, name);
}

export interface ExitStatus {
  readonly exitCode: number;
  readonly signal: NodeJS.Signals | null;
  /** False when the process was not our child: its exit code was not seen. */
  readonly known: boolean;
}

export interface SpawnOptions {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly stdoutPath: string;
  readonly stderrPath: string;
}

/** A container's process and the promise of its exit. */
export class WatchedProcess {
  readonly exited: Promise<ExitStatus>;
  private resolveExit: (status: ExitStatus) => void = () => undefined;
  private detach: () => void = () => undefined;

  private constructor(
    readonly pid: number,
    readonly startTimeTicks: number,
  ) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  /** Starts argv detached, its output appended to the two files; rejects when it cannot start. */
  static async spawn(argv: readonly string[], options: SpawnOptions): Promise<WatchedProcess> {
    const stdout = openSync(options.stdoutPath, 'a');
    const stderr = openSync(options.stderrPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(argv[0] ?? '', argv.slice(1), { cwd: options.cwd, env: { ...options.env }, detached: true, stdio: ['ignore', stdout, stderr] });
      const exitedEarly: ExitStatus[] = [];
      child.once('exit', (code, signalName) => exitedEarly.push(exitStatusOf(code, signalName)));
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      child.unref();
      const pid = child.pid ?? 0;
      const watched = new WatchedProcess(pid, readProcStat(pid)?.startTimeTicks ?? 0);
      watched.watchChild(child, exitedEarly[0]);
      return watched;
    } finally {
      closeSync(stdout);
      closeSync(stderr);
    }
  }

  /** A process started by an earlier mast cri: watched by polling /proc. */
  static adopt(pid: number, startTimeTicks: number): WatchedProcess {
    const watched = new WatchedProcess(pid, startTimeTicks);
    const timer = setInterval(() => {
      if (isRunning(pid, startTimeTicks)) return;
      clearInterval(timer);
      watched.resolveExit({ exitCode: 255, signal: null, known: false });
    }, ADOPTED_POLL_INTERVAL_MS);
    timer.unref();
    watched.detach = () => clearInterval(timer);
    return watched;
  }

  private watchChild(child: ChildProcess, alreadyExited: ExitStatus | undefined): void {
    if (alreadyExited !== undefined) {
      this.resolveExit(alreadyExited);
      return;
    }
    const onExit = (code: number | null, signalName: NodeJS.Signals | null): void => this.resolveExit(exitStatusOf(code, signalName));
    child.once('exit', onExit);
    child.on('error', () => undefined);
    this.detach = () => child.off('exit', onExit);
  }

  /** Stops watching (mast cri is closing); the process keeps running. */
  dispose(): void {
    this.detach();
  }
}

/** Exit code as shells and runc report it: 128 + the signal number for a killed process. */
export function exitStatusOf(code: number | null, signalName: NodeJS.Signals | null): ExitStatus {
  if (code !== null) return { exitCode: code, signal: null, known: true };
  const number = signalName === null ? 0 : (constants.signals[signalName] ?? 0);
  return { exitCode: 128 + number, signal: signalName, known: true };
}
