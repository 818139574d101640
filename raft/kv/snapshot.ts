// The MVCC store as bytes, for Raft snapshots. A compact binary layout
// (little endian), versioned by a magic header; decoding checks every length
// so a truncated or foreign snapshot is refused, never half-loaded.
//
//   "MVCC1" revision:f64 compactRevision:f64 leaseCount:u32 (id:f64 ttl:f64)*
//   keyCount:u32 (keyLength:u32 key recordCount:u32 record*)*
//   record = main:f64 sub:u32 createRevision:f64 version:f64 lease:f64 tombstone:u8 valueLength:u32 value

import { KvError } from './errors.js';
import { fromKey, toKey } from './keys.js';
import { MvccStore, type KeyRecord } from './mvcc.js';

const MAGIC = [0x4d, 0x56, 0x43, 0x43, 0x31]; // "MVCC1"

class Writer {
  private buffer = new Uint8Array(1024);
  private view = new DataView(this.buffer.buffer);
  private length = 0;

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.byteLength) return;
    let size = this.buffer.byteLength * 2;
    while (size < this.length + bytes) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, value);
    this.length += 1;
  }

  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  f64(value: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  bytes(value: Uint8Array): void {
    this.u32(value.byteLength);
    this.reserve(value.byteLength);
    this.buffer.set(value, this.length);
    this.length += value.byteLength;
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private need(bytes: number): void {
    if (this.offset + bytes > this.data.byteLength) {
      throw new KvError('invalid-argument', `store snapshot is truncated at byte ${this.offset} of ${this.data.byteLength}`);
    }
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.offset++);
  }

  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }

  f64(): number {
    this.need(8);
    const value = this.view.getFloat64(this.offset, true);
    this.offset += 8;
    return value;
  }

  bytes(): Uint8Array {
    const length = this.u32();
    this.need(length);
    const value = this.data.slice(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  atEnd(): boolean {
    return this.offset === this.data.byteLength;
  }
}

export function encodeStoreSnapshot(store: MvccStore): Uint8Array {
  const state = store.exportState();
  const writer = new Writer();
  for (const byte of MAGIC) writer.u8(byte);
  writer.f64(state.revision);
  writer.f64(state.compactRevision);
  writer.u32(state.leases.length);
  for (const [id, ttl] of state.leases) {
    writer.f64(id);
    writer.f64(ttl);
  }
  writer.u32(state.keys.length);
  for (const [key, records] of state.keys) {
    writer.bytes(fromKey(key));
    writer.u32(records.length);
    for (const record of records) {
      writer.f64(record.main);
      writer.u32(record.sub);
      writer.f64(record.createRevision);
      writer.f64(record.version);
      writer.f64(record.lease);
      writer.u8(record.tombstone ? 1 : 0);
      writer.bytes(record.value);
    }
  }
  return writer.finish();
}

export function decodeStoreSnapshot(data: Uint8Array): MvccStore {
  const reader = new Reader(data);
  for (const byte of MAGIC) {
    if (reader.u8() !== byte) throw new KvError('invalid-argument', 'not a store snapshot (bad magic header)');
  }
  const revision = reader.f64();
  const compactRevision = reader.f64();
  const leases: Array<[number, number]> = [];
  for (let count = reader.u32(); count > 0; count--) leases.push([reader.f64(), reader.f64()]);
  const keys: Array<[string, KeyRecord[]]> = [];
  for (let count = reader.u32(); count > 0; count--) {
    const key = toKey(reader.bytes());
    const records: KeyRecord[] = [];
    for (let recordCount = reader.u32(); recordCount > 0; recordCount--) {
      const main = reader.f64();
      const sub = reader.u32();
      const createRevision = reader.f64();
      const version = reader.f64();
      const lease = reader.f64();
      const tombstone = reader.u8() === 1;
      records.push({ main, sub, createRevision, version, lease, tombstone, value: reader.bytes() });
    }
    keys.push([key, records]);
  }
  if (!reader.atEnd()) throw new KvError('invalid-argument', 'store snapshot has trailing bytes');
  return MvccStore.importState({ revision, compactRevision, keys, leases });
}
