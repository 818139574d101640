// Errors as etcd's gRPC API reports them: the status code etcd uses for each
// condition and a message that starts as etcd's does (clients match on it)
// and adds what mast knows about the case; and the unary-handler wrapper that
// answers with them.

import * as grpc from '@grpc/grpc-js';
import { KvError, type KvErrorCode } from '../../raft/kv/index.js';
import { StoreError, type Outcome } from '../store/index.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const KV_CODES: Record<KvErrorCode, { code: grpc.status; etcd: string }> = {
  compacted: { code: grpc.status.OUT_OF_RANGE, etcd: 'etcdserver: mvcc: required revision has been compacted' },
  'future-revision': { code: grpc.status.OUT_OF_RANGE, etcd: 'etcdserver: mvcc: required revision is a future revision' },
  'lease-not-found': { code: grpc.status.NOT_FOUND, etcd: 'etcdserver: requested lease not found' },
  'lease-exists': { code: grpc.status.FAILED_PRECONDITION, etcd: 'etcdserver: lease already exists' },
  'key-not-found': { code: grpc.status.INVALID_ARGUMENT, etcd: 'etcdserver: key not found' },
  'duplicate-key': { code: grpc.status.INVALID_ARGUMENT, etcd: 'etcdserver: duplicate key given in txn request' },
  'invalid-argument': { code: grpc.status.INVALID_ARGUMENT, etcd: '' },
};

const STORE_CODES: Record<StoreError['code'], grpc.status> = {
  timeout: grpc.status.UNAVAILABLE,
  'too-many-requests': grpc.status.RESOURCE_EXHAUSTED,
  stopped: grpc.status.UNAVAILABLE,
  'not-leader': grpc.status.UNAVAILABLE,
  'no-leader': grpc.status.UNAVAILABLE,
  invalid: grpc.status.INVALID_ARGUMENT,
  'not-found': grpc.status.NOT_FOUND,
  'failed-precondition': grpc.status.FAILED_PRECONDITION,
};

/** The message starts with etcd's own text (clients match on it), then mast's detail. */
function withEtcdPrefix(prefix: string, detail: string): string {
  if (prefix === '' || detail.startsWith(prefix)) return detail;
  return `${prefix} (${detail})`;
}

export function toServiceError(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof ApiError) return { code: error.code, details: error.message };
  if (error instanceof KvError) {
    const mapped = KV_CODES[error.code];
    return { code: mapped.code, details: withEtcdPrefix(mapped.etcd, error.message) };
  }
  if (error instanceof StoreError) return { code: STORE_CODES[error.code], details: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { code: grpc.status.INTERNAL, details: `mast: internal error: ${message}` };
}

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** Run an async handler (given the request and the call's metadata), answering with its result or the gRPC status its error maps to (by `toStatus`). */
export function unary<Req, Res>(run: (request: Req, metadata: grpc.Metadata) => Promise<Res>, toStatus: (error: unknown) => Partial<grpc.StatusObject> = toServiceError): Unary<Req, Res> {
  return (call, callback) => {
    run(call.request, call.metadata).then(
      (response) => callback(null, response),
      (error: unknown) => callback(toStatus(error)),
    );
  };
}

export function expectOutcome<K extends Outcome['kind']>(outcome: Outcome, kind: K): Extract<Outcome, { kind: K }> {
  if (outcome.kind === 'error') throw outcome.error;
  if (outcome.kind !== kind) throw new ApiError(grpc.status.INTERNAL, `mast: applied ${outcome.kind} where ${kind} was expected`);
  return outcome as Extract<Outcome, { kind: K }>;
}
