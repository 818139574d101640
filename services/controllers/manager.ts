// The controller-manager: every controller, sharing one pod informer, run
// while its holder leads (until the signal aborts). The same function runs
// inside a master's candidate and in `mast controller-manager`.

import { Informer } from '../client/informer.js';
import type { ResourceClient } from '../client/resources.js';
import { EndpointsController } from './endpoints/controller.js';
import { ReplicaController } from './replicaset/controller.js';

export interface ControllerManagerOptions {
  readonly log: (line: string) => void;
}

export async function runControllerManager(client: ResourceClient, signal: AbortSignal, options: ControllerManagerOptions): Promise<void> {
  const { log } = options;
  const pods = new Informer(client, 'Pod', { log });
  pods.start();
  signal.addEventListener('abort', () => pods.stop(), { once: true });
  const controllers = [
    new ReplicaController({ client, kind: 'ReplicaSet', pods, log }),
    new ReplicaController({ client, kind: 'ReplicationController', pods, log }),
    new EndpointsController({ client, pods, log }),
  ];
  await Promise.all(controllers.map((controller) => controller.run(signal)));
}
