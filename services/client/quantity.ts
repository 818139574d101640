// Resource quantities ("500m", "2", "0.5", "128Mi", "1.5Gi", "1e3"), for the
// scheduler, the controllers and the API server. Pure: no clocks, no I/O
// (the scheduler plugins and the controllers' reconcile logic, inside the
// lint's determinism boundary, use it; so is this file).
//
// Two readings, each kept exactly as its users have always had it:
//   parseQuantity  exact, the way Kubernetes' resource.Quantity reads them:
//                  the digits go into a BigInt so "0.1" is 100 millicores,
//                  not 100.00000000000001; an integer in milli-units
//                  (Quantity.MilliValue(), how cpu is counted) or in base
//                  units (Quantity.Value(), bytes for memory), rounded up as
//                  Kubernetes does. Anything else ("", "1.2.3", "5mb", "Mi",
//                  exponents past 60) is undefined.
//   quantityValue  a float in base units (cpu in cores: "100m" is 0.1), over
//                  the API server's validation grammar (isQuantity, which
//                  takes any decimal exponent): what ResourceQuota usage is
//                  counted in, by the API server and by the quota controller.

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
 * ("500m" → 500, "2" → 2000, "0.1" → 100, "128Mi" → 134217728000), base
 * units otherwise ("128Mi" → 134217728, "1G" → 1e9, "0.5" → 1); undefined
 * when the text is no quantity, or absent. A YAML number decoded as a
 * number is read as its decimal text.
 */
export function parseQuantity(text: string | number | undefined, scale: QuantityScale = 'unit'): number | undefined {
  if (text === undefined) return undefined;
  const quantity = exact(typeof text === 'number' ? String(text) : text);
  if (quantity === undefined) return undefined;
  return scaled(quantity, scale === 'milli' ? 3 : 0);
}

/** Kubernetes' quantity grammar as the API server validates it: a signed decimal number with an optional binary, decimal or exponent suffix. */
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const SUFFIX_SCALE: Readonly<Record<string, number>> = { n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

/** Whether the API server accepts `text` as a quantity. */
export function isQuantity(text: string): boolean {
  return QUANTITY.test(text);
}

/** A quantity in base units, as a float (cpu in cores, memory in bytes); undefined when it is not one (or not a string). */
export function quantityValue(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const match = QUANTITY.exec(text);
  if (match === null) return undefined;
  const suffix = match[2] ?? '';
  const factor = suffix === '' ? 1 : /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX_SCALE[suffix]!;
  return Number(match[1]) * factor;
}
