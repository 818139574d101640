// What the workload controllers' plans read of a pod (pure), as
// Kubernetes' podutil and metav1 define it: its controller (the owner
// reference with controller: true), whether it is being deleted or still
// active, and readiness and availability (Ready=True for at least
// minReadySeconds).

import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { parseTimestampMs } from '../../client/timestamps.js';

/** metav1.GetControllerOf: the owner reference marked controller, if any. */
export function controllerOf(object: { readonly metadata?: { readonly ownerReferences?: readonly OwnerReference[] | undefined } | undefined }): OwnerReference | undefined {
  return (object.metadata?.ownerReferences ?? []).find((reference) => reference.controller === true);
}

/** Marked for deletion (its grace period running). */
export function isTerminating(pod: Pod): boolean {
  return pod.metadata?.deletionTimestamp !== undefined;
}

/** controller.IsPodActive: not being deleted, and not finished (Succeeded or Failed). */
export function isActive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return !isTerminating(pod) && phase !== 'Succeeded' && phase !== 'Failed';
}

/** When the Ready condition became True (0 when it does not say); undefined when the pod is not ready (podutil.IsPodReady). */
export function readySinceMs(pod: Pod): number | undefined {
  const ready = (pod.status?.conditions ?? []).find((condition) => condition.type === 'Ready' && condition.status === 'True');
  if (ready === undefined) return undefined;
  return parseTimestampMs(ready.lastTransitionTime) ?? 0;
}

export function isReady(pod: Pod): boolean {
  return readySinceMs(pod) !== undefined;
}

/** podutil.IsPodAvailable: ready for at least minReadySeconds. */
export function isAvailable(pod: Pod, minReadySeconds: number, nowMs: number): boolean {
  const since = readySinceMs(pod);
  return since !== undefined && (minReadySeconds <= 0 || since + minReadySeconds * 1000 <= nowMs);
}

/** How long until a ready pod becomes available (undefined: not ready, or available already). */
export function untilAvailableMs(pod: Pod, minReadySeconds: number, nowMs: number): number | undefined {
  const since = readySinceMs(pod);
  if (since === undefined || minReadySeconds <= 0) return undefined;
  const remainingMs = since + minReadySeconds * 1000 - nowMs;
  return remainingMs > 0 ? remainingMs : undefined;
}
