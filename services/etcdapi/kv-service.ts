// etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact.

import * as grpc from '@grpc/grpc-js';
import type * as etcd from '../../proto/gen/etcd/rpc.js';
import {
  deleteRangeResponseToWire,
  putResponseToWire,
  rangeFromWire,
  rangeResponseToWire,
  txnFromWire,
  txnResponseToWire,
  txnWrites,
  type ReplicatedStore,
} from '../store/index.js';
import { ApiError, expectOutcome, unary } from './errors.js';

/** etcd's --max-txn-ops default. */
export const MAX_TXN_OPS = 128;

function checkTxnSize(request: etcd.TxnRequest): void {
  const ops = Math.max(request.success.length, request.failure.length);
  if (request.compare.length > MAX_TXN_OPS || ops > MAX_TXN_OPS) {
    throw new ApiError(grpc.status.INVALID_ARGUMENT, `etcdserver: too many operations in txn request (at most ${MAX_TXN_OPS} compares and ${MAX_TXN_OPS} operations per branch)`);
  }
}

export function kvService(store: ReplicatedStore): etcd.KVServer {
  return {
    range: unary(async (request: etcd.RangeRequest) => {
      const range = rangeFromWire(request);
      if (!request.serializable) await store.linearizableBarrier();
      const response = store.kv.range(range);
      return rangeResponseToWire(response, store.header(response.revision));
    }),
    put: unary(async (request: etcd.PutRequest) => {
      if (request.key.byteLength === 0) throw new ApiError(grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
      const { response } = expectOutcome(await store.write({ $case: 'put', value: request }), 'put');
      return putResponseToWire(response, store.header(response.revision));
    }),
    deleteRange: unary(async (request: etcd.DeleteRangeRequest) => {
      if (request.key.byteLength === 0) throw new ApiError(grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
      const { response } = expectOutcome(await store.write({ $case: 'deleteRange', value: request }), 'delete-range');
      return deleteRangeResponseToWire(response, store.header(response.revision));
    }),
    txn: unary(async (request: etcd.TxnRequest) => {
      checkTxnSize(request);
      const parsed = txnFromWire(request); // refuse malformed requests before they reach the log
      if (!txnWrites(request)) {
        // A read-only txn is a read: no log entry, a ReadIndex round instead.
        await store.linearizableBarrier();
        const response = store.kv.txn(parsed);
        return txnResponseToWire(response, store.header(response.revision));
      }
      const { response } = expectOutcome(await store.write({ $case: 'txn', value: request }), 'txn');
      return txnResponseToWire(response, store.header(response.revision));
    }),
    compact: unary(async (request: etcd.CompactionRequest) => {
      const { revision } = expectOutcome(await store.write({ $case: 'compaction', value: request }), 'compaction');
      return { header: store.header(revision) };
    }),
  };
}
