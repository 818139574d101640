// Which nodes a DaemonSet's pod belongs on (pure), as Kubernetes'
// NodeShouldRunDaemonPod decides: the template's nodeName, nodeSelector and
// required node affinity must match the node; a NoSchedule or NoExecute
// taint the pod does not tolerate keeps a new pod off, and only an
// untolerated NoExecute taint evicts one already there. Readiness and
// resources are not checked (daemon pods tolerate not-ready; the kubelet
// admits or rejects on resources). The matching rules are the scheduler's
// (services/client/scheduling.ts).

import type { Node, PodSpec, Taint, Toleration } from '../../../proto/gen/resources/v1/core.js';
import { labelsOf } from '../../client/labels.js';
import { nodeAffinityMatcher, tolerated } from '../../client/scheduling.js';

export interface NodeFit {
  /** A new daemon pod should be created there. */
  readonly shouldRun: boolean;
  /** A daemon pod already there may stay. */
  readonly shouldContinueRunning: boolean;
}

/**
 * The tolerations Kubernetes adds to every daemon pod
 * (util.AddOrUpdateDaemonPodTolerations), so node problems neither evict
 * it nor keep it off: not-ready and unreachable NoExecute (no
 * tolerationSeconds: forever), the pressure and unschedulable NoSchedule
 * taints, and network-unavailable for host-network pods.
 */
export function daemonTolerations(spec: PodSpec | undefined): Toleration[] {
  const exists = (key: string, effect: string): Toleration => ({ key, operator: 'Exists', effect });
  const added = [
    exists('node.kubernetes.io/not-ready', 'NoExecute'),
    exists('node.kubernetes.io/unreachable', 'NoExecute'),
    exists('node.kubernetes.io/disk-pressure', 'NoSchedule'),
    exists('node.kubernetes.io/memory-pressure', 'NoSchedule'),
    exists('node.kubernetes.io/pid-pressure', 'NoSchedule'),
    exists('node.kubernetes.io/unschedulable', 'NoSchedule'),
    ...(spec?.hostNetwork === true ? [exists('node.kubernetes.io/network-unavailable', 'NoSchedule')] : []),
  ];
  const tolerations = [...(spec?.tolerations ?? [])];
  const same = (a: Toleration, b: Toleration): boolean => (a.key ?? '') === (b.key ?? '') && (a.operator ?? '') === (b.operator ?? '') && (a.value ?? '') === (b.value ?? '') && (a.effect ?? '') === (b.effect ?? '');
  for (const toleration of added) if (!tolerations.some((existing) => same(existing, toleration))) tolerations.push(toleration);
  return tolerations;
}

function untolerated(taints: readonly Taint[], tolerations: readonly Toleration[], effects: readonly string[]): boolean {
  return taints.some((taint) => effects.includes(taint.effect ?? '') && !tolerated(tolerations, taint));
}

/** nodeSelector (every pair) and the required node affinity (any term). */
function nodeMatchesPod(spec: PodSpec | undefined, node: Node): boolean {
  return nodeAffinityMatcher(spec)?.(node.metadata?.name ?? '', labelsOf(node.metadata?.labels)) ?? true;
}

/** NodeShouldRunDaemonPod for a template (its tolerations already including daemonTolerations). */
export function nodeFit(spec: PodSpec | undefined, tolerations: readonly Toleration[], node: Node): NodeFit {
  const name = node.metadata?.name ?? '';
  const wanted = spec?.nodeName ?? '';
  if ((wanted !== '' && wanted !== name) || !nodeMatchesPod(spec, node)) return { shouldRun: false, shouldContinueRunning: false };
  const taints = node.spec?.taints ?? [];
  if (untolerated(taints, tolerations, ['NoSchedule', 'NoExecute'])) return { shouldRun: false, shouldContinueRunning: !untolerated(taints, tolerations, ['NoExecute']) };
  return { shouldRun: true, shouldContinueRunning: true };
}
