// Whether a pod may run on a node, as far as the node's labels, name and
// taints decide it, as Kubernetes defines it: node selector terms
// (matchExpressions with Gt and Lt besides the label selector operators,
// matchFields on metadata.name), a pod's nodeSelector and required node
// affinity, and toleration of a taint. The scheduler's plugins, the
// DaemonSet controller (which nodes want a daemon pod) and taint-based
// eviction share them. Pure: no clocks, no I/O (inside the lint's
// determinism boundary, as its users are).

import type * as core from '../../proto/gen/resources/v1/core.js';
import { labelRequirementMatches, type Labels } from './labels.js';

/** Gt and Lt compare integers: exactly one value, and a label that parses too. */
function compareIntegers(operator: 'Gt' | 'Lt', labelValue: string | undefined, values: readonly string[]): boolean {
  const integer = /^[+-]?\d+$/;
  const bound = values.length === 1 ? values[0] : undefined;
  if (labelValue === undefined || bound === undefined || !integer.test(labelValue) || !integer.test(bound)) return false;
  return operator === 'Gt' ? Number(labelValue) > Number(bound) : Number(labelValue) < Number(bound);
}

function nodeRequirementMatches(requirement: core.NodeSelectorRequirement, labels: Labels): boolean {
  const key = requirement.key ?? '';
  const values = requirement.values ?? [];
  if (requirement.operator === 'Gt' || requirement.operator === 'Lt') return compareIntegers(requirement.operator, labels.get(key), values);
  return labelRequirementMatches(requirement.operator, values, labels.get(key));
}

/** matchFields: only metadata.name, with In or NotIn. */
function fieldRequirementMatches(requirement: core.NodeSelectorRequirement, nodeName: string): boolean {
  if (requirement.key !== 'metadata.name') return false;
  const values = requirement.values ?? [];
  if (requirement.operator === 'In') return values.includes(nodeName);
  if (requirement.operator === 'NotIn') return !values.includes(nodeName);
  return false;
}

/** One node selector term: every expression and field requirement holds; an empty term matches nothing. */
export function nodeSelectorTermMatches(term: core.NodeSelectorTerm | undefined, nodeName: string, labels: Labels): boolean {
  const expressions = term?.matchExpressions ?? [];
  const fields = term?.matchFields ?? [];
  if (expressions.length === 0 && fields.length === 0) return false;
  return expressions.every((requirement) => nodeRequirementMatches(requirement, labels)) && fields.every((requirement) => fieldRequirementMatches(requirement, nodeName));
}

/** Whether a node (its name and labels) suits a pod. */
export type NodeMatcher = (nodeName: string, labels: Labels) => boolean;

/**
 * A pod's spec.nodeSelector (every label equal) and required node affinity
 * (any term, every requirement in it), compiled once per pod; undefined
 * when the pod has neither, so every node suits it.
 */
export function nodeAffinityMatcher(spec: core.PodSpec | undefined): NodeMatcher | undefined {
  const selector = Object.entries(spec?.nodeSelector ?? {});
  const required: core.NodeSelector | undefined = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (selector.length === 0 && required === undefined) return undefined;
  const terms = required?.nodeSelectorTerms ?? [];
  return (nodeName, labels) => {
    for (const [key, value] of selector) if (labels.get(key) !== value) return false;
    return required === undefined || terms.some((term) => nodeSelectorTermMatches(term, nodeName, labels));
  };
}

/** Kubernetes' Toleration.ToleratesTaint: an empty effect or key matches all; Exists ignores the value. */
export function toleratesTaint(toleration: core.Toleration, taint: core.Taint): boolean {
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

/** Whether any of the tolerations tolerates the taint. */
export function tolerated(tolerations: readonly core.Toleration[], taint: core.Taint): boolean {
  return tolerations.some((toleration) => toleratesTaint(toleration, taint));
}
