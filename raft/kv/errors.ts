// Errors of the store, with etcd's meanings. The server layer maps each code
// to the gRPC status etcd gives, keeping the message.

export type KvErrorCode =
  | 'compacted' // the revision asked for was compacted away (etcd: OutOfRange)
  | 'future-revision' // the revision asked for does not exist yet (etcd: OutOfRange)
  | 'lease-not-found' // (etcd: NotFound)
  | 'lease-exists' // (etcd: FailedPrecondition)
  | 'key-not-found' // ignore_value / ignore_lease on a missing key (etcd: InvalidArgument)
  | 'duplicate-key' // a txn branch writes the same key twice (etcd: InvalidArgument)
  | 'invalid-argument';

export class KvError extends Error {
  override readonly name = 'KvError';
  constructor(
    readonly code: KvErrorCode,
    message: string,
  ) {
    super(message);
  }
}
