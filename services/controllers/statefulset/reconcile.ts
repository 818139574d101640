// The StatefulSet controller's decision (pure), after Kubernetes'
// stateful_set_control.go: pods NAME-0..N-1 with a stable identity
// (hostname, subdomain, labels) and their own PersistentVolumeClaims, made
// before the pod and kept after it (the Retain policy). OrderedReady
// creates ordinal i only once 0..i-1 are Running and Ready, and removes
// from the highest ordinal, one at a time, only while every other pod is;
// Parallel creates and removes all at once. A failed pod is deleted and
// made again under the same name once the old one is gone. The rolling
// update deletes, from the highest ordinal down to the partition, one pod
// whose revision is not the update revision, waiting for each to come
// back Running and Ready; OnDelete leaves that to the user.
//
// No ControllerRevision objects are kept: a revision is "<set>-<hash of
// the template>", and the template of an older revision is known only if
// the caller remembered it (`revisions`). Pods below the partition that
// must be made again use the current revision's template when known, the
// update revision's otherwise.

import type { StatefulSet } from '../../../proto/gen/resources/v1/apps.js';
import type { PersistentVolumeClaim, Pod, PodTemplateSpec, Volume } from '../../../proto/gen/resources/v1/core.js';
import type { OwnerReference } from '../../../proto/gen/resources/v1/meta.js';
import { selectorMatches } from '../common/reconcile-selector.js';
import { claimObjects, type Claimed } from '../common/reconcile-claim.js';
import { isAvailable, isReady, isTerminating, untilAvailableMs } from '../common/reconcile-pod.js';
import { REVISION_LABEL, soonestMs, templateHash } from '../daemonset/reconcile-pod.js';

export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';

export interface StatefulSetInputs {
  readonly statefulSet: StatefulSet;
  /** Pods of the set's namespace. */
  readonly pods: readonly Pod[];
  /** PersistentVolumeClaims of the set's namespace. */
  readonly claims: readonly PersistentVolumeClaim[];
  readonly nowMs: number;
  /** Templates of revisions seen before, by revision name. */
  readonly revisions?: ReadonlyMap<string, PodTemplateSpec>;
}

export interface StatefulSetCounts {
  readonly observedGeneration: number;
  readonly replicas: number;
  readonly readyReplicas: number;
  readonly currentReplicas: number;
  readonly updatedReplicas: number;
  readonly availableReplicas: number;
  readonly currentRevision: string;
  readonly updateRevision: string;
}

export interface Relabel {
  readonly pod: Pod;
  /** The labels to set (a merge patch of metadata.labels). */
  readonly labels: Record<string, string>;
}

export interface StatefulSetPlan {
  readonly adopt: Pod[];
  readonly release: Pod[];
  /** Made first: the claims of the pods about to be created (or pending) that do not exist yet. */
  readonly createClaims: PersistentVolumeClaim[];
  readonly createPods: Pod[];
  readonly deletePods: Pod[];
  readonly relabel: Relabel[];
  readonly status: StatefulSetCounts;
  /** The template of each revision the status names, when known (for the caller to remember). */
  readonly templates: ReadonlyMap<string, PodTemplateSpec>;
  /** Sync again this much later (a ready pod becomes available). */
  readonly requeueAfterMs: number | undefined;
}

/** A position in the set: its ordinal and name, and the pod there if there is one. */
interface Slot {
  readonly ordinal: number;
  readonly name: string;
  readonly pod: Pod | undefined;
}

interface Context {
  readonly inputs: StatefulSetInputs;
  readonly setName: string;
  readonly namespace: string;
  readonly monotonic: boolean;
  readonly minReadySeconds: number;
  readonly partition: number;
  readonly currentRevision: string;
  readonly updateRevision: string;
  readonly templates: ReadonlyMap<string, PodTemplateSpec>;
  readonly claims: ReadonlyMap<string, PersistentVolumeClaim>;
  readonly actions: { createClaims: PersistentVolumeClaim[]; createPods: Pod[]; deletePods: Pod[]; relabel: Relabel[] };
}

/** The revision name of a template: "<set>-<hash>", as Kubernetes' ControllerRevisionName. */
export function revisionName(setName: string, template: PodTemplateSpec | undefined): string {
  return `${setName}-${templateHash(template)}`;
}

export function statefulSetOwnerReference(set: StatefulSet): OwnerReference {
  return { apiVersion: 'apps/v1', kind: 'StatefulSet', name: set.metadata?.name ?? '', uid: set.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** The ordinal in a pod's name "<set>-<n>"; undefined when the name is not one of this set's. */
export function ordinalOf(setName: string, podName: string): number | undefined {
  const match = /^(.*)-(0|[1-9][0-9]*)$/.exec(podName);
  if (match === null || match[1] !== setName) return undefined;
  const ordinal = Number(match[2]);
  return Number.isSafeInteger(ordinal) ? ordinal : undefined;
}

export function claimName(templateName: string, setName: string, ordinal: number): string {
  return `${templateName}-${setName}-${ordinal}`;
}

/** The claims of one ordinal, from the volumeClaimTemplates (getPersistentVolumeClaims): labelled with the set's matchLabels too. */
export function claimsFor(set: StatefulSet, ordinal: number): PersistentVolumeClaim[] {
  const setName = set.metadata?.name ?? '';
  return (set.spec?.volumeClaimTemplates ?? []).map((template) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: claimName(template.metadata?.name ?? '', setName, ordinal),
      namespace: set.metadata?.namespace ?? 'default',
      labels: { ...(template.metadata?.labels ?? {}), ...(set.spec?.selector?.matchLabels ?? {}) },
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
    },
    ...(template.spec ? { spec: structuredClone(template.spec) } : {}),
  }));
}

/** newStatefulSetPod: the template, the identity (name, hostname, subdomain, labels) and the claims as volumes. */
export function statefulPod(set: StatefulSet, ordinal: number, revision: string, template: PodTemplateSpec | undefined): Pod {
  const setName = set.metadata?.name ?? '';
  const name = `${setName}-${ordinal}`;
  const spec = structuredClone(template?.spec ?? {});
  const claimVolumes: Volume[] = (set.spec?.volumeClaimTemplates ?? []).map((claim) => ({ name: claim.metadata?.name ?? '', persistentVolumeClaim: { claimName: claimName(claim.metadata?.name ?? '', setName, ordinal) } }));
  const claimed = new Set(claimVolumes.map((volume) => volume.name));
  const volumes = [...claimVolumes, ...(spec.volumes ?? []).filter((volume) => !claimed.has(volume.name))];
  const serviceName = set.spec?.serviceName ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: set.metadata?.namespace ?? 'default',
      labels: { ...(template?.metadata?.labels ?? {}), [REVISION_LABEL]: revision, [POD_NAME_LABEL]: name, [POD_INDEX_LABEL]: String(ordinal) },
      ...(template?.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [statefulSetOwnerReference(set)],
    },
    spec: { ...spec, ...(volumes.length > 0 ? { volumes } : {}), hostname: name, ...(serviceName === '' ? {} : { subdomain: serviceName }) },
  };
}

const phaseOf = (pod: Pod): string => pod.status?.phase ?? '';
const isRunningAndReady = (pod: Pod): boolean => phaseOf(pod) === 'Running' && isReady(pod);
const isHealthy = (pod: Pod | undefined): boolean => pod !== undefined && isRunningAndReady(pod) && !isTerminating(pod);

/** ClaimPods: orphans adopted unless terminating, and only those named as the set's ordinals. */
function claimPods(inputs: StatefulSetInputs): Claimed<Pod> {
  const metadata = inputs.statefulSet.metadata ?? {};
  const selector = inputs.statefulSet.spec?.selector;
  return claimObjects(
    {
      uid: metadata.uid,
      deleting: metadata.deletionTimestamp !== undefined,
      selects: (pod) => selectorMatches(selector, pod.metadata?.labels),
      adoptable: (pod) => !isTerminating(pod) && ordinalOf(metadata.name ?? '', pod.metadata?.name ?? '') !== undefined,
    },
    inputs.pods.filter((pod) => pod.metadata?.namespace === metadata.namespace),
  );
}

export function planStatefulSet(inputs: StatefulSetInputs): StatefulSetPlan {
  const set = inputs.statefulSet;
  const setName = set.metadata?.name ?? '';
  const { adopt, release, owned } = claimPods(inputs);
  const updateRevision = revisionName(setName, set.spec?.template);
  const currentRevision = (set.status?.currentRevision ?? '') === '' ? updateRevision : set.status!.currentRevision!;
  const templates = new Map<string, PodTemplateSpec>();
  const known = inputs.revisions?.get(currentRevision);
  if (known !== undefined) templates.set(currentRevision, known);
  templates.set(updateRevision, set.spec?.template ?? {});
  const strategy = set.spec?.updateStrategy;
  const context: Context = {
    inputs,
    setName,
    namespace: set.metadata?.namespace ?? 'default',
    monotonic: (set.spec?.podManagementPolicy ?? 'OrderedReady') !== 'Parallel',
    minReadySeconds: set.spec?.minReadySeconds ?? 0,
    partition: (strategy?.type ?? 'RollingUpdate') === 'RollingUpdate' ? Math.max(strategy?.rollingUpdate?.partition ?? 0, 0) : 0,
    currentRevision,
    updateRevision,
    templates,
    claims: new Map(inputs.claims.filter((claim) => claim.metadata?.namespace === set.metadata?.namespace).map((claim) => [claim.metadata?.name ?? '', claim])),
    actions: { createClaims: [], createPods: [], deletePods: [], relabel: [] },
  };
  const start = Math.max(set.spec?.ordinals?.start ?? 0, 0);
  const replicaCount = Math.max(set.spec?.replicas ?? 1, 0);
  const byOrdinal = new Map<number, Pod>();
  const condemned: Pod[] = [];
  for (const pod of owned) {
    const ordinal = ordinalOf(setName, pod.metadata?.name ?? '');
    if (ordinal === undefined) continue;
    if (ordinal >= start && ordinal < start + replicaCount) byOrdinal.set(ordinal, pod);
    else condemned.push(pod);
  }
  // Highest ordinal first.
  condemned.sort((a, b) => ordinalOf(setName, b.metadata?.name ?? '')! - ordinalOf(setName, a.metadata?.name ?? '')!);
  const slots: Slot[] = Array.from({ length: replicaCount }, (_, index) => ({ ordinal: start + index, name: `${setName}-${start + index}`, pod: byOrdinal.get(start + index) }));
  if (set.metadata?.deletionTimestamp === undefined) act(context, slots, condemned);
  const { status, requeueAfterMs } = countStatus(context, [...slots.flatMap((slot) => (slot.pod === undefined ? [] : [slot.pod])), ...condemned]);
  const named = new Map([...templates].filter(([revision]) => revision === status.currentRevision || revision === status.updateRevision));
  return { adopt, release, ...context.actions, status, templates: named, requeueAfterMs };
}

/** updateStatefulSet after the invariants: replicas, then condemned pods, then one step of the rolling update. */
function act(context: Context, slots: readonly Slot[], condemned: readonly Pod[]): void {
  for (let index = 0; index < slots.length; index++) {
    if (processReplica(context, slots[index]!, index) && context.monotonic) return;
  }
  // The lowest unhealthy pod, replicas first (only a condemned one matters: OrderedReady gets here only when every replica is healthy).
  const firstUnhealthy = slots.every((slot) => isHealthy(slot.pod)) ? [...condemned].reverse().find((pod) => !isHealthy(pod)) : undefined;
  for (const pod of condemned) {
    if (processCondemned(context, pod, firstUnhealthy) && context.monotonic) return;
  }
  const strategy = context.inputs.statefulSet.spec?.updateStrategy?.type ?? 'RollingUpdate';
  if (strategy === 'OnDelete') return;
  for (let index = slots.length - 1; index >= context.partition; index--) {
    const pod = slots[index]!.pod;
    // A pod made in this sync is of the update revision and not yet healthy: wait for it.
    if (pod === undefined) return;
    if (pod.metadata?.labels?.[REVISION_LABEL] !== context.updateRevision && !isTerminating(pod)) {
      context.actions.deletePods.push(pod);
      return;
    }
    if (!isHealthy(pod)) return;
  }
}

/** The revision and template a missing ordinal is made from (newVersionedStatefulSetPod). */
function versionFor(context: Context, index: number): { revision: string; template: PodTemplateSpec | undefined } {
  const current = context.templates.get(context.currentRevision);
  if (index < context.partition && current !== undefined) return { revision: context.currentRevision, template: current };
  return { revision: context.updateRevision, template: context.inputs.statefulSet.spec?.template };
}

/** The slot's claims that do not exist yet; undefined when one exists but is being deleted (the pod must wait). */
function missingClaims(context: Context, ordinal: number): PersistentVolumeClaim[] | undefined {
  const missing: PersistentVolumeClaim[] = [];
  for (const claim of claimsFor(context.inputs.statefulSet, ordinal)) {
    const existing = context.claims.get(claim.metadata?.name ?? '');
    if (existing === undefined) missing.push(claim);
    else if (existing.metadata?.deletionTimestamp !== undefined) return undefined;
  }
  return missing;
}

/** processReplica: whether the set must stop here (only OrderedReady stops). */
function processReplica(context: Context, slot: Slot, index: number): boolean {
  const { actions } = context;
  const pod = slot.pod;
  if (pod === undefined) {
    const claims = missingClaims(context, slot.ordinal);
    if (claims === undefined) return true;
    const { revision, template } = versionFor(context, index);
    actions.createClaims.push(...claims);
    actions.createPods.push(statefulPod(context.inputs.statefulSet, slot.ordinal, revision, template));
    return true;
  }
  // Failed or finished: delete, and make it again once it is gone (a later sync).
  if (phaseOf(pod) === 'Failed' || phaseOf(pod) === 'Succeeded') {
    if (!isTerminating(pod)) actions.deletePods.push(pod);
    return true;
  }
  if (phaseOf(pod) === 'Pending' || phaseOf(pod) === '') actions.createClaims.push(...(missingClaims(context, slot.ordinal) ?? []));
  // OrderedReady waits for this pod to be gone, or Running, Ready and available.
  if (isTerminating(pod)) return true;
  if (context.monotonic && !(isRunningAndReady(pod) && isAvailable(pod, context.minReadySeconds, context.inputs.nowMs))) return true;
  const labels = pod.metadata?.labels ?? {};
  if (labels[POD_NAME_LABEL] !== slot.name || labels[POD_INDEX_LABEL] !== String(slot.ordinal)) {
    actions.relabel.push({ pod, labels: { [POD_NAME_LABEL]: slot.name, [POD_INDEX_LABEL]: String(slot.ordinal) } });
  }
  return false;
}

/** processCondemned: delete a pod beyond the replicas; OrderedReady only if it is healthy or the first unhealthy one, one at a time. */
function processCondemned(context: Context, pod: Pod, firstUnhealthy: Pod | undefined): boolean {
  if (isTerminating(pod)) return true;
  if (context.monotonic && pod !== firstUnhealthy && (!isRunningAndReady(pod) || !isAvailable(pod, context.minReadySeconds, context.inputs.nowMs))) return true;
  context.actions.deletePods.push(pod);
  return true;
}

/** computeReplicaStatus over the pods as they are, then completeRollingUpdate. */
function countStatus(context: Context, pods: readonly Pod[]): { status: StatefulSetCounts; requeueAfterMs: number | undefined } {
  const { nowMs } = context.inputs;
  let ready = 0;
  let available = 0;
  let current = 0;
  let updated = 0;
  const waits: (number | undefined)[] = [];
  for (const pod of pods) {
    if (isRunningAndReady(pod)) {
      ready++;
      if (isAvailable(pod, context.minReadySeconds, nowMs)) available++;
      else waits.push(untilAvailableMs(pod, context.minReadySeconds, nowMs));
    }
    if (isTerminating(pod)) continue;
    const revision = pod.metadata?.labels?.[REVISION_LABEL];
    if (revision === context.currentRevision) current++;
    if (revision === context.updateRevision) updated++;
  }
  const set = context.inputs.statefulSet;
  const rolling = (set.spec?.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
  const complete = rolling && updated === pods.length && ready === pods.length;
  const status: StatefulSetCounts = {
    observedGeneration: set.metadata?.generation ?? 0,
    replicas: pods.length,
    readyReplicas: ready,
    currentReplicas: complete ? updated : current,
    updatedReplicas: updated,
    availableReplicas: available,
    currentRevision: complete ? context.updateRevision : context.currentRevision,
    updateRevision: context.updateRevision,
  };
  return { status, requeueAfterMs: soonestMs(waits) };
}
