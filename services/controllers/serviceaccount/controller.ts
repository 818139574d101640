// The ServiceAccounts controller's loop, as Kubernetes': informers on
// Namespaces and ServiceAccounts; a namespace's key is queued when it is
// added or changes and when one of its accounts is deleted; a sync creates
// the default accounts an active namespace lacks (reconcile.ts). A create
// that finds the account already there (the cache was behind) is success;
// one refused because the namespace began terminating is nothing to retry.

import { runLoop } from '../common/loop.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Namespace } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { planDefaultServiceAccounts } from './reconcile.js';

export interface ServiceAccountsControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly workers?: number;
  readonly log?: (line: string) => void;
}

export class ServiceAccountsController {
  private readonly namespaces: InformerView<KubeObject>;
  private readonly accounts: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();

  constructor(private readonly options: ServiceAccountsControllerOptions) {
    this.namespaces = informerFor(options, 'Namespace');
    this.accounts = informerFor(options, 'ServiceAccount');
  }

  async run(signal: AbortSignal): Promise<void> {
    this.namespaces.onAdd((namespace) => this.queue.add(keyOf(namespace)));
    this.namespaces.onUpdate((_old, namespace) => this.queue.add(keyOf(namespace)));
    this.accounts.onDelete((account) => this.queue.add(account.metadata?.namespace ?? ''));
    await runLoop({ signal, queue: this.queue, own: [this.namespaces, this.accounts], workers: this.options.workers ?? 2, name: 'serviceaccounts of', sync: (key) => this.sync(key), log: this.options.log });
  }

  private async sync(name: string): Promise<void> {
    const namespace = this.namespaces.getByKey(name) as Namespace | undefined;
    if (namespace === undefined) return;
    const existing = new Set(this.accounts.list().filter((account) => account.metadata?.namespace === name).map((account) => account.metadata?.name ?? ''));
    for (const account of planDefaultServiceAccounts(namespace, existing)) {
      try {
        await this.options.client.create('ServiceAccount', account);
      } catch (error) {
        const code = statusCodeOf(error);
        // Already there; the namespace went or began terminating (its next event says so).
        if (code === grpc.status.ALREADY_EXISTS || code === grpc.status.NOT_FOUND || (code === grpc.status.PERMISSION_DENIED && /being terminated/.test((error as Error).message))) continue;
        throw error;
      }
    }
  }
}
