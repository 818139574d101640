// The Deployment controller against a real master, with the ReplicaSet
// controller beside it and the test playing the kubelet (pods bound,
// Running and Ready; pods being deleted removed at once): a Deployment
// makes its ReplicaSet and pods, rolls a new image out within maxSurge,
// rolls back to the old ReplicaSet, waits while paused, and recreates.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Deployment, ReplicaSet } from '../../proto/gen/resources/v1/apps.js';
import type { Pod, PodTemplateSpec } from '../../proto/gen/resources/v1/core.js';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { DeploymentController } from '../../services/controllers/deployment/controller.js';
import { templateHash } from '../../services/controllers/deployment/reconcile.js';
import { ReplicaController } from '../../services/controllers/replicaset/controller.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { playKubelet } from './deployment-kubelet.js';

const DEADLINE_MS = 120_000;

function template(app: string, image: string): PodTemplateSpec {
  return { metadata: { labels: { app } }, spec: { containers: [{ name: app, image }] } };
}

describe('controllers: the Deployment controller with the ReplicaSet controller', function () {
  this.timeout(600_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient;
  const abort = new AbortController();
  const running: Array<Promise<void>> = [];
  let pods: Informer<KubeObject> | undefined;
  let stopKubelet: (() => void) | undefined;
  const logs: string[] = [];
  /** Per app label: the non-terminating pods at each watch event, and the template hashes alive together. */
  const counts = new Map<string, number[]>();
  const hashesSeenTogether: Array<Set<string>> = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-deploy-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    const log = (line: string): void => void logs.push(line);
    pods = new Informer(client, 'Pod', { log });
    running.push(new ReplicaController({ client, kind: 'ReplicaSet', pods, log }).run(abort.signal));
    running.push(new DeploymentController({ client, pods, log }).run(abort.signal));
    pods.start();
    stopKubelet = playKubelet(client, 'default', (all) => {
      const live = [...all.values()].filter((pod) => pod.metadata?.deletionTimestamp === undefined);
      for (const app of ['web', 'batch']) {
        const mine = live.filter((pod) => pod.metadata?.labels?.app === app);
        counts.set(app, [...(counts.get(app) ?? []), mine.length]);
      }
      // Every pod of batch, terminating or not: Recreate never lets two templates' pods exist together.
      hashesSeenTogether.push(new Set([...all.values()].filter((pod) => pod.metadata?.labels?.app === 'batch').map((pod) => pod.metadata?.labels?.['pod-template-hash'] ?? '')));
    });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(logs.slice(-40).join('\n'));
  });

  after(async function () {
    abort.abort();
    stopKubelet?.();
    pods?.stop();
    await Promise.allSettled(running);
    client?.close();
    await cluster?.destroy();
  });

  const deployment = async (name: string): Promise<Deployment> => (await client.get('Deployment', 'default', name)) as Deployment;
  const replicaSetsOf = async (name: string): Promise<ReplicaSet[]> => {
    const owner = await deployment(name);
    const all = (await client.list('ReplicaSet', { namespace: 'default' })).items as ReplicaSet[];
    return all.filter((rs) => rs.metadata?.ownerReferences?.some((reference) => reference.uid === owner.metadata?.uid && reference.controller === true));
  };
  /** The Deployment rolled out: its latest spec observed, every replica updated and available, nothing old left. */
  const rolledOut = (name: string): Promise<Deployment> =>
    waitFor(`deployment ${name} rolled out`, async () => {
      const current = await deployment(name);
      const status = current.status ?? {};
      const replicas = current.spec?.replicas ?? 1;
      const done = (status.observedGeneration ?? 0) >= (current.metadata?.generation ?? 0) && status.updatedReplicas === replicas && status.replicas === replicas && status.availableReplicas === replicas;
      const progressing = status.conditions?.find((condition) => condition.type === 'Progressing');
      return done && progressing?.reason === 'NewReplicaSetAvailable' ? current : undefined;
    }, DEADLINE_MS, 100);
  const runningPods = async (app: string): Promise<Pod[]> =>
    ((await client.list('Pod', { namespace: 'default', labelSelector: `app=${app}` })).items as Pod[]).filter((pod) => pod.metadata?.deletionTimestamp === undefined && pod.status?.phase === 'Running');

  it('creates 3 replicas through a ReplicaSet named by the template hash', async function () {
    await client.create('Deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: template('web', 'nginx:1.24') },
    });
    const done = await rolledOut('web');
    expect(done.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('1');
    expect(done.status?.conditions?.find((condition) => condition.type === 'Available')).to.deep.include({ status: 'True', reason: 'MinimumReplicasAvailable' });
    const [rs, ...others] = await replicaSetsOf('web');
    expect(others).to.deep.equal([]);
    const hash = templateHash((done.spec?.template ?? {}) as PodTemplateSpec);
    expect(rs!.metadata?.name).to.equal(`web-${hash}`);
    expect(rs!.spec?.replicas).to.equal(3);
    expect(rs!.spec?.selector?.matchLabels).to.deep.equal({ app: 'web', 'pod-template-hash': hash });
    expect(rs!.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('1');
    const live = await runningPods('web');
    expect(live).to.have.length(3);
    for (const pod of live) {
      expect(pod.metadata?.labels?.['pod-template-hash']).to.equal(hash);
      expect(pod.metadata?.ownerReferences?.[0]).to.deep.include({ kind: 'ReplicaSet', name: rs!.metadata?.name });
    }
  });

  it('rolls a new image out to a new ReplicaSet, never above replicas + maxSurge pods', async function () {
    counts.set('web', []);
    const before = await replicaSetsOf('web');
    await client.patch('Deployment', 'default', 'web', {
      metadata: { annotations: { 'kubernetes.io/change-cause': 'image 1.25' } },
      spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:1.25' }] } } },
    });
    const done = await rolledOut('web');
    expect(done.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('2');
    const replicaSets = await replicaSetsOf('web');
    expect(replicaSets).to.have.length(2);
    const old = replicaSets.find((rs) => rs.metadata?.name === before[0]!.metadata?.name)!;
    const fresh = replicaSets.find((rs) => rs !== old)!;
    expect(old.spec?.replicas).to.equal(0);
    expect(fresh.spec?.replicas).to.equal(3);
    expect(fresh.metadata?.annotations).to.include({ 'deployment.kubernetes.io/revision': '2', 'kubernetes.io/change-cause': 'image 1.25' });
    await waitFor('the old pods gone', async () => ((await runningPods('web')).every((pod) => pod.spec?.containers?.[0]?.image === 'nginx:1.25') ? true : undefined), DEADLINE_MS);
    // 3 replicas, 25% maxSurge (rounded up: 1) and 25% maxUnavailable (rounded down: 0): 4 pods at most, and 4 at some point.
    const seen = counts.get('web') ?? [];
    expect(seen.length).to.be.above(5);
    expect(Math.max(...seen)).to.equal(4);
  });

  it('rolls back to the old ReplicaSet, whose revision becomes the newest', async function () {
    const replicaSets = await replicaSetsOf('web');
    const first = replicaSets.find((rs) => rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] === '1')!;
    // What `mastctl rollout undo` does: the old template, without its hash label, back into the Deployment.
    const current = await deployment('web');
    const restored = structuredClone(first.spec!.template!);
    delete restored.metadata!.labels!['pod-template-hash'];
    await client.update('Deployment', { ...(current as KubeObject), spec: { ...current.spec, template: restored } });
    const done = await rolledOut('web');
    expect(done.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('3');
    const after = await replicaSetsOf('web');
    expect(after.map((rs) => rs.metadata?.name).sort()).to.deep.equal(replicaSets.map((rs) => rs.metadata?.name).sort());
    const back = after.find((rs) => rs.metadata?.name === first.metadata?.name)!;
    expect(back.spec?.replicas).to.equal(3);
    expect(back.metadata?.annotations).to.include({ 'deployment.kubernetes.io/revision': '3', 'deployment.kubernetes.io/revision-history': '1' });
    expect(after.find((rs) => rs !== back)!.spec?.replicas).to.equal(0);
    expect(Math.max(...(counts.get('web') ?? []))).to.equal(4);
  });

  it('makes no new ReplicaSet for a paused Deployment, still scales it, and rolls out on resume', async function () {
    await client.patch('Deployment', 'default', 'web', { spec: { paused: true } });
    await waitFor('the paused condition', async () => ((await deployment('web')).status?.conditions?.some((condition) => condition.reason === 'DeploymentPaused') ? true : undefined), DEADLINE_MS);
    await client.patch('Deployment', 'default', 'web', { spec: { replicas: 4, template: { spec: { containers: [{ name: 'web', image: 'nginx:1.26' }] } } } });
    const observed = await waitFor('the change observed', async () => {
      const current = await deployment('web');
      return (current.status?.observedGeneration ?? 0) >= (current.metadata?.generation ?? 0) && current.status?.replicas === 4 ? current : undefined;
    }, DEADLINE_MS);
    expect(observed.status?.updatedReplicas).to.equal(0);
    const paused = await replicaSetsOf('web');
    expect(paused).to.have.length(2);
    expect(paused.map((rs) => rs.spec?.replicas).sort()).to.deep.equal([0, 4]);
    expect((await runningPods('web')).map((pod) => pod.spec?.containers?.[0]?.image)).to.not.include('nginx:1.26');
    await client.patch('Deployment', 'default', 'web', { spec: { paused: null } });
    const done = await rolledOut('web');
    expect(done.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('4');
    const resumed = await replicaSetsOf('web');
    expect(resumed).to.have.length(3);
    expect(resumed.find((rs) => rs.spec?.template?.spec?.containers?.[0]?.image === 'nginx:1.26')?.spec?.replicas).to.equal(4);
    // 4 replicas: maxSurge 1, so 5 pods at most.
    expect(Math.max(...(counts.get('web') ?? []))).to.be.at.most(5);
  });

  it('recreates: the old pods are all gone before a new one exists', async function () {
    await client.create('Deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'batch', namespace: 'default' },
      spec: { replicas: 2, strategy: { type: 'Recreate' }, selector: { matchLabels: { app: 'batch' } }, template: template('batch', 'busybox:1.36') },
    });
    await rolledOut('batch');
    hashesSeenTogether.length = 0;
    await client.patch('Deployment', 'default', 'batch', { spec: { template: { spec: { containers: [{ name: 'batch', image: 'busybox:1.37' }] } } } });
    await rolledOut('batch');
    const replicaSets = await replicaSetsOf('batch');
    expect(replicaSets.map((rs) => rs.spec?.replicas).sort()).to.deep.equal([0, 2]);
    expect(hashesSeenTogether.length).to.be.above(3);
    expect(Math.max(...hashesSeenTogether.map((hashes) => hashes.size))).to.equal(1);
  });
});
