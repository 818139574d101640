// Container logs. A container's process appends its stdout and stderr to
// ROOT/containers/<id>/stdout and stderr (plain files it inherited, no
// pipe), and mast cri copies what is new in them into the container's CRI
// log, log_directory/log_path, in the format kubelet reads:
//
//   2026-01-02T03:04:05.123456789Z stdout F a whole line
//   2026-01-02T03:04:05.123456789Z stderr P the first 16 KiB of a longer line
//
// The offsets copied so far are kept in the container's record, so a
// restarted mast cri resumes where it stopped (lines copied in the last
// second before a crash may appear twice; none are lost). stdout and stderr
// are copied file by file, so their relative order is kept only to within
// one copy interval.

import { closeSync, fstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { rfc3339Nano } from './clock.js';

/** Longest line written as one log entry; longer ones are split into P entries (containerd's default). */
export const MAX_LOG_LINE_BYTES = 16 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;
/** Bytes copied per stream per pump while the container runs, so one chatty container cannot stall the others. */
const MAX_BYTES_PER_PUMP = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

export type LogStream = 'stdout' | 'stderr';

export interface LogOffsets {
  stdout: number;
  stderr: number;
}

/** The CRI log entries for a chunk of output: whole lines, and 16 KiB pieces of lines without an end yet. */
export function splitLogEntries(chunk: Buffer, atEnd: boolean): { entries: Array<{ tag: 'F' | 'P'; content: Buffer }>; consumed: number } {
  const entries: Array<{ tag: 'F' | 'P'; content: Buffer }> = [];
  let start = 0;
  while (start < chunk.length) {
    const newline = chunk.indexOf(NEWLINE, start);
    if (newline === -1) {
      const rest = chunk.length - start;
      if (rest >= MAX_LOG_LINE_BYTES) {
        entries.push({ tag: 'P', content: chunk.subarray(start, start + MAX_LOG_LINE_BYTES) });
        start += MAX_LOG_LINE_BYTES;
        continue;
      }
      if (atEnd) {
        entries.push({ tag: 'F', content: chunk.subarray(start) });
        start = chunk.length;
      }
      break;
    }
    let line = chunk.subarray(start, newline);
    while (line.length > MAX_LOG_LINE_BYTES) {
      entries.push({ tag: 'P', content: line.subarray(0, MAX_LOG_LINE_BYTES) });
      line = line.subarray(MAX_LOG_LINE_BYTES);
    }
    entries.push({ tag: 'F', content: line });
    start = newline + 1;
  }
  return { entries, consumed: start };
}

export function formatLogEntry(timestamp: string, stream: LogStream, tag: 'F' | 'P', content: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${timestamp} ${stream} ${tag} `), content, Buffer.from('\n')]);
}

/** Copies a container's stdout and stderr files into its CRI log. */
export class LogTailer {
  private logFd: number | undefined;
  private readonly sourceFds = new Map<LogStream, number>();
  private warned = false;

  constructor(
    private readonly sources: Readonly<Record<LogStream, string>>,
    private readonly logPath: string,
    readonly offsets: LogOffsets,
    private readonly warn: (message: string) => void,
  ) {}

  /**
   * Copies what is new; `final` (the process has exited) also writes a last
   * line without a newline. Returns whether the offsets moved.
   */
  pump(final: boolean): boolean {
    let moved = false;
    for (const stream of ['stdout', 'stderr'] as const) moved = this.pumpStream(stream, final) || moved;
    return moved;
  }

  private pumpStream(stream: LogStream, final: boolean): boolean {
    const fd = this.sourceFd(stream);
    if (fd === undefined) return false;
    const size = fstatSync(fd).size;
    let offset = this.offsets[stream] > size ? 0 : this.offsets[stream];
    let budget = final ? Number.POSITIVE_INFINITY : MAX_BYTES_PER_PUMP;
    const output: Buffer[] = [];
    const timestamp = rfc3339Nano();
    while (offset < size && budget > 0) {
      const chunk = Buffer.alloc(Math.min(READ_CHUNK_BYTES, size - offset));
      const read = readSync(fd, chunk, 0, chunk.length, offset);
      if (read === 0) break;
      const { entries, consumed } = splitLogEntries(chunk.subarray(0, read), final && offset + read >= size);
      for (const entry of entries) output.push(formatLogEntry(timestamp, stream, entry.tag, entry.content));
      if (consumed === 0) break;
      offset += consumed;
      budget -= consumed;
    }
    if (output.length > 0 && !this.write(Buffer.concat(output))) return false;
    const moved = offset !== this.offsets[stream];
    this.offsets[stream] = offset;
    return moved;
  }

  private sourceFd(stream: LogStream): number | undefined {
    let fd = this.sourceFds.get(stream);
    if (fd === undefined) {
      try {
        fd = openSync(this.sources[stream], 'r');
      } catch {
        return undefined;
      }
      this.sourceFds.set(stream, fd);
    }
    return fd;
  }

  private write(data: Buffer): boolean {
    try {
      if (this.logFd === undefined) {
        mkdirSync(dirname(this.logPath), { recursive: true });
        this.logFd = openSync(this.logPath, 'a');
      }
      writeSync(this.logFd, data);
      this.warned = false;
      return true;
    } catch (error) {
      if (!this.warned) this.warn(`cannot write container log ${this.logPath}: ${(error as Error).message}; retrying`);
      this.warned = true;
      this.closeLog();
      return false;
    }
  }

  /** Closes the log file and opens log_path again (after a rotation moved it away). */
  reopen(): void {
    this.closeLog();
    mkdirSync(dirname(this.logPath), { recursive: true });
    this.logFd = openSync(this.logPath, 'a');
  }

  private closeLog(): void {
    if (this.logFd !== undefined) closeSync(this.logFd);
    this.logFd = undefined;
  }

  close(): void {
    this.closeLog();
    for (const fd of this.sourceFds.values()) closeSync(fd);
    this.sourceFds.clear();
  }
}
