// The kubelet, as far as the Deployment tests need one (the test clusters
// run no nodes): every pod of a namespace is bound to a node and marked
// Running and Ready; a pod being deleted is removed at once.

import type { Pod } from '../../proto/gen/resources/v1/core.js';
import type { KubeObject, ResourceClient } from '../../services/client/resources.js';

/** A failed write (a lost race, a busy master) is tried again after this long, if no event came meanwhile. */
const RETRY_MS = 200;

/**
 * Play the kubelet until the returned function is called. `onPods` sees
 * every pod of the namespace after each watch event; pods `stuck` picks
 * never start (they stay Pending).
 */
export function playKubelet(client: ResourceClient, namespace: string, onPods: (pods: ReadonlyMap<string, Pod>) => void, stuck: (pod: Pod) => boolean = () => false): () => void {
  const pods = new Map<string, Pod>();
  const busy = new Set<string>();
  const dirty = new Set<string>();
  let stopped = false;
  const act = async (pod: Pod): Promise<void> => {
    const name = pod.metadata?.name ?? '';
    if (pod.metadata?.deletionTimestamp !== undefined) {
      await client.delete('Pod', namespace, name, { gracePeriodSeconds: 0 });
    } else if (stuck(pod)) {
      return;
    } else if ((pod.spec?.nodeName ?? '') === '') {
      await client.bind(namespace, name, 'node-1', pod.metadata?.resourceVersion ?? '');
    } else if (pod.status?.phase !== 'Running') {
      const ready = { type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() };
      await client.updateStatus('Pod', { ...(pod as KubeObject), status: { phase: 'Running', podIP: `10.0.0.${(pods.size % 250) + 1}`, conditions: [ready] } });
    }
  };
  // One write per pod at a time, always on its latest state.
  const kick = (name: string): void => {
    if (stopped) return;
    if (busy.has(name)) {
      dirty.add(name);
      return;
    }
    const pod = pods.get(name);
    if (pod === undefined) return;
    busy.add(name);
    void act(pod)
      .catch(() => setTimeout(() => kick(name), RETRY_MS))
      .finally(() => {
        busy.delete(name);
        if (dirty.delete(name)) kick(name);
      });
  };
  const stop = client.watch('Pod', { namespace }, {
    onEvent: (type, object) => {
      const pod = object as Pod;
      const name = pod.metadata?.name ?? '';
      if (type === 'DELETED') pods.delete(name);
      else pods.set(name, pod);
      onPods(pods);
      kick(name);
    },
  });
  return () => {
    stopped = true;
    stop();
  };
}
