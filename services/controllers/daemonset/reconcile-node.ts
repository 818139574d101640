// Which nodes a DaemonSet's pod belongs on (pure), as Kubernetes'
// NodeShouldRunDaemonPod decides: the template's nodeName, nodeSelector and
// required node affinity must match the node; a NoSchedule or NoExecute
// taint the pod does not tolerate keeps a new pod off, and only an
// untolerated NoExecute taint evicts one already there. Readiness and
// resources are not checked (daemon pods tolerate not-ready; the kubelet
// admits or rejects on resources). The matching rules are the scheduler's
// (services/scheduler/plugins/selectors.ts), restated here because
// controllers may not import the scheduler.

import type { Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration } from '../../../proto/gen/resources/v1/core.js';

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

/** Kubernetes' Toleration.ToleratesTaint. */
export function toleratesTaint(toleration: Toleration, taint: Taint): boolean {
  if ((toleration.effect ?? '') !== '' && toleration.effect !== (taint.effect ?? '')) return false;
  if ((toleration.key ?? '') !== '' && toleration.key !== (taint.key ?? '')) return false;
  switch (toleration.operator ?? '') {
    case '':
    case 'Equal':
      return (toleration.value ?? '') === (taint.value ?? '');
    case 'Exists':
      return true;
    default:
      return false;
  }
}

function untolerated(taints: readonly Taint[], tolerations: readonly Toleration[], effects: readonly string[]): boolean {
  return taints.some((taint) => effects.includes(taint.effect ?? '') && !tolerations.some((toleration) => toleratesTaint(toleration, taint)));
}

function labelRequirementMatches(requirement: NodeSelectorRequirement, labels: Readonly<Record<string, string>>): boolean {
  const key = requirement.key ?? '';
  const value = Object.prototype.hasOwnProperty.call(labels, key) ? labels[key] : undefined;
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const integer = /^[+-]?\d+$/;
      const bound = values.length === 1 ? values[0] : undefined;
      if (value === undefined || bound === undefined || !integer.test(value) || !integer.test(bound)) return false;
      return requirement.operator === 'Gt' ? Number(value) > Number(bound) : Number(value) < Number(bound);
    }
    default:
      return false;
  }
}

/** matchFields: only metadata.name, with In or NotIn. */
function fieldRequirementMatches(requirement: NodeSelectorRequirement, nodeName: string): boolean {
  if (requirement.key !== 'metadata.name') return false;
  const values = requirement.values ?? [];
  if (requirement.operator === 'In') return values.includes(nodeName);
  if (requirement.operator === 'NotIn') return !values.includes(nodeName);
  return false;
}

/** One node selector term: every requirement holds; an empty term matches nothing. */
export function nodeSelectorTermMatches(term: NodeSelectorTerm, nodeName: string, labels: Readonly<Record<string, string>>): boolean {
  const expressions = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (expressions.length === 0 && fields.length === 0) return false;
  return expressions.every((requirement) => labelRequirementMatches(requirement, labels)) && fields.every((requirement) => fieldRequirementMatches(requirement, nodeName));
}

/** nodeSelector (every pair) and the required node affinity (any term). */
export function nodeMatchesPod(spec: PodSpec | undefined, node: Node): boolean {
  const name = node.metadata?.name ?? '';
  const labels = node.metadata?.labels ?? {};
  for (const [key, value] of Object.entries(spec?.nodeSelector ?? {})) if (labels[key] !== value) return false;
  const required = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (required !== undefined && !(required.nodeSelectorTerms ?? []).some((term) => nodeSelectorTermMatches(term, name, labels))) return false;
  return true;
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
