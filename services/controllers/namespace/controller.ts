// The namespace controller's loop, as Kubernetes' NamespaceController: an
// informer on Namespaces queues each one being deleted; a sync lists what
// the namespace still holds (every namespaced kind, straight from the API
// server, not caches: the decision to finalize must not rest on a stale
// view), deletes it (Background propagation), lists again, writes the
// conditions (reconcile.ts) and, once nothing is left, removes the
// 'kubernetes' finalizer with an update of spec.finalizers (mast has no
// /finalize subresource: the registry allows that update while the
// namespace terminates, and removes the namespace when no finalizer is
// left). Content in its grace period is waited for: the namespace is looked
// at again when a pod of it goes, or after the longest grace left.
//
// Nothing new can appear meanwhile: the registry refuses creates in a
// terminating namespace, checked in the create's own transaction.

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Namespace, Pod } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import { KINDS, type KindInfo } from '../../client/kinds.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { listAll, messageOf, runLoop } from '../common/loop.js';
import { needsFinalizing, planContentDeletion, planNamespaceStatus, withoutOurFinalizer, type ContentGroup } from './reconcile.js';

export interface NamespaceControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** The shared pod informer (the caller starts it): a pod that goes re-queues its terminating namespace. */
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
}

/** Deletes in flight at once, per namespace. */
const DELETE_PARALLELISM = 16;

/** A kind as Kubernetes prints a GroupResource: "pods", "deployments.apps". */
function groupResource(info: KindInfo): string {
  return info.apiVersion.includes('/') ? `${info.resource}.${info.apiVersion.split('/')[0]!}` : info.resource;
}

export class NamespaceController {
  private readonly namespaces: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();

  constructor(private readonly options: NamespaceControllerOptions) {
    this.namespaces = informerFor(options, 'Namespace');
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    const consider = (namespace: KubeObject): void => {
      if (needsFinalizing(namespace as Namespace)) this.queue.add(keyOf(namespace));
    };
    this.namespaces.onAdd(consider);
    this.namespaces.onUpdate((_old, namespace) => consider(namespace));
    const podGone = (pod: KubeObject): void => {
      const namespace = this.namespaces.get('', pod.metadata?.namespace ?? '');
      if (namespace !== undefined) consider(namespace);
    };
    this.options.pods.onDelete(podGone);
    this.options.pods.onUpdate((old, pod) => {
      if ((old as Pod).metadata?.deletionTimestamp === undefined && (pod as Pod).metadata?.deletionTimestamp !== undefined) podGone(pod);
    });
    await runLoop({ signal, queue: this.queue, own: [this.namespaces], shared: [this.options.pods], workers: this.options.workers ?? 2, name: 'namespace', sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private async sync(name: string): Promise<void> {
    const cached = this.namespaces.getByKey(name) as Namespace | undefined;
    if (cached === undefined || !needsFinalizing(cached)) return;
    const content = await this.listContent(name);
    const failures = await this.deleteContent(name, content);
    const deleted = content.some((group) => group.objects.length > 0);
    const remaining = deleted ? await this.listContent(name) : content;
    const plan = planNamespaceStatus(cached, remaining, failures, this.now());
    const client = this.options.client;
    let latest = cached as KubeObject;
    if (plan.changed) {
      const object = structuredClone(cached) as KubeObject & Namespace;
      object.status = { ...object.status, phase: 'Terminating', conditions: plan.conditions };
      latest = await client.updateStatus('Namespace', object);
    }
    if (plan.finalize) {
      const object = structuredClone(latest) as KubeObject & Namespace;
      object.spec = { ...object.spec, finalizers: withoutOurFinalizer(object) };
      await client.update('Namespace', object).catch((error: unknown) => {
        if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
      });
      this.options.log?.(`namespace ${name}: empty; finalized`);
    } else if (plan.recheckAfterMs !== undefined) {
      this.queue.addAfter(name, plan.recheckAfterMs);
    }
    if (failures.length > 0) throw new Error(`deleting the content failed: ${failures.join('; ')}`);
  }

  /** Everything of every namespaced kind in the namespace, straight from the API server. */
  private async listContent(namespace: string): Promise<ContentGroup[]> {
    const kinds = KINDS.filter((info) => info.namespaced);
    return Promise.all(kinds.map(async (info): Promise<ContentGroup> => ({ kind: info.kind, resource: groupResource(info), objects: await listAll(this.options.client, info.kind, namespace) })));
  }

  /** Delete what the plan says, DELETE_PARALLELISM at a time; one message per kind that failed. */
  private async deleteContent(namespace: string, content: readonly ContentGroup[]): Promise<string[]> {
    const deletions = planContentDeletion(content);
    const failed = new Map<string, string>();
    for (let start = 0; start < deletions.length; start += DELETE_PARALLELISM) {
      await Promise.all(deletions.slice(start, start + DELETE_PARALLELISM).map(async (deletion) => {
        try {
          await this.options.client.delete(deletion.kind, namespace, deletion.name, { propagationPolicy: 'Background' });
        } catch (error) {
          if (statusCodeOf(error) === grpc.status.NOT_FOUND) return;
          if (!failed.has(deletion.resource)) failed.set(deletion.resource, `${deletion.resource} "${deletion.name}": ${messageOf(error)}`);
        }
      }));
    }
    return [...failed.values()].sort();
  }
}
