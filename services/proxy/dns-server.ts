// The cluster DNS server a node agent runs (CoreDNS's job in Kubernetes):
// answers names of the cluster domain from a DnsRecords (dns-records.ts,
// swapped whole by setRecords as Services and Endpoints change) and forwards
// every other name to the upstream nameservers, over UDP and TCP.
//
// UDP replies that do not fit 512 bytes (or the client's EDNS size) go out
// empty with TC set, so the client asks again over TCP. TCP carries several
// length-prefixed queries per connection, answered as each completes
// (RFC 7766), and is closed after an idle period. A packet that does not
// decode is dropped (UDP) or ends its connection (TCP); nothing a client
// sends can throw out of a handler.
//
// Forwarding sends the client's query unchanged but for a fresh random id,
// from a fresh connected socket (a random source port: an off-path spoofer
// must guess both), waits upstreamTimeoutMs, and retries once on the next
// upstream; the reply goes back under the client's id. No answer: SERVFAIL.
// ExternalName aliases outside the domain are chased the same way, so a
// client gets the CNAME and the target's addresses in one answer.

import { randomInt } from 'node:crypto';
import * as dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import { networkInterfaces } from 'node:os';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer, Packet, Question } from 'dns-packet';
import type { DnsAnswer, DnsRecord, DnsRecords } from './dns-records.js';

export interface ClusterDnsServerOptions {
  readonly records: DnsRecords;
  /** Default 0.0.0.0. */
  readonly host?: string;
  /** Default 53; 0 picks a free port (the same one for UDP and TCP). */
  readonly port?: number;
  /** "ip", "ip:port" or "[ipv6]:port". Default: the nameservers of resolvConfPath, but this server. */
  readonly upstreams?: readonly string[];
  readonly resolvConfPath?: string;
  readonly upstreamTimeoutMs?: number;
  /** Tries per forwarded query, each on the next upstream: 2 is one retry. */
  readonly upstreamAttempts?: number;
  readonly tcpIdleTimeoutMs?: number;
  readonly maxTcpConnections?: number;
  readonly maxForwardsInFlight?: number;
  readonly log?: (line: string) => void;
}

export interface DnsServerStats {
  /** Well-formed queries received (UDP and TCP). */
  readonly queries: number;
  /** NXDOMAIN replies, ours and relayed. */
  readonly nxdomain: number;
  /** Queries sent upstream (client queries and ExternalName targets). */
  readonly forwarded: number;
  readonly servfail: number;
  /** Packets dropped (or connections closed) because they did not decode. */
  readonly malformed: number;
  /** UDP replies sent truncated. */
  readonly truncated: number;
}

export interface Upstream {
  readonly host: string;
  readonly port: number;
}

const DNS_PORT = 53;
const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
const DEFAULT_UPSTREAM_TIMEOUT_MS = 2000;
const DEFAULT_UPSTREAM_ATTEMPTS = 2;
/** Long enough for a resolver's TCP retry and a few follow-ups; RFC 7766 suggests seconds, not minutes. */
const DEFAULT_TCP_IDLE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_TCP_CONNECTIONS = 1000;
/** Each forward holds a socket; beyond this the answer is SERVFAIL rather than running out of descriptors. */
const DEFAULT_MAX_FORWARDS_IN_FLIGHT = 1000;
/** Queries one TCP connection may have outstanding; more and it is closed. */
const MAX_TCP_QUERIES_IN_FLIGHT = 100;
/** The classic UDP limit without EDNS (RFC 1035). */
const MIN_UDP_PAYLOAD_BYTES = 512;
/** Larger EDNS sizes invite fragmentation; what we advertise and the most we send over UDP. */
const MAX_UDP_PAYLOAD_BYTES = 4096;
const MAX_TCP_MESSAGE_BYTES = 65_535;
/** CNAME hops followed for one answer (ExternalName to ExternalName …). */
const MAX_CNAME_CHAIN = 8;
/** Tries to find a port free for both UDP and TCP when asked for port 0. */
const BIND_ATTEMPTS = 10;

const OPCODE_QUERY = 0;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type RcodeName = keyof typeof RCODE;

type Transport = 'udp' | 'tcp';

interface Reply {
  readonly rcode: RcodeName;
  readonly answers?: readonly Answer[];
  readonly authorities?: readonly Answer[];
  readonly additionals?: readonly Answer[];
  readonly authoritative?: boolean;
  /** Send it empty with TC set, whatever its size. */
  readonly truncated?: boolean;
}

/** Parses "1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:5353". */
export function parseUpstream(value: string): Upstream {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (bracketed !== null) return { host: bracketed[1] ?? '', port: Number(bracketed[2] ?? DNS_PORT) };
  if (net.isIP(value) !== 0) return { host: value, port: DNS_PORT };
  const hostPort = /^([^:]+):(\d+)$/.exec(value);
  if (hostPort !== null && net.isIP(hostPort[1] ?? '') !== 0) return { host: hostPort[1] ?? '', port: Number(hostPort[2]) };
  throw new Error(`upstream nameserver "${value}" is not ip, ip:port or [ipv6]:port`);
}

/** The nameserver lines of a resolv.conf text. */
export function nameserversOf(resolvConf: string): string[] {
  const found: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    if (match?.[1] !== undefined && net.isIP(match[1].split('%')[0] ?? '') !== 0) found.push(match[1]);
  }
  return found;
}

/** Whether a nameserver on port 53 at `ip` would be this server, bound to host:port. */
function isOwnAddress(ip: string, host: string, port: number): boolean {
  if (port !== DNS_PORT) return false;
  if (ip === host) return true;
  if (host !== '0.0.0.0' && host !== '::') return false;
  if (ip.startsWith('127.') || ip === '::1') return true;
  return Object.values(networkInterfaces()).some((addresses) => (addresses ?? []).some((address) => address.address === ip));
}

/** The upstreams a resolv.conf names, without this server (listening on bound.host:bound.port). */
export function upstreamsFromResolvConf(resolvConf: string, bound: { readonly host: string; readonly port: number }): Upstream[] {
  return nameserversOf(resolvConf)
    .filter((ip) => !isOwnAddress(ip, bound.host, bound.port))
    .map((ip) => ({ host: ip, port: DNS_PORT }));
}

function rcodeOf(message: Buffer): number {
  return message.length >= 4 ? (message.readUInt16BE(2) & 0xf) : -1;
}

function toWire(record: DnsRecord): Answer {
  const base = { name: record.name, ttl: record.ttl, class: 'IN' as const };
  switch (record.type) {
    case 'A':
    case 'AAAA':
      return { ...base, type: record.type, data: record.address };
    case 'CNAME':
    case 'PTR':
      return { ...base, type: record.type, data: record.target };
    case 'SRV':
      return { ...base, type: 'SRV', data: { priority: record.priority, weight: record.weight, port: record.port, target: record.target } };
    case 'TXT':
      return { ...base, type: 'TXT', data: [record.text] };
    case 'SOA':
      return {
        ...base,
        type: 'SOA',
        data: {
          mname: record.mname,
          rname: record.rname,
          serial: record.serial,
          refresh: record.refreshSeconds,
          retry: record.retrySeconds,
          expire: record.expireSeconds,
          minimum: record.minimumSeconds,
        },
      };
  }
}

function frame(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length, 0);
  return Buffer.concat([length, message]);
}

export class ClusterDnsServer {
  private records: DnsRecords;
  private upstreams: readonly Upstream[] = [];
  private readonly upstreamTimeoutMs: number;
  private readonly upstreamAttempts: number;
  private readonly tcpIdleTimeoutMs: number;
  private readonly maxForwardsInFlight: number;
  private readonly log: (line: string) => void;
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();
  /** Abort functions of the upstream exchanges in flight. */
  private readonly exchanges = new Set<() => void>();
  private forwardsInFlight = 0;
  private closed = false;
  private bound: { host: string; port: number } = { host: '', port: 0 };
  private counters = { queries: 0, nxdomain: 0, forwarded: 0, servfail: 0, malformed: 0, truncated: 0 };

  private constructor(options: ClusterDnsServerOptions) {
    this.records = options.records;
    this.upstreamTimeoutMs = options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
    this.upstreamAttempts = Math.max(1, options.upstreamAttempts ?? DEFAULT_UPSTREAM_ATTEMPTS);
    this.tcpIdleTimeoutMs = options.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS;
    this.maxForwardsInFlight = options.maxForwardsInFlight ?? DEFAULT_MAX_FORWARDS_IN_FLIGHT;
    this.log = options.log ?? (() => {});
  }

  /** Reads the upstreams, then binds UDP and TCP on host:port; rejects if either cannot bind. */
  static async start(options: ClusterDnsServerOptions): Promise<ClusterDnsServer> {
    const server = new ClusterDnsServer(options);
    const host = options.host ?? '0.0.0.0';
    const port = options.port ?? DNS_PORT;
    // Before binding, so no query finds the list empty; port 0 never binds 53, so the exclusion needs only what was asked for.
    server.upstreams = await server.loadUpstreams(options, { host, port });
    if (server.upstreams.length === 0) server.log('cluster dns: no upstream nameservers; names outside the cluster domain get SERVFAIL');
    await server.listen(host, port, options.maxTcpConnections ?? DEFAULT_MAX_TCP_CONNECTIONS);
    return server;
  }

  /** Where it listens (UDP and TCP alike). */
  address(): { readonly host: string; readonly port: number } {
    return this.bound;
  }

  upstreamServers(): readonly Upstream[] {
    return this.upstreams;
  }

  /** Answer from `records` from now on (queries already answered keep their answer). */
  setRecords(records: DnsRecords): void {
    this.records = records;
  }

  stats(): DnsServerStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const abort of [...this.exchanges]) abort();
    for (const socket of this.connections) socket.destroy();
    const udp = this.udp;
    const tcp = this.tcp;
    await Promise.all([
      udp === undefined ? undefined : new Promise<void>((resolve) => udp.close(() => resolve())),
      tcp === undefined ? undefined : new Promise<void>((resolve) => tcp.close(() => resolve())),
    ]);
  }

  private async loadUpstreams(options: ClusterDnsServerOptions, bound: { host: string; port: number }): Promise<Upstream[]> {
    if (options.upstreams !== undefined) return options.upstreams.map(parseUpstream);
    const path = options.resolvConfPath ?? DEFAULT_RESOLV_CONF;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      this.log(`cluster dns: cannot read ${path}: ${(error as Error).message}`);
      return [];
    }
    return upstreamsFromResolvConf(text, bound);
  }

  private async listen(host: string, port: number, maxTcpConnections: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', (error) => {
          udp.close();
          reject(error);
        });
        udp.bind(port, host, () => {
          udp.removeAllListeners('error');
          resolve();
        });
      });
      const udpPort = udp.address().port;
      const tcp = net.createServer((socket) => this.onTcpConnection(socket));
      tcp.maxConnections = maxTcpConnections;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(udpPort, host, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (error) {
        await new Promise<void>((resolve) => udp.close(() => resolve()));
        // Port 0 gave UDP a port some TCP socket holds: try another.
        if (port === 0 && attempt < BIND_ATTEMPTS && (error as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw error;
      }
      udp.on('message', (message, remote) => this.onUdpMessage(message, remote));
      udp.on('error', (error) => this.log(`cluster dns: udp: ${error.message}`));
      tcp.on('error', (error) => this.log(`cluster dns: tcp: ${error.message}`));
      this.udp = udp;
      this.tcp = tcp;
      this.bound = { host, port: udpPort };
      return;
    }
  }

  private onUdpMessage(message: Buffer, remote: dgram.RemoteInfo): void {
    void this.handle(message, 'udp').then((reply) => {
      if (reply === undefined || this.closed || this.udp === undefined) return;
      this.udp.send(reply, remote.port, remote.address, (error) => {
        if (error !== null) this.log(`cluster dns: reply to ${remote.address}:${remote.port}: ${error.message}`);
      });
    }).catch((error: unknown) => this.log(`cluster dns: udp reply: ${(error as Error).message}`));
  }

  private onTcpConnection(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    let buffered: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        if (inFlight >= MAX_TCP_QUERIES_IN_FLIGHT) {
          socket.destroy();
          return;
        }
        inFlight++;
        void this.handle(message, 'tcp').then((reply) => {
          inFlight--;
          if (socket.destroyed) return;
          if (reply === undefined) socket.destroy();
          else socket.write(frame(reply));
        });
      }
    });
  }

  /** The reply to one message, or undefined to drop it. Never rejects. */
  private async handle(message: Buffer, transport: Transport): Promise<Buffer | undefined> {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      this.counters.malformed++;
      return undefined;
    }
    if (query.type !== 'query') {
      this.counters.malformed++;
      return undefined;
    }
    this.counters.queries++;
    try {
      return await this.reply(message, query, transport);
    } catch (error) {
      this.log(`cluster dns: answering ${query.questions?.[0]?.name ?? '?'}: ${(error as Error).message}`);
    }
    try {
      return this.encode(query, transport, { rcode: 'SERVFAIL' });
    } catch {
      return undefined;
    }
  }

  private async reply(message: Buffer, query: DecodedPacket, transport: Transport): Promise<Buffer> {
    const opcode = ((query.flags ?? 0) >> 11) & 0xf;
    if (opcode !== OPCODE_QUERY) return this.encode(query, transport, { rcode: 'NOTIMP' });
    const questions = query.questions ?? [];
    const question = questions[0];
    if (questions.length !== 1 || question === undefined) return this.encode(query, transport, { rcode: 'FORMERR' });
    const records = this.records;
    if (!records.isAuthoritativeFor(question.name)) return this.forward(message, query, transport);
    if (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY') {
      return this.encode(query, transport, { rcode: 'REFUSED' });
    }
    return this.encode(query, transport, await this.resolveLocal(records, question));
  }

  /** Our answer, with an alias chased to its addresses (locally or upstream). */
  private async resolveLocal(records: DnsRecords, question: Question): Promise<Reply> {
    let local: DnsAnswer = records.answer(question.name, question.type);
    const answers: Answer[] = local.answers.map(toWire);
    const additionals: Answer[] = local.additionals.map(toWire);
    let rcode: RcodeName = local.rcode;
    let authorities: Answer[] = local.authorities.map(toWire);
    const type: string = question.type;
    const wantsAlias = type === 'CNAME' || type === 'ANY';
    for (let hop = 0; hop < MAX_CNAME_CHAIN && !wantsAlias; hop++) {
      const last = local.answers[local.answers.length - 1];
      if (last?.type !== 'CNAME') break;
      if (!records.isAuthoritativeFor(last.target)) {
        const upstream = await this.resolveUpstream(last.target, question.type);
        if (upstream !== undefined) {
          answers.push(...(upstream.packet.answers ?? []));
          rcode = upstream.rcode === RCODE.NXDOMAIN ? 'NXDOMAIN' : 'NOERROR';
          authorities = [];
        }
        break;
      }
      local = records.answer(last.target, question.type);
      answers.push(...local.answers.map(toWire));
      additionals.push(...local.additionals.map(toWire));
      rcode = local.rcode === 'NXDOMAIN' ? 'NXDOMAIN' : 'NOERROR';
      authorities = local.authorities.map(toWire);
    }
    return { rcode, answers, additionals, authorities, authoritative: true };
  }

  /** An upstream's answer to a question we make up (an alias target), or undefined. */
  private async resolveUpstream(name: string, type: Question['type']): Promise<{ packet: DecodedPacket; rcode: number } | undefined> {
    if (this.forwardsInFlight >= this.maxForwardsInFlight) return undefined;
    this.forwardsInFlight++;
    this.counters.forwarded++;
    try {
      const query = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
      const reply = await this.exchange(query, false);
      return reply === undefined ? undefined : { packet: dnsPacket.decode(reply), rcode: rcodeOf(reply) };
    } catch {
      return undefined;
    } finally {
      this.forwardsInFlight--;
    }
  }

  private async forward(message: Buffer, query: DecodedPacket, transport: Transport): Promise<Buffer> {
    if (this.forwardsInFlight >= this.maxForwardsInFlight) return this.encode(query, transport, { rcode: 'SERVFAIL' });
    this.forwardsInFlight++;
    this.counters.forwarded++;
    let reply: Buffer | undefined;
    try {
      reply = await this.exchange(message, transport === 'tcp');
    } finally {
      this.forwardsInFlight--;
    }
    if (reply === undefined) return this.encode(query, transport, { rcode: 'SERVFAIL' });
    reply.writeUInt16BE(query.id ?? 0, 0);
    if (reply.length > this.sizeLimit(query, transport)) {
      // The upstream ignored the size the client asked for (or answered a TCP retry of ours): the client must ask over TCP.
      return this.encode(query, transport, { rcode: 'NOERROR', truncated: true });
    }
    if (rcodeOf(reply) === RCODE.NXDOMAIN) this.counters.nxdomain++;
    if (rcodeOf(reply) === RCODE.SERVFAIL) this.counters.servfail++;
    return reply;
  }

  /** Tries the upstreams in turn; a truncated UDP reply is retried over TCP when `tcpOnTruncation`. */
  private async exchange(message: Buffer, tcpOnTruncation: boolean): Promise<Buffer | undefined> {
    const question = dnsPacket.decode(message).questions?.[0];
    for (let attempt = 0; attempt < this.upstreamAttempts && this.upstreams.length > 0 && !this.closed; attempt++) {
      const upstream = this.upstreams[attempt % this.upstreams.length];
      if (upstream === undefined) break;
      const id = randomInt(0, 0x10000);
      const outgoing = Buffer.from(message);
      outgoing.writeUInt16BE(id, 0);
      const reply = await this.exchangeUdp(upstream, outgoing, id, question);
      if (reply === undefined) continue;
      if (tcpOnTruncation && (reply.readUInt16BE(2) & dnsPacket.TRUNCATED_RESPONSE) !== 0) {
        const whole = await this.exchangeTcp(upstream, outgoing, id);
        if (whole !== undefined) return whole;
      }
      return reply;
    }
    return undefined;
  }

  private exchangeUdp(upstream: Upstream, outgoing: Buffer, id: number, question: Question | undefined): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const socket = dgram.createSocket(net.isIPv6(upstream.host) ? 'udp6' : 'udp4');
      let done = false;
      const finish = (reply: Buffer | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.exchanges.delete(abort);
        socket.close();
        resolve(reply);
      };
      const abort = (): void => finish(undefined);
      const timer = setTimeout(abort, this.upstreamTimeoutMs);
      this.exchanges.add(abort);
      socket.on('error', abort);
      socket.on('message', (reply) => {
        if (reply.length < 12 || reply.readUInt16BE(0) !== id) return;
        if (question !== undefined && !this.answersQuestion(reply, question)) return;
        finish(reply);
      });
      // Connected: only the upstream's datagrams arrive, and a refusal fails fast.
      socket.connect(upstream.port, upstream.host, () => {
        if (done) return;
        socket.send(outgoing, (error) => {
          if (error !== null) abort();
        });
      });
    });
  }

  private answersQuestion(reply: Buffer, question: Question): boolean {
    try {
      const asked = dnsPacket.decode(reply).questions?.[0];
      return asked !== undefined && asked.name.toLowerCase() === question.name.toLowerCase() && asked.type === question.type;
    } catch {
      return false;
    }
  }

  private exchangeTcp(upstream: Upstream, outgoing: Buffer, id: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: upstream.host, port: upstream.port });
      let done = false;
      let buffered: Buffer = Buffer.alloc(0);
      const finish = (reply: Buffer | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.exchanges.delete(abort);
        socket.destroy();
        resolve(reply);
      };
      const abort = (): void => finish(undefined);
      const timer = setTimeout(abort, this.upstreamTimeoutMs);
      this.exchanges.add(abort);
      socket.on('error', abort);
      socket.on('close', abort);
      socket.on('connect', () => socket.write(frame(outgoing)));
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2) return;
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) return;
        const reply = buffered.subarray(2, 2 + length);
        finish(reply.length >= 12 && reply.readUInt16BE(0) === id ? Buffer.from(reply) : undefined);
      });
    });
  }

  private sizeLimit(query: DecodedPacket, transport: Transport): number {
    if (transport === 'tcp') return MAX_TCP_MESSAGE_BYTES;
    const opt = this.optOf(query);
    if (opt === undefined) return MIN_UDP_PAYLOAD_BYTES;
    return Math.min(MAX_UDP_PAYLOAD_BYTES, Math.max(MIN_UDP_PAYLOAD_BYTES, opt.udpPayloadSize));
  }

  private optOf(query: DecodedPacket): OptAnswer | undefined {
    return (query.additionals ?? []).find((record): record is OptAnswer => record.type === 'OPT');
  }

  /** Our reply to `query`, emptied and flagged TC if it does not fit the transport. */
  private encode(query: DecodedPacket, transport: Transport, reply: Reply): Buffer {
    if (reply.rcode === 'SERVFAIL') this.counters.servfail++;
    if (reply.rcode === 'NXDOMAIN') this.counters.nxdomain++;
    const opt: Answer[] =
      this.optOf(query) === undefined
        ? []
        : [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP_PAYLOAD_BYTES, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }];
    const flags =
      ((query.flags ?? 0) & (0xf << 11)) |
      ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
      dnsPacket.RECURSION_AVAILABLE |
      (reply.authoritative === true ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
      RCODE[reply.rcode];
    const packet: Packet = {
      type: 'response',
      id: query.id ?? 0,
      flags,
      questions: query.questions ?? [],
      answers: [...(reply.answers ?? [])],
      authorities: [...(reply.authorities ?? [])],
      additionals: [...(reply.additionals ?? []), ...opt],
    };
    const encoded = reply.truncated === true ? undefined : dnsPacket.encode(packet);
    if (encoded !== undefined && encoded.length <= this.sizeLimit(query, transport)) return encoded;
    this.counters.truncated++;
    return dnsPacket.encode({ ...packet, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: opt });
  }
}
