// The userspace Service proxy, kube-proxy's oldest mode and the one that
// needs no root: the proxy itself listens on every address a Service answers
// on (its cluster IP and external IPs at the Service port, every node IP at
// the node port) and relays each TCP connection or UDP exchange to a backend
// it chooses. It works wherever those addresses are local — on Linux every
// 127.x.y.z is — so a cluster whose service range lies in 127.0.0.0/8 runs
// without nftables, IPVS or privileges.
//
// Listeners are keyed by protocol and address. A change that keeps a rule's
// addresses only swaps its backend list in place: connections in flight are
// never cut by a change, and a connection to a removed backend lasts until it
// ends (as in kube-proxy's userspace mode). UDP sessions to a removed backend
// are closed instead, as kube-proxy clears UDP conntrack entries: a datagram
// flow has no end that would move it to a live backend.

import { connect, createServer, isIPv6, type Server, type Socket } from 'node:net';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import type { ProxyBackend, ProxyBackendOptions } from './backend.js';
import type { Backend, Protocol, ProxyRules, RulesChange, ServicePortRule } from './rules.js';

export interface UserspaceBackendOptions extends ProxyBackendOptions {
  /** Milliseconds, for session affinity; default Date.now. */
  readonly now?: () => number;
  /** A UDP session (one client address and port) closes after this long without a datagram either way; default 30 s. */
  readonly udpIdleTimeoutMs?: number;
  /** How long connecting to one backend may take before the next one is tried; default 5 s. */
  readonly connectTimeoutMs?: number;
}

/** An address a rule should answer on but does not. */
export interface ListenFailure {
  readonly ruleId: string;
  readonly protocol: Protocol;
  /** "ip:port" */
  readonly address: string;
  /**
   * The errno code (EADDRNOTAVAIL: not a local address; EACCES: a port below 1024 without root;
   * EADDRINUSE: another process has it), or CONFLICT (another rule has it) or UNSUPPORTED (SCTP).
   * A sync retries the errno kinds; the other two last until the rules change.
   */
  readonly code: string;
  readonly message: string;
}

export interface UserspaceStats {
  /** TCP connections accepted, since the start. */
  readonly connections: number;
  /** TCP connections open now (client side). */
  readonly activeConnections: number;
  /** UDP sessions open now. */
  readonly udpSessions: number;
  /** Attempts to listen that failed, since the start (failures() has the current ones). */
  readonly bindFailures: number;
}

const DEFAULT_UDP_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** Client IPs remembered per Service for session affinity; beyond it the least recently seen is forgotten (bounds memory against many clients). */
const AFFINITY_CLIENTS_MAX = 65_536;
/** UDP sessions per listener; datagrams from further clients are dropped (each session holds a socket, i.e. a file descriptor). */
const UDP_SESSIONS_MAX = 4_096;
/** Datagrams a UDP session holds while its socket connects; more are dropped, as the network would. */
const UDP_PENDING_MAX = 64;
const NOT_RETRYABLE = new Set(['CONFLICT', 'UNSUPPORTED']);

interface Address {
  /** "PROTOCOL ip:port", the listener's identity. */
  readonly key: string;
  readonly protocol: Protocol;
  readonly ip: string;
  readonly port: number;
}

interface ServiceState {
  rule: ServicePortRule;
  nextIndex: number;
  /** Client IP → its backend, least recently seen first. */
  readonly affinity: Map<string, { readonly backend: Backend; readonly lastUsedMs: number }>;
}

interface UdpSession {
  readonly upstream: UdpSocket;
  readonly backend: Backend;
  readonly timer: NodeJS.Timeout;
  /** Datagrams waiting for the upstream socket to connect; undefined once connected. */
  pending: Buffer[] | undefined;
}

interface TcpListener {
  readonly kind: 'TCP';
  readonly address: Address;
  /** Reassigned when another rule takes the address over without it being closed. */
  ruleId: string;
  readonly server: Server;
}

interface UdpListener {
  readonly kind: 'UDP';
  readonly address: Address;
  ruleId: string;
  readonly socket: UdpSocket;
  /** By client "ip:port". */
  readonly sessions: Map<string, UdpSession>;
}

type Listener = TcpListener | UdpListener;

function hostPort(ip: string, port: number): string {
  return isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function addressOf(protocol: Protocol, ip: string, port: number): Address {
  return { key: `${protocol} ${hostPort(ip, port)}`, protocol, ip, port };
}

function sameBackend(a: Backend, b: Backend): boolean {
  return a.ip === b.ip && a.port === b.port;
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

function hintFor(code: string): string {
  if (code === 'EADDRNOTAVAIL') return ': the address is not local to this node';
  if (code === 'EACCES') return ': ports below 1024 need root';
  if (code === 'EADDRINUSE') return ': something else listens there';
  return '';
}

/** Closes a TCP connection with a reset, so the peer fails at once instead of reading an orderly end. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export class UserspaceBackend implements ProxyBackend {
  readonly mode = 'userspace' as const;
  private readonly nodeIPs: readonly string[];
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private readonly udpIdleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly services = new Map<string, ServiceState>();
  private readonly listeners = new Map<string, Listener>();
  /** Keyed by "ruleId address-key". */
  private readonly failed = new Map<string, ListenFailure>();
  /** Every TCP socket open through the proxy (client and upstream), for close(). */
  private readonly sockets = new Set<Socket>();
  private readonly counters = { connections: 0, activeConnections: 0, udpSessions: 0, bindFailures: 0 };
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: UserspaceBackendOptions) {
    this.nodeIPs = [...new Set(options.nodeIPs)];
    this.log = options.log ?? (() => {});
    this.now = options.now ?? (() => Date.now());
    this.udpIdleTimeoutMs = options.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  sync(rules: ProxyRules): Promise<void> {
    return this.serially(() => this.reconcile(rules.services, undefined));
  }

  update(change: RulesChange, rules: ProxyRules): Promise<void> {
    const scope = new Set([...change.added, ...change.removed, ...change.changed.map((pair) => pair.after)].map((rule) => rule.id));
    return this.serially(() => this.reconcile(rules.services.filter((rule) => scope.has(rule.id)), scope));
  }

  /** False while an address that should be listened on is not (a sync retries it). */
  verify(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const retryable = [...this.failed.values()].some((failure) => !NOT_RETRYABLE.has(failure.code));
    const broken = [...this.listeners.values()].some((listener) => listener.kind === 'TCP' && !listener.server.listening);
    return Promise.resolve(!retryable && !broken);
  }

  close(): Promise<void> {
    this.closing ??= this.serially(async () => {
      this.closed = true;
      const closing = [...this.sockets].map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
      for (const socket of this.sockets) socket.destroy();
      closing.push(...[...this.listeners.values()].map((listener) => this.closeListener(listener)));
      this.services.clear();
      this.failed.clear();
      await Promise.all(closing);
    });
    return this.closing;
  }

  /** The addresses that should be listened on and are not, sorted by rule id then address. */
  failures(): ListenFailure[] {
    return [...this.failed.values()].sort((a, b) => (a.ruleId < b.ruleId ? -1 : a.ruleId > b.ruleId ? 1 : a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  stats(): UserspaceStats {
    return { ...this.counters };
  }

  private serially(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(() => {
      if (this.closed) throw new Error('the userspace proxy is closed');
      return work();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private addressesOf(rule: ServicePortRule): Address[] {
    const addresses = new Map<string, Address>();
    const add = (ip: string, port: number): void => {
      const address = addressOf(rule.protocol, ip, port);
      addresses.set(address.key, address);
    };
    if (rule.clusterIP !== undefined) add(rule.clusterIP, rule.port);
    for (const ip of rule.externalIPs) add(ip, rule.port);
    if (rule.nodePort !== undefined) for (const ip of this.nodeIPs) add(ip, rule.nodePort);
    return [...addresses.values()];
  }

  /**
   * Converges the rules whose ids are in `scope` (all when undefined) to `desired`.
   * An address keeps its listener while its owner still claims it; otherwise the
   * first claimant in rule order gets it and the others a CONFLICT failure.
   */
  private async reconcile(desired: readonly ServicePortRule[], scope: ReadonlySet<string> | undefined): Promise<void> {
    const inScope = (id: string): boolean => scope === undefined || scope.has(id);
    const desiredIds = new Set(desired.map((rule) => rule.id));
    for (const id of [...this.services.keys()]) if (inScope(id) && !desiredIds.has(id)) this.services.delete(id);
    for (const rule of desired) this.setRule(rule);

    const claims = new Map<string, { address: Address; ruleIds: string[] }>();
    for (const rule of desired) {
      for (const address of this.addressesOf(rule)) {
        const claim = claims.get(address.key) ?? { address, ruleIds: [] };
        claim.ruleIds.push(rule.id);
        claims.set(address.key, claim);
      }
    }
    const closing: Promise<void>[] = [];
    for (const listener of [...this.listeners.values()]) {
      if (!inScope(listener.ruleId)) continue;
      const claim = claims.get(listener.address.key);
      if (claim === undefined) closing.push(this.closeListener(listener));
      else if (!claim.ruleIds.includes(listener.ruleId)) listener.ruleId = claim.ruleIds[0] ?? listener.ruleId;
    }
    const opening: Promise<string | undefined>[] = [];
    const failing: string[] = [];
    for (const { address, ruleIds } of claims.values()) {
      const holder = this.listeners.get(address.key)?.ruleId;
      for (const ruleId of ruleIds) {
        if (holder === undefined && ruleId === ruleIds[0]) opening.push(this.openListener(address, ruleId));
        else if (holder !== ruleId) failing.push(this.recordFailure(ruleId, address, 'CONFLICT', `the address is claimed by ${holder ?? ruleIds[0]} too`));
      }
    }
    for (const listener of this.listeners.values()) if (listener.kind === 'UDP' && inScope(listener.ruleId)) this.dropStaleSessions(listener);
    const [, opened] = await Promise.all([Promise.all(closing), Promise.all(opening)]);
    // Failures of this scope that did not happen again are over.
    const current = new Set([...failing, ...opened]);
    for (const [key, failure] of this.failed) if (inScope(failure.ruleId) && !current.has(key)) this.failed.delete(key);
  }

  /** Swaps a rule in place: round robin and affinity continue over the backends that remain. */
  private setRule(rule: ServicePortRule): void {
    const state = this.services.get(rule.id);
    if (state === undefined) {
      this.services.set(rule.id, { rule, nextIndex: 0, affinity: new Map() });
      return;
    }
    state.rule = rule;
    state.nextIndex = rule.backends.length === 0 ? 0 : state.nextIndex % rule.backends.length;
    if (rule.sessionAffinity === undefined) state.affinity.clear();
    for (const [client, entry] of state.affinity) {
      if (!rule.backends.some((backend) => sameBackend(backend, entry.backend))) state.affinity.delete(client);
    }
  }

  /** Returns the failure's key. */
  private recordFailure(ruleId: string, address: Address, code: string, detail: string): string {
    const key = `${ruleId} ${address.key}`;
    const previous = this.failed.get(key);
    const failure: ListenFailure = { ruleId, protocol: address.protocol, address: hostPort(address.ip, address.port), code, message: `${ruleId}: cannot listen on ${address.key}: ${detail}` };
    this.failed.set(key, failure);
    if (previous?.code !== code) this.log(`proxy userspace: ${failure.message}`);
    return key;
  }

  /** Returns the key of the failure when it could not listen. */
  private async openListener(address: Address, ruleId: string): Promise<string | undefined> {
    if (address.protocol === 'SCTP') return this.recordFailure(ruleId, address, 'UNSUPPORTED', 'the userspace proxy relays TCP and UDP only');
    try {
      const listener = address.protocol === 'TCP' ? await this.listenTcp(address, ruleId) : await this.listenUdp(address, ruleId);
      this.listeners.set(address.key, listener);
      this.log(`proxy userspace: ${ruleId} answers on ${address.key}`);
      return undefined;
    } catch (error) {
      this.counters.bindFailures++;
      const code = errorCode(error);
      return this.recordFailure(ruleId, address, code, `${code}${hintFor(code)}`);
    }
  }

  private async closeListener(listener: Listener): Promise<void> {
    if (this.listeners.get(listener.address.key) === listener) this.listeners.delete(listener.address.key);
    if (listener.kind === 'TCP') {
      // close() releases the port at once; its callback waits for the connections,
      // which stay up until they end (close() of the whole backend destroys them first).
      await new Promise<void>((resolve) => {
        listener.server.close(() => resolve());
        if (!this.closed) resolve();
      });
      return;
    }
    for (const [client, session] of listener.sessions) this.closeSession(listener, client, session);
    await new Promise<void>((resolve) => {
      try {
        listener.socket.close(() => resolve());
      } catch {
        resolve(); // it had closed itself
      }
    });
  }

  /** A listening socket closed by something else than closeListener: a failure the next sync repairs. */
  private listenerClosed(listener: Listener): void {
    if (this.listeners.get(listener.address.key) !== listener) return;
    this.listeners.delete(listener.address.key);
    if (listener.kind === 'UDP') for (const [client, session] of listener.sessions) this.closeSession(listener, client, session);
    this.recordFailure(listener.ruleId, listener.address, 'ECLOSED', 'the listening socket closed');
  }

  /**
   * The backends to try for a new connection from `clientIP`, best first: its
   * affinity backend while that lasts, else the next in round robin; then the
   * rest in round-robin order, for fail-over.
   */
  private candidates(state: ServiceState, clientIP: string): Backend[] {
    const backends = state.rule.backends;
    const count = backends.length;
    if (count === 0) return [];
    let first: number | undefined;
    const affinity = state.rule.sessionAffinity;
    const remembered = affinity === undefined ? undefined : state.affinity.get(clientIP);
    if (affinity !== undefined && remembered !== undefined && this.now() - remembered.lastUsedMs < affinity.timeoutSeconds * 1000) {
      const index = backends.findIndex((backend) => sameBackend(backend, remembered.backend));
      if (index >= 0) first = index;
    }
    if (first === undefined) {
      first = state.nextIndex % count;
      state.nextIndex = (first + 1) % count;
    }
    const ordered: Backend[] = [];
    for (let offset = 0; offset < count; offset++) {
      const backend = backends[(first + offset) % count];
      if (backend !== undefined) ordered.push(backend);
    }
    return ordered;
  }

  /** Records that `clientIP` used `backend` now (session affinity), forgetting clients whose affinity expired. */
  private remember(state: ServiceState, clientIP: string, backend: Backend): void {
    const affinity = state.rule.sessionAffinity;
    if (affinity === undefined) return;
    const nowMs = this.now();
    state.affinity.delete(clientIP);
    state.affinity.set(clientIP, { backend, lastUsedMs: nowMs });
    for (const [client, entry] of state.affinity) {
      if (nowMs - entry.lastUsedMs < affinity.timeoutSeconds * 1000 && state.affinity.size <= AFFINITY_CLIENTS_MAX) break;
      state.affinity.delete(client);
    }
  }

  // ---- TCP ----

  private listenTcp(address: Address, ruleId: string): Promise<TcpListener> {
    return new Promise((resolve, reject) => {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
      const listener: TcpListener = { kind: 'TCP', address, ruleId, server };
      server.once('error', reject);
      server.listen({ host: address.ip, port: address.port, exclusive: true }, () => {
        server.off('error', reject);
        // An accept error (EMFILE) does not stop the server: log it and keep listening.
        server.on('error', (error) => this.log(`proxy userspace: ${listener.ruleId} on ${address.key}: ${String(error)}`));
        server.on('close', () => this.listenerClosed(listener));
        server.on('connection', (client: Socket) => this.acceptTcp(listener, client));
        resolve(listener);
      });
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private acceptTcp(listener: TcpListener, client: Socket): void {
    this.counters.connections++;
    this.counters.activeConnections++;
    this.track(client);
    client.once('close', () => this.counters.activeConnections--);
    // Errors surface as 'close' with hadError, handled where the connection is spliced.
    client.on('error', () => {});
    const state = this.services.get(listener.ruleId);
    const clientIP = client.remoteAddress ?? '';
    const candidates = state === undefined ? [] : this.candidates(state, clientIP);
    if (state === undefined || candidates.length === 0) {
      reset(client);
      return;
    }
    client.setNoDelay(true);
    this.dial(state, client, clientIP, candidates, 0);
  }

  /** Connects to candidates[index], falling over to the next one when it refuses or times out. */
  private dial(state: ServiceState, client: Socket, clientIP: string, candidates: readonly Backend[], index: number): void {
    const backend = candidates[index];
    if (backend === undefined || client.destroyed || this.closed) {
      reset(client);
      return;
    }
    const upstream = connect({ host: backend.ip, port: backend.port, allowHalfOpen: true, noDelay: true });
    this.track(upstream);
    const abandon = (): void => {
      upstream.destroy();
    };
    client.once('close', abandon);
    upstream.setTimeout(this.connectTimeoutMs, () => {
      if (upstream.connecting) upstream.destroy(Object.assign(new Error(`connect to ${hostPort(backend.ip, backend.port)} timed out`), { code: 'ETIMEDOUT' }));
    });
    let connected = false;
    upstream.on('error', () => {
      if (connected) return;
      client.off('close', abandon);
      this.dial(state, client, clientIP, candidates, index + 1);
    });
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      client.off('close', abandon);
      this.remember(state, clientIP, backend);
      this.splice(client, upstream);
    });
  }

  /**
   * Relays both ways. An orderly end of one direction is passed on as a half
   * close (pipe ends the other socket's writable side); when one socket closes
   * with an error, or before its peer was told to end, the peer is reset.
   */
  private splice(client: Socket, upstream: Socket): void {
    const follow = (closed: Socket, other: Socket): void => {
      closed.once('close', (hadError) => {
        if (hadError || !other.writableEnded) reset(other);
      });
    };
    follow(client, upstream);
    follow(upstream, client);
    if (client.destroyed) {
      reset(upstream);
      return;
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  // ---- UDP ----

  private listenUdp(address: Address, ruleId: string): Promise<UdpListener> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: isIPv6(address.ip) ? 'udp6' : 'udp4' });
      const listener: UdpListener = { kind: 'UDP', address, ruleId, socket, sessions: new Map() };
      const failed = (error: Error): void => {
        socket.close();
        reject(error);
      };
      socket.once('error', failed);
      socket.bind({ address: address.ip, port: address.port, exclusive: true }, () => {
        socket.off('error', failed);
        socket.on('error', (error) => this.log(`proxy userspace: ${listener.ruleId} on ${address.key}: ${String(error)}`));
        socket.on('close', () => this.listenerClosed(listener));
        socket.on('message', (datagram, from) => this.receiveUdp(listener, datagram, from));
        resolve(listener);
      });
    });
  }

  private receiveUdp(listener: UdpListener, datagram: Buffer, from: RemoteInfo): void {
    const client = hostPort(from.address, from.port);
    const state = this.services.get(listener.ruleId);
    if (state === undefined) return;
    let session = listener.sessions.get(client);
    if (session === undefined) {
      const backend = this.candidates(state, from.address)[0];
      if (backend === undefined || listener.sessions.size >= UDP_SESSIONS_MAX) return;
      session = this.openSession(listener, client, from, backend);
    }
    this.remember(state, from.address, session.backend);
    session.timer.refresh();
    if (session.pending === undefined) session.upstream.send(datagram, () => {});
    else if (session.pending.length < UDP_PENDING_MAX) session.pending.push(datagram);
  }

  private openSession(listener: UdpListener, client: string, from: RemoteInfo, backend: Backend): UdpSession {
    const upstream = createSocket({ type: isIPv6(backend.ip) ? 'udp6' : 'udp4' });
    const timer = setTimeout(() => this.closeSession(listener, client, session), this.udpIdleTimeoutMs);
    timer.unref();
    const session: UdpSession = { upstream, backend, timer, pending: [] };
    listener.sessions.set(client, session);
    this.counters.udpSessions++;
    // A connected UDP socket reports the backend's ICMP port-unreachable as an error: the
    // session ends, and the client's next datagram starts a new one (perhaps elsewhere).
    upstream.on('error', () => this.closeSession(listener, client, session));
    upstream.on('message', (reply) => {
      timer.refresh();
      try {
        listener.socket.send(reply, from.port, from.address, () => {});
      } catch {
        this.closeSession(listener, client, session);
      }
    });
    upstream.connect(backend.port, backend.ip, () => {
      const pending = session.pending ?? [];
      session.pending = undefined;
      for (const datagram of pending) upstream.send(datagram, () => {});
    });
    return session;
  }

  private closeSession(listener: UdpListener, client: string, session: UdpSession): void {
    if (listener.sessions.get(client) !== session) return;
    listener.sessions.delete(client);
    this.counters.udpSessions--;
    clearTimeout(session.timer);
    try {
      session.upstream.close();
    } catch {
      // already closed by its own error
    }
  }

  /** Ends the UDP sessions whose backend left the rule. */
  private dropStaleSessions(listener: UdpListener): void {
    const backends = this.services.get(listener.ruleId)?.rule.backends ?? [];
    for (const [client, session] of listener.sessions) {
      if (!backends.some((backend) => sameBackend(backend, session.backend))) this.closeSession(listener, client, session);
    }
  }
}
