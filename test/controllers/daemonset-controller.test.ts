// The DaemonSet controller running in-process against a 1-master cluster
// with hollow nodes (Node objects the test makes): a pod lands on every
// node that joins, none on a node whose taint it does not tolerate, the pod
// of a node that leaves goes, and a template change rolls out one node at a
// time. The test plays the kubelet: it marks bound pods Running and Ready
// and completes graceful deletions.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { DaemonSetController } from '../../services/controllers/daemonset/controller.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

type Pod = KubeObject & { spec?: { nodeName?: string; tolerations?: unknown[] }; status?: { phase?: string; conditions?: Array<{ type: string; status: string }> } };

const isReady = (pod: Pod): boolean => pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True');
const deleting = (pod: Pod): boolean => pod.metadata?.deletionTimestamp !== undefined;

describe('controllers: the DaemonSet controller with hollow nodes', function () {
  this.timeout(240_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let pods: Informer<KubeObject>;
  const stop = new AbortController();
  const running: Promise<unknown>[] = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-ds-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    pods = new Informer(client, 'Pod');
    pods.start();
    running.push(new DaemonSetController({ client, pods }).run(stop.signal), kubelet(stop.signal));
  });

  after(async function () {
    stop.abort();
    pods?.stop();
    await Promise.allSettled(running);
    client?.close();
    await cluster?.destroy();
  });

  /** A Node as a hollow kubelet registers it: capacity, allocatable and Ready. */
  const addNode = async (name: string, taints: unknown[] = []): Promise<void> => {
    const created = await client.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } }, spec: { taints } });
    const resources = { cpu: '4', memory: '8Gi', pods: '110' };
    await client.updateStatus('Node', { ...created, status: { capacity: resources, allocatable: resources, conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastTransitionTime: new Date().toISOString() }] } });
  };

  /** The kubelet of every node: bound pods become Running and Ready; pods in their grace period go. */
  async function kubelet(signal: AbortSignal): Promise<void> {
    let address = 0;
    while (!signal.aborted) {
      try {
        for (const pod of (await client.list('Pod', { namespace: 'default' })).items as Pod[]) {
          const name = pod.metadata?.name ?? '';
          if (deleting(pod)) await client.delete('Pod', 'default', name, { gracePeriodSeconds: 0 });
          else if ((pod.spec?.nodeName ?? '') !== '' && pod.status?.phase !== 'Running') {
            address++;
            await client.updateStatus('Pod', { ...pod, status: { phase: 'Running', podIP: `10.2.0.${address % 250}`, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }] } });
          }
        }
      } catch {
        // A pod changed or went meanwhile: the next round sees it as it is.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  const agentPods = async (): Promise<Pod[]> => ((await client.list('Pod', { namespace: 'default', labelSelector: 'app=agent' })).items as Pod[]).filter((pod) => !deleting(pod));
  const nodesWithPods = (list: Pod[]): string[] => list.map((pod) => pod.spec?.nodeName ?? '').sort();
  const podsOn = (nodes: string[]): Promise<Pod[]> =>
    waitFor(`agent pods on exactly ${nodes.join(', ')}`, async () => {
      const now = await agentPods();
      return JSON.stringify(nodesWithPods(now)) === JSON.stringify(nodes) ? now : undefined;
    }, 90_000, 50);
  const status = (check: (reported: Record<string, unknown>, generation: unknown) => boolean): Promise<Record<string, unknown>> =>
    waitFor('the DaemonSet status', async () => {
      const current = await client.get('DaemonSet', 'default', 'agent');
      const reported = (current.status ?? {}) as Record<string, unknown>;
      return check(reported, current.metadata?.generation) ? reported : undefined;
    }, 90_000, 50);

  it('puts a pod on every node that joins, not on one whose taint it does not tolerate, and removes the pod of a node that leaves', async function () {
    await addNode('n1');
    await addNode('n2');
    await client.create('DaemonSet', {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent', namespace: 'default' },
      spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'c', image: 'agent:1' }] } } },
    });
    const first = await podsOn(['n1', 'n2']);
    const ds = await client.get('DaemonSet', 'default', 'agent');
    for (const pod of first) {
      expect(pod.metadata?.name).to.match(/^agent-[a-z0-9]{5}$/);
      expect(pod.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: ds.metadata?.uid, controller: true, blockOwnerDeletion: true }]);
      expect(pod.metadata?.labels?.['controller-revision-hash']).to.match(/^[bcdfghjklmnpqrstvwxz2456789]+$/);
      expect(pod.spec?.tolerations).to.deep.include({ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' });
    }
    // n4 is tainted and comes before n3: once n3's pod exists, the controller has seen n4 too.
    await addNode('n4', [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }]);
    await addNode('n3');
    await podsOn(['n1', 'n2', 'n3']);
    const reported = await status((current, generation) => current.numberAvailable === 3 && current.observedGeneration === generation);
    expect(reported).to.deep.include({ desiredNumberScheduled: 3, currentNumberScheduled: 3, numberMisscheduled: 0, numberReady: 3, numberAvailable: 3, numberUnavailable: 0, updatedNumberScheduled: 3 });
    expect(nodesWithPods(await agentPods())).to.deep.equal(['n1', 'n2', 'n3']);
    await client.delete('Node', '', 'n2');
    await waitFor('n2’s pod gone', async () => {
      const all = (await client.list('Pod', { namespace: 'default', labelSelector: 'app=agent' })).items as Pod[];
      return all.some((pod) => pod.spec?.nodeName === 'n2') ? undefined : true;
    }, 90_000, 50);
    await podsOn(['n1', 'n3']);
    expect(await status((current) => current.desiredNumberScheduled === 2 && current.numberAvailable === 2)).to.deep.include({ currentNumberScheduled: 2, numberUnavailable: 0 });
  });

  it('rolls a template change out one node at a time (maxUnavailable 1)', async function () {
    const listed = await client.list('Pod', { namespace: 'default', labelSelector: 'app=agent' });
    const state = new Map<string, Pod>(listed.items.map((pod) => [pod.metadata?.name ?? '', pod as Pod]));
    const oldHash = (listed.items[0] as Pod).metadata?.labels?.['controller-revision-hash'];
    let worstUnavailable = 0;
    const unavailableNodes = (): number => ['n1', 'n3'].filter((node) => ![...state.values()].some((pod) => pod.spec?.nodeName === node && !deleting(pod) && isReady(pod))).length;
    const stopWatch = client.watch('Pod', { namespace: 'default', labelSelector: 'app=agent', resourceVersion: listed.resourceVersion }, {
      onEvent: (type, object) => {
        if (type === 'DELETED') state.delete(object.metadata?.name ?? '');
        else state.set(object.metadata?.name ?? '', object as Pod);
        worstUnavailable = Math.max(worstUnavailable, unavailableNodes());
      },
    });
    try {
      await client.patch('DaemonSet', 'default', 'agent', { spec: { template: { spec: { containers: [{ name: 'c', image: 'agent:2' }] } } } });
      const reported = await status((current, generation) => current.observedGeneration === generation && current.updatedNumberScheduled === 2 && current.numberAvailable === 2);
      expect(reported).to.deep.include({ desiredNumberScheduled: 2, currentNumberScheduled: 2 });
      const now = await agentPods();
      expect(nodesWithPods(now)).to.deep.equal(['n1', 'n3']);
      for (const pod of now) expect(pod.metadata?.labels?.['controller-revision-hash']).to.not.equal(oldHash);
      // Both old pods were replaced, never both nodes without a ready pod at once.
      await waitFor('the watch to catch up', async () => ([...state.values()].filter((pod) => !deleting(pod) && isReady(pod) && pod.metadata?.labels?.['controller-revision-hash'] !== oldHash).length === 2 ? true : undefined), 30_000, 50);
      expect(worstUnavailable).to.equal(1);
    } finally {
      stopWatch();
    }
  });
});
