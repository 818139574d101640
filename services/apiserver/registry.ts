// The generic resource registry: Kubernetes-shaped objects of every kind in
// the replicated store, under /registry/<resource>/[<namespace>/]<name>, as
// JSON. resourceVersion is the key's mod revision (never stored in the
// value: it is filled in on every read); writes are compare-and-swap
// transactions on it, so two clients updating from the same version cannot
// both win.
//
// What a write goes through, in order: strict decoding against the kind's
// schema (unknown fields and wrong types rejected by path), metadata
// validation, then the store transaction. Every failure is an ApiError whose
// reason a client can act on.

import { randomUUID } from 'node:crypto';
import { nanoid } from 'nanoid';
import * as etcd from '../../proto/gen/etcd/rpc.js';
import { KvError, prefixEnd as kvPrefixEnd, type RangeResponse, type TxnResponse } from '../../raft/kv/index.js';
import type { ReplicatedStore } from '../store/index.js';
import type { Context, Tracer } from '@opentelemetry/api';
import { endSpan, spanTimeNow, startSpan, type ActiveSpan } from '../telemetry/index.js';
import { KINDS, kindInfo, listPrefix, objectKey, type KindInfo } from '../client/kinds.js';
import { decodeStrict, isJsonObject, type FieldError, type Json } from './schema.js';
import { COMMON_FIELDS, matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError, type FieldRequirement, type Requirement } from './selectors.js';
import { dns1123Subdomain, validateObjectMeta } from './validation.js';
import { IMMORTAL_NAMESPACES, namespaceFinalizers, STRATEGIES } from './strategies.js';
import { allocationKeys, assign, NODE_PORT_PREFIX, SERVICE_IP_PREFIX, type AllocatorConfig } from './allocator.js';
import { applyUsage, constrains, countName, exceededMessage, hardLimits, usageOf, usedJson, usedOf, type Usage } from './quota.js';

/** Compares and operations a write adds to its transaction. */
interface TxnPart {
  readonly compare: etcd.Compare[];
  readonly success: etcd.RequestOp[];
}

const QUOTA_INFO = kindInfo('ResourceQuota')!;
/** Quota names that pods use (the rest are object counts). */
const POD_RESOURCES = new Set(['pods', 'cpu', 'memory', 'requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory']);
/** How often a write retries when quotas it charges keep changing under it. */
const MAX_WRITE_ATTEMPTS = 20;

export type Reason = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Invalid' | 'BadRequest' | 'Gone' | 'TooLarge' | 'Fenced' | 'Forbidden' | 'Unauthorized';

/**
 * A write from a leader-elected component carries the fencing token of its
 * Lease: the resourceVersion of the write that made it the holder. The
 * write is refused (Fenced) once the Lease has had a newer holder, checked
 * in the write's own transaction — so a superseded leader that wakes up can
 * never write, however late its request arrives.
 */
export interface Fence {
  readonly namespace: string;
  readonly name: string;
  readonly token: number;
}

/** Who asks and on whose authority, for writes. */
export interface WriteContext {
  readonly fence?: Fence | undefined;
  /** The request's span: the write's propose/commit and apply become its children. */
  readonly trace?: { readonly tracer: Tracer; readonly parent: Context } | undefined;
}

/** Where a Lease's fencing token lives: a key whose mod revision changes only when the holder does. */
export function fencingKey(namespace: string, name: string): string {
  return `/registry/fencing/leases/${namespace}/${name}`;
}

/** A refusal with Kubernetes' reason; the gRPC layer maps reasons to status codes. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly reason: Reason,
    message: string,
    readonly fieldErrors: readonly FieldError[] = [],
  ) {
    super(message);
  }
}

export type ApiObject = Record<string, Json> & { metadata: Record<string, Json> };

export interface DeleteOptions extends WriteContext {
  /** Delete only at this version (Conflict otherwise). */
  readonly resourceVersion?: string | undefined;
  /** A pod's grace period, overriding its spec's; 0 deletes at once. */
  readonly gracePeriodSeconds?: number | undefined;
  /**
   * What happens to the object's dependents (objects whose ownerReferences
   * name it): Background (the default) deletes the object now and the
   * garbage collector its dependents after; Foreground deletes the
   * dependents first; Orphan keeps them, without the reference.
   */
  readonly propagationPolicy?: string | undefined;
}

/** The finalizers through which the garbage collector carries out Orphan and Foreground deletions (Kubernetes' names). */
export const ORPHAN_FINALIZER = 'orphan';
export const FOREGROUND_FINALIZER = 'foregroundDeletion';

function policyFinalizer(policy: string | undefined): string | undefined {
  switch (policy ?? '') {
    case '':
    case 'Background':
      return undefined;
    case 'Orphan':
      return ORPHAN_FINALIZER;
    case 'Foreground':
      return FOREGROUND_FINALIZER;
    default:
      throw new ApiError('BadRequest', `propagationPolicy "${policy}" is not one of Orphan, Background, Foreground`);
  }
}

/** What must finish before a marked object goes: its finalizers, and a namespace's spec.finalizers. */
function pendingFinalizers(info: KindInfo, object: ApiObject): Json[] {
  const finalizers = Array.isArray(object.metadata.finalizers) ? object.metadata.finalizers : [];
  return info.kind === 'Namespace' ? [...finalizers, ...namespaceFinalizers(object)] : finalizers;
}

/** A Lease write that changes its holder moves the fencing key (its new mod revision is the new holder's token). */
function holderChange(info: KindInfo, before: ApiObject | undefined, after: ApiObject): etcd.RequestOp[] {
  if (info.kind !== 'Lease') return [];
  const holder = (object: ApiObject | undefined): string => {
    const spec = object?.spec;
    return isJsonObject(spec) && typeof spec.holderIdentity === 'string' ? spec.holderIdentity : '';
  };
  const next = holder(after);
  if (next === holder(before) || (before === undefined && next === '')) return [];
  return [putOp(fencingKey(after.metadata.namespace as string, after.metadata.name as string), encoder.encode(next))];
}

export interface ListOptions {
  readonly namespace?: string | undefined;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
  /** At most this many items; the answer's continue token fetches the rest from the same snapshot. */
  readonly limit?: number | undefined;
  readonly continue?: string | undefined;
  /** Read as of this resourceVersion (a consistent snapshot); absent or "0": the latest. */
  readonly resourceVersion?: string | undefined;
}

export interface ObjectList {
  readonly items: ApiObject[];
  readonly resourceVersion: string;
  /** Empty when there is nothing more. */
  readonly continue: string;
  readonly remainingItemCount?: number;
}

export interface RegistryOptions {
  /** Larger objects are refused (TooLarge). */
  readonly maxObjectBytes: number;
  readonly now?: () => Date;
  /** Where Services get cluster IPs and node ports (default 10.96.0.0/12 and 30000-32767). */
  readonly allocator?: AllocatorConfig;
}

export const DEFAULT_ALLOCATOR: AllocatorConfig = { serviceCidr: '10.96.0.0/12', nodePortRange: [30000, 32767] };

function deleteOp(key: string): etcd.RequestOp {
  return { request: { $case: 'requestDeleteRange', value: etcd.DeleteRangeRequest.fromPartial({ key: encoder.encode(key) }) } };
}

function rangeOp(key: string): etcd.RequestOp {
  return { request: { $case: 'requestRange', value: etcd.RangeRequest.fromPartial({ key: encoder.encode(key) }) } };
}

/** Fields each kind can be selected on, beyond metadata.name and metadata.namespace. */
export const EXTRA_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Pod: ['spec.nodeName', 'status.phase', 'spec.schedulerName', 'spec.serviceAccountName'],
  Event: ['involvedObject.kind', 'involvedObject.name', 'involvedObject.namespace', 'reason', 'type'],
  Secret: ['type'],
  Node: ['spec.unschedulable'],
  Namespace: ['status.phase'],
};

const encoder = { encode: (text: string): Buffer => Buffer.from(text, 'utf8') };
const decoder = new TextDecoder();

function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}


/** Deep equality of JSON values (for "did the spec change"). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  if (isJsonObject(a) && isJsonObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && jsonEqual(a[key], b[key]));
  }
  return false;
}

/** RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isJsonObject(patch)) return patch;
  const out: Record<string, Json> = isJsonObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** The range end covering every key that starts with `prefix` (the store's prefixEnd, for a string). */
export function prefixEnd(prefix: string): Buffer {
  return Buffer.from(kvPrefixEnd(encoder.encode(prefix)));
}

/** A stored object as clients see it: its resourceVersion is the revision it was read at. */
export function objectFromStored(value: Uint8Array, revision: number): ApiObject {
  const object = JSON.parse(decoder.decode(value)) as ApiObject;
  object.metadata.resourceVersion = String(revision);
  return object;
}

/** The namespace a request means: '' for cluster-scoped kinds, "default" when a namespaced one gives none. */
export function namespaceOf(info: KindInfo, namespace: string | undefined): string {
  if (!info.namespaced) return '';
  return namespace === undefined || namespace === '' ? 'default' : namespace;
}

/** Kubernetes' words for a write that lost to another one. */
function modifiedConflict(info: KindInfo, name: string, detail = ''): ApiError {
  return new ApiError('Conflict', `Operation cannot be fulfilled on ${info.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again${detail}`);
}

function withVersion(object: ApiObject, revision: number): ApiObject {
  return { ...object, metadata: { ...object.metadata, resourceVersion: String(revision) } };
}

/** What the user asked for, without identity, metadata or status: generation counts its changes. */
function desiredState(object: ApiObject): Json {
  const rest: Record<string, Json> = { ...object };
  for (const field of ['metadata', 'status', 'apiVersion', 'kind']) delete rest[field];
  return rest;
}

export interface ContinueToken {
  readonly rv: number;
  readonly start: string;
}

export function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeContinue(text: string): ContinueToken {
  try {
    const token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as ContinueToken;
    if (typeof token.rv === 'number' && typeof token.start === 'string') return token;
  } catch {
    // fall through
  }
  throw new ApiError('BadRequest', `continue token "${text.slice(0, 40)}" is not one this server issued`);
}

function parseResourceVersion(text: string | undefined, what: string): number | undefined {
  if (text === undefined || text === '' || text === '0') return undefined;
  if (!/^\d+$/.test(text)) throw new ApiError('BadRequest', `${what} "${text}" is not a resourceVersion (a decimal revision)`);
  return Number(text);
}

/** Compare of a key's create revision (0: the key does not exist). */
function createdAt(key: string, result: etcd.Compare_CompareResult, revision: number): etcd.Compare {
  return { key: encoder.encode(key), rangeEnd: Buffer.alloc(0), target: etcd.Compare_CompareTarget.CREATE, result, targetUnion: { $case: 'createRevision', value: revision } };
}

/** Compare of a key's mod revision. */
function modifiedAt(key: string, revision: number): etcd.Compare {
  return { key: encoder.encode(key), rangeEnd: Buffer.alloc(0), target: etcd.Compare_CompareTarget.MOD, result: etcd.Compare_CompareResult.EQUAL, targetUnion: { $case: 'modRevision', value: revision } };
}

function putOp(key: string, value: Buffer): etcd.RequestOp {
  return { request: { $case: 'requestPut', value: etcd.PutRequest.fromPartial({ key: encoder.encode(key), value }) } };
}

/** A request's label and field selectors, parsed for `info`'s selectable fields (BadRequest when malformed). */
export function parseSelectors(info: KindInfo, labelSelector: string | undefined, fieldSelector: string | undefined): { labels: Requirement[]; fields: FieldRequirement[] } {
  try {
    return {
      labels: parseLabelSelector(labelSelector ?? ''),
      fields: parseFieldSelector(fieldSelector ?? '', [...COMMON_FIELDS, ...(EXTRA_FIELDS[info.kind] ?? [])]),
    };
  } catch (error) {
    if (error instanceof SelectorError) throw new ApiError('BadRequest', error.message);
    throw error;
  }
}

export class Registry {
  private readonly now: () => Date;

  constructor(
    private readonly store: ReplicatedStore,
    private readonly options: RegistryOptions,
  ) {
    this.now = options.now ?? (() => new Date());
  }

  static kind(kindName: string): KindInfo {
    const info = kindInfo(kindName);
    if (info === undefined) throw new ApiError('NotFound', `the server does not serve kind "${kindName}"`);
    return info;
  }

  async get(kindName: string, namespace: string, name: string): Promise<ApiObject> {
    const info = Registry.kind(kindName);
    await this.store.linearizableBarrier();
    const found = this.read(objectKey(info, namespaceOf(info, namespace), name));
    if (found === undefined) throw this.notFound(info, namespace, name);
    return found;
  }

  async create(kindName: string, input: unknown, context: WriteContext = {}): Promise<ApiObject> {
    const info = Registry.kind(kindName);
    const object = this.decode(info, input);
    const meta = object.metadata;
    const namespace = namespaceOf(info, meta.namespace as string | undefined);
    if ((meta.name ?? '') === '') meta.name = `${meta.generateName as string}${nanoid(5).toLowerCase().replace(/[^a-z0-9]/g, 'x')}`;
    if (info.namespaced) meta.namespace = namespace;
    // Before defaults and validation, as Kubernetes' admission: a missing or terminating namespace is the answer.
    let admitted = await this.admitToNamespace(info, namespace, meta.name as string, false);
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    // Status is the system's to write (through UpdateStatus), never the creator's.
    if (info.hasStatus) delete object.status;
    // Kubernetes' uids are UUIDs: valid as label values (a Job's selector uses one).
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339(this.now());
    meta.generation = 1;
    const strategy = STRATEGIES[info.kind];
    strategy?.defaults?.(object);
    this.check(info, object, strategy?.validate?.(object) ?? []);
    const key = objectKey(info, namespace, meta.name as string);
    // A Service's cluster IP and node ports are keys of their own, created in
    // the same transaction; if another master took one first, pick again.
    const allocates = info.kind === 'Service';
    for (let attempt = 0; ; attempt++) {
      // Each attempt allocates afresh from the object as given.
      const candidate = allocates ? structuredClone(object) : object;
      if (allocates) this.check(info, candidate, assign(candidate, this.allocator, this.allocationsInUse(), undefined, Math.random()));
      const claims = allocates ? allocationKeys(candidate) : [];
      if (attempt > 0) admitted = await this.admitToNamespace(info, namespace, meta.name as string, true);
      const counted = info.kind === 'ResourceQuota' ? this.countUsage(candidate, namespace) : { compare: [], success: [] };
      const charged = this.chargeQuotas(info, namespace, candidate, 1);
      const response = await this.txn({
        compare: [createdAt(key, etcd.Compare_CompareResult.EQUAL, 0), ...claims.map((claim) => createdAt(claim, etcd.Compare_CompareResult.EQUAL, 0)), ...admitted, ...counted.compare, ...charged.compare],
        success: [putOp(key, this.encode(candidate)), ...claims.map((claim) => putOp(claim, encoder.encode(key))), ...holderChange(info, undefined, candidate), ...charged.success],
        failure: [rangeOp(key)],
      }, context);
      if (response.succeeded) return withVersion(candidate, response.revision);
      const exists = response.responses[0]?.kind === 'range' && response.responses[0].response.kvs.length > 0;
      if (exists) throw new ApiError('AlreadyExists', `${info.kind} "${meta.name as string}" already exists${info.namespaced ? ` in namespace "${namespace}"` : ''}`);
      if (attempt >= MAX_WRITE_ATTEMPTS) throw new ApiError('Conflict', `${info.kind} "${meta.name as string}": other writes kept taking its addresses or changing its namespace or its quotas; retry`);
      await this.store.linearizableBarrier();
    }
  }

  /** Replace an object (its status is kept when the kind has a status subresource). */
  update(kindName: string, input: unknown, context: WriteContext = {}): Promise<ApiObject> {
    return this.replace(kindName, input, 'main', context);
  }

  /** Replace only an object's status. */
  updateStatus(kindName: string, input: unknown, context: WriteContext = {}): Promise<ApiObject> {
    return this.replace(kindName, input, 'status', context);
  }

  /**
   * Assign a pending pod to a node (pods/binding): spec.nodeName set once,
   * in a transaction on the pod's version — the cheap path a scheduler
   * takes for every pod, with no decoding or validation of a whole object.
   */
  async bind(namespace: string, name: string, nodeName: string, options: WriteContext & { resourceVersion?: string | undefined } = {}): Promise<ApiObject> {
    const info = Registry.kind('Pod');
    const fieldErrors = nodeName === '' ? [{ path: 'target.name', message: 'is required' }] : dns1123Subdomain(nodeName, 'target.name');
    if (fieldErrors.length > 0) throw new ApiError('Invalid', `Binding "${name}" is invalid: ${fieldErrors.map((error) => `${error.path}: ${error.message}`).join('; ')}`, fieldErrors);
    const key = objectKey(info, namespaceOf(info, namespace), name);
    const expected = parseResourceVersion(options.resourceVersion, 'resourceVersion');
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await this.store.linearizableBarrier();
      const currentKv = this.store.kv.range({ key: encoder.encode(key) }).kvs[0];
      if ((currentKv === undefined || (expected !== undefined && expected !== currentKv.modRevision)) && attempt === 0) continue;
      if (currentKv === undefined) throw this.notFound(info, namespace, name);
      if (expected !== undefined && expected !== currentKv.modRevision) throw modifiedConflict(info, name, ` (current resourceVersion ${currentKv.modRevision}, yours ${expected})`);
      const current = objectFromStored(currentKv.value, currentKv.modRevision);
      const spec = isJsonObject(current.spec) ? current.spec : {};
      if (typeof spec.nodeName === 'string' && spec.nodeName !== '') throw new ApiError('Conflict', `pod ${name} is already assigned to node "${spec.nodeName}"`);
      if (current.metadata.deletionTimestamp !== undefined) throw new ApiError('Conflict', `pod ${name} is being deleted, cannot be assigned to a node`);
      const next: ApiObject = { ...current, spec: { ...spec, nodeName } };
      const response = await this.txn({ compare: [modifiedAt(key, currentKv.modRevision)], success: [putOp(key, this.encode(next))], failure: [] }, options);
      if (response.succeeded) return withVersion(next, response.revision);
      if (attempt >= MAX_WRITE_ATTEMPTS) throw modifiedConflict(info, name);
    }
  }

  /** Apply a JSON merge patch to the current object (retried on conflict unless the patch names a resourceVersion). */
  async patch(kindName: string, namespace: string, name: string, patch: unknown, context: WriteContext = {}): Promise<ApiObject> {
    const info = Registry.kind(kindName);
    if (!isJsonObject(patch)) throw new ApiError('BadRequest', 'a merge patch must be a JSON object');
    for (let attempt = 0; ; attempt++) {
      const current = await this.get(info.kind, namespace, name);
      const patched = mergePatch(current, patch) as ApiObject;
      const pinned = isJsonObject(patch.metadata) && patch.metadata.resourceVersion !== undefined;
      try {
        return await this.replace(info.kind, patched, 'main', context);
      } catch (error) {
        if (!(error instanceof ApiError) || error.reason !== 'Conflict' || pinned || attempt >= 5) throw error;
      }
    }
  }

  /**
   * Delete an object, as Kubernetes does: one with finalizers, or a pod
   * bound to a node with a grace period, is marked (deletionTimestamp,
   * deletionGracePeriodSeconds) and returned as it now is; it is removed
   * when its finalizers are gone and its grace period is 0 (a later delete
   * with gracePeriodSeconds 0, or the update that removes the last
   * finalizer).
   */
  async delete(kindName: string, namespace: string, name: string, options: DeleteOptions = {}): Promise<ApiObject> {
    const info = Registry.kind(kindName);
    if (info.kind === 'Namespace' && IMMORTAL_NAMESPACES.has(name)) throw new ApiError('Forbidden', `${info.resource} "${name}" is forbidden: this namespace may not be deleted`);
    const key = objectKey(info, namespaceOf(info, namespace), name);
    const expected = parseResourceVersion(options.resourceVersion, 'resourceVersion');
    const finalizer = policyFinalizer(options.propagationPolicy);
    // The first attempt reads this master's state; the transaction's compare
    // makes that safe. Only a refusal needs the up-to-date view first.
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await this.store.linearizableBarrier();
      const currentKv = this.store.kv.range({ key: encoder.encode(key) }).kvs[0];
      const mismatch = currentKv === undefined || (expected !== undefined && expected !== currentKv.modRevision);
      if (mismatch && attempt === 0) continue;
      if (currentKv === undefined) throw this.notFound(info, namespace, name);
      if (expected !== undefined && expected !== currentKv.modRevision) {
        throw new ApiError('Conflict', `${info.kind} "${name}" is at resourceVersion ${currentKv.modRevision}, not ${expected}: it changed since you read it`);
      }
      const current = objectFromStored(currentKv.value, currentKv.modRevision);
      const finalizers = Array.isArray(current.metadata.finalizers) ? current.metadata.finalizers : [];
      const withPolicy = finalizer === undefined || finalizers.includes(finalizer) ? current : { ...current, metadata: { ...current.metadata, finalizers: [...finalizers, finalizer] } };
      const marked = this.markForDeletion(info, withPolicy, options.gracePeriodSeconds);
      if (marked !== undefined) {
        if (marked === current) return current;
        const response = await this.txn({ compare: [modifiedAt(key, currentKv.modRevision)], success: [putOp(key, this.encode(marked))], failure: [] }, options);
        if (response.succeeded) return withVersion(marked, response.revision);
        if (expected !== undefined) throw new ApiError('Conflict', `${info.kind} "${name}" changed since you read it (resourceVersion ${expected})`);
        continue;
      }
      const removal = this.removal(info, key, current);
      const response = await this.txn({ compare: [modifiedAt(key, currentKv.modRevision), ...removal.compare], success: removal.success, failure: [] }, options);
      // As Kubernetes answers: the object as it was, at the revision of its deletion.
      if (response.succeeded) return withVersion(current, response.revision);
      // The next attempt reads again: a Conflict if the object changed, another try if only its quotas did.
      if (attempt >= MAX_WRITE_ATTEMPTS) throw new ApiError('Conflict', `${info.kind} "${name}": other writes kept changing it or its namespace's quotas; retry`);
    }
  }

  async list(kindName: string, options: ListOptions = {}): Promise<ObjectList> {
    const info = Registry.kind(kindName);
    const { labels, fields } = parseSelectors(info, options.labelSelector, options.fieldSelector);
    const token = options.continue !== undefined && options.continue !== '' ? decodeContinue(options.continue) : undefined;
    const pinned = token?.rv ?? parseResourceVersion(options.resourceVersion, 'resourceVersion');
    if (pinned === undefined) await this.store.linearizableBarrier();
    const prefix = listPrefix(info, info.namespaced ? options.namespace : undefined);
    if (token !== undefined && !token.start.startsWith(prefix)) throw new ApiError('BadRequest', `continue token "${options.continue!.slice(0, 40)}" belongs to another listing`);
    const limit = options.limit !== undefined && options.limit > 0 ? options.limit : 0;
    const items: ApiObject[] = [];
    let start = token !== undefined ? encoder.encode(token.start) : encoder.encode(prefix);
    const end = prefixEnd(prefix);
    let revision = pinned ?? 0;
    let nextStart: string | undefined;
    // Read in pages until `limit` items pass the selectors (or the range ends).
    for (;;) {
      let page: RangeResponse;
      try {
        page = this.store.kv.range({ key: start, rangeEnd: end, revision: revision === 0 ? undefined : revision, limit: limit === 0 ? 0 : Math.max(limit, 100) });
      } catch (error) {
        throw this.storeReadError(error, pinned);
      }
      // A read at a past revision answers with the current one: keep the snapshot's.
      if (revision === 0) revision = page.revision;
      for (const kv of page.kvs) {
        if (limit > 0 && items.length === limit) {
          nextStart = decoder.decode(kv.key);
          break;
        }
        const object = objectFromStored(kv.value, kv.modRevision);
        if (matchesLabels(labels, object.metadata.labels as Record<string, string> | undefined) && matchesFields(fields, object)) items.push(object);
      }
      if (nextStart !== undefined || !page.more || page.kvs.length === 0) break;
      const last = page.kvs[page.kvs.length - 1]!.key;
      start = Buffer.from([...last, 0]);
    }
    return { items, resourceVersion: String(revision), continue: nextStart === undefined ? '' : encodeContinue({ rv: revision, start: nextStart }) };
  }

  // ------------------------------------------------------------------ internals

  private async replace(kindName: string, input: unknown, part: 'main' | 'status', context: WriteContext): Promise<ApiObject> {
    const info = Registry.kind(kindName);
    if (part === 'status' && !info.hasStatus) throw new ApiError('NotFound', `${info.kind} has no status subresource`);
    const object = this.decode(info, input);
    const meta = object.metadata;
    const namespace = namespaceOf(info, meta.namespace as string | undefined);
    const name = meta.name as string | undefined;
    if (name === undefined || name === '') throw new ApiError('Invalid', 'metadata.name: is required to update', [{ path: 'metadata.name', message: 'is required' }]);
    const expected = parseResourceVersion(meta.resourceVersion as string | undefined, 'metadata.resourceVersion');
    const key = objectKey(info, namespace, name);
    // As in delete: this master's state first, the up-to-date view before refusing or after a lost race.
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await this.store.linearizableBarrier();
      const currentKv = this.store.kv.range({ key: encoder.encode(key) }).kvs[0];
      if ((currentKv === undefined || (expected !== undefined && expected !== currentKv.modRevision)) && attempt === 0) continue;
      if (currentKv === undefined) throw this.notFound(info, namespace, name);
      const current = objectFromStored(currentKv.value, currentKv.modRevision);
      if (expected !== undefined && expected !== currentKv.modRevision) {
        throw modifiedConflict(info, name, ` (current resourceVersion ${currentKv.modRevision}, yours ${expected})`);
      }
      const next = this.merge(info, current, object, part);
      const held = info.kind === 'Service' ? allocationKeys(current) : [];
      if (part === 'main') {
        const strategy = STRATEGIES[info.kind];
        strategy?.defaults?.(next);
        this.check(info, next, [...(strategy?.validate?.(next) ?? []), ...(strategy?.validateUpdate?.(next, current) ?? [])]);
        if (info.kind === 'Service') {
          const others = this.allocationsInUse();
          for (const claim of held) others.delete(claim);
          this.check(info, next, assign(next, this.allocator, others, current, Math.random()));
        }
        // After defaults and allocation, so an unchanged manifest is no change.
        const generation = typeof current.metadata.generation === 'number' ? current.metadata.generation : 1;
        next.metadata.generation = jsonEqual(desiredState(current), desiredState(next)) ? generation : generation + 1;
      }
      // A quota's status follows its spec: counted afresh whenever the spec is written. Any other object's change of usage is charged.
      const counted = info.kind === 'ResourceQuota' && part === 'main' ? this.countUsage(next, namespace) : this.rechargeQuotas(info, namespace, current, next);
      const claims = info.kind === 'Service' ? allocationKeys(next) : [];
      const claimed = claims.filter((claim) => !held.includes(claim));
      const released = held.filter((claim) => !claims.includes(claim));
      // Writing what is already there is a no-op, as in Kubernetes: no new version, no watch event.
      const stored: ApiObject = { ...current, metadata: { ...current.metadata } };
      delete stored.metadata.resourceVersion;
      if (jsonEqual(next, stored)) return current;
      // The last finalizer of an object being deleted (with no grace left) is gone: the object goes.
      const finalizers = Array.isArray(next.metadata.finalizers) ? next.metadata.finalizers : [];
      if (next.metadata.deletionTimestamp !== undefined && pendingFinalizers(info, next).length === 0 && (next.metadata.deletionGracePeriodSeconds ?? 0) === 0) {
        const removal = this.removal(info, key, current);
        const removed = await this.txn({ compare: [modifiedAt(key, currentKv.modRevision), ...removal.compare], success: removal.success, failure: [] }, context);
        if (removed.succeeded) return withVersion(next, removed.revision);
        if (attempt >= MAX_WRITE_ATTEMPTS) throw modifiedConflict(info, name);
        continue;
      }
      if (current.metadata.deletionTimestamp !== undefined) {
        const before = new Set(Array.isArray(current.metadata.finalizers) ? current.metadata.finalizers : []);
        const newFinalizers = finalizers.filter((finalizer) => !before.has(finalizer));
        if (newFinalizers.length > 0) this.check(info, next, [{ path: 'metadata.finalizers', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(newFinalizers)}` }]);
      }
      const response = await this.txn({
        compare: [modifiedAt(key, currentKv.modRevision), ...claimed.map((claim) => createdAt(claim, etcd.Compare_CompareResult.EQUAL, 0)), ...counted.compare],
        success: [putOp(key, this.encode(next)), ...claimed.map((claim) => putOp(claim, encoder.encode(key))), ...released.map(deleteOp), ...holderChange(info, current, next), ...counted.success],
        failure: [],
      }, context);
      if (response.succeeded) return withVersion(next, response.revision);
      // Someone wrote between our read and our write: read again (with a pinned version, that answers Conflict if it was this object).
      if (attempt >= MAX_WRITE_ATTEMPTS) throw modifiedConflict(info, name);
    }
  }

  /** The object to store: system metadata from `current`, the caller's part from `incoming`. */
  private merge(info: KindInfo, current: ApiObject, incoming: ApiObject, part: 'main' | 'status'): ApiObject {
    const system = ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'namespace'] as const;
    const fieldErrors: FieldError[] = [];
    for (const field of ['uid', 'creationTimestamp'] as const) {
      const given = incoming.metadata[field];
      if (given !== undefined && given !== '' && given !== current.metadata[field]) fieldErrors.push({ path: `metadata.${field}`, message: 'field is immutable' });
    }
    this.check(info, current, fieldErrors);
    let next: ApiObject;
    if (part === 'status') {
      next = { ...current, metadata: { ...current.metadata } };
      if (incoming.status !== undefined) next.status = incoming.status;
      else delete next.status;
    } else {
      next = { ...incoming, metadata: { ...incoming.metadata } };
      if (info.hasStatus) {
        if (current.status !== undefined) next.status = current.status;
        else delete next.status;
      }
      for (const field of system) {
        if (current.metadata[field] !== undefined) next.metadata[field] = current.metadata[field]!;
        else delete next.metadata[field];
      }
    }
    delete next.metadata.resourceVersion;
    return next;
  }

  /** The operations that remove an object and what it holds (a Service's cluster IP and node ports). */
  /** What removes an object: its key, what it holds (a Service's addresses, a Lease's fencing key), and its charge to quotas. */
  private removal(info: KindInfo, key: string, current: ApiObject): TxnPart {
    const held = info.kind === 'Service' ? allocationKeys(current) : info.kind === 'Lease' ? [fencingKey(current.metadata.namespace as string, current.metadata.name as string)] : [];
    const released = this.chargeQuotas(info, String(current.metadata.namespace ?? ''), current, -1);
    return { compare: released.compare, success: [deleteOp(key), ...held.map(deleteOp), ...released.success] };
  }

  /**
   * Charge (sign 1) or release (sign -1) an object's usage to the quotas of
   * its namespace, read from this master's state: the transaction compares
   * each quota's version, and that no quota newer than what was read exists,
   * so a stale read fails the write (and it tries again) instead of
   * slipping past a quota. Forbidden when a charge exceeds a quota.
   */
  private chargeQuotas(info: KindInfo, namespace: string, object: ApiObject, sign: 1 | -1, usage: Usage = usageOf(info, object)): TxnPart {
    if (!info.namespaced) return { compare: [], success: [] };
    const prefix = listPrefix(QUOTA_INFO, namespace);
    const page = this.store.kv.range({ key: encoder.encode(prefix), rangeEnd: prefixEnd(prefix) });
    const compare: etcd.Compare[] = [{ key: encoder.encode(prefix), rangeEnd: prefixEnd(prefix), target: etcd.Compare_CompareTarget.CREATE, result: etcd.Compare_CompareResult.LESS, targetUnion: { $case: 'createRevision', value: page.revision + 1 } }];
    const success: etcd.RequestOp[] = [];
    for (const kv of page.kvs) {
      const quota = objectFromStored(kv.value, kv.modRevision);
      const hard = hardLimits(quota);
      if (!constrains(hard, usage)) continue;
      const used = usedOf(quota);
      const next = applyUsage(hard, used, usage, sign);
      if (next.exceeded.length > 0) throw new ApiError('Forbidden', `${info.resource} "${String(object.metadata.name)}" is forbidden: ${exceededMessage(String(quota.metadata.name), next.exceeded, usage, used, hard)}`);
      const status = isJsonObject(quota.status) ? quota.status : {};
      compare.push(modifiedAt(decoder.decode(kv.key), kv.modRevision));
      success.push(putOp(decoder.decode(kv.key), this.encode({ ...quota, status: { ...status, hard: (quota.spec as Record<string, Json>).hard ?? {}, used: usedJson(next.used) } })));
    }
    return { compare, success };
  }

  /**
   * What an update changes in its object's usage (a pod that finished stops
   * using pods and compute), charged in the update's transaction; nothing
   * (and no read of the quotas) when the usage is the same.
   */
  private rechargeQuotas(info: KindInfo, namespace: string, current: ApiObject, next: ApiObject): TxnPart {
    if (!info.namespaced) return { compare: [], success: [] };
    const before = usageOf(info, current);
    const after = usageOf(info, next);
    const delta: Usage = new Map();
    for (const name of new Set([...before.keys(), ...after.keys()])) {
      const change = (after.get(name) ?? 0) - (before.get(name) ?? 0);
      if (change !== 0) delta.set(name, change);
    }
    return delta.size === 0 ? { compare: [], success: [] } : this.chargeQuotas(info, namespace, next, 1, delta);
  }

  /**
   * A quota's status from what its namespace holds now (set on `quota`),
   * with compares that fail the write if an object of a counted kind was
   * created or changed since.
   */
  private countUsage(quota: ApiObject, namespace: string): TxnPart {
    const hard = hardLimits(quota);
    const used: Usage = new Map([...hard.keys()].map((name) => [name, 0]));
    const compare: etcd.Compare[] = [];
    for (const info of KINDS) {
      if (!info.namespaced || info.kind === 'ResourceQuota') continue;
      const relevant = [...hard.keys()].some((name) => name === countName(info) || name === info.resource || (info.kind === 'Pod' && POD_RESOURCES.has(name)));
      if (!relevant) continue;
      const prefix = listPrefix(info, namespace);
      const page = this.store.kv.range({ key: encoder.encode(prefix), rangeEnd: prefixEnd(prefix) });
      for (const kv of page.kvs) {
        for (const [name, amount] of usageOf(info, objectFromStored(kv.value, kv.modRevision))) if (used.has(name)) used.set(name, used.get(name)! + amount);
      }
      compare.push({ key: encoder.encode(prefix), rangeEnd: prefixEnd(prefix), target: etcd.Compare_CompareTarget.MOD, result: etcd.Compare_CompareResult.LESS, targetUnion: { $case: 'modRevision', value: page.revision + 1 } });
    }
    quota.status = { hard: (quota.spec as Record<string, Json> | undefined)?.hard ?? {}, used: usedJson(used) };
    return { compare, success: [] };
  }

  /**
   * What a delete makes of `current`: undefined when it can go now; the
   * marked object when it must wait (finalizers, a pod's grace period);
   * `current` itself when it is already marked and nothing shortens the wait.
   */
  private markForDeletion(info: KindInfo, current: ApiObject, requestedGrace: number | undefined): ApiObject | undefined {
    if (requestedGrace !== undefined && (!Number.isInteger(requestedGrace) || requestedGrace < 0)) {
      throw new ApiError('BadRequest', `gracePeriodSeconds must be a whole number of seconds >= 0, not ${requestedGrace}`);
    }
    const finalizers = pendingFinalizers(info, current);
    let grace = 0;
    if (info.kind === 'Pod') {
      const spec = (current.spec ?? {}) as Record<string, Json>;
      const bound = typeof spec.nodeName === 'string' && spec.nodeName !== '';
      const phase = ((current.status ?? {}) as Record<string, Json>).phase;
      const finished = phase === 'Succeeded' || phase === 'Failed';
      grace = !bound || finished ? 0 : (requestedGrace ?? (typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30));
    }
    if (finalizers.length === 0 && grace === 0) return undefined;
    const already = typeof current.metadata.deletionGracePeriodSeconds === 'number' ? current.metadata.deletionGracePeriodSeconds : undefined;
    if (current.metadata.deletionTimestamp !== undefined && already !== undefined && grace >= already) return current;
    const marked: ApiObject = { ...current, metadata: { ...current.metadata } };
    delete marked.metadata.resourceVersion;
    marked.metadata.deletionTimestamp = rfc3339(new Date(this.now().getTime() + grace * 1000));
    marked.metadata.deletionGracePeriodSeconds = grace;
    if (info.kind === 'Namespace') {
      // Kubernetes' namespace deletion: Terminating until the namespace controller has emptied it and removed its finalizer.
      marked.spec = { ...(isJsonObject(current.spec) ? current.spec : {}), finalizers: namespaceFinalizers(current) };
      marked.status = { ...(isJsonObject(current.status) ? current.status : {}), phase: 'Terminating' };
    }
    return marked;
  }

  private get allocator(): AllocatorConfig {
    return this.options.allocator ?? DEFAULT_ALLOCATOR;
  }

  /** Allocation keys in use (read locally: call after a barrier; the transaction re-checks). */
  private allocationsInUse(): Set<string> {
    const used = new Set<string>();
    for (const prefix of [SERVICE_IP_PREFIX, NODE_PORT_PREFIX]) {
      for (const kv of this.store.kv.range({ key: encoder.encode(prefix), rangeEnd: prefixEnd(prefix), keysOnly: true }).kvs) used.add(decoder.decode(kv.key));
    }
    return used;
  }

  private check(info: KindInfo, object: ApiObject, errors: readonly FieldError[]): void {
    if (errors.length === 0) return;
    throw new ApiError('Invalid', `${info.kind} "${String(object.metadata.name ?? object.metadata.generateName ?? '')}" is invalid: ${errors.map((error) => `${error.path}: ${error.message}`).join('; ')}`, errors);
  }

  private decode(info: KindInfo, input: unknown): ApiObject {
    const { value, errors } = decodeStrict(info.kind, input);
    const all = [...errors];
    if (value !== undefined) all.push(...validateObjectMeta(info, value as Parameters<typeof validateObjectMeta>[1]));
    if (all.length > 0 || value === undefined) {
      const name = isJsonObject(input) && isJsonObject(input.metadata) && typeof input.metadata.name === 'string' ? ` "${input.metadata.name}"` : '';
      throw new ApiError('Invalid', `${info.kind}${name} is invalid: ${all.map((error) => `${error.path}: ${error.message}`).join('; ')}`, all);
    }
    return value as ApiObject;
  }

  /** A store write, as two spans under the request's when it is traced: propose until committed, then apply. */
  private async write(op: Parameters<ReplicatedStore['write']>[0], context: WriteContext): ReturnType<ReplicatedStore['write']> {
    const trace = context.trace;
    if (trace === undefined) return this.store.write(op);
    const propose = startSpan(trace.tracer, 'raft.propose', {}, trace.parent);
    let apply: ActiveSpan | undefined;
    try {
      const result = await this.store.write(op, {
        committed: () => {
          const at = spanTimeNow();
          endSpan(propose.span, undefined, at);
          apply = startSpan(trace.tracer, 'store.apply', {}, trace.parent, at);
        },
      });
      if (apply === undefined) endSpan(propose.span);
      else endSpan(apply.span);
      return result;
    } catch (error) {
      endSpan(apply?.span ?? propose.span, error);
      throw error;
    }
  }

  private encode(object: ApiObject): Buffer {
    const { metadata } = object;
    const storedMeta: Record<string, Json> = { ...metadata };
    delete storedMeta.resourceVersion;
    const bytes = encoder.encode(JSON.stringify({ ...object, metadata: storedMeta }));
    if (bytes.byteLength > this.options.maxObjectBytes) {
      throw new ApiError('TooLarge', `${object.kind as string} "${metadata.name as string}" is ${bytes.byteLength} bytes; the limit is ${this.options.maxObjectBytes}`);
    }
    return bytes;
  }

  private read(key: string): ApiObject | undefined {
    const kv = this.store.kv.range({ key: encoder.encode(key) }).kvs[0];
    return kv === undefined ? undefined : objectFromStored(kv.value, kv.modRevision);
  }


  /**
   * Whether a create may go into its namespace: NotFound when it does not
   * exist, Forbidden while it is terminating (Kubernetes' NamespaceLifecycle
   * admission). The compare fails the create if the namespace changes before
   * it commits, so nothing slips into a namespace its controller is emptying.
   */
  private async admitToNamespace(info: KindInfo, namespace: string, name: string, fresh: boolean): Promise<etcd.Compare[]> {
    if (!info.namespaced) return [];
    const key = objectKey(Registry.kind('Namespace'), '', namespace);
    let kv = this.store.kv.range({ key: encoder.encode(key) }).kvs[0];
    if (kv === undefined && !fresh) {
      await this.store.linearizableBarrier();
      kv = this.store.kv.range({ key: encoder.encode(key) }).kvs[0];
    }
    if (kv === undefined) throw new ApiError('NotFound', `namespace "${namespace}" not found`);
    if (objectFromStored(kv.value, kv.modRevision).metadata.deletionTimestamp !== undefined) {
      throw new ApiError('Forbidden', `${info.resource} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`);
    }
    return [modifiedAt(key, kv.modRevision)];
  }

  private notFound(info: KindInfo, namespace: string, name: string): ApiError {
    return new ApiError('NotFound', `${info.kind} "${name}" not found${info.namespaced ? ` in namespace "${namespaceOf(info, namespace)}"` : ''}`);
  }

  private storeReadError(error: unknown, pinned: number | undefined): Error {
    if (error instanceof KvError && error.code === 'compacted') return new ApiError('Gone', `resourceVersion ${pinned ?? ''} is too old: the history before it was compacted; list again without it`);
    if (error instanceof KvError && error.code === 'future-revision') return new ApiError('BadRequest', `resourceVersion ${pinned ?? ''} is newer than the store's (${this.store.kv.revision})`);
    return error instanceof Error ? error : new Error(String(error));
  }

  /** Run a transaction; with a fence, only while the fence's Lease has had no newer holder. */
  private async txn(request: etcd.TxnRequest, context: WriteContext = {}): Promise<TxnResponse> {
    const fence = context.fence;
    const fenced = fence === undefined ? request : { compare: [...request.compare, modifiedAt(fencingKey(fence.namespace, fence.name), fence.token)], success: request.success, failure: [...request.failure, rangeOp(fencingKey(fence.namespace, fence.name))] };
    const outcome = await this.write({ $case: 'txn', value: fenced }, context);
    if (outcome.kind === 'error') throw outcome.error;
    if (outcome.kind !== 'txn') throw new Error(`the store applied ${outcome.kind} where a txn was expected`);
    const response = outcome.response;
    if (fence !== undefined && !response.succeeded) {
      const last = response.responses[response.responses.length - 1];
      const holderSince = last?.kind === 'range' ? (last.response.kvs[0]?.modRevision ?? 0) : 0;
      if (holderSince !== fence.token) {
        throw new ApiError('Fenced', `Lease ${fence.namespace}/${fence.name} ${holderSince === 0 ? 'has no holder' : `has had a newer holder since revision ${holderSince}`}: this writer's fencing token ${fence.token} is superseded, so it may not write`);
      }
      return { ...response, responses: response.responses.slice(0, -1) };
    }
    return response;
  }
}
