// The LoadBalancer controller's decision, as pure functions (MetalLB-style
// address assignment, without the announcing): the operator's pool of IPv4
// addresses, and every Service, in; for each Service of type LoadBalancer
// without a spec.loadBalancerClass (those belong to another implementation)
// the one address it should show in status.loadBalancer.ingress, or none
// and why. Three passes, each in creation order (creationTimestamp, then
// namespace/name), so the same world always gives the same answer:
//   1. a Service keeps the address it shows, while that is in the pool,
//      matches its spec.loadBalancerIP (if any) and no older Service keeps it
//      — so a running load balancer never moves under its clients;
//   2. a Service asking for spec.loadBalancerIP gets it if it is in the pool
//      and free (asked-for addresses go before the lowest free ones, so an
//      older Service taking "any" cannot steal a newer one's request);
//   3. every other gets the lowest free address of the pool.
// A Service that is no LoadBalancer (any more) but still shows an ingress
// is cleared: its address goes back to the pool. A deleted Service is
// simply absent, which frees its address the same way.

import type { LoadBalancerIngress, LoadBalancerStatus, Service } from '../../../proto/gen/resources/v1/core.js';
import { parseTimestampMs } from '../../client/timestamps.js';

/** Consecutive addresses as unsigned 32-bit numbers, first ≤ last; `source` is the pool part it came from. */
export interface AddressRange {
  readonly first: number;
  readonly last: number;
  readonly source: string;
}

/** The addresses LoadBalancer Services get: ranges in ascending order, none overlapping. */
export interface IpPool {
  readonly ranges: readonly AddressRange[];
}

/** One part of a pool's text is wrong: `part` is that text, `problem` what is wrong with it. */
export class IpPoolError extends Error {
  override readonly name = 'IpPoolError';

  constructor(
    readonly part: string,
    readonly problem: string,
  ) {
    super(`${JSON.stringify(part)} ${problem}`);
  }
}

/** What a LoadBalancer Service's ingress should be. */
export type LoadBalancerDecision =
  | { readonly kind: 'assign'; readonly ip: string }
  /** A LoadBalancer Service that gets no address, and why (for an Event). */
  | { readonly kind: 'pending'; readonly reason: string }
  /** No (longer a) LoadBalancer of ours, but it still shows an ingress: clear it. */
  | { readonly kind: 'release' };

export const REASON_NO_POOL = 'no load-balancer IP pool is configured (the controller-manager\'s --load-balancer-ip-pool): the Service stays pending';
export const REASON_EXHAUSTED = 'no free address in the load-balancer pool';

const IPV4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** An IPv4 address in dotted-quad form (no leading zeros, which some read as octal) as a number; undefined otherwise. */
export function parseIpv4(text: string): number | undefined {
  const match = IPV4.exec(text);
  if (match === null) return undefined;
  const octets = match.slice(1, 5).map(Number);
  if (octets.some((octet) => octet > 255)) return undefined;
  return octets.reduce((value, octet) => value * 256 + octet, 0);
}

export function formatIpv4(address: number): string {
  return [address / 2 ** 24, address / 2 ** 16, address / 2 ** 8, address].map((part) => Math.floor(part) % 256).join('.');
}

function parseCidr(part: string): AddressRange {
  const [addressText = '', prefixText = '', ...rest] = part.split('/');
  const address = parseIpv4(addressText);
  if (address === undefined) throw new IpPoolError(part, `is not a CIDR: ${JSON.stringify(addressText)} is not an IPv4 address`);
  if (rest.length > 0 || !/^(0|[1-9]\d?)$/.test(prefixText) || Number(prefixText) > 32) throw new IpPoolError(part, 'is not a CIDR: the prefix length must be 0 to 32');
  const prefix = Number(prefixText);
  const size = 2 ** (32 - prefix);
  const network = Math.floor(address / size) * size;
  if (network !== address) throw new IpPoolError(part, `has host bits set (did you mean ${formatIpv4(network)}/${prefix}?)`);
  // A /31 or /32 has no network and broadcast address to keep out (RFC 3021).
  return prefix >= 31 ? { first: network, last: network + size - 1, source: part } : { first: network + 1, last: network + size - 2, source: part };
}

function parseRange(part: string): AddressRange {
  const [firstText = '', lastText = '', ...rest] = part.split('-');
  const first = parseIpv4(firstText.trim());
  const last = parseIpv4(lastText.trim());
  if (rest.length > 0 || first === undefined || last === undefined) throw new IpPoolError(part, 'is not a range of two IPv4 addresses A.B.C.D-E.F.G.H');
  if (first > last) throw new IpPoolError(part, 'starts after it ends');
  return { first, last, source: part };
}

/**
 * A pool from its text: comma-separated IPv4 CIDRs (10.0.0.0/24: network and
 * broadcast address left out when wider than /31) and ranges
 * (10.0.0.10-10.0.0.20, both ends included). IpPoolError names the part
 * that is wrong; parts may not overlap.
 */
export function parseIpPool(text: string): IpPool {
  if (text.trim() === '') throw new IpPoolError(text, 'is empty: give IPv4 CIDRs (A.B.C.D/N) and/or ranges (A.B.C.D-E.F.G.H), comma-separated');
  const ranges: AddressRange[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') throw new IpPoolError(text, 'has an empty part (two commas, or one at an end)');
    if (part.includes('/')) ranges.push(parseCidr(part));
    else if (part.includes('-')) ranges.push(parseRange(part));
    else throw new IpPoolError(part, 'is neither a CIDR (A.B.C.D/N; one address is A.B.C.D/32) nor a range (A.B.C.D-E.F.G.H)');
  }
  ranges.sort((a, b) => a.first - b.first || a.last - b.last);
  for (let i = 1; i < ranges.length; i++) {
    const [before, range] = [ranges[i - 1]!, ranges[i]!];
    if (range.first <= before.last) throw new IpPoolError(range.source, `overlaps ${JSON.stringify(before.source)}`);
  }
  return { ranges };
}

/** How many addresses the pool holds. */
export function poolSize(pool: IpPool): number {
  return pool.ranges.reduce((total, range) => total + range.last - range.first + 1, 0);
}

export function poolContains(pool: IpPool, address: number): boolean {
  return pool.ranges.some((range) => address >= range.first && address <= range.last);
}

/** The pool as the operator can read it back (in ascending order). */
export function describePool(pool: IpPool): string {
  return pool.ranges.map((range) => (range.first === range.last ? formatIpv4(range.first) : `${formatIpv4(range.first)}-${formatIpv4(range.last)}`)).join(',');
}

/** Whether the controller owns this Service's ingress. */
export function isManagedLoadBalancer(service: Service): boolean {
  return service.spec?.type === 'LoadBalancer' && (service.spec.loadBalancerClass ?? '') === '';
}

function ingressOf(service: Service): readonly LoadBalancerIngress[] {
  return service.status?.loadBalancer?.ingress ?? [];
}

/** The address a Service shows now: its first ingress entry with an IPv4 ip. */
function shownAddress(service: Service): number | undefined {
  for (const entry of ingressOf(service)) {
    const address = parseIpv4(entry.ip ?? '');
    if (address !== undefined) return address;
  }
  return undefined;
}

export function serviceKey(service: Service): string {
  return `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
}

/** The Services in creation order; one without a readable creationTimestamp goes last. */
function inCreationOrder(services: readonly Service[]): Service[] {
  const sortable = services.map((service) => ({ service, createdMs: parseTimestampMs(service.metadata?.creationTimestamp) ?? Number.MAX_SAFE_INTEGER, key: serviceKey(service) }));
  sortable.sort((a, b) => a.createdMs - b.createdMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return sortable.map(({ service }) => service);
}

/**
 * The lowest free addresses, in ascending order. Each answer is at least the
 * last one (addresses are only ever claimed, never freed, within one plan),
 * so the walk over the pool never goes back: a plan costs the claimed plus
 * the assigned addresses, not the pool's size.
 */
class LowestFree {
  private rangeIndex = 0;
  private next: number;

  constructor(
    private readonly pool: IpPool,
    private readonly claimed: ReadonlyMap<number, string>,
  ) {
    this.next = pool.ranges[0]?.first ?? 0;
  }

  take(): number | undefined {
    for (;;) {
      const range = this.pool.ranges[this.rangeIndex];
      if (range === undefined) return undefined;
      if (this.next > range.last) {
        this.rangeIndex++;
        this.next = this.pool.ranges[this.rangeIndex]?.first ?? 0;
        continue;
      }
      const address = this.next++;
      if (!this.claimed.has(address)) return address;
    }
  }
}

/**
 * Every decision: one per managed LoadBalancer Service (in creation order),
 * and a release for each other Service still showing an ingress. A Service
 * with a loadBalancerClass gets none: its ingress is another's business.
 * `pool` undefined: none configured, every LoadBalancer Service pending.
 */
export function planLoadBalancers(pool: IpPool | undefined, services: readonly Service[]): Map<string, LoadBalancerDecision> {
  const decisions = new Map<string, LoadBalancerDecision>();
  const ordered = inCreationOrder(services);
  const managed = ordered.filter(isManagedLoadBalancer);
  /** address → the key of the Service it went to. */
  const claimed = new Map<number, string>();
  const assign = (service: Service, address: number): void => {
    claimed.set(address, serviceKey(service));
    decisions.set(serviceKey(service), { kind: 'assign', ip: formatIpv4(address) });
  };
  // Fill the map in creation order: keep a slot per Service so the passes below only set values.
  for (const service of managed) decisions.set(serviceKey(service), { kind: 'pending', reason: REASON_NO_POOL });
  if (pool !== undefined) {
    const waiting: Service[] = [];
    for (const service of managed) {
      const shown = shownAddress(service);
      const requested = service.spec?.loadBalancerIP ?? '';
      const keeps = shown !== undefined && poolContains(pool, shown) && !claimed.has(shown) && (requested === '' || parseIpv4(requested) === shown);
      if (keeps) assign(service, shown);
      else waiting.push(service);
    }
    const anyAddress: Service[] = [];
    for (const service of waiting) {
      const requested = service.spec?.loadBalancerIP ?? '';
      if (requested === '') {
        anyAddress.push(service);
        continue;
      }
      const address = parseIpv4(requested);
      const holder = address === undefined ? undefined : claimed.get(address);
      if (address === undefined) decisions.set(serviceKey(service), { kind: 'pending', reason: `spec.loadBalancerIP ${JSON.stringify(requested)} is not an IPv4 address` });
      else if (!poolContains(pool, address)) decisions.set(serviceKey(service), { kind: 'pending', reason: `spec.loadBalancerIP ${requested} is not in the load-balancer pool (${describePool(pool)})` });
      // The holder is named only within the namespace: the reason becomes an Event there.
      else if (holder !== undefined) decisions.set(serviceKey(service), { kind: 'pending', reason: `spec.loadBalancerIP ${requested} is in use by ${holder.startsWith(`${service.metadata?.namespace ?? ''}/`) ? `Service ${holder}` : 'a Service of another namespace'}` });
      else assign(service, address);
    }
    const lowest = new LowestFree(pool, claimed);
    for (const service of anyAddress) {
      const address = lowest.take();
      if (address === undefined) decisions.set(serviceKey(service), { kind: 'pending', reason: REASON_EXHAUSTED });
      else assign(service, address);
    }
  }
  for (const service of ordered) {
    if (service.spec?.type !== 'LoadBalancer' && ingressOf(service).length > 0) decisions.set(serviceKey(service), { kind: 'release' });
  }
  return decisions;
}

/** The status.loadBalancer a decision asks for. */
export function desiredLoadBalancerStatus(decision: LoadBalancerDecision): LoadBalancerStatus {
  return decision.kind === 'assign' ? { ingress: [{ ip: decision.ip, ipMode: 'VIP' }] } : {};
}

/** Whether the Service already shows what the decision asks for (nothing to write). */
export function loadBalancerStatusMatches(service: Service, decision: LoadBalancerDecision): boolean {
  const canonical = (ingress: readonly LoadBalancerIngress[]): string => JSON.stringify(ingress.map((entry) => [entry.ip ?? '', entry.hostname ?? '', entry.ipMode ?? '']));
  return canonical(ingressOf(service)) === canonical(desiredLoadBalancerStatus(decision).ingress ?? []);
}

/** The address a Service shows now, as text (for events); undefined when none. */
export function shownIp(service: Service): string | undefined {
  const address = shownAddress(service);
  return address === undefined ? undefined : formatIpv4(address);
}
