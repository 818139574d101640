// A master's Prometheus endpoint (--listen-metrics-urls): Raft state, the
// store's revision, and resource API requests by verb, kind and code.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient } from '../../services/client/resources.js';
import { freePort, LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';

describe('mast master metrics', function () {
  this.timeout(120_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  it('serves Prometheus text with Raft, store and request figures', async function () {
    const port = await freePort();
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-metrics-')), flags: [`--listen-metrics-urls=http://127.0.0.1:${port}`] });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'counted', namespace: 'default' } });
    await client.get('ConfigMap', 'default', 'counted');
    await client.get('ConfigMap', 'default', 'missing').catch(() => undefined);
    const text = await waitFor('the metrics', async () => {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      const body = await response.text();
      return body.includes('mast_apiserver_requests_total{verb="get",kind="ConfigMap",code="NOT_FOUND"}') ? body : undefined;
    }, 30_000, 100);
    expect(text).to.match(/^mast_raft_is_leader 1$/m);
    expect(text).to.match(/^mast_raft_has_leader 1$/m);
    expect(text).to.match(/^mast_raft_term [1-9]\d*$/m);
    expect(text).to.match(/^mast_raft_commit_index [1-9]\d*$/m);
    expect(text).to.match(/^mast_store_revision [1-9]\d*$/m);
    expect(text).to.match(/^mast_apiserver_requests_total\{verb="create",kind="ConfigMap",code="OK"\} 1$/m);
    expect(text).to.match(/^mast_apiserver_requests_total\{verb="get",kind="ConfigMap",code="OK"\} 1$/m);
    expect(text).to.match(/^mast_apiserver_request_duration_seconds_count\{verb="create",kind="ConfigMap"\} 1$/m);
  });
});

describe('mast master: the candidates\' informers', function () {
  this.timeout(120_000);
  let cluster: LocalCluster | undefined;

  after(async function () {
    await cluster?.destroy();
  });

  it('opens one watch per kind for the scheduler and controller-manager together (they share their informers)', async function () {
    const port = await freePort();
    cluster = await LocalCluster.start({
      size: 1,
      baseDir: mkdtempSync(join(tmpdir(), 'mast-shared-informers-')),
      flags: [`--listen-metrics-urls=http://127.0.0.1:${port}`],
      scheduler: true,
      controllers: true,
    });
    // The controller-manager reads Deployments, the scheduler does not: once both watch what they read, all are counted.
    const text = await waitFor('the candidates\' watches', async () => {
      const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^mast_apiserver_watchers\{kind="Deployment"\} 1$/m.test(body) && /^mast_apiserver_watchers\{kind="PersistentVolume"\} [1-9]$/m.test(body) ? body : undefined;
    }, 60_000, 200);
    // Pods, Nodes, claims and volumes are read by both components; nothing else watches them here.
    for (const kind of ['Pod', 'Node', 'PersistentVolumeClaim', 'PersistentVolume']) {
      expect(text, kind).to.match(new RegExp(`^mast_apiserver_watchers\\{kind="${kind}"\\} 1$`, 'm'));
    }
  });
});
