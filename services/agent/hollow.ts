// A hollow node: a Node with capacity and no runtime, as Kubernetes'
// kubemark has them. It registers its Node, heartbeats through its Lease in
// kube-node-lease (and re-reports Ready when someone else marked it
// otherwise), reports every pod bound to it Running and Ready with an IP,
// and finishes the deletion of its pods (the kubelet's final delete, grace
// 0) — so schedulers, controllers and scale tests see nodes that behave
// like real ones, by the hundred in one process.

import { Informer } from '../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../client/resources.js';
import type { Node, Pod } from '../../proto/gen/resources/v1/core.js';
import * as grpc from '@grpc/grpc-js';
import { createOrGetNode, renewNodeLease } from './node-lease.js';

export { NODE_LEASE_NAMESPACE } from './node-lease.js';

export interface HollowNodeOptions {
  readonly client: ResourceClient;
  readonly name: string;
  /** Labels besides kubernetes.io/hostname, kubernetes.io/os and kubernetes.io/arch. */
  readonly labels?: Readonly<Record<string, string>>;
  readonly capacity?: { readonly cpu: string; readonly memory: string; readonly pods: string };
  /** Lease renewals (the kubelet: 10 s, a quarter of the 40 s lease). */
  readonly heartbeatIntervalMs?: number;
  /** The first three octets of pod IPs, e.g. "10.244.1" (pods get .2 to .254). */
  readonly podSubnet?: string;
  readonly log?: (line: string) => void;
}

export const DEFAULT_HOLLOW_CAPACITY = { cpu: '4', memory: '32Gi', pods: '110' } as const;

export class HollowNode {
  private readonly pods: Informer<KubeObject>;
  private heartbeat: NodeJS.Timeout | undefined;
  private nextHost = 2;
  private stopped = false;
  /** Pod status writes and deletions in flight, by pod uid (one at a time per pod). */
  private readonly busy = new Set<string>();

  constructor(private readonly options: HollowNodeOptions) {
    this.pods = new Informer(options.client, 'Pod', { fieldSelector: `spec.nodeName=${options.name}`, log: options.log });
  }

  get name(): string {
    return this.options.name;
  }

  /** Register the Node and its Lease, then play the kubelet until stop(). */
  async start(): Promise<void> {
    await this.register();
    await this.renewLease();
    this.pods.onAdd((pod) => this.handle(pod as Pod));
    this.pods.onUpdate((_old, pod) => this.handle(pod as Pod));
    this.pods.start();
    await this.pods.waitForSync();
    this.heartbeat = setInterval(() => void this.beat(), this.options.heartbeatIntervalMs ?? 10_000);
  }

  /** Stop heartbeating and acting (the Node and its pods stay: a node that went silent). */
  stop(): void {
    this.stopped = true;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.pods.stop();
  }

  private nodeStatus(now: Date): Record<string, unknown> {
    const capacity = this.options.capacity ?? DEFAULT_HOLLOW_CAPACITY;
    const at = now.toISOString();
    const condition = (type: string, status: string, reason: string, message: string): Record<string, string> => ({ type, status, reason, message, lastHeartbeatTime: at, lastTransitionTime: at });
    return {
      capacity: { ...capacity },
      allocatable: { ...capacity },
      conditions: [
        condition('Ready', 'True', 'KubeletReady', 'hollow node is posting ready status'),
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'hollow node has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'hollow node has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'hollow node has sufficient PID available'),
      ],
      addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: this.options.name }],
      nodeInfo: { kubeletVersion: 'mast-hollow', operatingSystem: 'linux', architecture: 'amd64', containerRuntimeVersion: 'hollow://0' },
    };
  }

  private async register(): Promise<void> {
    const { client, name } = this.options;
    const labels = { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...this.options.labels };
    const { node } = await createOrGetNode(client, { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } });
    await client.updateStatus('Node', { ...node, status: this.nodeStatus(new Date()) });
  }

  private async renewLease(): Promise<void> {
    await renewNodeLease(this.options.client, this.options.name, new Date());
  }

  /** Renew the Lease; if the Node is no longer Ready (the node lifecycle controller marked it), report it Ready again. */
  private async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.renewLease();
      const node = (await this.options.client.get('Node', '', this.options.name)) as Node & KubeObject;
      const ready = (node.status?.conditions ?? []).find((condition) => condition.type === 'Ready');
      if (ready?.status !== 'True') await this.options.client.updateStatus('Node', { ...node, status: { ...node.status, ...this.nodeStatus(new Date()) } });
    } catch (error) {
      this.options.log?.(`hollow node ${this.options.name}: heartbeat failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private handle(pod: Pod): void {
    const uid = pod.metadata?.uid ?? '';
    if (this.stopped || this.busy.has(uid)) return;
    let action: Promise<unknown> | undefined;
    if (pod.metadata?.deletionTimestamp !== undefined) {
      // The kubelet's part of a graceful delete: the containers are gone, so the object may go.
      action = this.options.client.delete('Pod', pod.metadata.namespace ?? '', pod.metadata.name ?? '', { gracePeriodSeconds: 0 });
    } else if (pod.status?.phase !== 'Running' && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed') {
      action = this.options.client.updateStatus('Pod', { ...(pod as KubeObject), status: this.runningStatus(pod) });
    } else if (pod.status.phase === 'Running' && !(pod.status.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True')) {
      // Marked not ready by someone else (the node lifecycle controller, while this node seemed gone): the kubelet owns pod status and says Ready again.
      action = this.options.client.updateStatus('Pod', { ...(pod as KubeObject), status: this.runningStatus(pod) });
    }
    if (action === undefined) return;
    this.busy.add(uid);
    action
      .catch((error: unknown) => {
        // NOT_FOUND: already gone; CONFLICT: a newer version is on its way to the informer.
        const code = statusCodeOf(error);
        if (code !== grpc.status.NOT_FOUND && code !== grpc.status.ABORTED && code !== grpc.status.FAILED_PRECONDITION) this.options.log?.(`hollow node ${this.options.name}: pod ${pod.metadata?.name ?? ''}: ${error instanceof Error ? error.message : String(error)}`);
      })
      .finally(() => {
        this.busy.delete(uid);
        // Whatever changed meanwhile is in the cache now: act on the latest.
        const latest = this.pods.getByKey(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`) as Pod | undefined;
        if (latest !== undefined && latest.metadata?.uid === uid && latest.metadata.resourceVersion !== pod.metadata?.resourceVersion) this.handle(latest);
      });
  }

  private runningStatus(pod: Pod): Record<string, unknown> {
    const at = new Date().toISOString();
    let podIP = pod.status?.podIP ?? '';
    if (podIP === '') {
      const host = this.nextHost;
      this.nextHost = host >= 254 ? 2 : host + 1;
      podIP = `${this.options.podSubnet ?? '10.244.0'}.${host}`;
    }
    const condition = (type: string): Record<string, string> => ({ type, status: 'True', lastTransitionTime: at });
    return {
      phase: 'Running',
      conditions: [condition('PodScheduled'), condition('Initialized'), condition('ContainersReady'), condition('Ready')],
      hostIP: '127.0.0.1',
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: at,
      containerStatuses: (pod.spec?.containers ?? []).map((container) => ({
        name: container.name,
        image: container.image ?? '',
        imageID: '',
        containerID: `hollow://${pod.metadata?.uid ?? ''}/${container.name}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: at } },
      })),
    };
  }
}
