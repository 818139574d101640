// `mastctl snapshot save FILE`, as `etcdctl snapshot save`: stream
// Maintenance.Snapshot from one master into FILE.part, check the sha256 the
// stream ends with, fsync, and rename to FILE, so FILE is either absent or a
// whole, verified snapshot (the data followed by its 32-byte sha256; see
// services/store/snapshot-restore.ts, which `mast snapshot restore` uses).

import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as etcd from '../../proto/gen/client/etcd/rpc.js';

/** The sha256 digest that ends the stream. */
const HASH_BYTES = 32;
/** A whole backup must arrive within this; a stalled stream fails rather than hangs. */
const SNAPSHOT_DEADLINE_MS = 10 * 60_000;

export class SnapshotSaveError extends Error {
  override readonly name = 'SnapshotSaveError';
}

export interface SaveOptions {
  /** host:port or http(s)://host:port of the master to take the snapshot from. */
  readonly endpoint: string;
  readonly credentials?: grpc.ChannelCredentials | undefined;
  readonly file: string;
  readonly deadlineMs?: number;
}

export interface SaveResult {
  readonly file: string;
  /** The store revision the snapshot was taken at. */
  readonly revision: number;
  /** Bytes in FILE (data and hash). */
  readonly bytes: number;
}

const SNAPSHOT_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };

export async function saveSnapshot(options: SaveOptions): Promise<SaveResult> {
  const partial = `${options.file}.part`;
  const client = new grpc.Client(options.endpoint.replace(/^https?:\/\//, '').replace(/\/$/, ''), options.credentials ?? grpc.credentials.createInsecure(), SNAPSHOT_CHANNEL_OPTIONS);
  const file = await open(partial, 'w');
  let saved = false;
  try {
    const definition = etcd.MaintenanceService.snapshot;
    const stream = client.makeServerStreamRequest<etcd.SnapshotRequest, etcd.SnapshotResponse>(
      definition.path,
      (value) => definition.requestSerialize(value),
      (bytes) => definition.responseDeserialize(bytes),
      {},
      new grpc.Metadata(),
      { deadline: Date.now() + (options.deadlineMs ?? SNAPSHOT_DEADLINE_MS) },
    );
    // Everything but the last 32 bytes is data: hash it as it passes, hold the tail back.
    const hash = createHash('sha256');
    let tail = Buffer.alloc(0);
    let bytes = 0;
    let revision: number | undefined;
    for await (const response of stream as AsyncIterable<etcd.SnapshotResponse>) {
      if (revision === undefined && response.header !== undefined) revision = Number(response.header.revision);
      for (let written = 0; written < response.blob.byteLength; ) written += (await file.write(response.blob, written)).bytesWritten;
      bytes += response.blob.byteLength;
      const joined = Buffer.concat([tail, response.blob]);
      const dataEnd = Math.max(0, joined.byteLength - HASH_BYTES);
      hash.update(joined.subarray(0, dataEnd));
      tail = joined.subarray(dataEnd);
    }
    if (bytes <= HASH_BYTES) throw new SnapshotSaveError(`the snapshot stream from ${options.endpoint} ended after ${bytes} bytes, too few for data and its sha256`);
    const computed = hash.digest();
    if (!computed.equals(tail)) {
      throw new SnapshotSaveError(`the snapshot from ${options.endpoint} fails its sha256 check (computed ${computed.toString('hex')}, received ${tail.toString('hex')}); nothing was saved`);
    }
    await file.sync();
    await file.close();
    await rename(partial, options.file);
    await syncDirectory(dirname(options.file));
    saved = true;
    return { file: options.file, revision: revision ?? 0, bytes };
  } finally {
    if (!saved) {
      await file.close().catch(() => {});
      await rm(partial, { force: true });
    }
    client.close();
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
