// Units for the autoscaler's pure logic. Quantities in the milli-units it
// computes in (Kubernetes' Quantity.MilliValue(): "250m" → 250, "1" → 1000,
// "128Mi" → 134217728000), exact and rounded up, and back to text
// (resource.NewMilliQuantity(v, DecimalSI).String()). The parsing is
// services/scheduler/plugins/quantity.ts's, copied: the layering lets
// controllers import only services/client and proto; when that parser moves
// to services/client, the copy goes. Go durations ("15s", "1m30s"), and
// RFC 3339 timestamps written without Date. Pure.

/** Decimal suffixes: the power of ten each stands for. */
const DECIMAL_EXPONENT: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
/** Binary suffixes: the power of two each stands for. */
const BINARY_EXPONENT: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

/** sign, digits (with an optional point), then a suffix or a decimal exponent ("1E" is exa, "1E3" a thousand). */
const GRAMMAR = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d{1,3}))?$/;

/** Exponents past this are not resource amounts; refusing them keeps BigInt powers small. */
const MAX_EXPONENT = 60;

/** The quantity in milli-units, rounded up; undefined when the text is no quantity. */
export function milliValue(text: string | number | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = GRAMMAR.exec(typeof text === 'number' ? String(text) : text);
  if (match === null) return undefined;
  const [, sign = '', number = '', suffix, exponent] = match;
  const [whole = '', fraction = ''] = number.split('.');
  const digits = `${whole}${fraction}`;
  const magnitude = BigInt(digits === '' ? '0' : digits);
  let decimalExponent = 3 - fraction.length;
  let binaryExponent = 0;
  if (suffix !== undefined) {
    binaryExponent = BINARY_EXPONENT[suffix] ?? 0;
    decimalExponent += DECIMAL_EXPONENT[suffix] ?? 0;
  } else if (exponent !== undefined) {
    decimalExponent += Number(exponent);
  }
  if (Math.abs(decimalExponent) > MAX_EXPONENT) return undefined;
  const numerator = (sign === '-' ? -magnitude : magnitude) * 2n ** BigInt(binaryExponent);
  if (decimalExponent >= 0) return Number(numerator * 10n ** BigInt(decimalExponent));
  const denominator = 10n ** BigInt(-decimalExponent);
  const quotient = numerator / denominator;
  return Number(numerator % denominator > 0n ? quotient + 1n : quotient);
}

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

/** Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days). */
function civilFromDays(days: number): [number, number, number] {
  const shifted = days + 719468;
  const era = Math.floor(shifted / 146097);
  const dayOfEra = shifted - era * 146097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthIndex = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthIndex + 2) / 5) + 1;
  const month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9;
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

const two = (value: number): string => String(value).padStart(2, '0');

/** Epoch milliseconds as Kubernetes writes a metav1.Time: "2026-11-25T12:00:00Z" (whole seconds). */
export function formatTimestamp(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const days = Math.floor(seconds / 86400);
  const inDay = seconds - days * 86400;
  const [year, month, day] = civilFromDays(days);
  return `${String(year).padStart(4, '0')}-${two(month)}-${two(day)}T${two(Math.floor(inDay / 3600))}:${two(Math.floor((inDay % 3600) / 60))}:${two(inDay % 60)}Z`;
}
