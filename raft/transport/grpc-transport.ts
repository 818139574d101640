// Raft messages between masters over gRPC (proto/raft.proto, RaftTransport).
//
// Each peer gets one long-lived client stream. Messages queue per peer and go
// out in batches (one MessageBatch per peer per Ready, written at once); the queue is
// bounded, and when it is full, the peer unreachable or the stream pushing
// back, messages are dropped and Raft is told the peer is unreachable — Raft
// retries, memory stays bounded. A broken stream reconnects with exponential
// backoff. Snapshots go separately, in chunks, over InstallSnapshot, at most
// one at a time per peer, and Raft is told how the transfer ended.
//
// `disableNagle` turns Nagle's algorithm off on a gRPC server's sockets:
// grpc-js does it for client sockets only, and Raft's small messages would
// otherwise wait for the peer's delayed ACK.

import * as grpc from '@grpc/grpc-js';
import type { Server as NetServer, Socket } from 'node:net';
import { crc32 } from 'node:zlib';
import type { Message, NodeId, Snapshot } from '../core/index.js';
import * as wire from '../../proto/gen/raft.js';
import { messageFromWire, messageToWire, snapshotMetaFromWire, snapshotMetaToWire, WireFormatError } from './codec.js';

/** Where received messages and delivery outcomes go (the Raft node). */
export interface MessageSink {
  step(message: Message): void;
  reportUnreachable(peer: NodeId): void;
  reportSnapshot(peer: NodeId, ok: boolean): void;
}

export interface TransportLogger {
  info(message: string): void;
  warn(message: string): void;
}

export interface GrpcTransportOptions {
  readonly self: NodeId;
  readonly credentials: grpc.ChannelCredentials;
  /** Messages waiting for one peer beyond which new ones are dropped. */
  readonly maxQueuedMessages?: number;
  /** Upper bound on the encoded bytes of one batch. */
  readonly maxBatchBytes?: number;
  readonly snapshotChunkBytes?: number;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly logger?: TransportLogger;
}

const DEFAULTS = {
  maxQueuedMessages: 4096,
  maxBatchBytes: 4 * 1024 * 1024,
  snapshotChunkBytes: 1024 * 1024,
  initialBackoffMs: 25,
  maxBackoffMs: 1000,
};

/** gRPC channel options for peer links: large messages, fast failure detection. */
export const PEER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 2000,
  'grpc.keepalive_timeout_ms': 2000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 25,
  'grpc.max_reconnect_backoff_ms': 1000,
};

const RaftTransportClient = grpc.makeGenericClientConstructor(wire.RaftTransportService, 'mast.raft.v1.RaftTransport');

type Settings = typeof DEFAULTS & { readonly self: NodeId; readonly credentials: grpc.ChannelCredentials; readonly logger: TransportLogger | undefined };

class Peer {
  private readonly client: grpc.Client;
  private stream: grpc.ClientWritableStream<wire.MessageBatch> | undefined;
  private queue: Message[] = [];
  private blocked = false;
  private backoffMs: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private streamOpenedAt = 0;
  private sendingSnapshot = false;
  private closed = false;
  /** Messages dropped since the last report, for the log. */
  private dropped = 0;

  constructor(
    readonly id: NodeId,
    readonly url: string,
    private readonly settings: Settings,
    private readonly sink: MessageSink,
  ) {
    this.client = new RaftTransportClient(addressOf(url), settings.credentials, PEER_CHANNEL_OPTIONS);
    this.backoffMs = settings.initialBackoffMs;
    this.open();
  }

  /** Queue a message (a snapshot starts its own transfer); `flushIfOpen` writes the queue. */
  enqueue(message: Message): void {
    if (this.closed) return;
    if (message.kind === 'snapshot') {
      this.sendSnapshot(message);
      return;
    }
    if (this.stream === undefined || this.queue.length >= this.settings.maxQueuedMessages) {
      this.drop();
      return;
    }
    this.queue.push(message);
  }

  /** Write the queue as one batch now, unless the stream is pushing back. */
  flushIfOpen(): void {
    if (this.queue.length > 0 && !this.blocked) this.flush();
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.stream?.end();
    this.stream = undefined;
    this.queue = [];
    this.client.close();
  }

  private drop(): void {
    this.dropped++;
    this.sink.reportUnreachable(this.id);
  }

  private open(): void {
    if (this.closed) return;
    this.streamOpenedAt = performance.now();
    const stream = this.client.makeClientStreamRequest<wire.MessageBatch, wire.StreamAck>(
      '/mast.raft.v1.RaftTransport/Stream',
      (batch) => Buffer.from(wire.MessageBatch.encode(batch).finish()),
      (bytes) => wire.StreamAck.decode(bytes),
      new grpc.Metadata(),
      (error) => this.broken(stream, error),
    );
    stream.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
    this.stream = stream;
    this.blocked = false;
  }

  private broken(stream: grpc.ClientWritableStream<wire.MessageBatch>, error: grpc.ServiceError | null): void {
    if (this.stream !== stream || this.closed) return;
    this.stream = undefined;
    const lost = this.queue.length;
    this.queue = [];
    if (lost > 0) this.sink.reportUnreachable(this.id);
    // A stream that lived a while was healthy: start the backoff over.
    if (performance.now() - this.streamOpenedAt > 2000) this.backoffMs = this.settings.initialBackoffMs;
    const why = error === null ? 'closed by the peer' : error.details || error.message;
    this.settings.logger?.warn(`raft stream to member ${this.id.toString(16)} (${this.url}) broke: ${why}; reconnecting in ${this.backoffMs} ms`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.open();
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.settings.maxBackoffMs);
  }

  private flush(): void {
    const stream = this.stream;
    if (stream === undefined || this.closed) return;
    if (this.dropped > 0) {
      this.settings.logger?.warn(`dropped ${this.dropped} raft messages to member ${this.id.toString(16)}: queue full or link down`);
      this.dropped = 0;
    }
    // Everything queued goes out now; while the stream pushes back (`blocked`)
    // new messages wait in the bounded queue until it drains.
    const pending = this.queue;
    this.queue = [];
    let position = 0;
    while (position < pending.length) {
      const batch: wire.Message[] = [];
      let bytes = 0;
      while (position < pending.length && bytes < this.settings.maxBatchBytes) {
        const encoded = messageToWire(pending[position++]!);
        bytes += approximateSize(encoded);
        batch.push(encoded);
      }
      if (!stream.write({ messages: batch })) this.blocked = true;
    }
  }

  private sendSnapshot(message: Extract<Message, { kind: 'snapshot' }>): void {
    if (this.sendingSnapshot) {
      this.sink.reportSnapshot(this.id, false);
      return;
    }
    this.sendingSnapshot = true;
    const done = (ok: boolean, why: string): void => {
      this.sendingSnapshot = false;
      if (!ok) this.settings.logger?.warn(`snapshot ${describeSnapshot(message.snapshot)} to member ${this.id.toString(16)} failed: ${why}`);
      else this.settings.logger?.info(`sent snapshot ${describeSnapshot(message.snapshot)} to member ${this.id.toString(16)}`);
      this.sink.reportSnapshot(this.id, ok);
    };
    const call = this.client.makeClientStreamRequest<wire.SnapshotChunk, wire.SnapshotAck>(
      '/mast.raft.v1.RaftTransport/InstallSnapshot',
      (chunk) => Buffer.from(wire.SnapshotChunk.encode(chunk).finish()),
      (bytes) => wire.SnapshotAck.decode(bytes),
      new grpc.Metadata(),
      { deadline: Date.now() + 5 * 60_000 },
      (error, ack) => {
        if (error !== null) done(false, error.details || error.message);
        else if (ack?.accepted !== true) done(false, ack?.error ?? 'refused');
        else done(true, '');
      },
    );
    void writeChunks(call, message, this.settings.snapshotChunkBytes).catch((error: unknown) => {
      call.cancel();
      done(false, error instanceof Error ? error.message : String(error));
    });
  }
}

async function writeChunks(call: grpc.ClientWritableStream<wire.SnapshotChunk>, message: Extract<Message, { kind: 'snapshot' }>, chunkBytes: number): Promise<void> {
  const { data, meta } = message.snapshot;
  const checksum = crc32(data) >>> 0;
  let offset = 0;
  do {
    const end = Math.min(offset + chunkBytes, data.byteLength);
    const last = end === data.byteLength;
    const chunk: wire.SnapshotChunk = {
      from: message.from,
      to: message.to,
      term: message.term,
      offset,
      data: Buffer.from(data.buffer, data.byteOffset + offset, end - offset),
      last,
      meta: last ? snapshotMetaToWire(meta) : undefined,
      crc32: last ? checksum : 0,
    };
    if (!call.write(chunk)) await new Promise((resolve) => call.once('drain', resolve));
    offset = end;
  } while (offset < data.byteLength);
  call.end();
}

function describeSnapshot(snapshot: Snapshot): string {
  return `at index ${snapshot.meta.index} (${snapshot.data.byteLength} bytes)`;
}

function approximateSize(message: wire.Message): number {
  const body = message.body;
  if (body?.$case !== 'append') return 64;
  let bytes = 64;
  for (const entry of body.value.entries) bytes += 24 + (entry.payload?.$case === 'data' ? entry.payload.value.byteLength : 64);
  return bytes;
}

/** host:port of an http(s):// URL (or of a bare host:port). */
export function addressOf(url: string): string {
  const match = /^(?:https?:\/\/)?([^/]+)\/?$/.exec(url);
  if (match === null) throw new Error(`peer URL ${JSON.stringify(url)} is not of the form http(s)://host:port`);
  return match[1]!;
}

/** The sending side: one Peer per other member. */
export class GrpcTransport {
  private readonly peers = new Map<NodeId, Peer>();
  private readonly settings: Settings;

  constructor(
    options: GrpcTransportOptions,
    private readonly sink: MessageSink,
  ) {
    this.settings = {
      ...DEFAULTS,
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
      self: options.self,
      credentials: options.credentials,
      logger: options.logger,
    } as Settings;
  }

  /** Add a peer or change its URL. */
  setPeer(id: NodeId, url: string): void {
    if (id === this.settings.self) return;
    const existing = this.peers.get(id);
    if (existing?.url === url) return;
    existing?.close();
    this.peers.set(id, new Peer(id, url, this.settings, this.sink));
  }

  removePeer(id: NodeId): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
  }

  peerIds(): NodeId[] {
    return [...this.peers.keys()];
  }

  /** Send a Ready's messages: each peer's share goes out as one batch, right away. */
  send(messages: readonly Message[]): void {
    const touched = new Set<Peer>();
    for (const message of messages) {
      const peer = this.peers.get(message.to);
      if (peer === undefined) {
        if (message.kind === 'snapshot') this.sink.reportSnapshot(message.to, false);
        else this.sink.reportUnreachable(message.to);
        continue;
      }
      peer.enqueue(message);
      touched.add(peer);
    }
    for (const peer of touched) peer.flushIfOpen();
  }

  close(): void {
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
  }
}

export interface TransportServerOptions {
  readonly self: NodeId;
  /** Refuse snapshots larger than this (bytes). */
  readonly maxSnapshotBytes?: number;
  readonly logger?: TransportLogger;
}

/** The receiving side: handlers for RaftTransport to add to a gRPC server. */
export function raftTransportHandlers(sink: MessageSink, options: TransportServerOptions): grpc.UntypedServiceImplementation {
  const maxSnapshotBytes = options.maxSnapshotBytes ?? 8 * 1024 * 1024 * 1024;
  const stream: grpc.handleClientStreamingCall<wire.MessageBatch, wire.StreamAck> = (call, callback) => {
    let failed = false;
    call.on('data', (batch: wire.MessageBatch) => {
      if (failed) return;
      try {
        for (const message of batch.messages) {
          const decoded = messageFromWire(message);
          if (decoded.to !== options.self) continue; // meant for a member this process no longer is
          sink.step(decoded);
        }
      } catch (error) {
        if (!(error instanceof WireFormatError)) throw error;
        failed = true;
        options.logger?.warn(`dropping a raft stream that sent a malformed message: ${error.message}`);
        callback({ code: grpc.status.INVALID_ARGUMENT, details: error.message });
      }
    });
    call.on('end', () => {
      if (!failed) callback(null, {});
    });
    call.on('error', () => {
      failed = true;
    });
  };
  const installSnapshot: grpc.handleClientStreamingCall<wire.SnapshotChunk, wire.SnapshotAck> = (call, callback) => {
    const parts: Buffer[] = [];
    let received = 0;
    let finished = false;
    const fail = (why: string): void => {
      if (finished) return;
      finished = true;
      options.logger?.warn(`refusing a snapshot: ${why}`);
      callback(null, { accepted: false, error: why });
    };
    call.on('data', (chunk: wire.SnapshotChunk) => {
      if (finished) return;
      if (chunk.offset !== received) return fail(`chunk at offset ${chunk.offset}, expected ${received}`);
      received += chunk.data.byteLength;
      if (received > maxSnapshotBytes) return fail(`snapshot exceeds ${maxSnapshotBytes} bytes`);
      parts.push(Buffer.from(chunk.data));
      if (!chunk.last) return;
      const data = Buffer.concat(parts);
      if ((crc32(data) >>> 0) !== chunk.crc32) return fail(`snapshot checksum ${(crc32(data) >>> 0).toString(16)} does not match ${chunk.crc32.toString(16)}`);
      if (chunk.meta === undefined) return fail('last chunk without snapshot metadata');
      if (chunk.to !== options.self) return fail(`snapshot for member ${chunk.to.toString(16)}, this is ${options.self.toString(16)}`);
      finished = true;
      sink.step({
        from: chunk.from,
        to: chunk.to,
        term: chunk.term,
        kind: 'snapshot',
        snapshot: { meta: snapshotMetaFromWire(chunk.meta), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) },
      });
      callback(null, { accepted: true, error: '' });
    });
    call.on('end', () => fail('stream ended before the last chunk'));
    call.on('error', () => {
      finished = true;
    });
  };
  return { stream, installSnapshot } as grpc.UntypedServiceImplementation;
}

export { wire as raftWire };

/**
 * Turn off Nagle's algorithm on the sockets of a bound gRPC server. grpc-js
 * offers no option for it; it keeps its HTTP/2 servers in a private map,
 * which this reaches into (and says so if a grpc-js upgrade moved it).
 */
export function disableNagle(server: grpc.Server, logger?: TransportLogger): void {
  const servers = (server as unknown as { http2Servers?: Map<NetServer, unknown> }).http2Servers;
  if (!(servers instanceof Map)) {
    logger?.warn('cannot turn off Nagle on server sockets: this grpc-js keeps its HTTP/2 servers elsewhere; expect higher latency');
    return;
  }
  for (const http2Server of servers.keys()) {
    http2Server.prependListener('connection', (socket: Socket) => socket.setNoDelay(true));
  }
}
