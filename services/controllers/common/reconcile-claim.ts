// Kubernetes' ClaimPods (PodControllerRefManager), pure: of the objects in
// an owner's namespace, which it owns, which orphans it adopts and which of
// its own it releases. An object controlled by the owner stays while the
// selector selects it and is released when it no longer does; an orphan
// (no controller) the selector selects is adopted, unless the owner is
// being deleted or the owner's own rule refuses it (a finished pod, one
// being deleted...). Objects controlled by someone else are left alone.

import type { OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { controllerOf } from './reconcile-pod.js';

export interface Claimed<T> {
  /** What the owner owns after the claim: what it kept, then what it adopts, in the objects' order. */
  readonly owned: T[];
  readonly adopt: T[];
  readonly release: T[];
}

export interface ClaimRules<T> {
  /** The owner's uid, as its controller references name it. */
  readonly uid: string | undefined;
  /** The owner is being deleted: it adopts nothing. */
  readonly deleting: boolean;
  /** The owner's selector. */
  readonly selects: (object: T) => boolean;
  /** Whether a selected orphan may be adopted. */
  readonly adoptable: (object: T) => boolean;
  /** Keep what it controls even when the selector does not select it (a Job without a selector of its own). */
  readonly keepUnselected?: boolean;
}

/** `objects` must be the owner's namespace's. */
export function claimObjects<T extends { readonly metadata?: { readonly ownerReferences?: readonly OwnerReference[] | undefined } | undefined }>(rules: ClaimRules<T>, objects: Iterable<T>): Claimed<T> {
  const owned: T[] = [];
  const adopt: T[] = [];
  const release: T[] = [];
  for (const object of objects) {
    const controller = controllerOf(object);
    const selected = rules.selects(object);
    if (controller?.uid === rules.uid) {
      if (selected || rules.keepUnselected === true) owned.push(object);
      else release.push(object);
    } else if (controller === undefined && selected && !rules.deleting && rules.adoptable(object)) {
      adopt.push(object);
      owned.push(object);
    }
  }
  return { owned, adopt, release };
}
