// The replicated key-value state machine: MVCC store, watchers, leases.
export { KvError, type KvErrorCode } from './errors.js';
export { lowerBound, prefixEnd } from './keys.js';
export { MvccStore, compareBytes } from './mvcc.js';
export { WatchHub, type WatchBatch, type WatchRequest, type WatchStart } from './watch.js';
export { encodeStoreSnapshot, decodeStoreSnapshot } from './snapshot.js';
export type * from './types.js';
