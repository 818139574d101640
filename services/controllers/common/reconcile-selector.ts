// Label selectors for reconcile logic (pure): a LabelSelector
// (matchLabels AND matchExpressions with In, NotIn, Exists, DoesNotExist,
// evaluated by services/client/labels.ts, as the scheduler and the API
// server evaluate it) or a ReplicationController's plain equality map. An
// empty LabelSelector selects everything and a missing one nothing, as in
// Kubernetes.

import type { LabelSelector } from '../../../proto/gen/resources/v1/meta.js';
import { labelSelectorMatches, labelsOf } from '../../client/labels.js';

/** An object's metadata.labels, as the plans read them. */
export type Labels = Readonly<Record<string, string>> | undefined;

export function selectorMatches(selector: LabelSelector | undefined, labels: Labels): boolean {
  return labelSelectorMatches(selector, labelsOf(labels));
}

/** A ReplicationController's selector: every pair must match; an empty one selects nothing. */
export function equalitySelects(selector: Readonly<Record<string, string>> | undefined, labels: Labels): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels?.[key] === value);
}
