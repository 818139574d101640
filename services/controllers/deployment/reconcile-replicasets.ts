// What the Deployment controller knows about its ReplicaSets, as pure
// functions (Kubernetes' deployment/util): the pod-template-hash of a
// template, template equality ignoring that hash, revisions and the
// annotations a Deployment copies to its ReplicaSets, the orders in which
// ReplicaSets are scaled and cleaned up, and a Deployment's view with its
// defaults resolved (maxSurge and maxUnavailable as counts).

import type { Deployment, ReplicaSet } from '../../../proto/gen/resources/v1/apps.js';
import type { PodTemplateSpec } from '../../../proto/gen/resources/v1/core.js';
import type { IntOrString, LabelSelector, OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { parseTimestampMs } from '../../client/timestamps.js';

export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
export const REVISION_HISTORY_ANNOTATION = 'deployment.kubernetes.io/revision-history';
export const DESIRED_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
export const MAX_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/max-replicas';
export const CHANGE_CAUSE_ANNOTATION = 'kubernetes.io/change-cause';

/** Deployment annotations that are not copied to its ReplicaSets (nor back on rollback), as Kubernetes lists them. */
export const ANNOTATIONS_NOT_COPIED: ReadonlySet<string> = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION_ANNOTATION,
  REVISION_HISTORY_ANNOTATION,
  DESIRED_REPLICAS_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  'deprecated.deployment.rollback.to',
]);

/** The longest revision-history annotation Kubernetes keeps (its default --deployment-controller revision history length). */
export const REVISION_HISTORY_LIMIT_CHARS = 2000;
export const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;
export const DEFAULT_REVISION_HISTORY_LIMIT = 10;
/** Kubernetes' "no deadline" and "keep every revision": math.MaxInt32. */
export const UNLIMITED = 2147483647;

/** A spec the controller cannot act on (Kubernetes' validation would have refused it). */
export class DeploymentSpecError extends Error {
  override readonly name = 'DeploymentSpecError';
}

/** A Deployment with Kubernetes' defaults resolved. */
export interface DeploymentView {
  readonly object: Deployment;
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly generation: number;
  readonly deleting: boolean;
  readonly replicas: number;
  readonly selector: LabelSelector | undefined;
  readonly template: PodTemplateSpec;
  readonly strategy: 'RollingUpdate' | 'Recreate';
  /** Pods over replicas a rolling update may create (rounded up); 0 for Recreate. */
  readonly maxSurge: number;
  /** Pods under replicas a rolling update may leave unavailable (rounded down, at most replicas); 0 for Recreate. */
  readonly maxUnavailable: number;
  readonly minReadySeconds: number;
  readonly revisionHistoryLimit: number;
  readonly paused: boolean;
  readonly progressDeadlineSeconds: number;
}

/** An int, or a percentage of `total` ("25%"), rounded up or down (apimachinery's GetScaledValueFromIntOrPercent). */
export function scaledValue(value: IntOrString | undefined, fallback: string, total: number, roundUp: boolean, field: string): number {
  const given = value ?? fallback;
  if (typeof given === 'number') {
    if (!Number.isInteger(given) || given < 0) throw new DeploymentSpecError(`${field}: ${given} must be a whole number >= 0`);
    return given;
  }
  const percent = /^(\d+)%$/.exec(given);
  if (percent === null) throw new DeploymentSpecError(`${field}: "${given}" is neither a whole number nor a percentage`);
  const scaled = (Number(percent[1]) * total) / 100;
  return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
}

/** maxSurge and maxUnavailable as counts; both 0 would never progress, so maxUnavailable becomes 1 (ResolveFenceposts). */
export function resolveFenceposts(maxSurge: IntOrString | undefined, maxUnavailable: IntOrString | undefined, replicas: number): { readonly surge: number; readonly unavailable: number } {
  const surge = scaledValue(maxSurge, '25%', replicas, true, 'spec.strategy.rollingUpdate.maxSurge');
  const unavailable = scaledValue(maxUnavailable, '25%', replicas, false, 'spec.strategy.rollingUpdate.maxUnavailable');
  return surge === 0 && unavailable === 0 ? { surge, unavailable: 1 } : { surge, unavailable };
}

export function viewOf(deployment: Deployment): DeploymentView {
  const spec = deployment.spec ?? {};
  const metadata = deployment.metadata ?? {};
  const replicas = spec.replicas ?? 1;
  const type = spec.strategy?.type ?? 'RollingUpdate';
  if (type !== 'RollingUpdate' && type !== 'Recreate') throw new DeploymentSpecError(`spec.strategy.type: "${type}" is neither RollingUpdate nor Recreate`);
  let maxSurge = 0;
  let maxUnavailable = 0;
  if (type === 'RollingUpdate') {
    const fenceposts = resolveFenceposts(spec.strategy?.rollingUpdate?.maxSurge, spec.strategy?.rollingUpdate?.maxUnavailable, replicas);
    maxSurge = fenceposts.surge;
    maxUnavailable = replicas === 0 ? 0 : Math.min(fenceposts.unavailable, replicas);
  }
  return {
    object: deployment,
    name: metadata.name ?? '',
    namespace: metadata.namespace ?? 'default',
    uid: metadata.uid ?? '',
    generation: metadata.generation ?? 0,
    deleting: metadata.deletionTimestamp !== undefined,
    replicas,
    selector: spec.selector,
    template: spec.template ?? {},
    strategy: type,
    maxSurge,
    maxUnavailable,
    minReadySeconds: spec.minReadySeconds ?? 0,
    revisionHistoryLimit: spec.revisionHistoryLimit ?? DEFAULT_REVISION_HISTORY_LIMIT,
    paused: spec.paused === true,
    progressDeadlineSeconds: spec.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS,
  };
}

export function hasProgressDeadline(d: DeploymentView): boolean {
  return d.progressDeadlineSeconds !== UNLIMITED;
}

// ------------------------------------------------------------------ templates

/**
 * JSON with sorted keys and without empty members (undefined, null, {} and
 * []): Kubernetes' semantic equality treats nil and empty alike, and a
 * template stored and read back must hash and compare the same.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => !isEmpty(item))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.values(value as Record<string, unknown>).every(isEmpty);
  return false;
}

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv1a(hash: number, bytes: Uint8Array): number {
  let next = hash;
  for (const byte of bytes) next = Math.imul(next ^ byte, FNV_PRIME) >>> 0;
  return next;
}

/** apimachinery's rand.SafeEncodeString alphabet: no vowels, no 0/1/3 (no words, no look-alikes). */
const SAFE_ALPHANUMS = 'bcdfghjklmnpqrstvwxz2456789';

/**
 * The pod-template-hash: FNV-1a (32 bits) of the template's canonical JSON,
 * then the collision count as 8 little-endian bytes when there is one, its
 * decimal digits mapped through the safe alphabet — as Kubernetes' ComputeHash
 * (which hashes a Go dump of the struct instead of JSON).
 */
export function templateHash(template: PodTemplateSpec, collisionCount?: number): string {
  let hash = fnv1a(FNV_OFFSET_BASIS, new TextEncoder().encode(canonicalJson(withoutHashLabel(template))));
  if (collisionCount !== undefined) {
    const bytes = new Uint8Array(8);
    for (let index = 0; index < 4; index++) bytes[index] = (collisionCount >>> (8 * index)) & 0xff;
    hash = fnv1a(hash, bytes);
  }
  return [...String(hash)].map((digit) => SAFE_ALPHANUMS[digit.charCodeAt(0) % SAFE_ALPHANUMS.length]).join('');
}

export function withoutHashLabel(template: PodTemplateSpec | undefined): PodTemplateSpec {
  const copy = structuredClone(template ?? {});
  if (copy.metadata?.labels !== undefined) delete copy.metadata.labels[POD_TEMPLATE_HASH_LABEL];
  return copy;
}

/** Kubernetes' EqualIgnoreHash: the same template but for the pod-template-hash label. */
export function sameTemplate(a: PodTemplateSpec | undefined, b: PodTemplateSpec | undefined): boolean {
  return canonicalJson(withoutHashLabel(a)) === canonicalJson(withoutHashLabel(b));
}

// ------------------------------------------------------------------ ReplicaSets

export function ownerReferenceTo(d: DeploymentView): OwnerReference {
  return { apiVersion: 'apps/v1', kind: 'Deployment', name: d.name, uid: d.uid, controller: true, blockOwnerDeletion: true };
}

export function replicasOf(rs: ReplicaSet): number {
  return rs.spec?.replicas ?? 1;
}

/** Revision annotations are decimal; anything else counts as 0. */
export function revisionOf(object: { metadata?: { annotations?: Record<string, string> | undefined } | undefined }): number {
  const text = object.metadata?.annotations?.[REVISION_ANNOTATION] ?? '';
  return /^\d+$/.test(text) ? Number(text) : 0;
}

function createdMs(rs: ReplicaSet): number {
  return parseTimestampMs(rs.metadata?.creationTimestamp) ?? 0;
}

/** Oldest first; ties by name (ReplicaSetsByCreationTimestamp). */
export function byCreation(a: ReplicaSet, b: ReplicaSet): number {
  const difference = createdMs(a) - createdMs(b);
  if (difference !== 0) return difference;
  const [nameA, nameB] = [a.metadata?.name ?? '', b.metadata?.name ?? ''];
  return nameA < nameB ? -1 : nameA > nameB ? 1 : 0;
}

/** Lowest revision first, then oldest (ReplicaSetsByRevision): the order of history cleanup. */
export function byRevision(a: ReplicaSet, b: ReplicaSet): number {
  return revisionOf(a) - revisionOf(b) || byCreation(a, b);
}

/** Larger first; ties newer first (ReplicaSetsBySizeNewer): who gets replicas when scaling up. */
export function bySizeNewer(a: ReplicaSet, b: ReplicaSet): number {
  return replicasOf(b) - replicasOf(a) || byCreation(b, a);
}

/** Larger first; ties older first (ReplicaSetsBySizeOlder): who loses replicas when scaling down. */
export function bySizeOlder(a: ReplicaSet, b: ReplicaSet): number {
  return replicasOf(b) - replicasOf(a) || byCreation(a, b);
}

/** The ReplicaSet running the Deployment's template; the oldest if several do (FindNewReplicaSet). */
export function findNewReplicaSet(d: DeploymentView, replicaSets: readonly ReplicaSet[]): ReplicaSet | undefined {
  return [...replicaSets].sort(byCreation).find((rs) => sameTemplate(rs.spec?.template, d.template));
}

function annotationsOf(rs: ReplicaSet): Record<string, string> {
  rs.metadata ??= {};
  rs.metadata.annotations ??= {};
  return rs.metadata.annotations;
}

/** desired-replicas and max-replicas, which proportional scaling reads back; whether they changed. */
export function setReplicasAnnotations(rs: ReplicaSet, desired: number, max: number): boolean {
  const annotations = annotationsOf(rs);
  const changed = annotations[DESIRED_REPLICAS_ANNOTATION] !== String(desired) || annotations[MAX_REPLICAS_ANNOTATION] !== String(max);
  annotations[DESIRED_REPLICAS_ANNOTATION] = String(desired);
  annotations[MAX_REPLICAS_ANNOTATION] = String(max);
  return changed;
}

export function replicasAnnotationsNeedUpdate(rs: ReplicaSet, desired: number, max: number): boolean {
  const annotations = rs.metadata?.annotations ?? {};
  return annotations[DESIRED_REPLICAS_ANNOTATION] !== String(desired) || annotations[MAX_REPLICAS_ANNOTATION] !== String(max);
}

/**
 * Kubernetes' SetNewReplicaSetAnnotations: copy the Deployment's annotations
 * (change-cause among them), raise the revision to `revision` — keeping the
 * ones it had in revision-history when an old ReplicaSet comes back (a
 * rollback) — and, for a ReplicaSet about to be created, the replica
 * annotations. Whether anything changed.
 */
export function setNewReplicaSetAnnotations(d: DeploymentView, rs: ReplicaSet, revision: number, exists: boolean): boolean {
  const annotations = annotationsOf(rs);
  let changed = false;
  for (const [key, value] of Object.entries(d.object.metadata?.annotations ?? {})) {
    if (ANNOTATIONS_NOT_COPIED.has(key) || annotations[key] === value) continue;
    annotations[key] = value;
    changed = true;
  }
  const old = annotations[REVISION_ANNOTATION];
  if (old !== undefined && !/^\d+$/.test(old)) return changed;
  const oldRevision = old === undefined ? 0 : Number(old);
  if (oldRevision < revision) {
    annotations[REVISION_ANNOTATION] = String(revision);
    changed = true;
    if (old !== undefined) {
      const history = annotations[REVISION_HISTORY_ANNOTATION] ?? '';
      if (history === '') annotations[REVISION_HISTORY_ANNOTATION] = old;
      else {
        const kept = history.split(',');
        let length = history.length + old.length + 1;
        while (length > REVISION_HISTORY_LIMIT_CHARS && kept.length > 0) length -= kept.shift()!.length + 1;
        if (length <= REVISION_HISTORY_LIMIT_CHARS) annotations[REVISION_HISTORY_ANNOTATION] = [...kept, old].join(',');
      }
    }
  }
  if (!exists && setReplicasAnnotations(rs, d.replicas, d.replicas + d.maxSurge)) changed = true;
  return changed;
}

/** The ReplicaSet a Deployment creates for its template: replicas 0 until the strategy says. */
export function newReplicaSetFor(d: DeploymentView, collisionCount: number | undefined): ReplicaSet {
  const hash = templateHash(d.template, collisionCount);
  const template = structuredClone(d.template);
  template.metadata ??= {};
  template.metadata.labels = { ...(template.metadata.labels ?? {}), [POD_TEMPLATE_HASH_LABEL]: hash };
  const selector = structuredClone(d.selector ?? {});
  selector.matchLabels = { ...(selector.matchLabels ?? {}), [POD_TEMPLATE_HASH_LABEL]: hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: `${d.name}-${hash}`, namespace: d.namespace, labels: { ...template.metadata.labels }, ownerReferences: [ownerReferenceTo(d)] },
    spec: { replicas: 0, minReadySeconds: d.minReadySeconds, selector, template },
  };
}
