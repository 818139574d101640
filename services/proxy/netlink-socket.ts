// A netlink socket through libc (koffi): Node has no AF_NETLINK. One
// request at a time, answered synchronously — netlink answers from inside
// the sendmsg/recvmsg of the kernel, so a blocking recv returns at once;
// SO_RCVTIMEO bounds the wait so a bug cannot hang the process. The bytes
// are made and read by netlink.ts; this file only moves them.

import koffi from 'koffi';
import {
  GENL_ID_CTRL,
  NLMSG_HDRLEN,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NetlinkError,
  NetlinkFormatError,
  classifyReply,
  decodeMessages,
  getFamilyRequest,
  hostIsLittleEndian,
  parseFamily,
  type GenericFamily,
  type NetlinkMessage,
} from './netlink.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
/** Not inherited by the `ip`, `nft`… children of this process. */
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_PROTOCOL = { route: 0, generic: 16 } as const;
export type NetlinkProtocol = keyof typeof NETLINK_PROTOCOL;

// asm-generic/socket.h (x86-64 and arm64 alike).
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_SNDTIMEO = 21;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_TRUNC = 0x20;
const EINTR = 4;
const EAGAIN = 11;
const ETIMEDOUT = 110;
const EMSGSIZE = 90;
const SOCKADDR_NL_LEN = 12;

const DEFAULT_RECEIVE_TIMEOUT_MS = 5000;
/** A dump datagram is at most about 32 KiB (the kernel's dump skb); room to spare, and MSG_TRUNC tells if not. */
const RECEIVE_BUFFER_BYTES = 256 * 1024;
/** Bound on one reply: a full IPVS dump of 10k services is ~300 datagrams. */
const REPLY_DATAGRAMS_MAX = 100_000;
/** A dump the kernel marks inconsistent (NLM_F_DUMP_INTR: changed while dumped) is asked again, this many times. */
const DUMP_ATTEMPTS_MAX = 3;
/** recv interrupted by a signal (SO_RCVTIMEO disables SA_RESTART for it). */
const EINTR_RETRIES_MAX = 100;

interface Libc {
  readonly socket: (domain: number, type: number, protocol: number) => number;
  readonly bind: (fd: number, address: Uint8Array, length: number) => number;
  readonly setsockopt: (fd: number, level: number, name: number, value: Uint8Array, length: number) => number;
  readonly send: (fd: number, buffer: Uint8Array, length: number, flags: number) => number;
  readonly recv: (fd: number, buffer: Uint8Array, length: number, flags: number) => number;
  readonly close: (fd: number) => number;
}

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc !== undefined) return libc;
  const library = koffi.load('libc.so.6');
  libc = {
    socket: library.func('int socket(int, int, int)') as Libc['socket'],
    bind: library.func('int bind(int, const void *, uint32_t)') as Libc['bind'],
    setsockopt: library.func('int setsockopt(int, int, int, const void *, uint32_t)') as Libc['setsockopt'],
    send: library.func('long send(int, const void *, size_t, int)') as Libc['send'],
    recv: library.func('long recv(int, void *, size_t, int)') as Libc['recv'],
    close: library.func('int close(int)') as Libc['close'],
  };
  return libc;
}

/** What speaks netlink request by request: a NetlinkSocket, or a fake kernel in tests. */
export interface NetlinkTransport {
  /**
   * Sends the request `build` makes for the next sequence number and returns
   * the data messages of its reply, once the kernel acknowledged it (or ended
   * the dump). A negative errno becomes a NetlinkError naming `operation`.
   */
  request(operation: string, build: (seq: number) => Uint8Array): NetlinkMessage[];
  close(): void;
}

/** The id of a generic netlink family; NetlinkError ENOENT when the kernel has no such family. */
export function resolveFamily(transport: NetlinkTransport, name: string): GenericFamily {
  const operation = `resolve the generic netlink family "${name}"`;
  const [reply] = transport.request(operation, (seq) => getFamilyRequest(name, seq));
  if (reply === undefined || reply.type !== GENL_ID_CTRL) throw new NetlinkFormatError(`${operation}: no family in the reply`);
  return parseFamily(reply);
}

export interface NetlinkSocketOptions {
  /** How long one recv waits for the kernel; default 5 s. */
  readonly receiveTimeoutMs?: number;
}

export class NetlinkSocket implements NetlinkTransport {
  private fd: number | undefined;
  private seq = 0;
  private readonly buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);

  private constructor(
    private readonly libc: Libc,
    fd: number,
    readonly protocol: NetlinkProtocol,
    private readonly receiveTimeoutMs: number,
  ) {
    this.fd = fd;
  }

  /** A socket bound to a kernel-assigned port id. Throws NetlinkError when the kernel refuses. */
  static open(protocol: NetlinkProtocol, options: NetlinkSocketOptions = {}): NetlinkSocket {
    if (!hostIsLittleEndian()) throw new Error('netlink: this host is big endian; the encoders assume little endian');
    const receiveTimeoutMs = options.receiveTimeoutMs ?? DEFAULT_RECEIVE_TIMEOUT_MS;
    if (!(receiveTimeoutMs > 0)) throw new RangeError(`receiveTimeoutMs ${receiveTimeoutMs}`);
    const c = loadLibc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_PROTOCOL[protocol]);
    if (fd < 0) throw new NetlinkError(`open a NETLINK_${protocol.toUpperCase()} socket`, koffi.errno());
    const socket = new NetlinkSocket(c, fd, protocol, receiveTimeoutMs);
    try {
      socket.configure();
    } catch (error) {
      socket.close();
      throw error;
    }
    return socket;
  }

  private configure(): void {
    const fd = this.descriptor('configure');
    const timeval = Buffer.alloc(16);
    timeval.writeBigInt64LE(BigInt(Math.floor(this.receiveTimeoutMs / 1000)), 0);
    timeval.writeBigInt64LE(BigInt((this.receiveTimeoutMs % 1000) * 1000), 8);
    for (const option of [SO_RCVTIMEO, SO_SNDTIMEO]) {
      if (this.libc.setsockopt(fd, SOL_SOCKET, option, timeval, timeval.length) < 0) throw new NetlinkError('set the netlink socket timeout', koffi.errno());
    }
    // Best effort (kernel ≥ 4.12): errors carry the kernel's explanation, and do not echo the whole request.
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    this.libc.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, one.length);
    this.libc.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, one.length);
    const address = Buffer.alloc(SOCKADDR_NL_LEN);
    address.writeUInt16LE(AF_NETLINK, 0);
    if (this.libc.bind(fd, address, address.length) < 0) throw new NetlinkError('bind the netlink socket', koffi.errno());
  }

  private descriptor(operation: string): number {
    if (this.fd === undefined) throw new Error(`${operation}: the netlink socket is closed`);
    return this.fd;
  }

  /** NetlinkTransport.request; the request must ask for an ack (NLM_F_ACK) or a dump. */
  request(operation: string, build: (seq: number) => Uint8Array): NetlinkMessage[] {
    for (let attempt = 1; ; attempt++) {
      const seq = this.nextSeq();
      const bytes = build(seq);
      const flags = bytes.length >= NLMSG_HDRLEN ? new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint16(6, true) : 0;
      const isDump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
      if ((flags & NLM_F_ACK) === 0 && !isDump) throw new Error(`${operation}: a request must ask for an ack or a dump, or its end cannot be seen`);
      this.send(operation, bytes);
      const { messages, interrupted } = this.receiveReply(operation, seq);
      if (!interrupted) return messages;
      if (attempt >= DUMP_ATTEMPTS_MAX) throw new Error(`${operation}: the dump changed while read, ${attempt} times`);
    }
  }

  /** The id of a generic netlink family; NetlinkError ENOENT when the kernel has no such family. */
  resolveFamily(name: string): GenericFamily {
    return resolveFamily(this, name);
  }

  close(): void {
    if (this.fd === undefined) return;
    this.libc.close(this.fd);
    this.fd = undefined;
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  private nextSeq(): number {
    this.seq = (this.seq % 0xffffffff) + 1;
    return this.seq;
  }

  private send(operation: string, bytes: Uint8Array): void {
    const fd = this.descriptor(operation);
    for (let attempt = 0; attempt < EINTR_RETRIES_MAX; attempt++) {
      const sent = this.libc.send(fd, bytes, bytes.length, 0);
      if (sent === bytes.length) return;
      if (sent >= 0) throw new NetlinkError(operation, EMSGSIZE, `sent ${sent} of ${bytes.length} bytes`);
      const errno = koffi.errno();
      if (errno !== EINTR) throw new NetlinkError(operation, errno, 'send');
    }
    throw new NetlinkError(operation, EINTR, 'send');
  }

  private receiveDatagram(operation: string): Uint8Array {
    const fd = this.descriptor(operation);
    for (let attempt = 0; attempt < EINTR_RETRIES_MAX; attempt++) {
      const length = this.libc.recv(fd, this.buffer, this.buffer.length, MSG_TRUNC);
      if (length > this.buffer.length) throw new NetlinkError(operation, EMSGSIZE, `a reply of ${length} bytes exceeds the ${this.buffer.length}-byte buffer`);
      if (length >= 0) return this.buffer.subarray(0, length);
      const errno = koffi.errno();
      if (errno === EAGAIN) throw new NetlinkError(operation, ETIMEDOUT, `no reply within ${this.receiveTimeoutMs} ms`);
      if (errno !== EINTR) throw new NetlinkError(operation, errno, 'recv');
    }
    throw new NetlinkError(operation, EINTR, 'recv');
  }

  private receiveReply(operation: string, seq: number): { messages: NetlinkMessage[]; interrupted: boolean } {
    const messages: NetlinkMessage[] = [];
    let interrupted = false;
    for (let datagram = 0; datagram < REPLY_DATAGRAMS_MAX; datagram++) {
      // Copied out: the buffer is reused by the next recv.
      for (const message of decodeMessages(Uint8Array.from(this.receiveDatagram(operation)))) {
        // A late answer to an earlier request that timed out: not ours.
        if (message.seq !== seq) continue;
        if ((message.flags & NLM_F_DUMP_INTR) !== 0) interrupted = true;
        const part = classifyReply(message);
        if (part.kind === 'data') messages.push(part.message);
        else if (part.kind === 'error') throw new NetlinkError(operation, part.errno, part.kernelMessage === undefined ? undefined : `kernel says "${part.kernelMessage}"`);
        else return { messages, interrupted };
      }
    }
    throw new Error(`${operation}: no end of the reply after ${REPLY_DATAGRAMS_MAX} datagrams`);
  }
}
