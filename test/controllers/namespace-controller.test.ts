// The namespace controller on a 1-master cluster, run in this process: a
// deleted namespace is Terminating, refuses new content, has its content
// deleted (waiting for a bound pod's kubelet, played here), and goes once
// empty; the namespaces every cluster keeps cannot be deleted.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, statusCodeOf, type KubeObject } from '../../services/client/resources.js';
import { NamespaceController } from '../../services/controllers/namespace/controller.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { failure } from '../support/refusals.js';

describe('controllers: the namespace controller', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let pods: Informer;
  const stop = new AbortController();
  const logged: string[] = [];
  let running: Promise<void> | undefined;

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-namespace-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    pods = new Informer(client, 'Pod');
    pods.start();
    running = new NamespaceController({ client, pods, log: (line) => logged.push(line) }).run(stop.signal);
  });

  after(async function () {
    stop.abort();
    pods?.stop();
    await running;
    client?.close();
    await cluster?.destroy();
  });

  const pod = (name: string, nodeName?: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop' },
    spec: { ...(nodeName === undefined ? {} : { nodeName }), terminationGracePeriodSeconds: 30, containers: [{ name: 'c', image: 'busybox' }] },
  });
  const condition = (namespace: KubeObject, type: string): { status?: string; message?: string } | undefined =>
    ((namespace.status as { conditions?: Array<{ type: string; status?: string; message?: string }> } | undefined)?.conditions ?? []).find((one) => one.type === type);

  it('deletes a namespace’s pods, config maps and services, waits for a bound pod’s kubelet, then the namespace', async function () {
    const created = await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    expect(created.spec).to.deep.equal({ finalizers: ['kubernetes'] });
    await client.create('Pod', pod('loose'));
    const bound = await client.create('Pod', pod('bound', 'n1'));
    await client.updateStatus('Pod', { ...bound, status: { phase: 'Running', podIP: '10.1.0.9', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }] } });
    await client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'shop' }, data: { a: '1' } });
    await client.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });

    const marked = await client.delete('Namespace', '', 'shop');
    expect(marked.metadata?.deletionTimestamp).to.be.a('string');
    expect((marked.status as { phase?: string }).phase).to.equal('Terminating');
    const refused = await failure(client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'late', namespace: 'shop' } }));
    expect(refused.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(refused.details).to.equal('configmaps "late" is forbidden: unable to create new content in namespace shop because it is being terminated');

    // Everything goes but the bound pod, which waits for its kubelet: the conditions say so.
    const waiting = await waitFor('the namespace to report the pod that remains', async () => {
      const namespace = await client.get('Namespace', '', 'shop');
      return condition(namespace, 'NamespaceContentRemaining')?.message === 'Some resources are remaining: pods has 1 resource instances' ? namespace : undefined;
    }, 60_000, 100);
    expect(condition(waiting, 'NamespaceDeletionContentFailure')).to.deep.include({ status: 'False' });
    expect((await client.list('ConfigMap', { namespace: 'shop' })).items).to.deep.equal([]);
    expect((await client.list('Service', { namespace: 'shop' })).items).to.deep.equal([]);
    const terminating = (await client.list('Pod', { namespace: 'shop' })).items;
    expect(terminating.map((one) => [one.metadata?.name, typeof one.metadata?.deletionTimestamp])).to.deep.equal([['bound', 'string']]);
    expect((await client.get('Namespace', '', 'shop')).spec).to.deep.equal({ finalizers: ['kubernetes'] });

    // The kubelet confirms the pod stopped; the namespace goes.
    await client.delete('Pod', 'shop', 'bound', { gracePeriodSeconds: 0 });
    await waitFor('the namespace to go', async () => {
      try {
        await client.get('Namespace', '', 'shop');
        return undefined;
      } catch (error) {
        if (statusCodeOf(error) === grpc.status.NOT_FOUND) return true;
        throw error;
      }
    }, 60_000, 100);
    expect(logged).to.include('namespace shop: empty; finalized');
    // A namespace of the same name is a new, empty one.
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    expect((await client.list('Pod', { namespace: 'shop' })).items).to.deep.equal([]);
  });

  it('refuses to delete the namespaces every cluster keeps', async function () {
    for (const name of ['default', 'kube-system']) {
      const refused = await failure(client.delete('Namespace', '', name));
      expect(refused.code).to.equal(grpc.status.PERMISSION_DENIED);
      expect(refused.details).to.equal(`namespaces "${name}" is forbidden: this namespace may not be deleted`);
    }
    expect((await client.get('Namespace', '', 'default')).metadata?.deletionTimestamp).to.equal(undefined);
  });
});
