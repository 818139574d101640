// End to end on real containers: a master, a `mast agent` speaking CRI to a
// private containerd (ops/containerd), busybox pods on a CNI bridge.
// Needs root and the Debian packages (ops/containerd/install.sh): skipped
// with a message otherwise, unless MAST_REQUIRE_CONTAINERD=1 (CI), which
// makes their absence a failure.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalAgent } from '../../services/launcher/local-agent.js';
import { containerdUnavailable, LocalContainerd } from '../../services/launcher/local-containerd.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';

const BRIDGE = 'maste2e0';
const SUBNET = '10.89.0.0/24';

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = get(url, { timeout: 3000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(body));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

type PodView = KubeObject & { status?: { phase?: string; podIP?: string; containerStatuses?: Array<{ restartCount?: number; containerID?: string; ready?: boolean }> } };

describe('e2e: pods on containerd through the agent', function () {
  this.timeout(300_000);
  const unavailable = containerdUnavailable();
  let baseDir: string;
  let containerd: LocalContainerd | undefined;
  let cluster: LocalCluster | undefined;
  let agent: LocalAgent | undefined;
  let client: ResourceClient | undefined;

  before(async function () {
    if (unavailable !== '') {
      if (process.env.MAST_REQUIRE_CONTAINERD === '1') throw new Error(`MAST_REQUIRE_CONTAINERD=1 but containerd cannot run here: ${unavailable}`);
      console.log(`      (skipped: containerd e2e needs root and ops/containerd/install.sh: ${unavailable})`);
      this.skip();
    }
    baseDir = mkdtempSync(join(tmpdir(), 'mast-e2e-containerd-'));
    containerd = await LocalContainerd.start(join(baseDir, 'containerd'), { bridge: BRIDGE, subnet: SUBNET });
    cluster = await LocalCluster.start({ size: 1, baseDir: join(baseDir, 'masters'), scheduler: true, controllers: true });
    client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
    await waitForNamespace(client, 'default');
    agent = LocalAgent.start({ nodeName: 'e2e-node', masters: cluster.endpoints, rootDir: join(baseDir, 'agent'), runtimeEndpoint: containerd.endpoint, podCidr: SUBNET, flags: ['--crash-loop-backoff-initial', '1s'] });
    await waitFor('the node to be Ready', async () => {
      const node = await client!.get('Node', '', 'e2e-node');
      const conditions = (node.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? [];
      return conditions.some((condition) => condition.type === 'Ready' && condition.status === 'True') ? true : undefined;
    }, 60_000, 200);
  });

  after(async function () {
    client?.close();
    await agent?.stop('SIGTERM').catch(() => undefined);
    await cluster?.destroy().catch(() => undefined);
    await containerd?.stop();
    if (baseDir !== undefined) rmSync(baseDir, { recursive: true, force: true });
  });

  const containerIdOf = (pod: PodView): string => pod.status!.containerStatuses![0]!.containerID!.replace(/^containerd:\/\//, '');
  const pods = async (): Promise<PodView[]> => (await client!.list('Pod', { namespace: 'default', labelSelector: 'app=web' })).items as PodView[];

  it('runs a Deployment of 3 busybox httpd pods whose IPs answer HTTP from the host', async function () {
    await client!.create('Deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            terminationGracePeriodSeconds: 2,
            containers: [{ name: 'httpd', image: 'docker.io/local/busybox:1', command: ['sh', '-c', 'mkdir -p /www && echo "hello from $HOSTNAME" > /www/index.html && exec httpd -f -p 8080 -h /www'], ports: [{ containerPort: 8080 }] }],
          },
        },
      },
    });
    const running = await waitFor('3 Running pods with IPs', async () => {
      const list = await pods();
      return list.length === 3 && list.every((pod) => pod.status?.phase === 'Running' && (pod.status.podIP ?? '') !== '' && pod.status.containerStatuses?.[0]?.ready === true) ? list : undefined;
    }, 120_000, 250);
    for (const pod of running) {
      expect(pod.status!.podIP!.startsWith('10.89.0.')).to.equal(true);
      const body = await waitFor(`HTTP from ${pod.metadata!.name}`, () => httpGet(`http://${pod.status!.podIP}:8080/`), 30_000, 200);
      expect(body.trim()).to.equal(`hello from ${pod.metadata!.name}`);
    }
  });

  it('runs the containers with the OCI runtime start.sh configured (crun where it can work)', async function () {
    if (process.env.MAST_REQUIRE_CONTAINERD === '1') expect(containerd!.ociRuntime).to.match(/\/crun$/); // CI installs crun
    const ids = (await pods()).map(containerIdOf);
    expect(ids).to.have.length(3);
    const held = await containerd!.runtimeContainerIds();
    expect(held).to.include.members(ids);
  });

  it('restarts a container whose process was killed (restartCount 1)', async function () {
    const [pod] = await pods();
    const containerId = containerIdOf(pod!);
    await containerd!.ctr('tasks', 'kill', '--signal', 'SIGKILL', containerId);
    const restarted = await waitFor('the container to be restarted', async () => {
      const current = (await client!.get('Pod', 'default', pod!.metadata!.name!)) as PodView;
      const status = current.status?.containerStatuses?.[0];
      return status?.restartCount === 1 && status.ready === true ? current : undefined;
    }, 60_000, 250);
    expect(restarted.status!.phase).to.equal('Running');
    const body = await waitFor('HTTP after the restart', () => httpGet(`http://${restarted.status!.podIP}:8080/`), 30_000, 200);
    expect(body.trim()).to.equal(`hello from ${pod!.metadata!.name}`);
  });

  it('leaves no sandbox or container in containerd once the Deployment is deleted', async function () {
    await client!.delete('Deployment', 'default', 'web', { propagationPolicy: 'Foreground' });
    await waitFor('the pods to be gone', async () => ((await pods()).length === 0 ? true : undefined), 120_000, 250);
    const left = await waitFor('containerd to hold no containers', async () => {
      const listed = (await containerd!.ctr('containers', 'ls', '-q')).trim();
      return listed === '' ? listed : undefined;
    }, 60_000, 250);
    expect(left).to.equal('');
  });
});
