// Conversion between etcd's v3 wire messages (proto/etcd) and the store's own
// request and result types (raft/kv). Decoding checks what protobuf cannot:
// enum values out of range and compare operands that do not match their target.

import type * as kv from '../../raft/kv/index.js';
import { KvError } from '../../raft/kv/index.js';
import * as etcd from '../../proto/gen/etcd/rpc.js';
import * as mvccpb from '../../proto/gen/etcd/kv.js';

const SORT_ORDERS: Record<number, kv.SortOrder> = {
  [etcd.RangeRequest_SortOrder.NONE]: 'none',
  [etcd.RangeRequest_SortOrder.ASCEND]: 'ascend',
  [etcd.RangeRequest_SortOrder.DESCEND]: 'descend',
};

const SORT_TARGETS: Record<number, kv.SortTarget> = {
  [etcd.RangeRequest_SortTarget.KEY]: 'key',
  [etcd.RangeRequest_SortTarget.VERSION]: 'version',
  [etcd.RangeRequest_SortTarget.CREATE]: 'create',
  [etcd.RangeRequest_SortTarget.MOD]: 'mod',
  [etcd.RangeRequest_SortTarget.VALUE]: 'value',
};

const COMPARE_RESULTS: Record<number, kv.CompareResult> = {
  [etcd.Compare_CompareResult.EQUAL]: 'equal',
  [etcd.Compare_CompareResult.GREATER]: 'greater',
  [etcd.Compare_CompareResult.LESS]: 'less',
  [etcd.Compare_CompareResult.NOT_EQUAL]: 'not-equal',
};

const COMPARE_TARGETS: Record<number, { target: kv.CompareTarget; union: string }> = {
  [etcd.Compare_CompareTarget.VERSION]: { target: 'version', union: 'version' },
  [etcd.Compare_CompareTarget.CREATE]: { target: 'create', union: 'createRevision' },
  [etcd.Compare_CompareTarget.MOD]: { target: 'mod', union: 'modRevision' },
  [etcd.Compare_CompareTarget.VALUE]: { target: 'value', union: 'value' },
  [etcd.Compare_CompareTarget.LEASE]: { target: 'lease', union: 'lease' },
};

function known<T>(table: Record<number, T>, value: number, what: string): T {
  const found = table[value];
  if (found === undefined) throw new KvError('invalid-argument', `${what} ${value} is not a known value`);
  return found;
}

const optionalBytes = (bytes: Uint8Array): Uint8Array | undefined => (bytes.byteLength === 0 ? undefined : bytes);
const positive = (value: number): number | undefined => (value > 0 ? value : undefined);

export function rangeFromWire(request: etcd.RangeRequest): kv.RangeRequest {
  if (request.key.byteLength === 0) throw new KvError('invalid-argument', 'etcdserver: key is not provided');
  if (request.limit < 0) throw new KvError('invalid-argument', `range limit ${request.limit} is negative`);
  if (request.revision < 0) throw new KvError('invalid-argument', `range revision ${request.revision} is negative`);
  return {
    key: request.key,
    rangeEnd: optionalBytes(request.rangeEnd),
    limit: positive(request.limit),
    revision: positive(request.revision),
    sortOrder: known(SORT_ORDERS, request.sortOrder, 'sort order'),
    sortTarget: known(SORT_TARGETS, request.sortTarget, 'sort target'),
    keysOnly: request.keysOnly,
    countOnly: request.countOnly,
    minModRevision: positive(request.minModRevision),
    maxModRevision: positive(request.maxModRevision),
    minCreateRevision: positive(request.minCreateRevision),
    maxCreateRevision: positive(request.maxCreateRevision),
  };
}

export function putFromWire(request: etcd.PutRequest): kv.PutRequest {
  if (request.key.byteLength === 0) throw new KvError('invalid-argument', 'etcdserver: key is not provided');
  return {
    key: request.key,
    value: request.value,
    lease: request.lease === 0 ? undefined : request.lease,
    prevKv: request.prevKv,
    ignoreValue: request.ignoreValue,
    ignoreLease: request.ignoreLease,
  };
}

export function deleteRangeFromWire(request: etcd.DeleteRangeRequest): kv.DeleteRangeRequest {
  if (request.key.byteLength === 0) throw new KvError('invalid-argument', 'etcdserver: key is not provided');
  return { key: request.key, rangeEnd: optionalBytes(request.rangeEnd), prevKv: request.prevKv };
}

function compareFromWire(compare: etcd.Compare): kv.Compare {
  const { target, union } = known(COMPARE_TARGETS, compare.target, 'compare target');
  const operand = compare.targetUnion;
  let value: number | Uint8Array;
  if (operand === undefined) value = target === 'value' ? new Uint8Array(0) : 0;
  else if (operand.$case !== union) throw new KvError('invalid-argument', `compare on ${target} carries a ${operand.$case} operand`);
  else value = operand.value;
  return { key: compare.key, rangeEnd: optionalBytes(compare.rangeEnd), target, result: known(COMPARE_RESULTS, compare.result, 'compare result'), operand: value };
}

function requestOpFromWire(op: etcd.RequestOp): kv.RequestOp {
  const request = op.request;
  switch (request?.$case) {
    case 'requestRange':
      return { kind: 'range', request: rangeFromWire(request.value) };
    case 'requestPut':
      return { kind: 'put', request: putFromWire(request.value) };
    case 'requestDeleteRange':
      return { kind: 'delete-range', request: deleteRangeFromWire(request.value) };
    case 'requestTxn':
      return { kind: 'txn', request: txnFromWire(request.value) };
    case undefined:
      throw new KvError('invalid-argument', 'a txn operation carries no request');
  }
}

export function txnFromWire(request: etcd.TxnRequest): kv.TxnRequest {
  return { compare: request.compare.map(compareFromWire), success: request.success.map(requestOpFromWire), failure: request.failure.map(requestOpFromWire) };
}

/** Whether a txn (or any nested txn) writes: read-only txns need no log entry. */
export function txnWrites(request: etcd.TxnRequest): boolean {
  const writes = (op: etcd.RequestOp): boolean =>
    op.request?.$case === 'requestPut' || op.request?.$case === 'requestDeleteRange' || (op.request?.$case === 'requestTxn' && txnWrites(op.request.value));
  return request.success.some(writes) || request.failure.some(writes);
}

// ------------------------------------------------------------------ results

const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));

export function keyValueToWire(value: kv.KeyValue): mvccpb.KeyValue {
  return {
    key: asBuffer(value.key),
    createRevision: value.createRevision,
    modRevision: value.modRevision,
    version: value.version,
    value: asBuffer(value.value),
    lease: value.lease,
  };
}

export function rangeResponseToWire(response: kv.RangeResponse, header: etcd.ResponseHeader): etcd.RangeResponse {
  return { header, kvs: response.kvs.map(keyValueToWire), more: response.more, count: response.count };
}

export function putResponseToWire(response: kv.PutResponse, header: etcd.ResponseHeader): etcd.PutResponse {
  return { header, prevKv: response.prevKv === undefined ? undefined : keyValueToWire(response.prevKv) };
}

export function deleteRangeResponseToWire(response: kv.DeleteRangeResponse, header: etcd.ResponseHeader): etcd.DeleteRangeResponse {
  return { header, deleted: response.deleted, prevKvs: response.prevKvs.map(keyValueToWire) };
}

function responseOpToWire(op: kv.ResponseOp, header: etcd.ResponseHeader): etcd.ResponseOp {
  switch (op.kind) {
    case 'range':
      return { response: { $case: 'responseRange', value: rangeResponseToWire(op.response, header) } };
    case 'put':
      return { response: { $case: 'responsePut', value: putResponseToWire(op.response, header) } };
    case 'delete-range':
      return { response: { $case: 'responseDeleteRange', value: deleteRangeResponseToWire(op.response, header) } };
    case 'txn':
      return { response: { $case: 'responseTxn', value: txnResponseToWire(op.response, header) } };
  }
}

export function txnResponseToWire(response: kv.TxnResponse, header: etcd.ResponseHeader): etcd.TxnResponse {
  return { header, succeeded: response.succeeded, responses: response.responses.map((op) => responseOpToWire(op, header)) };
}

export function eventToWire(event: kv.WatchEvent): mvccpb.Event {
  return {
    type: event.type === 'put' ? mvccpb.Event_EventType.PUT : mvccpb.Event_EventType.DELETE,
    kv: keyValueToWire(event.kv),
    prevKv: event.prevKv === undefined ? undefined : keyValueToWire(event.prevKv),
  };
}
