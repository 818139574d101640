// What the DaemonSet and StatefulSet plans share (pure): the hash that
// names a pod template's revision, pod readiness and availability as
// Kubernetes' podutil defines them, and int-or-percent limits. No
// ControllerRevision objects are kept: a revision is the hash of the
// template itself.

import type { Pod, PodTemplateSpec } from '../../../proto/gen/resources/v1/core.js';
import type { IntOrString, OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { parseTimestampMs } from '../common/reconcile-time.js';

/** The label naming a pod's revision (a hash for DaemonSets, "<set>-<hash>" for StatefulSets). */
export const REVISION_LABEL = 'controller-revision-hash';

/** JSON with object keys sorted, so equal templates hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** FNV-1a, 32 bits, over the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  const mix = (byte: number): void => {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  };
  for (const character of text) {
    const code = character.codePointAt(0) ?? 0;
    if (code < 0x80) mix(code);
    else if (code < 0x800) [0xc0 | (code >> 6), 0x80 | (code & 0x3f)].forEach(mix);
    else if (code < 0x10000) [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].forEach(mix);
    else [0xf0 | (code >> 18), 0x80 | ((code >> 12) & 0x3f), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].forEach(mix);
  }
  return hash >>> 0;
}

/** Kubernetes' rand.SafeEncodeString alphabet: no vowels, no look-alikes, so a hash never spells a word. */
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** The template's revision hash, as Kubernetes' controller.ComputeHash spells it: SafeEncodeString of the decimal FNV-32a. */
export function templateHash(template: PodTemplateSpec | undefined): string {
  const decimal = String(fnv1a32(canonicalJson(template ?? {})));
  let encoded = '';
  for (const digit of decimal) encoded += SAFE_ALPHABET[digit.charCodeAt(0) % SAFE_ALPHABET.length]!;
  return encoded;
}

export function controllerOf(pod: Pod): OwnerReference | undefined {
  return (pod.metadata?.ownerReferences ?? []).find((reference) => reference.controller === true);
}

export function isTerminating(pod: Pod): boolean {
  return pod.metadata?.deletionTimestamp !== undefined;
}

/** When the Ready condition became True; undefined when the pod is not ready (podutil.IsPodReady). */
export function readySinceMs(pod: Pod): number | undefined {
  const ready = (pod.status?.conditions ?? []).find((condition) => condition.type === 'Ready' && condition.status === 'True');
  if (ready === undefined) return undefined;
  return parseTimestampMs(ready.lastTransitionTime) ?? 0;
}

export function isReady(pod: Pod): boolean {
  return readySinceMs(pod) !== undefined;
}

/** podutil.IsPodAvailable: ready for at least minReadySeconds. */
export function isAvailable(pod: Pod, minReadySeconds: number, nowMs: number): boolean {
  const since = readySinceMs(pod);
  return since !== undefined && (minReadySeconds <= 0 || since + minReadySeconds * 1000 <= nowMs);
}

/** How long until a ready pod becomes available (undefined: not ready, or available already). */
export function untilAvailableMs(pod: Pod, minReadySeconds: number, nowMs: number): number | undefined {
  const since = readySinceMs(pod);
  if (since === undefined || minReadySeconds <= 0) return undefined;
  const remainingMs = since + minReadySeconds * 1000 - nowMs;
  return remainingMs > 0 ? remainingMs : undefined;
}

/**
 * intstr.GetScaledValueFromIntOrPercent: a count, or "N%" of `total`
 * (rounded up or down); undefined for anything else, so the caller keeps
 * its default.
 */
export function scaledValue(value: IntOrString | undefined, total: number, roundUp: boolean): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const match = /^(\d+)%$/.exec(value ?? '');
  if (match === null) return undefined;
  const scaled = (Number(match[1]) * total) / 100;
  return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
}

/** The earliest of the delays given (undefined when there are none). */
export function soonestMs(delays: Iterable<number | undefined>): number | undefined {
  let soonest: number | undefined;
  for (const delay of delays) if (delay !== undefined && (soonest === undefined || delay < soonest)) soonest = delay;
  return soonest;
}
