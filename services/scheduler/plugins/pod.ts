// What the plugins need to know about a pod, worked out once per pod object
// (memoised in a WeakMap) instead of once per node: its resource requests
// as Kubernetes computes them, the host ports it binds, its workload (for
// spreading), its pod (anti-)affinity terms with their namespaces resolved,
// and the claims its volumes name.

import type * as core from '../../../proto/gen/resources/v1/core.js';
import type * as meta from '../../../proto/gen/resources/v1/meta.js';
import { resourceAmount } from './quantity.js';
import { EMPTY_LABELS, labelMatcher, labelsOf, type LabelMatcher, type Labels } from '../../client/labels.js';

/** What Kubernetes counts for a container that requests no cpu / no memory, when scoring. */
export const DEFAULT_CPU_REQUEST_MILLIS = 100;
export const DEFAULT_MEMORY_REQUEST_BYTES = 200 * 1024 * 1024;

/** Resource amounts: cpu in millicores, memory in bytes, the rest (ephemeral-storage, hugepages-*, extended) in base units. */
export interface Resources {
  cpuMillis: number;
  memoryBytes: number;
  scalars: Map<string, number>;
}

export interface HostPort {
  /** "TCP/8080": protocol and port, the key the node's used ports are indexed by. */
  readonly protocolPort: string;
  /** "0.0.0.0" for every address ("", "0.0.0.0" and "::" all mean that). */
  readonly hostIP: string;
}

/** A pod (anti-)affinity term with its namespaces resolved against its pod. */
export interface AffinityTerm {
  readonly selector: LabelMatcher;
  readonly namespaces: ReadonlySet<string>;
  /** Undefined when the term names its namespaces only (or defaults to its pod's). */
  readonly namespaceSelector: LabelMatcher | undefined;
  readonly topologyKey: string;
  readonly weight: number;
}

export interface PodInfo {
  readonly pod: core.Pod;
  readonly namespace: string;
  /** namespace/name: how assume and forget find the pod again. */
  readonly key: string;
  readonly labels: Labels;
  /** Requests as Kubernetes' resource.PodRequests computes them (what NodeResourcesFit checks). */
  readonly requests: Resources;
  /** cpu and memory with 100m / 200Mi for containers that request none (what LeastAllocated scores). */
  readonly nonZeroCpuMillis: number;
  readonly nonZeroMemoryBytes: number;
  readonly hostPorts: readonly HostPort[];
  readonly tolerations: readonly core.Toleration[];
  /** Same value for replicas of one workload: the controller owner's uid, or else the namespace and labels. */
  readonly workload: string | undefined;
  readonly requiredAffinity: readonly AffinityTerm[];
  readonly requiredAntiAffinity: readonly AffinityTerm[];
  readonly preferredAffinity: readonly AffinityTerm[];
  readonly preferredAntiAffinity: readonly AffinityTerm[];
  /** Any pod affinity or anti-affinity term at all (Kubernetes' PodsWithAffinity). */
  readonly hasPodAffinity: boolean;
  /** The PersistentVolumeClaims its volumes name, in its namespace (empty for most pods: VolumeBinding then skips it). */
  readonly claimNames: readonly string[];
}

/** Resources the scheduler tracks beyond cpu, memory and pods (Kubernetes' ScalarResources, plus ephemeral-storage). */
export function isScalarResource(name: string): boolean {
  if (name === 'ephemeral-storage' || name.startsWith('hugepages-') || name.startsWith('attachable-volumes-')) return true;
  return name.includes('/') && !name.includes('kubernetes.io/') && !name.startsWith('requests.');
}

export function emptyResources(): Resources {
  return { cpuMillis: 0, memoryBytes: 0, scalars: new Map() };
}

/** A container's requests; a resource with a limit and no request requests its limit (Kubernetes' API defaulting). */
function containerRequests(container: core.Container): Map<string, number> {
  const amounts = new Map<string, number>();
  const { requests = {}, limits = {} } = container.resources ?? {};
  for (const [name, text] of Object.entries(limits)) amounts.set(name, resourceAmount(name, text) ?? 0);
  for (const [name, text] of Object.entries(requests)) amounts.set(name, resourceAmount(name, text) ?? 0);
  return amounts;
}

function addInto(target: Resources, name: string, amount: number, combine: (a: number, b: number) => number): void {
  if (name === 'cpu') target.cpuMillis = combine(target.cpuMillis, amount);
  else if (name === 'memory') target.memoryBytes = combine(target.memoryBytes, amount);
  else if (isScalarResource(name)) target.scalars.set(name, combine(target.scalars.get(name) ?? 0, amount));
}

interface PodRequests {
  readonly requests: Resources;
  readonly nonZeroCpuMillis: number;
  readonly nonZeroMemoryBytes: number;
}

/** Sum of the containers, each resource raised to the largest init container's, plus the pod overhead. */
function podRequests(spec: core.PodSpec): PodRequests {
  const sum = (a: number, b: number): number => a + b;
  const requests = emptyResources();
  let nonZeroCpuMillis = 0;
  let nonZeroMemoryBytes = 0;
  for (const container of spec.containers ?? []) {
    const amounts = containerRequests(container);
    for (const [name, amount] of amounts) addInto(requests, name, amount, sum);
    nonZeroCpuMillis += amounts.get('cpu') ?? DEFAULT_CPU_REQUEST_MILLIS;
    nonZeroMemoryBytes += amounts.get('memory') ?? DEFAULT_MEMORY_REQUEST_BYTES;
  }
  for (const container of spec.initContainers ?? []) {
    const amounts = containerRequests(container);
    for (const [name, amount] of amounts) addInto(requests, name, amount, Math.max);
    nonZeroCpuMillis = Math.max(nonZeroCpuMillis, amounts.get('cpu') ?? DEFAULT_CPU_REQUEST_MILLIS);
    nonZeroMemoryBytes = Math.max(nonZeroMemoryBytes, amounts.get('memory') ?? DEFAULT_MEMORY_REQUEST_BYTES);
  }
  for (const [name, text] of Object.entries(spec.overhead ?? {})) {
    const amount = resourceAmount(name, text) ?? 0;
    addInto(requests, name, amount, sum);
    if (name === 'cpu') nonZeroCpuMillis += amount;
    if (name === 'memory') nonZeroMemoryBytes += amount;
  }
  requests.scalars = new Map([...requests.scalars].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { requests, nonZeroCpuMillis, nonZeroMemoryBytes };
}

const ALL_ADDRESSES = '0.0.0.0';

/** Host ports of the (regular) containers; with hostNetwork an unset hostPort is the containerPort, as the API defaults it. */
function hostPortsOf(spec: core.PodSpec): HostPort[] {
  const found: HostPort[] = [];
  for (const container of spec.containers ?? []) {
    for (const port of container.ports ?? []) {
      const hostPort = (port.hostPort ?? 0) > 0 ? (port.hostPort ?? 0) : spec.hostNetwork === true ? (port.containerPort ?? 0) : 0;
      if (hostPort <= 0) continue;
      const ip = port.hostIP ?? '';
      found.push({ protocolPort: `${port.protocol ?? 'TCP'}/${hostPort}`, hostIP: ip === '' || ip === '::' ? ALL_ADDRESSES : ip });
    }
  }
  return found;
}

function workloadOf(metadata: meta.ObjectMeta, namespace: string, labels: Labels): string | undefined {
  const owners = metadata.ownerReferences ?? [];
  const owner = owners.find((reference) => reference.controller === true) ?? owners[0];
  if (owner?.uid !== undefined && owner.uid !== '') return `owner:${owner.uid}`;
  if (labels.size === 0) return undefined;
  const sorted = [...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `labels:${namespace}:${JSON.stringify(sorted)}`;
}

function affinityTerm(term: core.PodAffinityTerm | undefined, namespace: string, weight: number): AffinityTerm {
  const listed = term?.namespaces ?? [];
  const namespaceSelector = term?.namespaceSelector;
  const namespaces = new Set(listed.length === 0 && namespaceSelector === undefined ? [namespace] : listed);
  return {
    selector: labelMatcher(term?.labelSelector),
    namespaces,
    namespaceSelector: namespaceSelector === undefined ? undefined : labelMatcher(namespaceSelector),
    topologyKey: term?.topologyKey ?? '',
    weight,
  };
}

function termsOf(required: core.PodAffinityTerm[] | undefined, preferred: core.WeightedPodAffinityTerm[] | undefined, namespace: string): [AffinityTerm[], AffinityTerm[]] {
  return [
    (required ?? []).map((term) => affinityTerm(term, namespace, 1)),
    (preferred ?? []).filter((term) => (term.weight ?? 0) !== 0).map((term) => affinityTerm(term.podAffinityTerm, namespace, term.weight ?? 0)),
  ];
}

const NO_CLAIMS: readonly string[] = [];

function claimNamesOf(spec: core.PodSpec): readonly string[] {
  const volumes = spec.volumes;
  if (volumes === undefined || volumes.length === 0) return NO_CLAIMS;
  const names = volumes.map((volume) => volume.persistentVolumeClaim?.claimName ?? '').filter((name) => name !== '');
  return names.length === 0 ? NO_CLAIMS : names;
}

function compile(pod: core.Pod): PodInfo {
  const metadata = pod.metadata ?? {};
  const spec = pod.spec ?? {};
  const namespace = metadata.namespace ?? 'default';
  const labels = labelsOf(metadata.labels);
  const { podAffinity, podAntiAffinity } = spec.affinity ?? {};
  const [requiredAffinity, preferredAffinity] = termsOf(podAffinity?.requiredDuringSchedulingIgnoredDuringExecution, podAffinity?.preferredDuringSchedulingIgnoredDuringExecution, namespace);
  const [requiredAntiAffinity, preferredAntiAffinity] = termsOf(podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution, podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution, namespace);
  return {
    pod,
    namespace,
    key: `${namespace}/${metadata.name ?? metadata.uid ?? ''}`,
    labels,
    ...podRequests(spec),
    hostPorts: hostPortsOf(spec),
    tolerations: spec.tolerations ?? [],
    workload: workloadOf(metadata, namespace, labels),
    requiredAffinity,
    requiredAntiAffinity,
    preferredAffinity,
    preferredAntiAffinity,
    hasPodAffinity: requiredAffinity.length + preferredAffinity.length + requiredAntiAffinity.length + preferredAntiAffinity.length > 0,
    claimNames: claimNamesOf(spec),
  };
}

const compiled = new WeakMap<core.Pod, PodInfo>();

/** The pod's PodInfo, computed on first use. Pods are treated as immutable: a changed pod is a new object. */
export function podInfoOf(pod: core.Pod): PodInfo {
  let info = compiled.get(pod);
  if (info === undefined) {
    info = compile(pod);
    compiled.set(pod, info);
  }
  return info;
}

/**
 * Whether a pod (its namespace and labels) matches a term: the term's
 * namespaces, or its namespaceSelector over the namespaces' labels ({}
 * selects every namespace), and then its label selector.
 */
export function termMatches(term: AffinityTerm, pod: PodInfo, namespaceLabels: ReadonlyMap<string, Labels>): boolean {
  if (!term.namespaces.has(pod.namespace)) {
    const selector = term.namespaceSelector;
    if (selector === undefined || !selector(namespaceLabels.get(pod.namespace) ?? EMPTY_LABELS)) return false;
  }
  return term.selector(pod.labels);
}
