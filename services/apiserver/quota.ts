// ResourceQuota: whether a namespace's quotas allow more. Pure: the registry
// reads the quotas and writes their status.used in the same transaction as
// the object, so two creates racing for the last unit of a quota cannot
// both win. What an object uses (and how amounts print) is
// services/client/quota.ts's, shared with the resource quota controller's
// recount; the registry charges a pod's phase change with its update.

import { formatQuantity, type Usage } from '../client/quota.js';
import { quantityValue } from '../client/quantity.js';
import { isJsonObject, type Json } from './schema.js';

export { countName, usageOf, type Usage } from '../client/quota.js';

/** A quota's hard limits in base units (unparseable entries are left out; validation refuses them). */
export function hardLimits(quota: Record<string, Json>): Usage {
  const hard: Usage = new Map();
  const spec = quota.spec;
  if (!isJsonObject(spec) || !isJsonObject(spec.hard)) return hard;
  for (const [name, value] of Object.entries(spec.hard)) {
    const amount = quantityValue(value);
    if (amount !== undefined) hard.set(name, amount);
  }
  return hard;
}

/** What a quota's status says is used, in base units. */
export function usedOf(quota: Record<string, Json>): Usage {
  const used: Usage = new Map();
  const status = quota.status;
  if (!isJsonObject(status) || !isJsonObject(status.used)) return used;
  for (const [name, value] of Object.entries(status.used)) used.set(name, quantityValue(value) ?? 0);
  return used;
}

/** Whether `usage` touches anything the quota limits. */
export function constrains(hard: Usage, usage: Usage): boolean {
  for (const name of usage.keys()) if (hard.has(name)) return true;
  return false;
}

/**
 * The quota's used amounts after adding `delta` (negative to release),
 * limited to what it constrains, and the names it would exceed.
 */
export function applyUsage(hard: Usage, used: Usage, delta: Usage, sign: 1 | -1): { used: Usage; exceeded: string[] } {
  const next: Usage = new Map();
  const exceeded: string[] = [];
  for (const [name, limit] of hard) {
    const amount = Math.max(0, (used.get(name) ?? 0) + sign * (delta.get(name) ?? 0));
    next.set(name, amount);
    // A tiny tolerance: cpu in cores sums 0.1 + 0.2 as floating point.
    if (sign > 0 && (delta.get(name) ?? 0) > 0 && amount > limit + 1e-9) exceeded.push(name);
  }
  return { used: next, exceeded };
}

/** Kubernetes' words: "exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2". */
export function exceededMessage(quotaName: string, names: readonly string[], requested: Usage, used: Usage, hard: Usage): string {
  const list = (amounts: Usage): string => names.map((name) => `${name}=${formatQuantity(name, amounts.get(name) ?? 0)}`).join(',');
  return `exceeded quota: ${quotaName}, requested: ${list(requested)}, used: ${list(used)}, limited: ${list(hard)}`;
}

/** status.used as stored: every constrained name, formatted. */
export function usedJson(used: Usage): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [name, amount] of [...used].sort(([a], [b]) => a.localeCompare(b))) out[name] = formatQuantity(name, amount);
  return out;
}
