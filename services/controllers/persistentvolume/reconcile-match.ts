// Which PersistentVolume a claim may bind to, as Kubernetes' PV controller
// decides it (checkVolumeSatisfyClaim, findMatchingVolume), pure: the
// volume's capacity covers the claim's requests.storage, its storage class
// is the claim's ("" matches ""), its volumeMode is the claim's (Filesystem
// when unset), its accessModes include every one the claim asks for, and it
// is not being deleted. A volume pre-bound to the claim (its claimRef names
// the claim) is taken first whatever its phase and labels; otherwise only
// Available volumes without a claimRef whose labels the claim's selector
// picks are candidates, and the smallest one wins (ties: the name first),
// so big volumes stay free for big claims.

import type { PersistentVolume, PersistentVolumeClaim } from '../../../proto/gen/resources/v1/core.js';
import { parseQuantity } from '../../client/quantity.js';
import { selectorMatches } from '../common/reconcile-selector.js';

export const DEFAULT_VOLUME_MODE = 'Filesystem';
const STORAGE = 'storage';

/** A claim's storage request in bytes (0 without one). */
export function requestedBytes(claim: PersistentVolumeClaim): number {
  return parseQuantity(claim.spec?.resources?.requests?.[STORAGE]) ?? 0;
}

/** A volume's storage capacity in bytes (0 without one). */
export function capacityBytes(volume: PersistentVolume): number {
  return parseQuantity(volume.spec?.capacity?.[STORAGE]) ?? 0;
}

/** Kubernetes' IsVolumeBoundToClaim: the claimRef names the claim, and its uid (when set) is the claim's. */
export function isVolumeBoundToClaim(volume: PersistentVolume, claim: PersistentVolumeClaim): boolean {
  const ref = volume.spec?.claimRef;
  if (ref === undefined || (ref.name ?? '') !== (claim.metadata?.name ?? '') || (ref.namespace ?? '') !== (claim.metadata?.namespace ?? '')) return false;
  return (ref.uid ?? '') === '' || ref.uid === claim.metadata?.uid;
}

/** Why the volume cannot hold the claim (Kubernetes' messages), or undefined when it can. Labels and phase are not looked at. */
export function volumeMismatch(volume: PersistentVolume, claim: PersistentVolumeClaim): string | undefined {
  if (volume.metadata?.deletionTimestamp !== undefined) return `the volume is marked for deletion "${volume.metadata.name ?? ''}"`;
  if (capacityBytes(volume) < requestedBytes(claim)) return 'requested PV is too small';
  if ((volume.spec?.storageClassName ?? '') !== (claim.spec?.storageClassName ?? '')) return 'storageClassName does not match';
  if ((volume.spec?.volumeMode || DEFAULT_VOLUME_MODE) !== (claim.spec?.volumeMode || DEFAULT_VOLUME_MODE)) return 'incompatible volumeMode';
  const offered = new Set(volume.spec?.accessModes ?? []);
  if (!(claim.spec?.accessModes ?? []).every((mode) => offered.has(mode))) return 'incompatible accessMode';
  return undefined;
}

/** Whether an unclaimed volume is open to any claim: Available and without a claimRef. */
function isFree(volume: PersistentVolume): boolean {
  return volume.status?.phase === 'Available' && (volume.spec?.claimRef?.name ?? '') === '';
}

/** The volume the claim should bind to, or undefined when none fits. */
export function findBestMatch(claim: PersistentVolumeClaim, volumes: readonly PersistentVolume[]): PersistentVolume | undefined {
  const selector = claim.spec?.selector;
  let best: PersistentVolume | undefined;
  let bestBytes = 0;
  for (const volume of volumes) {
    if (volumeMismatch(volume, claim) !== undefined) continue;
    if (isVolumeBoundToClaim(volume, claim)) return volume;
    if (!isFree(volume) || (selector !== undefined && !selectorMatches(selector, volume.metadata?.labels))) continue;
    const bytes = capacityBytes(volume);
    if (best === undefined || bytes < bestBytes || (bytes === bestBytes && (volume.metadata?.name ?? '') < (best.metadata?.name ?? ''))) {
      best = volume;
      bestBytes = bytes;
    }
  }
  return best;
}
