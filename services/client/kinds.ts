// The kinds the API serves: for each, its apiVersion, the resource name in
// URLs and storage keys (plural, lowercase, as Kubernetes spells it), whether
// it lives in a namespace, the message in proto/resources that is its
// schema, and the short names kubectl users type.

export interface KindInfo {
  readonly kind: string;
  /** "v1" for the core group, otherwise "group/version". */
  readonly apiVersion: string;
  readonly resource: string;
  readonly namespaced: boolean;
  /** Whether the kind has a status subresource (written only through UpdateStatus). */
  readonly hasStatus: boolean;
  readonly shortNames: readonly string[];
}

function kind(kindName: string, apiVersion: string, resource: string, namespaced: boolean, hasStatus: boolean, shortNames: readonly string[] = []): KindInfo {
  return { kind: kindName, apiVersion, resource, namespaced, hasStatus, shortNames };
}

export const KINDS: readonly KindInfo[] = [
  kind('Namespace', 'v1', 'namespaces', false, true, ['ns']),
  kind('Node', 'v1', 'nodes', false, true, ['no']),
  kind('Pod', 'v1', 'pods', true, true, ['po']),
  kind('Service', 'v1', 'services', true, true, ['svc']),
  kind('Endpoints', 'v1', 'endpoints', true, false, ['ep']),
  kind('ConfigMap', 'v1', 'configmaps', true, false, ['cm']),
  kind('Secret', 'v1', 'secrets', true, false),
  kind('ServiceAccount', 'v1', 'serviceaccounts', true, false, ['sa']),
  kind('ReplicationController', 'v1', 'replicationcontrollers', true, true, ['rc']),
  kind('PersistentVolume', 'v1', 'persistentvolumes', false, true, ['pv']),
  kind('PersistentVolumeClaim', 'v1', 'persistentvolumeclaims', true, true, ['pvc']),
  kind('ResourceQuota', 'v1', 'resourcequotas', true, true, ['quota']),
  kind('Event', 'v1', 'events', true, false, ['ev']),
  kind('ReplicaSet', 'apps/v1', 'replicasets', true, true, ['rs']),
  kind('Deployment', 'apps/v1', 'deployments', true, true, ['deploy']),
  kind('DaemonSet', 'apps/v1', 'daemonsets', true, true, ['ds']),
  kind('StatefulSet', 'apps/v1', 'statefulsets', true, true, ['sts']),
  kind('Job', 'batch/v1', 'jobs', true, true),
  kind('CronJob', 'batch/v1', 'cronjobs', true, true, ['cj']),
  kind('HorizontalPodAutoscaler', 'autoscaling/v2', 'horizontalpodautoscalers', true, true, ['hpa']),
  kind('PodMetrics', 'metrics.k8s.io/v1beta1', 'podmetrics', true, false),
  kind('NodeMetrics', 'metrics.k8s.io/v1beta1', 'nodemetrics', false, false),
  kind('Lease', 'coordination.k8s.io/v1', 'leases', true, false),
  kind('Role', 'rbac.authorization.k8s.io/v1', 'roles', true, false),
  kind('RoleBinding', 'rbac.authorization.k8s.io/v1', 'rolebindings', true, false),
  kind('ClusterRole', 'rbac.authorization.k8s.io/v1', 'clusterroles', false, false),
  kind('ClusterRoleBinding', 'rbac.authorization.k8s.io/v1', 'clusterrolebindings', false, false),
];

const byKind = new Map(KINDS.map((info) => [info.kind, info]));
const byAlias = new Map<string, KindInfo>();
for (const info of KINDS) {
  for (const alias of [info.kind.toLowerCase(), info.resource, info.resource.replace(/s$/, ''), ...info.shortNames]) byAlias.set(alias, info);
}

export function kindInfo(kindName: string): KindInfo | undefined {
  return byKind.get(kindName);
}

/** What a user may type for a kind: "pods", "pod", "po", "Pod", "deployments.apps"… */
export function resolveKind(name: string): KindInfo | undefined {
  const lower = name.toLowerCase();
  return byAlias.get(lower) ?? byAlias.get(lower.split('.')[0]!);
}

/** The storage key of an object: /registry/<resource>/<namespace>/<name>, or /registry/<resource>/<name> when cluster-scoped. */
export function objectKey(info: KindInfo, namespace: string, name: string): string {
  return info.namespaced ? `/registry/${info.resource}/${namespace}/${name}` : `/registry/${info.resource}/${name}`;
}

/** The key prefix of a listing: every object of a kind, or of a kind in one namespace. */
export function listPrefix(info: KindInfo, namespace: string | undefined): string {
  return info.namespaced && namespace !== undefined && namespace !== '' ? `/registry/${info.resource}/${namespace}/` : `/registry/${info.resource}/`;
}
