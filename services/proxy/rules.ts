// What a node's Service proxy must program, as a pure function of the
// Services and Endpoints it watches: one rule per Service port, with the
// addresses it answers on (cluster IP, node port, external and load-balancer
// IPs) and the ready backends traffic goes to. Every backend (nftables, IPVS,
// userspace) consumes this model, so the decision is tested once and the
// backends only translate it. Deterministic order throughout: an unchanged
// world yields an equal model and the diff is empty.

import type { Endpoints, Service } from '../../proto/gen/resources/v1/core.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** A ready endpoint of one Service port. */
export interface Backend {
  readonly ip: string;
  readonly port: number;
}

/** One port of one Service, as the proxy programs it. */
export interface ServicePortRule {
  /** "namespace/name:portName" (portName "" for an unnamed port): unique, stable, the sort key. */
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly protocol: Protocol;
  /** The virtual IP; absent for headless Services (which get no VIP, only DNS). */
  readonly clusterIP?: string;
  /** The Service port, on the cluster IP and the external IPs. */
  readonly port: number;
  /** Answered on every node address (NodePort and LoadBalancer Services). */
  readonly nodePort?: number;
  /** spec.externalIPs and status.loadBalancer.ingress[].ip: sorted, without duplicates. */
  readonly externalIPs: readonly string[];
  /** sessionAffinity ClientIP: a client keeps its backend for this long after its last packet. */
  readonly sessionAffinity?: { readonly timeoutSeconds: number };
  /** Ready endpoints of this port: sorted by IP then port, without duplicates. Empty: traffic is rejected. */
  readonly backends: readonly Backend[];
}

export interface ProxyRules {
  /** Sorted by id. */
  readonly services: readonly ServicePortRule[];
}

export interface RulesChange {
  readonly added: readonly ServicePortRule[];
  readonly removed: readonly ServicePortRule[];
  readonly changed: readonly { readonly before: ServicePortRule; readonly after: ServicePortRule }[];
}

const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10_800;

function protocolOf(value: string | undefined): Protocol | undefined {
  const protocol = value ?? 'TCP';
  return protocol === 'TCP' || protocol === 'UDP' || protocol === 'SCTP' ? protocol : undefined;
}

/** An IPv4 address as a number, for ordering; undefined for anything else. */
function ipv4Value(ip: string): number | undefined {
  let value = 0;
  let octet = -1;
  let dots = 0;
  for (let index = 0; index < ip.length; index++) {
    const code = ip.charCodeAt(index);
    if (code === 46 /* . */) {
      if (octet < 0 || ++dots > 3) return undefined;
      value = value * 256 + octet;
      octet = -1;
    } else if (code >= 48 && code <= 57) {
      octet = (octet < 0 ? 0 : octet * 10) + (code - 48);
      if (octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return dots === 3 && octet >= 0 ? value * 256 + octet : undefined;
}

/** Addresses with their sort keys: IPv4 in numeric order first, anything else after, as text. */
function sortedByIp<T>(items: readonly T[], ipOf: (item: T) => string, portOf: (item: T) => number = () => 0): T[] {
  const keyed = items.map((item) => ({ item, ip: ipOf(item), value: ipv4Value(ipOf(item)), port: portOf(item) }));
  keyed.sort((a, b) => {
    if (a.value !== undefined && b.value !== undefined) return a.value - b.value || a.port - b.port;
    if (a.value !== undefined) return -1;
    if (b.value !== undefined) return 1;
    return (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0) || a.port - b.port;
  });
  return keyed.map((entry) => entry.item);
}

function backendsFor(endpoints: Endpoints | undefined, portName: string, protocol: Protocol): Backend[] {
  const seen = new Set<string>();
  const backends: Backend[] = [];
  for (const subset of endpoints?.subsets ?? []) {
    const port = (subset.ports ?? []).find((candidate) => (candidate.name ?? '') === portName && (candidate.protocol ?? 'TCP') === protocol);
    if (port?.port === undefined) continue;
    for (const address of subset.addresses ?? []) {
      if (address.ip === undefined || address.ip === '') continue;
      const key = `${address.ip}:${port.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      backends.push({ ip: address.ip, port: port.port });
    }
  }
  return sortedByIp(backends, (backend) => backend.ip, (backend) => backend.port);
}

/**
 * Remembers each Service's rules with the Service and Endpoints objects they
 * came from: informers replace an object when it changes, so the same two
 * objects give the same rules, and only the Services whose objects changed
 * are computed again (a change to one of 1,000 Services costs one, not 1,000).
 */
export class RulesCache {
  private readonly entries = new Map<string, { service: Service; endpoints: Endpoints | undefined; rules: readonly ServicePortRule[] }>();

  /** The rules of one Service, from the cache when its objects are the ones it was computed from. */
  rulesOf(key: string, service: Service, endpoints: Endpoints | undefined, seen: Set<string>): readonly ServicePortRule[] {
    seen.add(key);
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.service === service && entry.endpoints === endpoints) return entry.rules;
    const rules = serviceRules(service, endpoints);
    this.entries.set(key, { service, endpoints, rules });
    return rules;
  }

  /** Forget the Services not seen in the last computation. */
  retain(seen: ReadonlySet<string>): void {
    for (const key of this.entries.keys()) if (!seen.has(key)) this.entries.delete(key);
  }
}

/** The rules of one Service (one per port it programs), given its Endpoints. */
export function serviceRules(service: Service, endpoints: Endpoints | undefined): ServicePortRule[] {
  const spec = service.spec ?? {};
  if (spec.type === 'ExternalName') return [];
  const namespace = service.metadata?.namespace ?? '';
  const name = service.metadata?.name ?? '';
  const clusterIP = spec.clusterIP !== undefined && spec.clusterIP !== '' && spec.clusterIP !== 'None' ? spec.clusterIP : undefined;
  const externalIPs = sortedByIp([...new Set([...(spec.externalIPs ?? []), ...(service.status?.loadBalancer?.ingress ?? []).map((ingress) => ingress.ip ?? '')].filter((ip) => ip !== ''))], (ip) => ip);
  const affinity = spec.sessionAffinity === 'ClientIP' ? { timeoutSeconds: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS } : undefined;
  const rules: ServicePortRule[] = [];
  for (const port of spec.ports ?? []) {
    const protocol = protocolOf(port.protocol);
    if (protocol === undefined || port.port === undefined) continue;
    const nodePort = port.nodePort !== undefined && port.nodePort !== 0 ? port.nodePort : undefined;
    if (clusterIP === undefined && nodePort === undefined && externalIPs.length === 0) continue;
    const portName = port.name ?? '';
    rules.push({
      id: `${namespace}/${name}:${portName}`,
      namespace,
      name,
      portName,
      protocol,
      ...(clusterIP === undefined ? {} : { clusterIP }),
      port: port.port,
      ...(nodePort === undefined ? {} : { nodePort }),
      externalIPs,
      ...(affinity === undefined ? {} : { sessionAffinity: affinity }),
      backends: backendsFor(endpoints, portName, protocol),
    });
  }
  return rules;
}

/**
 * The rules for these Services and Endpoints (any order; Endpoints match
 * their Service by namespace and name). With a cache, Services whose objects
 * did not change since the last call reuse their rules.
 */
export function desiredRules(services: readonly Service[], endpoints: readonly Endpoints[], cache: RulesCache = new RulesCache()): ProxyRules {
  const endpointsByKey = new Map<string, Endpoints>();
  for (const item of endpoints) endpointsByKey.set(`${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? ''}`, item);
  const rules: ServicePortRule[] = [];
  const seen = new Set<string>();
  for (const service of services) {
    const key = `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
    for (const rule of cache.rulesOf(key, service, endpointsByKey.get(key), seen)) rules.push(rule);
  }
  cache.retain(seen);
  rules.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { services: rules };
}

/** Whether two rules program the same thing. */
export function sameRule(a: ServicePortRule, b: ServicePortRule): boolean {
  if (a === b) return true;
  return (
    a.id === b.id &&
    a.protocol === b.protocol &&
    a.clusterIP === b.clusterIP &&
    a.port === b.port &&
    a.nodePort === b.nodePort &&
    a.sessionAffinity?.timeoutSeconds === b.sessionAffinity?.timeoutSeconds &&
    a.externalIPs.length === b.externalIPs.length &&
    a.externalIPs.every((ip, index) => ip === b.externalIPs[index]) &&
    a.backends.length === b.backends.length &&
    a.backends.every((backend, index) => backend.ip === b.backends[index]?.ip && backend.port === b.backends[index]?.port)
  );
}

/** What changed from one model to the next (both sorted by id, as desiredRules makes them). */
export function diffRules(before: ProxyRules, after: ProxyRules): RulesChange {
  const added: ServicePortRule[] = [];
  const removed: ServicePortRule[] = [];
  const changed: { before: ServicePortRule; after: ServicePortRule }[] = [];
  const previous = new Map(before.services.map((rule) => [rule.id, rule]));
  for (const rule of after.services) {
    const old = previous.get(rule.id);
    if (old === undefined) added.push(rule);
    else if (!sameRule(old, rule)) changed.push({ before: old, after: rule });
    previous.delete(rule.id);
  }
  removed.push(...previous.values());
  return { added, removed, changed };
}

export function isEmptyChange(change: RulesChange): boolean {
  return change.added.length === 0 && change.removed.length === 0 && change.changed.length === 0;
}
