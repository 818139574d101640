// End to end on real containers and the kernel's nftables: a master (with a
// load-balancer pool), a `mast agent` on a private containerd running the
// nftables proxy (a table of the test's own) and the cluster DNS server, and
// busybox pods on a CNI bridge in the network namespaces CNI makes for them.
// The agent's node IP is the host's own address, where pods reach the DNS
// server through the cluster DNS address the proxy translates.
// Needs root and the Debian packages (ops/containerd/install.sh): skipped
// with a message otherwise, unless MAST_REQUIRE_CONTAINERD=1 (CI).

import { expect } from 'chai';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultInternalIP } from '../../services/agent/node-status.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalAgent } from '../../services/launcher/local-agent.js';
import { containerdUnavailable, LocalContainerd } from '../../services/launcher/local-containerd.js';
import { freePort, LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { connectOutcome, httpGet as get } from '../support/net.js';

const httpGet = async (url: string): Promise<string> => (await get(url)).body.trim();

const MASTCTL = fileURLToPath(new URL('../../services/cmd/mastctl.js', import.meta.url));
const BRIDGE = 'mastsvc0';
const SUBNET = '10.92.0.0/24';
const TABLE = `mast_e2e_${process.pid}`;
const CLUSTER_DNS = '10.96.0.10';
const LB_POOL = '10.93.0.10-10.93.0.20';
const NS = 'default';
const DEADLINE_MS = 120_000;

type ServiceView = KubeObject & { spec?: { clusterIP?: string; ports?: Array<{ port?: number; nodePort?: number }> }; status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } } };
type EndpointsView = KubeObject & { subsets?: Array<{ addresses?: Array<{ ip?: string }> }> };
type PodView = KubeObject & { status?: { phase?: string; podIP?: string } };

const HTTPD = 'mkdir -p /www && echo "$HOSTNAME" > /www/index.html && exec httpd -f -p 8080 -h /www';

describe('e2e: Services on containerd through the nftables proxy and cluster DNS', function () {
  this.timeout(300_000);
  const unavailable = containerdUnavailable();
  let baseDir: string;
  let containerd: LocalContainerd | undefined;
  let cluster: LocalCluster | undefined;
  let agent: LocalAgent | undefined;
  let client: ResourceClient | undefined;
  let server = '';
  let statusPort = 0;
  const nodeIP = defaultInternalIP();

  const mastctl = (...args: string[]): Promise<{ code: number; out: string; err: string }> =>
    new Promise((resolve) =>
      execFile(process.execPath, [MASTCTL, '--server', server, ...args], { env: { ...process.env, MASTCONFIG: join(baseDir, 'no-config') }, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : Number((error as { code?: unknown }).code), out: stdout, err: stderr }),
      ),
    );

  before(async function () {
    if (unavailable !== '') {
      if (process.env.MAST_REQUIRE_CONTAINERD === '1') throw new Error(`MAST_REQUIRE_CONTAINERD=1 but containerd cannot run here: ${unavailable}`);
      console.log(`      (skipped: the Services e2e needs root and ops/containerd/install.sh: ${unavailable})`);
      this.skip();
    }
    if (nodeIP === '127.0.0.1') {
      console.log('      (skipped: the host has no non-loopback IPv4 address for pods to reach the node at)');
      this.skip();
    }
    baseDir = mkdtempSync(join(tmpdir(), 'mast-e2e-services-'));
    containerd = await LocalContainerd.start(join(baseDir, 'containerd'), { bridge: BRIDGE, subnet: SUBNET });
    cluster = await LocalCluster.start({ size: 1, baseDir: join(baseDir, 'masters'), scheduler: true, controllers: true, flags: [`--load-balancer-ip-pool=${LB_POOL}`] });
    server = cluster.members[0]!.clientUrl;
    client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
    await waitForNamespace(client, NS);
    statusPort = await freePort();
    const dnsPort = await freePort();
    agent = LocalAgent.start({
      nodeName: 'e2e-services-node',
      masters: [server],
      rootDir: join(baseDir, 'agent'),
      runtimeEndpoint: containerd.endpoint,
      podCidr: SUBNET,
      flags: [
        '--node-ip', nodeIP,
        '--listen-address', `${nodeIP}:0`,
        '--proxy-mode', 'nftables',
        '--nftables-table', TABLE,
        '--metrics-bind-address', `127.0.0.1:${statusPort}`,
        '--cluster-dns', CLUSTER_DNS,
        '--dns-bind-address', `${nodeIP}:${dnsPort}`,
      ],
    });
    await waitFor('the node to be Ready', async () => {
      const node = await client!.get('Node', '', 'e2e-services-node');
      const conditions = (node.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? [];
      return conditions.some((condition) => condition.type === 'Ready' && condition.status === 'True') ? true : undefined;
    }, 60_000, 200);
  });

  after(async function () {
    if (client !== undefined) {
      for (const name of ['web', 'client']) await client.delete('Deployment', NS, name, { propagationPolicy: 'Foreground' }).catch(() => undefined);
      await waitFor('the pods to be gone', async () => ((await client!.list('Pod', { namespace: NS })).items.length === 0 ? true : undefined), 120_000, 250).catch(() => undefined);
    }
    client?.close();
    await agent?.stop('SIGTERM').catch(() => undefined);
    // The agent leaves its rules (as kube-proxy does); the test removes its table.
    try {
      execFileSync('nft', ['delete', 'table', 'ip', TABLE], { stdio: 'ignore' });
    } catch {
      // Never made, or gone.
    }
    await cluster?.destroy().catch(() => undefined);
    await containerd?.stop();
    if (baseDir !== undefined) rmSync(baseDir, { recursive: true, force: true });
  });

  const service = async (name: string): Promise<ServiceView> => (await client!.get('Service', NS, name)) as ServiceView;
  const readyAddresses = async (name: string): Promise<string[]> => {
    const endpoints = (await client!.get('Endpoints', NS, name).catch(() => undefined)) as EndpointsView | undefined;
    return (endpoints?.subsets ?? []).flatMap((subset) => (subset.addresses ?? []).map((address) => address.ip ?? ''));
  };
  const podNames = async (app: string): Promise<string[]> =>
    ((await client!.list('Pod', { namespace: NS, labelSelector: `app=${app}` })).items as PodView[]).filter((pod) => pod.metadata?.deletionTimestamp === undefined).map((pod) => pod.metadata!.name!);
  const deployment = (name: string, replicas: number, command: string, extra: Record<string, unknown> = {}): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name, image: 'docker.io/local/busybox:1', command: ['sh', '-c', command], ...extra }] } },
    },
  });
  /** Distinct answers of `count` GETs, each on a new connection. */
  const answersOf = async (url: string, count: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let attempt = 0; attempt < count; attempt++) seen.add(await httpGet(url));
    return seen;
  };
  /** Runs `sh -c script` in the client pod through mastctl exec. */
  const inClientPod = async (script: string): Promise<string> => {
    const [pod] = await podNames('client');
    const ran = await mastctl('exec', pod!, '--', 'sh', '-c', script);
    if (ran.code !== 0) throw new Error(`exec in ${pod} exited ${ran.code}: ${ran.out}${ran.err}`);
    return ran.out;
  };

  it('answers GET /proxyMode with "nftables"', async function () {
    const mode = await waitFor('the proxy status endpoint', () => httpGet(`http://127.0.0.1:${statusPort}/proxyMode`), 60_000, 200);
    expect(mode).to.equal('nftables');
  });

  it('balances a ClusterIP over both endpoints from the host, answers on the NodePort at the node address', async function () {
    await client!.create('Deployment', deployment('web', 2, HTTPD, { ports: [{ containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }));
    await client!.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    await waitFor('2 ready endpoints', async () => ((await readyAddresses('web')).length === 2 ? true : undefined), DEADLINE_MS, 250);
    const pods = await podNames('web');
    const web = await service('web');
    const seen = await waitFor('both pods to answer on the cluster IP', async () => {
      const answers = await answersOf(`http://${web.spec!.clusterIP}/`, 30);
      return answers.size === 2 ? answers : undefined;
    }, DEADLINE_MS, 250);
    expect([...seen].sort()).to.deep.equal(pods.sort());
    const viaNodePort = await waitFor('the NodePort', () => httpGet(`http://${nodeIP}:${web.spec!.ports![0]!.nodePort}/`), DEADLINE_MS, 250);
    expect(pods).to.include(viaNodePort);
  });

  it('lets a pod resolve web.default.svc.cluster.local through the cluster DNS and reach both endpoints', async function () {
    await client!.create('Deployment', deployment('client', 1, 'exec sleep 3600'));
    await waitFor('the client pod to run', async () => {
      const [name] = await podNames('client');
      const pod = name === undefined ? undefined : ((await client!.get('Pod', NS, name)) as PodView);
      return pod?.status?.phase === 'Running' ? true : undefined;
    }, DEADLINE_MS, 250);
    const web = await service('web');
    expect(await inClientPod('cat /etc/resolv.conf')).to.include(`nameserver ${CLUSTER_DNS}`);
    const lookup = await waitFor('the name to resolve in the pod', () => inClientPod('nslookup web.default.svc.cluster.local'), 60_000, 500);
    expect(lookup).to.include(web.spec!.clusterIP!);
    // The short name through the search domains, and a connection by name.
    // busybox's nslookup asks every search domain and exits 1 when any has no answer, though the first one did.
    expect(await inClientPod('nslookup web; true')).to.include(web.spec!.clusterIP!);
    const byName = await waitFor('a connection by name', () => inClientPod(`printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web.default.svc.cluster.local 80 | tail -n 1`), 30_000, 500);
    expect(await podNames('web')).to.include(byName.trim());
    const pods = await podNames('web');
    const seen = await waitFor('both web pods to answer the client pod', async () => {
      const out = await inClientPod(`for i in $(seq 1 30); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${web.spec!.clusterIP} 80 | tail -n 1; done`);
      const answers = new Set(out.split('\n').map((line) => line.trim()).filter((line) => line !== ''));
      return answers.size === 2 ? answers : undefined;
    }, 60_000, 500);
    expect([...seen].sort()).to.deep.equal(pods.sort());
  });

  it('sends nothing to a pod scaled away', async function () {
    await client!.patch('Deployment', NS, 'web', { spec: { replicas: 1 } });
    await waitFor('1 ready endpoint', async () => ((await readyAddresses('web')).length === 1 ? true : undefined), DEADLINE_MS, 250);
    const [remaining] = await waitFor('one web pod left', async () => {
      const names = await podNames('web');
      return names.length === 1 ? names : undefined;
    }, DEADLINE_MS, 250);
    const url = `http://${(await service('web')).spec!.clusterIP}/`;
    await waitFor('only the remaining pod to answer', async () => {
      const answers = await answersOf(url, 10);
      return answers.size === 1 && answers.has(remaining!) ? true : undefined;
    }, DEADLINE_MS, 250);
    expect([...(await answersOf(url, 30))]).to.deep.equal([remaining]);
  });

  it('gives a LoadBalancer Service an address from the pool that answers on the node', async function () {
    await client!.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web-lb', namespace: NS }, spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } });
    const ip = await waitFor('an ingress address', async () => (await service('web-lb')).status?.loadBalancer?.ingress?.[0]?.ip, DEADLINE_MS, 250);
    expect(ip).to.equal('10.93.0.10');
    const [remaining] = await podNames('web');
    expect(await waitFor('the load-balancer address to answer', () => httpGet(`http://${ip}/`), DEADLINE_MS, 250)).to.equal(remaining);
  });

  it('rejects a Service with no ready endpoint at once instead of timing out', async function () {
    await client!.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty', namespace: NS }, spec: { selector: { app: 'nothing' }, ports: [{ port: 80, targetPort: 8080 }] } });
    const clusterIP = (await service('empty')).spec!.clusterIP!;
    const result = await waitFor('the empty Service to be rejected', async () => {
      const attempt = await connectOutcome(clusterIP, 80, 5000);
      return attempt.outcome === 'ECONNREFUSED' ? attempt : undefined;
    }, DEADLINE_MS, 250);
    expect(result.ms).to.be.below(1000);
  });
});
