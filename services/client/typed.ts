// Typed wrappers over ResourceClient: `typed(client, 'Pod').get(ns, name)`
// answers a Pod as generated from proto/resources (every field optional, as
// objects arrive from the server), so callers get names and shapes checked
// by the compiler instead of indexing records.

import type * as apps from '../../proto/gen/resources/v1/apps.js';
import type * as autoscaling from '../../proto/gen/resources/v1/autoscaling.js';
import type * as batch from '../../proto/gen/resources/v1/batch.js';
import type * as coordination from '../../proto/gen/resources/v1/coordination.js';
import type * as core from '../../proto/gen/resources/v1/core.js';
import type * as metrics from '../../proto/gen/resources/v1/metrics.js';
import type * as rbac from '../../proto/gen/resources/v1/rbac.js';
import type { DeleteParams, KubeObject, ResourceClient, WatchParams } from './resources.js';

/** Each kind the API serves and its generated type. */
export interface KindTypes {
  Namespace: core.Namespace;
  Node: core.Node;
  Pod: core.Pod;
  Service: core.Service;
  Endpoints: core.Endpoints;
  ConfigMap: core.ConfigMap;
  Secret: core.Secret;
  ServiceAccount: core.ServiceAccount;
  ReplicationController: core.ReplicationController;
  PersistentVolume: core.PersistentVolume;
  PersistentVolumeClaim: core.PersistentVolumeClaim;
  ResourceQuota: core.ResourceQuota;
  Event: core.Event;
  ReplicaSet: apps.ReplicaSet;
  Deployment: apps.Deployment;
  DaemonSet: apps.DaemonSet;
  StatefulSet: apps.StatefulSet;
  Job: batch.Job;
  CronJob: batch.CronJob;
  HorizontalPodAutoscaler: autoscaling.HorizontalPodAutoscaler;
  PodMetrics: metrics.PodMetrics;
  NodeMetrics: metrics.NodeMetrics;
  Lease: coordination.Lease;
  Role: rbac.Role;
  RoleBinding: rbac.RoleBinding;
  ClusterRole: rbac.ClusterRole;
  ClusterRoleBinding: rbac.ClusterRoleBinding;
}

export type KindName = keyof KindTypes;

/** Every typed kind, checked by the compiler against KindTypes (a test checks it against KINDS). */
export const TYPED_KINDS: Readonly<Record<KindName, true>> = {
  Namespace: true,
  Node: true,
  Pod: true,
  Service: true,
  Endpoints: true,
  ConfigMap: true,
  Secret: true,
  ServiceAccount: true,
  ReplicationController: true,
  PersistentVolume: true,
  PersistentVolumeClaim: true,
  ResourceQuota: true,
  Event: true,
  ReplicaSet: true,
  Deployment: true,
  DaemonSet: true,
  StatefulSet: true,
  Job: true,
  CronJob: true,
  HorizontalPodAutoscaler: true,
  PodMetrics: true,
  NodeMetrics: true,
  Lease: true,
  Role: true,
  RoleBinding: true,
  ClusterRole: true,
  ClusterRoleBinding: true,
};

export interface TypedList<T> {
  readonly items: T[];
  readonly resourceVersion: string;
  readonly continue: string;
}

/** The resource API for one kind, typed. */
export interface TypedResources<T> {
  get(namespace: string, name: string): Promise<T>;
  list(params?: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number; continue?: string; resourceVersion?: string }): Promise<TypedList<T>>;
  create(object: T): Promise<T>;
  update(object: T): Promise<T>;
  updateStatus(object: T): Promise<T>;
  patch(namespace: string, name: string, patch: unknown): Promise<T>;
  delete(namespace: string, name: string, params?: DeleteParams): Promise<T>;
  watch(params: WatchParams, onEvent: (type: string, object: T) => void, onError?: (error: Error) => void): () => void;
}

export function typed<K extends KindName>(client: ResourceClient, kind: K): TypedResources<KindTypes[K]> {
  type T = KindTypes[K];
  const as = (object: KubeObject): T => object as unknown as T;
  const raw = (object: T): KubeObject => object as unknown as KubeObject;
  return {
    get: async (namespace, name) => as(await client.get(kind, namespace, name)),
    list: async (params = {}) => {
      const result = await client.list(kind, params);
      return { items: result.items.map(as), resourceVersion: result.resourceVersion, continue: result.continue };
    },
    create: async (object) => as(await client.create(kind, raw(object))),
    update: async (object) => as(await client.update(kind, raw(object))),
    updateStatus: async (object) => as(await client.updateStatus(kind, raw(object))),
    patch: async (namespace, name, patch) => as(await client.patch(kind, namespace, name, patch)),
    delete: async (namespace, name, params = {}) => as(await client.delete(kind, namespace, name, params)),
    watch: (params, onEvent, onError) => client.watch(kind, params, { onEvent: (type, object) => onEvent(type, as(object)), ...(onError === undefined ? {} : { onError }) }),
  };
}
