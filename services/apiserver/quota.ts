// ResourceQuota: what objects use, and whether a namespace's quotas allow
// more. Pure: the registry reads the quotas and writes their status.used in
// the same transaction as the object, so two creates racing for the last
// unit of a quota cannot both win.
//
// Tracked, as Kubernetes names them: pods, cpu / requests.cpu, memory /
// requests.memory, limits.cpu, limits.memory (a pod's containers summed,
// init containers as their maximum, as Kubernetes does), the bare counts
// services, configmaps, secrets, persistentvolumeclaims,
// replicationcontrollers, resourcequotas, and count/<resource>[.<group>]
// for every namespaced kind. A pod counts until it is removed, but one that
// finished (Succeeded or Failed) only in count/pods, as Kubernetes' pod
// evaluator has it: the registry charges that change with the pod's update.

import type { KindInfo } from '../client/kinds.js';
import { isJsonObject, quantityValue, type Json } from './schema.js';

const BARE_COUNTS = new Set(['pods', 'services', 'configmaps', 'secrets', 'persistentvolumeclaims', 'replicationcontrollers', 'resourcequotas']);

export type Usage = Map<string, number>;

/** count/<resource> for the core group, count/<resource>.<group> otherwise (Kubernetes' object count names). */
export function countName(info: KindInfo): string {
  const group = info.apiVersion.includes('/') ? info.apiVersion.split('/')[0]! : '';
  return group === '' ? `count/${info.resource}` : `count/${info.resource}.${group}`;
}

function containerTotals(containers: Json | undefined, field: 'requests' | 'limits', resource: 'cpu' | 'memory', combine: (a: number, b: number) => number): number {
  if (!Array.isArray(containers)) return 0;
  let total = 0;
  for (const container of containers) {
    if (!isJsonObject(container) || !isJsonObject(container.resources)) continue;
    const amounts = container.resources[field];
    if (!isJsonObject(amounts)) continue;
    total = combine(total, quantityValue(amounts[resource]) ?? 0);
  }
  return total;
}

/** What one object of `info` uses. */
export function usageOf(info: KindInfo, object: Record<string, Json>): Usage {
  const usage: Usage = new Map([[countName(info), 1]]);
  if (BARE_COUNTS.has(info.resource)) usage.set(info.resource, 1);
  if (info.kind !== 'Pod') return usage;
  const phase = isJsonObject(object.status) ? object.status.phase : undefined;
  if (phase === 'Succeeded' || phase === 'Failed') return new Map([[countName(info), 1]]);
  if (!isJsonObject(object.spec)) return usage;
  const spec = object.spec;
  for (const field of ['requests', 'limits'] as const) {
    for (const resource of ['cpu', 'memory'] as const) {
      const total = Math.max(containerTotals(spec.containers, field, resource, (a, b) => a + b), containerTotals(spec.initContainers, field, resource, Math.max));
      usage.set(`${field}.${resource}`, total);
      if (field === 'requests') usage.set(resource, total);
    }
  }
  return usage;
}

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

/** cpu as millicores when fractional, memory and counts as integers: how Kubernetes prints quantities. */
export function formatQuantity(name: string, amount: number): string {
  const isCpu = name === 'cpu' || name.endsWith('.cpu');
  if (isCpu && !Number.isInteger(amount)) return `${Math.round(amount * 1000)}m`;
  return String(Math.round(amount));
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
