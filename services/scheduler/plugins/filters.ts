// kube-scheduler's filter plugins for one node each: NodeUnschedulable,
// NodeReady, TaintToleration, NodeAffinity, NodePorts and NodeResourcesFit
// (InterPodAffinity is in interpodaffinity.ts, VolumeBinding in
// volumebinding.ts). Each plugin first prepares for a pod (Kubernetes'
// PreFilter) and returns the per-node check, or undefined when nothing
// about the pod can fail on any node, so the framework skips it, or a
// rejection when the pod fits no node whichever it is (Kubernetes'
// UnschedulableAndUnresolvable from PreFilter: no node is looked at).
// Reason strings are Kubernetes' own.

import type { PodInfo } from './pod.js';
import { nodeAffinityMatcher, tolerated } from '../../client/scheduling.js';
import type { ClusterSnapshot, NodeInfo } from './snapshot.js';

export type FilterName = 'NodeUnschedulable' | 'NodeReady' | 'TaintToleration' | 'NodeAffinity' | 'NodePorts' | 'NodeResourcesFit' | 'VolumeBinding' | 'InterPodAffinity';

/** reason is the first of reasons; only NodeResourcesFit gives several ("Insufficient cpu", "Insufficient memory"). */
export type FilterResult = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly reasons: readonly string[] };

export type NodeFilter = (node: NodeInfo) => FilterResult;

/** The pod fits no node, whichever, for this reason ("pod has unbound immediate PersistentVolumeClaims"). */
export interface PodRejection {
  readonly rejected: string;
}

export interface FilterPlugin {
  readonly name: FilterName;
  /** The check of one node for this pod; undefined when the pod passes on every node; a rejection when it passes on none. */
  prepare(pod: PodInfo, snapshot: ClusterSnapshot): NodeFilter | PodRejection | undefined;
}

export const FITS: FilterResult = { ok: true };

export function unfit(...reasons: [string, ...string[]]): FilterResult {
  return { ok: false, reason: reasons[0], reasons };
}

export const REASON_UNSCHEDULABLE = 'node(s) were unschedulable';
export const REASON_NOT_READY = 'node(s) were not ready';
export const REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector";
export const REASON_NODE_PORTS = "node(s) didn't have free ports for the requested pod ports";
export const REASON_TOO_MANY_PODS = 'Too many pods';

export const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';
export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';

const UNSCHEDULABLE = unfit(REASON_UNSCHEDULABLE);
const NOT_READY = unfit(REASON_NOT_READY);
const NODE_AFFINITY = unfit(REASON_NODE_AFFINITY);
const NODE_PORTS = unfit(REASON_NODE_PORTS);

/** spec.unschedulable (kubectl cordon), unless the pod tolerates node.kubernetes.io/unschedulable:NoSchedule. */
export const nodeUnschedulable: FilterPlugin = {
  name: 'NodeUnschedulable',
  prepare(pod) {
    if (tolerated(pod.tolerations, { key: TAINT_UNSCHEDULABLE, effect: 'NoSchedule' })) return undefined;
    return (node) => (node.unschedulable ? UNSCHEDULABLE : FITS);
  },
};

/**
 * The Ready condition must be True. Kubernetes expresses this as the
 * node.kubernetes.io/not-ready:NoSchedule taint the node lifecycle controller
 * adds, so a pod that tolerates that taint may go to a node that is not ready.
 */
export const nodeReady: FilterPlugin = {
  name: 'NodeReady',
  prepare(pod) {
    if (tolerated(pod.tolerations, { key: TAINT_NOT_READY, effect: 'NoSchedule' })) return undefined;
    return (node) => (node.ready ? FITS : NOT_READY);
  },
};

/** The first NoSchedule or NoExecute taint the pod does not tolerate. */
export const taintToleration: FilterPlugin = {
  name: 'TaintToleration',
  prepare(pod) {
    return (node) => {
      for (const taint of node.hardTaints) {
        if (!tolerated(pod.tolerations, taint)) return unfit(`node(s) had untolerated taint {${taint.key ?? ''}: ${taint.value ?? ''}}`);
      }
      return FITS;
    };
  },
};

/** spec.nodeSelector (every label equal) and the required node affinity (any term, every requirement in it). */
export const nodeAffinity: FilterPlugin = {
  name: 'NodeAffinity',
  prepare(pod) {
    const matches = nodeAffinityMatcher(pod.pod.spec);
    if (matches === undefined) return undefined;
    return (node) => (matches(node.name, node.labels) ? FITS : NODE_AFFINITY);
  },
};

/** A host port conflicts on the same protocol and port when either side binds every address, or both bind the same one. */
export const nodePorts: FilterPlugin = {
  name: 'NodePorts',
  prepare(pod) {
    if (pod.hostPorts.length === 0) return undefined;
    return (node) => {
      if (node.usedPorts.size === 0) return FITS;
      for (const port of pod.hostPorts) {
        const used = node.usedPorts.get(port.protocolPort);
        if (used === undefined) continue;
        if (port.hostIP === '0.0.0.0' || used.has('0.0.0.0') || used.has(port.hostIP)) return NODE_PORTS;
      }
      return FITS;
    };
  },
};

/**
 * Kubernetes' fitsRequest: room for one more pod, then each requested
 * resource against allocatable minus what the node's pods request; every
 * shortfall is a reason. Undefined when the pod fits (no allocation then).
 */
function insufficient(pod: PodInfo, node: NodeInfo): [string, ...string[]] | undefined {
  let reasons: [string, ...string[]] | undefined;
  const add = (reason: string): void => {
    if (reasons === undefined) reasons = [reason];
    else reasons.push(reason);
  };
  if (node.podInfos.length + 1 > node.allowedPodCount) add(REASON_TOO_MANY_PODS);
  const { requests } = pod;
  if (requests.cpuMillis > 0 && requests.cpuMillis > node.allocatable.cpuMillis - node.requested.cpuMillis) add('Insufficient cpu');
  if (requests.memoryBytes > 0 && requests.memoryBytes > node.allocatable.memoryBytes - node.requested.memoryBytes) add('Insufficient memory');
  for (const [name, amount] of requests.scalars) {
    if (amount > 0 && amount > (node.allocatable.scalars.get(name) ?? 0) - (node.requested.scalars.get(name) ?? 0)) add(`Insufficient ${name}`);
  }
  return reasons;
}

/** Pods, cpu, memory, then the other resources by name (PodInfo keeps them sorted). */
export const nodeResourcesFit: FilterPlugin = {
  name: 'NodeResourcesFit',
  prepare(pod) {
    return (node) => {
      const reasons = insufficient(pod, node);
      return reasons === undefined ? FITS : unfit(...reasons);
    };
  },
};
