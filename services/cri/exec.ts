// ExecSync's process: run a command to completion and capture its output.
// It runs in its own process group, so a timeout (or its container's stop)
// kills everything it started; background processes it leaves behind are
// killed when it exits, so none outlives the call.

import { spawn } from 'node:child_process';
import { exitStatusOf, killGroup } from './processes.js';

/** Output kept per stream; the rest is read and dropped. */
export const EXEC_OUTPUT_CAP_BYTES = 16 * 1024 * 1024;
/** How long to wait, after the command exits, for its output pipes to drain. */
const DRAIN_AFTER_EXIT_MS = 2000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ExecResult {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly exitCode: number;
  readonly timedOut: boolean;
}

export interface ExecOptions {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** 0: no limit. */
  readonly timeoutMs: number;
  /** Called with the process group id once it runs (to kill it with its container). */
  readonly onStart?: (pid: number) => void;
}

class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  add(chunk: Buffer): void {
    if (this.size >= EXEC_OUTPUT_CAP_BYTES) return;
    const kept = chunk.subarray(0, EXEC_OUTPUT_CAP_BYTES - this.size);
    this.chunks.push(kept);
    this.size += kept.length;
  }

  buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Runs argv to its end (or the timeout); rejects only when it cannot start. */
export function runCaptured(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] ?? '', argv.slice(1), { cwd: options.cwd, env: { ...options.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = new CappedBuffer();
    const stderr = new CappedBuffer();
    child.stdout.on('data', (chunk: Buffer) => stdout.add(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.add(chunk));
    let timedOut = false;
    let exitCode = 0;
    let drainTimer: NodeJS.Timeout | undefined;
    // Past what setTimeout can express, a timeout is as good as none.
    const timer =
      options.timeoutMs > 0 && options.timeoutMs <= MAX_TIMER_MS
        ? setTimeout(() => {
            timedOut = true;
            if (child.pid !== undefined) killGroup(child.pid);
          }, options.timeoutMs)
        : undefined;
    child.once('spawn', () => {
      if (child.pid !== undefined) options.onStart?.(child.pid);
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signalName) => {
      clearTimeout(timer);
      exitCode = exitStatusOf(code, signalName).exitCode;
      if (child.pid !== undefined) killGroup(child.pid);
      drainTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, DRAIN_AFTER_EXIT_MS);
    });
    child.once('close', () => {
      clearTimeout(drainTimer);
      resolve({ stdout: stdout.buffer(), stderr: stderr.buffer(), exitCode, timedOut });
    });
  });
}
