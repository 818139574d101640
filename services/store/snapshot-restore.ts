// Backups as etcd makes them: Maintenance.Snapshot streams this member's
// state-machine snapshot (taken at a linearizable point) followed by the
// sha256 of those bytes, and `mastctl snapshot save` writes the stream to a
// file as it comes. So a snapshot file is
//
//   <store.Snapshot protobuf: MVCC keys and leases, members, lease marks> <sha256 of it: 32 bytes>
//
// `mast snapshot restore` turns such a file into the data dir of one member
// of a NEW cluster, as etcdutl does: the old membership is dropped and the
// members come from --initial-cluster. The data dir holds no log entries,
// only a Raft snapshot at index 1, term 1 whose configuration is the new
// voters and whose data is the saved state with the member table replaced, so
// a master started on it (the usual flags) loads it as it loads any snapshot
// and serves the saved keys at their saved revisions.

import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { NodeId, Snapshot } from '../../raft/core/index.js';
import { decodeStoreSnapshot } from '../../raft/kv/index.js';
import { LevelRaftStorage } from '../../raft/storage/index.js';
import * as storepb from '../../proto/gen/store.js';
import { formatId, memberIdOf, parseInitialCluster } from './members.js';
import { memberToWire, type MemberInfo } from './state-machine.js';

/** The sha256 digest that ends every snapshot stream and file. */
export const SNAPSHOT_HASH_BYTES = 32;

/** A snapshot file that cannot be restored, or a restore that would overwrite data. */
export class SnapshotRestoreError extends Error {
  override readonly name = 'SnapshotRestoreError';
  constructor(
    message: string,
    readonly file: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The hash trailer for snapshot data, as the stream and the file end with it. */
export function snapshotHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export interface SnapshotSummary {
  readonly revision: number;
  readonly compactRevision: number;
  readonly keyCount: number;
  readonly members: readonly MemberInfo[];
}

/** Check a snapshot file's hash and decode it; throws SnapshotRestoreError naming what is wrong. */
export function verifySnapshotFile(file: string, bytes: Uint8Array): { data: Uint8Array; decoded: storepb.Snapshot; summary: SnapshotSummary } {
  if (bytes.byteLength <= SNAPSHOT_HASH_BYTES) {
    throw new SnapshotRestoreError(`${file}: ${bytes.byteLength} bytes is too short for a snapshot (data followed by a ${SNAPSHOT_HASH_BYTES}-byte sha256)`, file);
  }
  const data = bytes.subarray(0, bytes.byteLength - SNAPSHOT_HASH_BYTES);
  const stored = Buffer.from(bytes.subarray(bytes.byteLength - SNAPSHOT_HASH_BYTES));
  const computed = snapshotHash(data);
  if (!computed.equals(stored)) {
    throw new SnapshotRestoreError(
      `${file}: snapshot hash mismatch (sha256 of the data is ${computed.toString('hex')}, the file ends with ${stored.toString('hex')}): the file is corrupt or truncated; refusing to restore it`,
      file,
    );
  }
  let decoded: storepb.Snapshot;
  let kv: ReturnType<typeof decodeStoreSnapshot>;
  try {
    decoded = storepb.Snapshot.decode(data);
    kv = decodeStoreSnapshot(decoded.kv);
  } catch (error) {
    throw new SnapshotRestoreError(`${file}: its hash is right but it is not a mast snapshot (${String(error)})`, file, { cause: error });
  }
  const keyCount = kv.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), countOnly: true }).count;
  return {
    data,
    decoded,
    summary: { revision: kv.revision, compactRevision: kv.compactRevision, keyCount, members: decoded.members.map((member) => ({ ...member })) },
  };
}

export interface RestoreOptions {
  readonly file: string;
  readonly dataDir: string;
  readonly name: string;
  /** NAME=PEER_URL,... of the new cluster. */
  readonly initialCluster: string;
  readonly peerUrls: readonly string[];
  readonly clusterToken: string;
}

export interface RestoreResult {
  readonly summary: SnapshotSummary;
  readonly memberId: NodeId;
  readonly members: readonly MemberInfo[];
}

/** The Raft position of a restored member's snapshot: the first index of a new log, its first term. */
const RESTORED_INDEX = 1;
const RESTORED_TERM = 1;

export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  const bytes = await readSnapshotFile(options.file);
  const { decoded, summary } = verifySnapshotFile(options.file, bytes);
  const members = parseInitialCluster(options.initialCluster, options.clusterToken);
  const memberId = memberIdOf(options.peerUrls, options.clusterToken);
  const self = members.find((member) => member.id === memberId);
  if (self === undefined || self.name !== options.name) {
    throw new SnapshotRestoreError(
      `--initial-cluster does not list ${options.name}=${options.peerUrls.join(',')} (--name with --initial-advertise-peer-urls); member ${options.name} would have id ${formatId(memberId)}`,
      options.file,
    );
  }
  if (await hasEntries(options.dataDir)) {
    throw new SnapshotRestoreError(`data dir ${options.dataDir} exists and is not empty; restore writes a fresh one (remove it or choose another)`, options.file);
  }
  const data = storepb.Snapshot.encode({
    kv: decoded.kv,
    members: members.map(memberToWire),
    // Leases live on, their countdowns restarted (as etcd's do after a restore);
    // every mark points at the snapshot, before any index the new log will use.
    renewals: decoded.renewals.map(({ id }) => ({ id, renewedAt: RESTORED_INDEX })),
    recentRequestIds: [],
    clusterId: 0,
  }).finish();
  const snapshot: Snapshot = {
    meta: { index: RESTORED_INDEX, term: RESTORED_TERM, conf: { voters: members.map((member) => member.id), learners: [] } },
    data,
  };
  const { storage } = await LevelRaftStorage.open(options.dataDir);
  try {
    await storage.persist({ snapshot, entries: [], hardState: { term: RESTORED_TERM, vote: 0, commit: RESTORED_INDEX } }, true);
  } finally {
    await storage.close();
  }
  return { summary, memberId, members };
}

async function readSnapshotFile(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (error) {
    throw new SnapshotRestoreError(`cannot read snapshot file ${file}: ${(error as Error).message}`, file, { cause: error });
  }
}

async function hasEntries(directory: string): Promise<boolean> {
  try {
    return (await readdir(directory)).length > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
