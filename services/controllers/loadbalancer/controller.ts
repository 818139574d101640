// The LoadBalancer controller's loop: one Service informer in. Addresses
// are one shared resource, so the queue holds a single key and a sync plans
// every Service at once (reconcile.ts) and writes, through the status
// subresource, each status.loadBalancer that differs — releases first, so
// an address moving to another Service is never shown twice by this
// controller's own writes. Writes are pinned to the cached resourceVersion:
// a conflict means the cache is behind, and the key comes back once it has
// caught up. A Service that stays without an address gets one Warning Event
// per reason (not one per sync), an assigned one a Normal IPAllocated.

import * as grpc from '@grpc/grpc-js';
import type { Service } from '../../../proto/gen/resources/v1/core.js';
import type { EventRecorder, EventType } from '../../client/events.js';
import type { KubeObject, ResourceClient } from '../../client/resources.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import { WorkQueue } from '../../client/workqueue.js';
import { isCode, runLoop } from '../common/loop.js';
import { describePool, desiredLoadBalancerStatus, loadBalancerStatusMatches, planLoadBalancers, poolSize, serviceKey, shownIp, type IpPool, type LoadBalancerDecision } from './reconcile.js';

export interface LoadBalancerControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** The addresses to hand out (--load-balancer-ip-pool); absent: none, every LoadBalancer Service stays pending. */
  readonly pool?: IpPool;
  readonly log?: (line: string) => void;
  /** Where the per-Service Events go; absent: they are logged instead. */
  readonly events?: EventRecorder;
}

/** The one queue key: every sync plans the whole pool. */
const POOL_KEY = 'pool';

/** Whether a Service's change can take or free an address. */
function concernsPool(service: Service): boolean {
  return service.spec?.type === 'LoadBalancer' || (service.status?.loadBalancer?.ingress ?? []).length > 0;
}

/** A Service's uid (a Service made again under the same name is another one), else its key. */
function identity(service: Service): string {
  return service.metadata?.uid || serviceKey(service);
}

export class LoadBalancerController {
  private readonly services: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();
  /** Service uid → the pending reason last reported for it: one Event per reason, not per sync. Pruned to the Services that exist. */
  private readonly reported = new Map<string, string>();

  constructor(private readonly options: LoadBalancerControllerOptions) {
    this.services = informerFor(options, 'Service');
  }

  async run(signal: AbortSignal): Promise<void> {
    const pool = this.options.pool;
    this.options.log?.(pool === undefined ? 'loadbalancer: no --load-balancer-ip-pool: LoadBalancer Services stay pending' : `loadbalancer: handing out ${poolSize(pool)} addresses from ${describePool(pool)}`);
    this.services.onAdd((service) => this.changed(service as Service));
    this.services.onUpdate((old, service) => {
      if (concernsPool(old as Service)) this.queue.add(POOL_KEY);
      else this.changed(service as Service);
    });
    this.services.onDelete((service) => this.changed(service as Service));
    // One worker: the key is one, and a key is never handed to two workers anyway.
    await runLoop({ signal, queue: this.queue, own: [this.services], workers: 1, name: 'loadbalancer', sync: () => this.sync(), log: this.options.log });
  }

  private changed(service: Service): void {
    if (concernsPool(service)) this.queue.add(POOL_KEY);
  }

  private async sync(): Promise<void> {
    const services = this.services.list() as Service[];
    const plan = planLoadBalancers(this.options.pool, services);
    this.forgetGone(services);
    const writes: Array<{ service: Service; decision: LoadBalancerDecision }> = [];
    // In the plan's order (creation order), so the writes come in the same order on every run.
    for (const [key, decision] of plan) {
      const service = this.services.getByKey(key) as Service | undefined;
      if (service === undefined) continue;
      if (decision.kind === 'pending') this.reportPending(service, decision.reason);
      else this.reported.delete(identity(service));
      if (!loadBalancerStatusMatches(service, decision)) writes.push({ service, decision });
    }
    // First every address a Service shows but is to lose (a move is a release, then an assignment)...
    const assignments: Array<{ service: Service; ip: string }> = [];
    for (const { service, decision } of writes) {
      const shown = shownIp(service);
      const losing = shown !== undefined && (decision.kind !== 'assign' || decision.ip !== shown);
      if (losing) {
        const written = await this.write(service, decision.kind === 'assign' ? { kind: 'release' } : decision);
        // Not released: the assignments below may reuse its address, so they wait for the next sync.
        if (written === 'behind') {
          this.queue.addRateLimited(POOL_KEY);
          return;
        }
        if (written === 'gone') continue;
        if (decision.kind === 'assign') assignments.push({ service: written, ip: decision.ip });
      } else if (decision.kind === 'assign') {
        assignments.push({ service, ip: decision.ip });
      }
    }
    // ...then the assignments, so no address is shown by two Services through this controller's writes.
    let behind = false;
    for (const { service, ip } of assignments) {
      const written = await this.write(service, { kind: 'assign', ip });
      if (written === 'behind') behind = true;
      else if (written !== 'gone') this.record(service, 'Normal', 'IPAllocated', `Assigned IP ["${ip}"]`);
    }
    if (behind) this.queue.addRateLimited(POOL_KEY);
  }

  /** Write the decision's status.loadBalancer: the Service as stored, or why not (a conflict: the cache is behind). */
  private async write(service: Service, decision: LoadBalancerDecision): Promise<Service | 'behind' | 'gone'> {
    const next = { ...service, status: { ...service.status, loadBalancer: desiredLoadBalancerStatus(decision) } };
    try {
      return (await this.options.client.updateStatus('Service', next as KubeObject)) as Service;
    } catch (error) {
      if (isCode(error, grpc.status.ABORTED)) return 'behind';
      // Deleted meanwhile: its address is free, and its delete event brings the key back.
      if (isCode(error, grpc.status.NOT_FOUND)) return 'gone';
      throw error;
    }
  }

  private reportPending(service: Service, reason: string): void {
    const id = identity(service);
    if (this.reported.get(id) === reason) return;
    this.reported.set(id, reason);
    this.record(service, 'Warning', 'AllocationFailed', `Failed to allocate IP for "${serviceKey(service)}": ${reason}`);
  }

  private forgetGone(services: readonly Service[]): void {
    const present = new Set(services.map(identity));
    for (const id of [...this.reported.keys()]) if (!present.has(id)) this.reported.delete(id);
  }

  private record(service: Service, type: EventType, reason: string, message: string): void {
    const meta = service.metadata;
    if (this.options.events === undefined) {
      this.options.log?.(`loadbalancer: Service ${serviceKey(service)}: ${reason}: ${message}`);
      return;
    }
    void this.options.events.record({ apiVersion: 'v1', kind: 'Service', ...(meta?.namespace ? { namespace: meta.namespace } : {}), name: meta?.name ?? '', uid: meta?.uid ?? '' }, type, reason, message);
  }
}
