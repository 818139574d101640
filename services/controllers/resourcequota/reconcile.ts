// The resource quota controller's decision, in pure functions: the status
// a quota should show — status.hard = spec.hard, status.used = the sum over
// what exists of every name it limits, each object's usage counted exactly
// as the API server charges it (both use services/client/quota.ts). The
// controller writes it when it differs, which corrects whatever drift the
// in-transaction charging left (quotas created before the objects were
// counted, a status written by hand, older data). Finished pods count only
// in count/pods.

import type { KindInfo } from '../../client/kinds.js';
import { quantityValue } from '../../client/quantity.js';
import { contributes, formatQuantity, usageOf, type Usage } from '../../client/quota.js';

/** What the controller reads of an object. */
export interface QuotaObject {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string };
  readonly spec?: unknown;
  readonly status?: unknown;
}

export interface QuotaStatus {
  readonly hard: Record<string, string>;
  readonly used: Record<string, string>;
}

/** Amounts closer than this are equal (cpu in cores sums 0.1 + 0.2 as floating point). */
const TOLERANCE = 1e-9;

type Record_ = Readonly<Record<string, unknown>>;

function isRecord(value: unknown): value is Record_ {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** spec.hard as given (the strings), leaving out what is not a quantity. */
export function hardOf(quota: QuotaObject): Record<string, string> {
  const hard: Record<string, string> = {};
  const spec = quota.spec;
  if (!isRecord(spec) || !isRecord(spec.hard)) return hard;
  for (const [name, value] of Object.entries(spec.hard)) if (typeof value === 'string' && quantityValue(value) !== undefined) hard[name] = value;
  return hard;
}

/** Every name the quota limits, summed over `content` (kind → the namespace's objects of it). */
export function computeUsed(hardNames: Iterable<string>, content: ReadonlyMap<KindInfo, readonly QuotaObject[]>): Usage {
  const used: Usage = new Map([...hardNames].map((name) => [name, 0]));
  for (const [info, objects] of content) {
    if (!contributes(info, used.keys())) continue;
    for (const object of objects) {
      for (const [name, amount] of usageOf(info, object)) if (used.has(name)) used.set(name, used.get(name)! + amount);
    }
  }
  return used;
}

function amountsEqual(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const left = quantityValue(a[key]);
    const right = quantityValue(b[key]);
    if (left === undefined || right === undefined || Math.abs(left - right) > TOLERANCE) return false;
  }
  return true;
}

/**
 * The status the quota should have, or undefined when it already has it
 * (amounts compared as quantities, so "1000m" and "1" are the same).
 */
export function planQuotaStatus(quota: QuotaObject, content: ReadonlyMap<KindInfo, readonly QuotaObject[]>): QuotaStatus | undefined {
  const hard = hardOf(quota);
  const used: Record<string, string> = {};
  for (const [name, amount] of [...computeUsed(Object.keys(hard), content)].sort(([a], [b]) => a.localeCompare(b))) used[name] = formatQuantity(name, amount);
  const status = isRecord(quota.status) ? quota.status : {};
  const currentHard = isRecord(status.hard) ? status.hard : {};
  const currentUsed = isRecord(status.used) ? status.used : {};
  if (amountsEqual(currentHard, hard) && amountsEqual(currentUsed, used)) return undefined;
  return { hard, used };
}
