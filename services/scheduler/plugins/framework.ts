// One scheduling decision, as kube-scheduler's framework makes it: run the
// filters on every node in a fixed order (a node's first failing filter
// decides its reasons), score the feasible nodes with the weighted score
// plugins, take the highest total, and break ties with an injected function
// (default: the smallest node name, so the result is a function of the input).
// When nothing fits, the reason is Kubernetes' "0/N nodes are available: ..."
// summary; when a plugin rejects the pod before any node is looked at
// (VolumeBinding's missing or unbound claims), "0/N nodes are available: <why>.".

import {
  nodeAffinity,
  nodePorts,
  nodeReady,
  nodeResourcesFit,
  nodeUnschedulable,
  taintToleration,
  unfit,
  type FilterName,
  type FilterPlugin,
  type FilterResult,
  type NodeFilter,
  type PodRejection,
} from './filters.js';
import { interPodAffinity } from './interpodaffinity.js';
import { volumeBinding } from './volumebinding.js';
import { podInfoOf } from './pod.js';
import {
  balancedAllocation,
  interPodAffinityPreferred,
  leastAllocated,
  nodeAffinityPreferred,
  podTopologySpread,
  taintTolerationPreferred,
  type ScoreName,
  type ScorePlugin,
} from './scores.js';
import type { ClusterSnapshot, NodeInfo } from './snapshot.js';
import type * as core from '../../../proto/gen/resources/v1/core.js';

/** Kubernetes' default filter order (NodeReady, which Kubernetes expresses as a taint, sits with NodeUnschedulable). */
export const FILTERS: readonly FilterPlugin[] = [nodeUnschedulable, nodeReady, taintToleration, nodeAffinity, nodePorts, nodeResourcesFit, volumeBinding, interPodAffinity];

export const SCORES: readonly ScorePlugin[] = [leastAllocated, balancedAllocation, podTopologySpread, nodeAffinityPreferred, interPodAffinityPreferred, taintTolerationPreferred];

/** kube-scheduler's default plugin weights (TaintToleration 3; NodeAffinity, PodTopologySpread, InterPodAffinity 2; the resource scores 1). */
export const DEFAULT_WEIGHTS: Readonly<Record<ScoreName, number>> = {
  NodeResourcesLeastAllocated: 1,
  NodeResourcesBalancedAllocation: 1,
  PodTopologySpread: 2,
  NodeAffinity: 2,
  InterPodAffinity: 2,
  TaintToleration: 3,
};

export interface ScheduleOptions {
  /** Per score plugin; 0 turns one off. Missing ones take DEFAULT_WEIGHTS. */
  readonly weights?: Partial<Record<ScoreName, number>>;
  /** Picks among the best-scoring nodes (given sorted by name); default the first. */
  readonly tieBreak?: (candidates: readonly string[]) => string;
  /** Also return every scored node's weighted total (costs a Map per pod; off by default). */
  readonly withScores?: boolean;
  /**
   * Kubernetes' percentageOfNodesToScore: stop filtering once this share
   * of the nodes (at least MIN_FEASIBLE_NODES_TO_FIND) is found feasible;
   * 0 or absent: adaptive (50% less 1% per 125 nodes, at least 5%); 100: every node.
   */
  readonly percentageOfNodesToScore?: number;
  /** Where in snapshot.nodes filtering starts (the last result's nextStartIndex), so every node gets its turn. */
  readonly startIndex?: number;
}

export interface ScheduleResult {
  /** The chosen node, when one fits. */
  readonly node?: string;
  /** Why none fits: "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable." */
  readonly reason?: string;
  /** Node → its reasons (joined with ", ") for every node a filter rejected. */
  readonly filtered?: ReadonlyMap<string, string>;
  /** With options.withScores: the weighted total of each node scored (absent when fewer than two nodes fit). */
  readonly scores?: ReadonlyMap<string, number>;
  /** Where the next pod's filtering should start. */
  readonly nextStartIndex: number;
}

/** Kubernetes' minFeasibleNodesToFind, basePercentageOfNodesToScore and minFeasibleNodesPercentageToFind. */
export const MIN_FEASIBLE_NODES_TO_FIND = 100;
const BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5;

/** How many feasible nodes are enough (kube-scheduler's numFeasibleNodesToFind). */
export function numFeasibleNodesToFind(nodeCount: number, percentageOfNodesToScore = 0): number {
  if (nodeCount < MIN_FEASIBLE_NODES_TO_FIND || percentageOfNodesToScore >= 100) return nodeCount;
  let percentage = percentageOfNodesToScore;
  if (percentage <= 0) percentage = Math.max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND, BASE_PERCENTAGE_OF_NODES_TO_SCORE - Math.trunc(nodeCount / 125));
  return Math.max(MIN_FEASIBLE_NODES_TO_FIND, Math.trunc((nodeCount * percentage) / 100));
}

const smallestName = (candidates: readonly string[]): string => candidates[0] ?? '';

/**
 * The summary kube-scheduler puts in the PodScheduled condition: per reason
 * the number of nodes that gave it, most frequent first, ties by reason text.
 */
export function unschedulableMessage(nodeCount: number, reasonCounts: ReadonlyMap<string, number>): string {
  const parts = [...reasonCounts]
    .sort(([reasonA, countA], [reasonB, countB]) => countB - countA || (reasonA < reasonB ? -1 : reasonA > reasonB ? 1 : 0))
    .map(([reason, count]) => `${count} ${reason}`);
  return parts.length === 0 ? `0/${nodeCount} nodes are available.` : `0/${nodeCount} nodes are available: ${parts.join(', ')}.`;
}

/** The filters that apply to this pod, prepared (Kubernetes' PreFilter); or the first plugin's rejection of every node. */
export function prepareFilters(pod: core.Pod, snapshot: ClusterSnapshot): NodeFilter[] | PodRejection {
  const info = podInfoOf(pod);
  const prepared: NodeFilter[] = [];
  for (const plugin of FILTERS) {
    const filter = plugin.prepare(info, snapshot);
    if (filter === undefined) continue;
    if (typeof filter !== 'function') return filter;
    prepared.push(filter);
  }
  return prepared;
}

/** The first failing filter's result for the node, or FITS. */
function runFilters(filters: readonly NodeFilter[], node: NodeInfo): FilterResult | undefined {
  for (const filter of filters) {
    const result = filter(node);
    if (!result.ok) return result;
  }
  return undefined;
}

interface Filtered {
  readonly feasible: NodeInfo[];
  readonly filtered: Map<string, string>;
  readonly reasonCounts: Map<string, number>;
  /** How many nodes were looked at (all of them unless enough were feasible sooner). */
  processed: number;
  /** Why no node was looked at. */
  rejected?: string;
}

/** The nodes from `start` round, until `enough` are feasible (kube-scheduler's findNodesThatPassFilters). */
function filterNodes(pod: core.Pod, snapshot: ClusterSnapshot, start: number, enough: number): Filtered {
  const filters = prepareFilters(pod, snapshot);
  const result: Filtered = { feasible: [], filtered: new Map(), reasonCounts: new Map(), processed: 0 };
  if (!Array.isArray(filters)) {
    for (const node of snapshot.nodes) result.filtered.set(node.name, filters.rejected);
    result.rejected = filters.rejected;
    return result;
  }
  const count = snapshot.nodes.length;
  for (let offset = 0; offset < count && result.feasible.length < enough; offset++) {
    const node = snapshot.nodes[(start + offset) % count]!;
    result.processed++;
    const failure = runFilters(filters, node);
    if (failure === undefined || failure.ok) {
      result.feasible.push(node);
      continue;
    }
    result.filtered.set(node.name, failure.reasons.join(', '));
    for (const reason of new Set(failure.reasons)) result.reasonCounts.set(reason, (result.reasonCounts.get(reason) ?? 0) + 1);
  }
  return result;
}

/** Weighted totals of the feasible nodes, in their order. */
function totalScores(pod: core.Pod, snapshot: ClusterSnapshot, feasible: readonly NodeInfo[], weights: Partial<Record<ScoreName, number>>): Float64Array {
  const info = podInfoOf(pod);
  const totals = new Float64Array(feasible.length);
  for (const plugin of SCORES) {
    const weight = weights[plugin.name] ?? DEFAULT_WEIGHTS[plugin.name];
    if (weight === 0) continue;
    const scores = plugin.scoreAll(info, snapshot, feasible);
    if (scores === undefined) continue;
    for (let index = 0; index < totals.length; index++) totals[index] = (totals[index] ?? 0) + weight * (scores[index] ?? 0);
  }
  return totals;
}

function best(feasible: readonly NodeInfo[], totals: Float64Array, tieBreak: (candidates: readonly string[]) => string): string {
  let top = -Infinity;
  let candidates: string[] = [];
  feasible.forEach((node, index) => {
    const total = totals[index] ?? 0;
    if (total > top) {
      top = total;
      candidates = [node.name];
    } else if (total === top) {
      candidates.push(node.name);
    }
  });
  candidates.sort();
  const chosen = candidates.length === 1 ? candidates[0] : tieBreak(candidates);
  if (chosen === undefined || !candidates.includes(chosen)) throw new Error(`tieBreak chose ${String(chosen)}, not one of ${candidates.join(', ')}`);
  return chosen;
}

/**
 * Where the pod should run, given the snapshot (from buildSnapshot, kept
 * current with assume): the feasible node with the highest weighted score
 * among the first enough feasible ones found from options.startIndex, as
 * kube-scheduler samples large clusters; or, when no node fits, Kubernetes'
 * summary of why. Pure: the same arguments give the same answer.
 */
export function schedule(pod: core.Pod, snapshot: ClusterSnapshot, options: ScheduleOptions = {}): ScheduleResult {
  const count = snapshot.nodes.length;
  const start = count === 0 ? 0 : (((options.startIndex ?? 0) % count) + count) % count;
  const { feasible, filtered, reasonCounts, processed, rejected } = filterNodes(pod, snapshot, start, numFeasibleNodesToFind(count, options.percentageOfNodesToScore));
  const nextStartIndex = count === 0 ? 0 : (start + processed) % count;
  if (rejected !== undefined) return { reason: `0/${count} nodes are available: ${rejected}.`, filtered, nextStartIndex };
  if (feasible.length === 0) return { reason: unschedulableMessage(count, reasonCounts), filtered, nextStartIndex };
  const only = feasible.length === 1 ? feasible[0] : undefined;
  if (only !== undefined) return { node: only.name, filtered, nextStartIndex };
  const totals = totalScores(pod, snapshot, feasible, options.weights ?? {});
  const node = best(feasible, totals, options.tieBreak ?? smallestName);
  if (options.withScores !== true) return { node, filtered, nextStartIndex };
  return { node, filtered, scores: new Map(feasible.map((info, index) => [info.name, totals[index] ?? 0])), nextStartIndex };
}

/** One filter's verdict on one node (tests, and explaining a decision). */
export function runFilter(name: FilterName, pod: core.Pod, snapshot: ClusterSnapshot, nodeName: string): FilterResult {
  const plugin = FILTERS.find((candidate) => candidate.name === name);
  const node = snapshot.byName.get(nodeName);
  if (plugin === undefined || node === undefined) throw new Error(`no filter ${name} or no node ${nodeName}`);
  const prepared = plugin.prepare(podInfoOf(pod), snapshot);
  if (prepared === undefined) return { ok: true };
  return typeof prepared === 'function' ? prepared(node) : unfit(prepared.rejected);
}

/** One score plugin's normalized scores over the given nodes (default: every node), by node name; empty when it would skip. */
export function scoreNodes(name: ScoreName, pod: core.Pod, snapshot: ClusterSnapshot, nodeNames?: readonly string[]): Map<string, number> {
  const plugin = SCORES.find((candidate) => candidate.name === name);
  if (plugin === undefined) throw new Error(`no score plugin ${name}`);
  const nodes = nodeNames === undefined ? snapshot.nodes : nodeNames.map((nodeName) => snapshot.byName.get(nodeName)).filter((node): node is NodeInfo => node !== undefined);
  const scores = plugin.scoreAll(podInfoOf(pod), snapshot, nodes);
  return new Map(scores === undefined ? [] : nodes.map((node, index) => [node.name, scores[index] ?? 0]));
}
