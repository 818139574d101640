// mastctl logs, exec and top against a real master and a fake node agent:
// the master relays PodLogs and PodExec to the NodeAgent service at the
// node's InternalIP and kubelet port, here a grpc-js server on 127.0.0.1
// that serves canned logs, a follow stream, and scripted exec answers, and
// records what it was asked. top reads PodMetrics and NodeMetrics written
// by the test, as agents write them.

import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as agent from '../../proto/gen/agent.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { runCtl, type CtlIo } from '../../services/ctl/mastctl.js';
import { chooseContainer } from '../../services/ctl/pods.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { createCertificateAuthority, formatTokenFile, issueCertificate } from '../../services/pki/index.js';

const MASTCTL = fileURLToPath(new URL('../../services/cmd/mastctl.js', import.meta.url));
const DEADLINE_MS = 60_000;
/** The log every container of the fake agent has: three lines. */
const LOG_LINES = ['starting', 'listening on :8080', 'ready'];
const TIMESTAMP = '2026-11-25T12:00:00.000000000Z';

/** A NodeAgent on 127.0.0.1 that answers as a node's agent would, and records what it was asked. */
class FakeAgent {
  readonly logRequests: agent.ContainerLogsRequest[] = [];
  readonly execRequests: agent.ExecSyncRequest[] = [];
  /** Follow streams the master cancelled (by pod/container). */
  readonly cancelledFollows: string[] = [];
  private readonly server = new grpc.Server();
  private readonly timers = new Set<NodeJS.Timeout>();
  port = 0;

  async start(): Promise<void> {
    const handlers: agent.NodeAgentServer = {
      containerLogs: (call) => this.containerLogs(call),
      execSync: (call, callback) => this.execSync(call, callback),
    };
    this.server.addService(agent.NodeAgentService, handlers);
    this.port = await new Promise<number>((resolve, reject) => this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error === null ? resolve(port) : reject(error))));
  }

  private containerLogs(call: grpc.ServerWritableStream<agent.ContainerLogsRequest, agent.LogChunk>): void {
    const request = call.request;
    this.logRequests.push(request);
    const chunk = (line: string): void => void call.write({ data: Buffer.from(`${request.timestamps ? `${TIMESTAMP} ` : ''}${line}\n`) });
    if (!request.follow) {
      let lines = request.previous ? ['previous attempt', 'crashed'] : LOG_LINES.map((line) => `${request.container}: ${line}`);
      if (request.tailLines !== undefined) lines = lines.slice(-request.tailLines);
      for (const line of lines) chunk(line);
      call.end();
      return;
    }
    // Follow: a line per 100 ms until cancelled; container "b" ends its log after three.
    let count = 0;
    const timer = setInterval(() => {
      count++;
      chunk(`tick ${count}`);
      if (request.container === 'b' && count === 3) {
        stop();
        call.end();
      }
    }, 100);
    const stop = (): void => {
      clearInterval(timer);
      this.timers.delete(timer);
    };
    this.timers.add(timer);
    call.on('cancelled', () => {
      stop();
      this.cancelledFollows.push(`${request.podName}/${request.container}`);
    });
  }

  private execSync(call: grpc.ServerUnaryCall<agent.ExecSyncRequest, agent.ExecSyncResponse>, callback: grpc.sendUnaryData<agent.ExecSyncResponse>): void {
    const request = call.request;
    this.execRequests.push(request);
    const [program, ...args] = request.command;
    const answer = (stdout: string, stderr: string, exitCode: number): void => callback(null, { stdout: Buffer.from(stdout), stderr: Buffer.from(stderr), exitCode });
    if (program === 'echo') answer(`${args.join(' ')}\n`, '', 0);
    else if (program === 'fail') answer('partial output\n', 'boom\n', 3);
    else answer('', `${program ?? ''}: not found\n`, 127);
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers.clear();
    // Force: a follow stream a failed test left open must not hold the shutdown.
    this.server.forceShutdown();
  }
}

/** What mastctl printed, by stream, when run in-process. */
interface Captured {
  code: number;
  out: string;
  err: string;
}

/** mastctl in-process, with stdout and stderr kept apart as the bin keeps them. */
async function mastctlIn(env: Record<string, string>, args: readonly string[], interrupted?: Promise<void>, onWrite?: (text: string) => void): Promise<Captured> {
  let out = '';
  let err = '';
  const io: CtlIo = {
    out: (text) => void (out += `${text}\n`),
    err: (text) => void (err += `${text}\n`),
    write: (chunk, stream) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      if (stream === 'stderr') err += text;
      else out += text;
      onWrite?.(text);
    },
    readStdin: () => '',
    env,
    now: () => new Date(),
    ...(interrupted === undefined ? {} : { interrupted }),
  };
  const code = await runCtl(args, io);
  return { code, out, err };
}

describe('mastctl logs, exec and top: defaulting a container', function () {
  it("picks the container kubectl would, and says so when there was a choice", function () {
    const notes: string[] = [];
    const io = { err: (text: string) => void notes.push(text) };
    const pod = (spec: Record<string, unknown>, annotations?: Record<string, string>): KubeObject => ({ metadata: { name: 'p', ...(annotations === undefined ? {} : { annotations }) }, spec });
    expect(chooseContainer(pod({ containers: [{ name: 'only' }] }), undefined, io)).to.equal('only');
    expect(chooseContainer(pod({ containers: [{ name: 'a' }, { name: 'b' }] }), 'b', io)).to.equal('b');
    expect(notes).to.deep.equal([]);
    expect(chooseContainer(pod({ containers: [{ name: 'a' }, { name: 'b' }], initContainers: [{ name: 'setup' }] }), undefined, io)).to.equal('a');
    expect(chooseContainer(pod({ containers: [{ name: 'app' }], initContainers: [{ name: 'setup' }] }), '', io)).to.equal('app');
    expect(chooseContainer(pod({ containers: [{ name: 'a' }, { name: 'b' }] }, { 'kubectl.kubernetes.io/default-container': 'b' }), undefined, io)).to.equal('b');
    expect(chooseContainer(pod({ containers: [{ name: 'a' }, { name: 'b' }] }, { 'kubectl.kubernetes.io/default-container': 'z' }), undefined, io)).to.equal('a');
    expect(notes).to.deep.equal([
      'Defaulted container "a" out of: a, b, setup (init)',
      'Defaulted container "app" out of: app, setup (init)',
      'Warning: default container name "z" not found in pod p',
      'Defaulted container "a" out of: a, b',
    ]);
  });
});

describe('mastctl logs, exec and top against a master and a fake node agent', function () {
  this.timeout(180_000);
  let directory: string | undefined;
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;
  const fake = new FakeAgent();
  /** The agent of node n3, closed once its node is set up: an agent that is down. */
  const gone = new FakeAgent();
  let env: Record<string, string>;
  const mastctl = (...args: string[]): Promise<Captured> => mastctlIn(env, args);
  /** The real bin, stdout and stderr apart. */
  const bin = (...args: string[]): Promise<Captured> =>
    new Promise((resolve) => execFile(process.execPath, [MASTCTL, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number((error as { code?: number }).code), out: stdout, err: stderr })));

  const node = async (name: string, status: Record<string, unknown>, labels: Record<string, string> = {}): Promise<void> => {
    const created = await client!.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } });
    await client!.updateStatus('Node', { ...created, status });
  };
  const agentStatus = (port: number, cpu: string, memory: string): Record<string, unknown> => ({
    addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: 'localhost' }],
    daemonEndpoints: { kubeletEndpoint: { Port: port } },
    allocatable: { cpu, memory, pods: '110' },
    capacity: { cpu, memory, pods: '110' },
  });
  const pod = async (name: string, nodeName: string, containers: string[], extra: { namespace?: string; labels?: Record<string, string> } = {}): Promise<void> => {
    await client!.create('Pod', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: extra.namespace ?? 'default', labels: extra.labels ?? {} },
      spec: { ...(nodeName === '' ? {} : { nodeName }), containers: containers.map((container) => ({ name: container, image: 'busybox:1.36' })) },
    });
  };
  const podMetrics = async (name: string, namespace: string, containers: Record<string, { cpu: string; memory: string }>, labels: Record<string, string> = {}): Promise<void> => {
    await client!.create('PodMetrics', {
      apiVersion: 'metrics.k8s.io/v1beta1',
      kind: 'PodMetrics',
      metadata: { name, namespace, labels },
      timestamp: new Date().toISOString(),
      window: '15s',
      containers: Object.entries(containers).map(([container, usage]) => ({ name: container, usage })),
    });
  };
  const nodeMetrics = async (name: string, usage: { cpu: string; memory: string }): Promise<void> => {
    await client!.create('NodeMetrics', { apiVersion: 'metrics.k8s.io/v1beta1', kind: 'NodeMetrics', metadata: { name }, timestamp: new Date().toISOString(), window: '15s', usage });
  };

  before(async function () {
    directory = mkdtempSync(join(tmpdir(), 'mast-ctl-pods-'));
    await fake.start();
    await gone.start();
    // Without --scheduler and --controllers: the pods stay where the test puts them.
    cluster = await LocalCluster.start({ size: 1, baseDir: join(directory, 'cluster') });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    env = { MAST_MASTERS: cluster.endpoints.join(','), MASTCONFIG: join(directory, 'no-config') };
    await node('n1', agentStatus(fake.port, '4', '8Gi'));
    await node('n2', { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], allocatable: { cpu: '2', memory: '4Gi' } }, { pool: 'spare' });
    await node('n3', agentStatus(gone.port, '2', '4Gi'));
    await gone.close();
    for (const name of ['quiet', 'metered']) await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    await pod('duo', 'n1', ['a', 'b']);
    await pod('pending', '', ['app']);
    await pod('stray', 'n2', ['app']);
    await pod('lost', 'n3', ['app']);
    await pod('front-1', 'n1', ['front'], { labels: { app: 'front' } });
    await pod('front-2', 'n1', ['front'], { labels: { app: 'front' } });
    await pod('unmeasured', 'n1', ['app'], { namespace: 'quiet' });
    await client.create('Deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'front', namespace: 'default' },
      spec: { replicas: 2, selector: { matchLabels: { app: 'front' } }, template: { metadata: { labels: { app: 'front' } }, spec: { containers: [{ name: 'front', image: 'nginx:1.25' }] } } },
    });
    await pod('web', 'n1', ['web'], { labels: { app: 'web' } });
    // The master finds pods and nodes in its watch cache: once it serves the last pod written, it has every object above.
    await waitFor('the master to relay to the fake agent', async () => ((await client!.podExec('default', 'web', ['echo', 'ok'])).exitCode === 0 ? true : undefined), DEADLINE_MS, 50);
    fake.execRequests.length = 0;
  });

  after(async function () {
    client?.close();
    await fake.close();
    await gone.close();
    await cluster?.destroy();
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  });

  it('prints a container log, passing the flags on to the agent', async function () {
    expect(await bin('logs', 'web')).to.deep.equal({ code: 0, out: 'web: starting\nweb: listening on :8080\nweb: ready\n', err: '' });
    const plain = fake.logRequests.at(-1)!;
    expect(plain).to.include({ podNamespace: 'default', podName: 'web', container: 'web', follow: false, previous: false, timestamps: false });
    expect(plain.podUid).to.match(/^[0-9a-f-]{36}$/);
    expect([plain.tailLines, plain.sinceSeconds, plain.limitBytes]).to.deep.equal([undefined, undefined, undefined]);

    expect(await mastctl('logs', 'web', '--tail=2', '--timestamps')).to.deep.equal({ code: 0, out: `${TIMESTAMP} web: listening on :8080\n${TIMESTAMP} web: ready\n`, err: '' });
    expect(fake.logRequests.at(-1)).to.include({ tailLines: 2, timestamps: true, previous: false });
    expect(await mastctl('logs', '-p', 'web', '--since=90s', '--limit-bytes', '4096', '--tail=-1')).to.deep.equal({ code: 0, out: 'previous attempt\ncrashed\n', err: '' });
    const previous = fake.logRequests.at(-1)!;
    expect(previous).to.include({ previous: true, sinceSeconds: 90, limitBytes: 4096 });
    expect(previous.tailLines).to.equal(undefined);
    await mastctl('logs', 'web', '--previous', '--since=1m30.5s');
    expect(fake.logRequests.at(-1)).to.include({ previous: true, sinceSeconds: 91 });

    const requests = fake.logRequests.length;
    expect(await mastctl('logs', 'web', '--tail=x')).to.deep.equal({ code: 1, out: 'error: invalid argument "x" for "--tail" flag: must be a whole number\n', err: '' });
    expect((await mastctl('logs', 'web', '--since=5')).out).to.equal('error: invalid argument "5" for "--since" flag: time: missing unit in duration "5"\n');
    expect((await mastctl('logs', 'web', '--limit-bytes=0')).out).to.equal('error: --limit-bytes must be greater than 0\n');
    expect((await mastctl('logs')).out).to.match(/^error: logs needs a pod: mastctl logs POD/);
    expect(fake.logRequests.length).to.equal(requests);
  });

  it('defaults to the first of several containers, saying so on stderr; -c chooses; the master names the choices', async function () {
    expect(await bin('logs', 'duo')).to.deep.equal({ code: 0, out: 'a: starting\na: listening on :8080\na: ready\n', err: 'Defaulted container "a" out of: a, b\n' });
    expect(fake.logRequests.at(-1)).to.include({ podName: 'duo', container: 'a' });
    expect(await mastctl('logs', 'duo', '-c', 'b', '--tail=1')).to.deep.equal({ code: 0, out: 'b: ready\n', err: '' });
    expect(await mastctl('logs', 'duo', 'b', '--tail', '1')).to.deep.equal({ code: 0, out: 'b: ready\n', err: '' });
    expect(await mastctl('logs', 'duo', '-c', 'nope')).to.deep.equal({ code: 1, out: 'Error from server (BadRequest): container nope is not valid for pod duo: choose one of: [a b]\n', err: '' });
    expect(fake.logRequests.at(-1)!.container).to.equal('b');
  });

  it("reads a workload's first pod with TYPE/NAME", async function () {
    expect(await mastctl('logs', 'deploy/front', '--tail=1')).to.deep.equal({ code: 0, out: 'front: ready\n', err: 'Found 2 pods, using pod/front-1\n' });
    expect(fake.logRequests.at(-1)).to.include({ podName: 'front-1', container: 'front' });
    expect(await mastctl('logs', 'pod/web', '--tail=1')).to.deep.equal({ code: 0, out: 'web: ready\n', err: '' });
    expect((await mastctl('logs', 'deployments.apps/missing')).out).to.equal('Error from server (NotFound): Deployment "missing" not found in namespace "default"\n');
    expect((await mastctl('logs', 'cm/front')).out).to.equal('error: cannot choose a pod of a configmaps: give a pod, or a deployment, replicaset, replicationcontroller, statefulset, daemonset, job or service\n');
    expect((await mastctl('logs', 'widgets/front')).out).to.equal('error: the server doesn\'t have a resource type "widgets"\n');
  });

  it('follows a log until interrupted, and cancels the stream at the agent', async function () {
    // In-process: ends when `interrupted` resolves.
    let interrupt!: () => void;
    const interrupted = new Promise<void>((resolve) => (interrupt = resolve));
    let seen = '';
    const following = mastctlIn(env, ['logs', '-f', 'web'], interrupted, (text) => (seen += text));
    await waitFor('two lines of the followed log', async () => (/tick 2\n/.test(seen) ? true : undefined), DEADLINE_MS, 20);
    interrupt();
    const result = await following;
    expect(result.code).to.equal(0);
    expect(result.out).to.match(/^tick 1\ntick 2\n(tick \d+\n)*$/);
    expect(fake.logRequests.at(-1)).to.include({ podName: 'web', follow: true });
    await waitFor('the agent to see the cancel', async () => (fake.cancelledFollows.includes('web/web') ? true : undefined), DEADLINE_MS, 20);

    // The bin: Ctrl-C ends it with exit code 0.
    const follower = spawn(process.execPath, [MASTCTL, 'logs', 'web', '--follow', '--timestamps'], { env: { ...process.env, ...env } });
    let output = '';
    follower.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => follower.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the bin to follow', async () => (/tick 2\n/.test(output) ? true : undefined), DEADLINE_MS, 20);
      expect(output.split('\n')[0]).to.equal(`${TIMESTAMP} tick 1`);
      const cancelled = fake.cancelledFollows.length;
      follower.kill('SIGINT');
      expect(await exited).to.equal(0);
      await waitFor('the agent to see the second cancel', async () => (fake.cancelledFollows.length > cancelled ? true : undefined), DEADLINE_MS, 20);
    } finally {
      if (follower.exitCode === null && follower.signalCode === null) follower.kill('SIGKILL');
    }
  });

  it('ends a followed log when the log ends', async function () {
    expect(await mastctlIn(env, ['logs', 'duo', '-c', 'b', '-f'], new Promise<void>(() => {}))).to.deep.equal({ code: 0, out: 'tick 1\ntick 2\ntick 3\n', err: '' });
  });

  it('explains why a pod cannot be reached: not scheduled, no agent endpoint, agent down', async function () {
    expect(await mastctl('logs', 'pending')).to.deep.equal({ code: 1, out: 'Error from server (BadRequest): pod default/pending is not scheduled to a node yet\n', err: '' });
    expect((await mastctl('logs', 'stray')).out).to.equal('Error from server (BadRequest): node n2 reports no agent endpoint (status.daemonEndpoints.kubeletEndpoint.Port): is its agent running?\n');
    const down = new RegExp(`^Error from server: the agent of pod default/lost at 127\\.0\\.0\\.1:${gone.port} did not answer: .+\\n$`);
    const logs = await mastctl('logs', 'lost');
    expect(logs.code).to.equal(1);
    expect(logs.out).to.match(down);
    const exec = await bin('exec', 'lost', '--', 'echo', 'hi');
    expect(exec.code).to.equal(1);
    expect(exec.out).to.match(down);
    expect((await mastctl('logs', 'nope')).out).to.equal('Error from server (NotFound): Pod "nope" not found in namespace "default"\n');
  });

  it('runs a command with exec: its output, its stderr, its exit code', async function () {
    expect(await bin('exec', 'web', '--', 'echo', 'hello', '--world')).to.deep.equal({ code: 0, out: 'hello --world\n', err: '' });
    expect(fake.execRequests.at(-1)).to.include({ podNamespace: 'default', podName: 'web', container: 'web', timeoutSeconds: 60 });
    expect(fake.execRequests.at(-1)!.command).to.deep.equal(['echo', 'hello', '--world']);
    expect(await bin('exec', 'web', '--', 'fail')).to.deep.equal({ code: 3, out: 'partial output\n', err: 'boom\ncommand terminated with exit code 3\n' });
    expect(await mastctl('exec', 'duo', '--', 'sh', '-c', 'exit 1')).to.deep.equal({ code: 127, out: '', err: 'Defaulted container "a" out of: a, b\nsh: not found\ncommand terminated with exit code 127\n' });
    expect(await mastctl('exec', '-c', 'b', 'duo', '--', 'echo', 'x')).to.deep.equal({ code: 0, out: 'x\n', err: '' });
    expect(fake.execRequests.at(-1)).to.include({ podName: 'duo', container: 'b' });
    expect(await mastctl('exec', 'deploy/front', '--', 'echo', 'y')).to.deep.equal({ code: 0, out: 'y\n', err: 'Found 2 pods, using pod/front-1\n' });
    expect(await mastctl('exec', 'duo', '-c', 'nope', '--', 'echo')).to.deep.equal({ code: 1, out: 'Error from server (BadRequest): container nope is not valid for pod duo: choose one of: [a b]\n', err: '' });
    expect((await mastctl('exec', 'pending', '--', 'echo')).out).to.equal('Error from server (BadRequest): pod default/pending is not scheduled to a node yet\n');

    const executed = fake.execRequests.length;
    for (const flags of [['-it'], ['-i'], ['-t'], ['--stdin'], ['--tty=true']]) {
      const refused = await mastctl('exec', ...flags, 'web', '--', 'sh');
      expect(refused.code).to.equal(1);
      expect(refused.out).to.match(/^error: exec is non-interactive in mast: stdin and a tty are not relayed/);
    }
    expect((await mastctl('exec', 'web', 'ls')).out).to.equal('error: exec [POD] [COMMAND] is not supported: give the command after --, e.g. mastctl exec web -- ls\n');
    expect((await mastctl('exec', 'web', '--')).out).to.equal('error: you must specify at least one command for the container\n');
    expect((await mastctl('exec')).out).to.match(/^error: exec needs a pod and a command/);
    expect(fake.execRequests.length).to.equal(executed);
  });

  it("shows pods' and nodes' usage with top, as kubectl does", async function () {
    // No metrics yet: kubectl's words.
    expect(await mastctl('top', 'pods')).to.deep.equal({ code: 1, out: 'error: metrics not available yet\n', err: '' });
    expect(await bin('top', 'nodes')).to.deep.equal({ code: 1, out: 'error: metrics not available yet\n', err: '' });
    expect(await mastctl('top', 'pods', '-n', 'nothing-here')).to.deep.equal({ code: 0, out: '', err: 'No resources found in nothing-here namespace.\n' });

    await podMetrics('web', 'default', { web: { cpu: '250m', memory: '12Mi' } }, { app: 'web' });
    await podMetrics('duo', 'default', { a: { cpu: '0.1', memory: '64Mi' }, b: { cpu: '50m', memory: '10485760' } });
    await podMetrics('front-1', 'default', { front: { cpu: '1', memory: '1536Mi' } }, { app: 'front' });
    await podMetrics('batch', 'metered', { worker: { cpu: '2', memory: '1Gi' } });
    await nodeMetrics('n1', { cpu: '1500m', memory: '3Gi' });
    await nodeMetrics('n3', { cpu: '250m', memory: '524288Ki' });

    expect(await bin('top', 'pods')).to.deep.equal({
      code: 0,
      out: ['NAME      CPU(cores)   MEMORY(bytes)', 'duo       150m         74Mi', 'front-1   1000m        1536Mi', 'web       250m         12Mi', ''].join('\n'),
      err: '',
    });
    expect((await mastctl('top', 'pod', '--containers', '-l', 'app in (web,front)')).out).to.equal(
      ['POD       NAME    CPU(cores)   MEMORY(bytes)', 'front-1   front   1000m        1536Mi', 'web       web     250m         12Mi', ''].join('\n'),
    );
    expect((await mastctl('top', 'po', '-A', '--sort-by=memory')).out).to.equal(
      [
        'NAMESPACE   NAME      CPU(cores)   MEMORY(bytes)',
        'default     front-1   1000m        1536Mi',
        'metered     batch     2000m        1024Mi',
        'default     duo       150m         74Mi',
        'default     web       250m         12Mi',
        '',
      ].join('\n'),
    );
    expect((await mastctl('top', 'pods', 'duo', '--containers')).out).to.equal(['POD   NAME   CPU(cores)   MEMORY(bytes)', 'duo   a      100m         64Mi', 'duo   b      50m          10Mi', ''].join('\n'));
    // Pods, but no metrics for them yet.
    expect(await mastctl('top', 'pods', '-n', 'quiet')).to.deep.equal({ code: 1, out: 'error: metrics not available yet\n', err: '' });

    // 1500m of 4 cores is 37%, 3Gi of 8Gi 37% (kubectl truncates); n2 has no metrics yet.
    expect(await bin('top', 'nodes')).to.deep.equal({
      code: 0,
      out: ['NAME   CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%', 'n1     1500m        37%         3072Mi          37%', 'n3     250m         12%         512Mi           12%', 'n2     <unknown>    <unknown>   <unknown>       <unknown>', ''].join('\n'),
      err: '',
    });
    expect((await mastctl('top', 'node', 'n3')).out).to.equal(['NAME   CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%', 'n3     250m         12%    512Mi           12%', ''].join('\n'));
    expect((await mastctl('top', 'nodes', '--sort-by=cpu')).out.split('\n').slice(1, 3).map((line) => line.split(' ')[0])).to.deep.equal(['n1', 'n3']);
    expect(await mastctl('top', 'nodes', '-l', 'pool=spare')).to.deep.equal({ code: 1, out: 'error: metrics not available yet\n', err: '' });
    expect((await mastctl('top', 'node', 'n2')).out).to.equal('error: metrics not available yet\n');
    expect((await mastctl('top', 'nodes', '--sort-by=disk')).out).to.equal('error: --sort-by accepts only cpu or memory, not "disk"\n');
    expect((await mastctl('top', 'services')).out).to.match(/^error: top needs pods or nodes/);
  });

  it('lists the new commands in its help', async function () {
    const help = await mastctl('help');
    expect(help.code).to.equal(0);
    expect(help.out).to.contain('\n  logs POD|TYPE/NAME').and.contain('\n  exec POD|TYPE/NAME').and.contain('\n  top pods').and.contain('\n  top nodes');
    for (const flag of ['--help', '-h']) {
      const asked = await mastctl(flag);
      expect(asked.code, flag).to.equal(0);
      expect(asked.out, flag).to.equal(help.out);
    }
  });
});

describe('mastctl logs and exec on a secure master: pods/log and pods/exec are authorized', function () {
  this.timeout(180_000);
  const TOKENS = { admin: 'admin-token-0123456789', alice: 'alice-token-0123456789' };
  let directory: string | undefined;
  let cluster: LocalCluster | undefined;
  let admin: ResourceClient | undefined;
  const fake = new FakeAgent();
  let config: string;

  before(async function () {
    directory = mkdtempSync(join(tmpdir(), 'mast-ctl-pods-auth-'));
    await fake.start();
    const authority = await createCertificateAuthority({});
    const member = await issueCertificate(authority, { commonName: 'system:master:test', organizations: ['system:masters'], ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], usages: ['server', 'client'] });
    writeFileSync(join(directory, 'ca.crt'), authority.certPem);
    writeFileSync(join(directory, 'member.crt'), member.certPem);
    writeFileSync(join(directory, 'member.key'), member.keyPem);
    writeFileSync(join(directory, 'tokens.csv'), formatTokenFile([
      { token: TOKENS.admin, user: { name: 'admin', uid: 'admin', groups: ['system:masters'] } },
      { token: TOKENS.alice, user: { name: 'alice', uid: 'alice', groups: [] } },
    ]));
    cluster = await LocalCluster.start({
      size: 1,
      baseDir: join(directory, 'cluster'),
      tls: { caFile: join(directory, 'ca.crt'), certFile: join(directory, 'member.crt'), keyFile: join(directory, 'member.key') },
      tokenAuthFile: join(directory, 'tokens.csv'),
    });
    admin = new ResourceClient({ endpoints: cluster.endpoints, credentials: grpc.credentials.createSsl(Buffer.from(authority.certPem)), token: TOKENS.admin });
    await waitForNamespace(admin, 'default');
    const created = await admin.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } });
    await admin.updateStatus('Node', { ...created, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: fake.port } } } });
    // alice may read pods and their logs, not exec into them.
    await admin.create('Role', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'log-reader', namespace: 'default' }, rules: [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }] });
    await admin.create('RoleBinding', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'alice-reads-logs', namespace: 'default' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'log-reader' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' }],
    });
    await admin.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec: { nodeName: 'n1', containers: [{ name: 'web', image: 'busybox:1.36' }] } });
    await waitFor('the master to relay to the fake agent', async () => ((await admin!.podExec('default', 'web', ['echo', 'ok'])).exitCode === 0 ? true : undefined), DEADLINE_MS, 50);
    config = join(directory, 'config');
  });

  after(async function () {
    admin?.close();
    await fake.close();
    await cluster?.destroy();
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  });

  const as = (token: string, ...args: string[]): Promise<Captured> => {
    writeFileSync(config, `masters: [${cluster!.members.map((member) => member.clientUrl).join(', ')}]\ncertificateAuthority: ca.crt\ntoken: ${token}\n`);
    return mastctlIn({ MASTCONFIG: config }, args);
  };

  it('relays for a user with pods/log, and refuses pods/exec without the permission', async function () {
    expect(await as(TOKENS.admin, 'exec', 'web', '--', 'echo', 'hi')).to.deep.equal({ code: 0, out: 'hi\n', err: '' });
    // The Role may take a moment to reach the master's authorizer.
    const logs = await waitFor('alice to read the log', async () => {
      const result = await as(TOKENS.alice, 'logs', 'web', '--tail=1');
      return result.code === 0 ? result : undefined;
    }, DEADLINE_MS, 100);
    expect(logs).to.deep.equal({ code: 0, out: 'web: ready\n', err: '' });
    const executed = fake.execRequests.length;
    expect(await as(TOKENS.alice, 'exec', 'web', '--', 'echo', 'hi')).to.deep.equal({
      code: 1,
      out: 'Error from server (Forbidden): pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "default"\n',
      err: '',
    });
    expect(fake.execRequests.length).to.equal(executed);
  });
});
