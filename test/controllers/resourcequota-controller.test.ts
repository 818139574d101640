// The resource quota controller on a 1-master cluster, run in this process:
// a quota's status follows the pods created, finished and deleted, and the
// controller puts right what the in-transaction charging cannot know (the
// quota counting itself) and a status.used written wrong.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { ResourceQuotaController } from '../../services/controllers/resourcequota/controller.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

describe('controllers: the resource quota controller', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let pods: Informer;
  const stop = new AbortController();
  let running: Promise<void> | undefined;

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-quota-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    pods = new Informer(client, 'Pod');
    pods.start();
    // A short resync, so a status written wrong is put right within the test.
    running = new ResourceQuotaController({ client, pods, resyncPeriodMs: 2000 }).run(stop.signal);
  });

  after(async function () {
    stop.abort();
    pods?.stop();
    await running;
    client?.close();
    await cluster?.destroy();
  });

  const pod = (name: string, cpu: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'metered' },
    spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu }, limits: { cpu } } }] },
  });
  /** Wait for status.used to say `expected` with status.hard = spec.hard. */
  const usedBecomes = async (what: string, expected: Record<string, string>): Promise<void> => {
    const quota = await waitFor(what, async () => {
      const current = await client.get('ResourceQuota', 'metered', 'compute');
      const status = current.status as { hard?: unknown; used?: unknown } | undefined;
      return JSON.stringify(status?.used) === JSON.stringify(expected) && JSON.stringify(status?.hard) === JSON.stringify((current.spec as { hard: unknown }).hard) ? current : undefined;
    }, 60_000, 100);
    expect(quota.status).to.deep.equal({ hard: (quota.spec as { hard: unknown }).hard, used: expected });
  };

  it('counts what exists: pods as they come, finish and go, and the quotas themselves', async function () {
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'metered' } });
    await client.create('ResourceQuota', { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'compute', namespace: 'metered' }, spec: { hard: { pods: '5', 'count/pods': '10', 'requests.cpu': '2', resourcequotas: '3' } } });
    // The API server counts what the quota limits when it is created, but not the quota itself: the controller does.
    await usedBecomes('the quota to count itself', { 'count/pods': '0', pods: '0', 'requests.cpu': '0', resourcequotas: '1' });
    const first = await client.create('Pod', pod('first', '500m'));
    await client.create('Pod', pod('second', '250m'));
    await usedBecomes('two pods', { 'count/pods': '2', pods: '2', 'requests.cpu': '750m', resourcequotas: '1' });
    await client.updateStatus('Pod', { ...first, status: { phase: 'Succeeded' } });
    await usedBecomes('the finished pod to stop counting but in count/pods', { 'count/pods': '2', pods: '1', 'requests.cpu': '250m', resourcequotas: '1' });
    await client.delete('Pod', 'metered', 'second', { gracePeriodSeconds: 0 });
    await client.delete('Pod', 'metered', 'first');
    await usedBecomes('no pods', { 'count/pods': '0', pods: '0', 'requests.cpu': '0', resourcequotas: '1' });
  });

  it('puts right a status.used written wrong', async function () {
    const quota = await client.get('ResourceQuota', 'metered', 'compute');
    await client.updateStatus('ResourceQuota', { ...quota, status: { hard: (quota.spec as { hard: unknown }).hard, used: { 'count/pods': '7', pods: '4', 'requests.cpu': '1500m', resourcequotas: '1' } } });
    await usedBecomes('the drift corrected', { 'count/pods': '0', pods: '0', 'requests.cpu': '0', resourcequotas: '1' });
    // And with the limit raised, status.hard follows spec.hard.
    const current = await client.get('ResourceQuota', 'metered', 'compute');
    await client.update('ResourceQuota', { ...current, spec: { hard: { pods: '5', 'count/pods': '10', 'requests.cpu': '4', resourcequotas: '3' } } });
    await usedBecomes('the new limit and the same count', { 'count/pods': '0', pods: '0', 'requests.cpu': '0', resourcequotas: '1' });
  });
});
