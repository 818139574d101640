// The PersistentVolume binder's decisions (Kubernetes' PV controller,
// static provisioning), as pure functions: what to write for one claim
// (planClaim) and for one volume (planVolume). The controller applies the
// writes in their order, each on the version the previous one left.
//
// Binding is four writes, in Kubernetes' order: the volume's claimRef, the
// volume's phase Bound, the claim's spec.volumeName (with the
// bind-completed annotation), the claim's status Bound with the volume's
// accessModes and capacity. Each is planned only when it differs, so a
// controller that died between two of them finishes the rest on its next
// pass (the claimRef, once written, makes the volume the claim's pre-bound
// match). The annotations are Kubernetes': bind-completed says the claim
// was bound (so a missing volume then means Lost, not Pending), and
// bound-by-controller says the controller, not the user, made a link (so
// undoing it forgets it, where a user's pre-binding is kept).
//
// A volume whose claim is gone is Released and reclaimed by its policy:
// Retain (the default) keeps it; Delete deletes the PersistentVolume
// object only — the directory behind a local or hostPath volume belongs to
// its node, which mast does not reach from here, so it stays for the
// node's administrator; Recycle, deprecated in Kubernetes, is kept as
// Retain with a message saying so. There is no StorageClass kind, so there
// is no dynamic provisioning and no WaitForFirstConsumer: every claim binds
// as soon as a volume fits (Kubernetes' Immediate binding mode).

import type { ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus } from '../../../proto/gen/resources/v1/core.js';
import type { ObjectMeta } from '../../../proto/gen/resources/v1/meta.js';
import { sameJson } from '../common/reconcile-json.js';
import { findBestMatch, isVolumeBoundToClaim, volumeMismatch } from './reconcile-match.js';

/** On a claim and a volume: the binding was completed (claims), the controller made the link (both). Kubernetes' names. */
export const ANNOTATION_BIND_COMPLETED = 'pv.kubernetes.io/bind-completed';
export const ANNOTATION_BOUND_BY_CONTROLLER = 'pv.kubernetes.io/bound-by-controller';

export const MESSAGE_NO_VOLUMES = 'no persistent volumes available for this claim and no storage class is set';
export const MESSAGE_RECYCLE_RETAINED = 'the Recycle reclaim policy is deprecated in Kubernetes and mast does not recycle: the volume is retained (remove spec.claimRef to make it Available again)';
export const MESSAGE_UNKNOWN_POLICY = 'Volume has unrecognized PersistentVolumeReclaimPolicy';

export type Write =
  | { readonly kind: 'PersistentVolume'; readonly verb: 'update' | 'updateStatus' | 'delete'; readonly object: PersistentVolume }
  | { readonly kind: 'PersistentVolumeClaim'; readonly verb: 'update' | 'updateStatus'; readonly object: PersistentVolumeClaim };

export interface PlanEvent {
  readonly object: PersistentVolume | PersistentVolumeClaim;
  readonly involvedKind: 'PersistentVolume' | 'PersistentVolumeClaim';
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface Plan {
  readonly writes: readonly Write[];
  /** Recorded once the writes succeeded. */
  readonly events: readonly PlanEvent[];
  /** Claims (namespace/name) whose own sync should run next. */
  readonly enqueueClaims: readonly string[];
}

const NOTHING: Plan = { writes: [], events: [], enqueueClaims: [] };

class Planner {
  readonly writes: Write[] = [];
  readonly events: PlanEvent[] = [];
  readonly enqueueClaims: string[] = [];

  constructor(private readonly now: string) {}

  plan(): Plan {
    return { writes: this.writes, events: this.events, enqueueClaims: this.enqueueClaims };
  }

  claimEvent(claim: PersistentVolumeClaim, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.push({ object: claim, involvedKind: 'PersistentVolumeClaim', type, reason, message });
  }

  volumeEvent(volume: PersistentVolume, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.push({ object: volume, involvedKind: 'PersistentVolume', type, reason, message });
  }

  /** The volume in `phase` (with `message`): a status write when that differs; the volume as it will be. */
  volumePhase(volume: PersistentVolume, phase: string, message = ''): PersistentVolume {
    const status = volume.status ?? {};
    if (status.phase === phase && (status.message ?? '') === message) return volume;
    const nextStatus: PersistentVolumeStatus = { ...status, phase, message };
    if (message === '') delete nextStatus.message;
    if (status.phase !== phase) nextStatus.lastPhaseTransitionTime = this.now;
    const next: PersistentVolume = { ...volume, status: nextStatus };
    this.writes.push({ kind: 'PersistentVolume', verb: 'updateStatus', object: next });
    return next;
  }

  /** The claim in `phase`, with the volume's access modes and capacity when bound to it (none otherwise); whether that is a change. */
  claimPhase(claim: PersistentVolumeClaim, phase: string, volume?: PersistentVolume): boolean {
    const status: PersistentVolumeClaimStatus = { ...claim.status, phase, accessModes: volume?.spec?.accessModes, capacity: volume?.spec?.capacity };
    if (status.accessModes === undefined) delete status.accessModes;
    if (status.capacity === undefined) delete status.capacity;
    if (sameJson(statusFields(claim.status), statusFields(status))) return false;
    this.writes.push({ kind: 'PersistentVolumeClaim', verb: 'updateStatus', object: { ...claim, status } });
    return true;
  }
}

const statusFields = (status: PersistentVolumeClaimStatus | undefined): unknown => ({ phase: status?.phase, accessModes: status?.accessModes, capacity: status?.capacity });

const volumeName = (volume: PersistentVolume): string => volume.metadata?.name ?? '';
const claimKey = (namespace: string | undefined, name: string | undefined): string => `${namespace ?? ''}/${name ?? ''}`;

export function hasAnnotation(object: { readonly metadata?: ObjectMeta | undefined }, key: string): boolean {
  return object.metadata?.annotations?.[key] !== undefined;
}

function annotated(metadata: ObjectMeta | undefined, set: readonly string[], remove: readonly string[] = []): ObjectMeta {
  const annotations: Record<string, string> = { ...metadata?.annotations };
  for (const key of set) annotations[key] = 'yes';
  for (const key of remove) delete annotations[key];
  return { ...metadata, annotations: Object.keys(annotations).length === 0 ? undefined : annotations };
}

/** What Kubernetes' GetReference makes of a claim. */
export function referenceTo(claim: PersistentVolumeClaim): ObjectReference {
  const meta = claim.metadata ?? {};
  return { kind: 'PersistentVolumeClaim', apiVersion: 'v1', namespace: meta.namespace ?? '', name: meta.name ?? '', uid: meta.uid ?? '', resourceVersion: meta.resourceVersion ?? '' };
}

/** Kubernetes' bind(): every step whose result is not already there, volume first. */
function bind(planner: Planner, volume: PersistentVolume, claim: PersistentVolumeClaim): void {
  let boundVolume = volume;
  const ref = volume.spec?.claimRef;
  if (ref === undefined || ref.name !== claim.metadata?.name || ref.namespace !== claim.metadata?.namespace || ref.uid !== claim.metadata?.uid) {
    // A volume the user pre-bound to this claim keeps that mark off; one the controller picks is marked.
    const metadata = isVolumeBoundToClaim(volume, claim) ? volume.metadata : annotated(volume.metadata, [ANNOTATION_BOUND_BY_CONTROLLER]);
    boundVolume = { ...volume, metadata, spec: { ...volume.spec, claimRef: referenceTo(claim) } };
    planner.writes.push({ kind: 'PersistentVolume', verb: 'update', object: boundVolume });
  }
  planner.volumePhase(boundVolume, 'Bound');
  let boundClaim = claim;
  const name = volumeName(volume);
  if (claim.spec?.volumeName !== name || !hasAnnotation(claim, ANNOTATION_BIND_COMPLETED)) {
    const marks = claim.spec?.volumeName === name ? [ANNOTATION_BIND_COMPLETED] : [ANNOTATION_BIND_COMPLETED, ANNOTATION_BOUND_BY_CONTROLLER];
    boundClaim = { ...claim, metadata: annotated(claim.metadata, marks), spec: { ...claim.spec, volumeName: name } };
    planner.writes.push({ kind: 'PersistentVolumeClaim', verb: 'update', object: boundClaim });
  }
  planner.claimPhase(boundClaim, 'Bound', volume);
}

/** A claim not yet bound: the best match, or the volume it names, if either fits; else it stays Pending and says why. */
function syncUnboundClaim(planner: Planner, claim: PersistentVolumeClaim, volumes: readonly PersistentVolume[]): void {
  const requested = claim.spec?.volumeName ?? '';
  if (requested === '') {
    const match = findBestMatch(claim, volumes);
    if (match !== undefined) return bind(planner, match, claim);
    planner.claimPhase(claim, 'Pending');
    const className = claim.spec?.storageClassName ?? '';
    const message = className === '' ? MESSAGE_NO_VOLUMES : `no persistent volumes of storage class "${className}" available for this claim (mast provisions none dynamically)`;
    planner.claimEvent(claim, 'Warning', 'FailedBinding', message);
    return;
  }
  const volume = volumes.find((candidate) => volumeName(candidate) === requested);
  if (volume === undefined) {
    planner.claimPhase(claim, 'Pending');
    planner.claimEvent(claim, 'Warning', 'FailedBinding', `volume "${requested}" requested by the claim not found`);
    return;
  }
  if ((volume.spec?.claimRef?.name ?? '') === '' || isVolumeBoundToClaim(volume, claim)) {
    const mismatch = volumeMismatch(volume, claim);
    if (mismatch === undefined) return bind(planner, volume, claim);
    planner.claimPhase(claim, 'Pending');
    planner.claimEvent(claim, 'Warning', 'VolumeMismatch', `Cannot bind to requested volume "${requested}": ${mismatch}`);
    return;
  }
  planner.claimPhase(claim, 'Pending');
  planner.claimEvent(claim, 'Warning', 'FailedBinding', `volume "${requested}" already bound to a different claim.`);
}

/** A claim that was bound: keep it so, or mark it Lost (once) when its volume is gone or belongs to another claim. */
function syncBoundClaim(planner: Planner, claim: PersistentVolumeClaim, volumes: readonly PersistentVolume[]): void {
  const lost = (reason: string, message: string): void => {
    if (planner.claimPhase(claim, 'Lost')) planner.claimEvent(claim, 'Warning', reason, message);
  };
  const name = claim.spec?.volumeName ?? '';
  if (name === '') return lost('ClaimLost', 'Bound claim has lost reference to PersistentVolume. Data on the volume is lost!');
  const volume = volumes.find((candidate) => volumeName(candidate) === name);
  if (volume === undefined) return lost('ClaimLost', 'Bound claim has lost its PersistentVolume. Data on the volume is lost!');
  const ref = volume.spec?.claimRef;
  if ((ref?.name ?? '') === '' || (ref?.uid === claim.metadata?.uid && ref?.name === claim.metadata?.name && ref?.namespace === claim.metadata?.namespace)) return bind(planner, volume, claim);
  lost('ClaimMisbound', 'Two claims are bound to the same volume, this one is bound incorrectly');
}

/** What to write for one claim, given every volume (the informer's). `now` (RFC 3339) stamps phase transitions. */
export function planClaim(claim: PersistentVolumeClaim, volumes: readonly PersistentVolume[], now: string): Plan {
  const planner = new Planner(now);
  if (hasAnnotation(claim, ANNOTATION_BIND_COMPLETED)) syncBoundClaim(planner, claim, volumes);
  else syncUnboundClaim(planner, claim, volumes);
  return planner.plan();
}

/** The claim is gone: the volume is Released and its reclaim policy applied. */
function release(planner: Planner, volume: PersistentVolume): void {
  const phase = volume.status?.phase;
  // A Failed volume stays Failed (the user should see it), as in Kubernetes.
  const settled = phase === 'Released' || phase === 'Failed';
  const policy = volume.spec?.persistentVolumeReclaimPolicy || 'Retain';
  switch (policy) {
    case 'Retain':
      if (!settled) planner.volumePhase(volume, 'Released');
      return;
    case 'Recycle':
      if (!settled || (phase === 'Released' && volume.status?.message !== MESSAGE_RECYCLE_RETAINED)) {
        planner.volumePhase(volume, 'Released', MESSAGE_RECYCLE_RETAINED);
        planner.volumeEvent(volume, 'Warning', 'VolumeFailedRecycle', MESSAGE_RECYCLE_RETAINED);
      }
      return;
    case 'Delete': {
      const released = settled ? volume : planner.volumePhase(volume, 'Released');
      planner.writes.push({ kind: 'PersistentVolume', verb: 'delete', object: released });
      return;
    }
    default:
      if (phase !== 'Failed') {
        planner.volumePhase(volume, 'Failed', MESSAGE_UNKNOWN_POLICY);
        planner.volumeEvent(volume, 'Warning', 'VolumeUnknownReclaimPolicy', MESSAGE_UNKNOWN_POLICY);
      }
  }
}

/** The claim bound elsewhere: the controller's own link is dropped, a user's pre-binding kept (without the uid). */
function unbind(planner: Planner, volume: PersistentVolume): void {
  const byController = hasAnnotation(volume, ANNOTATION_BOUND_BY_CONTROLLER);
  const ref = volume.spec?.claimRef;
  const unbound: PersistentVolume = byController
    ? { ...volume, metadata: annotated(volume.metadata, [], [ANNOTATION_BOUND_BY_CONTROLLER]), spec: { ...volume.spec, claimRef: undefined } }
    : { ...volume, spec: { ...volume.spec, claimRef: { ...ref, uid: '' } } };
  planner.writes.push({ kind: 'PersistentVolume', verb: 'update', object: unbound });
  planner.volumePhase(unbound, 'Available');
}

/**
 * What to write for one volume. `claim` is the claim its claimRef names,
 * as the API server has it (undefined: not found) — the controller asks the
 * server when its cache lacks it, since a Delete policy acts on absence.
 */
export function planVolume(volume: PersistentVolume, claim: PersistentVolumeClaim | undefined, now: string): Plan {
  if (volume.metadata?.deletionTimestamp !== undefined) return NOTHING;
  const planner = new Planner(now);
  const ref = volume.spec?.claimRef;
  if (ref === undefined || (ref.name ?? '') === '') {
    planner.volumePhase(volume, 'Available');
  } else if ((ref.uid ?? '') === '') {
    // Pre-bound by the user to a claim that has not bound yet: the claim's sync binds it.
    planner.volumePhase(volume, 'Available');
    planner.enqueueClaims.push(claimKey(ref.namespace, ref.name));
  } else if (claim === undefined || claim.metadata?.uid !== ref.uid) {
    release(planner, volume);
  } else if ((claim.spec?.volumeName ?? '') === '') {
    // The claim's half of the binding is not written yet: its sync finishes it.
    planner.enqueueClaims.push(claimKey(ref.namespace, ref.name));
  } else if (claim.spec?.volumeName === volumeName(volume)) {
    planner.volumePhase(volume, 'Bound');
    // The claim named this volume itself and has not been bound yet: its sync completes it.
    if (!hasAnnotation(claim, ANNOTATION_BIND_COMPLETED) || claim.status?.phase !== 'Bound') planner.enqueueClaims.push(claimKey(ref.namespace, ref.name));
  } else {
    unbind(planner, volume);
  }
  return planner.plan();
}

/** Whether a claim could take a volume now: the volume has no claim, or names one that has not bound to it yet. */
export function isOpenVolume(volume: PersistentVolume): boolean {
  const ref = volume.spec?.claimRef;
  return volume.metadata?.deletionTimestamp === undefined && ((ref?.name ?? '') === '' || (ref?.uid ?? '') === '');
}
