// The controller-manager: every controller, sharing one pod informer, run
// while its holder leads (until the signal aborts). The same function runs
// inside a master's candidate and in `mast controller-manager`. Each
// controller's folder holds its pure plan (reconcile*.ts) and its loop.

import { setMaxListeners } from 'node:events';
import { clientEventSink, EventRecorder } from '../client/events.js';
import { informerFor, type Selection, type SharedInformers } from '../client/shared-informers.js';
import type { ResourceClient } from '../client/resources.js';
import { CronJobController } from './cronjob/controller.js';
import { DaemonSetController } from './daemonset/controller.js';
import { DeploymentController } from './deployment/controller.js';
import { EndpointsController } from './endpoints/controller.js';
import { JobController } from './job/controller.js';
import { LoadBalancerController } from './loadbalancer/controller.js';
import type { IpPool } from './loadbalancer/reconcile.js';
import { StatefulSetController } from './statefulset/controller.js';
import { HorizontalPodAutoscalerController } from './hpa/controller.js';
import { NODE_LEASE_NAMESPACE, NodeLifecycleController } from './nodelifecycle/controller.js';
import { TaintEvictionController } from './nodelifecycle/taint-eviction.js';
import { NamespaceController } from './namespace/controller.js';
import { PersistentVolumeController } from './persistentvolume/controller.js';
import { ResourceQuotaController } from './resourcequota/controller.js';
import { ServiceAccountsController } from './serviceaccount/controller.js';
import { TOKEN_SECRETS, TokensController } from './serviceaccount/tokens-controller.js';
import { ReplicaController } from './replicaset/controller.js';

export interface ControllerManagerOptions {
  readonly log: (line: string) => void;
  /** Kubernetes' --node-monitor-grace-period (default 40 s). */
  readonly nodeMonitorGracePeriodMs?: number;
  /** The addresses LoadBalancer Services get (--load-balancer-ip-pool); absent: none, they stay pending. */
  readonly loadBalancerIpPool?: IpPool;
  /** The cluster CA (PEM), put into service-account token Secrets as ca.crt. */
  readonly rootCaPem?: string;
  /** Which controller-manager reports events (the source.host of its Events). */
  readonly host?: string;
  /** Warm informers to read from (a candidate keeps them running while it waits); absent: each controller lists its own. */
  readonly informers?: SharedInformers;
}

/** Every informer the controllers open (kind, or kind and selection): what a waiting candidate keeps warm. */
export const CONTROLLER_MANAGER_INFORMERS: ReadonlyArray<string | readonly [string, Selection]> = [
  'Pod',
  'ReplicaSet',
  'ReplicationController',
  'Deployment',
  'DaemonSet',
  'StatefulSet',
  'PersistentVolumeClaim',
  'PersistentVolume',
  'Job',
  'CronJob',
  'Service',
  'Endpoints',
  'Node',
  ['Lease', { namespace: NODE_LEASE_NAMESPACE }],
  'HorizontalPodAutoscaler',
  'PodMetrics',
  'Namespace',
  'ResourceQuota',
  'ServiceAccount',
  ['Secret', { fieldSelector: TOKEN_SECRETS }],
];

export async function runControllerManager(client: ResourceClient, signal: AbortSignal, options: ControllerManagerOptions): Promise<void> {
  const { log } = options;
  // Every controller (and its informers) listens for the end of the leadership.
  setMaxListeners(100, signal);
  const events = new EventRecorder(clientEventSink(client), { component: 'controller-manager', host: options.host ?? '', log });
  const informers = options.informers;
  const shared = informers === undefined ? {} : { informers };
  const pods = informerFor({ client, log, ...shared }, 'Pod');
  pods.start();
  signal.addEventListener('abort', () => pods.stop(), { once: true });
  const controllers = [
    new ReplicaController({ client, ...shared, kind: 'ReplicaSet', pods, log }),
    new ReplicaController({ client, ...shared, kind: 'ReplicationController', pods, log }),
    new DeploymentController({ client, ...shared, pods, log }),
    new DaemonSetController({ client, ...shared, pods, log }),
    new StatefulSetController({ client, ...shared, pods, log }),
    new JobController({ client, ...shared, pods, log, events }),
    new CronJobController({ client, ...shared, log, events }),
    new EndpointsController({ client, ...shared, pods, log }),
    new LoadBalancerController({ client, ...shared, log, events, pool: options.loadBalancerIpPool }),
    new NodeLifecycleController({ client, ...shared, pods, log, events, ...(options.nodeMonitorGracePeriodMs === undefined ? {} : { nodeMonitorGracePeriodMs: options.nodeMonitorGracePeriodMs }) }),
    new TaintEvictionController({ client, ...shared, pods, log, events }),
    new HorizontalPodAutoscalerController({ client, ...shared, pods, log }),
    new NamespaceController({ client, ...shared, pods, log }),
    new ResourceQuotaController({ client, ...shared, pods, log }),
    new ServiceAccountsController({ client, ...shared, log }),
    new PersistentVolumeController({ client, ...shared, log, events }),
    new TokensController({ client, ...shared, log, ...(options.rootCaPem === undefined ? {} : { rootCaPem: options.rootCaPem }) }),
  ];
  await Promise.all(controllers.map((controller) => controller.run(signal)));
}
