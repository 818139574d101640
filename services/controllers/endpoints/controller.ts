// The Endpoints controller's loop: Services and pods (shared informer) in;
// a Service's key is queued when it changes and when a pod it may select
// changes; a sync writes the Endpoints the pure decision (reconcile.ts)
// asks for — create, update when different, delete when the Service is
// gone or lost its selector's management. Level-triggered, as the others.

import { runLoop } from '../common/loop.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import type { Endpoints, Pod, Service } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import * as grpc from '@grpc/grpc-js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { desiredEndpoints, endpointsMatch } from './reconcile.js';

export interface EndpointsControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
}


export class EndpointsController {
  private readonly services: InformerView<KubeObject>;
  private readonly endpoints: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();

  constructor(private readonly options: EndpointsControllerOptions) {
    this.services = informerFor(options, 'Service');
    this.endpoints = informerFor(options, 'Endpoints');
  }

  async run(signal: AbortSignal): Promise<void> {
    this.services.onAdd((service) => this.queue.add(keyOf(service)));
    this.services.onUpdate((_old, service) => this.queue.add(keyOf(service)));
    this.services.onDelete((service) => this.queue.add(keyOf(service)));
    this.endpoints.onDelete((endpoints) => this.queue.add(keyOf(endpoints)));
    this.options.pods.onAdd((pod) => this.podChanged(pod as Pod));
    this.options.pods.onUpdate((old, pod) => {
      this.podChanged(old as Pod);
      this.podChanged(pod as Pod);
    });
    this.options.pods.onDelete((pod) => this.podChanged(pod as Pod));
    await runLoop({ signal, queue: this.queue, own: [this.services, this.endpoints], shared: [this.options.pods], workers: this.options.workers ?? 2, name: 'endpoints', sync: (key) => this.sync(key), log: this.options.log });
  }

  /** Every Service of the pod's namespace whose selector picks it (before or after a change). */
  private podChanged(pod: Pod): void {
    const namespace = pod.metadata?.namespace ?? '';
    for (const service of this.services.list() as Service[]) {
      if (service.metadata?.namespace !== namespace) continue;
      const selector = service.spec?.selector;
      if (selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => pod.metadata?.labels?.[key] === value)) {
        this.queue.add(keyOf(service as KubeObject));
      }
    }
  }

  private async sync(key: string): Promise<void> {
    const service = this.services.getByKey(key) as Service | undefined;
    const current = this.endpoints.getByKey(key) as Endpoints | undefined;
    const [namespace = '', name = ''] = key.split('/');
    const client = this.options.client;
    const desired = service === undefined ? undefined : desiredEndpoints(service, (this.options.pods.list() as Pod[]).filter((pod) => pod.metadata?.namespace === namespace));
    if (desired === undefined) {
      // No Service (its Endpoints go with it); a Service without a selector keeps the Endpoints its user wrote.
      if (service === undefined && current !== undefined) {
        await client.delete('Endpoints', namespace, name, { resourceVersion: current.metadata?.resourceVersion ?? '' }).catch((error: unknown) => {
          if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
        });
      }
      return;
    }
    if (current === undefined) {
      await client.create('Endpoints', desired as KubeObject).catch((error: unknown) => {
        // Made meanwhile (the informer had not seen it yet): the next sync compares.
        if (statusCodeOf(error) !== grpc.status.ALREADY_EXISTS) throw error;
        this.queue.addRateLimited(key);
      });
      return;
    }
    if (endpointsMatch(current, desired)) return;
    await client.update('Endpoints', { ...current, metadata: { ...current.metadata, labels: desired.metadata?.labels }, subsets: desired.subsets } as KubeObject);
  }
}
