// The resource quota controller's loop, as Kubernetes' ResourceQuotaController:
// an informer on ResourceQuotas; the key is a namespace ("its quotas"). A
// namespace is synced when one of its quotas is added or its spec changes,
// when one of its pods is added, finishes or goes (the shared pod informer),
// and every resyncPeriodMs. A sync recomputes each quota's status from the
// objects that exist (reconcile.ts) and writes it where it differs.
//
// Why the write cannot undo a charge the API server made meanwhile: the
// registry charges every create, delete and change of usage in the same
// transaction as the object, and that transaction rewrites every quota it
// charges (a new resourceVersion). The status is written with the
// resourceVersion of the quota as it was read (q), so it lands only if no
// charge touched the quota after q. And the objects it was computed from
// are a view at a revision >= q: lists from the API server (linearizable,
// made after q was read), or the pod informer's cache when that cache is
// already up to date with q (lastSyncResourceVersion >= q) — otherwise the
// pods are listed too. So if the write lands, nothing the quota counts
// changed between the view and the write, and the count is exact. If a
// charge came between (or the quota cache was behind the view), the write
// fails with a conflict and the namespace is counted again shortly.

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import { KINDS, kindInfo, type KindInfo } from '../../client/kinds.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { contributes } from '../../client/quota.js';
import { listAll, runLoop } from '../common/loop.js';
import { hardOf, planQuotaStatus, type QuotaObject } from './reconcile.js';

export interface ResourceQuotaControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** The shared pod informer, of every pod without selectors (the caller starts it). */
  readonly pods: InformerView<KubeObject>;
  /** Every namespace with quotas is recounted this often (Kubernetes: 5 minutes). */
  readonly resyncPeriodMs?: number;
  readonly workers?: number;
  readonly log?: (line: string) => void;
}

export const DEFAULT_QUOTA_RESYNC_PERIOD_MS = 5 * 60_000;
/** A count that lost to a charge is made again after this long (the quota cache catches up meanwhile). */
const CONFLICT_RETRY_MS = 100;

const POD_INFO = kindInfo('Pod')!;

function finished(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function revisionOf(object: QuotaObject): number {
  const version = Number(object.metadata?.resourceVersion ?? '');
  return Number.isFinite(version) ? version : Number.POSITIVE_INFINITY;
}

export class ResourceQuotaController {
  private readonly quotas: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  private readonly resyncPeriodMs: number;

  constructor(private readonly options: ResourceQuotaControllerOptions) {
    this.quotas = informerFor(options, 'ResourceQuota');
    this.resyncPeriodMs = options.resyncPeriodMs ?? DEFAULT_QUOTA_RESYNC_PERIOD_MS;
    if (!(this.resyncPeriodMs > 0)) throw new Error(`ResourceQuotaController: resyncPeriodMs must be positive, not ${this.resyncPeriodMs}`);
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    const namespaceOf = (object: KubeObject): string => object.metadata?.namespace ?? '';
    this.quotas.onAdd((quota) => this.queue.add(namespaceOf(quota)));
    this.quotas.onUpdate((old, quota) => {
      // Charges rewrite status.used all the time: only a new spec, or a status.hard that lags it, needs a count.
      if (JSON.stringify(hardOf(old)) !== JSON.stringify(hardOf(quota)) || JSON.stringify((quota.status as { hard?: unknown } | undefined)?.hard ?? {}) !== JSON.stringify((quota.spec as { hard?: unknown } | undefined)?.hard ?? {})) {
        this.queue.add(namespaceOf(quota));
      }
    });
    const podChanged = (pod: KubeObject): void => {
      if (this.hasQuotas(namespaceOf(pod))) this.queue.add(namespaceOf(pod));
    };
    this.options.pods.onAdd(podChanged);
    this.options.pods.onDelete(podChanged);
    this.options.pods.onUpdate((old, pod) => {
      if (finished(old as Pod) !== finished(pod as Pod)) podChanged(pod);
    });
    await runLoop({ signal, queue: this.queue, own: [this.quotas], shared: [this.options.pods], workers: this.options.workers ?? 2, name: 'resourcequotas of', sync: (key) => this.sync(key), log: this.options.log });
  }

  private quotasOf(namespace: string): KubeObject[] {
    return this.quotas.list().filter((quota) => quota.metadata?.namespace === namespace);
  }

  private hasQuotas(namespace: string): boolean {
    return this.quotas.list().some((quota) => quota.metadata?.namespace === namespace);
  }

  private async sync(namespace: string): Promise<void> {
    const quotas = this.quotasOf(namespace);
    if (quotas.length === 0) return;
    const names = new Set(quotas.flatMap((quota) => Object.keys(hardOf(quota))));
    const newest = Math.max(...quotas.map(revisionOf));
    const content = new Map<KindInfo, readonly QuotaObject[]>();
    await Promise.all(KINDS.filter((info) => info.namespaced && contributes(info, names)).map(async (info) => {
      // The shared cache serves when it already holds every change up to the quotas' versions (see the top).
      const cacheFresh = info === POD_INFO && Number(this.options.pods.lastSyncResourceVersion) >= newest;
      content.set(info, cacheFresh ? this.options.pods.list().filter((pod) => pod.metadata?.namespace === namespace) : await listAll(this.options.client, info.kind, namespace));
    }));
    let conflicted = false;
    for (const quota of quotas) {
      const status = planQuotaStatus(quota, content);
      if (status === undefined) continue;
      try {
        // Pinned to the version read: a charge since then makes this a conflict, never a wrong count.
        await this.options.client.updateStatus('ResourceQuota', { ...structuredClone(quota), status: { ...(quota.status as object | undefined), ...status } });
      } catch (error) {
        const code = statusCodeOf(error);
        if (code === grpc.status.NOT_FOUND) continue;
        if (code !== grpc.status.ABORTED) throw error;
        conflicted = true;
      }
    }
    // Expected when charges keep coming: not an error, just another count.
    this.queue.addAfter(namespace, conflicted ? CONFLICT_RETRY_MS : this.resyncPeriodMs);
  }
}
