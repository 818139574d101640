// The controller-manager: every controller, sharing one pod informer, run
// while its holder leads (until the signal aborts). The same function runs
// inside a master's candidate and in `mast controller-manager`. Each
// controller's folder holds its pure plan (reconcile*.ts) and its loop.

import { clientEventSink, EventRecorder } from '../client/events.js';
import { Informer } from '../client/informer.js';
import type { ResourceClient } from '../client/resources.js';
import { CronJobController } from './cronjob/controller.js';
import { DaemonSetController } from './daemonset/controller.js';
import { DeploymentController } from './deployment/controller.js';
import { EndpointsController } from './endpoints/controller.js';
import { JobController } from './job/controller.js';
import { StatefulSetController } from './statefulset/controller.js';
import { HorizontalPodAutoscalerController } from './hpa/controller.js';
import { NodeLifecycleController } from './nodelifecycle/controller.js';
import { TaintEvictionController } from './nodelifecycle/taint-eviction.js';
import { NamespaceController } from './namespace/controller.js';
import { ResourceQuotaController } from './resourcequota/controller.js';
import { ServiceAccountsController } from './serviceaccount/controller.js';
import { TokensController } from './serviceaccount/tokens-controller.js';
import { ReplicaController } from './replicaset/controller.js';

export interface ControllerManagerOptions {
  readonly log: (line: string) => void;
  /** Kubernetes' --node-monitor-grace-period (default 40 s). */
  readonly nodeMonitorGracePeriodMs?: number;
  /** The cluster CA (PEM), put into service-account token Secrets as ca.crt. */
  readonly rootCaPem?: string;
  /** Which controller-manager reports events (the source.host of its Events). */
  readonly host?: string;
}

export async function runControllerManager(client: ResourceClient, signal: AbortSignal, options: ControllerManagerOptions): Promise<void> {
  const { log } = options;
  const events = new EventRecorder(clientEventSink(client), { component: 'controller-manager', host: options.host ?? '', log });
  const pods = new Informer(client, 'Pod', { log });
  pods.start();
  signal.addEventListener('abort', () => pods.stop(), { once: true });
  const controllers = [
    new ReplicaController({ client, kind: 'ReplicaSet', pods, log }),
    new ReplicaController({ client, kind: 'ReplicationController', pods, log }),
    new DeploymentController({ client, pods, log }),
    new DaemonSetController({ client, pods, log }),
    new StatefulSetController({ client, pods, log }),
    new JobController({ client, pods, log, events }),
    new CronJobController({ client, log, events }),
    new EndpointsController({ client, pods, log }),
    new NodeLifecycleController({ client, pods, log, events, ...(options.nodeMonitorGracePeriodMs === undefined ? {} : { nodeMonitorGracePeriodMs: options.nodeMonitorGracePeriodMs }) }),
    new TaintEvictionController({ client, pods, log, events }),
    new HorizontalPodAutoscalerController({ client, pods, log }),
    new NamespaceController({ client, pods, log }),
    new ResourceQuotaController({ client, pods, log }),
    new ServiceAccountsController({ client, log }),
    new TokensController({ client, log, ...(options.rootCaPem === undefined ? {} : { rootCaPem: options.rootCaPem }) }),
  ];
  await Promise.all(controllers.map((controller) => controller.run(signal)));
}
