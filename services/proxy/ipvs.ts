// The IPVS backend of the Service proxy, as kube-proxy's IPVS mode: every
// Service port is a virtual server (round robin, persistent for ClientIP
// affinity) on its cluster IP, each external IP and each node IP at the
// node port, with one masquerading real server per ready endpoint. Cluster
// and external IPs are bound /32 to a dummy interface (mast-ipvs0), so the
// node accepts their packets locally where IPVS takes them. Everything goes
// through our own netlink (generic netlink family "IPVS", rtnetlink for
// the interface) — no ipvsadm, no ip.
//
// sync() reconciles against what the kernel lists (repairing hand edits);
// update() applies the difference from the last applied state only. Both
// add before they remove, so a changed Service never passes through empty.
// A Service without endpoints keeps its virtual server with no real
// servers: IPVS answers its connections with an ICMP port unreachable.

import type { ProxyBackend, ProxyBackendOptions } from './backend.js';
import {
  deleteDestinationRequest,
  deleteServiceRequest,
  dumpDestinationsRequest,
  dumpServicesRequest,
  IP_VS_SVC_F_HASHED,
  IP_VS_SVC_F_PERSISTENT,
  IPVS_GENL_NAME,
  masqueradeRealServer,
  newDestinationRequest,
  newServiceRequest,
  parseDestination,
  parseService,
  realServerKeyString,
  serviceKeyString,
  setDestinationRequest,
  setServiceRequest,
  type RealServer,
  type ServiceKey,
  type VirtualServer,
} from './ipvs-messages.js';
import {
  NetlinkError,
  addressRequest,
  deleteLinkRequest,
  dumpAddressesRequest,
  getLinkRequest,
  newLinkRequest,
  parseAddress,
  parseIPv4,
  parseLink,
} from './netlink.js';
import { NetlinkSocket, resolveFamily, type NetlinkTransport } from './netlink-socket.js';
import type { ProxyRules, RulesChange } from './rules.js';

const ENOENT = 2;
const ESRCH = 3;
const EEXIST = 17;
const ENODEV = 19;
const EOPNOTSUPP = 95;
const EADDRNOTAVAIL = 99;

export const DEFAULT_IPVS_INTERFACE = 'mast-ipvs0';
const DEFAULT_SCHEDULER = 'rr';
/** kube-apiserver's default --service-node-port-range: services on node IPs in it are the proxy's. */
const DEFAULT_NODE_PORT_RANGE = { min: 30000, max: 32767 } as const;
const PERSISTENT_NETMASK = 0xffffffff;
const NO_IPVS_REASON = `the kernel has no IPVS (generic netlink family "${IPVS_GENL_NAME}" not found; modprobe ip_vs)`;

export interface IpvsBackendOptions extends ProxyBackendOptions {
  /** The interface the VIPs are bound to; default mast-ipvs0. Everything on it belongs to this backend. */
  readonly interfaceName?: string;
  /** Its link type; default "dummy" (a kernel without the dummy driver can use "bridge": an empty bridge holds local addresses the same way). */
  readonly interfaceKind?: string;
  /** Default "rr". */
  readonly scheduler?: string;
  /** Virtual servers on a node IP with a port in this range are this backend's (so a restart cleans up after the previous run). */
  readonly nodePortRange?: { readonly min: number; readonly max: number };
  readonly receiveTimeoutMs?: number;
  /** Instead of opening netlink sockets (tests: a fake kernel). close() closes them. */
  readonly transports?: { readonly ipvs: NetlinkTransport; readonly route: NetlinkTransport };
}

/** One virtual server and its real servers (keys: realServerKeyString). */
export interface IpvsService {
  readonly server: VirtualServer;
  readonly reals: ReadonlyMap<string, RealServer>;
}

/** What the backend programs: virtual servers by serviceKeyString, and the VIPs bound to its interface. */
export interface IpvsState {
  readonly services: ReadonlyMap<string, IpvsService>;
  readonly vips: ReadonlySet<string>;
}

function isIPv4(text: string): boolean {
  try {
    parseIPv4(text);
    return true;
  } catch {
    return false;
  }
}

/** The IPVS state for these rules: pure. A virtual server two rules both claim goes to the first by id (the other is logged). */
export function ipvsStateFor(rules: ProxyRules, nodeIPs: readonly string[], scheduler = DEFAULT_SCHEDULER, log: (line: string) => void = () => {}): IpvsState {
  const services = new Map<string, IpvsService>();
  const owners = new Map<string, string>();
  const vips = new Set<string>();
  for (const rule of rules.services) {
    const vipAddresses = [...(rule.clusterIP === undefined ? [] : [rule.clusterIP]), ...rule.externalIPs];
    const nodePort = rule.nodePort;
    const endpoints = [...vipAddresses.map((address) => ({ address, port: rule.port })), ...(nodePort === undefined ? [] : nodeIPs.map((address) => ({ address, port: nodePort })))];
    const reals = new Map<string, RealServer>();
    for (const backend of rule.backends) {
      if (!isIPv4(backend.ip)) continue;
      const real = masqueradeRealServer(backend.ip, backend.port);
      reals.set(realServerKeyString(real), real);
    }
    for (const { address, port } of endpoints) {
      if (!isIPv4(address)) {
        log(`ipvs: ${rule.id}: ${address} is not IPv4, skipped`);
        continue;
      }
      const server: VirtualServer = {
        protocol: rule.protocol,
        address,
        port,
        scheduler,
        ...(rule.sessionAffinity === undefined ? {} : { persistenceTimeoutSeconds: rule.sessionAffinity.timeoutSeconds }),
      };
      const key = serviceKeyString(server);
      const owner = owners.get(key);
      if (owner !== undefined) {
        if (owner !== rule.id) log(`ipvs: ${key} is claimed by ${owner} and ${rule.id}; ${owner} keeps it`);
        continue;
      }
      owners.set(key, rule.id);
      services.set(key, { server, reals });
    }
    for (const address of vipAddresses) if (isIPv4(address)) vips.add(address);
  }
  return { services, vips };
}

/** Whether the kernel's virtual server is programmed as wanted (scheduler, persistence; flags and netmask where listed). */
function sameServer(have: VirtualServer & { readonly flags?: number; readonly netmask?: number }, want: VirtualServer): boolean {
  if (have.scheduler !== want.scheduler || have.persistenceTimeoutSeconds !== want.persistenceTimeoutSeconds) return false;
  const wantFlags = want.persistenceTimeoutSeconds === undefined ? 0 : IP_VS_SVC_F_PERSISTENT;
  if (have.flags !== undefined && (have.flags & ~IP_VS_SVC_F_HASHED) !== wantFlags) return false;
  return have.netmask === undefined || have.netmask === PERSISTENT_NETMASK;
}

function sameReal(a: RealServer, b: RealServer): boolean {
  return a.weight === b.weight && a.forward === b.forward && a.upperThreshold === b.upperThreshold && a.lowerThreshold === b.lowerThreshold;
}

/** The interface the VIPs live on, through rtnetlink. */
export class VipInterface {
  private index: number | undefined;
  /** Whether this instance created the link (close() removes it then). */
  created = false;

  constructor(
    private readonly socket: NetlinkTransport,
    readonly name: string,
    readonly kind: string,
  ) {}

  /** The link's index, creating the link when missing. */
  ensure(): number {
    const existing = this.find();
    if (existing !== undefined) return existing;
    try {
      this.socket.request(`create ${this.kind} link ${this.name}`, (seq) => newLinkRequest(this.name, this.kind, seq));
      this.created = true;
    } catch (error) {
      if (error instanceof NetlinkError && error.errno === EOPNOTSUPP) throw new Error(`the kernel has no "${this.kind}" link type for the VIP interface ${this.name} (${error.message})`, { cause: error });
      if (!(error instanceof NetlinkError && error.errno === EEXIST)) throw error;
    }
    const index = this.find();
    if (index === undefined) throw new Error(`link ${this.name} was created but cannot be found`);
    return index;
  }

  /** The link's index; undefined when there is no such link. */
  find(): number | undefined {
    try {
      const [reply] = this.socket.request(`look up link ${this.name}`, (seq) => getLinkRequest(this.name, seq));
      this.index = reply === undefined ? undefined : parseLink(reply).index;
    } catch (error) {
      if (!(error instanceof NetlinkError && error.errno === ENODEV)) throw error;
      this.index = undefined;
    }
    return this.index;
  }

  /** Its IPv4 addresses (bound /32 by this class). Looks the link up afresh: a link deleted by hand may have left its index to another. */
  addresses(): string[] {
    const index = this.find();
    if (index === undefined) return [];
    const replies = this.socket.request('list IPv4 addresses', (seq) => dumpAddressesRequest(seq));
    return replies.map(parseAddress).flatMap((address) => (address !== undefined && address.index === index ? [address.address] : []));
  }

  bind(address: string): void {
    const index = this.ensure();
    this.socket.request(`bind ${address}/32 to ${this.name}`, (seq) => addressRequest('add', { index, address, prefixLength: 32 }, seq));
  }

  /** Removes the address; nothing when it is not there. */
  unbind(address: string): void {
    const index = this.index ?? this.find();
    if (index === undefined) return;
    try {
      this.socket.request(`unbind ${address}/32 from ${this.name}`, (seq) => addressRequest('delete', { index, address, prefixLength: 32 }, seq));
    } catch (error) {
      if (!(error instanceof NetlinkError && (error.errno === EADDRNOTAVAIL || error.errno === ENOENT))) throw error;
    }
  }

  /** Deletes the link (and with it its addresses); nothing when it is gone. */
  remove(): void {
    const index = this.find();
    if (index === undefined) return;
    try {
      this.socket.request(`delete link ${this.name}`, (seq) => deleteLinkRequest(index, seq));
    } catch (error) {
      if (!(error instanceof NetlinkError && error.errno === ENODEV)) throw error;
    }
    this.index = undefined;
  }
}

/** What the kernel has: services by key, with their real servers. */
type KernelState = Map<string, { server: VirtualServer & { flags: number; netmask: number }; reals: Map<string, RealServer> }>;

export class IpvsBackend implements ProxyBackend {
  readonly mode = 'ipvs' as const;
  private readonly log: (line: string) => void;
  private readonly scheduler: string;
  private readonly nodeIPs: ReadonlySet<string>;
  private readonly nodePortRange: { readonly min: number; readonly max: number };
  private applied: IpvsState = { services: new Map(), vips: new Set() };
  private closed = false;

  private constructor(
    private readonly ipvs: NetlinkTransport,
    private readonly family: number,
    private readonly route: NetlinkTransport,
    readonly vipInterface: VipInterface,
    options: IpvsBackendOptions,
  ) {
    this.log = options.log ?? (() => {});
    this.scheduler = options.scheduler ?? DEFAULT_SCHEDULER;
    this.nodeIPs = new Set(options.nodeIPs);
    this.nodePortRange = options.nodePortRange ?? DEFAULT_NODE_PORT_RANGE;
  }

  /** Opens the sockets, resolves the IPVS family and makes sure the VIP interface exists. Throws when the kernel has no IPVS. */
  static async open(options: IpvsBackendOptions): Promise<IpvsBackend> {
    const socketOptions = options.receiveTimeoutMs === undefined ? {} : { receiveTimeoutMs: options.receiveTimeoutMs };
    const ipvs = options.transports?.ipvs ?? NetlinkSocket.open('generic', socketOptions);
    let route: NetlinkTransport | undefined;
    try {
      const family = resolveIpvs(ipvs);
      route = options.transports?.route ?? NetlinkSocket.open('route', socketOptions);
      const vipInterface = new VipInterface(route, options.interfaceName ?? DEFAULT_IPVS_INTERFACE, options.interfaceKind ?? 'dummy');
      vipInterface.ensure();
      return new IpvsBackend(ipvs, family, route, vipInterface, options);
    } catch (error) {
      ipvs.close();
      route?.close();
      throw error;
    }
  }

  async sync(rules: ProxyRules): Promise<void> {
    this.assertOpen('sync');
    const desired = ipvsStateFor(rules, [...this.nodeIPs], this.scheduler, this.log);
    this.vipInterface.ensure();
    const bound = new Set(this.vipInterface.addresses());
    const kernel = this.dumpKernel();
    for (const vip of desired.vips) if (!bound.has(vip)) this.vipInterface.bind(vip);
    for (const [key, want] of desired.services) this.reconcileService(key, kernel.get(key), want);
    for (const [key, have] of kernel) {
      if (!desired.services.has(key) && this.owns(key, have.server, bound)) this.deleteService(key, have.server);
    }
    for (const vip of bound) if (!desired.vips.has(vip)) this.vipInterface.unbind(vip);
    this.applied = desired;
    this.log(`ipvs: synced ${desired.services.size} virtual servers, ${desired.vips.size} VIPs`);
  }

  async update(_change: RulesChange, rules: ProxyRules): Promise<void> {
    this.assertOpen('update');
    // The whole desired state against the last applied one: unchanged rules make equal entries, so only what changed is touched.
    const desired = ipvsStateFor(rules, [...this.nodeIPs], this.scheduler, this.log);
    const previous = this.applied;
    for (const vip of desired.vips) if (!previous.vips.has(vip)) this.vipInterface.bind(vip);
    for (const [key, want] of desired.services) this.reconcileService(key, previous.services.get(key), want);
    for (const [key, have] of previous.services) if (!desired.services.has(key)) this.deleteService(key, have.server);
    for (const vip of previous.vips) if (!desired.vips.has(vip)) this.vipInterface.unbind(vip);
    this.applied = desired;
  }

  async verify(): Promise<boolean> {
    this.assertOpen('verify');
    try {
      const problem = this.findDrift();
      if (problem !== undefined) this.log(`ipvs: drift: ${problem}`);
      return problem === undefined;
    } catch (error) {
      this.log(`ipvs: verify failed: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      const bound = new Set(this.vipInterface.addresses());
      for (const [key, have] of this.dumpKernel()) if (this.owns(key, have.server, bound)) this.deleteService(key, have.server);
      if (this.vipInterface.created) this.vipInterface.remove();
      else for (const vip of bound) this.vipInterface.unbind(vip);
    } finally {
      this.applied = { services: new Map(), vips: new Set() };
      this.ipvs.close();
      this.route.close();
    }
  }

  /** The virtual servers and real servers the kernel has, as IPVS lists them. */
  dumpKernel(): KernelState {
    const state: KernelState = new Map();
    for (const message of this.ipvs.request('list IPVS services', (seq) => dumpServicesRequest(this.family, seq))) {
      const server = parseService(message);
      if (server === undefined) continue;
      const reals = new Map<string, RealServer>();
      const key = serviceKeyString(server);
      for (const reply of this.ipvs.request(`list real servers of ${key}`, (seq) => dumpDestinationsRequest(this.family, server, seq))) {
        const real = parseDestination(reply);
        if (real !== undefined) reals.set(realServerKeyString(real), real);
      }
      state.set(key, { server, reals });
    }
    return state;
  }

  /** The first difference between the kernel and the applied state, in words; undefined when they match. */
  private findDrift(): string | undefined {
    const bound = new Set(this.vipInterface.addresses());
    for (const vip of this.applied.vips) if (!bound.has(vip)) return `VIP ${vip} is not bound to ${this.vipInterface.name}`;
    for (const vip of bound) if (!this.applied.vips.has(vip)) return `${vip} on ${this.vipInterface.name} was not bound by the proxy`;
    const kernel = this.dumpKernel();
    for (const [key, want] of this.applied.services) {
      const have = kernel.get(key);
      if (have === undefined) return `virtual server ${key} is missing`;
      if (!sameServer(have.server, want.server)) return `virtual server ${key} has scheduler ${have.server.scheduler}, flags ${have.server.flags}`;
      for (const [realKey, real] of want.reals) {
        const got = have.reals.get(realKey);
        if (got === undefined) return `real server ${realKey} of ${key} is missing`;
        if (!sameReal(got, real)) return `real server ${realKey} of ${key} has weight ${got.weight}, ${got.forward}`;
      }
      for (const realKey of have.reals.keys()) if (!want.reals.has(realKey)) return `real server ${realKey} of ${key} was not programmed by the proxy`;
    }
    for (const [key, have] of kernel) {
      if (!this.applied.services.has(key) && this.owns(key, have.server, bound)) return `virtual server ${key} was not programmed by the proxy`;
    }
    return undefined;
  }

  /** Makes one virtual server as wanted, given what it is now (undefined: absent). Adds before it removes. */
  private reconcileService(key: string, have: { readonly server: VirtualServer; readonly reals: ReadonlyMap<string, RealServer> } | undefined, want: IpvsService): void {
    if (have === undefined) {
      this.ipvs.request(`add virtual server ${key}`, (seq) => newServiceRequest(this.family, want.server, seq));
    } else if (!sameServer(have.server, want.server)) {
      this.ipvs.request(`change virtual server ${key}`, (seq) => setServiceRequest(this.family, want.server, seq));
    }
    const current = have?.reals ?? new Map<string, RealServer>();
    for (const [realKey, real] of want.reals) {
      const got = current.get(realKey);
      if (got === undefined) this.ipvs.request(`add real server ${realKey} to ${key}`, (seq) => newDestinationRequest(this.family, want.server, real, seq));
      else if (!sameReal(got, real)) this.ipvs.request(`change real server ${realKey} of ${key}`, (seq) => setDestinationRequest(this.family, want.server, real, seq));
    }
    for (const [realKey, real] of current) {
      if (want.reals.has(realKey)) continue;
      try {
        this.ipvs.request(`remove real server ${realKey} from ${key}`, (seq) => deleteDestinationRequest(this.family, want.server, real, seq));
      } catch (error) {
        if (!isGone(error)) throw error;
      }
    }
  }

  private deleteService(key: string, server: ServiceKey): void {
    try {
      this.ipvs.request(`delete virtual server ${key}`, (seq) => deleteServiceRequest(this.family, server, seq));
    } catch (error) {
      if (!isGone(error)) throw error;
    }
  }

  /** Whether a virtual server the kernel lists is this backend's to remove. */
  private owns(key: string, server: ServiceKey, bound: ReadonlySet<string>): boolean {
    if (this.applied.services.has(key) || bound.has(server.address) || this.applied.vips.has(server.address)) return true;
    return this.nodeIPs.has(server.address) && server.port >= this.nodePortRange.min && server.port <= this.nodePortRange.max;
  }

  private assertOpen(operation: string): void {
    if (this.closed) throw new Error(`ipvs: ${operation} after close`);
  }
}

function isGone(error: unknown): boolean {
  return error instanceof NetlinkError && (error.errno === ENOENT || error.errno === ESRCH);
}

function resolveIpvs(transport: NetlinkTransport): number {
  try {
    return resolveFamily(transport, IPVS_GENL_NAME).id;
  } catch (error) {
    if (error instanceof NetlinkError && error.errno === ENOENT) throw new Error(NO_IPVS_REASON, { cause: error });
    throw error;
  }
}

/** Whether this kernel can run the IPVS backend: resolves the generic netlink family "IPVS". */
export async function ipvsUsable(): Promise<{ usable: true } | { usable: false; reason: string }> {
  let socket: NetlinkSocket;
  try {
    socket = NetlinkSocket.open('generic');
  } catch (error) {
    return { usable: false, reason: `cannot open a generic netlink socket: ${error instanceof Error ? error.message : String(error)}` };
  }
  try {
    resolveIpvs(socket);
    return { usable: true };
  } catch (error) {
    return { usable: false, reason: error instanceof Error ? error.message : String(error) };
  } finally {
    socket.close();
  }
}
