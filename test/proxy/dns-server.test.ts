// ClusterDnsServer on 127.0.0.1, port 0: queried over UDP and TCP with
// dns-packet and through Node's c-ares stub resolver; forwarding to a fake
// upstream on loopback (relay, retry, SERVFAIL, TCP after truncation,
// ExternalName chasing); truncation; malformed input; setRecords.

import { expect } from 'chai';
import * as dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import type { EndpointAddress, Endpoints, Service } from '../../proto/gen/resources/v1/core.js';
import { DnsRecords } from '../../services/proxy/dns-records.js';
import { ClusterDnsServer, nameserversOf, parseUpstream, upstreamsFromResolvConf } from '../../services/proxy/dns-server.js';

const REPLY_TIMEOUT_MS = 3000;
const HEADLESS_ENDPOINTS = 100;
const MEDIUM_ENDPOINTS = 40;

function headless(name: string, count: number): { service: Service; endpoints: Endpoints } {
  const addresses: EndpointAddress[] = Array.from({ length: count }, (_, index) => ({ ip: `10.244.${Math.floor(index / 250)}.${(index % 250) + 1}` }));
  return {
    service: { metadata: { namespace: 'default', name }, spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] } },
    endpoints: { metadata: { namespace: 'default', name }, subsets: [{ addresses, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }] },
  };
}

function clusterRecords(extra: Service[] = []): DnsRecords {
  const many = headless('many', HEADLESS_ENDPOINTS);
  const medium = headless('medium', MEDIUM_ENDPOINTS);
  const services: Service[] = [
    { metadata: { namespace: 'default', name: 'web' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
    { metadata: { namespace: 'default', name: 'search' }, spec: { type: 'ExternalName', externalName: 'example.com' } },
    many.service,
    medium.service,
    ...extra,
  ];
  return new DnsRecords(services, [many.endpoints, medium.endpoints]);
}

// ---------------------------------------------------------------- clients

let nextId = 1;

function query(name: string, type: Question['type'], options: { id?: number; edns?: number; flags?: number; questions?: Question[] } = {}): Packet {
  const id = options.id ?? nextId++;
  const additionals: Answer[] =
    options.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: options.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }];
  return { type: 'query', id, flags: options.flags ?? dnsPacket.RECURSION_DESIRED, questions: options.questions ?? [{ name, type, class: 'IN' }], additionals };
}

function rcodeOf(packet: DecodedPacket): string {
  return (packet as DecodedPacket & { rcode: string }).rcode;
}

/** Sends one datagram and resolves with the reply (rejects after REPLY_TIMEOUT_MS). */
async function udpExchange(port: number, message: Buffer): Promise<Buffer> {
  const socket = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no UDP reply')), REPLY_TIMEOUT_MS);
      socket.on('message', (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      socket.send(message, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

async function udpQuery(port: number, packet: Packet): Promise<DecodedPacket> {
  return dnsPacket.decode(await udpExchange(port, dnsPacket.encode(packet)));
}

function frame(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length, 0);
  return Buffer.concat([length, message]);
}

/** A TCP connection reading length-prefixed messages. */
class TcpClient {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly messages: Buffer[] = [];
  private waiter: (() => void) | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 2 && this.buffered.length >= 2 + this.buffered.readUInt16BE(0)) {
        const length = this.buffered.readUInt16BE(0);
        this.messages.push(Buffer.from(this.buffered.subarray(2, 2 + length)));
        this.buffered = this.buffered.subarray(2 + length);
      }
      this.waiter?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  static async connect(port: number): Promise<TcpClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new TcpClient(socket);
  }

  send(message: Buffer): void {
    this.socket.write(frame(message));
  }

  /** The next `count` replies, decoded. */
  async receive(count: number): Promise<DecodedPacket[]> {
    const deadline = setTimeout(() => this.socket.destroy(new Error('no TCP reply')), REPLY_TIMEOUT_MS);
    try {
      while (this.messages.length < count) {
        if (this.socket.destroyed) throw new Error(`connection closed with ${this.messages.length} of ${count} replies`);
        await new Promise<void>((resolve) => {
          this.waiter = resolve;
          this.socket.once('close', resolve);
        });
      }
      return this.messages.splice(0, count).map((message) => dnsPacket.decode(message));
    } finally {
      clearTimeout(deadline);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

async function tcpQuery(port: number, packet: Packet): Promise<DecodedPacket> {
  const client = await TcpClient.connect(port);
  try {
    client.send(dnsPacket.encode(packet));
    const [reply] = await client.receive(1);
    if (reply === undefined) throw new Error('no reply');
    return reply;
  } finally {
    client.close();
  }
}

async function until(what: string, condition: () => boolean, timeoutMs = REPLY_TIMEOUT_MS): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function dataOf(answer: Answer): unknown {
  return 'data' in answer ? answer.data : undefined;
}

function addresses(packet: DecodedPacket): string[] {
  return (packet.answers ?? []).filter((answer) => answer.type === 'A').map((answer) => String(dataOf(answer)));
}

// ---------------------------------------------------------- fake upstream

/** An upstream nameserver on loopback (UDP and TCP on one port) with scripted answers. */
class FakeUpstream {
  readonly received: { transport: 'udp' | 'tcp'; name: string; id: number }[] = [];
  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeUpstream> {
    for (;;) {
      const udp = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
      const port = udp.address().port;
      const tcp = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, '127.0.0.1', resolve);
        });
      } catch {
        udp.close();
        continue;
      }
      const upstream = new FakeUpstream(udp, tcp, port);
      udp.on('message', (message, remote) => {
        const reply = upstream.answer(message, 'udp');
        if (reply !== undefined) udp.send(reply, remote.port, remote.address);
      });
      tcp.on('connection', (socket) => {
        socket.on('error', () => {});
        socket.on('data', (chunk: Buffer) => {
          const reply = upstream.answer(chunk.subarray(2), 'tcp');
          if (reply !== undefined) socket.write(frame(reply));
        });
      });
      return upstream;
    }
  }

  private answer(message: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    const asked = dnsPacket.decode(message);
    const question = asked.questions?.[0];
    if (question === undefined) return undefined;
    this.received.push({ transport, name: question.name, id: asked.id ?? 0 });
    const reply = (answers: Answer[], flags = 0): Buffer =>
      dnsPacket.encode({ type: 'response', id: asked.id ?? 0, flags: dnsPacket.RECURSION_AVAILABLE | flags, questions: [question], answers });
    const a = (address: string): Answer => ({ type: 'A', name: question.name, ttl: 60, data: address });
    switch (question.name) {
      case 'example.com':
        return reply([a('93.184.216.34')]);
      case 'nx.example.com':
        return reply([], 3);
      case 'silent.example.com':
        return undefined;
      case 'huge.example.com':
        // Too big for UDP: the upstream says so and answers in full over TCP.
        if (transport === 'udp') return reply([], dnsPacket.TRUNCATED_RESPONSE);
        return reply(Array.from({ length: 60 }, (_, index) => a(`192.0.2.${index + 1}`)));
      default:
        return reply([], 3);
    }
  }

  async close(): Promise<void> {
    await Promise.all([new Promise<void>((resolve) => this.udp.close(() => resolve())), new Promise<void>((resolve) => this.tcp.close(() => resolve()))]);
  }
}

// ------------------------------------------------------------------ tests

describe('proxy: cluster DNS server', () => {
  let upstream: FakeUpstream;
  let server: ClusterDnsServer;
  let port: number;
  const lines: string[] = [];

  before(async () => {
    upstream = await FakeUpstream.start();
    server = await ClusterDnsServer.start({
      records: clusterRecords(),
      host: '127.0.0.1',
      port: 0,
      upstreams: [`127.0.0.1:${upstream.port}`],
      upstreamTimeoutMs: 300,
      log: (line) => lines.push(line),
    });
    port = server.address().port;
  });

  after(async () => {
    await server.close();
    await upstream.close();
  });

  it('binds UDP and TCP on one port it reports, and fails to start on a port in use', async () => {
    expect(server.address().host).to.equal('127.0.0.1');
    expect(port).to.be.greaterThan(0);
    const error = await ClusterDnsServer.start({ records: clusterRecords(), host: '127.0.0.1', port, upstreams: [] }).catch((caught: unknown) => caught);
    expect((error as NodeJS.ErrnoException).code).to.equal('EADDRINUSE');
    expect(addresses(await udpQuery(port, query('web.default.svc.cluster.local', 'A')))).to.deep.equal(['10.96.0.10']);
  });

  it('answers A over UDP, authoritatively, under the client id', async () => {
    const reply = await udpQuery(port, query('web.default.svc.cluster.local', 'A', { id: 4242 }));
    expect(reply.id).to.equal(4242);
    expect(reply.type).to.equal('response');
    expect(rcodeOf(reply)).to.equal('NOERROR');
    expect(reply.flag_aa).to.equal(true);
    expect(reply.flag_rd).to.equal(true);
    expect(reply.questions).to.deep.equal([{ name: 'web.default.svc.cluster.local', type: 'A', class: 'IN' }]);
    expect(reply.answers).to.deep.equal([{ name: 'web.default.svc.cluster.local', type: 'A', ttl: 5, class: 'IN', flush: false, data: '10.96.0.10' }]);
  });

  it('answers SRV with the target addresses as additionals', async () => {
    const reply = await udpQuery(port, query('_http._tcp.web.default.svc.cluster.local', 'SRV'));
    expect(reply.answers?.map(dataOf)).to.deep.equal([{ priority: 0, weight: 100, port: 80, target: 'web.default.svc.cluster.local' }]);
    expect(reply.additionals?.map((answer) => [answer.name, answer.type, dataOf(answer)])).to.deep.equal([['web.default.svc.cluster.local', 'A', '10.96.0.10']]);
  });

  it('answers NXDOMAIN with the SOA, and NODATA for a type the name lacks', async () => {
    const before = server.stats().nxdomain;
    const missing = await udpQuery(port, query('nope.default.svc.cluster.local', 'A'));
    expect(rcodeOf(missing)).to.equal('NXDOMAIN');
    expect(missing.answers).to.deep.equal([]);
    expect(missing.authorities?.map((answer) => answer.type)).to.deep.equal(['SOA']);
    expect(server.stats().nxdomain).to.equal(before + 1);
    const nodata = await udpQuery(port, query('web.default.svc.cluster.local', 'AAAA'));
    expect(rcodeOf(nodata)).to.equal('NOERROR');
    expect(nodata.answers).to.deep.equal([]);
  });

  it('answers several queries on one TCP connection', async () => {
    const pipelined = await TcpClient.connect(port);
    try {
      const messages = [
        dnsPacket.encode(query('web.default.svc.cluster.local', 'A', { id: 21 })),
        dnsPacket.encode(query('nope.default.svc.cluster.local', 'A', { id: 22 })),
        dnsPacket.encode(query('10-1-2-3.default.pod.cluster.local', 'A', { id: 23 })),
      ];
      // All three in one write, the last split across two writes.
      const bytes = Buffer.concat(messages.map(frame));
      pipelined.socket.write(bytes.subarray(0, bytes.length - 7));
      pipelined.socket.write(bytes.subarray(bytes.length - 7));
      const replies = await pipelined.receive(3);
      const byId = new Map(replies.map((reply) => [reply.id, reply]));
      expect(addresses(byId.get(21) as DecodedPacket)).to.deep.equal(['10.96.0.10']);
      expect(rcodeOf(byId.get(22) as DecodedPacket)).to.equal('NXDOMAIN');
      expect(addresses(byId.get(23) as DecodedPacket)).to.deep.equal(['10.1.2.3']);
      // The connection stays open for more.
      pipelined.send(dnsPacket.encode(query('web.default.svc.cluster.local', 'A', { id: 24 })));
      expect((await pipelined.receive(1))[0]?.id).to.equal(24);
    } finally {
      pipelined.close();
    }
  });

  it('truncates a UDP answer over 512 bytes, which the client gets whole over TCP', async () => {
    const truncatedBefore = server.stats().truncated;
    const udp = await udpQuery(port, query('many.default.svc.cluster.local', 'A'));
    expect(udp.flag_tc).to.equal(true);
    expect(udp.answers).to.deep.equal([]);
    expect(server.stats().truncated).to.equal(truncatedBefore + 1);
    const tcp = await tcpQuery(port, query('many.default.svc.cluster.local', 'A'));
    expect(tcp.flag_tc).to.equal(false);
    expect(addresses(tcp)).to.have.length(HEADLESS_ENDPOINTS);
  });

  it('fits the answer to the client EDNS payload size', async () => {
    const plain = await udpQuery(port, query('medium.default.svc.cluster.local', 'A'));
    expect(plain.flag_tc).to.equal(true);
    const edns = await udpQuery(port, query('medium.default.svc.cluster.local', 'A', { edns: 4096 }));
    expect(edns.flag_tc).to.equal(false);
    expect(addresses(edns)).to.have.length(MEDIUM_ENDPOINTS);
    expect(edns.additionals?.some((answer) => answer.type === 'OPT')).to.equal(true);
  });

  it('serves a real stub resolver (c-ares), which retries a truncated answer over TCP', async () => {
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    expect(await resolver.resolve4('web.default.svc.cluster.local')).to.deep.equal(['10.96.0.10']);
    expect(await resolver.resolveSrv('_http._tcp.web.default.svc.cluster.local')).to.deep.equal([
      { name: 'web.default.svc.cluster.local', port: 80, priority: 0, weight: 100 },
    ]);
    const truncatedBefore = server.stats().truncated;
    expect(await resolver.resolve4('many.default.svc.cluster.local')).to.have.length(HEADLESS_ENDPOINTS);
    expect(server.stats().truncated).to.equal(truncatedBefore + 1);
    const error = await resolver.resolve4('nope.default.svc.cluster.local').catch((caught: unknown) => caught);
    expect((error as NodeJS.ErrnoException).code).to.equal('ENOTFOUND');
    expect(await resolver.resolve4('example.com')).to.deep.equal(['93.184.216.34']);
  });

  describe('forwarding', () => {
    it('relays the upstream answer for names outside the cluster domain under the client id', async () => {
      const before = server.stats().forwarded;
      const reply = await udpQuery(port, query('example.com', 'A', { id: 777 }));
      expect(reply.id).to.equal(777);
      expect(addresses(reply)).to.deep.equal(['93.184.216.34']);
      expect(server.stats().forwarded).to.equal(before + 1);
      expect(upstream.received.at(-1)?.name).to.equal('example.com');
      const nx = await udpQuery(port, query('nx.example.com', 'A'));
      expect(rcodeOf(nx)).to.equal('NXDOMAIN');
    });

    it('retries once, then answers SERVFAIL when the upstream does not answer', async () => {
      const servfailBefore = server.stats().servfail;
      const askedBefore = upstream.received.filter((item) => item.name === 'silent.example.com').length;
      const reply = await udpQuery(port, query('silent.example.com', 'A', { id: 31 }));
      expect(reply.id).to.equal(31);
      expect(rcodeOf(reply)).to.equal('SERVFAIL');
      expect(upstream.received.filter((item) => item.name === 'silent.example.com').length - askedBefore).to.equal(2);
      expect(server.stats().servfail).to.equal(servfailBefore + 1);
    });

    it('answers SERVFAIL when no upstream is listening', async () => {
      const closed = await FakeUpstream.start();
      await closed.close();
      const lonely = await ClusterDnsServer.start({ records: clusterRecords(), host: '127.0.0.1', port: 0, upstreams: [`127.0.0.1:${closed.port}`], upstreamTimeoutMs: 200 });
      try {
        const reply = await udpQuery(lonely.address().port, query('example.com', 'A'));
        expect(rcodeOf(reply)).to.equal('SERVFAIL');
        expect(lonely.stats()).to.include({ forwarded: 1, servfail: 1 });
      } finally {
        await lonely.close();
      }
    });

    it('asks the upstream over TCP when its UDP answer is truncated and the client came over TCP', async () => {
      const udp = await udpQuery(port, query('huge.example.com', 'A'));
      expect(udp.flag_tc).to.equal(true);
      const tcp = await tcpQuery(port, query('huge.example.com', 'A'));
      expect(addresses(tcp)).to.have.length(60);
      expect(upstream.received.filter((item) => item.name === 'huge.example.com').map((item) => item.transport)).to.deep.equal(['udp', 'udp', 'tcp']);
    });

    it('follows an ExternalName alias to its addresses upstream', async () => {
      const reply = await udpQuery(port, query('search.default.svc.cluster.local', 'A'));
      expect(rcodeOf(reply)).to.equal('NOERROR');
      expect(reply.answers?.map((answer) => [answer.name, answer.type, dataOf(answer)])).to.deep.equal([
        ['search.default.svc.cluster.local', 'CNAME', 'example.com'],
        ['example.com', 'A', '93.184.216.34'],
      ]);
      const cname = await udpQuery(port, query('search.default.svc.cluster.local', 'CNAME'));
      expect(cname.answers?.map((answer) => answer.type)).to.deep.equal(['CNAME']);
    });
  });

  describe('bad input', () => {
    it('answers FORMERR to several questions and NOTIMP to another opcode', async () => {
      const two = await udpQuery(port, query('', 'A', { questions: [{ name: 'web.default.svc.cluster.local', type: 'A' }, { name: 'example.com', type: 'A' }] }));
      expect(rcodeOf(two)).to.equal('FORMERR');
      const none = await udpQuery(port, query('', 'A', { questions: [] }));
      expect(rcodeOf(none)).to.equal('FORMERR');
      const notify = await udpQuery(port, query('web.default.svc.cluster.local', 'A', { flags: 4 << 11 }));
      expect(rcodeOf(notify)).to.equal('NOTIMP');
      expect(notify.answers).to.deep.equal([]);
    });

    it('drops malformed datagrams and keeps answering', async () => {
      const before = server.stats().malformed;
      const socket = dgram.createSocket('udp4');
      try {
        const garbage = [Buffer.from([1, 2, 3]), Buffer.alloc(12, 0xff), Buffer.concat([dnsPacket.encode(query('web.default.svc.cluster.local', 'A')).subarray(0, 20)])];
        for (const message of garbage) socket.send(message, port, '127.0.0.1');
        // A response is not a query either.
        socket.send(dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: 'x', type: 'A' }] }), port, '127.0.0.1');
        await until('the server to count four malformed packets', () => server.stats().malformed >= before + 4);
      } finally {
        socket.close();
      }
      expect(addresses(await udpQuery(port, query('web.default.svc.cluster.local', 'A')))).to.deep.equal(['10.96.0.10']);
    });

    it('closes a TCP connection that sends a malformed message, and keeps serving others', async () => {
      const client = await TcpClient.connect(port);
      client.send(Buffer.from('not a dns message at all'));
      await client.closed;
      expect(addresses(await tcpQuery(port, query('web.default.svc.cluster.local', 'A')))).to.deep.equal(['10.96.0.10']);
    });

    it('closes an idle TCP connection', async () => {
      const quick = await ClusterDnsServer.start({ records: clusterRecords(), host: '127.0.0.1', port: 0, upstreams: [], tcpIdleTimeoutMs: 100 });
      try {
        const client = await TcpClient.connect(quick.address().port);
        client.send(dnsPacket.encode(query('web.default.svc.cluster.local', 'A', { id: 5 })));
        expect((await client.receive(1))[0]?.id).to.equal(5);
        await client.closed;
        expect(client.socket.destroyed).to.equal(true);
      } finally {
        await quick.close();
      }
    });
  });

  describe('updates and metrics', () => {
  it('answers from the records it is handed by setRecords', async () => {
    expect(rcodeOf(await udpQuery(port, query('api.default.svc.cluster.local', 'A')))).to.equal('NXDOMAIN');
    server.setRecords(clusterRecords([{ metadata: { namespace: 'default', name: 'api' }, spec: { clusterIP: '10.96.0.99' } }]));
    expect(addresses(await udpQuery(port, query('api.default.svc.cluster.local', 'A')))).to.deep.equal(['10.96.0.99']);
    expect(addresses(await tcpQuery(port, query('API.default.svc.cluster.local.', 'A')))).to.deep.equal(['10.96.0.99']);
  });

  it('counts queries', () => {
    const stats = server.stats();
    expect(stats.queries).to.be.greaterThan(20);
    expect(stats.forwarded).to.be.greaterThan(0);
    expect(stats.nxdomain).to.be.greaterThan(0);
    expect(stats.servfail).to.be.greaterThan(0);
    expect(stats.malformed).to.be.greaterThan(0);
  });
  });
});

describe('proxy: cluster DNS upstream configuration', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mast-dns-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses upstream addresses', () => {
    expect(parseUpstream('10.0.0.53')).to.deep.equal({ host: '10.0.0.53', port: 53 });
    expect(parseUpstream('10.0.0.53:5353')).to.deep.equal({ host: '10.0.0.53', port: 5353 });
    expect(parseUpstream('fd00::53')).to.deep.equal({ host: 'fd00::53', port: 53 });
    expect(parseUpstream('[fd00::53]:5353')).to.deep.equal({ host: 'fd00::53', port: 5353 });
    expect(() => parseUpstream('dns.example.com')).to.throw(/not ip/);
  });

  it('reads the nameserver lines of resolv.conf', () => {
    const text = '# generated\nsearch example.com\nnameserver 10.0.0.2\n  nameserver   fd00::1 \n; nameserver 10.0.0.3\nnameserver bogus\noptions ndots:5\n';
    expect(nameserversOf(text)).to.deep.equal(['10.0.0.2', 'fd00::1']);
  });

  it('leaves this server out of the resolv.conf nameservers when it listens on port 53', () => {
    const text = 'nameserver 10.0.0.10\nnameserver 10.0.0.2\nnameserver 127.0.0.1\n';
    expect(upstreamsFromResolvConf(text, { host: '10.0.0.10', port: 53 })).to.deep.equal([
      { host: '10.0.0.2', port: 53 },
      { host: '127.0.0.1', port: 53 },
    ]);
    // Listening on every address: loopback is this server too.
    expect(upstreamsFromResolvConf(text, { host: '0.0.0.0', port: 53 }).map((upstream) => upstream.host)).to.not.include('127.0.0.1');
    // On another port, a nameserver on 53 is someone else.
    expect(upstreamsFromResolvConf(text, { host: '10.0.0.10', port: 1053 })).to.have.length(3);
  });

  it('defaults to the nameservers of resolv.conf', async () => {
    const path = join(dir, 'resolv.conf');
    await writeFile(path, 'nameserver 127.0.0.1\nnameserver 10.0.0.2\n');
    const server = await ClusterDnsServer.start({ records: clusterRecords(), host: '127.0.0.1', port: 0, resolvConfPath: path });
    try {
      // Not port 53, so 127.0.0.1 is not this server and stays.
      expect(server.upstreamServers()).to.deep.equal([
        { host: '127.0.0.1', port: 53 },
        { host: '10.0.0.2', port: 53 },
      ]);
    } finally {
      await server.close();
    }
  });
});
