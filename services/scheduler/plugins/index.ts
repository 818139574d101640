// The scheduler's pure core: snapshot, filter and score plugins, and the
// framework that runs them (see framework.ts). Everything here is
// deterministic — no clocks, randomness or I/O (the lint's determinism rule
// covers this folder) — so the binding loop can replay a decision.

export { assume, buildSnapshot, forget, ZONE_LABEL, type ClusterSnapshot, type NodeInfo, type SnapshotOptions, type StorageLister } from './snapshot.js';
export {
  DEFAULT_WEIGHTS,
  FILTERS,
  SCORES,
  MIN_FEASIBLE_NODES_TO_FIND,
  numFeasibleNodesToFind,
  prepareFilters,
  runFilter,
  schedule,
  scoreNodes,
  unschedulableMessage,
  type ScheduleOptions,
  type ScheduleResult,
} from './framework.js';
export {
  REASON_NODE_AFFINITY,
  REASON_NODE_PORTS,
  REASON_NOT_READY,
  REASON_TOO_MANY_PODS,
  REASON_UNSCHEDULABLE,
  type FilterName,
  type FilterPlugin,
  type FilterResult,
  type NodeFilter,
  type PodRejection,
} from './filters.js';
export { isClaimBound, REASON_UNBOUND_IMMEDIATE_CLAIMS, REASON_VOLUME_NODE_AFFINITY } from './volumebinding.js';
export { REASON_AFFINITY, REASON_ANTI_AFFINITY, REASON_EXISTING_ANTI_AFFINITY } from './interpodaffinity.js';
export { MAX_NODE_SCORE, type ScoreName, type ScorePlugin } from './scores.js';
export { DEFAULT_CPU_REQUEST_MILLIS, DEFAULT_MEMORY_REQUEST_BYTES, podInfoOf, type PodInfo, type Resources } from './pod.js';
export { resourceAmount } from './quantity.js';
// The exact quantity parser lives in services/client (controllers and the API server use it too).
export { parseQuantity, type QuantityScale } from '../../client/quantity.js';
