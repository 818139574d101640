// Requests and results of the key-value state machine, shaped after etcd's
// v3 API (api/etcdserverpb/rpc.proto) so the server layer maps them 1:1.

export type Bytes = Uint8Array;

export interface KeyValue {
  readonly key: Bytes;
  readonly value: Bytes;
  readonly createRevision: number;
  readonly modRevision: number;
  /** Number of modifications since creation (1 after the create); 0 in a delete event. */
  readonly version: number;
  readonly lease: number;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export interface RangeRequest {
  readonly key: Bytes;
  /** Absent: just `key`; [0]: every key >= key; otherwise [key, rangeEnd). */
  readonly rangeEnd?: Bytes | undefined;
  /** 0 or absent: no limit. */
  readonly limit?: number | undefined;
  /** 0 or absent: the current revision. */
  readonly revision?: number | undefined;
  readonly sortOrder?: SortOrder | undefined;
  readonly sortTarget?: SortTarget | undefined;
  readonly keysOnly?: boolean | undefined;
  readonly countOnly?: boolean | undefined;
  readonly minModRevision?: number | undefined;
  readonly maxModRevision?: number | undefined;
  readonly minCreateRevision?: number | undefined;
  readonly maxCreateRevision?: number | undefined;
}

export interface RangeResponse {
  readonly revision: number;
  readonly kvs: readonly KeyValue[];
  readonly more: boolean;
  readonly count: number;
}

export interface PutRequest {
  readonly key: Bytes;
  readonly value: Bytes;
  readonly lease?: number | undefined;
  readonly prevKv?: boolean | undefined;
  readonly ignoreValue?: boolean | undefined;
  readonly ignoreLease?: boolean | undefined;
}

export interface PutResponse {
  readonly revision: number;
  readonly prevKv: KeyValue | undefined;
}

export interface DeleteRangeRequest {
  readonly key: Bytes;
  readonly rangeEnd?: Bytes | undefined;
  readonly prevKv?: boolean | undefined;
}

export interface DeleteRangeResponse {
  readonly revision: number;
  readonly deleted: number;
  readonly prevKvs: readonly KeyValue[];
}

export type CompareTarget = 'version' | 'create' | 'mod' | 'value' | 'lease';
export type CompareResult = 'equal' | 'greater' | 'less' | 'not-equal';

export interface Compare {
  readonly key: Bytes;
  readonly rangeEnd?: Bytes | undefined;
  readonly target: CompareTarget;
  readonly result: CompareResult;
  /** A number for version/create/mod/lease, bytes for value. */
  readonly operand: number | Bytes;
}

export type RequestOp =
  | { readonly kind: 'range'; readonly request: RangeRequest }
  | { readonly kind: 'put'; readonly request: PutRequest }
  | { readonly kind: 'delete-range'; readonly request: DeleteRangeRequest }
  | { readonly kind: 'txn'; readonly request: TxnRequest };

export type ResponseOp =
  | { readonly kind: 'range'; readonly response: RangeResponse }
  | { readonly kind: 'put'; readonly response: PutResponse }
  | { readonly kind: 'delete-range'; readonly response: DeleteRangeResponse }
  | { readonly kind: 'txn'; readonly response: TxnResponse };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly RequestOp[];
  readonly failure: readonly RequestOp[];
}

export interface TxnResponse {
  readonly revision: number;
  readonly succeeded: boolean;
  readonly responses: readonly ResponseOp[];
}

/** A change as watchers see it. For a delete, `kv` holds the key and the deleting revision. */
export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
  readonly prevKv: KeyValue | undefined;
}
