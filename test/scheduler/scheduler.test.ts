// The scheduler's binding loop against a real master with hollow nodes
// (Node objects with capacity, no runtime): pods are bound where they fit,
// spread, and selected; a pod that fits nowhere says why and is bound when
// a node that fits appears; a pod whose claim is missing or unbound waits,
// saying so, and goes to its local volume's node once the claim is bound.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pod } from '../../proto/gen/resources/v1/core.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { Scheduler } from '../../services/scheduler/scheduler.js';

function node(name: string, cpu: string, labels: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
    status: { capacity: { cpu, memory: '8Gi', pods: '110' }, allocatable: { cpu, memory: '8Gi', pods: '110' }, conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

function pod(name: string, cpu: string, extra: Record<string, unknown> = {}, app = 'web'): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app } }, spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu, memory: '64Mi' } } }], ...extra } };
}

describe('scheduler: the binding loop on a real master', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let scheduler: Scheduler;
  const controller = new AbortController();
  let running: Promise<void>;
  const logged: string[] = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-scheduler-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    for (const [name, cpu, labels] of [['n1', '2', { disktype: 'ssd' }], ['n2', '2', {}], ['n3', '1', {}]] as const) await addNode(name, cpu, labels);
    scheduler = new Scheduler({ client, log: (line) => logged.push(line) });
    running = scheduler.run(controller.signal);
  });

  after(async function () {
    controller.abort();
    await running?.catch(() => undefined);
    client?.close();
    await cluster?.destroy();
  });

  /** A node as an agent registers it: the object, then its status (a subresource: create drops it). */
  const addNode = async (name: string, cpu: string, labels: Record<string, string> = {}): Promise<void> => {
    const created = await client.create('Node', node(name, cpu, labels));
    await client.updateStatus('Node', { ...created, status: node(name, cpu, labels).status });
  };

  const nodeOf = async (name: string): Promise<string> => {
    const found = (await client.get('Pod', 'default', name)) as Pod;
    return found.spec?.nodeName ?? '';
  };

  it('binds pods where they fit, spreading replicas, and honours nodeSelector', async function () {
    await client.create('Pod', pod('web-1', '500m', { nodeSelector: { disktype: 'ssd' } }));
    await waitFor('web-1 to be bound', async () => ((await nodeOf('web-1')) !== '' ? true : undefined), 30_000, 20);
    expect(await nodeOf('web-1')).to.equal('n1');
    for (const name of ['r-1', 'r-2', 'r-3']) await client.create('Pod', pod(name, '100m', {}, 'replica'));
    await waitFor('the replicas to be bound', async () => ((await Promise.all(['r-1', 'r-2', 'r-3'].map(nodeOf))).every((bound) => bound !== '') ? true : undefined), 30_000, 20);
    // Three nodes, three replicas: one each (spreading and least-allocated agree).
    expect(new Set(await Promise.all(['r-1', 'r-2', 'r-3'].map(nodeOf))).size).to.equal(3);
  });

  it('says why a pod fits nowhere, and binds it once a node that fits joins', async function () {
    await client.create('Pod', pod('big', '3'));
    const reported = await waitFor('the PodScheduled=False condition', async () => {
      const found = (await client.get('Pod', 'default', 'big')) as Pod;
      return found.status?.conditions?.find((condition) => condition.type === 'PodScheduled');
    }, 30_000, 20);
    expect(reported).to.deep.include({ status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.' });
    await addNode('n4', '4');
    await waitFor('big to be bound', async () => ((await nodeOf('big')) === 'n4' ? true : undefined), 30_000, 20);
    expect(scheduler.unschedulable).to.be.greaterThan(0);
  });

  it('holds a pod whose claim is missing or unbound, and binds it to its volume\'s node once the claim is bound', async function () {
    const condition = async (): Promise<string | undefined> => ((await client.get('Pod', 'default', 'claimer')) as Pod).status?.conditions?.find((found) => found.type === 'PodScheduled')?.message;
    const saying = (text: string): Promise<string> => waitFor(`the pod to say ${text}`, async () => ((await condition())?.endsWith(text) === true ? condition() : undefined), 30_000, 20);
    await client.create('Pod', pod('claimer', '100m', { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }] }));
    expect(await saying('persistentvolumeclaim "data" not found.')).to.match(/^0\/\d+ nodes are available: persistentvolumeclaim "data" not found\.$/);
    // The claim appears, unbound (no binder runs here): the pod is tried again and says why it still waits.
    const claim = await client.create('PersistentVolumeClaim', { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    await saying('pod has unbound immediate PersistentVolumeClaims.');
    // Bound as the binder binds, to a local volume on n2.
    await client.create('PersistentVolume', {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'pv-data' },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        local: { path: '/mnt/disks/data' },
        nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['n2'] }] }] } },
        claimRef: { kind: 'PersistentVolumeClaim', namespace: 'default', name: 'data', uid: claim.metadata?.uid },
      },
    });
    await client.update('PersistentVolumeClaim', { ...claim, metadata: { ...claim.metadata, annotations: { 'pv.kubernetes.io/bind-completed': 'yes' } }, spec: { ...(claim.spec as object), volumeName: 'pv-data' } });
    await waitFor('claimer to be bound', async () => ((await nodeOf('claimer')) !== '' ? true : undefined), 30_000, 20);
    expect(await nodeOf('claimer')).to.equal('n2');
  });
});
