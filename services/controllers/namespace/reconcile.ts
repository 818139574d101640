// The namespace controller's decision, as Kubernetes' namespaced resources
// deleter makes it, in pure functions: a namespace being deleted has its
// content deleted (every object of every namespaced kind that is not
// already on its way out); what is left afterwards, and what failed, become
// the namespace's conditions; once nothing is left and nothing failed, the
// 'kubernetes' finalizer is removed (the registry then removes the
// namespace). Content still in its grace period (pods) is waited for.

import type { Namespace } from '../../../proto/gen/resources/v1/core.js';
import type { Condition } from '../../../proto/gen/resources/v1/meta.js';
import { formatTimestamp, parseTimestampMs } from '../../client/timestamps.js';

/** The finalizer this controller owns (Kubernetes' FinalizerKubernetes). */
export const NAMESPACE_FINALIZER = 'kubernetes';

/** The least and most time between two looks at a namespace whose content is still going. */
export const CONTENT_RECHECK_MIN_MS = 1000;
export const CONTENT_RECHECK_MAX_MS = 60_000;

export interface ContentObject {
  readonly kind?: string;
  readonly metadata?: {
    readonly name?: string;
    readonly deletionTimestamp?: string;
    readonly finalizers?: readonly string[];
    readonly resourceVersion?: string;
  };
}

/** The objects of one kind in the namespace; `resource` as Kubernetes prints a GroupResource ("pods", "deployments.apps"). */
export interface ContentGroup {
  readonly kind: string;
  readonly resource: string;
  readonly objects: readonly ContentObject[];
}

export interface ContentDeletion {
  readonly kind: string;
  readonly resource: string;
  readonly name: string;
}

export interface NamespaceStatusPlan {
  readonly conditions: Condition[];
  /** Whether the conditions differ from the namespace's (a status write is needed). */
  readonly changed: boolean;
  /** Remove the finalizer: the namespace is empty. */
  readonly finalize: boolean;
  /** When content remains: look again after this long. */
  readonly recheckAfterMs: number | undefined;
}

export function isTerminating(namespace: Namespace): boolean {
  return namespace.metadata?.deletionTimestamp !== undefined || namespace.status?.phase === 'Terminating';
}

/** Whether this controller still has work on the namespace: it is being deleted and still carries our finalizer. */
export function needsFinalizing(namespace: Namespace): boolean {
  return namespace.metadata?.deletionTimestamp !== undefined && (namespace.spec?.finalizers ?? [NAMESPACE_FINALIZER]).includes(NAMESPACE_FINALIZER);
}

/** The content to delete: everything not already marked for deletion. */
export function planContentDeletion(content: readonly ContentGroup[]): ContentDeletion[] {
  const deletions: ContentDeletion[] = [];
  for (const group of content) {
    for (const object of group.objects) {
      if (object.metadata?.deletionTimestamp === undefined) deletions.push({ kind: group.kind, resource: group.resource, name: object.metadata?.name ?? '' });
    }
  }
  return deletions;
}

interface ConditionSpec {
  readonly type: string;
  readonly failed: boolean;
  readonly reason: string;
  readonly message: string;
}

/** Kubernetes' NamespaceDeletionContentFailure message: the aggregate of the errors. */
function aggregate(errors: readonly string[]): string {
  return errors.length === 1 ? errors[0]! : `[${errors.join(', ')}]`;
}

function conditionSpecs(remaining: readonly ContentGroup[], failures: readonly string[]): ConditionSpec[] {
  const counts = remaining.filter((group) => group.objects.length > 0).map((group) => `${group.resource} has ${group.objects.length} resource instances`).sort();
  const finalizerCounts = new Map<string, number>();
  for (const group of remaining) {
    for (const object of group.objects) for (const finalizer of object.metadata?.finalizers ?? []) finalizerCounts.set(finalizer, (finalizerCounts.get(finalizer) ?? 0) + 1);
  }
  const finalizers = [...finalizerCounts].map(([finalizer, count]) => `${finalizer} in ${count} resource instances`).sort();
  return [
    { type: 'NamespaceDeletionDiscoveryFailure', failed: false, reason: 'ResourcesDiscovered', message: 'All resources successfully discovered' },
    { type: 'NamespaceDeletionGroupVersionParsingFailure', failed: false, reason: 'ParsedGroupVersions', message: 'All legacy kube types successfully parsed' },
    failures.length === 0
      ? { type: 'NamespaceDeletionContentFailure', failed: false, reason: 'ContentDeleted', message: 'All content successfully deleted, may be waiting on finalization' }
      : { type: 'NamespaceDeletionContentFailure', failed: true, reason: 'ContentDeletionFailed', message: `Failed to delete all resource types, ${failures.length} remaining: ${aggregate(failures)}` },
    counts.length === 0
      ? { type: 'NamespaceContentRemaining', failed: false, reason: 'ContentRemoved', message: 'All content successfully removed' }
      : { type: 'NamespaceContentRemaining', failed: true, reason: 'SomeResourcesRemain', message: `Some resources are remaining: ${counts.join(', ')}` },
    finalizers.length === 0
      ? { type: 'NamespaceFinalizersRemaining', failed: false, reason: 'ContentHasNoFinalizers', message: 'All content-preserving finalizers finished' }
      : { type: 'NamespaceFinalizersRemaining', failed: true, reason: 'SomeFinalizersRemain', message: `Some content in the namespace has finalizers remaining: ${finalizers.join(', ')}` },
  ];
}

/** The longest a remaining pod's grace period still runs (its deletionTimestamp is when it ends). */
function longestGraceLeftMs(remaining: readonly ContentGroup[], nowMs: number): number {
  let longest = 0;
  for (const group of remaining) {
    if (group.kind !== 'Pod') continue;
    for (const object of group.objects) longest = Math.max(longest, (parseTimestampMs(object.metadata?.deletionTimestamp) ?? nowMs) - nowMs);
  }
  return longest;
}

/**
 * The namespace's conditions after a deletion pass, from what is left
 * (`remaining`, listed after the deletes) and the deletes that failed
 * (one message per kind); lastTransitionTime moves only when a condition's
 * status does.
 */
export function planNamespaceStatus(namespace: Namespace, remaining: readonly ContentGroup[], failures: readonly string[], nowMs: number): NamespaceStatusPlan {
  const previous = new Map((namespace.status?.conditions ?? []).map((condition) => [condition.type ?? '', condition]));
  const now = formatTimestamp(nowMs);
  let changed = false;
  const conditions = conditionSpecs(remaining, failures).map((spec): Condition => {
    const status = spec.failed ? 'True' : 'False';
    const before = previous.get(spec.type);
    if (before?.status !== status || before.reason !== spec.reason || before.message !== spec.message) changed = true;
    return { type: spec.type, status, lastTransitionTime: before?.status === status ? (before.lastTransitionTime ?? now) : now, reason: spec.reason, message: spec.message };
  });
  // Conditions of other types (someone else's) are kept.
  const ours = new Set(conditions.map((condition) => condition.type));
  const others = (namespace.status?.conditions ?? []).filter((condition) => !ours.has(condition.type));
  const empty = remaining.every((group) => group.objects.length === 0);
  const finalize = empty && failures.length === 0;
  return {
    conditions: [...conditions, ...others],
    changed,
    finalize,
    recheckAfterMs: empty ? undefined : Math.min(CONTENT_RECHECK_MAX_MS, Math.max(CONTENT_RECHECK_MIN_MS, longestGraceLeftMs(remaining, nowMs))),
  };
}

/** spec.finalizers without ours. */
export function withoutOurFinalizer(namespace: Namespace): string[] {
  return (namespace.spec?.finalizers ?? [NAMESPACE_FINALIZER]).filter((finalizer) => finalizer !== NAMESPACE_FINALIZER);
}
