// Resource quantities ("500m", "2", "0.5", "128Mi", "1.5Gi", "1e3") read the
// way Kubernetes' resource.Quantity reads them, exactly: the digits go into a
// BigInt so "0.1" is 100 millicores, not 100.00000000000001. cpu is counted in
// integer millicores (Quantity.MilliValue()), everything else in integer base
// units, bytes for memory (Quantity.Value()); both round up, as Kubernetes does.
// Anything else ("", "1.2.3", "5mb", "Mi") is undefined. Pure: this folder is
// inside the lint's determinism boundary.

/** Decimal suffixes: the power of ten each stands for. */
const DECIMAL_EXPONENT: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
/** Binary suffixes: the power of two each stands for. */
const BINARY_EXPONENT: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

/** sign, digits (with an optional point), then a suffix or a decimal exponent ("1E" is exa, "1E3" a thousand). */
const GRAMMAR = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d{1,3}))?$/;

/** Exponents past this are not resource amounts; refusing them keeps BigInt powers small. */
const MAX_EXPONENT = 60;

/** 'milli' for cpu (integer millicores), 'unit' for bytes, pods and extended resources. */
export type QuantityScale = 'milli' | 'unit';

interface ExactQuantity {
  /** value = mantissa × 2^binaryExponent × 10^decimalExponent */
  readonly mantissa: bigint;
  readonly binaryExponent: number;
  readonly decimalExponent: number;
}

function exact(text: string): ExactQuantity | undefined {
  const match = GRAMMAR.exec(text);
  if (match === null) return undefined;
  const [, sign = '', number = '', suffix, exponent] = match;
  const [whole = '', fraction = ''] = number.split('.');
  const digits = `${whole}${fraction}`;
  const magnitude = BigInt(digits === '' ? '0' : digits);
  let decimalExponent = -fraction.length;
  let binaryExponent = 0;
  if (suffix !== undefined) {
    binaryExponent = BINARY_EXPONENT[suffix] ?? 0;
    decimalExponent += DECIMAL_EXPONENT[suffix] ?? 0;
  } else if (exponent !== undefined) {
    decimalExponent += Number(exponent);
  }
  if (Math.abs(decimalExponent) > MAX_EXPONENT) return undefined;
  return { mantissa: sign === '-' ? -magnitude : magnitude, binaryExponent, decimalExponent };
}

/** The quantity times 10^scaleExponent, rounded up to an integer. */
function scaled(quantity: ExactQuantity, scaleExponent: number): number {
  const numerator = quantity.mantissa * 2n ** BigInt(quantity.binaryExponent);
  const exponent = quantity.decimalExponent + scaleExponent;
  if (exponent >= 0) return Number(numerator * 10n ** BigInt(exponent));
  const denominator = 10n ** BigInt(-exponent);
  const quotient = numerator / denominator;
  return Number(numerator % denominator > 0n ? quotient + 1n : quotient);
}

/**
 * The value of a quantity as an integer: millicores when scale is 'milli'
 * ("500m" → 500, "2" → 2000, "0.1" → 100), base units otherwise ("128Mi" →
 * 134217728, "1G" → 1e9, "0.5" → 1); undefined when the text is no quantity.
 * A YAML number decoded as a number is read as its decimal text.
 */
export function parseQuantity(text: string | number, scale: QuantityScale = 'unit'): number | undefined {
  const quantity = exact(typeof text === 'number' ? String(text) : text);
  if (quantity === undefined) return undefined;
  return scaled(quantity, scale === 'milli' ? 3 : 0);
}

const CACHE_LIMIT = 4096;
const cache = new Map<string, number | null>();

/**
 * The amount of one resource as the scheduler counts it: cpu in millicores,
 * anything else in base units. Memoised (the same few strings recur across
 * thousands of pods): a deterministic cache, emptied when it grows past
 * CACHE_LIMIT entries.
 */
export function resourceAmount(resource: string, text: string | number): number | undefined {
  const scale: QuantityScale = resource === 'cpu' ? 'milli' : 'unit';
  const key = `${scale}:${String(text)}`;
  const known = cache.get(key);
  if (known !== undefined) return known ?? undefined;
  const value = parseQuantity(text, scale);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value ?? null);
  return value;
}
