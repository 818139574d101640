// Taint-based eviction, as Kubernetes' taint eviction controller decides
// it, pure: a pod bound to a node with a NoExecute taint it does not
// tolerate goes now; one that tolerates every such taint stays for the
// least tolerationSeconds of the tolerations used, counted from the taint's
// timeAdded; tolerations without tolerationSeconds keep it forever. Also
// what the node lifecycle controller writes to pods of a node that is not
// ready (Kubernetes' MarkPodsNotReady).

import type { Pod, PodStatus, Taint } from '../../../proto/gen/resources/v1/core.js';
import { toleratesTaint } from '../../client/scheduling.js';
import { formatTimestamp } from '../../client/timestamps.js';

/** A NoExecute taint and when it was put on (its timeAdded, or when the controller first saw it without one). */
export interface TimedTaint {
  readonly taint: Taint;
  readonly sinceMs: number;
}

export type EvictionDecision = { readonly kind: 'keep' } | { readonly kind: 'evict' } | { readonly kind: 'evictAt'; readonly atMs: number };

const KEEP: EvictionDecision = { kind: 'keep' };
const EVICT: EvictionDecision = { kind: 'evict' };

/**
 * Kubernetes' GetMatchingTolerations and getMinTolerationTime, with the
 * deadline counted from each taint's time: the first toleration matching
 * each taint is the one used; tolerationSeconds <= 0 means at once.
 */
export function planEviction(pod: Pod, taints: readonly TimedTaint[], nowMs: number): EvictionDecision {
  if (pod.metadata?.deletionTimestamp !== undefined) return KEEP;
  const tolerations = pod.spec?.tolerations ?? [];
  let deadlineMs = Infinity;
  for (const { taint, sinceMs } of taints) {
    if (taint.effect !== 'NoExecute') continue;
    const used = tolerations.find((toleration) => toleratesTaint(toleration, taint));
    if (used === undefined) return EVICT;
    if (used.tolerationSeconds === undefined || used.tolerationSeconds === null) continue;
    deadlineMs = Math.min(deadlineMs, sinceMs + Math.max(0, used.tolerationSeconds) * 1000);
  }
  if (deadlineMs === Infinity) return KEEP;
  return deadlineMs <= nowMs ? EVICT : { kind: 'evictAt', atMs: deadlineMs };
}

/** The pod's status with its Ready condition False, or undefined if it is not Ready=True (Kubernetes' MarkPodsNotReady). */
export function notReadyPodStatus(pod: Pod, nowMs: number): PodStatus | undefined {
  const conditions = pod.status?.conditions ?? [];
  const index = conditions.findIndex((condition) => condition.type === 'Ready');
  if (index < 0 || conditions[index]!.status !== 'True') return undefined;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed' || pod.metadata?.deletionTimestamp !== undefined) return undefined;
  const next = structuredClone(conditions);
  next[index] = { ...next[index], status: 'False', lastTransitionTime: formatTimestamp(nowMs) };
  return { ...pod.status, conditions: next };
}

