// The resource quota controller's decision, in pure functions: what a
// namespace's objects use, counted exactly as the API server charges them
// (services/apiserver/quota.ts, which controllers may not import: a test
// holds the two to the same answers), and the status a quota should show —
// status.hard = spec.hard, status.used = the sum over what exists of every
// name it limits. The controller writes it when it differs, which corrects
// whatever drift the in-transaction charging left (quotas created before
// the objects were counted, a status written by hand, older data).
//
// Tracked, as Kubernetes names them: pods, cpu / requests.cpu, memory /
// requests.memory, limits.cpu, limits.memory (containers summed, init
// containers as their maximum) for pods that have not finished; the bare
// counts services, configmaps, secrets, persistentvolumeclaims,
// replicationcontrollers, resourcequotas; count/<resource>[.<group>] for
// every namespaced kind (finished pods included).

import type { KindInfo } from '../../client/kinds.js';

export type Usage = Map<string, number>;

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

const BARE_COUNTS = new Set(['pods', 'services', 'configmaps', 'secrets', 'persistentvolumeclaims', 'replicationcontrollers', 'resourcequotas']);
const POD_RESOURCES = new Set(['pods', 'cpu', 'memory', 'requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory']);
/** Amounts closer than this are equal (cpu in cores sums 0.1 + 0.2 as floating point). */
const TOLERANCE = 1e-9;

const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const SUFFIX_SCALE: Readonly<Record<string, number>> = { n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

type Record_ = Readonly<Record<string, unknown>>;

function isRecord(value: unknown): value is Record_ {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A quantity in base units (cpu in cores, memory in bytes); undefined when it is not one. */
export function quantityValue(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const match = QUANTITY.exec(text);
  if (match === null) return undefined;
  const suffix = match[2] ?? '';
  const factor = suffix === '' ? 1 : /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX_SCALE[suffix]!;
  return Number(match[1]) * factor;
}

/** cpu as millicores when fractional, the rest as integers (the API server's formatting). */
export function formatQuantity(name: string, amount: number): string {
  const isCpu = name === 'cpu' || name.endsWith('.cpu');
  if (isCpu && !Number.isInteger(amount)) return `${Math.round(amount * 1000)}m`;
  return String(Math.round(amount));
}

/** count/<resource> for the core group, count/<resource>.<group> otherwise. */
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
export function usageOf(info: KindInfo, object: QuotaObject): Usage {
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

/** spec.hard as given (the strings), leaving out what is not a quantity. */
export function hardOf(quota: QuotaObject): Record<string, string> {
  const hard: Record<string, string> = {};
  const spec = quota.spec;
  if (!isRecord(spec) || !isRecord(spec.hard)) return hard;
  for (const [name, value] of Object.entries(spec.hard)) if (typeof value === 'string' && quantityValue(value) !== undefined) hard[name] = value;
  return hard;
}

/** Whether objects of `info` can use any of these names (the kinds a sync must look at). */
export function contributes(info: KindInfo, names: Iterable<string>): boolean {
  for (const name of names) {
    if (name === countName(info) || (name === info.resource && BARE_COUNTS.has(name)) || (info.kind === 'Pod' && POD_RESOURCES.has(name))) return true;
  }
  return false;
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
