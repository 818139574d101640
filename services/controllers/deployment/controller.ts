// The Deployment controller's loop: informers on Deployments and
// ReplicaSets, and the shared pod informer (a Recreate rollout waits for
// the old pods to be gone). Handlers only enqueue Deployment keys: a
// ReplicaSet's change enqueues its controlling Deployment (or, for an
// orphan, every Deployment whose selector picks it); a pod's deletion
// enqueues the Recreate Deployment above it. A worker reads the caches,
// asks the pure plan (reconcile.ts) and writes: ownership patches,
// then the new ReplicaSet, ReplicaSet updates and deletions, the
// Deployment's revision annotation, its status. Level-triggered; writes go
// through the client given (the controller-manager's fenced one).

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Deployment, ReplicaSet } from '../../../proto/gen/resources/v1/apps.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { runLoop } from '../common/loop.js';
import { controllerOf } from '../common/reconcile-pod.js';
import { selectorMatches } from '../common/reconcile-selector.js';
import { DeploymentSpecError, isNewReplicaSetOf, ownerReferenceTo, planDeployment, REVISION_ANNOTATION, viewOf } from './reconcile.js';

export interface DeploymentControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
}

/**
 * As the ReplicaSet controller's expectations: after writing ReplicaSets
 * (or the Deployment), a Deployment is not synced again until the caches
 * show those writes (or this long has passed), so no decision is made
 * from a view older than its own last writes.
 */
const EXPECTATIONS_TIMEOUT_MS = 60_000;

/** A write to see in the cache: a created object must be there, an updated one there at least at its version (or gone since), a deleted one gone. */
interface Written {
  readonly write: 'create' | 'update' | 'delete';
  readonly version: string | undefined;
}

interface Expectations {
  /** By "Kind/name". */
  readonly writes: Map<string, Written>;
  readonly setAtMs: number;
}

export class DeploymentController {
  private readonly deployments: InformerView<KubeObject>;
  private readonly replicaSets: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  private readonly expectations = new Map<string, Expectations>();

  constructor(private readonly options: DeploymentControllerOptions) {
    this.deployments = informerFor(options, 'Deployment');
    this.replicaSets = informerFor(options, 'ReplicaSet');
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.options.pods.onUpdate((old, pod) => {
      const [before, after] = [old as Pod, pod as Pod];
      if (before.metadata?.deletionTimestamp !== after.metadata?.deletionTimestamp || before.status?.phase !== after.status?.phase) this.podChanged(after);
    });
    this.options.pods.onDelete((pod) => this.podChanged(pod as Pod));
    this.deployments.onAdd((deployment) => this.queue.add(keyOf(deployment)));
    this.deployments.onUpdate((_old, deployment) => this.queue.add(keyOf(deployment)));
    this.deployments.onDelete((deployment) => this.queue.add(keyOf(deployment)));
    this.replicaSets.onAdd((rs) => this.replicaSetChanged(rs));
    this.replicaSets.onUpdate((old, rs) => {
      this.replicaSetChanged(old);
      this.replicaSetChanged(rs);
    });
    this.replicaSets.onDelete((rs) => this.replicaSetChanged(rs));
    await runLoop({ signal, queue: this.queue, own: [this.deployments, this.replicaSets], shared: [this.options.pods], workers: this.options.workers ?? 4, name: 'Deployment', sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private replicaSetChanged(rs: KubeObject): void {
    const namespace = rs.metadata?.namespace ?? '';
    const controller = controllerOf(rs as ReplicaSet);
    if (controller !== undefined) {
      if (controller.kind === 'Deployment') this.queue.add(`${namespace}/${controller.name ?? ''}`);
      return;
    }
    // An orphan: every Deployment of its namespace that selects it may adopt it.
    for (const deployment of this.deployments.list() as Deployment[]) {
      if (deployment.metadata?.namespace === namespace && selectorMatches(deployment.spec?.selector, rs.metadata?.labels)) this.queue.add(keyOf(deployment as KubeObject));
    }
  }

  /** A Recreate rollout waits for its old pods to go: their going enqueues it. */
  private podChanged(pod: Pod): void {
    const namespace = pod.metadata?.namespace ?? '';
    const owner = controllerOf(pod);
    if (owner?.kind !== 'ReplicaSet') return;
    const rs = this.replicaSets.get(namespace, owner.name ?? '');
    const deploymentRef = rs === undefined ? undefined : controllerOf(rs as ReplicaSet);
    if (deploymentRef?.kind !== 'Deployment') return;
    const deployment = this.deployments.get(namespace, deploymentRef.name ?? '') as Deployment | undefined;
    if (deployment?.spec?.strategy?.type === 'Recreate') this.queue.add(`${namespace}/${deploymentRef.name ?? ''}`);
  }

  private expect(key: string, writes: Map<string, Written>): void {
    if (writes.size > 0) this.expectations.set(key, { writes, setAtMs: this.now() });
  }

  private satisfied(key: string, namespace: string): boolean {
    const expected = this.expectations.get(key);
    if (expected === undefined) return true;
    const seen = [...expected.writes].every(([what, { write, version }]) => {
      const [kind, name] = what.split('/') as [string, string];
      const cached = (kind === 'Deployment' ? this.deployments : this.replicaSets).get(namespace, name);
      if (cached === undefined) return write !== 'create';
      return write !== 'delete' && Number(cached.metadata?.resourceVersion ?? 0) >= Number(version ?? 0);
    });
    if (seen || this.now() - expected.setAtMs > EXPECTATIONS_TIMEOUT_MS) {
      this.expectations.delete(key);
      return true;
    }
    return false;
  }

  private async sync(key: string): Promise<void> {
    const object = this.deployments.getByKey(key) as Deployment | undefined;
    const [namespace = '', name = ''] = key.split('/');
    if (object === undefined) {
      this.expectations.delete(key);
      return; // gone: the garbage collector removes its ReplicaSets
    }
    // Still waiting to see its last writes: the events that show them enqueue it again.
    if (!this.satisfied(key, namespace)) return;
    const replicaSets = (this.replicaSets.list() as ReplicaSet[]).filter((rs) => rs.metadata?.namespace === namespace);
    const pods = (this.options.pods.list() as Pod[]).filter((pod) => pod.metadata?.namespace === namespace);
    let plan;
    try {
      plan = planDeployment(object, replicaSets, pods, this.now());
    } catch (error) {
      // Retrying cannot help; a change to the spec enqueues it again.
      if (error instanceof DeploymentSpecError) {
        this.options.log?.(`Deployment ${key}: ${error.message}`);
        return;
      }
      throw error;
    }
    const client = this.options.client;
    const written = new Map<string, Written>();
    try {
      const owner = ownerReferenceTo(viewOf(object));
      for (const rs of plan.adopt) {
        const stored = await client.patch('ReplicaSet', namespace, rs.metadata?.name ?? '', { metadata: { ownerReferences: [...(rs.metadata?.ownerReferences ?? []), owner], resourceVersion: rs.metadata?.resourceVersion } });
        written.set(`ReplicaSet/${rs.metadata?.name ?? ''}`, { write: 'update', version: stored.metadata?.resourceVersion });
      }
      for (const rs of plan.release) {
        const kept = (rs.metadata?.ownerReferences ?? []).filter((reference) => reference.uid !== owner.uid);
        const stored = await client.patch('ReplicaSet', namespace, rs.metadata?.name ?? '', { metadata: { ownerReferences: kept.length === 0 ? null : kept, resourceVersion: rs.metadata?.resourceVersion } });
        written.set(`ReplicaSet/${rs.metadata?.name ?? ''}`, { write: 'update', version: stored.metadata?.resourceVersion });
      }
      if (plan.create !== undefined) await this.createReplicaSet(object, plan.create, written);
      for (const rs of plan.update) {
        const stored = await client.update('ReplicaSet', rs as KubeObject);
        written.set(`ReplicaSet/${rs.metadata?.name ?? ''}`, { write: 'update', version: stored.metadata?.resourceVersion });
      }
      for (const rs of plan.delete) {
        await client.delete('ReplicaSet', namespace, rs.metadata?.name ?? '', { resourceVersion: rs.metadata?.resourceVersion ?? '' }).catch((error: unknown) => {
          if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
        });
        written.set(`ReplicaSet/${rs.metadata?.name ?? ''}`, { write: 'delete', version: undefined });
      }
      let latest = object as KubeObject;
      if (plan.revision !== undefined) {
        latest = await client.patch('Deployment', namespace, name, { metadata: { annotations: { [REVISION_ANNOTATION]: plan.revision }, resourceVersion: object.metadata?.resourceVersion } });
        written.set(`Deployment/${name}`, { write: 'update', version: latest.metadata?.resourceVersion });
      }
      if (plan.status !== undefined) {
        const stored = await client.updateStatus('Deployment', { ...latest, status: plan.status });
        written.set(`Deployment/${name}`, { write: 'update', version: stored.metadata?.resourceVersion });
      }
    } finally {
      this.expect(key, written);
    }
    if (plan.recheckAfterMs !== undefined) this.queue.addAfter(key, plan.recheckAfterMs);
  }

  /**
   * Create the new ReplicaSet. AlreadyExists with this Deployment's template
   * is a create this cache has not seen yet; anything else there is a hash
   * collision: count it in the status (the next name differs) and retry.
   */
  private async createReplicaSet(deployment: Deployment, rs: ReplicaSet, written: Map<string, Written>): Promise<void> {
    const namespace = rs.metadata?.namespace ?? '';
    const name = rs.metadata?.name ?? '';
    try {
      const stored = await this.options.client.create('ReplicaSet', rs as KubeObject);
      written.set(`ReplicaSet/${name}`, { write: 'create', version: stored.metadata?.resourceVersion });
      return;
    } catch (error) {
      if (statusCodeOf(error) !== grpc.status.ALREADY_EXISTS) throw error;
    }
    const existing = (await this.options.client.get('ReplicaSet', namespace, name)) as ReplicaSet;
    if (isNewReplicaSetOf(deployment, existing)) {
      written.set(`ReplicaSet/${name}`, { write: 'create', version: existing.metadata?.resourceVersion });
      throw new Error(`ReplicaSet ${name} exists already; syncing again once the cache has it`);
    }
    const count = (deployment.status?.collisionCount ?? 0) + 1;
    await this.options.client.updateStatus('Deployment', { ...(deployment as KubeObject), status: { ...deployment.status, collisionCount: count } });
    throw new Error(`hash collision on ReplicaSet ${name}: collisionCount is now ${count}`);
  }
}
