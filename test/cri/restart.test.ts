// State that survives mast cri: a restarted server finds its sandboxes and
// containers in ROOT/state.json, keeps managing a container that still runs
// (and copies the output it wrote meanwhile), and reports one that died
// while it was down. And `mast cri` as a process: SIGTERM stops its
// containers and exits 0; bad flags exit 2.

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ContainerState, PodSandboxState } from '../../proto/gen/cri/v1/api.js';
import { parseCriFlags, runCriCommand } from '../../services/cri/main.js';
import { readProcStat } from '../../services/cri/processes.js';
import { startCriServer } from '../../services/cri/server.js';
import { connectClients, runContainer, startHarness, waitFor, type Harness } from './harness.js';

function processGone(pid: number): true | undefined {
  const stat = readProcStat(pid);
  return stat === undefined || stat.state === 'Z' ? true : undefined;
}

describe('mast cri: restarts', function () {
  this.timeout(60_000);
  let harness: Harness;

  before(async function () {
    harness = await startHarness();
  });

  after(async function () {
    await harness?.destroy();
  });

  it('keeps managing a running container across a restart: copies what it wrote meanwhile, then sees it exit', async function () {
    const wait = (file: string): string => `while [ ! -e "$MAST_ROOTFS/${file}" ]; do sleep 0.1; done`;
    const script = `echo one; ${wait('go1')}; echo two; ${wait('go2')}; echo three`;
    const { sandboxId, containerId, logPath } = await runContainer(harness, 'survivor', { image: { image: 'busybox' }, command: ['sh', '-c', script] });
    await waitFor('"one" in the log', () => (readFileSync(logPath, 'utf8').includes('stdout F one') ? true : undefined));
    const before = (await harness.runtime.containerStatus({ containerId })).status;

    await harness.server.close();
    const containerDir = join(harness.root, 'containers', containerId);
    writeFileSync(join(containerDir, 'rootfs', 'go1'), '');
    await waitFor('"two" written while mast cri is down', () => (readFileSync(join(containerDir, 'stdout'), 'utf8').includes('two') ? true : undefined));
    await harness.restart();

    const { status: adopted } = await harness.runtime.containerStatus({ containerId });
    expect(adopted).to.include({ state: ContainerState.CONTAINER_RUNNING, startedAt: before?.startedAt });
    await waitFor('"two" in the log', () => (readFileSync(logPath, 'utf8').includes('stdout F two') ? true : undefined));
    writeFileSync(join(containerDir, 'rootfs', 'go2'), '');
    const finished = await waitFor('EXITED after the restart', async () => {
      const { status: current } = await harness.runtime.containerStatus({ containerId });
      return current?.state === ContainerState.CONTAINER_EXITED ? current : undefined;
    });
    expect(finished).to.include({ exitCode: 255, reason: 'Unknown' });
    expect(finished.message).to.contain('started by an earlier mast cri');
    const lines = readFileSync(logPath, 'utf8').split('\n').filter((line) => line !== '');
    expect(lines.map((line) => line.split(' ').slice(1).join(' '))).to.deep.equal(['stdout F one', 'stdout F two', 'stdout F three']);
    expect((await harness.runtime.podSandboxStatus({ podSandboxId: sandboxId })).status?.state).to.equal(PodSandboxState.SANDBOX_READY);
  });

  it('adopts a still-running container: it stays RUNNING and StopContainer still stops it', async function () {
    const { containerId } = await runContainer(harness, 'adopted', { image: { image: 'busybox' }, command: ['sleep', '60'] });
    const info = JSON.parse((await harness.runtime.containerStatus({ containerId, verbose: true })).info.info as string) as { pid: number };
    await harness.restart();
    const { status: current } = await harness.runtime.containerStatus({ containerId });
    expect(current?.state).to.equal(ContainerState.CONTAINER_RUNNING);
    const usage = await harness.runtime.containerStats({ containerId });
    expect(usage.stats?.memory?.workingSetBytes?.value).to.be.greaterThan(0);
    await harness.runtime.stopContainer({ containerId, timeout: 0 });
    expect((await harness.runtime.containerStatus({ containerId })).status).to.include({ state: ContainerState.CONTAINER_EXITED, exitCode: 137 });
    await waitFor('the process gone', () => processGone(info.pid));
  });

  it('reports a container that died while mast cri was down as EXITED, exit code unknown', async function () {
    const { containerId } = await runContainer(harness, 'casualty', { image: { image: 'busybox' }, command: ['sleep', '60'] });
    const info = JSON.parse((await harness.runtime.containerStatus({ containerId, verbose: true })).info.info as string) as { pid: number };
    await harness.server.close();
    process.kill(-info.pid, 'SIGKILL');
    await waitFor('the process gone', () => processGone(info.pid));
    await harness.restart();
    expect((await harness.runtime.containerStatus({ containerId })).status).to.include({
      state: ContainerState.CONTAINER_EXITED,
      exitCode: 255,
      reason: 'Unknown',
      message: 'exited while mast cri was not running',
    });
  });
});

describe('mast cri: the command', function () {
  this.timeout(60_000);
  let dir: string;
  let child: ChildProcess | undefined;

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'mast-cri-cmd-'));
  });

  after(function () {
    if (child?.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses its flags, rejecting unknown ones and bad values by name', async function () {
    expect(parseCriFlags(['--listen', 'unix:///run/cri.sock', '--root=/var/lib/mast-cri'])).to.deep.equal({
      listen: 'unix:///run/cri.sock',
      root: '/var/lib/mast-cri',
      imageTable: undefined,
      podCidr: '127.10.0.0/16',
      logLevel: 'info',
    });
    expect(() => parseCriFlags(['--listen', 'x', '--root', 'y', '--bogus', '1'])).to.throw('unknown flag --bogus');
    expect(() => parseCriFlags(['--listen', 'x', '--root', 'y', '--log-level', 'loud'])).to.throw('--log-level "loud": must be one of debug, info, warn, error');
    expect(() => parseCriFlags(['--listen', 'x', '--root', 'y', '--pod-cidr', '127.10.0.1/16'])).to.throw('--pod-cidr "127.10.0.1/16" has host bits set');
    expect(() => parseCriFlags(['--root', 'y'])).to.throw('--listen PATH is required');
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stderr.write;
    try {
      expect(await runCriCommand(['--listen', 'x', '--root', 'y', '--bogus'])).to.equal(2);
      const table = join(dir, 'bad.json');
      writeFileSync(table, JSON.stringify({ python: { command: '/usr/bin/python3' } }));
      expect(await runCriCommand(['--listen', join(dir, 'bad.sock'), '--root', join(dir, 'bad-root'), '--image-table', table])).to.equal(2);
    } finally {
      process.stderr.write = write;
    }
    expect(written.join('')).to.contain('mast cri: unknown flag --bogus').and.to.contain('"python".command must be an array of strings');
  });

  it('serves until SIGTERM, then stops its containers and exits 0', async function () {
    const main = fileURLToPath(new URL('../../services/cri/main.js', import.meta.url));
    const socketPath = join(dir, 'cri.sock');
    const program = `import(${JSON.stringify(main)}).then((m) => m.runCriCommand(process.argv.slice(1))).then((code) => process.exit(code))`;
    child = spawn(process.execPath, ['--input-type=module', '-e', program, '--', '--listen', `unix://${socketPath}`, '--root', join(dir, 'root'), '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    await waitFor('the socket', () => (existsSync(socketPath) ? true : undefined));
    const clients = connectClients(socketPath);
    try {
      const { containerId } = await runContainer({ runtime: clients.runtime, dir }, 'cmd', { image: { image: 'busybox' }, command: ['sleep', '60'] });
      const info = JSON.parse((await clients.runtime.containerStatus({ containerId, verbose: true })).info.info as string) as { pid: number };
      let refusal: unknown;
      await startCriServer({ socketPath: join(dir, 'second.sock'), rootDir: join(dir, 'root') }).catch((error: unknown) => (refusal = error));
      expect(String(refusal)).to.contain(`is in use by another mast cri (pid ${child.pid})`);
      child.kill('SIGTERM');
      expect(await exited, stderr).to.equal(0);
      await waitFor('the container process gone', () => processGone(info.pid));
      expect(existsSync(socketPath)).to.equal(false);
    } finally {
      clients.close();
    }
  });
});
