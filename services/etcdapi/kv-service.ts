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
  type Outcome,
  type ReplicatedStore,
} from '../store/index.js';
import { ApiError, toServiceError } from './errors.js';

/** etcd's --max-txn-ops default. */
export const MAX_TXN_OPS = 128;

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** Run an async handler, answering with its result or the gRPC status its error maps to. */
export function unary<Req, Res>(run: (request: Req) => Promise<Res>): Unary<Req, Res> {
  return (call, callback) => {
    run(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => callback(toServiceError(error)),
    );
  };
}

export function expectOutcome<K extends Outcome['kind']>(outcome: Outcome, kind: K): Extract<Outcome, { kind: K }> {
  if (outcome.kind === 'error') throw outcome.error;
  if (outcome.kind !== kind) throw new ApiError(grpc.status.INTERNAL, `mast: applied ${outcome.kind} where ${kind} was expected`);
  return outcome as Extract<Outcome, { kind: K }>;
}

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
