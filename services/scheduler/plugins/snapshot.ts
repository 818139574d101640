// The cluster as one scheduling cycle sees it (kube-scheduler's NodeInfo
// snapshot): each node with its pods and the totals the filters and scores
// read — requested resources, used host ports, workload counts, the pods
// with (anti-)affinity — computed once by buildSnapshot and kept current by
// assume and forget, so scheduling a pod costs O(nodes), not O(pods). It
// also answers for PersistentVolumeClaims and PersistentVolumes by name
// (VolumeBinding reads them only for pods that name a claim).

import type * as core from '../../../proto/gen/resources/v1/core.js';
import { emptyResources, isScalarResource, podInfoOf, type PodInfo, type Resources } from './pod.js';
import { resourceAmount } from './quantity.js';
import { labelsOf, type Labels } from '../../client/labels.js';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';
const LEGACY_ZONE_LABEL = 'failure-domain.beta.kubernetes.io/zone';

export interface NodeInfo {
  readonly node: core.Node;
  /** Pods bound to the node (spec.nodeName), assumed ones included; Succeeded and Failed pods are left out. */
  readonly pods: readonly core.Pod[];
  readonly podInfos: readonly PodInfo[];
  readonly name: string;
  readonly labels: Labels;
  readonly zone: string | undefined;
  /** The zone's position in ClusterSnapshot.zones; -1 without a zone. */
  readonly zoneIndex: number;
  readonly ready: boolean;
  readonly unschedulable: boolean;
  /** Taints with effect NoSchedule or NoExecute, in the node's order. */
  readonly hardTaints: readonly core.Taint[];
  /** Taints with effect PreferNoSchedule. */
  readonly softTaints: readonly core.Taint[];
  /** status.allocatable, each resource falling back to status.capacity. */
  readonly allocatable: Readonly<Resources>;
  readonly allowedPodCount: number;
  readonly requested: Readonly<Resources>;
  readonly nonZeroRequestedCpuMillis: number;
  readonly nonZeroRequestedMemoryBytes: number;
  /** "TCP/80" → host IP → how many pods bind it. */
  readonly usedPorts: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Workload (PodInfo.workload) → replicas on this node. */
  readonly workloads: ReadonlyMap<string, number>;
  readonly podsWithAffinity: readonly PodInfo[];
  readonly podsWithRequiredAntiAffinity: readonly PodInfo[];
}

/**
 * Claims and volumes by name. The scheduler hands in a view of its
 * informers' caches (a scheduling decision is synchronous, so it sees one
 * state throughout, and rebuilding the snapshot copies nothing); tests
 * hand in lists (SnapshotOptions.claims and .volumes).
 */
export interface StorageLister {
  claim(namespace: string, name: string): core.PersistentVolumeClaim | undefined;
  volume(name: string): core.PersistentVolume | undefined;
}

export interface ClusterSnapshot {
  readonly nodes: readonly NodeInfo[];
  readonly byName: ReadonlyMap<string, NodeInfo>;
  /** The zones the nodes are labelled with, in order of first appearance. */
  readonly zones: readonly string[];
  /** Namespace → its labels, for affinity terms' namespaceSelector. */
  readonly namespaceLabels: ReadonlyMap<string, Labels>;
  /** Pods on nodes with any pod (anti-)affinity term: 0 lets InterPodAffinity skip all its work. */
  readonly podsWithAffinityCount: number;
  readonly podsWithRequiredAntiAffinityCount: number;
  /**
   * Workload → the nodes holding its replicas and how many: spreading reads
   * one small map per pod instead of a lookup in every node's own map.
   */
  readonly workloadNodes: ReadonlyMap<string, ReadonlyMap<NodeInfo, number>>;
  readonly storage: StorageLister;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
interface MutableNodeInfo extends Mutable<NodeInfo> {
  pods: core.Pod[];
  podInfos: PodInfo[];
  requested: Resources;
  usedPorts: Map<string, Map<string, number>>;
  workloads: Map<string, number>;
  podsWithAffinity: PodInfo[];
  podsWithRequiredAntiAffinity: PodInfo[];
}

function allocatableOf(status: core.NodeStatus | undefined): { resources: Resources; pods: number } {
  const merged = { ...status?.capacity, ...status?.allocatable };
  const resources = emptyResources();
  let pods = 0;
  for (const [name, text] of Object.entries(merged)) {
    const amount = resourceAmount(name, text) ?? 0;
    if (name === 'cpu') resources.cpuMillis = amount;
    else if (name === 'memory') resources.memoryBytes = amount;
    else if (name === 'pods') pods = amount;
    else if (isScalarResource(name)) resources.scalars.set(name, amount);
  }
  return { resources, pods };
}

function newNodeInfo(node: core.Node, name: string, zones: string[]): MutableNodeInfo {
  const labels = labelsOf(node.metadata?.labels);
  const zone = labels.get(ZONE_LABEL) ?? labels.get(LEGACY_ZONE_LABEL);
  let zoneIndex = zone === undefined ? -1 : zones.indexOf(zone);
  if (zone !== undefined && zoneIndex < 0) zoneIndex = zones.push(zone) - 1;
  const taints = node.spec?.taints ?? [];
  const { resources, pods } = allocatableOf(node.status);
  return {
    node,
    pods: [],
    podInfos: [],
    name,
    labels,
    zone,
    zoneIndex,
    ready: (node.status?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True'),
    unschedulable: node.spec?.unschedulable === true,
    hardTaints: taints.filter((taint) => taint.effect === 'NoSchedule' || taint.effect === 'NoExecute'),
    softTaints: taints.filter((taint) => taint.effect === 'PreferNoSchedule'),
    allocatable: resources,
    allowedPodCount: pods,
    requested: emptyResources(),
    nonZeroRequestedCpuMillis: 0,
    nonZeroRequestedMemoryBytes: 0,
    usedPorts: new Map(),
    workloads: new Map(),
    podsWithAffinity: [],
    podsWithRequiredAntiAffinity: [],
  };
}

function bump<K>(map: Map<K, number>, key: K, delta: number): void {
  const count = (map.get(key) ?? 0) + delta;
  if (count === 0) map.delete(key);
  else map.set(key, count);
}

/** Add (sign 1) or remove (sign -1) a pod's contribution to its node's totals. */
function account(info: MutableNodeInfo, pod: PodInfo, sign: 1 | -1): void {
  const requested = info.requested;
  requested.cpuMillis += sign * pod.requests.cpuMillis;
  requested.memoryBytes += sign * pod.requests.memoryBytes;
  for (const [name, amount] of pod.requests.scalars) bump(requested.scalars, name, sign * amount);
  info.nonZeroRequestedCpuMillis += sign * pod.nonZeroCpuMillis;
  info.nonZeroRequestedMemoryBytes += sign * pod.nonZeroMemoryBytes;
  for (const port of pod.hostPorts) {
    let byAddress = info.usedPorts.get(port.protocolPort);
    if (byAddress === undefined) info.usedPorts.set(port.protocolPort, (byAddress = new Map()));
    bump(byAddress, port.hostIP, sign);
    if (byAddress.size === 0) info.usedPorts.delete(port.protocolPort);
  }
  if (pod.workload !== undefined) bump(info.workloads, pod.workload, sign);
}

interface SnapshotCounts {
  podsWithAffinityCount: number;
  podsWithRequiredAntiAffinityCount: number;
  workloadNodes: Map<string, Map<NodeInfo, number>>;
}

/** Count (sign 1) or uncount (sign -1) a replica of `workload` on `info`. */
function countWorkload(counts: SnapshotCounts, workload: string | undefined, info: NodeInfo, sign: 1 | -1): void {
  if (workload === undefined) return;
  let nodes = counts.workloadNodes.get(workload);
  if (nodes === undefined) counts.workloadNodes.set(workload, (nodes = new Map()));
  bump(nodes, info, sign);
  if (nodes.size === 0) counts.workloadNodes.delete(workload);
}

function addPod(counts: SnapshotCounts, info: MutableNodeInfo, pod: core.Pod): void {
  const podInfo = podInfoOf(pod);
  info.pods.push(pod);
  info.podInfos.push(podInfo);
  account(info, podInfo, 1);
  countWorkload(counts, podInfo.workload, info, 1);
  if (podInfo.hasPodAffinity) {
    info.podsWithAffinity.push(podInfo);
    counts.podsWithAffinityCount++;
  }
  if (podInfo.requiredAntiAffinity.length > 0) {
    info.podsWithRequiredAntiAffinity.push(podInfo);
    counts.podsWithRequiredAntiAffinityCount++;
  }
}

export interface SnapshotOptions {
  /** Namespaces, for pod affinity terms with a namespaceSelector. */
  readonly namespaces?: readonly core.Namespace[];
  /** Claims and volumes by name (the scheduler's caches); or else... */
  readonly storage?: StorageLister;
  /** ...these claims and volumes (none by default). */
  readonly claims?: readonly core.PersistentVolumeClaim[];
  readonly volumes?: readonly core.PersistentVolume[];
}

/** A StorageLister over lists. */
function listedStorage(claims: readonly core.PersistentVolumeClaim[], volumes: readonly core.PersistentVolume[]): StorageLister {
  const claimsByKey = new Map(claims.map((claim) => [`${claim.metadata?.namespace ?? ''}/${claim.metadata?.name ?? ''}`, claim]));
  const volumesByName = new Map(volumes.map((volume) => [volume.metadata?.name ?? '', volume]));
  return { claim: (namespace, name) => claimsByKey.get(`${namespace}/${name}`), volume: (name) => volumesByName.get(name) };
}

/**
 * The snapshot of these nodes (in the given order; nameless and duplicate
 * names skipped) with the pods bound to them. Pods without spec.nodeName, on
 * unknown nodes, or in phase Succeeded or Failed are left out, as
 * kube-scheduler's cache leaves them out.
 */
export function buildSnapshot(nodes: readonly core.Node[], pods: readonly core.Pod[], options: SnapshotOptions = {}): ClusterSnapshot {
  const byName = new Map<string, MutableNodeInfo>();
  const zones: string[] = [];
  for (const node of nodes) {
    const name = node.metadata?.name ?? '';
    if (name !== '' && !byName.has(name)) byName.set(name, newNodeInfo(node, name, zones));
  }
  const storage = options.storage ?? listedStorage(options.claims ?? [], options.volumes ?? []);
  const snapshot: Mutable<ClusterSnapshot> & SnapshotCounts = { nodes: [...byName.values()], byName, zones, namespaceLabels: new Map(), podsWithAffinityCount: 0, podsWithRequiredAntiAffinityCount: 0, workloadNodes: new Map(), storage };
  for (const pod of pods) {
    const phase = pod.status?.phase;
    const info = byName.get(pod.spec?.nodeName ?? '');
    if (info !== undefined && phase !== 'Succeeded' && phase !== 'Failed') addPod(snapshot, info, pod);
  }
  snapshot.namespaceLabels = new Map((options.namespaces ?? []).map((namespace) => [namespace.metadata?.name ?? '', labelsOf(namespace.metadata?.labels)]));
  return snapshot;
}

/**
 * Count the pod on the node from now on, as kube-scheduler's AssumePod does
 * between choosing a node and the binding being written: the next pod
 * scheduled sees its requests, ports, workload and affinity. The pod object
 * is not changed. False when the snapshot has no such node, or the node
 * already counts a pod of that namespace/name.
 */
export function assume(snapshot: ClusterSnapshot, pod: core.Pod, nodeName: string): boolean {
  const info = snapshot.byName.get(nodeName) as MutableNodeInfo | undefined;
  const key = podInfoOf(pod).key;
  if (info === undefined || info.podInfos.some((candidate) => candidate.key === key)) return false;
  addPod(snapshot as unknown as SnapshotCounts, info, pod);
  return true;
}

/**
 * Undo assume (the binding failed), or drop a pod that was deleted or
 * finished: the pod with the same namespace/name on that node (default: its
 * spec.nodeName) stops counting. False when it was not there.
 */
export function forget(snapshot: ClusterSnapshot, pod: core.Pod, nodeName = pod.spec?.nodeName ?? ''): boolean {
  const info = snapshot.byName.get(nodeName) as MutableNodeInfo | undefined;
  const key = podInfoOf(pod).key;
  const index = info?.podInfos.findIndex((candidate) => candidate.key === key) ?? -1;
  if (info === undefined || index < 0) return false;
  const [removed] = info.podInfos.splice(index, 1);
  info.pods.splice(index, 1);
  if (removed === undefined) return false;
  account(info, removed, -1);
  const counts = snapshot as unknown as SnapshotCounts;
  countWorkload(counts, removed.workload, info, -1);
  if (removed.hasPodAffinity) {
    info.podsWithAffinity = info.podsWithAffinity.filter((candidate) => candidate !== removed);
    counts.podsWithAffinityCount--;
  }
  if (removed.requiredAntiAffinity.length > 0) {
    info.podsWithRequiredAntiAffinity = info.podsWithRequiredAntiAffinity.filter((candidate) => candidate !== removed);
    counts.podsWithRequiredAntiAffinityCount--;
  }
  return true;
}
