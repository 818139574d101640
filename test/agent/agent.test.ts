// End to end on the embedded runtime: a master (scheduler and controllers
// on) and a `mast agent` process with no --container-runtime-endpoint, so it
// runs pods as host processes through its in-process `mast cri`. Pods run
// busybox applets and the built-in httpd; the test drives them through the
// API and the real mastctl bin (logs, exec, apply, delete) and checks what
// happens on the host. Every container carries a unique marker (in its
// environment, and in its command line where it has one) so that `after`
// can find any process a pod left behind, kill it, and fail.

import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalAgent } from '../../services/launcher/local-agent.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

const MASTCTL = fileURLToPath(new URL('../../services/cmd/mastctl.js', import.meta.url));
const MARKER = `mast-agent-it-${process.pid}`;
const NODE = 'agent-it-node';
const NS = 'default';
const DEADLINE_MS = 60_000;

interface ContainerStatusView {
  name?: string;
  ready?: boolean;
  started?: boolean;
  restartCount?: number;
  containerID?: string;
  state?: { running?: { startedAt?: string }; waiting?: { reason?: string; message?: string }; terminated?: { exitCode?: number; reason?: string } };
  lastState?: { terminated?: { exitCode?: number; reason?: string } };
}
type PodView = KubeObject & {
  spec?: { nodeName?: string };
  status?: { phase?: string; podIP?: string; conditions?: Array<{ type: string; status: string }>; containerStatuses?: ContainerStatusView[] };
};
type NodeView = KubeObject & {
  status?: {
    conditions?: Array<{ type: string; status: string }>;
    capacity?: Record<string, string>;
    allocatable?: Record<string, string>;
    addresses?: Array<{ type: string; address: string }>;
    daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
  };
};

interface Ran {
  code: number;
  out: string;
  err: string;
}

interface HostProcess {
  pid: number;
  cmdline: string;
}

/** Every process on the host (but this one) that belongs to the test's pods: the marker in its command line or environment, or a rootfs of this agent. */
function podProcesses(agentRoot: string): HostProcess[] {
  const found: HostProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmdline.includes(MARKER) || environ.includes(MARKER) || environ.includes(`MAST_ROOTFS=${agentRoot}/`)) found.push({ pid: Number(entry), cmdline });
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = get(url, { timeout: 3000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

const isReady = (object: { status?: { conditions?: Array<{ type: string; status: string }> } }): boolean =>
  (object.status?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True');

/** A busybox container; every one carries the marker in its environment. */
function container(command: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { env, ...rest } = extra as { env?: unknown[] };
  return { name: 'main', image: 'busybox', command: ['sh', '-c', command], env: [{ name: 'MAST_IT_MARKER', value: MARKER }, ...(env ?? [])], ...rest };
}

describe('agent: pods on the embedded runtime, end to end through processes and mastctl', function () {
  this.timeout(120_000);
  let baseDir: string;
  let agentRoot: string;
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;
  let agent: LocalAgent | undefined;
  let server = '';

  const mastctl = (...args: string[]): Promise<Ran> =>
    new Promise((resolve) =>
      execFile(process.execPath, [MASTCTL, '--server', server, ...args], { env: { ...process.env, MASTCONFIG: join(baseDir, 'no-config') }, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : Number((error as { code?: unknown }).code), out: stdout, err: stderr }),
      ),
    );

  const createPod = (name: string, spec: Record<string, unknown>): Promise<KubeObject> =>
    client!.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { test: 'agent-it' } }, spec: { terminationGracePeriodSeconds: 2, ...spec } });
  const getPod = async (name: string): Promise<PodView> => (await client!.get('Pod', NS, name)) as PodView;
  const waitPod = (name: string, what: string, accept: (pod: PodView) => boolean, timeoutMs = DEADLINE_MS): Promise<PodView> =>
    waitFor(`pod ${name}: ${what}`, async () => {
      const pod = await getPod(name);
      return accept(pod) ? pod : undefined;
    }, timeoutMs, 100);
  const mainStatus = (pod: PodView): ContainerStatusView | undefined => pod.status?.containerStatuses?.find((status) => status.name === 'main');
  const podsOnNode = async (): Promise<PodView[]> => (await client!.list('Pod', { fieldSelector: `spec.nodeName=${NODE}` })).items as PodView[];

  /** The agent's API port, from its log: the `agent API on HOST:PORT` line after `fromOffset`. */
  const agentPort = (fromOffset: number): Promise<number> =>
    waitFor('the agent to log its API address', async () => {
      const text = readFileSync(join(agentRoot, 'agent.log'), 'utf8').slice(fromOffset);
      const match = /agent API on 127\.0\.0\.1:(\d+)/.exec(text);
      return match === null ? undefined : Number(match[1]);
    }, DEADLINE_MS, 100);
  const startAgent = (): LocalAgent =>
    LocalAgent.start({ nodeName: NODE, masters: [cluster!.members[0]!.clientUrl], rootDir: agentRoot, flags: ['--crash-loop-backoff-initial', '1s', '--crash-loop-backoff-max', '4s'] });
  const waitNode = (port: number): Promise<NodeView> =>
    waitFor(`node ${NODE} Ready, its agent on port ${port}`, async () => {
      const node = (await client!.get('Node', '', NODE)) as NodeView;
      return isReady(node) && node.status?.daemonEndpoints?.kubeletEndpoint?.Port === port ? node : undefined;
    }, DEADLINE_MS, 100);

  let agentApiPort = 0;

  before(async function () {
    baseDir = mkdtempSync(join(tmpdir(), 'mast-agent-it-'));
    agentRoot = join(baseDir, 'agent');
    cluster = await LocalCluster.start({ size: 1, baseDir: join(baseDir, 'masters'), scheduler: true, controllers: true });
    server = cluster.members[0]!.clientUrl;
    client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
    await waitForNamespace(client, NS);
    agent = startAgent();
    agentApiPort = await agentPort(0);
    await waitNode(agentApiPort);
  });

  after(async function () {
    this.timeout(120_000);
    const problems: string[] = [];
    // Delete every pod while the agent still runs, so that it stops their processes; then stop the agent.
    if (client !== undefined && agent !== undefined && agent.process.exitCode === null && agent.process.signalCode === null) {
      try {
        await client.delete('Deployment', NS, 'web').catch(() => undefined);
        for (const pod of await podsOnNode()) await client.delete('Pod', pod.metadata?.namespace ?? NS, pod.metadata?.name ?? '').catch(() => undefined);
        await waitFor('every pod of the node to be gone', async () => ((await podsOnNode()).length === 0 ? true : undefined), 45_000, 200);
      } catch (error) {
        problems.push(`cleaning up pods: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    await agent?.stop('SIGTERM').catch(() => undefined);
    if (agentRoot !== undefined) {
      const left = podProcesses(agentRoot);
      for (const leftover of left) {
        try {
          process.kill(leftover.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      if (left.length > 0) problems.push(`host processes of the test's pods survived (killed now): ${left.map((leftover) => `${leftover.pid} ${leftover.cmdline}`).join('; ')}`);
    }
    client?.close();
    await cluster?.destroy().catch(() => undefined);
    if (baseDir !== undefined) rmSync(baseDir, { recursive: true, force: true });
    if (problems.length > 0) throw new Error(problems.join('\n'));
  });

  it('runs a pod: Running on a 127.10/16 IP, its container ready, started and never restarted; the Node Ready with capacity and the agent endpoint', async function () {
    await createPod('hello', { containers: [container(`echo hello-${MARKER}; while true; do echo tick; sleep 1; done`)] });
    const pod = await waitPod('hello', 'Running and ready', (candidate) => candidate.status?.phase === 'Running' && mainStatus(candidate)?.ready === true);
    expect(pod.spec?.nodeName).to.equal(NODE);
    expect(pod.status?.podIP).to.match(/^127\.10\.\d{1,3}\.\d{1,3}$/);
    const status = mainStatus(pod)!;
    expect(status).to.include({ ready: true, started: true, restartCount: 0 });
    expect(status.state?.running?.startedAt).to.be.a('string');
    expect(status.containerID).to.match(/^\S+:\/\/[0-9a-f]{64}$/);
    expect(isReady(pod)).to.equal(true);

    const node = (await client!.get('Node', '', NODE)) as NodeView;
    expect(isReady(node)).to.equal(true);
    expect(node.status?.capacity).to.include.keys('cpu', 'memory', 'pods');
    expect(node.status?.allocatable).to.include.keys('cpu', 'memory', 'pods');
    expect(node.status?.addresses).to.deep.include({ type: 'InternalIP', address: '127.0.0.1' });
    expect(node.status?.daemonEndpoints?.kubeletEndpoint?.Port).to.equal(agentApiPort);
  });

  it('serves the pod log and exec through the master to mastctl: logs, --tail=1, exec with the exit code', async function () {
    const logs = await waitFor('hello and a tick in the log', async () => {
      const ran = await mastctl('logs', 'hello');
      return ran.code === 0 && ran.out.includes(`hello-${MARKER}\n`) && ran.out.includes('tick\n') ? ran : undefined;
    }, DEADLINE_MS, 200);
    expect(logs.out.split('\n')[0]).to.equal(`hello-${MARKER}`);
    const tail = await mastctl('logs', 'hello', '--tail=1');
    expect(tail).to.deep.equal({ code: 0, out: 'tick\n', err: '' });
    const exec = await mastctl('exec', 'hello', '--', 'sh', '-c', 'echo in-pod; exit 4');
    expect(exec.code).to.equal(4);
    expect(exec.out).to.equal('in-pod\n');
    expect(exec.err).to.include('command terminated with exit code 4');
  });

  it('restarts a crashing container with back-off (CrashLoopBackOff, lastState exit 3, --previous log); restartPolicy Never ends Succeeded or Failed', async function () {
    await createPod('crash', { restartPolicy: 'Always', containers: [container(`echo crash-${MARKER}; exit 3`)] });
    await createPod('done-ok', { restartPolicy: 'Never', containers: [container(`echo ok-${MARKER}; exit 0`)] });
    await createPod('done-fail', { restartPolicy: 'Never', containers: [container(`echo fail-${MARKER}; exit 5`)] });

    const reasons = new Set<string>();
    const crashing = await waitPod('crash', 'restartCount >= 2 after a CrashLoopBackOff, last exit 3', (pod) => {
      const status = mainStatus(pod);
      const reason = status?.state?.waiting?.reason;
      if (reason !== undefined) reasons.add(reason);
      return (status?.restartCount ?? 0) >= 2 && reasons.has('CrashLoopBackOff') && status?.lastState?.terminated?.exitCode === 3;
    });
    expect([...reasons]).to.include('CrashLoopBackOff');
    expect(crashing.status?.phase).to.equal('Running');
    expect(mainStatus(crashing)?.lastState?.terminated).to.include({ exitCode: 3, reason: 'Error' });
    const previous = await mastctl('logs', 'crash', '--previous');
    expect(previous.code).to.equal(0);
    expect(previous.out).to.equal(`crash-${MARKER}\n`);

    const ok = await waitPod('done-ok', 'Succeeded', (pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed');
    expect(ok.status?.phase).to.equal('Succeeded');
    expect(mainStatus(ok)).to.include({ restartCount: 0, ready: false });
    expect(mainStatus(ok)?.state?.terminated).to.include({ exitCode: 0, reason: 'Completed' });
    const failed = await waitPod('done-fail', 'Failed', (pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed');
    expect(failed.status?.phase).to.equal('Failed');
    expect(mainStatus(failed)).to.include({ restartCount: 0, ready: false });
    expect(mainStatus(failed)?.state?.terminated).to.include({ exitCode: 5, reason: 'Error' });
    expect((await mastctl('logs', 'done-fail')).out).to.equal(`fail-${MARKER}\n`);
  });

  it('gives a container env (value, configMapKeyRef, secretKeyRef, Service links) and a configMap volume under $MAST_ROOTFS', async function () {
    await client!.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'it-config', namespace: NS }, data: { greeting: 'hello-from-configmap', 'settings.conf': `file-${MARKER}\nsecond line\n` } });
    await client!.create('Secret', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'it-secret', namespace: NS }, type: 'Opaque', data: { password: Buffer.from('s3cret-value').toString('base64') } });
    const service = (await client!.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'it-svc', namespace: NS }, spec: { selector: { app: 'nothing-here' }, ports: [{ port: 8080, targetPort: 8080 }] } })) as KubeObject & { spec?: { clusterIP?: string } };
    const clusterIP = service.spec?.clusterIP ?? '';
    expect(clusterIP).to.match(/^\d+\.\d+\.\d+\.\d+$/);

    await createPod('env-vol', {
      restartPolicy: 'Never',
      volumes: [{ name: 'cfg', configMap: { name: 'it-config' } }],
      containers: [
        container('echo "plain=$PLAIN"; echo "cm=$FROM_CM"; echo "secret=$FROM_SECRET"; echo "svc=$IT_SVC_SERVICE_HOST:$IT_SVC_SERVICE_PORT"; cat "$MAST_ROOTFS/etc/cfg/settings.conf"', {
          env: [
            { name: 'PLAIN', value: 'plain-value' },
            { name: 'FROM_CM', valueFrom: { configMapKeyRef: { name: 'it-config', key: 'greeting' } } },
            { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'it-secret', key: 'password' } } },
          ],
          volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg' }],
        }),
      ],
    });
    const done = await waitPod('env-vol', 'finished', (pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed');
    const logs = await mastctl('logs', 'env-vol');
    expect(logs.code).to.equal(0);
    expect(logs.out).to.equal(['plain=plain-value', 'cm=hello-from-configmap', 'secret=s3cret-value', `svc=${clusterIP}:8080`, `file-${MARKER}`, 'second line', ''].join('\n'));
    expect(done.status?.phase).to.equal('Succeeded');
  });

  it('probes: not Ready while the readiness probe fails, Ready once it passes; a failing liveness probe restarts the container', async function () {
    const flag = join(baseDir, `ready-${MARKER}`);
    const probeLog = join(baseDir, `probes-${MARKER}`);
    await createPod('readiness', {
      containers: [container(`echo readiness-${MARKER}; while true; do sleep 1; done`, { readinessProbe: { exec: { command: ['sh', '-c', `echo tried >> ${probeLog}; test -f ${flag}`] }, periodSeconds: 1, failureThreshold: 1 } })],
    });
    await createPod('liveness', {
      terminationGracePeriodSeconds: 1,
      containers: [container(`echo liveness-${MARKER}; while true; do sleep 1; done`, { livenessProbe: { exec: { command: ['false'] }, periodSeconds: 1, failureThreshold: 1 } })],
    });

    const unready = await waitPod('readiness', 'Running, started, not Ready, after failed readiness probes', (pod) => {
      const status = mainStatus(pod);
      const tries = existsSync(probeLog) ? readFileSync(probeLog, 'utf8').split('\n').filter((line) => line === 'tried').length : 0;
      return pod.status?.phase === 'Running' && status?.state?.running !== undefined && status.started === true && tries >= 2;
    });
    expect(mainStatus(unready)?.ready).to.equal(false);
    expect(isReady(unready)).to.equal(false);
    expect((unready.status?.conditions ?? []).find((condition) => condition.type === 'ContainersReady')?.status).to.equal('False');
    writeFileSync(flag, 'ready\n');
    const ready = await waitPod('readiness', 'Ready once the file exists', (pod) => mainStatus(pod)?.ready === true && isReady(pod));
    expect(mainStatus(ready)?.restartCount).to.equal(0);

    const restarted = await waitPod('liveness', 'restarted twice by its liveness probe', (pod) => (mainStatus(pod)?.restartCount ?? 0) >= 2);
    expect(mainStatus(restarted)?.lastState?.terminated).to.be.an('object');
    expect(restarted.status?.phase).to.equal('Running');
  });

  it('adopts running pods after an agent restart: same container, same process, restartCount kept, exec still works', async function () {
    const before = await getPod('hello');
    const beforeStatus = mainStatus(before)!;
    const [hostProcess] = podProcesses(agentRoot).filter((candidate) => candidate.cmdline.includes(`hello-${MARKER}`));
    expect(hostProcess, 'the hello pod as a host process').to.not.equal(undefined);
    const crashRestarts = mainStatus(await getPod('crash'))?.restartCount ?? 0;

    expect(await agent!.stop('SIGTERM')).to.equal(0);
    expect(alive(hostProcess!.pid), 'the pod process outlives the agent').to.equal(true);
    const logOffset = readFileSync(join(agentRoot, 'agent.log'), 'utf8').length;
    agent = startAgent();
    agentApiPort = await agentPort(logOffset);
    await waitNode(agentApiPort);
    // The new agent runs its pods: the crash-looping one restarts again.
    await waitPod('crash', 'restarted by the new agent', (pod) => (mainStatus(pod)?.restartCount ?? 0) > crashRestarts);

    const exec = await mastctl('exec', 'hello', '--', 'sh', '-c', 'echo adopted');
    expect(exec).to.deep.equal({ code: 0, out: 'adopted\n', err: '' });
    const after = await getPod('hello');
    expect(after.status?.phase).to.equal('Running');
    expect(mainStatus(after)).to.include({ containerID: beforeStatus.containerID, restartCount: beforeStatus.restartCount, ready: true });
    expect(alive(hostProcess!.pid)).to.equal(true);
    expect(podProcesses(agentRoot).filter((candidate) => candidate.cmdline.includes(`hello-${MARKER}`)).map((candidate) => candidate.pid)).to.deep.equal([hostProcess!.pid]);
    const logs = await mastctl('logs', 'hello');
    expect(logs.out.split('\n').filter((line) => line === `hello-${MARKER}`)).to.have.length(1);
  });

  it('runs a Deployment of 2 httpd pods (mastctl apply) that answer HTTP on their pod IPs', async function () {
    const manifest = join(baseDir, 'web.json');
    writeFileSync(
      manifest,
      JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: NS },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { terminationGracePeriodSeconds: 2, containers: [{ name: 'httpd', image: 'httpd', args: ['-p', '8080'], ports: [{ containerPort: 8080 }], env: [{ name: 'MAST_IT_MARKER', value: MARKER }] }] },
          },
        },
      }),
    );
    const applied = await mastctl('apply', '-f', manifest);
    expect(applied.code, applied.out + applied.err).to.equal(0);
    const pods = await waitFor('2 Running, ready web pods', async () => {
      const list = (await client!.list('Pod', { namespace: NS, labelSelector: 'app=web' })).items as PodView[];
      return list.length === 2 && list.every((pod) => pod.status?.phase === 'Running' && pod.status.containerStatuses?.[0]?.ready === true && (pod.status.podIP ?? '') !== '') ? list : undefined;
    }, DEADLINE_MS, 200);
    const ips = pods.map((pod) => pod.status!.podIP!);
    expect(new Set(ips).size).to.equal(2);
    for (const ip of ips) {
      expect(ip).to.match(/^127\.10\.\d{1,3}\.\d{1,3}$/);
      const answer = await waitFor(`HTTP from ${ip}:8080`, () => httpGet(`http://${ip}:8080/`), 30_000, 200);
      expect(answer.status).to.equal(200);
      expect(answer.body).to.include('It works!');
    }
  });

  it('deletes the pods: the agent stops them and makes the final delete; no host process and no runtime record is left', async function () {
    const deployment = await mastctl('delete', 'deployment', 'web');
    expect(deployment.code, deployment.out + deployment.err).to.equal(0);
    const names = (await podsOnNode()).map((pod) => pod.metadata!.name!).filter((name) => !name.startsWith('web-'));
    expect(names).to.include.members(['hello', 'crash', 'done-ok', 'done-fail', 'env-vol', 'readiness', 'liveness']);
    const deleted = await mastctl('delete', 'pod', ...names);
    expect(deleted.code, deleted.out + deleted.err).to.equal(0);
    await waitFor('every pod of the node to be gone from the API', async () => ((await podsOnNode()).length === 0 ? true : undefined), DEADLINE_MS, 200);
    const left = await waitFor('no host process of the pods', async () => {
      const processes = podProcesses(agentRoot);
      return processes.length === 0 ? processes : undefined;
    }, 15_000, 200).catch(() => podProcesses(agentRoot));
    expect(left, 'host processes left behind').to.deep.equal([]);
    const state = JSON.parse(readFileSync(join(agentRoot, 'cri', 'state.json'), 'utf8')) as { sandboxes: unknown[]; containers: unknown[] };
    expect({ sandboxes: state.sandboxes.length, containers: state.containers.length }).to.deep.equal({ sandboxes: 0, containers: 0 });
  });
});
