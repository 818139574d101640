// What the DaemonSet and StatefulSet plans share (pure): the hash that
// names a pod template's revision, and int-or-percent limits (pod
// readiness and availability are ../common/reconcile-pod.ts's). No
// ControllerRevision objects are kept: a revision is the hash of the
// template itself.

import type { PodTemplateSpec } from '../../../proto/gen/resources/v1/core.js';
import type { IntOrString } from '../../../proto/gen/resources/v1/meta.js';
import { canonicalJson } from '../common/reconcile-json.js';

/** The label naming a pod's revision (a hash for DaemonSets, "<set>-<hash>" for StatefulSets). */
export const REVISION_LABEL = 'controller-revision-hash';

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
