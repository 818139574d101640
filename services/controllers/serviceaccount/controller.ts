// The ServiceAccounts controller's loop, as Kubernetes': informers on
// Namespaces and ServiceAccounts; a namespace's key is queued when it is
// added or changes and when one of its accounts is deleted; a sync creates
// the default accounts an active namespace lacks (reconcile.ts). A create
// that finds the account already there (the cache was behind) is success;
// one refused because the namespace began terminating is nothing to retry.

import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import * as grpc from '@grpc/grpc-js';
import type { Namespace } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { runWorkers, WorkQueue } from '../../client/workqueue.js';
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
    this.namespaces.start();
    this.accounts.start();
    signal.addEventListener('abort', () => {
      this.queue.shutDown();
      this.namespaces.stop();
      this.accounts.stop();
    }, { once: true });
    await Promise.all([this.namespaces.waitForSync(), this.accounts.waitForSync()]);
    await runWorkers(this.queue, this.options.workers ?? 2, (key) => this.sync(key), (key, error) => this.options.log?.(`serviceaccounts of ${key}: ${error instanceof Error ? error.message : String(error)}`));
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
