// etcdserverpb.Cluster and etcdserverpb.Maintenance. Membership changes are
// made by the leader; a follower passes the call on to the leader's client
// URL (as published in the member table) and relays the answer.

import * as grpc from '@grpc/grpc-js';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as etcd from '../../proto/gen/etcd/rpc.js';
import { NONE, type NodeId } from '../../raft/core/index.js';
import { StoreError, addressOf, formatId, isMemberUrl, type ReplicatedStore } from '../store/index.js';
import { snapshotHash } from '../store/snapshot-restore.js';
import { ApiError, toServiceError, unary } from './errors.js';

/** The etcd API version mast speaks, as `etcdctl endpoint status` shows it. */
export const ETCD_API_VERSION = '3.4.0';

export interface ClusterServiceOptions {
  /** Credentials for calling the leader's client URL. */
  readonly clientCredentials: grpc.ChannelCredentials;
  readonly dataDir: string;
}

const ClusterClient = grpc.makeGenericClientConstructor(etcd.ClusterService, 'etcdserverpb.Cluster');

function membersOf(store: ReplicatedStore): etcd.Member[] {
  const conf = store.raftStatus().conf;
  return store.stateMachine.members().map((member) => ({
    ID: member.id,
    name: member.name,
    peerURLs: [...member.peerUrls],
    clientURLs: [...member.clientUrls],
    isLearner: conf.learners.includes(member.id),
  }));
}

/** Run `local` here if this member leads; otherwise call `method` on the leader. */
function onLeader<Req, Res>(store: ReplicatedStore, options: ClusterServiceOptions, method: keyof typeof etcd.ClusterService, local: (request: Req) => Promise<Res>) {
  return unary(async (request: Req): Promise<Res> => {
    try {
      return await local(request);
    } catch (error) {
      if (!(error instanceof StoreError) || error.code !== 'not-leader') throw error;
      return forward<Req, Res>(store, options, error.leader, method, request);
    }
  });
}

async function forward<Req, Res>(store: ReplicatedStore, options: ClusterServiceOptions, leader: NodeId, method: keyof typeof etcd.ClusterService, request: Req): Promise<Res> {
  const url = leader === NONE ? undefined : store.stateMachine.member(leader)?.clientUrls[0];
  if (url === undefined) throw new ApiError(grpc.status.UNAVAILABLE, `etcdserver: not leader (the leader ${formatId(leader)} has not published a client URL to forward to)`);
  const client = new ClusterClient(addressOf(url), options.clientCredentials);
  try {
    const definition = etcd.ClusterService[method];
    return await new Promise<Res>((resolve, reject) => {
      client.makeUnaryRequest<Req, Res>(
        definition.path,
        (value) => (definition.requestSerialize as (value: Req) => Buffer)(value),
        (bytes) => (definition.responseDeserialize as (bytes: Buffer) => Res)(bytes),
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (error, response) => (error !== null ? reject(new ApiError(error.code, error.details)) : resolve(response!)),
      );
    });
  } finally {
    client.close();
  }
}

export function clusterService(store: ReplicatedStore, options: ClusterServiceOptions): etcd.ClusterServer {
  return {
    memberAdd: onLeader(store, options, 'memberAdd', async (request: etcd.MemberAddRequest): Promise<etcd.MemberAddResponse> => {
      if (request.peerURLs.length === 0) throw new ApiError(grpc.status.INVALID_ARGUMENT, 'etcdserver: member add needs at least one peer URL');
      for (const url of request.peerURLs) {
        if (!isMemberUrl(url)) throw new ApiError(grpc.status.INVALID_ARGUMENT, `etcdserver: peer URL ${JSON.stringify(url)} is not http(s)://host:port`);
      }
      const added = await store.addMember(request.peerURLs, request.isLearner);
      const member: etcd.Member = { ID: added.id, name: '', peerURLs: [...added.peerUrls], clientURLs: [], isLearner: request.isLearner };
      return { header: store.header(), member, members: membersOf(store) };
    }),
    memberRemove: onLeader(store, options, 'memberRemove', async (request: etcd.MemberRemoveRequest): Promise<etcd.MemberRemoveResponse> => {
      await store.removeMember(request.ID);
      return { header: store.header(), members: membersOf(store) };
    }),
    memberPromote: onLeader(store, options, 'memberPromote', async (request: etcd.MemberPromoteRequest): Promise<etcd.MemberPromoteResponse> => {
      await store.promoteMember(request.ID);
      return { header: store.header(), members: membersOf(store) };
    }),
    memberUpdate: unary(async () => {
      throw new ApiError(grpc.status.UNIMPLEMENTED, 'mast does not support MemberUpdate (changing a member\'s peer URLs): remove the member and add it again with the new URLs');
    }),
    memberList: unary(async (request: etcd.MemberListRequest) => {
      if (request.linearizable) await store.linearizableBarrier();
      return { header: store.header(), members: membersOf(store) };
    }),
  };
}

async function directoryBytes(directory: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}

const unimplemented = (what: string) =>
  unary(async () => {
    throw new ApiError(grpc.status.UNIMPLEMENTED, `mast does not implement Maintenance.${what}`);
  });

export function maintenanceService(store: ReplicatedStore, options: ClusterServiceOptions): etcd.MaintenanceServer {
  return {
    alarm: unary(async (request: etcd.AlarmRequest) => {
      if (request.action !== etcd.AlarmRequest_AlarmAction.GET) {
        throw new ApiError(grpc.status.UNIMPLEMENTED, 'mast raises no alarms (it has no space quota), so there are none to activate or deactivate');
      }
      return { header: store.header(), alarms: [] };
    }),
    status: unary(async () => {
      const status = store.raftStatus();
      const dbSize = await directoryBytes(options.dataDir);
      return {
        header: store.header(),
        version: ETCD_API_VERSION,
        dbSize,
        leader: status.leader,
        raftIndex: status.commit,
        raftTerm: status.term,
        raftAppliedIndex: status.applied,
        errors: [],
        dbSizeInUse: dbSize,
        isLearner: status.conf.learners.includes(store.memberId),
      };
    }),
    defragment: unimplemented('Defragment (LevelDB compacts its files on its own)'),
    hash: unimplemented('Hash'),
    hashKv: unimplemented('HashKV'),
    snapshot: (call: grpc.ServerWritableStream<etcd.SnapshotRequest, etcd.SnapshotResponse>) => {
      streamSnapshot(store, call).catch((error: unknown) => call.emit('error', toServiceError(error)));
    },
    moveLeader: unary(async (request: etcd.MoveLeaderRequest) => {
      store.transferLeadership(request.targetID);
      return { header: store.header() };
    }),
  };
}

/** Bytes of snapshot data per SnapshotResponse (etcd sends 32 KiB; a gRPC message stays far below its 4 MiB limit). */
export const SNAPSHOT_CHUNK_BYTES = 64 * 1024;

/**
 * Maintenance.Snapshot as etcd streams it: the data in chunks, each with
 * `remaining_bytes` = data bytes still to come after it, then one last
 * message whose blob is the sha256 of all the data (32 bytes, remaining 0).
 * The data is padded to whole 512-byte pages (see padToPages).
 * The data is this member's state-machine snapshot taken once it has applied
 * everything committed before the call (a ReadIndex barrier), so it holds
 * every write acknowledged before the backup began. The snapshot is taken
 * synchronously after the barrier: no entry is applied in between.
 */
async function streamSnapshot(store: ReplicatedStore, call: grpc.ServerWritableStream<etcd.SnapshotRequest, etcd.SnapshotResponse>): Promise<void> {
  await store.linearizableBarrier();
  const header = store.header();
  const data = padToPages(store.stateMachine.snapshot());
  const hash = snapshotHash(data);
  for (let offset = 0; offset < data.byteLength; offset += SNAPSHOT_CHUNK_BYTES) {
    const blob = data.subarray(offset, offset + SNAPSHOT_CHUNK_BYTES);
    if (!(await writeWithBackpressure(call, { header, remainingBytes: data.byteLength - offset - blob.byteLength, blob }))) return;
  }
  if (!(await writeWithBackpressure(call, { header, remainingBytes: 0, blob: hash }))) return;
  call.end();
}

/**
 * etcdctl takes the data for a bbolt file, a whole number of 512-byte pages,
 * and finds the sha256 trailer only where size % 512 == 32; mast's snapshot
 * is a store.Snapshot protobuf, so it is padded with zeros inside a field
 * that store.Snapshot does not define (protobuf decoders skip unknown fields).
 */
const SNAPSHOT_PAGE_BYTES = 512;
/** Unused by store.Snapshot (proto/store.proto); wire type 2 (length-delimited). */
const PADDING_TAG = (15 << 3) | 2;

export function padToPages(data: Uint8Array): Buffer {
  let padding = (SNAPSHOT_PAGE_BYTES - (data.byteLength % SNAPSHOT_PAGE_BYTES)) % SNAPSHOT_PAGE_BYTES;
  if (padding === 0) return Buffer.from(data);
  // A tag byte, a 1-byte length (< 128) or a 2-byte one, then zeros: 1 and 130 bytes cannot be made that way.
  if (padding === 1 || padding === 130) padding += SNAPSHOT_PAGE_BYTES;
  const zeros = padding - 2 <= 127 ? padding - 2 : padding - 3;
  const length = zeros < 128 ? [zeros] : [(zeros & 0x7f) | 0x80, zeros >> 7];
  const padded = Buffer.concat([data, Buffer.from([PADDING_TAG, ...length]), Buffer.alloc(zeros)]);
  if (padded.byteLength % SNAPSHOT_PAGE_BYTES !== 0) throw new Error(`assertion failed: a padded snapshot of ${padded.byteLength} bytes is not whole pages`);
  return padded;
}

/** Write one message, waiting for the stream to drain when its buffer is full; false when the client went away. */
async function writeWithBackpressure(call: grpc.ServerWritableStream<etcd.SnapshotRequest, etcd.SnapshotResponse>, response: etcd.SnapshotResponse): Promise<boolean> {
  if (call.cancelled || call.destroyed) return false;
  if (call.write(response)) return true;
  return new Promise<boolean>((resolve) => {
    const done = (drained: boolean): void => {
      call.off('drain', onDrain);
      call.off('cancelled', onGone);
      call.off('close', onGone);
      resolve(drained);
    };
    const onDrain = (): void => done(true);
    const onGone = (): void => done(false);
    call.once('drain', onDrain);
    call.once('cancelled', onGone);
    call.once('close', onGone);
  });
}
