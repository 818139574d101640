// Cluster DNS answers, as a pure function of the Services and Endpoints a
// node watches: the Kubernetes DNS schema (what CoreDNS's kubernetes plugin
// serves with `pods insecure`). The server (dns-server.ts) only translates
// these answers to the wire and forwards what is not ours.
//
//   SVC.NS.svc.DOMAIN               A/AAAA: the cluster IP(s); headless: every ready address
//                                   CNAME: spec.externalName (type ExternalName)
//   HOST.SVC.NS.svc.DOMAIN          headless only: the address with that hostname, or whose
//                                   IP-derived name (1-2-3-4) it is when it has none
//   _PORT._PROTO.SVC.NS.svc.DOMAIN  SRV per named port (weights split as CoreDNS does)
//   A-B-C-D.NS.pod.DOMAIN           A A.B.C.D, for any namespace (no lookup: "insecure")
//   D.C.B.A.in-addr.arpa            PTR for cluster IPs and headless endpoints (IPv4)
//   dns-version.DOMAIN              TXT, the schema version
//
// A name that exists (or has names below it) answers NOERROR, with no records
// for a type it lacks (NODATA); any other name in the domain is NXDOMAIN.
// Negative answers carry the zone's SOA so resolvers cache them for one TTL.
// Built whole from the full lists, but a build only indexes the Services by
// namespace and name: a question is answered by parsing its name (as CoreDNS
// does), a Service's hostnames and SRV targets are worked out the first time
// one of its names is asked for, and the reverse index the first time a PTR
// is. An instance never changes what it answers, so those caches stay right.

import type { Endpoints, Service } from '../../proto/gen/resources/v1/core.js';

interface RecordBase {
  /** As asked (case kept), no trailing dot. */
  readonly name: string;
  readonly ttl: number;
}

export interface AddressRecord extends RecordBase {
  readonly type: 'A' | 'AAAA';
  readonly address: string;
}

export interface NameRecord extends RecordBase {
  readonly type: 'CNAME' | 'PTR';
  /** No trailing dot. */
  readonly target: string;
}

export interface SrvRecord extends RecordBase {
  readonly type: 'SRV';
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

export interface TxtRecord extends RecordBase {
  readonly type: 'TXT';
  readonly text: string;
}

export interface SoaRecord extends RecordBase {
  readonly type: 'SOA';
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refreshSeconds: number;
  readonly retrySeconds: number;
  readonly expireSeconds: number;
  readonly minimumSeconds: number;
}

export type DnsRecord = AddressRecord | NameRecord | SrvRecord | TxtRecord | SoaRecord;

/** REFUSED: the name is not ours (the server forwards those instead of asking). */
export type DnsRcode = 'NOERROR' | 'NXDOMAIN' | 'REFUSED';

export interface DnsAnswer {
  readonly rcode: DnsRcode;
  readonly answers: readonly DnsRecord[];
  /** The address records of SRV targets. */
  readonly additionals: readonly DnsRecord[];
  /** The SOA, on NXDOMAIN and NODATA. */
  readonly authorities: readonly DnsRecord[];
}

export interface DnsRecordsOptions {
  readonly clusterDomain?: string;
  readonly ttlSeconds?: number;
  /** The SOA serial; the caller may bump it on each rebuild. */
  readonly serial?: number;
}

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const DEFAULT_DNS_TTL_SECONDS = 5;
/** The Kubernetes DNS schema version this implements (github.com/kubernetes/dns, docs/specification.md). */
export const DNS_SCHEMA_VERSION = '1.1.0';

/** CoreDNS gives every SRV record of one name the weight 100 / count, rounded down. */
const SRV_TOTAL_WEIGHT = 100;
const SOA_REFRESH_SECONDS = 7200;
const SOA_RETRY_SECONDS = 1800;
const SOA_EXPIRE_SECONDS = 86_400;


interface SrvTarget {
  /** The first label of the target below the Service's name, or '' for the Service's name itself. */
  readonly host: string;
  readonly port: number;
}

/** What one Service publishes, worked out from it and its Endpoints on first use. */
interface ServiceDetails {
  /** The cluster IPs; headless: every ready address. */
  readonly addresses: readonly string[];
  readonly alias?: string;
  /** Headless: hostname (or dashed IP) → its addresses. */
  readonly hosts: ReadonlyMap<string, readonly string[]>;
  /** "_port._proto" → targets; present (maybe empty) for every named port. */
  readonly srv: ReadonlyMap<string, readonly SrvTarget[]>;
}

interface ServiceEntry {
  /** SVC.NS.svc.DOMAIN, lower case. */
  readonly fullName: string;
  readonly service: Service;
  readonly endpoints: Endpoints | undefined;
  details?: ServiceDetails;
}

const NO_RECORDS: readonly DnsRecord[] = [];
const REVERSE_SUFFIX = '.in-addr.arpa';

/** Lower case, without one trailing dot. */
export function canonicalName(name: string): string {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed.toLowerCase();
}

function isOctet(part: string | undefined): part is string {
  return part !== undefined && /^\d{1,3}$/.test(part) && String(Number(part)) === part && Number(part) <= 255;
}

/** The dotted quad, if `label` is an IPv4 address written with dashes (10-0-0-1). */
export function ipFromDashed(label: string): string | undefined {
  const parts = label.split('-');
  return parts.length === 4 && parts.every(isOctet) ? parts.join('.') : undefined;
}

/** The dotted quad a D.C.B.A.in-addr.arpa name stands for. */
export function ipFromReverseName(name: string): string | undefined {
  if (!name.endsWith(REVERSE_SUFFIX)) return undefined;
  const parts = name.slice(0, -REVERSE_SUFFIX.length).split('.');
  return parts.length === 4 && parts.every(isOctet) ? parts.reverse().join('.') : undefined;
}

/** The label naming an address: dots (IPv4) or colons (IPv6) become dashes. */
export function dashedIp(ip: string): string {
  return ip.toLowerCase().replace(/[.:]/g, '-');
}

function isIp(value: string | undefined): value is string {
  return value !== undefined && value !== '' && value !== 'None' && (value.includes('.') || value.includes(':'));
}

function srvKey(portName: string, protocol: string | undefined): string {
  return `_${portName.toLowerCase()}._${(protocol ?? 'TCP').toLowerCase()}`;
}

/** Works out what a Service publishes (see the table at the top). */
function detailsOf(service: Service, endpoints: Endpoints | undefined): ServiceDetails {
  const spec = service.spec ?? {};
  const hosts = new Map<string, string[]>();
  const srv = new Map<string, SrvTarget[]>();
  if (spec.type === 'ExternalName') {
    const alias = canonicalName(spec.externalName ?? '');
    return alias === '' ? { addresses: [], hosts, srv } : { addresses: [], alias, hosts, srv };
  }
  for (const port of spec.ports ?? []) {
    if (port.name === undefined || port.name === '' || port.port === undefined) continue;
    // Headless: the name exists (NODATA) while the port has no ready endpoint.
    srv.set(srvKey(port.name, port.protocol), spec.clusterIP === 'None' ? [] : [{ host: '', port: port.port }]);
  }
  if (spec.clusterIP !== 'None') {
    const ips = spec.clusterIPs !== undefined && spec.clusterIPs.length > 0 ? spec.clusterIPs : [spec.clusterIP ?? ''];
    return { addresses: [...new Set(ips.filter(isIp).map((ip) => ip.toLowerCase()))], hosts, srv };
  }
  const addresses = new Set<string>();
  for (const subset of endpoints?.subsets ?? []) {
    const subsetHosts: string[] = [];
    for (const address of subset.addresses ?? []) {
      if (!isIp(address.ip)) continue;
      const ip = address.ip.toLowerCase();
      const host = address.hostname !== undefined && address.hostname !== '' ? address.hostname.toLowerCase() : dashedIp(ip);
      addresses.add(ip);
      subsetHosts.push(host);
      const known = hosts.get(host);
      if (known === undefined) hosts.set(host, [ip]);
      else if (!known.includes(ip)) known.push(ip);
    }
    for (const port of subset.ports ?? []) {
      if (port.name === undefined || port.name === '' || port.port === undefined) continue;
      const key = srvKey(port.name, port.protocol);
      const targets = srv.get(key) ?? [];
      srv.set(key, targets);
      for (const host of subsetHosts) targets.push({ host, port: port.port });
    }
  }
  return { addresses: [...addresses], hosts, srv };
}

export class DnsRecords {
  readonly clusterDomain: string;
  readonly ttlSeconds: number;
  /** namespace → Service name → entry, lower case. */
  private readonly namespaces = new Map<string, Map<string, ServiceEntry>>();
  private serviceTotal = 0;
  /** IPv4 address → the names its PTR points to (cluster IPs and headless endpoints); made on first use. */
  private pointers: Map<string, string[]> | undefined;
  private readonly soa: SoaRecord;
  private readonly domainSuffix: string;

  constructor(services: Iterable<Service>, endpoints: Iterable<Endpoints>, options: DnsRecordsOptions = {}) {
    this.clusterDomain = canonicalName(options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN);
    if (this.clusterDomain === '') throw new Error('DnsRecords: clusterDomain must not be empty');
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_DNS_TTL_SECONDS;
    this.domainSuffix = `.${this.clusterDomain}`;
    this.soa = {
      type: 'SOA',
      name: this.clusterDomain,
      ttl: this.ttlSeconds,
      mname: `ns.dns.${this.clusterDomain}`,
      rname: `hostmaster.${this.clusterDomain}`,
      serial: options.serial ?? 1,
      refreshSeconds: SOA_REFRESH_SECONDS,
      retrySeconds: SOA_RETRY_SECONDS,
      expireSeconds: SOA_EXPIRE_SECONDS,
      minimumSeconds: this.ttlSeconds,
    };
    const endpointsByKey = new Map<string, Endpoints>();
    for (const item of endpoints) endpointsByKey.set(`${item.metadata?.namespace ?? 'default'}/${item.metadata?.name ?? ''}`, item);
    for (const service of services) {
      const name = service.metadata?.name;
      if (name === undefined || name === '') continue;
      const namespace = service.metadata?.namespace ?? 'default';
      const fullName = `${name}.${namespace}.svc.${this.clusterDomain}`.toLowerCase();
      let byName = this.namespaces.get(namespace.toLowerCase());
      if (byName === undefined) {
        byName = new Map();
        this.namespaces.set(namespace.toLowerCase(), byName);
      }
      if (!byName.has(name.toLowerCase())) this.serviceTotal++;
      byName.set(name.toLowerCase(), { fullName, service, endpoints: endpointsByKey.get(`${namespace}/${name}`) });
    }
  }

  get serviceCount(): number {
    return this.serviceTotal;
  }

  /** Whether `name` is ours to answer: the cluster domain, or the reverse name of an address we publish. */
  isAuthoritativeFor(name: string): boolean {
    const key = canonicalName(name);
    if (this.inDomain(key)) return true;
    const ip = ipFromReverseName(key);
    return ip !== undefined && this.pointerIndex().has(ip);
  }

  /** The answer to a question of `type` ("A", "SRV", "ANY", …) about `name`, any case, trailing dot or not. */
  answer(name: string, type: string): DnsAnswer {
    const asked = name.endsWith('.') ? name.slice(0, -1) : name;
    const key = asked.toLowerCase();
    const qtype = type.toUpperCase();
    if (!this.inDomain(key)) return this.answerReverse(asked, key, qtype);
    if (key === this.clusterDomain) return this.positive(qtype === 'SOA' || qtype === 'ANY' ? [{ ...this.soa, name: asked }] : []);
    const labels = key.slice(0, -this.domainSuffix.length).split('.');
    const zone = labels.pop();
    if (zone === 'svc') return this.answerService(asked, labels, qtype);
    if (zone === 'pod') return this.answerPod(asked, labels, qtype);
    if (zone === 'dns-version' && labels.length === 0) {
      return this.positive(qtype === 'TXT' || qtype === 'ANY' ? [{ type: 'TXT', name: asked, ttl: this.ttlSeconds, text: DNS_SCHEMA_VERSION }] : []);
    }
    return this.negative('NXDOMAIN');
  }

  private inDomain(key: string): boolean {
    return key === this.clusterDomain || key.endsWith(this.domainSuffix);
  }

  /** NOERROR with these records, or NODATA (with the SOA) when there are none. */
  private positive(answers: readonly DnsRecord[], additionals: readonly DnsRecord[] = NO_RECORDS): DnsAnswer {
    if (answers.length === 0) return this.negative('NOERROR');
    return { rcode: 'NOERROR', answers, additionals, authorities: NO_RECORDS };
  }

  private negative(rcode: 'NOERROR' | 'NXDOMAIN'): DnsAnswer {
    return { rcode, answers: NO_RECORDS, additionals: NO_RECORDS, authorities: [this.soa] };
  }

  /** `labels` are those left of svc.DOMAIN: [], [ns], [svc, ns], [host, svc, ns], [_proto, svc, ns], [_port, _proto, svc, ns]. */
  private answerService(asked: string, labels: readonly string[], qtype: string): DnsAnswer {
    if (labels.length === 0) return this.negative('NOERROR');
    const byName = this.namespaces.get(labels[labels.length - 1] ?? '');
    if (byName === undefined) return this.negative('NXDOMAIN');
    if (labels.length === 1) return this.negative('NOERROR');
    const entry = byName.get(labels[labels.length - 2] ?? '');
    if (entry === undefined) return this.negative('NXDOMAIN');
    const details = this.detailsOf(entry);
    if (labels.length === 2) {
      const answers = this.addressRecords(asked, details.addresses, qtype);
      if (answers.length === 0 && details.alias !== undefined) return this.positive([{ type: 'CNAME', name: asked, ttl: this.ttlSeconds, target: details.alias }]);
      return this.positive(answers);
    }
    const first = labels[0] ?? '';
    if (labels.length === 3 && first.startsWith('_')) {
      // _tcp.SVC…: exists when some named port has that protocol.
      return this.negative([...details.srv.keys()].some((key) => key.endsWith(`.${first}`)) ? 'NOERROR' : 'NXDOMAIN');
    }
    if (labels.length === 3) {
      const addresses = details.hosts.get(first);
      return addresses === undefined ? this.negative('NXDOMAIN') : this.positive(this.addressRecords(asked, addresses, qtype));
    }
    const targets = labels.length === 4 ? details.srv.get(`${first}.${labels[1] ?? ''}`) : undefined;
    if (targets === undefined) return this.negative('NXDOMAIN');
    if (qtype !== 'SRV' && qtype !== 'ANY') return this.negative('NOERROR');
    return this.positive(this.srvRecords(asked, entry.fullName, targets), this.srvAdditionals(entry.fullName, details, targets));
  }

  /** A-B-C-D.NS.pod.DOMAIN answers A.B.C.D for any namespace ("insecure": nothing is looked up). */
  private answerPod(asked: string, labels: readonly string[], qtype: string): DnsAnswer {
    if (labels.length === 0 || (labels.length === 1 && labels[0] !== '')) return this.negative('NOERROR');
    const ip = labels.length === 2 && labels[1] !== '' ? ipFromDashed(labels[0] ?? '') : undefined;
    if (ip === undefined) return this.negative('NXDOMAIN');
    return this.positive(this.addressRecords(asked, [ip], qtype));
  }

  private answerReverse(asked: string, key: string, qtype: string): DnsAnswer {
    const ip = ipFromReverseName(key);
    const targets = ip === undefined ? undefined : this.pointerIndex().get(ip);
    if (targets === undefined) return { rcode: 'REFUSED', answers: NO_RECORDS, additionals: NO_RECORDS, authorities: NO_RECORDS };
    if (qtype !== 'PTR' && qtype !== 'ANY') return { rcode: 'NOERROR', answers: NO_RECORDS, additionals: NO_RECORDS, authorities: NO_RECORDS };
    const answers = targets.map((target): DnsRecord => ({ type: 'PTR', name: asked, ttl: this.ttlSeconds, target }));
    return { rcode: 'NOERROR', answers, additionals: NO_RECORDS, authorities: NO_RECORDS };
  }

  private detailsOf(entry: ServiceEntry): ServiceDetails {
    entry.details ??= detailsOf(entry.service, entry.endpoints);
    return entry.details;
  }

  /** The A (or AAAA, or both for ANY) records among `addresses`. */
  private addressRecords(name: string, addresses: readonly string[], qtype: string): DnsRecord[] {
    const found: DnsRecord[] = [];
    for (const address of addresses) {
      const type = address.includes(':') ? 'AAAA' : 'A';
      if (qtype === type || qtype === 'ANY') found.push({ type, name, ttl: this.ttlSeconds, address });
    }
    return found;
  }

  private srvRecords(name: string, serviceName: string, targets: readonly SrvTarget[]): DnsRecord[] {
    const weight = Math.floor(SRV_TOTAL_WEIGHT / targets.length);
    return targets.map(({ host, port }): DnsRecord => ({
      type: 'SRV',
      name,
      ttl: this.ttlSeconds,
      priority: 0,
      weight,
      port,
      target: host === '' ? serviceName : `${host}.${serviceName}`,
    }));
  }

  /** The address records of the SRV targets, each target once. */
  private srvAdditionals(serviceName: string, details: ServiceDetails, targets: readonly SrvTarget[]): DnsRecord[] {
    const seen = new Set<string>();
    const found: DnsRecord[] = [];
    for (const { host } of targets) {
      if (seen.has(host)) continue;
      seen.add(host);
      const addresses = host === '' ? details.addresses : (details.hosts.get(host) ?? []);
      found.push(...this.addressRecords(host === '' ? serviceName : `${host}.${serviceName}`, addresses, 'ANY'));
    }
    return found;
  }

  private pointerIndex(): ReadonlyMap<string, readonly string[]> {
    if (this.pointers !== undefined) return this.pointers;
    const pointers = new Map<string, string[]>();
    const add = (ip: string, target: string): void => {
      if (ip.includes(':')) return; // ip6.arpa names are not served
      const targets = pointers.get(ip);
      if (targets === undefined) pointers.set(ip, [target]);
      else if (!targets.includes(target)) targets.push(target);
    };
    for (const byName of this.namespaces.values()) {
      for (const entry of byName.values()) {
        const details = this.detailsOf(entry);
        if (details.hosts.size === 0) {
          for (const ip of details.addresses) add(ip, entry.fullName);
        }
        for (const [host, ips] of details.hosts) {
          for (const ip of ips) add(ip, `${host}.${entry.fullName}`);
        }
      }
    }
    this.pointers = pointers;
    return pointers;
  }
}
