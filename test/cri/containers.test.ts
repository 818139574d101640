// mast cri containers against a real server: a command's exit code and its
// CRI-format log, environment, working dir and mounts, StopContainer's
// SIGTERM-then-SIGKILL, ExecSync, stats, List filters and error codes.

import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerState } from '../../proto/gen/cri/v1/api.js';
import { codeOf, runContainer, startHarness, waitFor, type Harness } from './harness.js';

const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([FP]) (.*)$/;

function logLines(path: string): Array<{ stream: string; tag: string; content: string }> {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const match = LOG_LINE.exec(line);
      if (match === null) throw new Error(`not a CRI log line: ${JSON.stringify(line)}`);
      return { stream: match[2] as string, tag: match[3] as string, content: match[4] as string };
    });
}

describe('mast cri: containers', function () {
  this.timeout(60_000);
  let harness: Harness;

  before(async function () {
    harness = await startHarness();
  });

  afterEach(async function () {
    const { items } = await harness.runtime.listPodSandbox();
    for (const sandbox of items) await harness.runtime.removePodSandbox({ podSandboxId: sandbox.id });
  });

  after(async function () {
    await harness?.destroy();
  });

  const exited = (containerId: string) =>
    waitFor(`container ${containerId} EXITED`, async () => {
      const { status: current } = await harness.runtime.containerStatus({ containerId });
      return current?.state === ContainerState.CONTAINER_EXITED ? current : undefined;
    });

  it('runs a command to its exit code and writes its stdout and stderr as a CRI log', async function () {
    const { containerId, logPath } = await runContainer(harness, 'exit3', { image: { image: 'busybox:1.36' }, command: ['sh', '-c', 'echo hi; echo err >&2; exit 3'] });
    const finished = await exited(containerId);
    expect(finished).to.include({ exitCode: 3, reason: 'Error', logPath });
    expect(finished.createdAt).to.be.greaterThan(1.7e18);
    expect(finished.startedAt).to.be.at.least(finished.createdAt);
    expect(finished.finishedAt).to.be.at.least(finished.startedAt);
    expect(finished.image?.image).to.equal('busybox:1.36');
    expect(finished.imageRef).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(logLines(logPath)).to.deep.include.members([
      { stream: 'stdout', tag: 'F', content: 'hi' },
      { stream: 'stderr', tag: 'F', content: 'err' },
    ]);
  });

  it('reports exit code 0 as Completed, and a last line without a newline as a whole line', async function () {
    const { containerId, logPath } = await runContainer(harness, 'exit0', { image: { image: 'busybox' }, command: ['printf', 'no newline'] });
    expect(await exited(containerId)).to.include({ exitCode: 0, reason: 'Completed' });
    expect(logLines(logPath)).to.deep.equal([{ stream: 'stdout', tag: 'F', content: 'no newline' }]);
  });

  it('creates the log file at start, and ReopenContainerLog starts a new one after a rotation', async function () {
    const script = 'echo first; while [ ! -e "$MAST_ROOTFS/next" ]; do sleep 0.1; done; echo second; sleep 60';
    const silent = await runContainer(harness, 'silent', { image: { image: 'busybox' }, command: ['sleep', '60'] });
    expect(existsSync(silent.logPath)).to.equal(true);
    const { containerId, logPath } = await runContainer(harness, 'rotated', { image: { image: 'busybox' }, command: ['sh', '-c', script] });
    await waitFor('first', () => (logLines(logPath).some((line) => line.content === 'first') ? true : undefined));
    renameSync(logPath, `${logPath}.1`);
    await harness.runtime.reopenContainerLog({ containerId });
    expect(existsSync(logPath)).to.equal(true);
    writeFileSync(join(harness.root, 'containers', containerId, 'rootfs', 'next'), '');
    await waitFor('second', () => (logLines(logPath).some((line) => line.content === 'second') ? true : undefined));
    expect(logLines(logPath).map((line) => line.content)).to.deep.equal(['second']);
    expect(logLines(`${logPath}.1`).map((line) => line.content)).to.deep.equal(['first']);
    await harness.runtime.stopContainer({ containerId, timeout: 0 });
    expect((await codeOf(harness.runtime.reopenContainerLog({ containerId }))).code).to.equal(status.FAILED_PRECONDITION);
  });

  it('gives the container its env (KeyValue strings), POD_IP, HOSTNAME, working dir and mounts', async function () {
    const hostDir = join(harness.dir, 'volume');
    mkdirSync(hostDir, { recursive: true });
    writeFileSync(join(hostDir, 'data.txt'), 'mounted\n');
    const script = 'echo "$GREETING|$EMPTY|$HOSTNAME|$POD_IP|$(pwd)|$(cat $MAST_ROOTFS/data/data.txt)|$(tail -n 1 $MAST_ROOTFS/etc/hosts)"';
    const { sandboxId, containerId, logPath } = await runContainer(harness, 'env', {
      image: { image: 'docker.io/library/busybox:latest' },
      command: ['sh', '-c', script],
      envs: [
        { key: 'GREETING', value: 'hello world' },
        { key: 'EMPTY', value: '' },
      ],
      workingDir: '/work/sub',
      mounts: [{ containerPath: '/data', hostPath: hostDir, readonly: true }],
    });
    const finished = await exited(containerId);
    expect(finished.exitCode, readFileSync(logPath, 'utf8')).to.equal(0);
    const { status: sandbox } = await harness.runtime.podSandboxStatus({ podSandboxId: sandboxId });
    const ip = sandbox?.network?.ip as string;
    const rootfs = join(harness.root, 'containers', containerId, 'rootfs');
    expect(logLines(logPath).map((line) => line.content)).to.deep.equal([`hello world||env|${ip}|${rootfs}/work/sub|mounted|${ip}\tenv`]);
    expect(readlinkSync(join(rootfs, 'data'))).to.equal(hostDir);
    expect(finished.mounts).to.deep.equal([{ containerPath: '/data', hostPath: hostDir, readonly: true, selinuxRelabel: false, propagation: 0, uidMappings: [], gidMappings: [], recursiveReadOnly: false, image: undefined }]);
  });

  it('StopContainer: SIGTERM to a process that traps it, which exits at once', async function () {
    const script = 'trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.1; done';
    const { containerId, logPath } = await runContainer(harness, 'trapper', { image: { image: 'busybox' }, command: ['sh', '-c', script] });
    await waitFor('ready', () => (logLines(logPath).some((line) => line.content === 'ready') ? true : undefined));
    const startedMs = Date.now();
    await harness.runtime.stopContainer({ containerId, timeout: 20 });
    expect(Date.now() - startedMs).to.be.below(10_000);
    const { status: stopped } = await harness.runtime.containerStatus({ containerId });
    expect(stopped).to.include({ state: ContainerState.CONTAINER_EXITED, exitCode: 0, reason: 'Completed' });
    expect(logLines(logPath).map((line) => line.content)).to.include('bye');
  });

  it('StopContainer: SIGKILL after the timeout to a process that ignores SIGTERM', async function () {
    const script = 'trap "" TERM; echo ready; while :; do sleep 0.1; done';
    const { containerId, logPath } = await runContainer(harness, 'stubborn', { image: { image: 'busybox' }, command: ['sh', '-c', script] });
    await waitFor('ready', () => (logLines(logPath).some((line) => line.content === 'ready') ? true : undefined));
    const startedMs = Date.now();
    await harness.runtime.stopContainer({ containerId, timeout: 2 });
    const elapsedMs = Date.now() - startedMs;
    expect(elapsedMs).to.be.at.least(1900).and.below(12_000);
    const { status: stopped } = await harness.runtime.containerStatus({ containerId });
    expect(stopped).to.include({ state: ContainerState.CONTAINER_EXITED, exitCode: 137, reason: 'Error' });
    // Stopping again is a no-op.
    await harness.runtime.stopContainer({ containerId, timeout: 0 });
  });

  it('ExecSync: output, exit code, the container env and cwd, and a timeout', async function () {
    const { containerId } = await runContainer(harness, 'execs', { image: { image: 'busybox' }, command: ['sleep', '60'], envs: [{ key: 'WHO', value: 'me' }], workingDir: '/w' });
    const result = await harness.runtime.execSync({ containerId, cmd: ['sh', '-c', 'echo out $WHO; pwd; echo err >&2; exit 7'] });
    const rootfs = join(harness.root, 'containers', containerId, 'rootfs');
    expect(result.stdout.toString()).to.equal(`out me\n${rootfs}/w\n`);
    expect(result.stderr.toString()).to.equal('err\n');
    expect(result.exitCode).to.equal(7);

    const startedMs = Date.now();
    const timedOut = await codeOf(harness.runtime.execSync({ containerId, cmd: ['sleep', '30'], timeout: 1 }));
    expect(timedOut.code).to.equal(status.DEADLINE_EXCEEDED);
    expect(timedOut.details).to.match(/timed out after 1 s/);
    expect(Date.now() - startedMs).to.be.below(10_000);

    await harness.runtime.stopContainer({ containerId, timeout: 0 });
    const notRunning = await codeOf(harness.runtime.execSync({ containerId, cmd: ['true'] }));
    expect(notRunning.code).to.equal(status.FAILED_PRECONDITION);
    expect(notRunning.details).to.contain('EXITED');
  });

  it('stats: memory and CPU of a running container, its rootfs usage, and its sandbox totals', async function () {
    const { sandboxId, containerId } = await runContainer(harness, 'stats', { image: { image: 'busybox' }, command: ['sleep', '60'] });
    const stats = await waitFor('memory usage', async () => {
      const { stats: current } = await harness.runtime.containerStats({ containerId });
      return (current?.memory?.workingSetBytes?.value ?? 0) > 0 ? current : undefined;
    });
    expect(stats?.attributes?.id).to.equal(containerId);
    expect(stats?.cpu?.timestamp).to.be.greaterThan(1.7e18);
    expect(stats?.cpu?.usageCoreNanoSeconds?.value).to.be.a('number');
    expect(stats?.writableLayer?.usedBytes?.value).to.be.a('number');
    expect(stats?.writableLayer?.inodesUsed?.value).to.be.greaterThan(0);
    const { stats: listed } = await harness.runtime.listContainerStats({ filter: { podSandboxId: sandboxId } });
    expect(listed.map((item) => item.attributes?.id)).to.deep.equal([containerId]);
    const { stats: pod } = await harness.runtime.podSandboxStats({ podSandboxId: sandboxId });
    expect(pod?.linux?.memory?.workingSetBytes?.value).to.be.greaterThan(0);
    expect(pod?.linux?.process?.processCount?.value).to.equal(1);
    expect(pod?.linux?.containers.map((item) => item.attributes?.id)).to.deep.equal([containerId]);
  });

  it('ListContainers filters by id prefix, state, sandbox and labels', async function () {
    const a = await runContainer(harness, 'list-a', { image: { image: 'busybox' }, command: ['sleep', '60'], labels: { app: 'a', tier: 'web' } });
    const b = await runContainer(harness, 'list-b', { image: { image: 'busybox' }, command: ['sleep', '60'], labels: { app: 'b', tier: 'web' } }, { start: false });
    const ids = async (filter: object): Promise<string[]> => (await harness.runtime.listContainers({ filter })).containers.map((container) => container.id).sort();
    expect(await ids({})).to.deep.equal([a.containerId, b.containerId].sort());
    expect(await ids({ id: a.containerId.slice(0, 12) })).to.deep.equal([a.containerId]);
    expect(await ids({ state: { state: ContainerState.CONTAINER_RUNNING } })).to.deep.equal([a.containerId]);
    expect(await ids({ state: { state: ContainerState.CONTAINER_CREATED } })).to.deep.equal([b.containerId]);
    expect(await ids({ podSandboxId: b.sandboxId })).to.deep.equal([b.containerId]);
    expect(await ids({ labelSelector: { tier: 'web' } })).to.deep.equal([a.containerId, b.containerId].sort());
    expect(await ids({ labelSelector: { tier: 'web', app: 'b' } })).to.deep.equal([b.containerId]);
    expect(await ids({ labelSelector: { app: 'c' } })).to.deep.equal([]);
  });

  it('answers NOT_FOUND, INVALID_ARGUMENT and UNIMPLEMENTED with precise messages; removal is idempotent', async function () {
    const missing = await codeOf(harness.runtime.containerStatus({ containerId: 'feedface' }));
    expect(missing).to.deep.equal({ code: status.NOT_FOUND, details: 'container "feedface" not found' });
    const { podSandboxId } = await harness.runtime.runPodSandbox({ config: { metadata: { name: 'errors', namespace: 'default', uid: 'u' } } });
    const create = (config: object) => codeOf(harness.runtime.createContainer({ podSandboxId, config }));
    expect(await create({ image: { image: 'busybox' } })).to.include({ code: status.INVALID_ARGUMENT, details: 'config.metadata.name: missing' });
    const noCommand = await create({ metadata: { name: 'c' }, image: { image: 'host' } });
    expect(noCommand.code).to.equal(status.INVALID_ARGUMENT);
    expect(noCommand.details).to.match(/^config\.command: image host has no default command/);
    const notFoundProgram = await create({ metadata: { name: 'c' }, image: { image: 'host' }, command: ['no-such-program-xyz'] });
    expect(notFoundProgram.code).to.equal(status.INVALID_ARGUMENT);
    expect(notFoundProgram.details).to.match(/^config\.command: "no-such-program-xyz" not found/);
    const unknownImage = await create({ metadata: { name: 'c' }, image: { image: 'foo:1' } });
    expect(unknownImage.code).to.equal(status.NOT_FOUND);
    expect(unknownImage.details).to.contain('image "docker.io/library/foo:1" is not in mast cri\'s image table');
    const nested = await create({ metadata: { name: 'c' }, image: { image: 'busybox' }, mounts: [{ containerPath: '/a', hostPath: '/tmp' }, { containerPath: '/a/b', hostPath: '/tmp' }] });
    expect(nested.code).to.equal(status.INVALID_ARGUMENT);
    expect(nested.details).to.contain('config.mounts[1].container_path');
    await harness.runtime.removeContainer({ containerId: 'feedface' });
    await harness.runtime.removePodSandbox({ podSandboxId: 'feedface' });
    for (const call of [
      harness.runtime.exec({ containerId: 'x', cmd: ['sh'] }),
      harness.runtime.attach({ containerId: 'x' }),
      harness.runtime.portForward({ podSandboxId: podSandboxId, port: [80] }),
      harness.runtime.updateContainerResources({ containerId: 'x' }),
    ]) {
      const unimplemented = await codeOf(call);
      expect(unimplemented.code).to.equal(status.UNIMPLEMENTED);
      expect(unimplemented.details).to.match(/ExecSync only|does not enforce resources/);
    }
  });
});
