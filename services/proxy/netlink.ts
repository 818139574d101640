// The netlink wire format, as bytes in and bytes out (netlink(7);
// include/uapi/linux/netlink.h, genetlink.h, rtnetlink.h, if_link.h,
// if_addr.h): message headers, attributes (nested, padded to 4 bytes),
// replies (data, ack, error with errno and extended-ack text, end of dump),
// the generic-netlink controller (family name → id) and the few rtnetlink
// messages the IPVS proxy needs for its VIP interface. Pure: no sockets,
// no Node APIs — netlink-socket.ts moves these bytes. Host byte order is
// little endian (x86-64, arm64); netlink-socket.ts asserts it.

// ---- netlink.h ----------------------------------------------------------

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const GENL_HDRLEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
/** GET requests. */
export const NLM_F_DUMP = 0x300;
/** NEW requests. */
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** Flags of an NLMSG_ERROR: the echoed request is cut to its header; extended-ack TLVs follow. */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;
/** nlmsgerr_attrs: the extended ack's human-readable message. */
export const NLMSGERR_ATTR_MSG = 1;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const AF_UNSPEC = 0;
export const AF_INET = 2;

export function nlaAlign(length: number): number {
  return (length + 3) & ~3;
}

/** True when this machine stores integers little endian, as every encoder here assumes. */
export function hostIsLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

// ---- errors ------------------------------------------------------------

/** Linux errno numbers (asm-generic/errno-base.h, errno.h) that netlink answers with. */
const ERRNO: Readonly<Record<number, readonly [name: string, text: string]>> = {
  1: ['EPERM', 'operation not permitted (needs CAP_NET_ADMIN)'],
  2: ['ENOENT', 'no such entry'],
  3: ['ESRCH', 'no such process (IPVS: no such virtual service)'],
  4: ['EINTR', 'interrupted'],
  11: ['EAGAIN', 'no answer in time'],
  12: ['ENOMEM', 'out of memory'],
  13: ['EACCES', 'permission denied'],
  16: ['EBUSY', 'busy'],
  17: ['EEXIST', 'already exists'],
  19: ['ENODEV', 'no such device'],
  22: ['EINVAL', 'invalid argument'],
  34: ['ERANGE', 'out of range'],
  71: ['EPROTO', 'protocol error'],
  90: ['EMSGSIZE', 'message too long'],
  93: ['EPROTONOSUPPORT', 'protocol not supported'],
  95: ['EOPNOTSUPP', 'operation not supported'],
  97: ['EAFNOSUPPORT', 'address family not supported'],
  99: ['EADDRNOTAVAIL', 'address not available'],
  105: ['ENOBUFS', 'no buffer space (receive queue overrun)'],
  110: ['ETIMEDOUT', 'timed out'],
};

/** "ENOENT" for 2; "errno 200" for what the table does not know. */
export function errnoName(errno: number): string {
  return ERRNO[errno]?.[0] ?? `errno ${errno}`;
}

/** An operation the kernel refused (or that got no answer): the errno by name, the operation, and the kernel's own words (extended ack) when it gave some. */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  /** "ENOENT", "EEXIST", … */
  readonly code: string;

  constructor(
    readonly operation: string,
    readonly errno: number,
    readonly detail?: string,
  ) {
    const entry = ERRNO[errno];
    super(`${operation}: ${entry === undefined ? `errno ${errno}` : `${entry[0]} (${entry[1]})`}${detail === undefined ? '' : `: ${detail}`}`);
    this.code = errnoName(errno);
  }
}

/** Bytes that are not well-formed netlink. */
export class NetlinkFormatError extends Error {
  override readonly name = 'NetlinkFormatError';
}

// ---- attributes ---------------------------------------------------------

/** One attribute as it goes on the wire: `type` includes NLA_F_NESTED for nested ones. */
export interface NetlinkAttribute {
  readonly type: number;
  readonly payload: Uint8Array;
}

function bytesOf(length: number, write: (view: DataView) => void): Uint8Array {
  const bytes = new Uint8Array(length);
  write(new DataView(bytes.buffer));
  return bytes;
}

function checkUint(value: number, bits: 8 | 16 | 32, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) throw new RangeError(`${what}: ${value} is not a u${bits}`);
}

export function u8Attribute(type: number, value: number): NetlinkAttribute {
  checkUint(value, 8, `attribute ${type}`);
  return { type, payload: Uint8Array.of(value) };
}

export function u16Attribute(type: number, value: number): NetlinkAttribute {
  checkUint(value, 16, `attribute ${type}`);
  return { type, payload: bytesOf(2, (view) => view.setUint16(0, value, true)) };
}

export function u32Attribute(type: number, value: number): NetlinkAttribute {
  checkUint(value, 32, `attribute ${type}`);
  return { type, payload: bytesOf(4, (view) => view.setUint32(0, value, true)) };
}

/** A u16 in network byte order (ports). */
export function be16Attribute(type: number, value: number): NetlinkAttribute {
  checkUint(value, 16, `attribute ${type}`);
  return { type, payload: bytesOf(2, (view) => view.setUint16(0, value, false)) };
}

export function be32Attribute(type: number, value: number): NetlinkAttribute {
  checkUint(value, 32, `attribute ${type}`);
  return { type, payload: bytesOf(4, (view) => view.setUint32(0, value, false)) };
}

/** A NUL-terminated string. */
export function stringAttribute(type: number, value: string): NetlinkAttribute {
  const text = new TextEncoder().encode(value);
  if (text.includes(0)) throw new RangeError(`attribute ${type}: string contains NUL`);
  const payload = new Uint8Array(text.length + 1);
  payload.set(text);
  return { type, payload };
}

export function binaryAttribute(type: number, value: Uint8Array): NetlinkAttribute {
  return { type, payload: Uint8Array.from(value) };
}

export function nestedAttribute(type: number, children: readonly NetlinkAttribute[]): NetlinkAttribute {
  return { type: type | NLA_F_NESTED, payload: encodeAttributes(children) };
}

/** Attributes back to back, each padded to 4 bytes (the padding is zero and not counted in nla_len). */
export function encodeAttributes(attributes: readonly NetlinkAttribute[]): Uint8Array {
  const total = attributes.reduce((sum, attribute) => sum + nlaAlign(NLA_HDRLEN + attribute.payload.length), 0);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  let offset = 0;
  for (const attribute of attributes) {
    const length = NLA_HDRLEN + attribute.payload.length;
    if (length > 0xffff) throw new RangeError(`attribute ${attribute.type}: ${length} bytes do not fit nla_len`);
    view.setUint16(offset, length, true);
    view.setUint16(offset + 2, attribute.type, true);
    bytes.set(attribute.payload, offset + NLA_HDRLEN);
    offset += nlaAlign(length);
  }
  return bytes;
}

/** A decoded attribute: `type` without the flag bits. */
export interface DecodedAttribute {
  readonly type: number;
  readonly nested: boolean;
  readonly payload: Uint8Array;
}

/** The attributes of one level, with typed getters (undefined: absent; a wrong length throws). */
export class Attributes {
  constructor(readonly list: readonly DecodedAttribute[]) {}

  get(type: number): DecodedAttribute | undefined {
    return this.list.find((attribute) => attribute.type === type);
  }

  private sized(type: number, length: number): DataView | undefined {
    const attribute = this.get(type);
    if (attribute === undefined) return undefined;
    if (attribute.payload.length < length) throw new NetlinkFormatError(`attribute ${type}: ${attribute.payload.length} bytes, expected ${length}`);
    return new DataView(attribute.payload.buffer, attribute.payload.byteOffset, attribute.payload.length);
  }

  u8(type: number): number | undefined {
    return this.sized(type, 1)?.getUint8(0);
  }

  u16(type: number): number | undefined {
    return this.sized(type, 2)?.getUint16(0, true);
  }

  u32(type: number): number | undefined {
    return this.sized(type, 4)?.getUint32(0, true);
  }

  be16(type: number): number | undefined {
    return this.sized(type, 2)?.getUint16(0, false);
  }

  be32(type: number): number | undefined {
    return this.sized(type, 4)?.getUint32(0, false);
  }

  /** A string attribute, up to its first NUL. */
  string(type: number): string | undefined {
    const payload = this.get(type)?.payload;
    if (payload === undefined) return undefined;
    const end = payload.indexOf(0);
    return new TextDecoder().decode(end < 0 ? payload : payload.subarray(0, end));
  }

  binary(type: number): Uint8Array | undefined {
    return this.get(type)?.payload;
  }

  nested(type: number): Attributes | undefined {
    const payload = this.get(type)?.payload;
    return payload === undefined ? undefined : decodeAttributes(payload);
  }
}

export function decodeAttributes(bytes: Uint8Array): Attributes {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const list: DecodedAttribute[] = [];
  let offset = 0;
  while (offset + NLA_HDRLEN <= bytes.length) {
    const length = view.getUint16(offset, true);
    const type = view.getUint16(offset + 2, true);
    if (length < NLA_HDRLEN || offset + length > bytes.length) throw new NetlinkFormatError(`attribute at ${offset}: nla_len ${length} does not fit ${bytes.length - offset} bytes`);
    list.push({ type: type & NLA_TYPE_MASK, nested: (type & NLA_F_NESTED) !== 0, payload: bytes.subarray(offset + NLA_HDRLEN, offset + length) });
    offset += nlaAlign(length);
  }
  return new Attributes(list);
}

// ---- messages -----------------------------------------------------------

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  readonly payload: Uint8Array;
}

export function encodeMessage(message: NetlinkMessage): Uint8Array {
  const length = NLMSG_HDRLEN + message.payload.length;
  const bytes = new Uint8Array(nlaAlign(length));
  const view = new DataView(bytes.buffer);
  view.setUint32(0, length, true);
  view.setUint16(4, message.type, true);
  view.setUint16(6, message.flags, true);
  view.setUint32(8, message.seq >>> 0, true);
  view.setUint32(12, message.pid >>> 0, true);
  bytes.set(message.payload, NLMSG_HDRLEN);
  return bytes;
}

/** Every message of one datagram (a multi-part reply packs several). */
export function decodeMessages(bytes: Uint8Array): NetlinkMessage[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const messages: NetlinkMessage[] = [];
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= bytes.length) {
    const length = view.getUint32(offset, true);
    if (length < NLMSG_HDRLEN || offset + length > bytes.length) throw new NetlinkFormatError(`message at ${offset}: nlmsg_len ${length} does not fit ${bytes.length - offset} bytes`);
    messages.push({
      type: view.getUint16(offset + 4, true),
      flags: view.getUint16(offset + 6, true),
      seq: view.getUint32(offset + 8, true),
      pid: view.getUint32(offset + 12, true),
      payload: bytes.subarray(offset + NLMSG_HDRLEN, offset + length),
    });
    offset += nlaAlign(length);
  }
  return messages;
}

/** What one reply message means for the request it answers. */
export type ReplyPart =
  | { readonly kind: 'data'; readonly message: NetlinkMessage }
  | { readonly kind: 'ack' }
  | { readonly kind: 'error'; readonly errno: number; readonly kernelMessage?: string }
  | { readonly kind: 'done' };

function int32At(payload: Uint8Array, offset: number): number {
  return new DataView(payload.buffer, payload.byteOffset, payload.length).getInt32(offset, true);
}

/** NLMSG_ERROR: `struct nlmsgerr { int error; struct nlmsghdr msg; }`, the echoed request (cut to its header when capped), then extended-ack TLVs. */
function classifyError(message: NetlinkMessage): ReplyPart {
  if (message.payload.length < 4) throw new NetlinkFormatError(`NLMSG_ERROR of ${message.payload.length} bytes`);
  const error = int32At(message.payload, 0);
  if (error === 0) return { kind: 'ack' };
  let kernelMessage: string | undefined;
  if ((message.flags & NLM_F_ACK_TLVS) !== 0 && message.payload.length >= 4 + NLMSG_HDRLEN) {
    const echoedLength = (message.flags & NLM_F_CAPPED) !== 0 ? NLMSG_HDRLEN : new DataView(message.payload.buffer, message.payload.byteOffset + 4, 4).getUint32(0, true);
    const tlvStart = 4 + nlaAlign(echoedLength);
    if (tlvStart <= message.payload.length) kernelMessage = decodeAttributes(message.payload.subarray(tlvStart)).string(NLMSGERR_ATTR_MSG);
  }
  return kernelMessage === undefined ? { kind: 'error', errno: -error } : { kind: 'error', errno: -error, kernelMessage };
}

export function classifyReply(message: NetlinkMessage): ReplyPart {
  if (message.type === NLMSG_ERROR) return classifyError(message);
  if (message.type === NLMSG_DONE) {
    // A dump that failed part-way says so in the int its DONE carries.
    const error = message.payload.length >= 4 ? int32At(message.payload, 0) : 0;
    return error < 0 ? { kind: 'error', errno: -error } : { kind: 'done' };
  }
  if (message.type === NLMSG_OVERRUN) return { kind: 'error', errno: 105 };
  return { kind: 'data', message };
}

// ---- generic netlink ------------------------------------------------------

export interface GenericMessage {
  /** The family id (nlmsg_type). */
  readonly family: number;
  readonly flags: number;
  readonly seq: number;
  readonly cmd: number;
  readonly version: number;
  readonly attributes: readonly NetlinkAttribute[];
}

export function encodeGenericMessage(message: GenericMessage): Uint8Array {
  const attributes = encodeAttributes(message.attributes);
  const payload = new Uint8Array(GENL_HDRLEN + attributes.length);
  payload[0] = message.cmd;
  payload[1] = message.version;
  payload.set(attributes, GENL_HDRLEN);
  return encodeMessage({ type: message.family, flags: message.flags, seq: message.seq, pid: 0, payload });
}

export interface DecodedGenericMessage {
  readonly cmd: number;
  readonly version: number;
  readonly attributes: Attributes;
}

export function decodeGenericMessage(message: NetlinkMessage): DecodedGenericMessage {
  if (message.payload.length < GENL_HDRLEN) throw new NetlinkFormatError(`generic netlink message of ${message.payload.length} bytes`);
  const view = new DataView(message.payload.buffer, message.payload.byteOffset, message.payload.length);
  return { cmd: view.getUint8(0), version: view.getUint8(1), attributes: decodeAttributes(message.payload.subarray(GENL_HDRLEN)) };
}

// The controller family "nlctrl" (genetlink.h).
export const GENL_ID_CTRL = 0x10;
export const CTRL_VERSION = 1;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;

export function getFamilyRequest(name: string, seq: number): Uint8Array {
  return encodeGenericMessage({
    family: GENL_ID_CTRL,
    flags: NLM_F_REQUEST | NLM_F_ACK,
    seq,
    cmd: CTRL_CMD_GETFAMILY,
    version: CTRL_VERSION,
    attributes: [stringAttribute(CTRL_ATTR_FAMILY_NAME, name)],
  });
}

export interface GenericFamily {
  readonly id: number;
  readonly name: string;
  readonly version: number;
  readonly maxAttribute: number;
}

export function parseFamily(message: NetlinkMessage): GenericFamily {
  const { cmd, attributes } = decodeGenericMessage(message);
  const id = attributes.u16(CTRL_ATTR_FAMILY_ID);
  const name = attributes.string(CTRL_ATTR_FAMILY_NAME);
  if (cmd !== CTRL_CMD_NEWFAMILY || id === undefined || name === undefined) throw new NetlinkFormatError(`not a family description (cmd ${cmd})`);
  return { id, name, version: attributes.u32(CTRL_ATTR_VERSION) ?? 0, maxAttribute: attributes.u32(CTRL_ATTR_MAXATTR) ?? 0 };
}

// ---- IPv4 addresses --------------------------------------------------------

export function parseIPv4(text: string): Uint8Array {
  const parts = text.split('.');
  const bytes = parts.map((part) => (/^\d{1,3}$/.test(part) ? Number(part) : NaN));
  if (bytes.length !== 4 || bytes.some((byte) => !(byte >= 0 && byte <= 255))) throw new RangeError(`"${text}" is not an IPv4 address`);
  return Uint8Array.from(bytes);
}

export function formatIPv4(bytes: Uint8Array): string {
  if (bytes.length < 4) throw new NetlinkFormatError(`IPv4 address of ${bytes.length} bytes`);
  return Array.from(bytes.subarray(0, 4)).join('.');
}

// ---- rtnetlink: a link and its IPv4 addresses -----------------------------

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const IFLA_IFNAME = 3;
export const IFLA_LINKINFO = 18;
export const IFLA_INFO_KIND = 1;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
/** struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32. */
const IFINFOMSG_LEN = 16;
/** struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32. */
const IFADDRMSG_LEN = 8;

function withHeader(header: Uint8Array, attributes: readonly NetlinkAttribute[]): Uint8Array {
  const encoded = encodeAttributes(attributes);
  const payload = new Uint8Array(header.length + encoded.length);
  payload.set(header);
  payload.set(encoded, header.length);
  return payload;
}

function ifinfomsg(index: number): Uint8Array {
  return bytesOf(IFINFOMSG_LEN, (view) => view.setInt32(4, index, true));
}

/** `ip link add NAME type KIND`: fails with EEXIST when the name is taken. */
export function newLinkRequest(name: string, kind: string, seq: number): Uint8Array {
  const attributes = [stringAttribute(IFLA_IFNAME, name), nestedAttribute(IFLA_LINKINFO, [stringAttribute(IFLA_INFO_KIND, kind)])];
  return encodeMessage({ type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, pid: 0, payload: withHeader(ifinfomsg(0), attributes) });
}

/** The link called NAME (ENODEV when there is none). */
export function getLinkRequest(name: string, seq: number): Uint8Array {
  return encodeMessage({ type: RTM_GETLINK, flags: NLM_F_REQUEST | NLM_F_ACK, seq, pid: 0, payload: withHeader(ifinfomsg(0), [stringAttribute(IFLA_IFNAME, name)]) });
}

export function deleteLinkRequest(index: number, seq: number): Uint8Array {
  return encodeMessage({ type: RTM_DELLINK, flags: NLM_F_REQUEST | NLM_F_ACK, seq, pid: 0, payload: ifinfomsg(index) });
}

export interface Link {
  readonly index: number;
  readonly name: string;
  readonly kind?: string;
}

export function parseLink(message: NetlinkMessage): Link {
  if (message.type !== RTM_NEWLINK || message.payload.length < IFINFOMSG_LEN) throw new NetlinkFormatError(`not a link (type ${message.type})`);
  const index = int32At(message.payload, 4);
  const attributes = decodeAttributes(message.payload.subarray(IFINFOMSG_LEN));
  const kind = attributes.nested(IFLA_LINKINFO)?.string(IFLA_INFO_KIND);
  return { index, name: attributes.string(IFLA_IFNAME) ?? '', ...(kind === undefined ? {} : { kind }) };
}

export interface InterfaceAddress {
  readonly index: number;
  readonly address: string;
  readonly prefixLength: number;
}

/** `ip addr replace|del ADDRESS/PREFIX dev INDEX` (IPv4, scope global). */
export function addressRequest(operation: 'add' | 'delete', address: InterfaceAddress, seq: number): Uint8Array {
  if (!Number.isInteger(address.prefixLength) || address.prefixLength < 0 || address.prefixLength > 32) throw new RangeError(`prefix length ${address.prefixLength}`);
  const header = bytesOf(IFADDRMSG_LEN, (view) => {
    view.setUint8(0, AF_INET);
    view.setUint8(1, address.prefixLength);
    view.setUint32(4, address.index, true);
  });
  const ip = parseIPv4(address.address);
  const attributes = [binaryAttribute(IFA_LOCAL, ip), binaryAttribute(IFA_ADDRESS, ip)];
  const flags = operation === 'add' ? NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE : NLM_F_REQUEST | NLM_F_ACK;
  return encodeMessage({ type: operation === 'add' ? RTM_NEWADDR : RTM_DELADDR, flags, seq, pid: 0, payload: withHeader(header, attributes) });
}

/** Every IPv4 address of every link (filter the replies by index). */
export function dumpAddressesRequest(seq: number): Uint8Array {
  const header = bytesOf(IFADDRMSG_LEN, (view) => view.setUint8(0, AF_INET));
  return encodeMessage({ type: RTM_GETADDR, flags: NLM_F_REQUEST | NLM_F_DUMP, seq, pid: 0, payload: header });
}

export function parseAddress(message: NetlinkMessage): InterfaceAddress | undefined {
  if (message.type !== RTM_NEWADDR || message.payload.length < IFADDRMSG_LEN) throw new NetlinkFormatError(`not an address (type ${message.type})`);
  const view = new DataView(message.payload.buffer, message.payload.byteOffset, message.payload.length);
  if (view.getUint8(0) !== AF_INET) return undefined;
  const attributes = decodeAttributes(message.payload.subarray(IFADDRMSG_LEN));
  const bytes = attributes.binary(IFA_LOCAL) ?? attributes.binary(IFA_ADDRESS);
  if (bytes === undefined) return undefined;
  return { index: view.getUint32(4, true), address: formatIPv4(bytes), prefixLength: view.getUint8(1) };
}
