// The ReplicaSet (and ReplicationController) controller's decision, as a
// pure function of the owner, the pods of its namespace and the time:
// which orphans to adopt and which owned pods to release (ownerReferences,
// by the selector), how many pods to create from the template, which to
// delete when there are too many, and the status to report. Deletion
// order is Kubernetes': unscheduled before scheduled, Pending before
// Unknown before Running, not ready before ready, ready for less time
// before longer, more restarts before fewer, newer before older.

import type { Pod, PodTemplateSpec } from '../../../proto/gen/resources/v1/core.js';
import type { ObjectMeta, OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import type { Labels } from '../common/reconcile-selector.js';
import { claimObjects } from '../common/reconcile-claim.js';
import { isActive, readySinceMs } from '../common/reconcile-pod.js';
import { parseTimestampMs } from '../../client/timestamps.js';

export interface ReplicatedOwner {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly replicas: number;
  readonly minReadySeconds: number;
  readonly template: PodTemplateSpec | undefined;
  /** Whether the owner's selector selects these labels. */
  readonly selects: (labels: Labels) => boolean;
}

export interface ReplicaCounts {
  readonly replicas: number;
  readonly fullyLabeledReplicas: number;
  readonly readyReplicas: number;
  readonly availableReplicas: number;
  readonly observedGeneration: number;
}

export interface ReplicaPlan {
  readonly adopt: Pod[];
  readonly release: Pod[];
  readonly create: Pod[];
  readonly delete: Pod[];
  readonly status: ReplicaCounts;
}

/** Kubernetes creates at most this many pods per sync of one owner (its burstReplicas). */
export const MAX_CREATES_PER_SYNC = 500;

function restarts(pod: Pod): number {
  return (pod.status?.containerStatuses ?? []).reduce((sum, status) => sum + (status.restartCount ?? 0), 0);
}

const PHASE_RANK: Readonly<Record<string, number>> = { Pending: 0, Unknown: 1, Running: 2 };

/** Kubernetes' ActivePods order: the pods to delete first come first. */
export function deletionOrder(a: Pod, b: Pod): number {
  const assigned = (pod: Pod): number => ((pod.spec?.nodeName ?? '') === '' ? 0 : 1);
  if (assigned(a) !== assigned(b)) return assigned(a) - assigned(b);
  const phase = (pod: Pod): number => PHASE_RANK[pod.status?.phase ?? 'Pending'] ?? 0;
  if (phase(a) !== phase(b)) return phase(a) - phase(b);
  const readyA = readySinceMs(a);
  const readyB = readySinceMs(b);
  if ((readyA === undefined) !== (readyB === undefined)) return readyA === undefined ? -1 : 1;
  if (readyA !== undefined && readyB !== undefined && readyA !== readyB) return readyB - readyA;
  if (restarts(a) !== restarts(b)) return restarts(b) - restarts(a);
  const created = (pod: Pod): number => parseTimestampMs(pod.metadata?.creationTimestamp) ?? 0;
  if (created(a) !== created(b)) return created(b) - created(a);
  return (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
}

export function ownerReference(owner: ReplicatedOwner): OwnerReference {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name ?? '', uid: owner.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** A new pod from the owner's template (the server names it from generateName). */
export function podFromTemplate(owner: ReplicatedOwner): Pod {
  const template = owner.template ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${owner.metadata.name ?? ''}-`,
      namespace: owner.metadata.namespace ?? 'default',
      ...(template.metadata?.labels ? { labels: { ...template.metadata.labels } } : {}),
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [ownerReference(owner)],
    },
    ...(template.spec ? { spec: structuredClone(template.spec) } : {}),
  };
}

export function planReplicas(owner: ReplicatedOwner, pods: readonly Pod[], nowMs: number): ReplicaPlan {
  const namespace = owner.metadata.namespace ?? 'default';
  const deleting = owner.metadata.deletionTimestamp !== undefined;
  const { owned, adopt, release } = claimObjects(
    { uid: owner.metadata.uid ?? '', deleting, selects: (pod) => owner.selects(pod.metadata?.labels), adoptable: isActive },
    pods.filter((pod) => pod.metadata?.namespace === namespace),
  );
  const active = owned.filter(isActive);
  const diff = active.length - owner.replicas;
  const create = deleting || diff >= 0 ? [] : Array.from({ length: Math.min(-diff, MAX_CREATES_PER_SYNC) }, () => podFromTemplate(owner));
  const remove = deleting || diff <= 0 ? [] : [...active].sort(deletionOrder).slice(0, diff);
  const templateLabels = owner.template?.metadata?.labels ?? {};
  const ready = active.filter((pod) => readySinceMs(pod) !== undefined);
  return {
    adopt,
    release,
    create,
    delete: remove,
    status: {
      replicas: active.length,
      fullyLabeledReplicas: active.filter((pod) => Object.entries(templateLabels).every(([key, value]) => pod.metadata?.labels?.[key] === value)).length,
      readyReplicas: ready.length,
      availableReplicas: ready.filter((pod) => (readySinceMs(pod) ?? 0) + owner.minReadySeconds * 1000 <= nowMs).length,
      observedGeneration: owner.metadata.generation ?? 0,
    },
  };
}
