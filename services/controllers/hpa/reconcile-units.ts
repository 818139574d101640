// Units for the autoscaler's pure logic. Quantities are read in the
// milli-units it computes in by services/client/quantity.ts
// (parseQuantity(text, 'milli'): Kubernetes' Quantity.MilliValue(), "250m" →
// 250, "1" → 1000, "128Mi" → 134217728000, exact and rounded up); here they
// are written back as text (resource.NewMilliQuantity(v, DecimalSI).String()).
// Go durations ("15s", "1m30s"). Pure.

const DECIMAL_SUFFIXES = ['', 'k', 'M', 'G', 'T', 'P', 'E'];

/** A milli-value as Kubernetes writes it: "250m", "2", "500k", "1G". */
export function formatMilli(milli: number): string {
  if (milli % 1000 !== 0) return `${milli}m`;
  let value = milli / 1000;
  let index = 0;
  while (value !== 0 && value % 1000 === 0 && index < DECIMAL_SUFFIXES.length - 1) {
    value /= 1000;
    index++;
  }
  return `${value}${DECIMAL_SUFFIXES[index]!}`;
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+$/;

/** A Go duration ("15s", "1m30s", "500ms", "0") in milliseconds; undefined when it is none. */
export function parseDurationMs(text: string | undefined): number | undefined {
  if (text === '0') return 0;
  if (text === undefined || !DURATION.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(amount) * DURATION_UNIT_MS[unit!]!;
  return total;
}
