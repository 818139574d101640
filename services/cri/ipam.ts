// Pod IPs from one IPv4 range (default 127.10.0.0/16). On Linux every
// 127.0.0.0/8 address is the loopback interface, so each pod gets an
// address of its own without any network setup: a server listening on its
// pod IP does not collide with another pod's on the same port. (A process
// that listens on 0.0.0.0 shares the host's ports with everyone.)
// Pure: the caller says which addresses are taken.

export class CidrError extends Error {
  override readonly name = 'CidrError';
}

export interface Cidr {
  readonly text: string;
  /** First address of the range, as an unsigned 32-bit number. */
  readonly base: number;
  readonly prefixLength: number;
}

export const DEFAULT_POD_CIDR = '127.10.0.0/16';

function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255)) return undefined;
  return parts.reduce((value, part) => value * 256 + Number(part), 0);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export function parseCidr(text: string): Cidr {
  const [address, length, ...extra] = text.split('/');
  const base = address === undefined ? undefined : parseIpv4(address);
  const prefixLength = Number(length);
  if (base === undefined || extra.length > 0 || length === undefined || !/^\d+$/.test(length) || prefixLength > 32) {
    throw new CidrError(`"${text}" is not an IPv4 CIDR such as ${DEFAULT_POD_CIDR}`);
  }
  if (prefixLength < 8 || prefixLength > 30) throw new CidrError(`"${text}": the prefix length must be between 8 and 30`);
  const size = 2 ** (32 - prefixLength);
  if (base % size !== 0) throw new CidrError(`"${text}" has host bits set; did you mean ${formatIpv4(base - (base % size))}/${prefixLength}?`);
  return { text, base, prefixLength };
}

/** Whether a range is inside 127.0.0.0/8, where no address needs configuring. */
export function isLoopbackRange(cidr: Cidr): boolean {
  return Math.floor(cidr.base / 2 ** 24) === 127;
}

/**
 * The next free address after `last` (wrapping around), skipping the
 * range's first two addresses (network and gateway, by convention) and its
 * last (broadcast); undefined when every address is taken.
 */
export function nextFreeIp(cidr: Cidr, taken: ReadonlySet<string>, last: string): string | undefined {
  const size = 2 ** (32 - cidr.prefixLength);
  const first = 2;
  const count = size - 3;
  const lastValue = parseIpv4(last);
  const lastOffset = lastValue !== undefined && lastValue >= cidr.base + first && lastValue < cidr.base + first + count ? lastValue - cidr.base - first : -1;
  for (let step = 1; step <= count; step++) {
    const candidate = formatIpv4(cidr.base + first + ((lastOffset + step) % count));
    if (!taken.has(candidate)) return candidate;
  }
  return undefined;
}
