// The hollow node against a real master: it registers its Node and Lease,
// reports a pod bound to it Running and Ready (again, after someone else
// marked it not ready), and finishes a graceful delete as a kubelet would.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HollowNode } from '../../services/agent/hollow.js';
import { ResourceClient, statusCodeOf, type KubeObject } from '../../services/client/resources.js';
import { LocalAgent } from '../../services/launcher/local-agent.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

type PodStatus = { phase?: string; podIP?: string; conditions?: Array<{ type: string; status: string }> };

describe('agent: the hollow node', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let node: HollowNode | undefined;

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-hollow-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'kube-node-lease');
  });

  after(async function () {
    node?.stop();
    client?.close();
    await cluster?.destroy();
  });

  it('registers, runs a bound pod, reports it Ready again, and finishes its deletion', async function () {
    node = new HollowNode({ client, name: 'h1', heartbeatIntervalMs: 200, labels: { disktype: 'ssd' } });
    await node.start();
    const registered = await client.get('Node', '', 'h1');
    expect(registered.metadata?.labels).to.include({ 'kubernetes.io/hostname': 'h1', disktype: 'ssd' });
    expect((registered.status as { allocatable?: Record<string, string> }).allocatable).to.deep.equal({ cpu: '4', memory: '32Gi', pods: '110' });
    const lease = await client.get('Lease', 'kube-node-lease', 'h1');
    const firstRenewal = (lease.spec as { renewTime: string }).renewTime;
    await waitFor('a lease renewal', async () => ((await client.get('Lease', 'kube-node-lease', 'h1')).spec as { renewTime: string }).renewTime !== firstRenewal || undefined, 30_000);

    await client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { nodeName: 'h1', containers: [{ name: 'c', image: 'busybox' }] } });
    const ready = (pod: KubeObject): boolean => ((pod.status as PodStatus | undefined)?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True');
    const running = await waitFor('p Running and Ready', async () => {
      const pod = await client.get('Pod', 'default', 'p');
      return (pod.status as PodStatus | undefined)?.phase === 'Running' && ready(pod) ? pod : undefined;
    }, 30_000);
    const ip = (running.status as PodStatus).podIP;
    expect(ip).to.match(/^10\.244\.0\.\d+$/);

    // The node lifecycle controller's view while the node seemed gone: not ready.
    await client.updateStatus('Pod', { ...running, status: { ...(running.status as object), conditions: [{ type: 'Ready', status: 'False' }] } });
    const again = await waitFor('p Ready again', async () => {
      const pod = await client.get('Pod', 'default', 'p');
      return ready(pod) ? pod : undefined;
    }, 30_000);
    expect((again.status as PodStatus).podIP).to.equal(ip);

    await client.delete('Pod', 'default', 'p', { gracePeriodSeconds: 30 });
    await waitFor('p gone', async () => {
      try {
        await client.get('Pod', 'default', 'p');
        return undefined;
      } catch (error) {
        return statusCodeOf(error) === 5 ? true : undefined;
      }
    }, 30_000);
  });

  it('runs as `mast agent --hollow`: the Node registers and a bound pod is reported Running, with no runtime', async function () {
    const rootDir = mkdtempSync(join(tmpdir(), 'mast-hollow-agent-'));
    const agent = LocalAgent.start({ nodeName: 'h2', masters: cluster.endpoints, rootDir, flags: ['--hollow', '--node-labels', 'tier=hollow'] });
    try {
      const registered = await waitFor('h2 registered', () => client.get('Node', '', 'h2'), 30_000, 100);
      expect(registered.metadata?.labels).to.include({ 'kubernetes.io/hostname': 'h2', tier: 'hollow' });
      await client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'hp', namespace: 'default' }, spec: { nodeName: 'h2', containers: [{ name: 'c', image: 'no-such-image' }] } });
      const running = await waitFor('hp Running', async () => {
        const pod = await client.get('Pod', 'default', 'hp');
        return (pod.status as PodStatus | undefined)?.phase === 'Running' ? pod : undefined;
      }, 30_000, 100);
      expect((running.status as PodStatus).podIP).to.be.a('string');
    } finally {
      const code = await agent.stop('SIGTERM');
      rmSync(rootDir, { recursive: true, force: true });
      expect(code).to.equal(0);
    }
  });
});
