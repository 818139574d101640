// A small promise-based client for etcd's v3 API (which every master serves),
// over the generated gRPC stubs — the client copy, whose 64-bit integers are
// decimal strings, so it also talks to real etcd members (64-bit ids). It spreads requests over its endpoints and,
// when an endpoint is unreachable, moves on to the next one.

import * as grpc from '@grpc/grpc-js';
import * as etcd from '../../proto/gen/client/etcd/rpc.js';

type ServiceDefinition = Record<string, { path: string; requestSerialize: (value: never) => Buffer; responseDeserialize: (bytes: Buffer) => unknown }>;

export interface EtcdClientOptions {
  /** host:port or http(s)://host:port of each member. */
  readonly endpoints: readonly string[];
  readonly credentials?: grpc.ChannelCredentials;
  /** Per-call deadline. */
  readonly timeoutMs?: number;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 20,
  'grpc.max_reconnect_backoff_ms': 500,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

/** One gRPC channel to one member. */
export class EtcdConnection {
  private readonly client: grpc.Client;

  constructor(
    readonly endpoint: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    private readonly timeoutMs = 10_000,
  ) {
    this.client = new grpc.Client(endpoint.replace(/^https?:\/\//, '').replace(/\/$/, ''), credentials, CHANNEL_OPTIONS);
  }

  private call<Res>(definition: ServiceDefinition[string], request: unknown, timeoutMs = this.timeoutMs): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.client.makeUnaryRequest<unknown, Res>(
        definition.path,
        (value) => definition.requestSerialize(value as never),
        (bytes) => definition.responseDeserialize(bytes) as Res,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, response) => (error === null ? resolve(response!) : reject(error)),
      );
    });
  }

  put(key: Uint8Array | string, value: Uint8Array | string, options: Partial<etcd.PutRequest> = {}): Promise<etcd.PutResponse> {
    return this.call(etcd.KVService.put, etcd.PutRequest.fromPartial({ key: bytes(key), value: bytes(value), ...options }));
  }

  range(request: Partial<Omit<etcd.RangeRequest, 'key'>> & { key: Uint8Array | string }): Promise<etcd.RangeResponse> {
    return this.call(etcd.KVService.range, etcd.RangeRequest.fromPartial({ ...request, key: bytes(request.key) }));
  }

  get(key: Uint8Array | string, options: Partial<Omit<etcd.RangeRequest, 'key'>> = {}): Promise<etcd.RangeResponse> {
    return this.range({ ...options, key });
  }

  deleteRange(request: Partial<Omit<etcd.DeleteRangeRequest, 'key'>> & { key: Uint8Array | string }): Promise<etcd.DeleteRangeResponse> {
    return this.call(etcd.KVService.deleteRange, etcd.DeleteRangeRequest.fromPartial({ ...request, key: bytes(request.key) }));
  }

  txn(request: { compare?: etcd.Compare[]; success?: etcd.RequestOp[]; failure?: etcd.RequestOp[] }): Promise<etcd.TxnResponse> {
    return this.call(etcd.KVService.txn, { compare: request.compare ?? [], success: request.success ?? [], failure: request.failure ?? [] });
  }

  compact(revision: number | string): Promise<etcd.CompactionResponse> {
    return this.call(etcd.KVService.compact, { revision: String(revision), physical: false });
  }

  leaseGrant(ttlSeconds: number, id = '0'): Promise<etcd.LeaseGrantResponse> {
    return this.call(etcd.LeaseService.leaseGrant, { TTL: String(ttlSeconds), ID: id });
  }

  leaseRevoke(id: string): Promise<etcd.LeaseRevokeResponse> {
    return this.call(etcd.LeaseService.leaseRevoke, { ID: id });
  }

  leaseTimeToLive(id: string, keys = false): Promise<etcd.LeaseTimeToLiveResponse> {
    return this.call(etcd.LeaseService.leaseTimeToLive, { ID: id, keys });
  }

  status(timeoutMs?: number): Promise<etcd.StatusResponse> {
    return this.call(etcd.MaintenanceService.status, {}, timeoutMs);
  }

  memberList(): Promise<etcd.MemberListResponse> {
    return this.call(etcd.ClusterService.memberList, { linearizable: false });
  }

  memberAdd(peerURLs: string[], isLearner: boolean): Promise<etcd.MemberAddResponse> {
    return this.call(etcd.ClusterService.memberAdd, { peerURLs, isLearner });
  }

  memberPromote(id: string): Promise<etcd.MemberPromoteResponse> {
    return this.call(etcd.ClusterService.memberPromote, { ID: id });
  }

  memberRemove(id: string): Promise<etcd.MemberRemoveResponse> {
    return this.call(etcd.ClusterService.memberRemove, { ID: id });
  }

  /** Ask the leader (this connection's member must be it) to hand leadership to member `targetId` (etcd's MoveLeader). */
  moveLeader(targetId: string): Promise<etcd.MoveLeaderResponse> {
    return this.call(etcd.MaintenanceService.moveLeader, { targetID: targetId });
  }

  /** A raw Watch stream; the caller writes requests and reads responses. */
  watchStream(): grpc.ClientDuplexStream<etcd.WatchRequest, etcd.WatchResponse> {
    const definition = etcd.WatchService.watch;
    return this.client.makeBidiStreamRequest<etcd.WatchRequest, etcd.WatchResponse>(definition.path, definition.requestSerialize, definition.responseDeserialize);
  }

  /** A raw LeaseKeepAlive stream. */
  keepAliveStream(): grpc.ClientDuplexStream<etcd.LeaseKeepAliveRequest, etcd.LeaseKeepAliveResponse> {
    const definition = etcd.LeaseService.leaseKeepAlive;
    return this.client.makeBidiStreamRequest<etcd.LeaseKeepAliveRequest, etcd.LeaseKeepAliveResponse>(definition.path, definition.requestSerialize, definition.responseDeserialize);
  }

  close(): void {
    this.client.close();
  }
}

export function bytes(value: Uint8Array | string): Buffer {
  return typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** Errors worth retrying on another member: the member is down, stopping or without a leader. */
export function isRetriable(error: unknown): boolean {
  const code = (error as { code?: number } | undefined)?.code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.CANCELLED;
}

/** Connections to every member; `pick` rotates over them. */
export class EtcdClient {
  readonly connections: EtcdConnection[];
  private next = 0;

  constructor(options: EtcdClientOptions) {
    if (options.endpoints.length === 0) throw new Error('EtcdClient needs at least one endpoint');
    this.connections = options.endpoints.map((endpoint) => new EtcdConnection(endpoint, options.credentials, options.timeoutMs));
  }

  pick(): EtcdConnection {
    const connection = this.connections[this.next % this.connections.length]!;
    this.next++;
    return connection;
  }

  /** Run `operation` on one member after another until one answers or `deadline` (ms since epoch) passes. */
  async withFailover<T>(operation: (connection: EtcdConnection) => Promise<T>, deadline = Date.now() + 30_000): Promise<T> {
    for (;;) {
      const connection = this.pick();
      try {
        return await operation(connection);
      } catch (error) {
        if (!isRetriable(error) || Date.now() > deadline) throw error;
      }
    }
  }

  close(): void {
    for (const connection of this.connections) connection.close();
  }
}
