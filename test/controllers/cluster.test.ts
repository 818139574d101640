// The controllers and the scheduler as users meet them: 3 masters hosting
// the leader-elected candidates, hollow nodes in this process (Node, Lease
// heartbeat, pods reported Running and Ready), and mastctl. Each case is a
// behaviour from the user's notes, end to end through the API and Raft.

import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { HollowNode } from '../../services/agent/hollow.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

const MASTCTL = fileURLToPath(new URL('../../services/cmd/mastctl.js', import.meta.url));
const run = promisify(execFile);

interface PodView {
  readonly name: string;
  readonly node: string;
  readonly phase: string;
  readonly deleting: boolean;
  readonly created: string;
}

function view(pod: KubeObject): PodView {
  const spec = pod.spec as { nodeName?: string } | undefined;
  const status = pod.status as { phase?: string } | undefined;
  return {
    name: pod.metadata?.name ?? '',
    node: spec?.nodeName ?? '',
    phase: status?.phase ?? '',
    deleting: pod.metadata?.deletionTimestamp !== undefined,
    created: String(pod.metadata?.creationTimestamp ?? ''),
  };
}

describe('controllers: a 3-master cluster with hollow nodes', function () {
  this.timeout(300_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let env: NodeJS.ProcessEnv;
  const nodes = new Map<string, HollowNode>();

  const mastctl = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    try {
      const { stdout, stderr } = await run(process.execPath, [MASTCTL, ...args], { env });
      return { code: 0, out: stdout.trimEnd(), err: stderr.trimEnd() };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, out: failed.stdout.trimEnd(), err: failed.stderr.trimEnd() };
    }
  };

  const addNode = async (name: string): Promise<HollowNode> => {
    const node = new HollowNode({ client, name, heartbeatIntervalMs: 500, podSubnet: `10.244.${nodes.size + 1}` });
    await node.start();
    nodes.set(name, node);
    return node;
  };

  /** The live (not terminating) pods with these labels, once `ready` says they are what is wanted. */
  const podsWhen = async (selector: string, what: string, ready: (pods: PodView[]) => boolean, namespace = 'default'): Promise<PodView[]> =>
    waitFor(what, async () => {
      const pods = (await client.list('Pod', { namespace, labelSelector: selector })).items.map(view).filter((pod) => !pod.deleting);
      return ready(pods) ? pods : undefined;
    }, 120_000, 50);

  const running = (count: number) => (pods: PodView[]) => pods.length === count && pods.every((pod) => pod.phase === 'Running');

  before(async function () {
    cluster = await LocalCluster.start({
      size: 3,
      baseDir: mkdtempSync(join(tmpdir(), 'mast-cluster-controllers-')),
      scheduler: true,
      controllers: true,
      flags: ['--node-monitor-grace-period=2s'],
    });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'kube-node-lease');
    const config = join(cluster.options.baseDir, 'config');
    writeFileSync(config, `masters:\n${cluster.endpoints.map((endpoint) => `  - http://${endpoint}`).join('\n')}\n`);
    env = { ...process.env, MASTCONFIG: config, MAST_MASTERS: '' };
    for (const name of ['n1', 'n2', 'n3']) await addNode(name);
  });

  after(async function () {
    for (const node of nodes.values()) node.stop();
    client?.close();
    await cluster?.destroy();
  });

  it('mastctl run gives Running pods spread over different nodes', async function () {
    const created = await mastctl('run', 'httpd-app', '--image=httpd', '--replicas=2');
    expect(created).to.include({ code: 0, out: 'deployment.apps/httpd-app created' });
    const pods = await podsWhen('app=httpd-app', '2 Running httpd-app pods', running(2));
    expect(new Set(pods.map((pod) => pod.node)).size).to.equal(2);
    const listed = await mastctl('get', 'deploy', 'httpd-app');
    expect(listed.out).to.match(/httpd-app\s+2\/2\s+2\s+2\s+/);
  });

  it('rolls out a new image, rolls it back, and holds a paused Deployment until it is resumed', async function () {
    const image = async (): Promise<string> => ((await client.get('Deployment', 'default', 'httpd-app')).spec as { template: { spec: { containers: Array<{ image: string }> } } }).template.spec.containers[0]!.image;
    const replicaSets = async (): Promise<Array<{ name: string; replicas: number; image: string }>> =>
      (await client.list('ReplicaSet', { namespace: 'default', labelSelector: 'app=httpd-app' })).items.map((rs) => {
        const spec = rs.spec as { replicas: number; template: { spec: { containers: Array<{ image: string }> } } };
        return { name: rs.metadata?.name ?? '', replicas: spec.replicas, image: spec.template.spec.containers[0]!.image };
      });
    await client.patch('Deployment', 'default', 'httpd-app', { spec: { template: { spec: { containers: [{ name: 'httpd-app', image: 'httpd:2.4' }] } } } });
    const rolled = await mastctl('rollout', 'status', 'deploy/httpd-app', '--timeout=120s');
    expect(rolled.code, rolled.err).to.equal(0);
    expect(rolled.out.split('\n').pop()).to.equal('deployment "httpd-app" successfully rolled out');
    const afterUpdate = await replicaSets();
    expect(afterUpdate.find((rs) => rs.image === 'httpd:2.4')?.replicas).to.equal(2);
    expect(afterUpdate.find((rs) => rs.image === 'httpd')?.replicas).to.equal(0);
    await podsWhen('app=httpd-app', '2 Running pods after the update', running(2));

    expect((await mastctl('rollout', 'undo', 'deploy/httpd-app')).out).to.equal('deployment.apps/httpd-app rolled back');
    expect(await image()).to.equal('httpd');
    expect((await mastctl('rollout', 'status', 'deploy/httpd-app', '--timeout=120s')).code).to.equal(0);
    // The old ReplicaSet came back (revision 3), no third one was made.
    const afterUndo = await replicaSets();
    expect(afterUndo).to.have.length(2);
    expect(afterUndo.find((rs) => rs.image === 'httpd')?.replicas).to.equal(2);
    const history = await mastctl('rollout', 'history', 'deploy/httpd-app');
    expect(history.out).to.match(/REVISION\s+CHANGE-CAUSE\n2\s+<none>\n3\s+<none>$/);

    expect((await mastctl('rollout', 'pause', 'deploy/httpd-app')).out).to.equal('deployment.apps/httpd-app paused');
    await client.patch('Deployment', 'default', 'httpd-app', { spec: { template: { spec: { containers: [{ name: 'httpd-app', image: 'httpd:2.5' }] } } } });
    // Paused: the controller sees the change (observedGeneration) but makes no new ReplicaSet.
    await waitFor('the paused change observed', async () => {
      const deployment = await client.get('Deployment', 'default', 'httpd-app');
      return (deployment.status as { observedGeneration?: number }).observedGeneration === deployment.metadata?.generation ? true : undefined;
    }, 60_000);
    expect((await replicaSets()).some((rs) => rs.image === 'httpd:2.5')).to.equal(false);
    expect((await mastctl('rollout', 'resume', 'deploy/httpd-app')).out).to.equal('deployment.apps/httpd-app resumed');
    expect((await mastctl('rollout', 'status', 'deploy/httpd-app', '--timeout=120s')).code).to.equal(0);
    expect((await replicaSets()).find((rs) => rs.image === 'httpd:2.5')?.replicas).to.equal(2);
  });

  it('places a pod with a nodeSelector on the node labelled for it, and says why one fits nowhere', async function () {
    expect((await mastctl('label', 'node', 'n1', 'disktype=ssd')).out).to.equal('node/n1 labeled');
    const pod = (name: string, disktype: string): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default', labels: { app: name } },
      spec: { nodeSelector: { disktype }, containers: [{ name: 'c', image: 'busybox' }] },
    });
    await client.create('Pod', pod('on-ssd', 'ssd'));
    const [placed] = await podsWhen('app=on-ssd', 'on-ssd Running', running(1));
    expect(placed!.node).to.equal('n1');
    await client.create('Pod', pod('on-hdd', 'hdd'));
    const reason = await waitFor('on-hdd reported unschedulable', async () => {
      const conditions = ((await client.get('Pod', 'default', 'on-hdd')).status as { conditions?: Array<{ type: string; status: string; message?: string }> } | undefined)?.conditions ?? [];
      return conditions.find((condition) => condition.type === 'PodScheduled' && condition.status === 'False')?.message;
    }, 60_000);
    expect(reason).to.match(/^0\/3 nodes are available: 3 node\(s\) didn't match/);
  });

  it('runs a DaemonSet pod on every node, following a node that joins and leaves', async function () {
    await client.create('DaemonSet', {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent', namespace: 'default' },
      spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    const three = await podsWhen('app=agent', 'a daemon pod on each of 3 nodes', running(3));
    expect(new Set(three.map((pod) => pod.node))).to.deep.equal(new Set(['n1', 'n2', 'n3']));
    await addNode('n4');
    await podsWhen('app=agent', 'a daemon pod on n4', (pods) => running(4)(pods) && pods.some((pod) => pod.node === 'n4'));
    nodes.get('n4')!.stop();
    nodes.delete('n4');
    await client.delete('Node', '', 'n4');
    await podsWhen('app=agent', 'the daemon pod of n4 gone', (pods) => pods.length === 3 && !pods.some((pod) => pod.node === 'n4'));
  });

  it('creates a StatefulSet in order and scales it down from the highest ordinal', async function () {
    await client.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'default' }, spec: { clusterIP: 'None', selector: { app: 'db' }, ports: [{ port: 5432 }] } });
    await client.create('StatefulSet', {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: 'default' },
      spec: { serviceName: 'db', replicas: 3, selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    const pods = await podsWhen('app=db', '3 Running db pods', running(3));
    const byName = new Map(pods.map((pod) => [pod.name, pod]));
    expect([...byName.keys()].sort()).to.deep.equal(['db-0', 'db-1', 'db-2']);
    // OrderedReady: each was created after the one before it (timestamps are whole seconds: not after is enough).
    expect(byName.get('db-0')!.created <= byName.get('db-1')!.created && byName.get('db-1')!.created <= byName.get('db-2')!.created).to.equal(true);
    const hostname = ((await client.get('Pod', 'default', 'db-1')).spec as { hostname?: string; subdomain?: string });
    expect(hostname).to.include({ hostname: 'db-1', subdomain: 'db' });
    await client.patch('StatefulSet', 'default', 'db', { spec: { replicas: 1 } });
    const left = await podsWhen('app=db', 'db scaled down to 1', (now) => now.length === 1);
    expect(left.map((pod) => pod.name)).to.deep.equal(['db-0']);
  });

  it('runs a Job to its completions', async function () {
    await client.create('Job', {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'count', namespace: 'default' },
      spec: { completions: 3, parallelism: 2, template: { metadata: { labels: { app: 'count' } }, spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    // Hollow nodes run pods forever: this test finishes each one, as its container would.
    const finished = new Set<string>();
    let mostActive = 0;
    await waitFor('the Job to complete', async () => {
      const pods = (await client.list('Pod', { namespace: 'default', labelSelector: 'app=count' })).items;
      mostActive = Math.max(mostActive, pods.filter((pod) => !['Succeeded', 'Failed'].includes(String((pod.status as { phase?: string } | undefined)?.phase))).length);
      for (const pod of pods) {
        const status = pod.status as { phase?: string } | undefined;
        if (status?.phase === 'Running' && !finished.has(pod.metadata?.name ?? '')) {
          finished.add(pod.metadata?.name ?? '');
          const done = new Date().toISOString();
          await client.updateStatus('Pod', { ...pod, status: { ...status, phase: 'Succeeded', containerStatuses: [{ name: 'c', ready: false, restartCount: 0, image: 'busybox', imageID: '', state: { terminated: { exitCode: 0, reason: 'Completed', finishedAt: done } } }] } });
        }
      }
      const job = (await client.get('Job', 'default', 'count')).status as { succeeded?: number; conditions?: Array<{ type: string; status: string }> } | undefined;
      return job?.conditions?.some((condition) => condition.type === 'Complete' && condition.status === 'True') ? job : undefined;
    }, 120_000, 100);
    const job = (await client.get('Job', 'default', 'count')).status as { succeeded?: number };
    expect(job.succeeded).to.equal(3);
    expect(mostActive).to.be.at.most(2);
  });

  it('scales a ReplicaSet with a HorizontalPodAutoscaler on a per-pod metric, up and back down', async function () {
    await client.create('ReplicaSet', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'api', namespace: 'default' },
      spec: { replicas: 1, selector: { matchLabels: { app: 'api' } }, template: { metadata: { labels: { app: 'api' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    await client.create('HorizontalPodAutoscaler', {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'api', namespace: 'default' },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'api' },
        minReplicas: 1,
        maxReplicas: 4,
        metrics: [{ type: 'Pods', pods: { metric: { name: 'requests_per_second' }, target: { type: 'AverageValue', averageValue: '10' } } }],
        behavior: { scaleDown: { stabilizationWindowSeconds: 0 } },
      },
    });
    // The node agent's part: each pod's metric, as PodMetrics.
    const report = async (perPod: string): Promise<void> => {
      const pods = (await client.list('Pod', { namespace: 'default', labelSelector: 'app=api' })).items.filter((pod) => pod.metadata?.deletionTimestamp === undefined);
      for (const pod of pods) {
        const metrics = {
          apiVersion: 'metrics.k8s.io/v1beta1',
          kind: 'PodMetrics',
          metadata: { name: pod.metadata?.name, namespace: 'default', labels: { app: 'api' } },
          timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
          window: '15s',
          containers: [{ name: 'c', usage: { cpu: '10m', memory: '10Mi' } }],
          customMetrics: { requests_per_second: perPod },
        };
        try {
          const current = await client.get('PodMetrics', 'default', pod.metadata?.name ?? '');
          await client.update('PodMetrics', { ...metrics, metadata: { ...metrics.metadata, resourceVersion: current.metadata?.resourceVersion } });
        } catch {
          await client.create('PodMetrics', metrics).catch(() => undefined);
        }
      }
    };
    const replicas = async (): Promise<number> => ((await client.get('ReplicaSet', 'default', 'api')).spec as { replicas: number }).replicas;
    // 40 per pod against a target of 10: up to the maximum.
    await waitFor('the HPA to scale api up to 4', async () => {
      await report('40');
      return (await replicas()) === 4 ? true : undefined;
    }, 120_000, 500);
    await waitFor('the HPA to scale api back down to 1', async () => {
      await report('1');
      return (await replicas()) === 1 ? true : undefined;
    }, 120_000, 500);
  });

  it('recreates elsewhere the pods of a node that stops heartbeating', async function () {
    await client.create('ReplicaSet', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'spread', namespace: 'default' },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'spread' } },
        template: {
          metadata: { labels: { app: 'spread' } },
          // Evicted 1 s after the node is found unreachable (the default toleration waits 300 s).
          spec: { tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 1 }], containers: [{ name: 'c', image: 'busybox' }] },
        },
      },
    });
    const before = await podsWhen('app=spread', '3 Running spread pods', running(3));
    const victim = before[0]!.node;
    nodes.get(victim)!.stop();
    const after = await podsWhen('app=spread', `the pods of ${victim} recreated elsewhere`, (pods) => running(3)(pods) && pods.every((pod) => pod.node !== victim));
    expect(after.map((pod) => pod.node)).to.not.include(victim);
    const node = await client.get('Node', '', victim);
    const ready = ((node.status as { conditions?: Array<{ type: string; status: string }> }).conditions ?? []).find((condition) => condition.type === 'Ready');
    expect(ready?.status).to.equal('Unknown');
    const taints = ((node.spec as { taints?: Array<{ key: string; effect: string }> } | undefined)?.taints ?? []).map((taint) => `${taint.key}:${taint.effect}`);
    expect(taints).to.include('node.kubernetes.io/unreachable:NoExecute');
  });
});
