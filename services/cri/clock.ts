// Wall-clock time in nanoseconds, as CRI counts it: the epoch offset is
// taken once from Date and the rest from the monotonic high-resolution
// clock, so consecutive readings never go backwards within one run.

const EPOCH_OFFSET_NS = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

export function nowNsBig(): bigint {
  return EPOCH_OFFSET_NS + process.hrtime.bigint();
}

/** Nanoseconds since the epoch as a JS number (exact to about 256 ns at today's magnitude). */
export function nowNs(): number {
  return Number(nowNsBig());
}

/** RFC 3339 with nine fraction digits in UTC, e.g. 2026-01-02T03:04:05.123456789Z. */
export function rfc3339Nano(ns: bigint = nowNsBig()): string {
  const seconds = ns / 1_000_000_000n;
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, '0');
  const iso = new Date(Number(seconds) * 1000).toISOString();
  return `${iso.slice(0, 19)}.${fraction}Z`;
}
