// connectCri over a real unix socket: the in-memory FakeCri served through
// the generated CRI v1 gRPC services, so the client wrapper's requests,
// answers, error mapping (CriError with the runtime's code and message) and
// kubelet-style idempotence (NOT_FOUND on stop/remove is success) are
// exercised on the wire.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerConfig, ContainerState, ContainerStatus, ImageServiceService, PodSandboxConfig, PodSandboxState, RuntimeServiceService } from '../../proto/gen/cri/v1/api.js';
import { CriError, connectCri, criTarget, isCriNotFound, type CriConnection } from '../../services/agent/cri.js';
import { FakeCri } from './fake-cri.js';

function unary<Request, Response>(handler: (request: Request) => Promise<Response>): grpc.handleUnaryCall<Request, Response> {
  return (call, callback) => {
    handler(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => callback({ code: error instanceof CriError ? error.code : grpc.status.UNKNOWN, details: error instanceof CriError ? error.details : String(error) } as grpc.ServiceError),
    );
  };
}

const notFound = (what: string): CriError => new CriError('server', grpc.status.NOT_FOUND, `${what} not found`);

/** Serve a FakeCri as a strict runtime: unknown ids answer NOT_FOUND. */
function serve(fake: FakeCri): grpc.Server {
  const server = new grpc.Server();
  const known = (id: string, map: ReadonlyMap<string, unknown>, what: string): void => {
    if (!map.has(id)) throw notFound(`${what} ${id}`);
  };
  server.addService(RuntimeServiceService, {
    version: unary(() => fake.version()),
    status: unary(() => fake.status()),
    runPodSandbox: unary(async (request: { config?: PodSandboxConfig; runtimeHandler: string }) => ({ podSandboxId: await fake.runPodSandbox(PodSandboxConfig.fromPartial(request.config ?? {}), request.runtimeHandler) })),
    stopPodSandbox: unary(async (request: { podSandboxId: string }) => {
      known(request.podSandboxId, fake.sandboxes, 'sandbox');
      await fake.stopPodSandbox(request.podSandboxId);
      return {};
    }),
    removePodSandbox: unary(async (request: { podSandboxId: string }) => {
      known(request.podSandboxId, fake.sandboxes, 'sandbox');
      await fake.removePodSandbox(request.podSandboxId);
      return {};
    }),
    podSandboxStatus: unary(async (request: { podSandboxId: string }) => {
      const status = await fake.podSandboxStatus(request.podSandboxId);
      if (status === undefined) throw notFound(`sandbox ${request.podSandboxId}`);
      return { status, info: {}, containersStatuses: [], timestamp: 0 };
    }),
    listPodSandbox: unary(async (request: { filter?: { id: string; state?: { state: PodSandboxState }; labelSelector: Record<string, string> } }) => ({
      items: await fake.listPodSandbox({ id: request.filter?.id || undefined, state: request.filter?.state?.state, labelSelector: request.filter?.labelSelector }),
    })),
    createContainer: unary(async (request: { podSandboxId: string; config?: ContainerConfig; sandboxConfig?: PodSandboxConfig }) => ({
      containerId: await fake.createContainer(request.podSandboxId, ContainerConfig.fromPartial(request.config ?? {}), PodSandboxConfig.fromPartial(request.sandboxConfig ?? {})),
    })),
    startContainer: unary(async (request: { containerId: string }) => {
      await fake.startContainer(request.containerId);
      return {};
    }),
    stopContainer: unary(async (request: { containerId: string; timeout: number }) => {
      known(request.containerId, fake.containers, 'container');
      await fake.stopContainer(request.containerId, request.timeout);
      return {};
    }),
    removeContainer: unary(async (request: { containerId: string }) => {
      known(request.containerId, fake.containers, 'container');
      await fake.removeContainer(request.containerId);
      return {};
    }),
    listContainers: unary(async (request: { filter?: { id: string; state?: { state: ContainerState }; podSandboxId: string; labelSelector: Record<string, string> } }) => ({
      containers: await fake.listContainers({ id: request.filter?.id || undefined, state: request.filter?.state?.state, podSandboxId: request.filter?.podSandboxId || undefined, labelSelector: request.filter?.labelSelector }),
    })),
    containerStatus: unary(async (request: { containerId: string }) => {
      const status = await fake.containerStatus(request.containerId);
      if (status === undefined) throw notFound(`container ${request.containerId}`);
      return { status, info: {} };
    }),
    execSync: unary((request: { containerId: string; cmd: string[]; timeout: number }) => fake.execSync(request.containerId, request.cmd, request.timeout)),
    containerStats: unary(async (request: { containerId: string }) => {
      const stats = await fake.containerStats(request.containerId);
      if (stats === undefined) throw notFound(`container ${request.containerId}`);
      return { stats };
    }),
    listContainerStats: unary(async () => ({ stats: await fake.listContainerStats() })),
  });
  server.addService(ImageServiceService, {
    imageStatus: unary(async (request: { image?: { image: string } }) => ({ image: await fake.imageStatus(request.image?.image ?? ''), info: {} })),
    pullImage: unary(async (request: { image?: { image: string } }) => ({ imageRef: await fake.pullImage(request.image?.image ?? '') })),
  });
  return server;
}

describe('agent: connectCri over a unix socket', () => {
  let directory: string;
  let socket: string;
  let server: grpc.Server;
  let fake: FakeCri;
  let cri: CriConnection;

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), 'mast-cri-'));
    socket = join(directory, 'cri.sock');
    fake = new FakeCri();
    server = serve(fake);
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (error) => (error === null ? resolve() : reject(error))));
    cri = connectCri(`unix://${socket}`, { timeoutMs: 5000 });
  });

  after(async () => {
    cri.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    rmSync(directory, { recursive: true, force: true });
  });

  it('accepts unix:///path, unix:/path and a bare path, and nothing else', async () => {
    expect(criTarget('unix:///run/containerd/containerd.sock')).to.equal('unix:///run/containerd/containerd.sock');
    expect(criTarget('unix:/run/x.sock')).to.equal('unix:///run/x.sock');
    expect(criTarget('/run/x.sock')).to.equal('unix:///run/x.sock');
    expect(() => criTarget('tcp://127.0.0.1:1234')).to.throw(/unix:\/\/\/path/);
    const bare = connectCri(socket);
    try {
      expect((await bare.version()).runtimeName).to.equal('fake');
    } finally {
      bare.close();
    }
  });

  it('runs a sandbox and a container, lists them by label and state, and execs in it', async () => {
    const uid = 'u-grpc';
    const sandboxConfig = PodSandboxConfig.fromPartial({ metadata: { name: 'p', namespace: 'default', uid, attempt: 0 }, labels: { 'io.kubernetes.pod.uid': uid } });
    const sandboxId = await cri.runPodSandbox(sandboxConfig, 'runc');
    const sandboxStatus = await cri.podSandboxStatus(sandboxId);
    expect(sandboxStatus?.state).to.equal(PodSandboxState.SANDBOX_READY);
    expect(sandboxStatus?.network?.ip).to.match(/^10\.88\.0\./);
    expect(sandboxStatus?.runtimeHandler).to.equal('runc');
    // Nanosecond times are past 2^53: they arrive as the nearest doubles, to within 10 µs.
    const createdAtNs = fake.sandboxes.get(sandboxId)?.createdAtNs ?? 0;
    expect(createdAtNs).to.be.greaterThan(Number.MAX_SAFE_INTEGER);
    expect(Math.abs((sandboxStatus?.createdAt ?? 0) - createdAtNs)).to.be.at.most(10_000);

    expect(await cri.imageStatus('app:1')).to.equal(undefined);
    expect(await cri.pullImage('app:1')).to.match(/^sha256:/);
    expect((await cri.imageStatus('app:1'))?.repoTags).to.deep.equal(['app:1']);

    const config = ContainerConfig.fromPartial({ metadata: { name: 'app', attempt: 0 }, image: { image: 'app:1' }, labels: { 'io.kubernetes.pod.uid': uid } });
    const id = await cri.createContainer(sandboxId, config, sandboxConfig);
    await cri.startContainer(id);
    expect((await cri.listPodSandbox({ labelSelector: { 'io.kubernetes.pod.uid': uid } })).map((sandbox) => sandbox.id)).to.deep.equal([sandboxId]);
    expect((await cri.listPodSandbox({ labelSelector: { 'io.kubernetes.pod.uid': 'other' } })).length).to.equal(0);
    expect((await cri.listContainers({ state: ContainerState.CONTAINER_RUNNING, labelSelector: { 'io.kubernetes.pod.uid': uid } })).map((container) => container.id)).to.deep.equal([id]);
    const running = await cri.containerStatus(id);
    expect(running?.state).to.equal(ContainerState.CONTAINER_RUNNING);
    expect(Math.abs((running?.startedAt ?? 0) - (fake.containers.get(id)?.startedAtNs ?? 0))).to.be.at.most(10_000);

    fake.exec = (_id, cmd) => ({ stdout: Buffer.from(`ran ${cmd.join(' ')}`), stderr: Buffer.from('warn'), exitCode: 3 });
    const result = await cri.execSync(id, ['check', 'it'], 1);
    expect(result.stdout.toString()).to.equal('ran check it');
    expect(result.stderr.toString()).to.equal('warn');
    expect(result.exitCode).to.equal(3);
    expect((await cri.containerStats(id))?.attributes?.id).to.equal(id);
    expect((await cri.listContainerStats()).length).to.be.greaterThan(0);

    await cri.stopContainer(id, 4);
    expect(fake.callsOf('stopContainer').pop()?.args).to.deep.equal([id, 4]);
    expect((await cri.containerStatus(id))?.exitCode).to.equal(143);
    await cri.removeContainer(id);
    await cri.stopPodSandbox(sandboxId);
    await cri.removePodSandbox(sandboxId);
    expect(await cri.podSandboxStatus(sandboxId)).to.equal(undefined);
  });

  it('decodes nanosecond timestamps beyond 2^53, rounded to the nearest double, and smaller int64 exactly', () => {
    const wire = ContainerStatus.encode(ContainerStatus.fromPartial({ createdAt: 1_795_652_968_153_580_544, exitCode: 3, startedAt: 42 })).finish();
    const decoded = ContainerStatus.decode(wire);
    expect(decoded.createdAt).to.equal(1_795_652_968_153_580_544);
    expect(decoded.startedAt).to.equal(42);
    expect(decoded.exitCode).to.equal(3);
  });

  it('stopping or removing what is gone succeeds; asking about it answers undefined', async () => {
    await cri.stopContainer('nope', 0);
    await cri.removeContainer('nope');
    await cri.stopPodSandbox('nope');
    await cri.removePodSandbox('nope');
    expect(await cri.containerStatus('nope')).to.equal(undefined);
    expect(await cri.podSandboxStatus('nope')).to.equal(undefined);
    expect(await cri.containerStats('nope')).to.equal(undefined);
  });

  it('other failures are CriErrors with the call, the code and the runtime message', async () => {
    const error = await cri.startContainer('nope').then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).to.be.instanceOf(CriError);
    expect(isCriNotFound(error)).to.equal(true);
    expect(error).to.include({ method: 'StartContainer', code: grpc.status.NOT_FOUND, details: 'container nope not found' });
    expect((error as Error).message).to.equal('CRI StartContainer failed: container nope not found');

    fake.pullFailures.set('ghost:1', 'pull access denied');
    const pull = await cri.pullImage('ghost:1').catch((failure: unknown) => failure);
    expect(pull).to.include({ method: 'PullImage', code: grpc.status.UNKNOWN, details: 'pull access denied' });
  });

  it('a runtime that is not there fails with UNAVAILABLE', async () => {
    const absent = connectCri(join(directory, 'absent.sock'), { timeoutMs: 2000 });
    try {
      const error = await absent.version().catch((failure: unknown) => failure);
      expect(error).to.be.instanceOf(CriError);
      expect((error as CriError).code).to.equal(grpc.status.UNAVAILABLE);
    } finally {
      absent.close();
    }
  });
});
