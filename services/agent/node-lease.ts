// What every node agent does the same way, real or hollow: register its
// Node (create it, or take the one already there) and renew its Lease in
// kube-node-lease — the heartbeat the node lifecycle controller watches.

import * as grpc from '@grpc/grpc-js';
import { microTime } from '../client/leader-election.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../client/resources.js';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
/** The kubelet's node lease: 40 s, renewed every quarter of it. */
export const NODE_LEASE_DURATION_SECONDS = 40;
export const NODE_LEASE_RENEW_INTERVAL_MS = 10_000;

/** The calls a node agent makes on its Node and Lease. */
export type NodeClient = Pick<ResourceClient, 'get' | 'create' | 'update' | 'updateStatus'>;

/** Create the Node; if it exists already, answer the stored one (created: false). */
export async function createOrGetNode(client: NodeClient, node: KubeObject): Promise<{ node: KubeObject; created: boolean }> {
  try {
    return { node: await client.create('Node', node), created: true };
  } catch (error) {
    if (statusCodeOf(error) !== grpc.status.ALREADY_EXISTS) throw error;
    return { node: await client.get('Node', '', node.metadata?.name ?? ''), created: false };
  }
}

/**
 * Renew the node's Lease (create it when missing). With `owner` (the Node's
 * uid), the Lease is owned by the Node, as the kubelet's is, so it goes
 * when the Node goes; an existing Lease without the owner gets it.
 */
export async function renewNodeLease(client: NodeClient, nodeName: string, now: Date, owner?: { readonly uid: string }): Promise<void> {
  const spec = { holderIdentity: nodeName, leaseDurationSeconds: NODE_LEASE_DURATION_SECONDS, renewTime: microTime(now) };
  const ownerReferences = owner === undefined || owner.uid === '' ? undefined : [{ apiVersion: 'v1', kind: 'Node', name: nodeName, uid: owner.uid }];
  try {
    const lease = await client.get('Lease', NODE_LEASE_NAMESPACE, nodeName);
    const owned = ownerReferences === undefined || Array.isArray(lease.metadata?.ownerReferences) ? lease.metadata : { ...lease.metadata, ownerReferences };
    await client.update('Lease', { ...lease, metadata: owned, spec: { ...(lease.spec as object), ...spec } });
  } catch (error) {
    if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
    const metadata = { name: nodeName, namespace: NODE_LEASE_NAMESPACE, ...(ownerReferences === undefined ? {} : { ownerReferences }) };
    await client.create('Lease', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec });
  }
}
