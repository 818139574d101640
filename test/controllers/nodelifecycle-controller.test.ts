// The node lifecycle and taint eviction controllers in-process against a
// 1-master cluster, with the ReplicaSet controller, the test playing the
// kubelets (Leases renewed, Ready posted) and the scheduler (binding to
// the first node without a NoSchedule or NoExecute taint): a node whose
// Lease stops is marked Unknown and tainted unreachable, its pods are
// evicted and replaced on the other node, a pod tolerating the taint
// forever stays (marked NotReady), the taints go when the kubelet is back,
// and the pods of a deleted node are collected.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, Pod, Taint } from '../../proto/gen/resources/v1/core.js';
import { EventRecorder, type EventObject } from '../../services/client/events.js';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { NodeLifecycleController } from '../../services/controllers/nodelifecycle/controller.js';
import { TaintEvictionController } from '../../services/controllers/nodelifecycle/taint-eviction.js';
import { ReplicaController } from '../../services/controllers/replicaset/controller.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

const UNREACHABLE = 'node.kubernetes.io/unreachable';
const LEASES = 'kube-node-lease';
/** Short for a test, long enough that a busy machine does not miss a 300 ms renewal by that much. */
const GRACE_MS = 4000;
const TICK_MS = 300;

const micro = (date = new Date()): string => date.toISOString().replace('Z', '000Z');
const readyCondition = (): object => ({ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: new Date().toISOString() });

describe('controllers: node lifecycle and taint eviction in-process', function () {
  this.timeout(240_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let pods: Informer<KubeObject>;
  const abort = new AbortController();
  const running: Array<Promise<void>> = [];
  const timers: NodeJS.Timeout[] = [];
  /** The nodes whose kubelet is up (renews its Lease, posts Ready). */
  const alive = new Set(['n1', 'n2']);
  const log: string[] = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-nodelc-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    await waitForNamespace(client, LEASES);
    for (const name of ['n1', 'n2']) {
      const node = await client.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } }, spec: {} });
      const resources = { cpu: '4', memory: '8Gi', pods: '110' };
      await client.updateStatus('Node', { ...node, status: { capacity: resources, allocatable: resources, conditions: [readyCondition()] } });
      await client.create('Lease', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: LEASES }, spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: micro() } });
    }
    timers.push(every(TICK_MS, kubelets), every(200, schedule));
    const sink = {
      create: (event: EventObject) => client.create('Event', event),
      update: (event: EventObject) => client.update('Event', event as unknown as KubeObject),
      get: async (namespace: string, name: string) => (await client.get('Event', namespace, name)) as unknown as EventObject,
    };
    const events = new EventRecorder(sink, { component: 'node-controller', host: 'test' });
    const say = (line: string): void => void log.push(line);
    pods = new Informer(client, 'Pod', { log: say });
    const controllers = [
      new NodeLifecycleController({ client, pods, nodeMonitorGracePeriodMs: GRACE_MS, events, log: say }),
      new TaintEvictionController({ client, pods, orphanQuarantineMs: 500, events, log: say }),
      new ReplicaController({ client, kind: 'ReplicaSet', pods, log: say }),
    ];
    for (const controller of controllers) running.push(controller.run(abort.signal));
    pods.start();
  });

  after(async function () {
    for (const timer of timers) clearInterval(timer);
    abort.abort();
    await Promise.allSettled(running);
    pods?.stop();
    client?.close();
    await cluster?.destroy();
    if (this.test?.parent?.tests.some((test) => test.state === 'failed')) console.log(log.slice(-40).join('\n'));
  });

  /** Run `work` every `ms`, never two at once; errors are the next round's to fix. */
  function every(ms: number, work: () => Promise<void>): NodeJS.Timeout {
    let busy = false;
    return setInterval(() => {
      if (busy) return;
      busy = true;
      work()
        .catch((error: unknown) => log.push(`test loop: ${error instanceof Error ? error.message : String(error)}`))
        .finally(() => (busy = false));
    }, ms);
  }

  /** The kubelets that are up renew their Lease, and post Ready=True when the server says otherwise. */
  async function kubelets(): Promise<void> {
    for (const name of alive) {
      await client.patch('Lease', LEASES, name, { spec: { renewTime: micro() } });
      const node = (await client.get('Node', '', name)) as Node;
      const ready = node.status?.conditions?.find((condition) => condition.type === 'Ready');
      if (ready?.status !== 'True') await client.updateStatus('Node', { ...node, status: { ...node.status, conditions: [readyCondition()] } } as KubeObject);
    }
  }

  /** Bind each pending pod to the first node without a NoSchedule or NoExecute taint, and run it there. */
  async function schedule(): Promise<void> {
    const nodes = ((await client.list('Node')).items as Node[]).sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
    const target = nodes.find((node) => !(node.spec?.taints ?? []).some((taint) => taint.effect === 'NoSchedule' || taint.effect === 'NoExecute'));
    if (target === undefined) return;
    for (const pod of (await client.list('Pod', { namespace: 'default' })).items as Pod[]) {
      if ((pod.spec?.nodeName ?? '') !== '' || pod.metadata?.deletionTimestamp !== undefined) continue;
      const bound = await client.bind('default', pod.metadata?.name ?? '', target.metadata?.name ?? '', pod.metadata?.resourceVersion ?? '');
      await markRunning(bound);
    }
  }

  let lastIp = 1;
  async function markRunning(pod: KubeObject): Promise<void> {
    const ip = `10.1.0.${++lastIp}`;
    await client.updateStatus('Pod', { ...pod, status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }] } });
  }

  const listPods = async (): Promise<Pod[]> => (await client.list('Pod', { namespace: 'default' })).items as Pod[];
  const node = async (name: string): Promise<Node> => (await client.get('Node', '', name)) as Node;
  const ours = (taints: Taint[] | undefined): Taint[] => (taints ?? []).filter((taint) => taint.key === UNREACHABLE || taint.key === 'node.kubernetes.io/not-ready');

  it('taints a silent node, evicts its pods to the other node, keeps a tolerating one, untaints on recovery and collects orphans', async function () {
    await client.create('ReplicaSet', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }], tolerations: [{ key: UNREACHABLE, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 1 }] } },
      },
    });
    const first = await waitFor('2 web pods running on n1', async () => {
      const web = (await listPods()).filter((pod) => pod.metadata?.labels?.app === 'web' && pod.status?.phase === 'Running');
      return web.length === 2 && web.every((pod) => pod.spec?.nodeName === 'n1') ? web : undefined;
    }, 60_000);
    // The admission added the not-ready toleration the template lacks, and kept its own unreachable one.
    expect(first[0]!.spec?.tolerations).to.deep.equal([
      { key: UNREACHABLE, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 1 },
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    ]);
    // A pod that tolerates unreachable forever.
    const forever = await client.create('Pod', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'forever', namespace: 'default' },
      spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'busybox' }], tolerations: [{ key: UNREACHABLE, operator: 'Exists', effect: 'NoExecute' }] },
    });
    await markRunning(forever);

    alive.delete('n1');
    const silent = await waitFor('n1 Unknown and tainted unreachable', async () => {
      const current = await node('n1');
      const ready = current.status?.conditions?.find((condition) => condition.type === 'Ready');
      return ready?.status === 'Unknown' && ours(current.spec?.taints).length === 2 ? current : undefined;
    }, 60_000);
    expect(silent.status?.conditions?.find((condition) => condition.type === 'Ready')).to.deep.include({ reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' });
    const taints = ours(silent.spec?.taints);
    expect(taints.map((taint) => `${taint.key}:${taint.effect}`).sort()).to.deep.equal([`${UNREACHABLE}:NoExecute`, `${UNREACHABLE}:NoSchedule`]);
    expect(taints.find((taint) => taint.effect === 'NoExecute')!.timeAdded).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect((await node('n2')).spec?.taints ?? []).to.deep.equal([]);

    const firstNames = first.map((pod) => pod.metadata?.name);
    await waitFor('the web pods on n1 evicted', async () => {
      const now = await listPods();
      return firstNames.every((name) => now.find((pod) => pod.metadata?.name === name)?.metadata?.deletionTimestamp !== undefined || !now.some((pod) => pod.metadata?.name === name)) ? true : undefined;
    }, 60_000);
    const replacements = await waitFor('2 replacements running on n2', async () => {
      const web = (await listPods()).filter((pod) => pod.metadata?.labels?.app === 'web' && pod.metadata?.deletionTimestamp === undefined && pod.status?.phase === 'Running');
      return web.length === 2 && web.every((pod) => pod.spec?.nodeName === 'n2') ? web : undefined;
    }, 60_000);
    const rs = await client.get('ReplicaSet', 'default', 'web');
    for (const pod of replacements) {
      expect(firstNames).to.not.include(pod.metadata?.name);
      expect(pod.metadata?.ownerReferences?.[0]?.uid).to.equal(rs.metadata?.uid);
    }
    const evictions = await waitFor('TaintManagerEviction events', async () => {
      const found = ((await client.list('Event', { namespace: 'default' })).items as unknown as EventObject[]).filter((event) => event.reason === 'TaintManagerEviction');
      return found.length >= 2 ? found : undefined;
    }, 30_000);
    expect(evictions.map((event) => event.involvedObject.name).sort()).to.deep.equal([...firstNames].sort());
    expect(evictions[0]!.message).to.match(/^Marking for deletion Pod default\/web-/);
    // The tolerating pod stays, marked NotReady as its node is.
    const kept = await waitFor('forever NotReady', async () => {
      const pod = (await client.get('Pod', 'default', 'forever')) as Pod;
      return pod.status?.conditions?.find((condition) => condition.type === 'Ready')?.status === 'False' ? pod : undefined;
    }, 30_000);
    expect(kept.metadata?.deletionTimestamp).to.equal(undefined);

    alive.add('n1');
    const back = await waitFor('n1 Ready and untainted', async () => {
      const current = await node('n1');
      const ready = current.status?.conditions?.find((condition) => condition.type === 'Ready');
      return ready?.status === 'True' && ours(current.spec?.taints).length === 0 ? current : undefined;
    }, 60_000);
    expect(back.spec?.taints ?? []).to.deep.equal([]);
    expect(((await client.get('Pod', 'default', 'forever')) as Pod).metadata?.deletionTimestamp).to.equal(undefined);

    // n1 goes for good: its pods (the evicted ones still terminating, and forever) are collected.
    alive.delete('n1');
    await client.delete('Node', '', 'n1');
    await waitFor('no pod left on n1', async () => ((await listPods()).some((pod) => pod.spec?.nodeName === 'n1') ? undefined : true), 60_000);
    expect((await listPods()).filter((pod) => pod.metadata?.labels?.app === 'web' && pod.metadata?.deletionTimestamp === undefined).map((pod) => pod.spec?.nodeName)).to.deep.equal(['n2', 'n2']);
  });

  it('evicts nothing when no node of any zone is ready (master disruption mode)', async function () {
    // After the first test, n2 is the only node, running both web pods.
    const web = async (): Promise<Pod[]> => (await listPods()).filter((pod) => pod.metadata?.labels?.app === 'web');
    const before = await web();
    expect(before.map((pod) => pod.spec?.nodeName)).to.deep.equal(['n2', 'n2']);
    // Every version of n2 from here on: none may carry a NoExecute taint.
    const versions: Node[] = [];
    const stopWatch = client.watch('Node', { resourceVersion: (await node('n2')).metadata?.resourceVersion ?? '' }, { onEvent: (_type, object) => void (object.metadata?.name === 'n2' && versions.push(object as Node)) });
    try {
      alive.delete('n2');
      await waitFor('n2 Unknown, tainted NoSchedule', async () => {
        const current = await node('n2');
        const ready = current.status?.conditions?.find((condition) => condition.type === 'Ready');
        return ready?.status === 'Unknown' && ours(current.spec?.taints).length > 0 ? true : undefined;
      }, 60_000);
      await waitFor('the watch to catch up', async () => (versions.some((version) => ours(version.spec?.taints).length > 0) ? true : undefined), 30_000);
    } finally {
      stopWatch();
    }
    expect(log.some((line) => line.includes('entering master disruption mode'))).to.equal(true);
    expect(versions.flatMap((version) => (version.spec?.taints ?? []).filter((taint) => taint.effect === 'NoExecute'))).to.deep.equal([]);
    expect(ours((await node('n2')).spec?.taints)).to.deep.equal([{ key: UNREACHABLE, effect: 'NoSchedule' }]);
    const after = await web();
    expect(after.map((pod) => [pod.metadata?.name, pod.metadata?.deletionTimestamp])).to.deep.equal(before.map((pod) => [pod.metadata?.name, undefined]));
    alive.add('n2');
    await waitFor('n2 Ready and untainted', async () => (ours((await node('n2')).spec?.taints).length === 0 ? true : undefined), 60_000);
    expect(log.some((line) => line.includes('leaving master disruption mode'))).to.equal(true);
  });
});
