// Kubernetes' large-scale disruption protection, pure: nodes are grouped
// in zones (by their topology labels); a zone where more than the
// unhealthy threshold of nodes is not ready is partially disrupted and
// evicts slowly (or not at all when small); a zone with no ready node is
// fully disrupted; when every zone is, the fault is more likely the
// control plane's own network than the nodes: evictions stop. Evictions
// here are NoExecute taints put on nodes, at a rate per zone (a token
// bucket, driven by the time the caller passes in).

import type { Node } from '../../../proto/gen/resources/v1/core.js';

export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_REGION = 'topology.kubernetes.io/region';

/** Kubernetes' --unhealthy-zone-threshold. */
export const DEFAULT_UNHEALTHY_ZONE_THRESHOLD = 0.55;
/** Kubernetes' --large-cluster-size-threshold: a smaller partially disrupted zone stops evicting. */
export const DEFAULT_LARGE_CLUSTER_SIZE_THRESHOLD = 50;
/** Kubernetes' --node-eviction-rate is 0.1 (one node every 10 s); mast's clusters are small and tests short. */
export const DEFAULT_EVICTIONS_PER_SECOND = 10;
/** Kubernetes' --secondary-node-eviction-rate. */
export const DEFAULT_SECONDARY_EVICTIONS_PER_SECOND = 0.01;
/** Kubernetes' evictionLimiterBurst. */
export const EVICTION_BURST = 1;

/** Token counts are sums of fractions: this close to a whole token counts as one. */
const TOKEN_EPSILON = 1e-9;

export type ZoneState = 'Normal' | 'PartialDisruption' | 'FullDisruption';

/** Kubernetes' GetZoneKey: region and zone ("" for a node with neither label). */
export function zoneKeyOf(node: Node): string {
  const labels = node.metadata?.labels ?? {};
  const region = labels[LABEL_REGION] ?? '';
  const zone = labels[LABEL_ZONE] ?? '';
  return region === '' && zone === '' ? '' : `${region}:\u0000:${zone}`;
}

/** Kubernetes' ComputeZoneState. */
export function zoneState(readyNodes: number, notReadyNodes: number, unhealthyZoneThreshold: number): ZoneState {
  if (readyNodes === 0 && notReadyNodes > 0) return 'FullDisruption';
  if (notReadyNodes > 2 && notReadyNodes / (notReadyNodes + readyNodes) >= unhealthyZoneThreshold) return 'PartialDisruption';
  return 'Normal';
}

export interface EvictionRates {
  readonly evictionsPerSecond: number;
  readonly secondaryEvictionsPerSecond: number;
  readonly largeClusterSizeThreshold: number;
}

/** Kubernetes' handleDisruption and setLimiterInZone: the zone's rate of NoExecute taints per second. */
export function zoneEvictionRate(state: ZoneState, zoneSize: number, allFullyDisrupted: boolean, rates: EvictionRates): number {
  if (allFullyDisrupted) return 0;
  if (state === 'PartialDisruption') return zoneSize > rates.largeClusterSizeThreshold ? rates.secondaryEvictionsPerSecond : 0;
  return rates.evictionsPerSecond;
}

/** Ready and not-ready node counts per zone, kept up to date node by node. */
export class ZoneReadiness {
  private readonly nodes = new Map<string, { readonly zone: string; readonly ready: boolean }>();
  private readonly counts = new Map<string, { ready: number; notReady: number }>();

  /** Record a node's zone and whether its Ready condition is True. */
  set(name: string, zone: string, ready: boolean): void {
    this.remove(name);
    this.nodes.set(name, { zone, ready });
    const counts = this.counts.get(zone) ?? { ready: 0, notReady: 0 };
    if (ready) counts.ready++;
    else counts.notReady++;
    this.counts.set(zone, counts);
  }

  remove(name: string): void {
    const known = this.nodes.get(name);
    if (known === undefined) return;
    this.nodes.delete(name);
    const counts = this.counts.get(known.zone)!;
    if (known.ready) counts.ready--;
    else counts.notReady--;
    if (counts.ready === 0 && counts.notReady === 0) this.counts.delete(known.zone);
  }

  zoneOf(name: string): string | undefined {
    return this.nodes.get(name)?.zone;
  }

  size(zone: string): number {
    const counts = this.counts.get(zone);
    return counts === undefined ? 0 : counts.ready + counts.notReady;
  }

  state(zone: string, unhealthyZoneThreshold: number): ZoneState {
    const counts = this.counts.get(zone) ?? { ready: 0, notReady: 0 };
    return zoneState(counts.ready, counts.notReady, unhealthyZoneThreshold);
  }

  zones(): string[] {
    return [...this.counts.keys()];
  }

  /** Whether there are zones and every one of them is fully disrupted. */
  allFullyDisrupted(unhealthyZoneThreshold: number): boolean {
    const zones = this.zones();
    return zones.length > 0 && zones.every((zone) => this.state(zone, unhealthyZoneThreshold) === 'FullDisruption');
  }
}

/** A token bucket (client-go's flowcontrol.NewTokenBucketRateLimiter) on a caller-supplied clock. */
export class TokenBucket {
  private tokens: number;
  private lastMs: number | undefined;

  constructor(
    private ratePerSecond: number,
    private readonly burst: number,
  ) {
    if (!(ratePerSecond >= 0 && burst >= 1)) throw new Error(`TokenBucket: need ratePerSecond >= 0 (${ratePerSecond}) and burst >= 1 (${burst})`);
    this.tokens = burst;
  }

  get rate(): number {
    return this.ratePerSecond;
  }

  /** Change the rate; tokens already earned are kept (at most the burst). */
  setRate(ratePerSecond: number, nowMs: number): void {
    if (!(ratePerSecond >= 0)) throw new Error(`TokenBucket: ratePerSecond must be >= 0, not ${ratePerSecond}`);
    this.refill(nowMs);
    this.ratePerSecond = ratePerSecond;
  }

  /** Take a token if there is one. */
  tryTake(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens < 1 - TOKEN_EPSILON) return false;
    this.tokens = Math.max(0, this.tokens - 1);
    return true;
  }

  /** How long until a token is there (0: now; Infinity at rate 0). */
  waitMs(nowMs: number): number {
    this.refill(nowMs);
    if (this.tokens >= 1 - TOKEN_EPSILON) return 0;
    if (this.ratePerSecond === 0) return Infinity;
    return Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000);
  }

  private refill(nowMs: number): void {
    if (this.lastMs !== undefined && nowMs > this.lastMs) this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.lastMs) / 1000) * this.ratePerSecond);
    if (this.lastMs === undefined || nowMs > this.lastMs) this.lastMs = nowMs;
  }
}
