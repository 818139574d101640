// kube-scheduler's score plugins, 0..100 per feasible node (higher is
// better), each already normalized where Kubernetes normalizes. A plugin
// returns undefined when it would give every node the same score (Kubernetes'
// Skip), so the framework does not spend time adding a constant.

import { interPodAffinityRawScores } from './interpodaffinity.js';
import type { PodInfo } from './pod.js';
import { nodeSelectorTermMatches, toleratesTaint } from '../../client/scheduling.js';
import type { ClusterSnapshot, NodeInfo } from './snapshot.js';

export type ScoreName =
  | 'NodeResourcesLeastAllocated'
  | 'NodeResourcesBalancedAllocation'
  | 'PodTopologySpread'
  | 'NodeAffinity'
  | 'InterPodAffinity'
  | 'TaintToleration';

export const MAX_NODE_SCORE = 100;

export interface ScorePlugin {
  readonly name: ScoreName;
  /** Scores of the feasible nodes, in their order; undefined when all would be equal. */
  scoreAll(pod: PodInfo, snapshot: ClusterSnapshot, feasible: readonly NodeInfo[]): readonly number[] | undefined;
}

/** Kubernetes' DefaultNormalizeScore: scale so the largest is 100 (reverse: 100 minus that). */
export function defaultNormalize(scores: number[], reverse: boolean): number[] {
  const max = scores.reduce((a, b) => Math.max(a, b), 0);
  if (max === 0) return reverse ? scores.map(() => MAX_NODE_SCORE) : scores;
  return scores.map((score) => {
    const scaled = Math.trunc((MAX_NODE_SCORE * score) / max);
    return reverse ? MAX_NODE_SCORE - scaled : scaled;
  });
}

/** (allocatable - requested) * 100 / allocatable, 0 when over; Kubernetes' integer arithmetic. */
function leastRequested(requested: number, allocatable: number): number {
  if (allocatable === 0 || requested > allocatable) return 0;
  return Math.trunc(((allocatable - requested) * MAX_NODE_SCORE) / allocatable);
}

/**
 * NodeResourcesFit's LeastAllocated strategy, cpu and memory weighted 1 each:
 * the share left free after placing the pod, counting 100m / 200Mi for
 * containers that request nothing. A resource the node has none of is left out.
 */
export const leastAllocated: ScorePlugin = {
  name: 'NodeResourcesLeastAllocated',
  scoreAll(pod, _snapshot, feasible) {
    return feasible.map((node) => {
      let total = 0;
      let weights = 0;
      if (node.allocatable.cpuMillis > 0) {
        total += leastRequested(node.nonZeroRequestedCpuMillis + pod.nonZeroCpuMillis, node.allocatable.cpuMillis);
        weights++;
      }
      if (node.allocatable.memoryBytes > 0) {
        total += leastRequested(node.nonZeroRequestedMemoryBytes + pod.nonZeroMemoryBytes, node.allocatable.memoryBytes);
        weights++;
      }
      return weights === 0 ? 0 : Math.trunc(total / weights);
    });
  },
};

/**
 * NodeResourcesBalancedAllocation: (1 - std) * 100 of the cpu and memory
 * fractions requested after placing the pod (actual requests, each fraction
 * capped at 1); for two resources the standard deviation is |cpu - memory| / 2.
 */
export const balancedAllocation: ScorePlugin = {
  name: 'NodeResourcesBalancedAllocation',
  scoreAll(pod, _snapshot, feasible) {
    return feasible.map((node) => {
      const { cpuMillis, memoryBytes } = node.allocatable;
      if (cpuMillis === 0 || memoryBytes === 0) return MAX_NODE_SCORE;
      const cpuFraction = Math.min(1, (node.requested.cpuMillis + pod.requests.cpuMillis) / cpuMillis);
      const memoryFraction = Math.min(1, (node.requested.memoryBytes + pod.requests.memoryBytes) / memoryBytes);
      return Math.trunc((1 - Math.abs(cpuFraction - memoryFraction) / 2) * MAX_NODE_SCORE);
    });
  },
};

/** Weight of the zone in spreading, as in Kubernetes' SelectorSpread (zoneWeighting 2/3). */
export const ZONE_WEIGHTING = 2 / 3;

function spreadScore(count: number, max: number): number {
  return max > 0 ? (MAX_NODE_SCORE * (max - count)) / max : MAX_NODE_SCORE;
}

/**
 * Default spreading (Kubernetes' SelectorSpread, which the default
 * PodTopologySpread constraints replaced): fewer replicas of the pod's
 * workload on the node and in its zone score higher; counts are over the
 * feasible nodes, the zone's weighing 2/3 when zones are labelled.
 */
export const podTopologySpread: ScorePlugin = {
  name: 'PodTopologySpread',
  scoreAll(pod, snapshot, feasible) {
    const workload = pod.workload;
    if (workload === undefined) return undefined;
    const placed = snapshot.workloadNodes.get(workload);
    const counts = feasible.map((node) => placed?.get(node) ?? 0);
    const byZone = new Float64Array(snapshot.zones.length);
    let maxNode = 0;
    feasible.forEach((node, index) => {
      const count = counts[index] ?? 0;
      maxNode = Math.max(maxNode, count);
      if (node.zoneIndex >= 0) byZone[node.zoneIndex] = (byZone[node.zoneIndex] ?? 0) + count;
    });
    const maxZone = byZone.reduce((a, b) => Math.max(a, b), 0);
    return feasible.map((node, index) => {
      let score = spreadScore(counts[index] ?? 0, maxNode);
      if (node.zoneIndex >= 0) score = score * (1 - ZONE_WEIGHTING) + ZONE_WEIGHTING * spreadScore(byZone[node.zoneIndex] ?? 0, maxZone);
      return Math.trunc(score);
    });
  },
};

/** Sum of the weights of the preferred node affinity terms the node matches, normalized. */
export const nodeAffinityPreferred: ScorePlugin = {
  name: 'NodeAffinity',
  scoreAll(pod, _snapshot, feasible) {
    const terms = (pod.pod.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []).filter((term) => (term.weight ?? 0) !== 0);
    if (terms.length === 0) return undefined;
    const raw = feasible.map((node) => terms.reduce((sum, term) => (nodeSelectorTermMatches(term.preference, node.name, node.labels) ? sum + (term.weight ?? 0) : sum), 0));
    return defaultNormalize(raw, false);
  },
};

/** Preferred pod (anti-)affinity, both ways: min-max normalized to 0..100. */
export const interPodAffinityPreferred: ScorePlugin = {
  name: 'InterPodAffinity',
  scoreAll(pod, snapshot, feasible) {
    const raw = interPodAffinityRawScores(pod, snapshot, feasible);
    if (raw === undefined) return undefined;
    const min = raw.reduce((a, b) => Math.min(a, b), Infinity);
    const max = raw.reduce((a, b) => Math.max(a, b), -Infinity);
    return raw.map((score) => (max > min ? Math.trunc((MAX_NODE_SCORE * (score - min)) / (max - min)) : 0));
  },
};

/** Fewer PreferNoSchedule taints the pod does not tolerate scores higher (reverse-normalized count). */
export const taintTolerationPreferred: ScorePlugin = {
  name: 'TaintToleration',
  scoreAll(pod, _snapshot, feasible) {
    if (!feasible.some((node) => node.softTaints.length > 0)) return undefined;
    const tolerations = pod.tolerations.filter((toleration) => (toleration.effect ?? '') === '' || toleration.effect === 'PreferNoSchedule');
    const raw = feasible.map((node) => node.softTaints.filter((taint) => !tolerations.some((toleration) => toleratesTaint(toleration, taint))).length);
    return defaultNormalize(raw, true);
  },
};
