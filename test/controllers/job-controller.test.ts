// The Job controller in-process against a 1-master cluster, the test playing
// the kubelet (marking pods Succeeded or Failed): completions and
// parallelism, backoffLimit with a shortened failure backoff, the active
// deadline, an Indexed Job, and a deleted Job's pods losing their tracking
// finalizer.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, statusCodeOf, type KubeObject } from '../../services/client/resources.js';
import { JobController } from '../../services/controllers/job/controller.js';
import { COMPLETION_INDEX_ANNOTATION, isLabelValue, JOB_TRACKING_FINALIZER } from '../../services/controllers/job/reconcile.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

interface PodView extends KubeObject {
  metadata?: KubeObject['metadata'] & { uid?: string; finalizers?: string[]; deletionTimestamp?: string; annotations?: Record<string, string>; ownerReferences?: Array<{ uid?: string; kind?: string }> };
  spec?: { hostname?: string };
  status?: { phase?: string };
}
interface JobView extends KubeObject {
  metadata?: KubeObject['metadata'] & { uid?: string };
  status?: { active?: number; succeeded?: number; failed?: number; completionTime?: string; completedIndexes?: string; conditions?: Array<{ type?: string; status?: string; reason?: string }> };
}

const isActive = (pod: PodView): boolean => pod.metadata?.deletionTimestamp === undefined && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';

function jobManifest(name: string, spec: Record<string, unknown>): KubeObject {
  // mast's API server wants a selector (Kubernetes would generate one): pick the template's label.
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: 'default' },
    spec: { selector: { matchLabels: { job: name } }, template: { metadata: { labels: { job: name } }, spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } }, ...spec },
  };
}

describe('controllers: the Job controller against a master', function () {
  this.timeout(240_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient;
  let pods: Informer<KubeObject>;
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const logs: string[] = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-job-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    pods = new Informer(client, 'Pod');
    const controller = new JobController({ client, pods, podFailureBackoffBaseMs: 200, podFailureBackoffMaxMs: 1000, log: (line) => logs.push(line) });
    running = controller.run(abort.signal);
    pods.start();
    await pods.waitForSync();
  });

  afterEach(function () {
    // The controller's own account, for a failure's diagnosis.
    if (this.currentTest?.state === 'failed') console.log(logs.join('\n'));
  });

  after(async function () {
    abort.abort();
    pods?.stop();
    await running?.catch(() => {});
    client?.close();
    await cluster?.destroy();
  });

  const jobPods = async (job: JobView): Promise<PodView[]> => ((await client.list('Pod', { namespace: 'default' })).items as PodView[]).filter((pod) => pod.metadata?.ownerReferences?.some((reference) => reference.uid === job.metadata?.uid));
  const condition = (job: JobView, type: string) => job.status?.conditions?.find((one) => one.type === type && one.status === 'True');

  /** The kubelet's report of a finished pod (retried over conflicts with the controller's writes). */
  const finish = async (name: string, phase: 'Succeeded' | 'Failed'): Promise<void> => {
    for (;;) {
      const pod = await client.get('Pod', 'default', name);
      try {
        await client.updateStatus('Pod', { ...pod, status: { phase, containerStatuses: [{ name: 'c', state: { terminated: { exitCode: phase === 'Succeeded' ? 0 : 1, reason: phase === 'Succeeded' ? 'Completed' : 'Error', finishedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } } }] } });
        return;
      } catch (error) {
        if (statusCodeOf(error) !== grpc.status.ABORTED) throw error;
      }
    }
  };

  it('runs completions 3 with parallelism 2: never more than 2 active, succeeded 3, Complete', async function () {
    const created = (await client.create('Job', jobManifest('count', { completions: 3, parallelism: 2 }))) as JobView;
    // Every state the pod cache goes through, not only what polling happens to see.
    let mostActive = 0;
    const observe = (): void => {
      const active = (pods.list() as PodView[]).filter((pod) => pod.metadata?.ownerReferences?.some((reference) => reference.uid === created.metadata?.uid) && isActive(pod));
      mostActive = Math.max(mostActive, active.length);
    };
    pods.onAdd(observe);
    pods.onUpdate(observe);
    const finished = new Set<string>();
    for (let round = 0; round < 10; round++) {
      const next = await waitFor('an active pod to finish, or completion', async () => {
        const job = (await client.get('Job', 'default', 'count')) as JobView;
        if (condition(job, 'Complete')) return { job };
        const fresh = (await jobPods(job)).find((pod) => isActive(pod) && !finished.has(pod.metadata?.name ?? ''));
        return fresh === undefined ? undefined : { pod: fresh };
      }, 60_000, 50);
      if ('job' in next) break;
      const name = next.pod.metadata!.name!;
      finished.add(name);
      await finish(name, 'Succeeded');
    }
    const job = (await client.get('Job', 'default', 'count')) as JobView;
    expect(condition(job, 'Complete')).to.deep.include({ reason: 'CompletionsReached' });
    expect(job.status).to.deep.include({ succeeded: 3, failed: 0, active: 0 });
    expect(job.status?.completionTime).to.be.a('string');
    expect(finished.size).to.equal(3);
    expect(mostActive).to.be.within(1, 2);
    const all = await jobPods(job);
    expect(all).to.have.length(3);
    for (const pod of all) {
      expect(pod.metadata?.name).to.match(/^count-[a-z0-9]{5}$/);
      expect(pod.metadata?.labels).to.deep.include({ job: 'count', 'batch.kubernetes.io/job-name': 'count', 'job-name': 'count' });
      // Unless the uid cannot be a label value (mast's uids may end in "-" or "_").
      if (isLabelValue(created.metadata!.uid!)) expect(pod.metadata?.labels?.['batch.kubernetes.io/controller-uid']).to.equal(created.metadata?.uid);
      expect(pod.metadata?.finalizers ?? []).to.not.include(JOB_TRACKING_FINALIZER);
      expect(pod.status?.phase).to.equal('Succeeded');
    }
  });

  it('replaces a failed pod after the backoff, then fails the Job past backoffLimit', async function () {
    const created = (await client.create('Job', jobManifest('flaky', { completions: 1, parallelism: 1, backoffLimit: 1 }))) as JobView;
    const failedNames: string[] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      const pod = await waitFor(`pod ${attempt + 1}`, async () => (await jobPods(created)).find((one) => isActive(one) && !failedNames.includes(one.metadata?.name ?? '')), 60_000, 50);
      failedNames.push(pod.metadata!.name!);
      await finish(pod.metadata!.name!, 'Failed');
    }
    const job = await waitFor('the Job to fail', async () => {
      const current = (await client.get('Job', 'default', 'flaky')) as JobView;
      return condition(current, 'Failed') ? current : undefined;
    }, 60_000, 50);
    expect(condition(job, 'Failed')).to.deep.include({ reason: 'BackoffLimitExceeded' });
    expect(job.status).to.deep.include({ failed: 2, succeeded: 0, active: 0 });
    const all = await jobPods(job);
    expect(all.map((pod) => pod.metadata?.name).sort()).to.deep.equal([...failedNames].sort());
    expect(all.every((pod) => !(pod.metadata?.finalizers ?? []).includes(JOB_TRACKING_FINALIZER))).to.equal(true);
  });

  it('fails a Job at its active deadline, deleting its running pod', async function () {
    const created = (await client.create('Job', jobManifest('slow', { activeDeadlineSeconds: 1 }))) as JobView;
    const job = await waitFor('the deadline', async () => {
      const current = (await client.get('Job', 'default', 'slow')) as JobView;
      return condition(current, 'Failed') ? current : undefined;
    }, 60_000, 50);
    expect(condition(job, 'Failed')).to.deep.include({ reason: 'DeadlineExceeded' });
    expect(job.status).to.deep.include({ active: 0, failed: 1 });
    await waitFor('its pod gone', async () => ((await jobPods(created)).length === 0 ? true : undefined), 60_000, 50);
  });

  it('runs an Indexed Job: one pod per index, completedIndexes', async function () {
    const created = (await client.create('Job', jobManifest('indexed', { completionMode: 'Indexed', completions: 2, parallelism: 2 }))) as JobView;
    const two = await waitFor('2 pods', async () => {
      const found = (await jobPods(created)).filter(isActive);
      return found.length === 2 ? found : undefined;
    }, 60_000, 50);
    const indexes = two.map((pod) => pod.metadata?.annotations?.[COMPLETION_INDEX_ANNOTATION]).sort();
    expect(indexes).to.deep.equal(['0', '1']);
    expect(two.map((pod) => pod.spec?.hostname).sort()).to.deep.equal(['indexed-0', 'indexed-1']);
    for (const pod of two) await finish(pod.metadata!.name!, 'Succeeded');
    const job = await waitFor('completion', async () => {
      const current = (await client.get('Job', 'default', 'indexed')) as JobView;
      return condition(current, 'Complete') ? current : undefined;
    }, 60_000, 50);
    expect(job.status).to.deep.include({ succeeded: 2, completedIndexes: '0-1', active: 0 });
  });

  it('lets the pods of a deleted Job go: the garbage collector deletes them, the controller frees them', async function () {
    const created = (await client.create('Job', jobManifest('doomed', { completions: 2, parallelism: 2 }))) as JobView;
    const two = await waitFor('2 pods', async () => {
      const found = await jobPods(created);
      return found.length === 2 && found.every((pod) => (pod.metadata?.finalizers ?? []).includes(JOB_TRACKING_FINALIZER)) ? found : undefined;
    }, 60_000, 50);
    expect(two).to.have.length(2);
    await client.delete('Job', 'default', 'doomed');
    // Without the controller freeing them, the pods would stay, marked for deletion, held by the finalizer.
    await waitFor('the pods gone', async () => ((await jobPods(created)).length === 0 ? true : undefined), 60_000, 50);
  });
});
