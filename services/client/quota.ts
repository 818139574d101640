// ResourceQuota usage: what one object uses of the names a quota can limit,
// the same for the API server (which charges it in the transaction that
// writes the object, services/apiserver/quota.ts) and the resource quota
// controller (which recounts it, services/controllers/resourcequota/).
// Pure: no clocks, no I/O.
//
// Tracked, as Kubernetes names them: pods, cpu / requests.cpu, memory /
// requests.memory, limits.cpu, limits.memory (a pod's containers summed,
// init containers as their maximum, as Kubernetes does), the bare counts
// services, configmaps, secrets, persistentvolumeclaims,
// replicationcontrollers, resourcequotas, and count/<resource>[.<group>]
// for every namespaced kind. A pod counts until it is removed, but one that
// finished (Succeeded or Failed) only in count/pods, as Kubernetes' pod
// evaluator has it. Amounts are floats in base units (cpu in cores).

import type { KindInfo } from './kinds.js';
import { quantityValue } from './quantity.js';

export type Usage = Map<string, number>;

const BARE_COUNTS: ReadonlySet<string> = new Set(['pods', 'services', 'configmaps', 'secrets', 'persistentvolumeclaims', 'replicationcontrollers', 'resourcequotas']);
/** The names a pod's usage can touch besides its count/pods. */
const POD_RESOURCES: ReadonlySet<string> = new Set(['pods', 'cpu', 'memory', 'requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory']);

/** What usage is read from: an object's spec and status, as decoded JSON (a typed object, or the API server's plain JSON). */
export type QuotaCharged = { readonly spec?: unknown; readonly status?: unknown } | Readonly<Record<string, unknown>>;

function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** count/<resource> for the core group, count/<resource>.<group> otherwise (Kubernetes' object count names). */
export function countName(info: KindInfo): string {
  const group = info.apiVersion.includes('/') ? info.apiVersion.split('/')[0]! : '';
  return group === '' ? `count/${info.resource}` : `count/${info.resource}.${group}`;
}

function containerTotal(containers: unknown, field: 'requests' | 'limits', resource: 'cpu' | 'memory', combine: (a: number, b: number) => number): number {
  if (!Array.isArray(containers)) return 0;
  let total = 0;
  for (const container of containers) {
    if (!isRecord(container) || !isRecord(container.resources)) continue;
    const amounts = container.resources[field];
    if (!isRecord(amounts)) continue;
    total = combine(total, quantityValue(amounts[resource]) ?? 0);
  }
  return total;
}

/** What one object of `info` uses. */
export function usageOf(info: KindInfo, object: QuotaCharged): Usage {
  const usage: Usage = new Map([[countName(info), 1]]);
  if (BARE_COUNTS.has(info.resource)) usage.set(info.resource, 1);
  if (info.kind !== 'Pod') return usage;
  const phase = isRecord(object.status) ? object.status.phase : undefined;
  if (phase === 'Succeeded' || phase === 'Failed') return new Map([[countName(info), 1]]);
  if (!isRecord(object.spec)) return usage;
  const spec = object.spec;
  for (const field of ['requests', 'limits'] as const) {
    for (const resource of ['cpu', 'memory'] as const) {
      const total = Math.max(containerTotal(spec.containers, field, resource, (a, b) => a + b), containerTotal(spec.initContainers, field, resource, Math.max));
      usage.set(`${field}.${resource}`, total);
      if (field === 'requests') usage.set(resource, total);
    }
  }
  return usage;
}

/** Whether objects of `info` can use any of these names (the kinds a recount must look at). */
export function contributes(info: KindInfo, names: Iterable<string>): boolean {
  for (const name of names) {
    if (name === countName(info) || (name === info.resource && BARE_COUNTS.has(name)) || (info.kind === 'Pod' && POD_RESOURCES.has(name))) return true;
  }
  return false;
}

/** cpu as millicores when fractional, memory and counts as integers: how Kubernetes prints quantities. */
export function formatQuantity(name: string, amount: number): string {
  const isCpu = name === 'cpu' || name.endsWith('.cpu');
  if (isCpu && !Number.isInteger(amount)) return `${Math.round(amount * 1000)}m`;
  return String(Math.round(amount));
}
