// The IPVS backend: what it programs for the rules (pure), the VIP
// interface through rtnetlink inside a network namespace of its own, and
// end to end — a Service VIP with two real servers, connected to, both
// answering; hand edits repaired; affinity; no endpoints; close() leaving
// nothing — on kernels that have IPVS (skipped, saying why, elsewhere;
// MAST_REQUIRE_IPVS=1 turns the skip into a failure).
//
// Each namespace scenario runs in a child `ip netns exec NS node`, since a
// netlink socket talks to the namespace of the thread that opened it.

import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ipvsStateFor, ipvsUsable, IpvsBackend } from '../../services/proxy/ipvs.js';
import * as IPVS from '../../services/proxy/ipvs-messages.js';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_CMD_NEWFAMILY,
  GENL_ID_CTRL,
  IFA_LOCAL,
  IFLA_IFNAME,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  NLM_F_MULTI,
  NetlinkError,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  be16Attribute,
  be32Attribute,
  binaryAttribute,
  decodeAttributes,
  decodeGenericMessage,
  decodeMessages,
  encodeAttributes,
  encodeGenericMessage,
  encodeMessage,
  formatIPv4,
  parseIPv4,
  stringAttribute,
  u16Attribute,
  u32Attribute,
  type Attributes,
  type NetlinkAttribute,
  type NetlinkMessage,
} from '../../services/proxy/netlink.js';
import type { NetlinkTransport } from '../../services/proxy/netlink-socket.js';
import { diffRules, type ProxyRules, type ServicePortRule } from '../../services/proxy/rules.js';

const execFileAsync = promisify(execFile);
const moduleUrl = (path: string): string => new URL(`../../services/proxy/${path}`, import.meta.url).href;

function rule(overrides: Partial<ServicePortRule> & Pick<ServicePortRule, 'id'>): ServicePortRule {
  const [namespace = '', rest = ''] = overrides.id.split('/');
  const [name = '', portName = ''] = rest.split(':');
  return { namespace, name, portName, protocol: 'TCP', port: 80, externalIPs: [], backends: [], ...overrides };
}

describe('proxy: ipvs state for the rules', () => {
  it('a virtual server on the cluster IP, each external IP and each node IP at the node port, all with the same masquerading real servers', () => {
    const rules: ProxyRules = {
      services: [
        rule({ id: 'default/web:', clusterIP: '10.96.0.10', externalIPs: ['203.0.113.7'], nodePort: 30080, backends: [{ ip: '10.244.0.5', port: 8080 }, { ip: '10.244.1.9', port: 8080 }] }),
      ],
    };
    const state = ipvsStateFor(rules, ['192.168.1.10', '192.168.1.11']);
    expect([...state.services.keys()]).to.deep.equal(['TCP/10.96.0.10:80', 'TCP/203.0.113.7:80', 'TCP/192.168.1.10:30080', 'TCP/192.168.1.11:30080']);
    expect([...state.vips]).to.deep.equal(['10.96.0.10', '203.0.113.7']);
    for (const service of state.services.values()) {
      expect(service.server.scheduler).to.equal('rr');
      expect(service.server.persistenceTimeoutSeconds).to.equal(undefined);
      expect([...service.reals.values()]).to.deep.equal([
        { address: '10.244.0.5', port: 8080, weight: 1, forward: 'masquerade', upperThreshold: 0, lowerThreshold: 0 },
        { address: '10.244.1.9', port: 8080, weight: 1, forward: 'masquerade', upperThreshold: 0, lowerThreshold: 0 },
      ]);
    }
    expect(state.services.get('TCP/192.168.1.11:30080')?.server).to.deep.equal({ protocol: 'TCP', address: '192.168.1.11', port: 30080, scheduler: 'rr' });
  });

  it('ClientIP affinity is persistence with its timeout; UDP stays UDP; no endpoints keeps the virtual server, empty', () => {
    const rules: ProxyRules = {
      services: [
        rule({ id: 'kube-system/dns:dns', protocol: 'UDP', clusterIP: '10.96.0.10', port: 53 }),
        rule({ id: 'shop/cart:', clusterIP: '10.96.0.20', sessionAffinity: { timeoutSeconds: 10_800 }, backends: [{ ip: '10.244.0.7', port: 80 }] }),
      ],
    };
    const state = ipvsStateFor(rules, [], 'wrr');
    expect(state.services.get('UDP/10.96.0.10:53')?.reals.size).to.equal(0);
    expect(state.services.get('TCP/10.96.0.20:80')?.server).to.deep.equal({ protocol: 'TCP', address: '10.96.0.20', port: 80, scheduler: 'wrr', persistenceTimeoutSeconds: 10_800 });
  });

  it('an address two rules claim goes to the first by id, and is logged; non-IPv4 addresses are skipped and logged; headless NodePorts bind no VIP', () => {
    const lines: string[] = [];
    const rules: ProxyRules = {
      services: [
        rule({ id: 'a/first:', clusterIP: '10.96.0.1', externalIPs: ['203.0.113.7'], backends: [{ ip: '10.244.0.1', port: 80 }] }),
        rule({ id: 'b/second:', clusterIP: 'fd00::10', externalIPs: ['203.0.113.7'], backends: [{ ip: '10.244.0.2', port: 80 }] }),
        rule({ id: 'c/headless:', nodePort: 30001 }),
      ],
    };
    const state = ipvsStateFor(rules, ['192.168.1.10'], 'rr', (line) => lines.push(line));
    expect([...state.services.get('TCP/203.0.113.7:80')!.reals.keys()]).to.deep.equal(['10.244.0.1:80']);
    expect(state.services.has('TCP/192.168.1.10:30001')).to.equal(true);
    expect([...state.vips]).to.deep.equal(['10.96.0.1', '203.0.113.7']);
    expect(lines).to.deep.equal(['ipvs: b/second:: fd00::10 is not IPv4, skipped', 'ipvs: TCP/203.0.113.7:80 is claimed by a/first: and b/second:; a/first: keeps it']);
  });
});

// ---- a fake kernel: IPVS and rtnetlink as the kernel answers them ----------

const FAMILY = 0x25;
const ENOENT = 2;
const ESRCH = 3;
const EEXIST = 17;
const ENODEV = 19;
const EINVAL = 22;
const EADDRNOTAVAIL = 99;
const COMMAND_NAMES: Record<number, string> = { 1: 'NEW_SERVICE', 2: 'SET_SERVICE', 3: 'DEL_SERVICE', 5: 'NEW_DEST', 6: 'SET_DEST', 7: 'DEL_DEST' };
const PROTOCOL_NAMES: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

interface FakeReal { address: string; port: number; forward: number; weight: number; upper: number; lower: number }
interface FakeService { protocol: number; address: string; port: number; scheduler: string; flags: number; timeout: number; netmask: number; reals: Map<string, FakeReal> }

function inet(address: string): Uint8Array {
  const bytes = new Uint8Array(16);
  bytes.set(parseIPv4(address));
  return bytes;
}

/** As the kernel nests (nla_nest_start_noflag): no NLA_F_NESTED. */
function plainNest(type: number, children: NetlinkAttribute[]): NetlinkAttribute {
  return { type, payload: encodeAttributes(children) };
}

function reply(cmd: number, attribute: NetlinkAttribute): NetlinkMessage[] {
  return decodeMessages(encodeGenericMessage({ family: FAMILY, flags: NLM_F_MULTI, seq: 1, cmd, version: 1, attributes: [attribute] }));
}

/** IPVS as ip_vs_ctl.c handles it: the same required attributes, the same errnos. Records every change it is asked for. */
class FakeIpvs implements NetlinkTransport {
  readonly services = new Map<string, FakeService>();
  readonly changes: string[] = [];
  closed = false;

  constructor(private readonly present = true) {}

  service(protocol: string, address: string, port: number, reals: Array<[string, number]> = [], scheduler = 'rr'): void {
    const number = Number(Object.keys(PROTOCOL_NAMES).find((key) => PROTOCOL_NAMES[Number(key)] === protocol));
    const realMap = new Map(reals.map(([realAddress, realPort]) => [`${realAddress}:${realPort}`, { address: realAddress, port: realPort, forward: 0, weight: 1, upper: 0, lower: 0 }]));
    this.services.set(`${protocol}/${address}:${port}`, { protocol: number, address, port, scheduler, flags: 0, timeout: 0, netmask: 0xffffffff, reals: realMap });
  }

  /** Each service and its real servers, for comparing: "TCP/10.96.0.10:80 rr [persistent 60]" → ["10.244.0.5:8080 w1 masq"]. */
  table(): Record<string, string[]> {
    const table: Record<string, string[]> = {};
    for (const [key, service] of [...this.services].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const label = `${key} ${service.scheduler}${service.flags & IPVS.IP_VS_SVC_F_PERSISTENT ? ` persistent ${service.timeout}` : ''}`;
      table[label] = [...service.reals.values()].map((real) => `${real.address}:${real.port} w${real.weight} ${real.forward === IPVS.IP_VS_CONN_F_MASQ ? 'masq' : real.forward}`).sort();
    }
    return table;
  }

  request(operation: string, build: (seq: number) => Uint8Array): NetlinkMessage[] {
    const [message] = decodeMessages(build(1));
    if (message === undefined) throw new Error('no message');
    const { cmd, attributes } = decodeGenericMessage(message);
    if (message.type === GENL_ID_CTRL) {
      if (!this.present || attributes.string(CTRL_ATTR_FAMILY_NAME) !== 'IPVS') throw new NetlinkError(operation, ENOENT);
      return decodeMessages(encodeGenericMessage({ family: GENL_ID_CTRL, flags: 0, seq: 1, cmd: CTRL_CMD_NEWFAMILY, version: 2, attributes: [u16Attribute(CTRL_ATTR_FAMILY_ID, FAMILY), stringAttribute(CTRL_ATTR_FAMILY_NAME, 'IPVS')] }));
    }
    expect(message.type).to.equal(FAMILY);
    if (cmd === IPVS.IPVS_CMD_GET_SERVICE) return [...this.services.values()].flatMap((service) => reply(IPVS.IPVS_CMD_NEW_SERVICE, this.serviceAttribute(service)));
    const svc = attributes.nested(IPVS.IPVS_CMD_ATTR_SERVICE);
    if (svc === undefined || svc.u16(IPVS.IPVS_SVC_ATTR_AF) !== 2) throw new NetlinkError(operation, EINVAL);
    const key = `${PROTOCOL_NAMES[svc.u16(IPVS.IPVS_SVC_ATTR_PROTOCOL) ?? 0]}/${formatIPv4(svc.binary(IPVS.IPVS_SVC_ATTR_ADDR)!)}:${svc.be16(IPVS.IPVS_SVC_ATTR_PORT)}`;
    const existing = this.services.get(key);
    if (cmd === IPVS.IPVS_CMD_GET_DEST) return [...(existing?.reals.values() ?? [])].flatMap((real) => reply(IPVS.IPVS_CMD_NEW_DEST, this.destinationAttribute(real)));
    const dest = attributes.nested(IPVS.IPVS_CMD_ATTR_DEST);
    const realKey = dest === undefined ? undefined : `${formatIPv4(dest.binary(IPVS.IPVS_DEST_ATTR_ADDR)!)}:${dest.be16(IPVS.IPVS_DEST_ATTR_PORT)}`;
    this.changes.push(`${COMMAND_NAMES[cmd]} ${key}${realKey === undefined ? '' : ` ${realKey}`}`);
    if (cmd === IPVS.IPVS_CMD_NEW_SERVICE) {
      if (existing !== undefined) throw new NetlinkError(operation, EEXIST);
      this.services.set(key, { ...this.serviceFields(operation, svc), protocol: svc.u16(IPVS.IPVS_SVC_ATTR_PROTOCOL)!, address: formatIPv4(svc.binary(IPVS.IPVS_SVC_ATTR_ADDR)!), port: svc.be16(IPVS.IPVS_SVC_ATTR_PORT)!, reals: new Map() });
      return [];
    }
    if (existing === undefined) throw new NetlinkError(operation, ESRCH);
    if (cmd === IPVS.IPVS_CMD_SET_SERVICE) Object.assign(existing, this.serviceFields(operation, svc));
    else if (cmd === IPVS.IPVS_CMD_DEL_SERVICE) this.services.delete(key);
    else if (dest === undefined || realKey === undefined) throw new NetlinkError(operation, EINVAL);
    else if (cmd === IPVS.IPVS_CMD_DEL_DEST) {
      if (!existing.reals.delete(realKey)) throw new NetlinkError(operation, ENOENT);
    } else {
      if (cmd === IPVS.IPVS_CMD_NEW_DEST && existing.reals.has(realKey)) throw new NetlinkError(operation, EEXIST);
      if (cmd === IPVS.IPVS_CMD_SET_DEST && !existing.reals.has(realKey)) throw new NetlinkError(operation, ENOENT);
      const [forward, weight, upper, lower] = [IPVS.IPVS_DEST_ATTR_FWD_METHOD, IPVS.IPVS_DEST_ATTR_WEIGHT, IPVS.IPVS_DEST_ATTR_U_THRESH, IPVS.IPVS_DEST_ATTR_L_THRESH].map((type) => dest.u32(type));
      if (forward === undefined || weight === undefined || upper === undefined || lower === undefined) throw new NetlinkError(operation, EINVAL);
      existing.reals.set(realKey, { address: formatIPv4(dest.binary(IPVS.IPVS_DEST_ATTR_ADDR)!), port: dest.be16(IPVS.IPVS_DEST_ATTR_PORT)!, forward, weight, upper, lower });
    }
    return [];
  }

  close(): void {
    this.closed = true;
  }

  /** ip_vs_genl_parse_service with full_entry: all four or EINVAL; flags = (old & ~mask) | (new & mask). */
  private serviceFields(operation: string, svc: Attributes): Pick<FakeService, 'scheduler' | 'flags' | 'timeout' | 'netmask'> {
    const scheduler = svc.string(IPVS.IPVS_SVC_ATTR_SCHED_NAME);
    const flags = svc.binary(IPVS.IPVS_SVC_ATTR_FLAGS);
    const timeout = svc.u32(IPVS.IPVS_SVC_ATTR_TIMEOUT);
    const netmask = svc.be32(IPVS.IPVS_SVC_ATTR_NETMASK);
    if (scheduler === undefined || flags?.length !== 8 || timeout === undefined || netmask === undefined) throw new NetlinkError(operation, EINVAL);
    const view = new DataView(flags.buffer, flags.byteOffset, 8);
    return { scheduler, flags: view.getUint32(0, true) & view.getUint32(4, true), timeout, netmask };
  }

  private serviceAttribute(service: FakeService): NetlinkAttribute {
    const flags = new Uint8Array(8);
    new DataView(flags.buffer).setUint32(0, service.flags | IPVS.IP_VS_SVC_F_HASHED, true);
    new DataView(flags.buffer).setUint32(4, 0xffffffff, true);
    return plainNest(IPVS.IPVS_CMD_ATTR_SERVICE, [
      u16Attribute(IPVS.IPVS_SVC_ATTR_AF, 2),
      u16Attribute(IPVS.IPVS_SVC_ATTR_PROTOCOL, service.protocol),
      binaryAttribute(IPVS.IPVS_SVC_ATTR_ADDR, inet(service.address)),
      be16Attribute(IPVS.IPVS_SVC_ATTR_PORT, service.port),
      stringAttribute(IPVS.IPVS_SVC_ATTR_SCHED_NAME, service.scheduler),
      binaryAttribute(IPVS.IPVS_SVC_ATTR_FLAGS, flags),
      u32Attribute(IPVS.IPVS_SVC_ATTR_TIMEOUT, service.timeout),
      be32Attribute(IPVS.IPVS_SVC_ATTR_NETMASK, service.netmask),
      plainNest(IPVS.IPVS_SVC_ATTR_STATS, [u32Attribute(1, 0)]),
    ]);
  }

  private destinationAttribute(real: FakeReal): NetlinkAttribute {
    return plainNest(IPVS.IPVS_CMD_ATTR_DEST, [
      binaryAttribute(IPVS.IPVS_DEST_ATTR_ADDR, inet(real.address)),
      be16Attribute(IPVS.IPVS_DEST_ATTR_PORT, real.port),
      u32Attribute(IPVS.IPVS_DEST_ATTR_FWD_METHOD, real.forward),
      u32Attribute(IPVS.IPVS_DEST_ATTR_WEIGHT, real.weight),
      u32Attribute(IPVS.IPVS_DEST_ATTR_U_THRESH, real.upper),
      u32Attribute(IPVS.IPVS_DEST_ATTR_L_THRESH, real.lower),
      u32Attribute(IPVS.IPVS_DEST_ATTR_ACTIVE_CONNS, 0),
      u16Attribute(IPVS.IPVS_DEST_ATTR_ADDR_FAMILY, 2),
    ]);
  }
}

/** Links and their IPv4 addresses, as rtnetlink answers. */
class FakeRoute implements NetlinkTransport {
  readonly links = new Map<string, { index: number; kind: string; addresses: string[] }>();
  closed = false;
  private nextIndex = 2;

  link(name: string, kind: string, addresses: string[] = []): void {
    this.links.set(name, { index: this.nextIndex++, kind, addresses });
  }

  request(operation: string, build: (seq: number) => Uint8Array): NetlinkMessage[] {
    const [message] = decodeMessages(build(1));
    if (message === undefined) throw new Error('no message');
    const view = new DataView(message.payload.buffer, message.payload.byteOffset, message.payload.length);
    const linkAttributes = (): Attributes => decodeAttributes(message.payload.subarray(16));
    const byIndex = (index: number): [string, { index: number; kind: string; addresses: string[] }] | undefined => [...this.links].find(([, link]) => link.index === index);
    switch (message.type) {
      case RTM_GETLINK: {
        const name = linkAttributes().string(IFLA_IFNAME) ?? '';
        const link = this.links.get(name);
        if (link === undefined) throw new NetlinkError(operation, ENODEV);
        const ifinfomsg = new Uint8Array(16);
        new DataView(ifinfomsg.buffer).setInt32(4, link.index, true);
        return decodeMessages(encodeMessage({ type: RTM_NEWLINK, flags: 0, seq: 1, pid: 0, payload: Uint8Array.from([...ifinfomsg, ...encodeAttributes([stringAttribute(IFLA_IFNAME, name)])]) }));
      }
      case RTM_NEWLINK: {
        const name = linkAttributes().string(IFLA_IFNAME) ?? '';
        if (this.links.has(name)) throw new NetlinkError(operation, EEXIST);
        this.link(name, linkAttributes().nested(IFLA_LINKINFO)?.string(IFLA_INFO_KIND) ?? '');
        return [];
      }
      case RTM_DELLINK: {
        const found = byIndex(view.getInt32(4, true));
        if (found === undefined) throw new NetlinkError(operation, ENODEV);
        this.links.delete(found[0]);
        return [];
      }
      case RTM_NEWADDR:
      case RTM_DELADDR: {
        const found = byIndex(view.getUint32(4, true));
        if (found === undefined) throw new NetlinkError(operation, ENODEV);
        expect(view.getUint8(1)).to.equal(32);
        const address = formatIPv4(decodeAttributes(message.payload.subarray(8)).binary(IFA_LOCAL)!);
        const addresses = found[1].addresses;
        if (message.type === RTM_NEWADDR) {
          if (!addresses.includes(address)) addresses.push(address);
        } else {
          if (!addresses.includes(address)) throw new NetlinkError(operation, EADDRNOTAVAIL);
          addresses.splice(addresses.indexOf(address), 1);
        }
        return [];
      }
      case RTM_GETADDR:
        return [...this.links.values()].flatMap((link) =>
          link.addresses.flatMap((address) => {
            const ifaddrmsg = Uint8Array.from([2, 32, 0, 0, link.index, 0, 0, 0]);
            return decodeMessages(encodeMessage({ type: RTM_NEWADDR, flags: NLM_F_MULTI, seq: 1, pid: 0, payload: Uint8Array.from([...ifaddrmsg, ...encodeAttributes([binaryAttribute(IFA_LOCAL, parseIPv4(address))])]) }));
          }),
        );
      default:
        throw new NetlinkError(operation, EINVAL);
    }
  }

  close(): void {
    this.closed = true;
  }
}

describe('proxy: the IPVS backend against a fake kernel', () => {
  const b5 = { ip: '10.244.0.5', port: 8080 };
  const b6 = { ip: '10.244.0.6', port: 8080 };
  const web = rule({ id: 'default/web:', clusterIP: '10.96.0.10', externalIPs: ['203.0.113.7'], nodePort: 30080, backends: [b5, b6] });
  const dns = rule({ id: 'kube-system/dns:dns', protocol: 'UDP', clusterIP: '10.96.0.53', port: 53 });
  const nodeIPs = ['192.168.1.10'];
  const webTable = (reals: string[], extra = ''): Record<string, string[]> => ({
    [`TCP/10.96.0.10:80 rr${extra}`]: reals,
    [`TCP/192.168.1.10:30080 rr${extra}`]: reals,
    [`TCP/203.0.113.7:80 rr${extra}`]: reals,
  });
  const twoReals = ['10.244.0.5:8080 w1 masq', '10.244.0.6:8080 w1 masq'];

  async function open(ipvs: FakeIpvs, route: FakeRoute): Promise<IpvsBackend> {
    return IpvsBackend.open({ nodeIPs, transports: { ipvs, route } });
  }

  it('sync programs every address of every rule, removes what a previous run left, and leaves what is not the proxy\'s', async () => {
    const ipvs = new FakeIpvs();
    const route = new FakeRoute();
    route.link('eth0', 'veth', ['192.168.1.10']);
    route.link('mast-ipvs0', 'dummy', ['10.96.9.9']);
    ipvs.service('TCP', '10.96.9.9', 80, [['10.244.3.3', 80]]); // on a VIP a previous run bound
    ipvs.service('TCP', '192.168.1.10', 31000, [['10.244.3.3', 80]]); // a node port of a previous run
    ipvs.service('TCP', '192.168.1.10', 22); // not a node port: someone else's
    ipvs.service('TCP', '10.0.0.1', 80, [['10.0.0.2', 80]]); // someone else's
    const backend = await open(ipvs, route);
    await backend.sync({ services: [web, dns] });
    expect(ipvs.table()).to.deep.equal({
      'TCP/10.0.0.1:80 rr': ['10.0.0.2:80 w1 masq'],
      'TCP/192.168.1.10:22 rr': [],
      ...webTable(twoReals),
      'UDP/10.96.0.53:53 rr': [],
    });
    expect(route.links.get('mast-ipvs0')?.addresses.sort()).to.deep.equal(['10.96.0.10', '10.96.0.53', '203.0.113.7']);
    expect(await backend.verify()).to.equal(true);
    await backend.close();
    // The interface was there before: only the addresses go.
    expect(route.links.get('mast-ipvs0')?.addresses).to.deep.equal([]);
    expect(Object.keys(ipvs.table())).to.deep.equal(['TCP/10.0.0.1:80 rr', 'TCP/192.168.1.10:22 rr']);
    expect([ipvs.closed, route.closed]).to.deep.equal([true, true]);
    await backend.close();
    await backend.sync({ services: [] }).then(
      () => expect.fail('synced after close'),
      (error: Error) => expect(error.message).to.match(/after close/),
    );
  });

  it('update touches only what changed, adding before removing', async () => {
    const ipvs = new FakeIpvs();
    const route = new FakeRoute();
    const backend = await open(ipvs, route);
    expect(route.links.get('mast-ipvs0')?.kind).to.equal('dummy');
    const first: ProxyRules = { services: [web] };
    await backend.sync(first);
    ipvs.changes.length = 0;

    const moreBackends: ProxyRules = { services: [{ ...web, backends: [b5, b6, { ip: '10.244.0.7', port: 8080 }] }] };
    await backend.update(diffRules(first, moreBackends), moreBackends);
    expect(ipvs.changes).to.deep.equal(['NEW_DEST TCP/10.96.0.10:80 10.244.0.7:8080', 'NEW_DEST TCP/203.0.113.7:80 10.244.0.7:8080', 'NEW_DEST TCP/192.168.1.10:30080 10.244.0.7:8080']);

    ipvs.changes.length = 0;
    const sticky: ProxyRules = { services: [{ ...web, sessionAffinity: { timeoutSeconds: 60 } }] };
    await backend.update(diffRules(moreBackends, sticky), sticky);
    expect(ipvs.changes).to.deep.equal(['SET_SERVICE TCP/10.96.0.10:80', 'DEL_DEST TCP/10.96.0.10:80 10.244.0.7:8080', 'SET_SERVICE TCP/203.0.113.7:80', 'DEL_DEST TCP/203.0.113.7:80 10.244.0.7:8080', 'SET_SERVICE TCP/192.168.1.10:30080', 'DEL_DEST TCP/192.168.1.10:30080 10.244.0.7:8080']);
    expect(ipvs.table()).to.deep.equal(webTable(twoReals, ' persistent 60'));

    ipvs.changes.length = 0;
    await backend.update(diffRules(sticky, sticky), sticky);
    expect(ipvs.changes).to.deep.equal([]);

    const swapped: ProxyRules = { services: [dns] };
    await backend.update(diffRules(sticky, swapped), swapped);
    expect(ipvs.changes).to.deep.equal(['NEW_SERVICE UDP/10.96.0.53:53', 'DEL_SERVICE TCP/10.96.0.10:80', 'DEL_SERVICE TCP/203.0.113.7:80', 'DEL_SERVICE TCP/192.168.1.10:30080']);
    expect(route.links.get('mast-ipvs0')?.addresses).to.deep.equal(['10.96.0.53']);
    expect(await backend.verify()).to.equal(true);

    await backend.close();
    expect(route.links.has('mast-ipvs0')).to.equal(false);
    expect(ipvs.table()).to.deep.equal({});
  });

  it('verify sees each kind of hand edit, and sync repairs exactly it', async () => {
    const ipvs = new FakeIpvs();
    const route = new FakeRoute();
    const backend = await open(ipvs, route);
    const rules: ProxyRules = { services: [web] };
    await backend.sync(rules);
    const edits: Array<[string, () => void, string[]]> = [
      ['a real server removed', () => ipvs.services.get('TCP/10.96.0.10:80')!.reals.delete('10.244.0.6:8080'), ['NEW_DEST TCP/10.96.0.10:80 10.244.0.6:8080']],
      ['the scheduler changed', () => void (ipvs.services.get('TCP/203.0.113.7:80')!.scheduler = 'wlc'), ['SET_SERVICE TCP/203.0.113.7:80']],
      ['a weight changed', () => void (ipvs.services.get('TCP/203.0.113.7:80')!.reals.get('10.244.0.5:8080')!.weight = 5), ['SET_DEST TCP/203.0.113.7:80 10.244.0.5:8080']],
      ['a real server added', () => ipvs.services.get('TCP/192.168.1.10:30080')!.reals.set('10.9.9.9:80', { address: '10.9.9.9', port: 80, forward: 0, weight: 1, upper: 0, lower: 0 }), ['DEL_DEST TCP/192.168.1.10:30080 10.9.9.9:80']],
      ['a service added on a VIP', () => ipvs.service('TCP', '10.96.0.10', 443), ['DEL_SERVICE TCP/10.96.0.10:443']],
      ['a service removed', () => ipvs.services.delete('TCP/10.96.0.10:80'), ['NEW_SERVICE TCP/10.96.0.10:80', 'NEW_DEST TCP/10.96.0.10:80 10.244.0.5:8080', 'NEW_DEST TCP/10.96.0.10:80 10.244.0.6:8080']],
      ['a VIP unbound', () => route.links.get('mast-ipvs0')!.addresses.splice(0, 1), []],
      ['the interface deleted', () => route.links.delete('mast-ipvs0'), []],
    ];
    for (const [what, edit, repairs] of edits) {
      edit();
      expect(await backend.verify(), what).to.equal(false);
      ipvs.changes.length = 0;
      await backend.sync(rules);
      expect(ipvs.changes, what).to.deep.equal(repairs);
      expect(await backend.verify(), `${what}, repaired`).to.equal(true);
      expect(ipvs.table(), what).to.deep.equal(webTable(twoReals));
      expect(route.links.get('mast-ipvs0')?.addresses.sort(), what).to.deep.equal(['10.96.0.10', '203.0.113.7']);
    }
    await backend.close();
  });

  it('a kernel without IPVS: open() fails with the reason and closes what it opened', async () => {
    const ipvs = new FakeIpvs(false);
    const route = new FakeRoute();
    await open(ipvs, route).then(
      () => expect.fail('opened'),
      (error: Error) => expect(error.message).to.equal('the kernel has no IPVS (generic netlink family "IPVS" not found; modprobe ip_vs)'),
    );
    expect(ipvs.closed).to.equal(true);
    expect(route.links.size).to.equal(0);
  });
});

/** Runs an ES module in a child inside the namespace; its last stdout line is JSON. */
async function runInNamespace(namespace: string, code: string): Promise<unknown> {
  try {
    const { stdout } = await execFileAsync('ip', ['netns', 'exec', namespace, process.execPath, '--input-type=module', '-e', code], { timeout: 60_000 });
    return JSON.parse(stdout.trim().split('\n').pop() ?? 'null');
  } catch (error) {
    const detail = error as { stderr?: string; message?: string };
    throw new Error(`child in ${namespace} failed: ${detail.stderr ?? detail.message ?? String(error)}`);
  }
}

async function ip(...args: string[]): Promise<string> {
  return (await execFileAsync('ip', args)).stdout;
}

/** Child code: "dummy" where the kernel has the driver, else "bridge" (an empty bridge holds local addresses the same way). */
const CHOOSE_KIND = `
const chooseKind = (route) => {
  const probe = new VipInterface(route, 'mast-probe0', 'dummy');
  try { probe.ensure(); probe.remove(); return 'dummy'; }
  catch (error) { if (!/no "dummy" link type/.test(error.message)) throw error; return 'bridge'; }
};`;

async function namespaceUsable(): Promise<string | undefined> {
  try {
    await execFileAsync('ip', ['netns', 'list']);
    return process.getuid?.() === 0 ? undefined : 'needs root';
  } catch (error) {
    return `no ip netns: ${error instanceof Error ? error.message : String(error)}`;
  }
}

describe('proxy: the VIP interface, through rtnetlink, in a network namespace', function () {
  this.timeout(60_000);
  const namespace = `mast-vip-test-${process.pid}`;

  before(async function () {
    const problem = await namespaceUsable();
    if (problem !== undefined) {
      console.log(`      (skipped: ${problem})`);
      this.skip();
    }
    await ip('netns', 'add', namespace);
  });

  after(async () => {
    await ip('netns', 'del', namespace).catch(() => undefined);
  });

  it('creates the link, binds /32 VIPs idempotently, lists and unbinds them, and deletes the link', async () => {
    const result = (await runInNamespace(
      namespace,
      `import { NetlinkSocket } from '${moduleUrl('netlink-socket.js')}';
       import { VipInterface } from '${moduleUrl('ipvs.js')}';
       ${CHOOSE_KIND}
       const route = NetlinkSocket.open('route');
       const kind = chooseKind(route);
       const vip = new VipInterface(route, 'mast-ipvs0', kind);
       const index = vip.ensure();
       const created = vip.created;
       vip.bind('10.96.0.10'); vip.bind('10.96.0.11'); vip.bind('10.96.0.11');
       const afterBind = vip.addresses();
       const again = new VipInterface(route, 'mast-ipvs0', kind);
       const sameIndex = again.ensure() === index;
       vip.unbind('10.96.0.10'); vip.unbind('10.96.0.10');
       console.log(JSON.stringify({ kind, created, againCreated: again.created, sameIndex, afterBind, afterUnbind: vip.addresses() }));
       route.close();`,
    )) as { kind: string; created: boolean; againCreated: boolean; sameIndex: boolean; afterBind: string[]; afterUnbind: string[] };
    if (result.kind !== 'dummy') console.log(`      (this kernel has no dummy link type; the test used a ${result.kind})`);
    expect(result).to.deep.include({ created: true, againCreated: false, sameIndex: true, afterBind: ['10.96.0.10', '10.96.0.11'], afterUnbind: ['10.96.0.11'] });
    // iproute2's view, independently of our parsing.
    const shown = JSON.parse(await ip('-n', namespace, '-j', 'addr', 'show', 'dev', 'mast-ipvs0')) as Array<{ link_type?: string; addr_info: Array<{ local: string; prefixlen: number }> }>;
    expect(shown[0]?.addr_info.map((address) => `${address.local}/${address.prefixlen}`)).to.deep.equal(['10.96.0.11/32']);
    const details = await ip('-n', namespace, '-d', 'link', 'show', 'mast-ipvs0');
    expect(details).to.include(`\n    ${result.kind} `);

    const removed = (await runInNamespace(
      namespace,
      `import { NetlinkSocket } from '${moduleUrl('netlink-socket.js')}';
       import { VipInterface } from '${moduleUrl('ipvs.js')}';
       const route = NetlinkSocket.open('route');
       const vip = new VipInterface(route, 'mast-ipvs0', '${result.kind}');
       vip.remove(); vip.remove();
       console.log(JSON.stringify({ found: vip.find() ?? null, addresses: vip.addresses() }));
       route.close();`,
    )) as { found: number | null; addresses: string[] };
    expect(removed).to.deep.equal({ found: null, addresses: [] });
    expect(await ip('-n', namespace, '-br', 'link')).to.not.include('mast-ipvs0');
  });
});

describe('proxy: the IPVS backend on a kernel without IPVS', () => {
  it('open() fails with the reason, and creates no interface', async function () {
    if ((await ipvsUsable()).usable) this.skip();
    await IpvsBackend.open({ nodeIPs: [], interfaceName: 'mast-ipvs-t9' }).then(
      () => expect.fail('opened without IPVS'),
      (error: Error) => expect(error.message).to.equal('the kernel has no IPVS (generic netlink family "IPVS" not found; modprobe ip_vs)'),
    );
    expect(await ip('-br', 'link')).to.not.include('mast-ipvs-t9');
  });
});

describe('proxy: IPVS end to end', function () {
  this.timeout(120_000);
  const namespace = `mast-ipvs-test-${process.pid}`;
  let created = false;

  before(async function () {
    const ipvs = await ipvsUsable();
    const problem = ipvs.usable ? await namespaceUsable() : ipvs.reason;
    if (problem !== undefined) {
      if (process.env.MAST_REQUIRE_IPVS === '1') throw new Error(`MAST_REQUIRE_IPVS=1 but: ${problem}`);
      console.log(`      (skipped: ${problem})`);
      this.skip();
    }
    await ip('netns', 'add', namespace);
    created = true;
    await ip('-n', namespace, 'link', 'set', 'lo', 'up');
  });

  after(async () => {
    if (created) await ip('netns', 'del', namespace).catch(() => undefined);
  });

  it('a VIP with two real servers: both get traffic; hand edits are seen and repaired; affinity sticks; no endpoints refuse; close() leaves nothing', async () => {
    const result = (await runInNamespace(
      namespace,
      `import net from 'node:net';
       import { NetlinkSocket } from '${moduleUrl('netlink-socket.js')}';
       import { IpvsBackend, VipInterface } from '${moduleUrl('ipvs.js')}';
       import { deleteDestinationRequest, dumpServicesRequest } from '${moduleUrl('ipvs-messages.js')}';
       import { diffRules } from '${moduleUrl('rules.js')}';
       ${CHOOSE_KIND}
       const route = NetlinkSocket.open('route');
       const kind = chooseKind(route);
       const pods = new VipInterface(route, 'mast-pods0', kind);
       const podIPs = ['10.244.0.5', '10.244.0.6'];
       for (const podIP of podIPs) pods.bind(podIP);
       const servers = await Promise.all(podIPs.map((podIP) => new Promise((resolve, reject) => {
         const server = net.createServer((connection) => connection.end(podIP));
         server.once('error', reject);
         server.listen(8080, podIP, () => resolve(server));
       })));
       const ask = () => new Promise((resolve) => {
         let data = '';
         const socket = net.connect({ host: '10.96.0.10', port: 80, timeout: 3000 });
         socket.on('data', (chunk) => { data += chunk; });
         socket.on('end', () => resolve(data));
         socket.on('timeout', () => { socket.destroy(); resolve('error:timeout'); });
         socket.on('error', (error) => resolve('error:' + error.code));
       });
       const askMany = async (count) => { const answers = []; for (let i = 0; i < count; i++) answers.push(await ask()); return answers; };
       const rules = (backends, extra = {}) => ({ services: [{ id: 'default/web:', namespace: 'default', name: 'web', portName: '', protocol: 'TCP', clusterIP: '10.96.0.10', port: 80, externalIPs: [], backends, ...extra }] });
       const two = rules(podIPs.map((podIP) => ({ ip: podIP, port: 8080 })));
       const backend = await IpvsBackend.open({ nodeIPs: [], interfaceKind: kind });
       await backend.sync(two);
       const roundRobin = await askMany(6);
       const reals = (key) => [...(backend.dumpKernel().get(key)?.reals.keys() ?? [])].sort();
       const realsAfterSync = reals('TCP/10.96.0.10:80');
       const verified = await backend.verify();
       const genl = NetlinkSocket.open('generic');
       const family = genl.resolveFamily('IPVS').id;
       genl.request('hand edit', (seq) => deleteDestinationRequest(family, { protocol: 'TCP', address: '10.96.0.10', port: 80 }, { address: '10.244.0.6', port: 8080 }, seq));
       const verifiedAfterEdit = await backend.verify();
       await backend.sync(two);
       const verifiedAfterRepair = await backend.verify();
       const realsAfterRepair = reals('TCP/10.96.0.10:80');
       const sticky = rules(two.services[0].backends, { sessionAffinity: { timeoutSeconds: 60 } });
       await backend.update(diffRules(two, sticky), sticky);
       const persistent = backend.dumpKernel().get('TCP/10.96.0.10:80')?.server.persistenceTimeoutSeconds ?? null;
       const affinity = await askMany(4);
       const none = rules([]);
       await backend.update(diffRules(sticky, none), none);
       const realsWithNone = reals('TCP/10.96.0.10:80');
       const servicesWithNone = [...backend.dumpKernel().keys()];
       const noEndpoints = await ask();
       await backend.close();
       const servicesAfterClose = genl.request('list', (seq) => dumpServicesRequest(family, seq)).length;
       const interfaceAfterClose = new VipInterface(route, 'mast-ipvs0', kind).find() ?? null;
       for (const server of servers) server.close();
       pods.remove();
       genl.close();
       route.close();
       console.log(JSON.stringify({ kind, roundRobin, realsAfterSync, verified, verifiedAfterEdit, verifiedAfterRepair, realsAfterRepair, persistent, affinity, realsWithNone, servicesWithNone, noEndpoints, servicesAfterClose, interfaceAfterClose }));`,
    )) as Record<string, unknown>;
    expect(new Set(result.roundRobin as string[])).to.deep.equal(new Set(['10.244.0.5', '10.244.0.6']));
    expect(result).to.deep.include({
      realsAfterSync: ['10.244.0.5:8080', '10.244.0.6:8080'],
      verified: true,
      verifiedAfterEdit: false,
      verifiedAfterRepair: true,
      realsAfterRepair: ['10.244.0.5:8080', '10.244.0.6:8080'],
      persistent: 60,
      realsWithNone: [],
      servicesWithNone: ['TCP/10.96.0.10:80'],
      servicesAfterClose: 0,
      interfaceAfterClose: null,
    });
    expect(new Set(result.affinity as string[]).size).to.equal(1);
    expect(result.noEndpoints).to.match(/^error:/);
  });
});
