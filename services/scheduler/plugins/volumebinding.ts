// kube-scheduler's VolumeBinding filter, for volumes bound in advance (mast
// binds every claim at once — there is no StorageClass, so no
// WaitForFirstConsumer): a pod's persistentVolumeClaim volumes must name
// claims that exist, are not being deleted and are bound, else the pod
// fits no node (Kubernetes' PreFilter answers, with its messages); then
// each bound volume's spec.nodeAffinity.required (a local volume is a
// directory on one node) must match the node. Pods that name no claim —
// nearly all — skip the plugin without a lookup.

import type * as core from '../../../proto/gen/resources/v1/core.js';
import { nodeSelectorTermMatches } from '../../client/scheduling.js';
import { FITS, unfit, type FilterPlugin, type PodRejection } from './filters.js';

export const REASON_VOLUME_NODE_AFFINITY = 'node(s) had volume node affinity conflict';
export const REASON_UNBOUND_IMMEDIATE_CLAIMS = 'pod has unbound immediate PersistentVolumeClaims';

/** What the PV binder writes when it completes a binding (Kubernetes' name). */
const ANNOTATION_BIND_COMPLETED = 'pv.kubernetes.io/bind-completed';

const VOLUME_NODE_AFFINITY = unfit(REASON_VOLUME_NODE_AFFINITY);

/** Kubernetes' isPVCFullyBound: the claim names its volume and the binder finished (its annotation, or the claim's phase). */
export function isClaimBound(claim: core.PersistentVolumeClaim): boolean {
  if ((claim.spec?.volumeName ?? '') === '') return false;
  return claim.metadata?.annotations?.[ANNOTATION_BIND_COMPLETED] !== undefined || claim.status?.phase === 'Bound';
}

const rejected = (reason: string): PodRejection => ({ rejected: reason });

export const volumeBinding: FilterPlugin = {
  name: 'VolumeBinding',
  prepare(pod, snapshot) {
    if (pod.claimNames.length === 0) return undefined;
    const selectors: core.NodeSelector[] = [];
    let unbound = false;
    for (const claimName of pod.claimNames) {
      const claim = snapshot.storage.claim(pod.namespace, claimName);
      if (claim === undefined) return rejected(`persistentvolumeclaim "${claimName}" not found`);
      if (claim.metadata?.deletionTimestamp !== undefined) return rejected(`persistentvolumeclaim "${claimName}" is being deleted`);
      if (!isClaimBound(claim)) {
        unbound = true;
        continue;
      }
      const volumeName = claim.spec?.volumeName ?? '';
      const volume = snapshot.storage.volume(volumeName);
      if (volume === undefined) return rejected(`persistentvolume "${volumeName}" not found`);
      const required = volume.spec?.nodeAffinity?.required;
      if (required !== undefined) selectors.push(required);
    }
    if (unbound) return rejected(REASON_UNBOUND_IMMEDIATE_CLAIMS);
    if (selectors.length === 0) return undefined;
    // Kubernetes' CheckNodeAffinity: any term of each volume's selector (none: no node).
    return (node) => (selectors.every((selector) => (selector.nodeSelectorTerms ?? []).some((term) => nodeSelectorTermMatches(term, node.name, node.labels))) ? FITS : VOLUME_NODE_AFFINITY);
  },
};
