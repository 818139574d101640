// Binary records of the Raft storage, each framed with a CRC-32 of its body:
//
//   record   = crc32(body):u32le  body
//   entry    = tag:u8 ('N' normal | 'C' conf change)  term:f64le  index:f64le  payload
//   payload  = data bytes                            (normal)
//            | change:u8 (0 add-voter, 1 add-learner, 2 remove)  nodeId:f64le  context bytes   (conf change)
//   hard     = term:f64le vote:f64le commit:f64le
//   snapshot = index:f64le term:f64le dataCrc:u32le dataBytes:f64le voterCount:u32le voters:f64le* learnerCount:u32le learners:f64le*
//
// Numbers are f64 so that every safe JavaScript integer round-trips exactly.

import { crc32 } from 'node:zlib';
import type { ConfChange, Entry, HardState, SnapshotMeta } from '../core/index.js';

export class ChecksumMismatch extends Error {
  override readonly name = 'ChecksumMismatch';
}

export function frame(body: Uint8Array): Uint8Array {
  const record = new Uint8Array(4 + body.byteLength);
  new DataView(record.buffer).setUint32(0, crc32(body) >>> 0, true);
  record.set(body, 4);
  return record;
}

/** The body of a framed record; throws ChecksumMismatch when the frame does not verify. */
export function unframe(record: Uint8Array, what: string): Uint8Array {
  if (record.byteLength < 4) throw new ChecksumMismatch(`${what}: record of ${record.byteLength} bytes is too short`);
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const expected = view.getUint32(0, true);
  const body = record.subarray(4);
  const actual = crc32(body) >>> 0;
  if (actual !== expected) {
    throw new ChecksumMismatch(`${what}: checksum ${actual.toString(16)} does not match the stored ${expected.toString(16)}`);
  }
  return body;
}

const CHANGE_CODES = ['add-voter', 'add-learner', 'remove'] as const;

export function encodeEntry(entry: Entry): Uint8Array {
  const payloadBytes = entry.kind === 'normal' ? entry.data.byteLength : 9 + (entry.change.context?.byteLength ?? 0);
  const body = new Uint8Array(17 + payloadBytes);
  const view = new DataView(body.buffer);
  view.setUint8(0, entry.kind === 'normal' ? 0x4e : 0x43);
  view.setFloat64(1, entry.term, true);
  view.setFloat64(9, entry.index, true);
  if (entry.kind === 'normal') {
    body.set(entry.data, 17);
  } else {
    view.setUint8(17, CHANGE_CODES.indexOf(entry.change.type));
    view.setFloat64(18, entry.change.nodeId, true);
    if (entry.change.context !== undefined) body.set(entry.change.context, 26);
  }
  return frame(body);
}

export function decodeEntry(record: Uint8Array, what: string): Entry {
  const body = unframe(record, what);
  if (body.byteLength < 17) throw new ChecksumMismatch(`${what}: entry body of ${body.byteLength} bytes is too short`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const tag = view.getUint8(0);
  const term = view.getFloat64(1, true);
  const index = view.getFloat64(9, true);
  if (tag === 0x4e) return { kind: 'normal', term, index, data: body.slice(17) };
  if (tag !== 0x43 || body.byteLength < 26) throw new ChecksumMismatch(`${what}: unknown entry tag ${tag}`);
  const type = CHANGE_CODES[view.getUint8(17)];
  if (type === undefined) throw new ChecksumMismatch(`${what}: unknown membership change ${view.getUint8(17)}`);
  const nodeId = view.getFloat64(18, true);
  const change: ConfChange = body.byteLength > 26 ? { type, nodeId, context: body.slice(26) } : { type, nodeId };
  return { kind: 'conf-change', term, index, change };
}

export function encodeHardState(hardState: HardState): Uint8Array {
  const body = new Uint8Array(24);
  const view = new DataView(body.buffer);
  view.setFloat64(0, hardState.term, true);
  view.setFloat64(8, hardState.vote, true);
  view.setFloat64(16, hardState.commit, true);
  return frame(body);
}

export function decodeHardState(record: Uint8Array, what: string): HardState {
  const body = unframe(record, what);
  if (body.byteLength !== 24) throw new ChecksumMismatch(`${what}: hard state of ${body.byteLength} bytes`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return { term: view.getFloat64(0, true), vote: view.getFloat64(8, true), commit: view.getFloat64(16, true) };
}

export interface SnapshotRecord {
  readonly meta: SnapshotMeta;
  readonly dataCrc: number;
  readonly dataBytes: number;
}

export function encodeSnapshotRecord(record: SnapshotRecord): Uint8Array {
  const { voters, learners } = record.meta.conf;
  const body = new Uint8Array(8 + 8 + 4 + 8 + 4 + voters.length * 8 + 4 + learners.length * 8);
  const view = new DataView(body.buffer);
  let at = 0;
  view.setFloat64(at, record.meta.index, true);
  view.setFloat64((at += 8), record.meta.term, true);
  view.setUint32((at += 8), record.dataCrc, true);
  view.setFloat64((at += 4), record.dataBytes, true);
  at += 8;
  for (const ids of [voters, learners]) {
    view.setUint32(at, ids.length, true);
    at += 4;
    for (const id of ids) {
      view.setFloat64(at, id, true);
      at += 8;
    }
  }
  return frame(body);
}

export function decodeSnapshotRecord(record: Uint8Array, what: string): SnapshotRecord {
  const body = unframe(record, what);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  try {
    let at = 0;
    const index = view.getFloat64(at, true);
    const term = view.getFloat64((at += 8), true);
    const dataCrc = view.getUint32((at += 8), true);
    const dataBytes = view.getFloat64((at += 4), true);
    at += 8;
    const lists: number[][] = [];
    for (let list = 0; list < 2; list++) {
      const count = view.getUint32(at, true);
      at += 4;
      const ids: number[] = [];
      for (let i = 0; i < count; i++, at += 8) ids.push(view.getFloat64(at, true));
      lists.push(ids);
    }
    return { meta: { index, term, conf: { voters: lists[0]!, learners: lists[1]! } }, dataCrc, dataBytes };
  } catch (error) {
    throw new ChecksumMismatch(`${what}: malformed snapshot record`, { cause: error });
  }
}

export function checksum(data: Uint8Array): number {
  return crc32(data) >>> 0;
}
