// The userspace proxy on real loopback sockets: Services answer on
// 127.77.N.x addresses (every 127.x.y.z is local on Linux), backends are
// TCP and UDP servers on 127.0.0.1 that answer with their own name.
// Time for session affinity comes from a fake clock; everything else waits
// on conditions, never on fixed sleeps.

import { expect } from 'chai';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Backend, ProxyRules, RulesChange, ServicePortRule } from '../../services/proxy/rules.js';
import { diffRules } from '../../services/proxy/rules.js';
import { UserspaceBackend, type UserspaceBackendOptions } from '../../services/proxy/userspace.js';

/** A /24 of loopback VIPs per run, so concurrent runs of this file do not collide. */
const NET = `127.77.${20 + (process.pid % 200)}`;
const VIP_PORT = 8080;
/** Not a local address: binding it fails with EADDRNOTAVAIL. */
const NOT_LOCAL = '10.255.255.1';

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async function () {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function rule(id: string, fields: Partial<ServicePortRule> & { backends: readonly Backend[] }): ServicePortRule {
  const [namespace = '', rest = ''] = id.split('/');
  const [name = '', portName = ''] = rest.split(':');
  return { id, namespace, name, portName, protocol: 'TCP', port: VIP_PORT, externalIPs: [], ...fields };
}

function rules(...services: ServicePortRule[]): ProxyRules {
  return { services: [...services].sort((a, b) => (a.id < b.id ? -1 : 1)) };
}

function proxy(options: Partial<UserspaceBackendOptions> = {}): { backend: UserspaceBackend; logs: string[] } {
  const logs: string[] = [];
  const backend = new UserspaceBackend({ nodeIPs: ['127.0.0.1'], log: (line) => logs.push(line), ...options });
  cleanups.push(() => backend.close());
  return { backend, logs };
}

/** A TCP backend: answers each line with its name, and "bye:NAME" then an end once the client half-closes. */
interface TcpBackend extends Backend {
  readonly name: string;
  accepted: number;
}

async function tcpBackend(name: string): Promise<TcpBackend> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    backend.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        buffered = buffered.slice(newline + 1);
        socket.write(`${name}\n`);
      }
    });
    socket.on('end', () => socket.end(`bye:${name}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const backend: TcpBackend = { name, ip: '127.0.0.1', port: (server.address() as AddressInfo).port, accepted: 0 };
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return backend;
}

async function udpBackend(name: string): Promise<Backend & { readonly name: string }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, from) => socket.send(`${name}:${message.toString()}`, from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { name, ip: '127.0.0.1', port: socket.address().port };
}

/** A free port on 127.0.0.1 (nothing listens there now). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A client connection that asks "who?" one line at a time. */
interface Client {
  ask(): Promise<string>;
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
}

async function openClient(host: string, port: number, localAddress?: string): Promise<Client> {
  const socket = net.connect({ host, port, ...(localAddress === undefined ? {} : { localAddress }) });
  cleanups.push(() => void socket.destroy());
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('close', () => reject(new Error(`connection to ${host}:${port} closed before it opened`)));
  });
  let buffered = '';
  const waiting: ((line: string) => void)[] = [];
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      waiting.shift()?.(line);
    }
  });
  return {
    socket,
    closed,
    ask: () =>
      new Promise<string>((resolve, reject) => {
        waiting.push(resolve);
        socket.once('close', () => reject(new Error('the connection closed before the answer')));
        socket.write('who?\n');
      }),
  };
}

/** One connection, one question: the name of the backend that answered. */
async function askTcp(host: string, port: number, localAddress?: string): Promise<string> {
  const client = await openClient(host, port, localAddress);
  const name = await client.ask();
  client.socket.destroy();
  return name;
}

/** How a connection attempt ended: refused, reset, or closed after connecting. */
async function connectOutcome(host: string, port: number): Promise<{ readonly code: string; readonly elapsedMs: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let code = 'closed';
    socket.on('error', (error: NodeJS.ErrnoException) => (code = error.code ?? 'error'));
    socket.on('close', () => resolve({ code, elapsedMs: Date.now() - started }));
    socket.resume();
  });
}

/** A UDP client socket on 127.0.0.1 that collects every reply with its sender. */
async function udpClient(): Promise<{ send(host: string, port: number, text: string): Promise<void>; next(): Promise<{ text: string; from: string }> }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  const replies: { text: string; from: string }[] = [];
  socket.on('message', (message, from) => replies.push({ text: message.toString(), from: `${from.address}:${from.port}` }));
  return {
    send: (host, port, text) => new Promise<void>((resolve, reject) => socket.send(text, port, host, (error) => (error ? reject(error) : resolve()))),
    next: () => until('a UDP reply', () => replies.shift()),
  };
}

function changeOf(before: ProxyRules, after: ProxyRules): RulesChange {
  return diffRules(before, after);
}

describe('proxy: userspace backend', function () {
  it('relays TCP to the backends in round robin', async function () {
    const [a, b] = await Promise.all([tcpBackend('a'), tcpBackend('b')]);
    const { backend } = proxy();
    expect(backend.mode).to.equal('userspace');
    await backend.sync(rules(rule('default/web:', { clusterIP: `${NET}.10`, backends: [a, b] })));
    const names: string[] = [];
    for (let index = 0; index < 4; index++) names.push(await askTcp(`${NET}.10`, VIP_PORT));
    expect(names).to.deep.equal(['a', 'b', 'a', 'b']);
    expect([a.accepted, b.accepted]).to.deep.equal([2, 2]);
    expect(backend.stats().connections).to.equal(4);
    expect(await backend.verify()).to.equal(true);
    expect(backend.failures()).to.deep.equal([]);
    await until('every relayed connection to be closed', () => (backend.stats().activeConnections === 0 ? true : undefined));
  });

  it('passes a half close on and relays the answer that follows it', async function () {
    const a = await tcpBackend('a');
    const { backend } = proxy();
    await backend.sync(rules(rule('default/web:', { clusterIP: `${NET}.10`, backends: [a] })));
    const socket = net.connect({ host: `${NET}.10`, port: VIP_PORT, allowHalfOpen: true });
    cleanups.push(() => void socket.destroy());
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.end('no question, just an end');
    await new Promise<void>((resolve, reject) => {
      socket.once('end', resolve);
      socket.once('error', reject);
    });
    expect(received).to.equal('bye:a');
  });

  it('relays UDP through the VIP, one session per client, and ends idle sessions', async function () {
    const [a, b] = await Promise.all([udpBackend('a'), udpBackend('b')]);
    const { backend } = proxy({ udpIdleTimeoutMs: 500 });
    await backend.sync(rules(rule('kube-system/dns:dns', { protocol: 'UDP', clusterIP: `${NET}.11`, port: 5353, backends: [a, b] })));
    const first = await udpClient();
    const second = await udpClient();
    await first.send(`${NET}.11`, 5353, 'hello');
    expect(await first.next()).to.deep.equal({ text: 'a:hello', from: `${NET}.11:5353` });
    await first.send(`${NET}.11`, 5353, 'again');
    expect(await first.next()).to.deep.equal({ text: 'a:again', from: `${NET}.11:5353` });
    await second.send(`${NET}.11`, 5353, 'hi');
    expect(await second.next()).to.deep.equal({ text: 'b:hi', from: `${NET}.11:5353` });
    expect(backend.stats().udpSessions).to.equal(2);
    await until('the idle sessions to end', () => (backend.stats().udpSessions === 0 ? true : undefined));
    await first.send(`${NET}.11`, 5353, 'later');
    expect((await first.next()).text).to.match(/^[ab]:later$/);
  });

  it('ends the UDP sessions of a removed backend, so the client moves to one that remains', async function () {
    const [a, b] = await Promise.all([udpBackend('a'), udpBackend('b')]);
    const { backend } = proxy();
    const before = rules(rule('default/udp:', { protocol: 'UDP', clusterIP: `${NET}.23`, port: 5353, backends: [a, b] }));
    await backend.sync(before);
    const client = await udpClient();
    await client.send(`${NET}.23`, 5353, 'one');
    expect((await client.next()).text).to.equal('a:one');
    const after = rules(rule('default/udp:', { protocol: 'UDP', clusterIP: `${NET}.23`, port: 5353, backends: [b] }));
    await backend.update(changeOf(before, after), after);
    expect(backend.stats().udpSessions).to.equal(0);
    await client.send(`${NET}.23`, 5353, 'two');
    expect((await client.next()).text).to.equal('b:two');
  });

  it('answers on a NodePort of the node IP and on an external IP', async function () {
    const a = await tcpBackend('a');
    const nodePort = await freePort();
    const { backend } = proxy();
    await backend.sync(rules(rule('default/web:http', { clusterIP: `${NET}.12`, nodePort, externalIPs: [`${NET}.200`], backends: [a] })));
    expect(await askTcp('127.0.0.1', nodePort)).to.equal('a');
    expect(await askTcp(`${NET}.200`, VIP_PORT)).to.equal('a');
    expect(await askTcp(`${NET}.12`, VIP_PORT)).to.equal('a');
    expect(a.accepted).to.equal(3);
  });

  it('keeps a client IP on one backend until the affinity timeout after its last connection', async function () {
    const [a, b] = await Promise.all([tcpBackend('a'), tcpBackend('b')]);
    let nowMs = 1_000_000;
    const { backend } = proxy({ now: () => nowMs });
    await backend.sync(rules(rule('default/sticky:', { clusterIP: `${NET}.13`, sessionAffinity: { timeoutSeconds: 10 }, backends: [a, b] })));
    const ask = (client: string): Promise<string> => askTcp(`${NET}.13`, VIP_PORT, client);
    expect(await ask('127.0.0.1')).to.equal('a');
    expect(await ask('127.0.0.2')).to.equal('b');
    expect(await ask('127.0.0.3')).to.equal('a');
    for (let index = 0; index < 3; index++) expect(await ask('127.0.0.1')).to.equal('a');
    expect(await ask('127.0.0.2')).to.equal('b');
    nowMs += 9_000;
    expect(await ask('127.0.0.1')).to.equal('a');
    nowMs += 9_000; // 18 s after the first connection, 9 s after the last one
    expect(await ask('127.0.0.1')).to.equal('a');
    nowMs += 10_001;
    expect(await ask('127.0.0.1')).to.equal('b'); // expired: round robin's next
  });

  it('sends no new connections to a removed backend and keeps the existing ones', async function () {
    const [a, b] = await Promise.all([tcpBackend('a'), tcpBackend('b')]);
    const { backend } = proxy();
    const before = rules(rule('default/web:', { clusterIP: `${NET}.14`, backends: [a, b] }), rule('default/other:', { clusterIP: `${NET}.15`, backends: [b] }));
    await backend.sync(before);
    const onA = await openClient(`${NET}.14`, VIP_PORT);
    expect(await onA.ask()).to.equal('a');
    const onOther = await openClient(`${NET}.15`, VIP_PORT);
    expect(await onOther.ask()).to.equal('b');
    const after = rules(rule('default/web:', { clusterIP: `${NET}.14`, backends: [b] }), rule('default/other:', { clusterIP: `${NET}.15`, backends: [b] }));
    await backend.update(changeOf(before, after), after);
    const acceptedByA = a.accepted;
    for (let index = 0; index < 4; index++) expect(await askTcp(`${NET}.14`, VIP_PORT)).to.equal('b');
    expect(a.accepted).to.equal(acceptedByA);
    expect(await onA.ask()).to.equal('a');
    expect(await onOther.ask()).to.equal('b');
    expect(await backend.verify()).to.equal(true);
  });

  it('stops answering on the port of a removed Service, and the others stay up', async function () {
    const a = await tcpBackend('a');
    const { backend } = proxy();
    const before = rules(rule('default/gone:', { clusterIP: `${NET}.16`, backends: [a] }), rule('default/kept:', { clusterIP: `${NET}.17`, backends: [a] }));
    await backend.sync(before);
    expect(await askTcp(`${NET}.16`, VIP_PORT)).to.equal('a');
    const kept = await openClient(`${NET}.17`, VIP_PORT);
    const after = rules(rule('default/kept:', { clusterIP: `${NET}.17`, backends: [a] }));
    await backend.update(changeOf(before, after), after);
    expect((await connectOutcome(`${NET}.16`, VIP_PORT)).code).to.equal('ECONNREFUSED');
    expect(await kept.ask()).to.equal('a');
    expect(await askTcp(`${NET}.17`, VIP_PORT)).to.equal('a');
  });

  it('resets TCP connections at once when a Service has no backends, and drops its datagrams', async function () {
    const { backend } = proxy();
    const empty = rules(rule('default/empty:', { clusterIP: `${NET}.18`, backends: [] }), rule('default/quiet:', { protocol: 'UDP', clusterIP: `${NET}.18`, port: 5353, backends: [] }));
    await backend.sync(empty);
    const client = await udpClient();
    await client.send(`${NET}.18`, 5353, 'dropped');
    // The datagram waits in the proxy's socket before the connection below is even
    // attempted, so the proxy has read (and dropped) it by the time it resets that one.
    const outcome = await connectOutcome(`${NET}.18`, VIP_PORT);
    expect(outcome.code).to.equal('ECONNRESET');
    expect(outcome.elapsedMs).to.be.below(1000);
    expect(backend.stats().udpSessions).to.equal(0);
    const u = await udpBackend('u');
    const served = rules(rule('default/empty:', { clusterIP: `${NET}.18`, backends: [] }), rule('default/quiet:', { protocol: 'UDP', clusterIP: `${NET}.18`, port: 5353, backends: [u] }));
    await backend.update(changeOf(empty, served), served);
    await client.send(`${NET}.18`, 5353, 'served');
    expect((await client.next()).text).to.equal('u:served'); // the first datagram was dropped, not queued
  });

  it('falls over to the next backend when one refuses', async function () {
    const a = await tcpBackend('a');
    const refusing: Backend = { ip: '127.0.0.1', port: await freePort() };
    const { backend } = proxy();
    await backend.sync(rules(rule('default/web:', { clusterIP: `${NET}.19`, backends: [refusing, a].sort((x, y) => x.port - y.port) })));
    for (let index = 0; index < 4; index++) expect(await askTcp(`${NET}.19`, VIP_PORT)).to.equal('a');
    expect(a.accepted).to.equal(4);
  });

  it('reports an address it cannot listen on, serves the others, and retries on the next sync', async function () {
    const a = await tcpBackend('a');
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(VIP_PORT, `${NET}.21`, resolve));
    const { backend, logs } = proxy();
    const desired = rules(
      rule('default/bad:', { clusterIP: NOT_LOCAL, backends: [a] }),
      rule('default/good:', { clusterIP: `${NET}.20`, backends: [a] }),
      rule('default/taken:', { clusterIP: `${NET}.21`, backends: [a] }),
    );
    await backend.sync(desired);
    expect(backend.failures().map((failure) => [failure.ruleId, failure.address, failure.code])).to.deep.equal([
      ['default/bad:', `${NOT_LOCAL}:${VIP_PORT}`, 'EADDRNOTAVAIL'],
      ['default/taken:', `${NET}.21:${VIP_PORT}`, 'EADDRINUSE'],
    ]);
    expect(logs.some((line) => line.includes('default/bad:') && line.includes(`${NOT_LOCAL}:${VIP_PORT}`))).to.equal(true);
    expect(backend.stats().bindFailures).to.equal(2);
    expect(await backend.verify()).to.equal(false);
    expect(await askTcp(`${NET}.20`, VIP_PORT)).to.equal('a');

    await new Promise((resolve) => squatter.close(resolve));
    const repaired = rules(rule('default/good:', { clusterIP: `${NET}.20`, backends: [a] }), rule('default/taken:', { clusterIP: `${NET}.21`, backends: [a] }));
    await backend.sync(repaired);
    expect(backend.failures()).to.deep.equal([]);
    expect(await backend.verify()).to.equal(true);
    expect(await askTcp(`${NET}.21`, VIP_PORT)).to.equal('a');
  });

  it('frees every port and ends every connection on close()', async function () {
    const a = await tcpBackend('a');
    const u = await udpBackend('u');
    const nodePort = await freePort();
    const { backend } = proxy();
    await backend.sync(
      rules(
        rule('default/tcp:', { clusterIP: `${NET}.22`, nodePort, externalIPs: [`${NET}.201`], backends: [a] }),
        rule('default/udp:', { protocol: 'UDP', clusterIP: `${NET}.22`, port: 5353, backends: [u] }),
      ),
    );
    const open = await openClient(`${NET}.22`, VIP_PORT);
    expect(await open.ask()).to.equal('a');
    const client = await udpClient();
    await client.send(`${NET}.22`, 5353, 'x');
    expect((await client.next()).text).to.equal('u:x');
    await backend.close();
    await open.closed;
    expect(backend.stats()).to.include({ activeConnections: 0, udpSessions: 0 });
    expect(await backend.verify()).to.equal(false);
    for (const [host, port] of [[`${NET}.22`, VIP_PORT], [`${NET}.201`, VIP_PORT], ['127.0.0.1', nodePort]] as const) {
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, resolve);
      });
      await new Promise((resolve) => server.close(resolve));
    }
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(5353, `${NET}.22`, resolve);
    });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    await backend.close(); // twice is fine
  });
});
