// `mast scheduler` and `mast controller-manager` as processes of their own,
// clients of the masters: they elect one of themselves through the same
// Leases as the in-master candidates, act (bind, replicate), and hand over
// when the acting one is killed.

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HollowNode } from '../../services/agent/hollow.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, MAST_BINARY, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

function component(name: string, args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [MAST_BINARY, name, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function exited(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  return { code, stderr };
}

describe('master: standalone scheduler and controller-manager', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  const children: ChildProcess[] = [];
  const nodes: HollowNode[] = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-components-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'kube-node-lease');
  });

  after(async function () {
    for (const node of nodes) node.stop();
    for (const child of children) child.kill('SIGKILL');
    client?.close();
    await cluster?.destroy();
  });

  it('refuses a flag it does not know, naming it', async function () {
    const result = await exited(component('scheduler', ['--bogus=1']));
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/^mast: Unknown option '--bogus'.*mast scheduler --help/);
  });

  it('binds and replicates as clients, and fails over when the acting scheduler is killed', async function () {
    const server = `http://${cluster.endpoints[0]!}`;
    for (const name of ['s1', 's2']) children.push(component('scheduler', ['--server', server, '--name', name]));
    children.push(component('controller-manager', ['--server', server, '--name', 'cm1']));
    for (const name of ['n1', 'n2']) {
      const node = new HollowNode({ client, name, heartbeatIntervalMs: 1000 });
      await node.start();
      nodes.push(node);
    }
    await client.create('ReplicaSet', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    const running = async (selector: string, count: number): Promise<KubeObject[]> =>
      waitFor(`${count} running pods (${selector})`, async () => {
        const pods = (await client.list('Pod', { namespace: 'default', labelSelector: selector })).items;
        return pods.length === count && pods.every((pod) => (pod.status as { phase?: string } | undefined)?.phase === 'Running') ? pods : undefined;
      }, 90_000);
    const pods = await running('app=web', 2);
    // Spread over both nodes: the scheduler scores a workload's pods apart.
    expect(new Set(pods.map((pod) => (pod.spec as { nodeName?: string }).nodeName))).to.deep.equal(new Set(['n1', 'n2']));

    const lease = await client.get('Lease', 'kube-system', 'kube-scheduler');
    const holder = (lease.spec as { holderIdentity: string }).holderIdentity;
    expect(holder).to.match(/^s[12]_/);
    const acting = children[holder.startsWith('s1_') ? 0 : 1]!;
    acting.kill('SIGKILL');
    await client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'after-kill', namespace: 'default', labels: { app: 'late' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    await running('app=late', 1);
    const next = (await client.get('Lease', 'kube-system', 'kube-scheduler')).spec as { holderIdentity: string };
    expect(next.holderIdentity).to.match(/^s[12]_/).and.not.equal(holder);
  });
});
