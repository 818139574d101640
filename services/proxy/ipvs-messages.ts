// The IPVS generic-netlink family (include/uapi/linux/ip_vs.h, handled by
// net/netfilter/ipvs/ip_vs_ctl.c): the messages that add, change, delete
// and list virtual servers and their real servers, and the parsing of the
// kernel's answers into plain objects. Pure bytes: netlink-socket.ts sends
// them, ipvs.ts decides which. IPv4 only, as the proxy's rules are.
//
// What the kernel requires (ip_vs_genl_parse_service / _parse_dest):
// a service is identified by AF + PROTOCOL + ADDR + PORT; NEW/SET_SERVICE
// also need SCHED_NAME, FLAGS, TIMEOUT and NETMASK, all four, or EINVAL;
// NEW/SET_DEST need ADDR + PORT + FWD_METHOD + WEIGHT + U_THRESH + L_THRESH.
// Ports (and the netmask) are big endian; AF and PROTOCOL are host u16.

import {
  AF_INET,
  type Attributes,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  type NetlinkAttribute,
  type NetlinkMessage,
  be16Attribute,
  be32Attribute,
  binaryAttribute,
  decodeGenericMessage,
  encodeGenericMessage,
  formatIPv4,
  nestedAttribute,
  parseIPv4,
  stringAttribute,
  u16Attribute,
  u32Attribute,
} from './netlink.js';
import type { Protocol } from './rules.js';

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

// enum { IPVS_CMD_UNSPEC = 0, ... }
export const IPVS_CMD_NEW_SERVICE = 1;
export const IPVS_CMD_SET_SERVICE = 2;
export const IPVS_CMD_DEL_SERVICE = 3;
export const IPVS_CMD_GET_SERVICE = 4;
export const IPVS_CMD_NEW_DEST = 5;
export const IPVS_CMD_SET_DEST = 6;
export const IPVS_CMD_DEL_DEST = 7;
export const IPVS_CMD_GET_DEST = 8;
export const IPVS_CMD_NEW_DAEMON = 9;
export const IPVS_CMD_DEL_DAEMON = 10;
export const IPVS_CMD_GET_DAEMON = 11;
export const IPVS_CMD_SET_CONFIG = 12;
export const IPVS_CMD_GET_CONFIG = 13;
export const IPVS_CMD_SET_INFO = 14;
export const IPVS_CMD_GET_INFO = 15;
export const IPVS_CMD_ZERO = 16;
export const IPVS_CMD_FLUSH = 17;

// First-level attributes.
export const IPVS_CMD_ATTR_SERVICE = 1;
export const IPVS_CMD_ATTR_DEST = 2;

// Inside IPVS_CMD_ATTR_SERVICE.
export const IPVS_SVC_ATTR_AF = 1;
export const IPVS_SVC_ATTR_PROTOCOL = 2;
/** union nf_inet_addr: 16 bytes, an IPv4 address in the first 4. */
export const IPVS_SVC_ATTR_ADDR = 3;
export const IPVS_SVC_ATTR_PORT = 4;
export const IPVS_SVC_ATTR_FWMARK = 5;
export const IPVS_SVC_ATTR_SCHED_NAME = 6;
/** struct ip_vs_flags { __u32 flags; __u32 mask; } */
export const IPVS_SVC_ATTR_FLAGS = 7;
export const IPVS_SVC_ATTR_TIMEOUT = 8;
export const IPVS_SVC_ATTR_NETMASK = 9;
export const IPVS_SVC_ATTR_STATS = 10;
export const IPVS_SVC_ATTR_PE_NAME = 11;
export const IPVS_SVC_ATTR_STATS64 = 12;

// Inside IPVS_CMD_ATTR_DEST.
export const IPVS_DEST_ATTR_ADDR = 1;
export const IPVS_DEST_ATTR_PORT = 2;
export const IPVS_DEST_ATTR_FWD_METHOD = 3;
export const IPVS_DEST_ATTR_WEIGHT = 4;
export const IPVS_DEST_ATTR_U_THRESH = 5;
export const IPVS_DEST_ATTR_L_THRESH = 6;
export const IPVS_DEST_ATTR_ACTIVE_CONNS = 7;
export const IPVS_DEST_ATTR_INACT_CONNS = 8;
export const IPVS_DEST_ATTR_PERSIST_CONNS = 9;
export const IPVS_DEST_ATTR_STATS = 10;
export const IPVS_DEST_ATTR_ADDR_FAMILY = 11;

export const IP_VS_SVC_F_PERSISTENT = 0x0001;
/** Set by the kernel on every service it lists; never sent. */
export const IP_VS_SVC_F_HASHED = 0x0002;
export const IP_VS_CONN_F_FWD_MASK = 0x0007;
export const IP_VS_CONN_F_MASQ = 0x0000;
export const IP_VS_CONN_F_LOCALNODE = 0x0001;
export const IP_VS_CONN_F_TUNNEL = 0x0002;
export const IP_VS_CONN_F_DROUTE = 0x0003;
export const IP_VS_CONN_F_BYPASS = 0x0004;
export const IP_VS_SCHEDNAME_MAXLEN = 16;

const IPPROTO: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };
/** Persistence groups clients by source address & netmask: /32, one client per template, as ipvsadm's default. */
const PERSISTENT_NETMASK = 0xffffffff;
const NF_INET_ADDR_LEN = 16;

/** What identifies a virtual server. */
export interface ServiceKey {
  readonly protocol: Protocol;
  readonly address: string;
  readonly port: number;
}

export interface VirtualServer extends ServiceKey {
  readonly scheduler: string;
  /** Session affinity: a client keeps its real server this long after its last connection (IP_VS_SVC_F_PERSISTENT). */
  readonly persistenceTimeoutSeconds?: number;
}

/** A virtual server as the kernel lists it. */
export interface KernelVirtualServer extends VirtualServer {
  /** As listed (IP_VS_SVC_F_HASHED included). */
  readonly flags: number;
  readonly netmask: number;
}

export type ForwardMethod = 'masquerade' | 'local' | 'tunnel' | 'route' | 'bypass';

const FORWARD_METHODS: readonly ForwardMethod[] = ['masquerade', 'local', 'tunnel', 'route', 'bypass'];

export interface RealServer {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly forward: ForwardMethod;
  /** Connection thresholds; 0: none. */
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
}

/** "TCP/10.96.0.10:80": a map key and a log word. */
export function serviceKeyString(key: ServiceKey): string {
  return `${key.protocol}/${key.address}:${key.port}`;
}

export function realServerKeyString(real: { readonly address: string; readonly port: number }): string {
  return `${real.address}:${real.port}`;
}

/** A masquerading real server of weight 1, no thresholds: what every backend of the proxy is. */
export function masqueradeRealServer(address: string, port: number): RealServer {
  return { address, port, weight: 1, forward: 'masquerade', upperThreshold: 0, lowerThreshold: 0 };
}

function inetAddress(text: string): Uint8Array {
  const bytes = new Uint8Array(NF_INET_ADDR_LEN);
  bytes.set(parseIPv4(text));
  return bytes;
}

function serviceKeyAttributes(key: ServiceKey): NetlinkAttribute[] {
  return [
    u16Attribute(IPVS_SVC_ATTR_AF, AF_INET),
    u16Attribute(IPVS_SVC_ATTR_PROTOCOL, IPPROTO[key.protocol]),
    binaryAttribute(IPVS_SVC_ATTR_ADDR, inetAddress(key.address)),
    be16Attribute(IPVS_SVC_ATTR_PORT, key.port),
  ];
}

function serviceAttributes(server: VirtualServer): NetlinkAttribute[] {
  if (server.scheduler.length === 0 || server.scheduler.length >= IP_VS_SCHEDNAME_MAXLEN) throw new RangeError(`scheduler "${server.scheduler}"`);
  const persistent = server.persistenceTimeoutSeconds !== undefined;
  const flags = new Uint8Array(8);
  const view = new DataView(flags.buffer);
  view.setUint32(0, persistent ? IP_VS_SVC_F_PERSISTENT : 0, true);
  // mask ~0: the flags sent replace all of the service's (the kernel re-adds HASHED itself).
  view.setUint32(4, 0xffffffff, true);
  return [
    ...serviceKeyAttributes(server),
    stringAttribute(IPVS_SVC_ATTR_SCHED_NAME, server.scheduler),
    binaryAttribute(IPVS_SVC_ATTR_FLAGS, flags),
    u32Attribute(IPVS_SVC_ATTR_TIMEOUT, server.persistenceTimeoutSeconds ?? 0),
    be32Attribute(IPVS_SVC_ATTR_NETMASK, PERSISTENT_NETMASK),
  ];
}

function destinationKeyAttributes(real: { readonly address: string; readonly port: number }): NetlinkAttribute[] {
  return [binaryAttribute(IPVS_DEST_ATTR_ADDR, inetAddress(real.address)), be16Attribute(IPVS_DEST_ATTR_PORT, real.port)];
}

function destinationAttributes(real: RealServer): NetlinkAttribute[] {
  return [
    ...destinationKeyAttributes(real),
    u32Attribute(IPVS_DEST_ATTR_FWD_METHOD, FORWARD_METHODS.indexOf(real.forward)),
    u32Attribute(IPVS_DEST_ATTR_WEIGHT, real.weight),
    u32Attribute(IPVS_DEST_ATTR_U_THRESH, real.upperThreshold),
    u32Attribute(IPVS_DEST_ATTR_L_THRESH, real.lowerThreshold),
    u16Attribute(IPVS_DEST_ATTR_ADDR_FAMILY, AF_INET),
  ];
}

function request(family: number, seq: number, cmd: number, attributes: readonly NetlinkAttribute[], flags = NLM_F_REQUEST | NLM_F_ACK): Uint8Array {
  return encodeGenericMessage({ family, flags, seq, cmd, version: IPVS_GENL_VERSION, attributes });
}

export function newServiceRequest(family: number, server: VirtualServer, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_NEW_SERVICE, [nestedAttribute(IPVS_CMD_ATTR_SERVICE, serviceAttributes(server))]);
}

/** Changes scheduler and persistence of an existing service, keeping its real servers. */
export function setServiceRequest(family: number, server: VirtualServer, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_SET_SERVICE, [nestedAttribute(IPVS_CMD_ATTR_SERVICE, serviceAttributes(server))]);
}

/** Deletes a service and its real servers. */
export function deleteServiceRequest(family: number, key: ServiceKey, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_DEL_SERVICE, [nestedAttribute(IPVS_CMD_ATTR_SERVICE, serviceKeyAttributes(key))]);
}

export function newDestinationRequest(family: number, service: ServiceKey, real: RealServer, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_NEW_DEST, [
    nestedAttribute(IPVS_CMD_ATTR_SERVICE, serviceKeyAttributes(service)),
    nestedAttribute(IPVS_CMD_ATTR_DEST, destinationAttributes(real)),
  ]);
}

export function setDestinationRequest(family: number, service: ServiceKey, real: RealServer, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_SET_DEST, [
    nestedAttribute(IPVS_CMD_ATTR_SERVICE, serviceKeyAttributes(service)),
    nestedAttribute(IPVS_CMD_ATTR_DEST, destinationAttributes(real)),
  ]);
}

export function deleteDestinationRequest(family: number, service: ServiceKey, real: { readonly address: string; readonly port: number }, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_DEL_DEST, [
    nestedAttribute(IPVS_CMD_ATTR_SERVICE, serviceKeyAttributes(service)),
    nestedAttribute(IPVS_CMD_ATTR_DEST, destinationKeyAttributes(real)),
  ]);
}

/** Every service of this network namespace; answered by IPVS_CMD_NEW_SERVICE messages. */
export function dumpServicesRequest(family: number, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_GET_SERVICE, [], NLM_F_REQUEST | NLM_F_DUMP);
}

/** The real servers of one service; answered by IPVS_CMD_NEW_DEST messages (nothing when the service does not exist). */
export function dumpDestinationsRequest(family: number, service: ServiceKey, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_GET_DEST, [nestedAttribute(IPVS_CMD_ATTR_SERVICE, serviceKeyAttributes(service))], NLM_F_REQUEST | NLM_F_DUMP);
}

/** Removes every service of this network namespace. */
export function flushRequest(family: number, seq: number): Uint8Array {
  return request(family, seq, IPVS_CMD_FLUSH, []);
}

function protocolOf(number: number | undefined): Protocol | undefined {
  return (Object.keys(IPPROTO) as Protocol[]).find((protocol) => IPPROTO[protocol] === number);
}

function nestedOf(message: NetlinkMessage, cmd: number, attribute: number): Attributes | undefined {
  const decoded = decodeGenericMessage(message);
  return decoded.cmd === cmd ? decoded.attributes.nested(attribute) : undefined;
}

/** One service of a dump; undefined for what the proxy never makes (IPv6, firewall marks, other protocols). */
export function parseService(message: NetlinkMessage): KernelVirtualServer | undefined {
  const attributes = nestedOf(message, IPVS_CMD_NEW_SERVICE, IPVS_CMD_ATTR_SERVICE);
  if (attributes === undefined || attributes.u16(IPVS_SVC_ATTR_AF) !== AF_INET || attributes.get(IPVS_SVC_ATTR_FWMARK) !== undefined) return undefined;
  const protocol = protocolOf(attributes.u16(IPVS_SVC_ATTR_PROTOCOL));
  const address = attributes.binary(IPVS_SVC_ATTR_ADDR);
  const port = attributes.be16(IPVS_SVC_ATTR_PORT);
  if (protocol === undefined || address === undefined || port === undefined) return undefined;
  const flagsBytes = attributes.binary(IPVS_SVC_ATTR_FLAGS);
  const flags = flagsBytes !== undefined && flagsBytes.length >= 4 ? new DataView(flagsBytes.buffer, flagsBytes.byteOffset, 4).getUint32(0, true) : 0;
  const timeout = attributes.u32(IPVS_SVC_ATTR_TIMEOUT) ?? 0;
  return {
    protocol,
    address: formatIPv4(address),
    port,
    scheduler: attributes.string(IPVS_SVC_ATTR_SCHED_NAME) ?? '',
    ...((flags & IP_VS_SVC_F_PERSISTENT) !== 0 ? { persistenceTimeoutSeconds: timeout } : {}),
    flags,
    netmask: attributes.be32(IPVS_SVC_ATTR_NETMASK) ?? 0,
  };
}

/** One real server of a dump; undefined for an IPv6 one. */
export function parseDestination(message: NetlinkMessage): RealServer | undefined {
  const attributes = nestedOf(message, IPVS_CMD_NEW_DEST, IPVS_CMD_ATTR_DEST);
  if (attributes === undefined) return undefined;
  const family = attributes.u16(IPVS_DEST_ATTR_ADDR_FAMILY);
  const address = attributes.binary(IPVS_DEST_ATTR_ADDR);
  const port = attributes.be16(IPVS_DEST_ATTR_PORT);
  if ((family !== undefined && family !== AF_INET) || address === undefined || port === undefined) return undefined;
  const forward = FORWARD_METHODS[(attributes.u32(IPVS_DEST_ATTR_FWD_METHOD) ?? 0) & IP_VS_CONN_F_FWD_MASK] ?? 'masquerade';
  return {
    address: formatIPv4(address),
    port,
    weight: attributes.u32(IPVS_DEST_ATTR_WEIGHT) ?? 0,
    forward,
    upperThreshold: attributes.u32(IPVS_DEST_ATTR_U_THRESH) ?? 0,
    lowerThreshold: attributes.u32(IPVS_DEST_ATTR_L_THRESH) ?? 0,
  };
}
