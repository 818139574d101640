// Label selectors, as Kubernetes defines them, for everyone who evaluates
// one: the scheduler's plugins, the controllers' plans and the API server's
// list filters. A LabelSelector is matchLabels AND matchExpressions (In,
// NotIn, Exists, DoesNotExist); an empty selector ({}) selects everything
// and an absent one nothing. Labels are Maps here, built once per object,
// so a label named "constructor" is just a label. Pure: no clocks, no I/O
// (the scheduler plugins and reconcile logic, inside the lint's determinism
// boundary, use it; so is this file).

import type * as meta from '../../proto/gen/resources/v1/meta.js';

export type Labels = ReadonlyMap<string, string>;

export const EMPTY_LABELS: Labels = new Map();

/** An object's labels as a Map (undefined or empty: the shared empty Map). */
export function labelsOf(labels: { readonly [key: string]: string } | undefined): Labels {
  if (labels === undefined) return EMPTY_LABELS;
  const entries = Object.entries(labels);
  return entries.length === 0 ? EMPTY_LABELS : new Map(entries);
}

/**
 * One requirement of a selector against the value of its key's label
 * (undefined when the object has no such label): In, NotIn, Exists,
 * DoesNotExist; any other operator matches nothing.
 */
export function labelRequirementMatches(operator: string | undefined, values: readonly string[], value: string | undefined): boolean {
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
 * terms, where Kubernetes reads a nil selector as labels.Nothing(), and as
 * the controllers read a workload without a selector).
 */
export function labelMatcher(selector: meta.LabelSelector | undefined): LabelMatcher {
  if (selector === undefined) return NOTHING;
  const pairs = Object.entries(selector.matchLabels ?? {});
  const requirements = (selector.matchExpressions ?? []).map((requirement) => ({ operator: requirement.operator, key: requirement.key ?? '', values: requirement.values ?? [] }));
  return (labels) => {
    for (const [key, value] of pairs) if (labels.get(key) !== value) return false;
    for (const { operator, key, values } of requirements) if (!labelRequirementMatches(operator, values, labels.get(key))) return false;
    return true;
  };
}

export function labelSelectorMatches(selector: meta.LabelSelector | undefined, labels: Labels): boolean {
  return labelMatcher(selector)(labels);
}
