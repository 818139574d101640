// The resource API on three real master processes, through the gRPC client:
// bootstrapped namespaces, CRUD for every kind, conflicts and validation as
// gRPC statuses, and a watch that survives the death of its master with no
// event missed or repeated.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { KINDS } from '../../services/client/kinds.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { typed, TYPED_KINDS } from '../../services/client/typed.js';
import { isRetriable } from '../../services/client/etcd.js';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';
import { failure } from '../support/refusals.js';

describe('resource API on 3 masters', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;

  before(async function () {
    cluster = await LocalCluster.start({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-api-test-')), flags: ['--watch-bookmark-interval=200'] });
    await cluster.waitForLeader(60_000);
    client = new ResourceClient({ endpoints: cluster.endpoints });
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  it('has the default namespaces', async function () {
    await waitFor(
      'default namespaces',
      async () => {
        const names = (await client.list('Namespace')).items.map((item) => item.metadata?.name);
        return ['default', 'kube-public', 'kube-system'].every((name) => names.includes(name)) ? names : undefined;
      },
      30_000,
      100,
    );
  });

  it('creates, reads, lists, updates, deletes and watches every kind', async function () {
    const pod = { containers: [{ name: 'c', image: 'busybox:1.36' }] };
    const template = { metadata: { labels: { app: 'crud' } }, spec: pod };
    const workload = { selector: { matchLabels: { app: 'crud' } }, template };
    // The least each kind needs to be valid.
    const minimal: Record<string, object> = {
      // Without the default 'kubernetes' finalizer, a deleted namespace goes at once (no namespace controller runs here).
      Namespace: { spec: { finalizers: [] } },
      Pod: { spec: pod },
      Service: { spec: { ports: [{ port: 80 }] } },
      Deployment: { spec: workload },
      ReplicaSet: { spec: workload },
      StatefulSet: { spec: { ...workload, serviceName: 'crud' } },
      DaemonSet: { spec: workload },
      Job: { spec: { ...workload, template: { ...template, spec: { ...pod, restartPolicy: 'Never' } } } },
    };
    for (const info of KINDS) {
      const name = `crud-${info.resource}`;
      const metadata = info.namespaced ? { name, namespace: 'default', labels: { test: 'crud' } } : { name, labels: { test: 'crud' } };
      // A watch of the kind sees the three changes, each at its version.
      const seen: string[] = [];
      const start = await client.list(info.kind, { labelSelector: 'test=crud' });
      const stopWatch = client.watch(info.kind, { labelSelector: 'test=crud', resourceVersion: start.resourceVersion }, { onEvent: (type, object) => seen.push(`${type} ${object.metadata?.name} ${object.metadata?.resourceVersion}`) });
      const created = await client.create(info.kind, { apiVersion: info.apiVersion, kind: info.kind, metadata, ...minimal[info.kind] });
      expect(created.metadata?.resourceVersion, info.kind).to.match(/^\d+$/);
      const got = await client.get(info.kind, info.namespaced ? 'default' : '', name);
      expect(got, info.kind).to.deep.equal(created);
      const listed = await client.list(info.kind, { labelSelector: 'test=crud' });
      expect(listed.items.map((item) => item.metadata?.name), info.kind).to.include(name);
      const updated = await client.update(info.kind, { ...got, metadata: { ...got.metadata, labels: { test: 'crud', updated: 'yes' } } });
      expect(Number(updated.metadata?.resourceVersion)).to.be.greaterThan(Number(created.metadata?.resourceVersion));
      await client.delete(info.kind, info.namespaced ? 'default' : '', name, { resourceVersion: updated.metadata?.resourceVersion as string });
      expect((await failure(client.get(info.kind, info.namespaced ? 'default' : '', name))).code, info.kind).to.equal(grpc.status.NOT_FOUND);
      try {
        await waitFor(`the ${info.kind} watch`, async () => (seen.length >= 3 ? true : undefined), 30_000, 10);
      } finally {
        stopWatch();
      }
      const [, , deletedAt] = seen[2]!.split(' ');
      expect(seen.slice(0, 2), info.kind).to.deep.equal([`ADDED ${name} ${created.metadata?.resourceVersion}`, `MODIFIED ${name} ${updated.metadata?.resourceVersion}`]);
      expect(seen[2]!.startsWith(`DELETED ${name} `), info.kind).to.equal(true);
      expect(Number(deletedAt)).to.be.greaterThan(Number(updated.metadata?.resourceVersion));
    }
  });

  it('answers conflicts, invalid objects and bad requests with statuses that say what is wrong', async function () {
    const created = await client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cas', namespace: 'default' }, data: { v: '1' } });
    await client.update('ConfigMap', { ...created, data: { v: '2' } });
    const stale = await failure(client.update('ConfigMap', { ...created, data: { v: '3' } }));
    expect(stale.code).to.equal(grpc.status.ABORTED);
    expect(stale.metadata.get('mast-reason')).to.deep.equal(['Conflict']);
    expect(stale.details).to.match(/the object has been modified/);
    const invalid = await failure(client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'x', port: 80 }] } }));
    expect(invalid.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(invalid.details).to.equal('Pod "p" is invalid: spec.containers[0].port: unknown field "port"');
    const unknownKind = await failure(client.get('Widget', 'default', 'w'));
    expect(unknownKind.code).to.equal(grpc.status.NOT_FOUND);
    expect(unknownKind.details).to.equal('the server does not serve kind "Widget"');
    const duplicate = await failure(client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cas', namespace: 'default' } }));
    expect(duplicate.code).to.equal(grpc.status.ALREADY_EXISTS);
    const selector = await failure(client.list('Pod', { labelSelector: 'a in (' }));
    expect(selector.code).to.equal(grpc.status.INVALID_ARGUMENT);
  });

  it("keeps a watch going when its master dies: every event once, in order", async function () {
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'watched' } });
    const start = await client.list('ConfigMap', { namespace: 'watched' });
    // The watcher's first master is the first endpoint: that is the one killed.
    const watcher = new ResourceClient({ endpoints: cluster.endpoints });
    const seen: Array<{ type: string; name: string; version: number }> = [];
    const stop = watcher.watch('ConfigMap', { namespace: 'watched', resourceVersion: start.resourceVersion }, {
      onEvent: (type, object) => seen.push({ type, name: object.metadata?.name as string, version: Number(object.metadata?.resourceVersion) }),
    });
    const acked = new Set<string>();
    const total = 120;
    try {
      for (let index = 0; index < total; index++) {
        const name = `cm-${String(index).padStart(3, '0')}`;
        if (index === 40) await cluster.stopMember(cluster.members[0]!.name, 'SIGKILL');
        for (;;) {
          try {
            await client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'watched' }, data: { index: String(index) } });
            break;
          } catch (error) {
            const code = (error as grpc.ServiceError).code;
            if (code === grpc.status.ALREADY_EXISTS) break; // the attempt that failed to answer had succeeded
            if (!isRetriable(error)) throw error;
          }
        }
        acked.add(name);
      }
      await waitFor('the watcher to see every create', async () => (seen.length >= total ? true : undefined), 60_000, 50);
    } finally {
      stop();
      watcher.close();
    }
    expect(seen.map((event) => event.type).every((type) => type === 'ADDED')).to.equal(true);
    expect(seen.map((event) => event.name)).to.deep.equal([...acked].sort());
    const versions = seen.map((event) => event.version);
    expect(versions).to.deep.equal([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).to.equal(versions.length);
    cluster.startMember(cluster.members[0]!.name);
  });

  it('sends bookmarks to a quiet watcher that asked for them', async function () {
    const events: Array<{ type: string; object: KubeObject }> = [];
    const stop = client.watch('Secret', { namespace: 'default', allowBookmarks: true }, { onEvent: (type, object) => events.push({ type, object }) });
    try {
      await waitFor('two bookmarks', async () => (events.filter((event) => event.type === 'BOOKMARK').length >= 2 ? true : undefined), 30_000, 50);
    } finally {
      stop();
    }
    const bookmark = events.find((event) => event.type === 'BOOKMARK')!.object;
    expect(bookmark.kind).to.equal('Secret');
    expect(bookmark.metadata?.resourceVersion).to.match(/^\d+$/);
  });

  it('refuses a write whose fencing token was superseded, with FAILED_PRECONDITION', async function () {
    const lease = (holderIdentity: string): KubeObject => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'fence-test', namespace: 'default' }, spec: { holderIdentity, leaseDurationSeconds: 1 } });
    const held = await client.create('Lease', lease('one'));
    const writer = new ResourceClient({ endpoints: cluster.endpoints });
    try {
      writer.setFence({ namespace: 'default', name: 'fence-test', token: held.metadata!.resourceVersion! });
      await writer.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fenced-ok', namespace: 'default' } });
      await client.update('Lease', { ...held, spec: { holderIdentity: 'two', leaseDurationSeconds: 1 } });
      const refused = await failure(writer.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fenced-late', namespace: 'default' } }));
      expect(refused.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(refused.metadata.get('mast-reason')).to.deep.equal(['Fenced']);
      expect(refused.details).to.match(/^Lease default\/fence-test has had a newer holder since revision \d+: this writer's fencing token \d+ is superseded, so it may not write$/);
      expect((await failure(client.get('ConfigMap', 'default', 'fenced-late'))).code).to.equal(grpc.status.NOT_FOUND);
    } finally {
      writer.close();
    }
  });

  it('holds a ResourceQuota against creates racing through every master', async function () {
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'quota' } });
    await client.create('ResourceQuota', { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'pods', namespace: 'quota' }, spec: { hard: { pods: '2' } } });
    const perMaster = cluster.endpoints.map((endpoint) => new ResourceClient({ endpoints: [endpoint] }));
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, index) => perMaster[index % perMaster.length]!.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${index}`, namespace: 'quota' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } })),
      );
      const refused = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected').map((result) => result.reason as grpc.ServiceError);
      expect(results.filter((result) => result.status === 'fulfilled')).to.have.length(2);
      expect(refused.map((error) => error.code)).to.deep.equal(Array(4).fill(grpc.status.PERMISSION_DENIED));
      expect(refused[0]!.details).to.match(/^pods "p\d" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2$/);
      expect((await client.list('Pod', { namespace: 'quota' })).items).to.have.length(2);
      const quota = await client.get('ResourceQuota', 'quota', 'pods');
      expect(quota.status).to.deep.equal({ hard: { pods: '2' }, used: { pods: '2' } });
    } finally {
      for (const one of perMaster) one.close();
    }
  });

  it('has typed wrappers for every kind it serves', async function () {
    expect(Object.keys(TYPED_KINDS).sort()).to.deep.equal(KINDS.map((info) => info.kind).sort());
    const pods = typed(client, 'Pod');
    const created = await pods.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'typed', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] } });
    expect(created.spec?.containers?.[0]?.image).to.equal('busybox:1.36');
    expect(created.spec?.restartPolicy).to.equal('Always');
    const listed = await pods.list({ namespace: 'default', fieldSelector: 'metadata.name=typed' });
    expect(listed.items.map((pod) => pod.metadata?.name)).to.deep.equal(['typed']);
    const bound = await pods.update({ ...created, spec: { ...created.spec, nodeName: 'n1' } });
    expect(bound.spec?.nodeName).to.equal('n1');
    await pods.delete('default', 'typed', { gracePeriodSeconds: 0 });
  });
});
