// End to end, no root needed: a master (scheduler and controllers on) whose
// Services get cluster IPs from 127.96.0.0/16, and a `mast agent` on the
// embedded runtime running the userspace proxy and the cluster DNS server.
// On Linux every 127/8 address is loopback, so the proxy can listen on the
// cluster IPs themselves. Pods are node HTTP servers answering their own
// name, so the test can tell which endpoint took each connection.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalAgent } from '../../services/launcher/local-agent.js';
import { freePort, LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { connectOutcome, httpGet } from '../support/net.js';

const NS = 'default';
const MARKER = `mast-proxy-it-${process.pid}`;
const DEADLINE_MS = 60_000;

type ServiceView = KubeObject & { spec?: { clusterIP?: string; ports?: Array<{ port?: number; nodePort?: number }> } };
type EndpointsView = KubeObject & { subsets?: Array<{ addresses?: Array<{ ip?: string }> }> };

const SERVER = `require('http').createServer((q, s) => s.end(process.env.POD_NAME)).listen(8080, process.env.POD_IP)`;

describe('e2e: Services through the userspace proxy and cluster DNS on the embedded runtime', function () {
  this.timeout(180_000);
  let baseDir: string;
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;
  let agent: LocalAgent | undefined;
  let statusPort = 0;
  let dnsPort = 0;

  before(async function () {
    baseDir = mkdtempSync(join(tmpdir(), 'mast-proxy-it-'));
    cluster = await LocalCluster.start({ size: 1, baseDir: join(baseDir, 'masters'), scheduler: true, controllers: true, flags: ['--service-cluster-ip-range=127.96.0.0/16'] });
    client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
    await waitForNamespace(client, NS);
    statusPort = await freePort();
    dnsPort = await freePort();
    agent = LocalAgent.start({
      nodeName: 'proxy-it-node',
      masters: [cluster.members[0]!.clientUrl],
      rootDir: join(baseDir, 'agent'),
      flags: ['--proxy-mode', 'userspace', '--metrics-bind-address', `127.0.0.1:${statusPort}`, '--dns-bind-address', `127.0.0.1:${dnsPort}`, '--proxy-sync-period', '2s'],
    });
  });

  after(async function () {
    if (client !== undefined) await client.delete('Deployment', NS, 'web', { propagationPolicy: 'Foreground' }).catch(() => undefined);
    if (client !== undefined) await waitFor('the web pods to be gone', async () => ((await client!.list('Pod', { namespace: NS })).items.length === 0 ? true : undefined), DEADLINE_MS, 200).catch(() => undefined);
    client?.close();
    await agent?.stop('SIGTERM').catch(() => undefined);
    await cluster?.destroy().catch(() => undefined);
    if (baseDir !== undefined) rmSync(baseDir, { recursive: true, force: true });
  });

  const service = async (name: string): Promise<ServiceView> => (await client!.get('Service', NS, name)) as ServiceView;
  const readyAddresses = async (name: string): Promise<string[]> => {
    const endpoints = (await client!.get('Endpoints', NS, name).catch(() => undefined)) as EndpointsView | undefined;
    return (endpoints?.subsets ?? []).flatMap((subset) => (subset.addresses ?? []).map((address) => address.ip ?? ''));
  };

  it('answers GET /proxyMode with "userspace" and /healthz with 200 once synced', async function () {
    const mode = await waitFor('the proxy status endpoint', () => httpGet(`http://127.0.0.1:${statusPort}/proxyMode`), DEADLINE_MS, 200);
    expect(mode).to.deep.equal({ status: 200, body: 'userspace' });
    const health = await waitFor('/healthz 200', async () => {
      const answer = await httpGet(`http://127.0.0.1:${statusPort}/healthz`);
      return answer.status === 200 ? answer : undefined;
    }, DEADLINE_MS, 200);
    expect(JSON.parse(health.body)).to.include({ mode: 'userspace' });
  });

  it('balances a ClusterIP over both ready endpoints, answers on the NodePort, and resolves the name through the cluster DNS', async function () {
    await client!.create('Deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: NS },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'web',
                image: 'node',
                command: ['node', '-e', SERVER],
                ports: [{ containerPort: 8080 }],
                env: [
                  { name: 'MAST_IT_MARKER', value: MARKER },
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                ],
                readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
              },
            ],
          },
        },
      },
    });
    await client!.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 8080, targetPort: 8080 }] } });
    const web = await service('web');
    const clusterIP = web.spec!.clusterIP!;
    const nodePort = web.spec!.ports![0]!.nodePort!;
    expect(clusterIP).to.match(/^127\.96\.\d+\.\d+$/);
    await waitFor('2 ready endpoints', async () => ((await readyAddresses('web')).length === 2 ? true : undefined), DEADLINE_MS, 200);
    const pods = (await client!.list('Pod', { namespace: NS, labelSelector: 'app=web' })).items.map((pod) => pod.metadata!.name!);
    const seen = await waitFor('both endpoints to answer through the cluster IP', async () => {
      const names = new Set<string>();
      for (let attempt = 0; attempt < 20; attempt++) names.add((await httpGet(`http://${clusterIP}:8080/`)).body);
      return names.size === 2 ? names : undefined;
    }, DEADLINE_MS, 200);
    expect([...seen].sort()).to.deep.equal([...pods].sort());

    const viaNodePort = await waitFor('the NodePort', () => httpGet(`http://127.0.0.1:${nodePort}/`), DEADLINE_MS, 200);
    expect(pods).to.include(viaNodePort.body);

    const resolver = new Resolver({ timeout: 2000, tries: 2 });
    resolver.setServers([`127.0.0.1:${dnsPort}`]);
    const addresses = await waitFor('web.default.svc.cluster.local to resolve', () => resolver.resolve4('web.default.svc.cluster.local'), DEADLINE_MS, 200);
    expect(addresses).to.deep.equal([clusterIP]);
    const srv = await resolver.resolveSrv('_http._tcp.web.default.svc.cluster.local');
    expect(srv.map((record) => ({ name: record.name, port: record.port }))).to.deep.equal([{ name: 'web.default.svc.cluster.local', port: 8080 }]);
    const unknown = await resolver.resolve4('nothing.default.svc.cluster.local').then(() => 'resolved', (error: NodeJS.ErrnoException) => error.code);
    expect(unknown).to.equal('ENOTFOUND');
  });

  it('sends nothing to a pod scaled away', async function () {
    await client!.patch('Deployment', NS, 'web', { spec: { replicas: 1 } });
    await waitFor('1 ready endpoint', async () => ((await readyAddresses('web')).length === 1 ? true : undefined), DEADLINE_MS, 200);
    const [remaining] = await waitFor('one web pod left', async () => {
      const pods = (await client!.list('Pod', { namespace: NS, labelSelector: 'app=web' })).items.filter((pod) => pod.metadata?.deletionTimestamp === undefined);
      return pods.length === 1 ? pods : undefined;
    }, DEADLINE_MS, 200);
    const clusterIP = (await service('web')).spec!.clusterIP!;
    // The proxy applies the Endpoints change soon after the API has it; from then on only the remaining pod answers.
    await waitFor('only the remaining pod to answer', async () => {
      const names = new Set<string>();
      for (let attempt = 0; attempt < 10; attempt++) names.add((await httpGet(`http://${clusterIP}:8080/`)).body);
      return names.size === 1 && names.has(remaining!.metadata!.name!) ? true : undefined;
    }, DEADLINE_MS, 200);
    for (let attempt = 0; attempt < 20; attempt++) expect((await httpGet(`http://${clusterIP}:8080/`)).body).to.equal(remaining!.metadata!.name);
  });

  it('refuses a Service with no ready endpoint at once instead of timing out', async function () {
    await client!.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty', namespace: NS }, spec: { selector: { app: 'nothing' }, ports: [{ port: 8081, targetPort: 8080 }] } });
    const clusterIP = (await service('empty')).spec!.clusterIP!;
    const result = await waitFor('the proxy to answer on the empty Service', async () => {
      const attempt = await connectOutcome(clusterIP, 8081, 5000);
      return attempt.outcome === 'ECONNRESET' || attempt.outcome === 'closed' ? attempt : undefined;
    }, DEADLINE_MS, 200);
    expect(result.ms).to.be.below(2000);
    await client!.delete('Service', NS, 'empty');
  });

  it('serves the proxy metrics and the agent’s own', async function () {
    const metrics = await httpGet(`http://127.0.0.1:${statusPort}/metrics`);
    expect(metrics.status).to.equal(200);
    expect(metrics.body).to.match(/^mast_proxy_service_ports\{[^}]*\} [1-9]/m);
    expect(metrics.body).to.match(/^mast_proxy_syncs_total\{[^}]*kind="partial"[^}]*result="ok"[^}]*\} [1-9]/m);
    expect(metrics.body).to.match(/^mast_dns_queries_total\{[^}]*\} [1-9]/m);
    // The web pods ran here: started (timed from the agent seeing them to Running), reported, counted.
    const value = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics.body)?.[1] ?? Number.NaN);
    expect(value('mast_agent_pods')).to.be.at.least(1);
    expect(value('mast_agent_running_pods')).to.be.at.least(1).and.at.most(value('mast_agent_pods'));
    expect(value('mast_agent_pod_status_updates_total')).to.be.at.least(value('mast_agent_running_pods'));
    expect(value('mast_agent_pod_start_duration_seconds_count')).to.be.at.least(2);
    expect(value('mast_agent_pod_start_duration_seconds_sum')).to.be.greaterThan(0);
    expect(value('mast_agent_container_restarts')).to.equal(0);
  });
});
