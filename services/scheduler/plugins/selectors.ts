// The matching rules the plugins share, as Kubernetes defines them: label
// selectors (matchLabels + matchExpressions In/NotIn/Exists/DoesNotExist),
// node selector terms (matchExpressions with Gt/Lt too, matchFields on
// metadata.name), and toleration of a taint. Labels are Maps here, built
// once per object, so a label named "constructor" is just a label.

import type * as core from '../../../proto/gen/resources/v1/core.js';
import type * as meta from '../../../proto/gen/resources/v1/meta.js';

export type Labels = ReadonlyMap<string, string>;

export const EMPTY_LABELS: Labels = new Map();

/** An object's labels as a Map (undefined or empty: the shared empty Map). */
export function labelsOf(labels: { readonly [key: string]: string } | undefined): Labels {
  if (labels === undefined) return EMPTY_LABELS;
  const entries = Object.entries(labels);
  return entries.length === 0 ? EMPTY_LABELS : new Map(entries);
}

function requirementMatches(operator: string | undefined, key: string, values: readonly string[], labels: Labels): boolean {
  const value = labels.get(key);
  switch (operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    default:
      return false;
  }
}

/** A label selector compiled once: matchLabels as pairs, then the expressions. */
export type LabelMatcher = (labels: Labels) => boolean;

const NOTHING: LabelMatcher = () => false;

/**
 * A label selector as a function of the labels. An empty selector ({})
 * selects everything; an absent one selects nothing (as in pod affinity
 * terms, where Kubernetes reads a nil selector as labels.Nothing()).
 */
export function labelMatcher(selector: meta.LabelSelector | undefined): LabelMatcher {
  if (selector === undefined) return NOTHING;
  const pairs = Object.entries(selector.matchLabels ?? {});
  const requirements = (selector.matchExpressions ?? []).map((requirement) => ({ operator: requirement.operator, key: requirement.key ?? '', values: requirement.values ?? [] }));
  return (labels) => {
    for (const [key, value] of pairs) if (labels.get(key) !== value) return false;
    for (const { operator, key, values } of requirements) if (!requirementMatches(operator, key, values, labels)) return false;
    return true;
  };
}

export function labelSelectorMatches(selector: meta.LabelSelector | undefined, labels: Labels): boolean {
  return labelMatcher(selector)(labels);
}

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
  return requirementMatches(requirement.operator, key, values, labels);
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

/** Kubernetes' Toleration.ToleratesTaint. */
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

export function tolerated(tolerations: readonly core.Toleration[], taint: core.Taint): boolean {
  return tolerations.some((toleration) => toleratesTaint(toleration, taint));
}
