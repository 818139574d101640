// `mast up` end to end, as a user runs it: the built `mast up` in a temporary
// HOME (so ~/.mast/config and ~/.mast/up are the test's), on free ports and
// address ranges of its own (so a `mast up` someone runs, and other tests'
// pods and Services, are left alone). It waits for the ready summary, uses
// mastctl with no flags, reaches the web example's Service, stops with SIGINT
// (exit 0, no master, agent or pod left), starts again with no flags (the
// same cluster: the Deployment is there and its pods run again), and checks
// that a config the user wrote is never replaced.

import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkSettings, masterEndpoints, nodePortRange, podCidrOf, resolveSettings, UpError, writeClientConfig, type UpSettings } from '../../services/launcher/up.js';

const MAST = fileURLToPath(new URL('../../services/cmd/mast.js', import.meta.url));
const MASTCTL = fileURLToPath(new URL('../../services/cmd/mastctl.js', import.meta.url));
/** The repository's example: next to the build (dist/ in the repository) or under the working dir (a build elsewhere). */
const WEB_YAML = [fileURLToPath(new URL('../../../ops/examples/web.yaml', import.meta.url)), resolve('ops/examples/web.yaml')].find((path) => existsSync(path)) ?? 'ops/examples/web.yaml';
const READY_LINE = 'the cluster is ready';
const DEADLINE_MS = 60_000;
const STOP_DEADLINE_MS = 30_000;
/** The ports a default `mast up` uses: never taken by the test. */
const DEFAULT_UP_PORTS = new Set([2379, 2380, 12379, 12380, 22379, 22380, 32379, 32380, 42379, 42380, 10249, 10053]);

interface Ran {
  code: number;
  out: string;
  err: string;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, context: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? '' : `: ${String(lastError)}`}\n${context()}`);
    await sleep(100);
  }
}

async function portFree(port: number, udp: boolean): Promise<boolean> {
  const tcp = await new Promise<boolean>((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => done(true)));
  });
  if (!tcp || !udp) return tcp;
  return new Promise<boolean>((done) => {
    const socket = createSocket('udp4');
    socket.once('error', () => done(false));
    socket.bind({ address: '127.0.0.1', port, exclusive: true }, () => socket.close(() => done(true)));
  });
}

/**
 * A --base-port whose every derived port is free: masters' client and peer ports (P, P+1, +10000 each), the proxy
 * status (P+7870) and DNS (P+7674). Below 30000 (node ports) and the ephemeral range, so clients' own sockets do not take them.
 */
async function freeBasePort(masters: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 3000 + Math.floor(Math.random() * 7000);
    const ports = [...Array.from({ length: masters }, (_, index) => [base + index * 10_000, base + index * 10_000 + 1]).flat(), base + 7870, base + 7674];
    if (ports.some((port) => DEFAULT_UP_PORTS.has(port))) continue;
    let free = true;
    for (const port of ports) free &&= await portFree(port, port === base + 7674);
    if (free) return base;
  }
  throw new Error('no free range of ports for mast up');
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const request = get(url, { timeout: 3000, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolveGet({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every process (but this one) of the cluster under dataDir: masters and agents name it in their command line, pods in MAST_ROOTFS. */
function clusterProcesses(dataDir: string): Array<{ pid: number; cmdline: string }> {
  const found: Array<{ pid: number; cmdline: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmdline.includes(dataDir) || environ.includes(`MAST_ROOTFS=${dataDir}/`)) found.push({ pid: Number(entry), cmdline });
    } catch {
      // Gone while we looked, or a zombie.
    }
  }
  return found.filter((each) => each.cmdline !== '');
}

/** A running `mast up` and what it printed. */
class UpProcess {
  output = '';
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  }

  static start(env: NodeJS.ProcessEnv, args: readonly string[]): UpProcess {
    return new UpProcess(spawn(process.execPath, [MAST, 'up', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async ready(): Promise<void> {
    await until('mast up to print its ready summary', () => {
      if (this.output.includes(READY_LINE)) return true;
      if (!this.running) throw new Error(`mast up exited ${this.child.exitCode ?? this.child.signalCode}`);
      return undefined;
    }, DEADLINE_MS, () => this.output);
  }

  /** SIGINT, as Ctrl-C; the exit code. */
  async interrupt(): Promise<number | null> {
    this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_DEADLINE_MS);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

describe('mast up: a local cluster in one command', function () {
  this.timeout(120_000);
  let baseDir: string;
  let home: string;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let flags: string[];
  let up: UpProcess | undefined;
  const started: UpProcess[] = [];
  const dataDirs: string[] = [];

  const mastctl = (...args: string[]): Promise<Ran> =>
    new Promise((resolveRun) =>
      execFile(process.execPath, [MASTCTL, ...args], { env, timeout: 60_000 }, (error, stdout, stderr) =>
        resolveRun({ code: error === null ? 0 : Number((error as { code?: unknown }).code), out: stdout, err: stderr }),
      ),
    );
  const startUp = (args: readonly string[], environment = env): UpProcess => {
    const process_ = UpProcess.start(environment, args);
    started.push(process_);
    return process_;
  };

  before(async function () {
    baseDir = mkdtempSync(join(tmpdir(), 'mast-up-it-'));
    home = join(baseDir, 'home');
    mkdirSync(home);
    dataDir = join(home, '.mast', 'up');
    dataDirs.push(dataDir);
    env = { ...process.env, HOME: home };
    delete env.MASTCONFIG;
    delete env.MAST_MASTERS;
    // Address ranges no default `mast up` and no other test uses: 127.100-179 for pods, 127.180-219 for Services, 127.220-259 for load balancers.
    const slot = Math.floor(Math.random() * 40);
    flags = [
      '--base-port', String(await freeBasePort(3)),
      '--pod-cidr', `127.${100 + 2 * slot}.0.0/16`,
      '--service-cluster-ip-range', `127.${180 + slot}.0.0/16`,
      '--load-balancer-ip-pool', `127.${215 + slot}.0.0/24`,
    ];
  });

  after(async function () {
    for (const each of started) if (each.running) each.child.kill('SIGKILL');
    // Whatever a failed test left: masters, agents and pods of the test's clusters.
    for (const dir of dataDirs) {
      for (const leftover of clusterProcesses(dir)) {
        try {
          process.kill(leftover.pid, 'SIGKILL');
        } catch {
          // Gone.
        }
      }
    }
    if (baseDir !== undefined) rmSync(baseDir, { recursive: true, force: true });
  });

  it('starts 3 masters and 2 Ready nodes and writes a config mastctl uses with no flags', async function () {
    up = startUp(flags);
    await up.ready();
    expect(up.output).to.match(/masters up: m1, m2, m3 answering/);
    expect(up.output).to.match(/leader elected: m\d \(http:\/\/127\.0\.0\.1:\d+\)/);
    expect(up.output).to.match(/node node-1 Ready/);
    expect(up.output).to.match(/node node-2 Ready/);
    const config = readFileSync(join(home, '.mast', 'config'), 'utf8');
    expect(config.startsWith('# Written by `mast up`')).to.equal(true);
    const nodes = await mastctl('get', 'nodes');
    expect(nodes.code, nodes.err).to.equal(0);
    const rows = nodes.out.trim().split('\n').slice(1);
    expect(rows.map((row) => row.split(/\s+/).slice(0, 2).join(' '))).to.deep.equal(['node-1 Ready', 'node-2 Ready']);
  });

  it('runs the web example: its Service answers on the cluster IP from this host', async function () {
    const applied = await mastctl('apply', '-f', WEB_YAML);
    expect(applied.code, applied.err).to.equal(0);
    const rollout = await mastctl('rollout', 'status', 'deploy/web');
    expect(rollout.code, rollout.out + rollout.err).to.equal(0);
    const service = JSON.parse((await mastctl('get', 'svc', 'web', '-o', 'json')).out) as { spec: { clusterIP: string; ports: Array<{ port: number; nodePort: number }> } };
    // The proxy listens on the cluster IP at port 80 only where this user may listen below 1024; the node port always works.
    const lowPorts = process.getuid?.() === 0 || Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) <= 80;
    const url = lowPorts ? `http://${service.spec.clusterIP}/` : `http://127.0.0.1:${service.spec.ports[0]!.nodePort}/`;
    const answer = await until(`GET ${url}`, async () => {
      const got = await httpGet(url);
      return got.status === 200 ? got : undefined;
    }, DEADLINE_MS);
    expect(answer.body).to.contain('It works!');
  });

  it('stops everything on SIGINT and exits 0', async function () {
    const pids = readdirSync(join(dataDir, 'run')).filter((file) => file.endsWith('.pid')).map((file) => Number(readFileSync(join(dataDir, 'run', file), 'utf8')));
    expect(pids).to.have.length(6); // mast up, 3 masters, 2 agents
    const pods = clusterProcesses(dataDir).filter((each) => !each.cmdline.includes(MAST));
    expect(pods.length, 'pods running before the stop').to.be.at.least(3);
    const code = await up!.interrupt();
    expect(code, up!.output).to.equal(0);
    expect(up!.output).to.match(/stopping the agents: node-1, node-2\nstopping the pods of node-1\nstopping the pods of node-2\nstopping the masters: m1, m2, m3\n/);
    expect(pids.filter((pid) => alive(pid)), 'mast up, masters and agents still running').to.deep.equal([]);
    expect(clusterProcesses(dataDir), 'processes of the cluster still running').to.deep.equal([]);
    expect(readdirSync(join(dataDir, 'run'))).to.deep.equal([]);
  });

  it('starts the same cluster again with no flags: the Deployment is there and its pods run again', async function () {
    up = startUp([]);
    await up.ready();
    expect(up.output).to.contain(`starting the cluster in ${dataDir}`);
    const deployment = await mastctl('get', 'deploy', 'web');
    expect(deployment.code, deployment.err).to.equal(0);
    const rollout = await mastctl('rollout', 'status', 'deploy/web');
    expect(rollout.code, rollout.out + rollout.err).to.equal(0);
    await until('3 web pods Running and Ready', async () => {
      const pods = JSON.parse((await mastctl('get', 'pods', '-l', 'app=web', '-o', 'json')).out) as { items: Array<{ status?: { phase?: string; conditions?: Array<{ type: string; status: string }> } }> };
      const ready = pods.items.filter((pod) => pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True'));
      return ready.length === 3 ? true : undefined;
    }, DEADLINE_MS);
    expect(clusterProcesses(dataDir).filter((each) => !each.cmdline.includes(MAST)).length, 'pod processes').to.be.at.least(3);
    expect(await up.interrupt(), up.output).to.equal(0);
    expect(clusterProcesses(dataDir)).to.deep.equal([]);
  });

  it('never replaces a config the user wrote: writes its own into the data dir and says how to use it', async function () {
    const userHome = join(baseDir, 'user-home');
    const userData = join(userHome, '.mast', 'up');
    dataDirs.push(userData);
    mkdirSync(join(userHome, '.mast'), { recursive: true });
    const mine = 'masters: [https://my-cluster.example:2379]\n';
    writeFileSync(join(userHome, '.mast', 'config'), mine);
    const userEnv = { ...env, HOME: userHome };
    const quick = startUp(['--masters', '1', '--agents', '0', '--base-port', String(await freeBasePort(1)), '--service-cluster-ip-range', '127.179.0.0/16'], userEnv);
    await quick.ready();
    expect(readFileSync(join(userHome, '.mast', 'config'), 'utf8')).to.equal(mine);
    expect(quick.output).to.contain(`export MASTCONFIG=${join(userData, 'config')}`);
    const ours = readFileSync(join(userData, 'config'), 'utf8');
    expect(ours.startsWith('# Written by `mast up`')).to.equal(true);
    const namespaces = await new Promise<Ran>((resolveRun) =>
      execFile(process.execPath, [MASTCTL, 'get', 'namespaces'], { env: { ...userEnv, MASTCONFIG: join(userData, 'config') }, timeout: 60_000 }, (error, stdout, stderr) =>
        resolveRun({ code: error === null ? 0 : 1, out: stdout, err: stderr }),
      ),
    );
    expect(namespaces.code, namespaces.err).to.equal(0);
    expect(namespaces.out).to.contain('kube-system');
    expect(await quick.interrupt(), quick.output).to.equal(0);
  });
});

describe('mast up: settings, ports and the client config', function () {
  const settings = (changes: Partial<UpSettings> = {}): UpSettings => resolveSettings(undefined, changes, false, '/data');

  it('defaults to 3 masters on mast init\'s ports, 2 nodes with a loopback pod range each, Services in 127.96.0.0/16', function () {
    const defaults = settings();
    expect(defaults).to.include({ masters: 3, agents: 2, runtime: 'embedded', basePort: 2379, serviceClusterIpRange: '127.96.0.0/16', proxyMode: 'userspace' });
    expect(masterEndpoints(defaults).map((master) => `${master.name} ${master.clientUrl} ${master.peerUrl}`)).to.deep.equal([
      'm1 http://127.0.0.1:2379 http://127.0.0.1:2380',
      'm2 http://127.0.0.1:12379 http://127.0.0.1:12380',
      'm3 http://127.0.0.1:22379 http://127.0.0.1:22380',
    ]);
    expect([0, 1, 2].map((index) => podCidrOf(defaults, index))).to.deep.equal(['127.10.0.0/16', '127.11.0.0/16', '127.12.0.0/16']);
    expect(resolveSettings(undefined, { runtime: 'containerd' }, true, '/data')).to.include({ serviceClusterIpRange: '10.96.0.0/16', podCidr: '10.89.1.0/24', proxyMode: 'nftables' });
  });

  it('keeps node ports off the masters\' own ports (5 masters: m4 serves on 32379)', function () {
    expect(nodePortRange(settings())).to.deep.equal({ low: 30_000, high: 32_767 });
    expect(nodePortRange(settings({ masters: 5 }))).to.deep.equal({ low: 30_000, high: 32_378 });
  });

  it('refuses what a cluster cannot be: 4 masters, ports past 65535', function () {
    expect(() => checkSettings(settings({ masters: 4 }))).to.throw(UpError, '--masters 4: a cluster has 3 or 5 masters (1 for a quick try)');
    expect(() => checkSettings(settings({ masters: 5, basePort: 30_000 }))).to.throw(UpError, 'the 5 masters need ports 30000 to 70001');
  });

  it('starts a recorded cluster as it was made: flags may repeat its settings, not change them, except --agents', function () {
    const recorded = settings();
    expect(resolveSettings(recorded, { masters: 3, agents: 4 }, false, '/data')).to.deep.equal({ ...recorded, agents: 4 });
    expect(() => resolveSettings(recorded, { masters: 5 }, false, '/data')).to.throw(UpError, '/data holds a cluster made with --masters 3, not 5');
    expect(() => resolveSettings(recorded, { basePort: 3000 }, false, '/data')).to.throw(UpError, 'made with --base-port 2379, not 3000');
  });

  it('replaces a config it wrote, never one the user wrote', function () {
    const dir = mkdtempSync(join(tmpdir(), 'mast-up-config-'));
    try {
      const env = { HOME: join(dir, 'home') };
      const first = writeClientConfig(['http://127.0.0.1:2379'], dir, env);
      expect(first).to.deep.equal({ path: join(dir, 'home', '.mast', 'config'), isDefault: true });
      const second = writeClientConfig(['http://127.0.0.1:3379'], dir, env);
      expect(second.isDefault).to.equal(true);
      expect(readFileSync(second.path, 'utf8')).to.contain('  - http://127.0.0.1:3379\n');
      writeFileSync(second.path, 'masters: [http://mine:2379]\n');
      expect(writeClientConfig(['http://127.0.0.1:2379'], dir, env)).to.deep.equal({ path: join(dir, 'config'), isDefault: false, kept: second.path });
      expect(readFileSync(second.path, 'utf8')).to.equal('masters: [http://mine:2379]\n');
      const viaEnv = writeClientConfig(['http://127.0.0.1:2379'], dir, { ...env, MASTCONFIG: join(dir, 'elsewhere') });
      expect(viaEnv).to.deep.equal({ path: join(dir, 'elsewhere'), isDefault: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
