// The node lifecycle controller's decisions, as pure functions of a Node,
// its Lease and the time: whether the kubelet's heartbeat (the Lease's
// renewTime, the Ready condition's lastHeartbeatTime) is older than the
// grace period, and then the conditions Kubernetes sets to Unknown; and the
// taints the node's conditions call for — the NoExecute not-ready and
// unreachable taints of taint-based eviction, and the NoSchedule ones of
// TaintNodesByCondition. Names, reasons and messages are Kubernetes'.

import type { Node, Taint } from '../../../proto/gen/resources/v1/core.js';
import type { Lease } from '../../../proto/gen/resources/v1/coordination.js';
import type { Condition } from '../../../proto/gen/resources/v1/meta.js';
import { formatTimestamp, parseTimestampMs } from '../../client/timestamps.js';

export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';
export const TAINT_MEMORY_PRESSURE = 'node.kubernetes.io/memory-pressure';
export const TAINT_DISK_PRESSURE = 'node.kubernetes.io/disk-pressure';
export const TAINT_PID_PRESSURE = 'node.kubernetes.io/pid-pressure';
export const TAINT_NETWORK_UNAVAILABLE = 'node.kubernetes.io/network-unavailable';

/** Kubernetes' --node-monitor-grace-period. */
export const DEFAULT_NODE_MONITOR_GRACE_PERIOD_MS = 40_000;
/** Kubernetes' --node-startup-grace-period: for a node that never posted a Ready condition. */
export const DEFAULT_NODE_STARTUP_GRACE_PERIOD_MS = 60_000;

/** The conditions set to Unknown when the kubelet goes silent (Ready and Kubernetes' remainingNodeConditionTypes). */
export const MONITORED_CONDITIONS: readonly string[] = ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure'];

export const REASON_STATUS_UNKNOWN = 'NodeStatusUnknown';
export const MESSAGE_STATUS_UNKNOWN = 'Kubelet stopped posting node status.';
export const REASON_NEVER_UPDATED = 'NodeStatusNeverUpdated';
export const MESSAGE_NEVER_UPDATED = 'Kubelet never posted node status.';

/** Which condition status taints a node NoSchedule, with which key (Kubernetes' nodeConditionToTaintKeyStatusMap). */
const CONDITION_TAINTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  Ready: { False: TAINT_NOT_READY, Unknown: TAINT_UNREACHABLE },
  MemoryPressure: { True: TAINT_MEMORY_PRESSURE },
  DiskPressure: { True: TAINT_DISK_PRESSURE },
  NetworkUnavailable: { True: TAINT_NETWORK_UNAVAILABLE },
  PIDPressure: { True: TAINT_PID_PRESSURE },
};

/** The NoSchedule taints this controller owns: it adds and removes them, and leaves every other taint alone. */
const MANAGED_NO_SCHEDULE: ReadonlySet<string> = new Set([...Object.values(CONDITION_TAINTS).flatMap((byStatus) => Object.values(byStatus)), TAINT_UNSCHEDULABLE]);

// ------------------------------------------------------------------ health

export interface NodeHealthInput {
  readonly node: Node;
  readonly lease: Lease | undefined;
  /**
   * Since when this controller has watched the node (reset when it leaves
   * the all-zones-disrupted mode): counted as a heartbeat, so a controller
   * that just took over gives every node a full grace period, as Kubernetes'
   * probeTimestamp does.
   */
  readonly observedSinceMs: number;
  readonly nowMs: number;
  readonly gracePeriodMs: number;
  readonly startupGracePeriodMs: number;
}

export interface NodeHealth {
  /** The latest sign of life: lease renewal, Ready heartbeat, creation or observedSinceMs. */
  readonly lastHeartbeatMs: number;
  /** When the silence becomes too long; stale once nowMs is past it. */
  readonly deadlineMs: number;
  readonly stale: boolean;
  /** The node's new status.conditions when they must change (stale: Unknown), else undefined. */
  readonly conditions: Condition[] | undefined;
}

export function conditionOf(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return (conditions ?? []).find((condition) => condition.type === type);
}

/** The Ready condition's status: 'True', 'False', 'Unknown', or undefined when the node has none. */
export function readyStatusOf(conditions: readonly Condition[] | undefined): string | undefined {
  return conditionOf(conditions, 'Ready')?.status;
}

export function assessNodeHealth(input: NodeHealthInput): NodeHealth {
  const { node, lease, nowMs } = input;
  const conditions = node.status?.conditions ?? [];
  const ready = conditionOf(conditions, 'Ready');
  const signs = [parseTimestampMs(lease?.spec?.renewTime), parseTimestampMs(ready?.lastHeartbeatTime), parseTimestampMs(node.metadata?.creationTimestamp), input.observedSinceMs];
  const lastHeartbeatMs = Math.max(...signs.filter((sign): sign is number => sign !== undefined));
  const deadlineMs = lastHeartbeatMs + (ready === undefined ? input.startupGracePeriodMs : input.gracePeriodMs);
  // Kubernetes: stale once now is after probeTimestamp + gracePeriod.
  const stale = nowMs > deadlineMs;
  return { lastHeartbeatMs, deadlineMs, stale, conditions: stale ? unknownConditions(node, nowMs) : undefined };
}

/** Kubernetes' tryUpdateNodeHealth for a silent kubelet: the monitored conditions become Unknown; undefined if they already are. */
function unknownConditions(node: Node, nowMs: number): Condition[] | undefined {
  const now = formatTimestamp(nowMs);
  const next = structuredClone(node.status?.conditions ?? []);
  let changed = false;
  for (const type of MONITORED_CONDITIONS) {
    const current = next.find((condition) => condition.type === type);
    if (current === undefined) {
      const created = node.metadata?.creationTimestamp;
      next.push({ type, status: 'Unknown', reason: REASON_NEVER_UPDATED, message: MESSAGE_NEVER_UPDATED, ...(created === undefined ? {} : { lastHeartbeatTime: created }), lastTransitionTime: now });
      changed = true;
    } else if (current.status !== 'Unknown') {
      Object.assign(current, { status: 'Unknown', reason: REASON_STATUS_UNKNOWN, message: MESSAGE_STATUS_UNKNOWN, lastTransitionTime: now });
      changed = true;
    }
  }
  return changed ? next : undefined;
}

// ------------------------------------------------------------------ taints

/**
 * What may happen to the node's NoExecute taint: 'add' — put it on (the
 * zone's eviction rate allows one more); 'hold' — keep, swap or remove, but
 * add none to a node that has none; 'clear' — remove them all (every zone
 * is fully disrupted: Kubernetes' master disruption mode stops evictions).
 */
export type NoExecuteMode = 'add' | 'hold' | 'clear';

export interface TaintPlan {
  /** The node's spec.taints as they should be. */
  readonly taints: Taint[];
  readonly changed: boolean;
  /** A NoExecute taint put on a node that had none of ours: the rate-limited step. */
  readonly addsNoExecute: boolean;
  /** A NoExecute taint the node needs that 'hold' kept back. */
  readonly heldNoExecute: boolean;
}

function isNoExecuteOfOurs(taint: Taint): boolean {
  return taint.effect === 'NoExecute' && (taint.key === TAINT_NOT_READY || taint.key === TAINT_UNREACHABLE);
}

/** The NoExecute taint a Ready status calls for (Kubernetes' processTaintBaseEviction). */
export function noExecuteTaintKeyFor(readyStatus: string | undefined): string | undefined {
  if (readyStatus === 'False') return TAINT_NOT_READY;
  if (readyStatus === 'Unknown') return TAINT_UNREACHABLE;
  return undefined;
}

/** The NoSchedule taint keys the conditions and spec.unschedulable call for, in a fixed order. */
export function noScheduleTaintKeysFor(node: Node, conditions: readonly Condition[]): string[] {
  const keys = new Set<string>();
  for (const condition of conditions) {
    const key = CONDITION_TAINTS[condition.type ?? '']?.[condition.status ?? ''];
    if (key !== undefined) keys.add(key);
  }
  if (node.spec?.unschedulable === true) keys.add(TAINT_UNSCHEDULABLE);
  return [...MANAGED_NO_SCHEDULE].filter((key) => keys.has(key));
}

/**
 * The node's taints for its (possibly just updated) conditions: others'
 * taints kept as they are, ours added or removed; a new NoExecute taint
 * carries timeAdded (the clock of tolerationSeconds), a NoSchedule one not.
 * Swapping not-ready for unreachable (or back) is immediate, as in Kubernetes.
 */
export function planTaints(node: Node, conditions: readonly Condition[], nowMs: number, mode: NoExecuteMode): TaintPlan {
  const current = node.spec?.taints ?? [];
  const noSchedule = new Set(noScheduleTaintKeysFor(node, conditions));
  const noExecute = mode === 'clear' ? undefined : noExecuteTaintKeyFor(readyStatusOf(conditions));
  const hadNoExecute = current.some(isNoExecuteOfOurs);
  const taints = current.filter((taint) => {
    if (taint.effect === 'NoSchedule' && MANAGED_NO_SCHEDULE.has(taint.key ?? '')) return noSchedule.has(taint.key ?? '');
    if (isNoExecuteOfOurs(taint)) return taint.key === noExecute;
    return true;
  });
  for (const key of noSchedule) {
    if (!taints.some((taint) => taint.key === key && taint.effect === 'NoSchedule')) taints.push({ key, effect: 'NoSchedule' });
  }
  let addsNoExecute = false;
  let heldNoExecute = false;
  if (noExecute !== undefined && !taints.some((taint) => taint.key === noExecute && taint.effect === 'NoExecute')) {
    if (hadNoExecute || mode === 'add') {
      taints.push({ key: noExecute, effect: 'NoExecute', timeAdded: formatTimestamp(nowMs) });
      addsNoExecute = !hadNoExecute;
    } else {
      heldNoExecute = true;
    }
  }
  const changed = taints.length !== current.length || taints.some((taint, index) => taint !== current[index]);
  return { taints, changed, addsNoExecute, heldNoExecute };
}
