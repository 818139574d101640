// Reading container logs in the CRI format that runtimes write
// (containerd, mast cri): one record per line,
//
//   2026-11-26T00:17:09.669794202Z stdout F the line's text
//
// timestamp (RFC 3339, nanoseconds), stream, a tag ("F" full line, "P" a
// partial chunk that the next record continues) and the text. What `kubectl
// logs` shows is the text, partial chunks joined, each full line followed
// by a newline; with timestamps, each line is prefixed with its timestamp.

import { open, stat } from 'node:fs/promises';

export interface LogRecord {
  /** RFC 3339 with nanoseconds, as written. */
  readonly timestamp: string;
  readonly stream: 'stdout' | 'stderr';
  /** The text of a full line (without its newline), partial chunks joined. */
  readonly text: string;
}

export interface LogReadOptions {
  /** Only the last N lines. */
  readonly tailLines?: number | undefined;
  /** Only lines at or after this time (ms since the epoch). */
  readonly sinceMs?: number | undefined;
  readonly timestamps?: boolean;
  /** Stop after this many bytes of output. */
  readonly limitBytes?: number | undefined;
}

/** Milliseconds since the epoch of an RFC 3339 timestamp with up to nanosecond digits (NaN if unreadable). */
export function timestampMs(timestamp: string): number {
  return Date.parse(timestamp.replace(/(\.\d{3})\d+/, '$1'));
}

/**
 * Parses CRI log text into full lines. `pending` carries a partial line
 * across calls (following a growing file); lines that do not parse are
 * kept as stdout text rather than dropped.
 */
export class CriLogParser {
  /** Partial chunks waiting for their full line, per stream (the streams interleave). */
  private readonly partial = new Map<'stdout' | 'stderr', LogRecord>();
  private carry = '';

  /** Feed text (any chunking); returns the full lines completed by it. */
  push(chunk: string): LogRecord[] {
    const text = this.carry + chunk;
    const lines = text.split('\n');
    this.carry = lines.pop()!;
    const records: LogRecord[] = [];
    for (const line of lines) {
      const record = this.line(line);
      if (record !== undefined) records.push(record);
    }
    return records;
  }

  private line(line: string): LogRecord | undefined {
    const match = /^(\S+) (stdout|stderr) (\S+) ?(.*)$/.exec(line);
    if (match === null) return line === '' ? undefined : { timestamp: '', stream: 'stdout', text: line };
    const [, timestamp, stream, tag, content] = match as unknown as [string, string, 'stdout' | 'stderr', string, string];
    const earlier = this.partial.get(stream);
    const record = earlier === undefined ? { timestamp, stream, text: content } : { ...earlier, text: earlier.text + content };
    if (tag.split(':').includes('P')) {
      this.partial.set(stream, record);
      return undefined;
    }
    this.partial.delete(stream);
    return record;
  }
}

/** The output for records: text plus newline, optionally timestamped. */
export function formatRecords(records: readonly LogRecord[], timestamps: boolean): string {
  let out = '';
  for (const record of records) out += timestamps ? `${record.timestamp} ${record.text}\n` : `${record.text}\n`;
  return out;
}

/** Selects records by options (since, then tail), as the kubelet does. */
export function selectRecords(records: readonly LogRecord[], options: LogReadOptions): LogRecord[] {
  let selected = options.sinceMs === undefined ? [...records] : records.filter((record) => !(timestampMs(record.timestamp) < options.sinceMs!));
  if (options.tailLines !== undefined) selected = options.tailLines <= 0 ? [] : selected.slice(-options.tailLines);
  return selected;
}

/** Caps output at a byte budget shared across chunks. */
export class ByteBudget {
  private left: number;
  constructor(limit: number | undefined) {
    this.left = limit === undefined || limit <= 0 ? Number.POSITIVE_INFINITY : limit;
  }

  get exhausted(): boolean {
    return this.left <= 0;
  }

  take(text: string): Buffer {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length <= this.left) {
      this.left -= bytes.length;
      return bytes;
    }
    const part = bytes.subarray(0, this.left);
    this.left = 0;
    return part;
  }
}

export interface FollowOptions extends LogReadOptions {
  /** Keep reading as the file grows until `stillWriting()` says no and the file is read to its end. */
  readonly follow: boolean;
  /** Whether the container may still write (running). Polled while following. */
  readonly stillWriting: () => Promise<boolean>;
  readonly pollMs?: number;
  readonly signal: AbortSignal;
}

/**
 * Streams a container's log file to `write`: the selected existing lines,
 * then (following) new lines as they are written, until the container
 * stops writing, the byte limit is reached, or the signal aborts.
 */
export async function streamLogFile(path: string, options: FollowOptions, write: (bytes: Buffer) => void): Promise<void> {
  const budget = new ByteBudget(options.limitBytes);
  const parser = new CriLogParser();
  const handle = await open(path, 'r');
  try {
    let offset = 0;
    const readNew = async (): Promise<LogRecord[]> => {
      const { size } = await handle.stat();
      if (size < offset) offset = 0; // truncated or replaced: start over
      if (size === offset) return [];
      const buffer = Buffer.alloc(size - offset);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      offset += bytesRead;
      return parser.push(buffer.subarray(0, bytesRead).toString('utf8'));
    };
    const first = selectRecords(await readNew(), options);
    if (first.length > 0) write(budget.take(formatRecords(first, options.timestamps ?? false)));
    if (!options.follow) return;
    const pollMs = options.pollMs ?? 200;
    while (!options.signal.aborted && !budget.exhausted) {
      const writing = await options.stillWriting();
      const records = (await readNew()).filter((record) => options.sinceMs === undefined || !(timestampMs(record.timestamp) < options.sinceMs));
      if (records.length > 0) write(budget.take(formatRecords(records, options.timestamps ?? false)));
      if (!writing) {
        // One last read: what the container wrote just before it stopped.
        const rest = await readNew();
        if (rest.length > 0 && !budget.exhausted) write(budget.take(formatRecords(rest, options.timestamps ?? false)));
        return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        options.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    await handle.close();
  }
}

/** Whether a log file exists (a container that never started has none). */
export async function logFileExists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
