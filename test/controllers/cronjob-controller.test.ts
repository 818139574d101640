// The CronJob controller in-process against a 1-master cluster, on a fake
// clock the test moves (then calls resync()): one Job per schedule, named
// with its minute; Forbid skips while that Job is active; once it
// completes, the skipped schedule runs and the history limit removes it.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { CronJobController } from '../../services/controllers/cronjob/controller.js';
import { SCHEDULED_TIMESTAMP_ANNOTATION } from '../../services/controllers/cronjob/reconcile.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

const FIVE_MINUTES_MS = 5 * 60_000;

interface JobView extends KubeObject {
  metadata?: KubeObject['metadata'] & { uid?: string; annotations?: Record<string, string>; ownerReferences?: Array<{ uid?: string; kind?: string; controller?: boolean }> };
}
interface CronJobView extends KubeObject {
  metadata?: KubeObject['metadata'] & { uid?: string; creationTimestamp?: string };
  status?: { active?: Array<{ name?: string; uid?: string }>; lastScheduleTime?: string; lastSuccessfulTime?: string };
}

describe('controllers: the CronJob controller against a master, on a fake clock', function () {
  this.timeout(240_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient;
  let controller: CronJobController;
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const logs: string[] = [];
  // Before anything is created: no schedule can fall between the CronJob's creation and this.
  let fakeNowMs = Date.now();

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-cronjob-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    controller = new CronJobController({ client, now: () => fakeNowMs, log: (line) => logs.push(line) });
    running = controller.run(abort.signal);
  });

  afterEach(function () {
    // The controller's own account, for a failure's diagnosis.
    if (this.currentTest?.state === 'failed') console.log(logs.join('\n'));
  });

  after(async function () {
    abort.abort();
    await running?.catch(() => {});
    client?.close();
    await cluster?.destroy();
  });

  const ownedJobs = async (cronJob: CronJobView): Promise<JobView[]> =>
    ((await client.list('Job', { namespace: 'default' })).items as JobView[]).filter((job) => job.metadata?.ownerReferences?.some((reference) => reference.uid === cronJob.metadata?.uid));
  const stamp = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

  it('creates one Job per schedule, skips while it is active under Forbid, and runs the skipped one after', async function () {
    const created = (await client.create('CronJob', {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'tick', namespace: 'default' },
      spec: {
        schedule: '*/5 * * * *',
        concurrencyPolicy: 'Forbid',
        successfulJobsHistoryLimit: 0,
        jobTemplate: { spec: { selector: { matchLabels: { app: 'tick' } }, template: { metadata: { labels: { app: 'tick' } }, spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } } } },
      },
    })) as CronJobView;
    const createdMs = Date.parse(created.metadata!.creationTimestamp!);
    // Exactly one multiple of five minutes lies in (created, created + 5 min].
    const firstMs = Math.floor(createdMs / FIVE_MINUTES_MS) * FIVE_MINUTES_MS + FIVE_MINUTES_MS;
    fakeNowMs = createdMs + FIVE_MINUTES_MS;
    controller.resync();
    const recorded = await waitFor('the first schedule recorded', async () => {
      const current = (await client.get('CronJob', 'default', 'tick')) as CronJobView;
      return current.status?.lastScheduleTime === stamp(firstMs) && current.status.active?.length === 1 ? current : undefined;
    }, 60_000, 50);
    const [first, ...others] = await ownedJobs(created);
    expect(others).to.deep.equal([]);
    expect(first!.metadata?.name).to.equal(`tick-${firstMs / 60_000}`);
    expect(first!.metadata?.annotations?.[SCHEDULED_TIMESTAMP_ANNOTATION]).to.equal(stamp(firstMs));
    expect(first!.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'tick', uid: created.metadata?.uid, controller: true, blockOwnerDeletion: true }]);
    expect(recorded.status?.active?.[0]).to.deep.include({ name: first!.metadata?.name, uid: first!.metadata?.uid });

    // The next schedule comes while the first Job is still active: Forbid skips it.
    logs.length = 0;
    fakeNowMs += FIVE_MINUTES_MS;
    controller.resync();
    await waitFor('the skip', async () => (logs.some((line) => /tick: JobAlreadyActive/.test(line)) ? true : undefined), 60_000, 50);
    expect((await ownedJobs(created)).map((job) => job.metadata?.name)).to.deep.equal([first!.metadata?.name]);

    // It completes: the skipped schedule runs now, and history limit 0 removes the finished Job.
    const completedAt = stamp(fakeNowMs);
    const current = await client.get('Job', 'default', first!.metadata!.name!);
    await client.updateStatus('Job', { ...current, status: { startTime: stamp(firstMs), completionTime: completedAt, succeeded: 1, conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: completedAt }] } });
    const secondMs = firstMs + FIVE_MINUTES_MS;
    const final = await waitFor('the skipped schedule run and the old Job gone', async () => {
      const jobs = await ownedJobs(created);
      const cronJob = (await client.get('CronJob', 'default', 'tick')) as CronJobView;
      return jobs.length === 1 && jobs[0]!.metadata?.name === `tick-${secondMs / 60_000}` && cronJob.status?.lastScheduleTime === stamp(secondMs) ? cronJob : undefined;
    }, 60_000, 50);
    expect(final.status?.lastSuccessfulTime).to.equal(completedAt);
    expect(final.status?.active?.map((reference) => reference.name)).to.deep.equal([`tick-${secondMs / 60_000}`]);
  });
});
