// InterPodAffinity, filter and score, as kube-scheduler computes them: pod
// counts per topology pair (topologyKey, the node's value of it) gathered
// once per pod, then an O(terms) look-up per node. Nothing is gathered when
// neither the pod nor any pod in the snapshot has an affinity term.

import { termMatches, type AffinityTerm, type PodInfo } from './pod.js';
import { FITS, unfit, type FilterPlugin, type NodeFilter } from './filters.js';
import type { Labels } from '../../client/labels.js';
import type { ClusterSnapshot, NodeInfo } from './snapshot.js';

export const REASON_AFFINITY = "node(s) didn't match pod affinity rules";
export const REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules";
export const REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules";

const AFFINITY = unfit(REASON_AFFINITY);
const ANTI_AFFINITY = unfit(REASON_ANTI_AFFINITY);
const EXISTING_ANTI_AFFINITY = unfit(REASON_EXISTING_ANTI_AFFINITY);

/** Counts (or weights) per topology key, then per value of it. */
type TopologyCounts = Map<string, Map<string, number>>;

function addAt(counts: TopologyCounts, key: string, labels: Labels, delta: number): void {
  const value = key === '' ? undefined : labels.get(key);
  if (value === undefined) return;
  let byValue = counts.get(key);
  if (byValue === undefined) counts.set(key, (byValue = new Map()));
  byValue.set(value, (byValue.get(value) ?? 0) + delta);
}

function countAt(counts: TopologyCounts, key: string, labels: Labels): number {
  const value = labels.get(key);
  return value === undefined ? 0 : counts.get(key)?.get(value) ?? 0;
}

interface RequiredCounts {
  readonly affinity: TopologyCounts;
  readonly antiAffinity: TopologyCounts;
  /** Existing pods' required anti-affinity terms that the incoming pod matches. */
  readonly existingAntiAffinity: TopologyCounts;
}

/** Kubernetes' PreFilter: one pass over the pods that matter. */
function requiredCounts(pod: PodInfo, snapshot: ClusterSnapshot): RequiredCounts {
  const counts: RequiredCounts = { affinity: new Map(), antiAffinity: new Map(), existingAntiAffinity: new Map() };
  const namespaces = snapshot.namespaceLabels;
  const ownTerms = pod.requiredAffinity.length + pod.requiredAntiAffinity.length > 0;
  for (const node of snapshot.nodes) {
    if (node.labels.size === 0) continue;
    for (const existing of node.podsWithRequiredAntiAffinity) {
      for (const term of existing.requiredAntiAffinity) {
        if (termMatches(term, pod, namespaces)) addAt(counts.existingAntiAffinity, term.topologyKey, node.labels, 1);
      }
    }
    if (!ownTerms) continue;
    for (const existing of node.podInfos) {
      if (pod.requiredAffinity.length > 0 && pod.requiredAffinity.every((term) => termMatches(term, existing, namespaces))) {
        for (const term of pod.requiredAffinity) addAt(counts.affinity, term.topologyKey, node.labels, 1);
      }
      for (const term of pod.requiredAntiAffinity) {
        if (termMatches(term, existing, namespaces)) addAt(counts.antiAffinity, term.topologyKey, node.labels, 1);
      }
    }
  }
  return counts;
}

/**
 * Every affinity term has a matching pod in the node's domain; or no pod
 * anywhere matches and the pod matches its own terms (the first replica of a
 * group with affinity to itself), the node having every topology key.
 */
function satisfiesAffinity(pod: PodInfo, counts: RequiredCounts, node: NodeInfo, namespaces: ReadonlyMap<string, Labels>): boolean {
  let podsExist = true;
  for (const term of pod.requiredAffinity) {
    if (!node.labels.has(term.topologyKey)) return false;
    if (countAt(counts.affinity, term.topologyKey, node.labels) <= 0) podsExist = false;
  }
  if (podsExist) return true;
  return counts.affinity.size === 0 && pod.requiredAffinity.every((term) => termMatches(term, pod, namespaces));
}

function anyCountAt(counts: TopologyCounts, labels: Labels): boolean {
  for (const [key, byValue] of counts) {
    const value = labels.get(key);
    if (value !== undefined && (byValue.get(value) ?? 0) > 0) return true;
  }
  return false;
}

export const interPodAffinity: FilterPlugin = {
  name: 'InterPodAffinity',
  prepare(pod, snapshot): NodeFilter | undefined {
    if (pod.requiredAffinity.length + pod.requiredAntiAffinity.length === 0 && snapshot.podsWithRequiredAntiAffinityCount === 0) return undefined;
    const counts = requiredCounts(pod, snapshot);
    return (node) => {
      if (pod.requiredAffinity.length > 0 && !satisfiesAffinity(pod, counts, node, snapshot.namespaceLabels)) return AFFINITY;
      if (pod.requiredAntiAffinity.some((term) => countAt(counts.antiAffinity, term.topologyKey, node.labels) > 0)) return ANTI_AFFINITY;
      if (anyCountAt(counts.existingAntiAffinity, node.labels)) return EXISTING_ANTI_AFFINITY;
      return FITS;
    };
  },
};

/** Weight of the term at the node's domain when the pod matches it. */
function processTerms(scores: TopologyCounts, terms: readonly AffinityTerm[], pod: PodInfo, node: NodeInfo, namespaces: ReadonlyMap<string, Labels>, sign: 1 | -1, weight?: number): void {
  for (const term of terms) {
    if (termMatches(term, pod, namespaces)) addAt(scores, term.topologyKey, node.labels, sign * (weight ?? term.weight));
  }
}

/** Default HardPodAffinityWeight: what an existing pod's required affinity term matching the incoming pod adds. */
export const HARD_POD_AFFINITY_WEIGHT = 1;

/** Kubernetes' processExistingPod: the pod's preferred terms against the existing pod, and the existing pod's terms against the pod. */
function processExistingPod(scores: TopologyCounts, pod: PodInfo, existing: PodInfo, node: NodeInfo, namespaces: ReadonlyMap<string, Labels>): void {
  processTerms(scores, pod.preferredAffinity, existing, node, namespaces, 1);
  processTerms(scores, pod.preferredAntiAffinity, existing, node, namespaces, -1);
  processTerms(scores, existing.requiredAffinity, pod, node, namespaces, 1, HARD_POD_AFFINITY_WEIGHT);
  processTerms(scores, existing.preferredAffinity, pod, node, namespaces, 1);
  processTerms(scores, existing.preferredAntiAffinity, pod, node, namespaces, -1);
}

/** Raw InterPodAffinity scores of the feasible nodes (before normalizing), or undefined when nothing has preferences. */
export function interPodAffinityRawScores(pod: PodInfo, snapshot: ClusterSnapshot, feasible: readonly NodeInfo[]): number[] | undefined {
  const ownPreferences = pod.preferredAffinity.length + pod.preferredAntiAffinity.length > 0;
  if (!ownPreferences && snapshot.podsWithAffinityCount === 0) return undefined;
  const scores: TopologyCounts = new Map();
  for (const node of snapshot.nodes) {
    if (node.labels.size === 0) continue;
    for (const existing of ownPreferences ? node.podInfos : node.podsWithAffinity) processExistingPod(scores, pod, existing, node, snapshot.namespaceLabels);
  }
  if (scores.size === 0) return undefined;
  return feasible.map((node) => {
    let score = 0;
    for (const [key, byValue] of scores) {
      const value = node.labels.get(key);
      if (value !== undefined) score += byValue.get(value) ?? 0;
    }
    return score;
  });
}
