// Label selectors for reconcile logic (pure): a LabelSelector
// (matchLabels AND matchExpressions with In, NotIn, Exists, DoesNotExist) or
// a ReplicationController's plain equality map. An empty LabelSelector
// selects everything and a missing one nothing, as in Kubernetes.

import type { LabelSelector } from '../../../proto/gen/resources/v1/meta.js';

export type Labels = Readonly<Record<string, string>> | undefined;

export function selectorMatches(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (selector === undefined) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels?.[key] !== value) return false;
  for (const requirement of selector.matchExpressions ?? []) {
    const key = requirement.key ?? '';
    const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, key);
    const values = requirement.values ?? [];
    switch (requirement.operator) {
      case 'In':
        if (!has || !values.includes(labels[key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** A ReplicationController's selector: every pair must match; an empty one selects nothing. */
export function equalitySelects(selector: Readonly<Record<string, string>> | undefined, labels: Labels): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels?.[key] === value);
}
