// mast cri sandboxes and images against a real server: a sandbox's IP,
// files, status and lifecycle (stop kills its containers, remove is
// idempotent), ListPodSandbox filters, Version and Status, and the
// ImageService over the image table.

import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerState, NamespaceMode, PodSandboxState } from '../../proto/gen/cri/v1/api.js';
import { imageId } from '../../services/cri/images.js';
import { codeOf, podConfig, runContainer, startHarness, type Harness } from './harness.js';

describe('mast cri: sandboxes and images', function () {
  this.timeout(60_000);
  let harness: Harness;
  let tableDir: string | undefined;

  before(async function () {
    tableDir = mkdtempSync(join(tmpdir(), 'mast-cri-table-'));
    const table = join(tableDir, 'images.json');
    writeFileSync(table, JSON.stringify({ 'example.com/tools/python': { command: ['/usr/bin/python3'], programs: { python: ['/usr/bin/python3'] } } }));
    harness = await startHarness({ imageTable: table, podCidr: '127.20.0.0/24' });
  });

  afterEach(async function () {
    const { items } = await harness.runtime.listPodSandbox();
    for (const sandbox of items) await harness.runtime.removePodSandbox({ podSandboxId: sandbox.id });
  });

  after(async function () {
    await harness?.destroy();
    if (tableDir !== undefined) rmSync(tableDir, { recursive: true, force: true });
  });

  it('runs a sandbox with its own IP, files and status, stops it (killing its containers) and removes it', async function () {
    const logDirectory = join(harness.dir, 'logs', 'web');
    const config = podConfig('web', logDirectory, {
      labels: { app: 'web' },
      annotations: { note: 'kept' },
      dnsConfig: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
    });
    const { podSandboxId } = await harness.runtime.runPodSandbox({ config });
    const { podSandboxId: otherId } = await harness.runtime.runPodSandbox({ config: podConfig('other', logDirectory) });
    const { status: sandbox } = await harness.runtime.podSandboxStatus({ podSandboxId });
    expect(sandbox).to.include({ id: podSandboxId, state: PodSandboxState.SANDBOX_READY });
    expect(sandbox?.network?.ip).to.equal('127.20.0.2');
    expect((await harness.runtime.podSandboxStatus({ podSandboxId: otherId })).status?.network?.ip).to.equal('127.20.0.3');
    expect(sandbox?.metadata).to.deep.equal({ name: 'web', namespace: 'default', uid: 'uid-web', attempt: 0 });
    expect(sandbox?.labels).to.deep.equal({ app: 'web' });
    expect(sandbox?.annotations).to.deep.equal({ note: 'kept' });
    expect(sandbox?.createdAt).to.be.greaterThan(1.7e18);
    expect(sandbox?.linux?.namespaces?.options?.network).to.equal(NamespaceMode.NODE);
    const dir = join(harness.root, 'sandboxes', podSandboxId);
    expect(readFileSync(join(dir, 'etc', 'resolv.conf'), 'utf8')).to.equal('search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n');
    expect(readFileSync(join(dir, 'etc', 'hosts'), 'utf8')).to.contain('127.20.0.2\tweb\n');
    expect(existsSync(logDirectory)).to.equal(true);

    const duplicate = await codeOf(harness.runtime.runPodSandbox({ config }));
    expect(duplicate.code).to.equal(status.ALREADY_EXISTS);

    const { containerId } = await harness.runtime.createContainer({ podSandboxId, config: { metadata: { name: 'sleeper' }, image: { image: 'busybox' }, command: ['sleep', '60'] } });
    await harness.runtime.startContainer({ containerId });
    await harness.runtime.stopPodSandbox({ podSandboxId });
    expect((await harness.runtime.podSandboxStatus({ podSandboxId })).status?.state).to.equal(PodSandboxState.SANDBOX_NOTREADY);
    expect((await harness.runtime.containerStatus({ containerId })).status?.state).to.equal(ContainerState.CONTAINER_EXITED);
    await harness.runtime.stopPodSandbox({ podSandboxId });
    const notReady = await codeOf(harness.runtime.createContainer({ podSandboxId, config: { metadata: { name: 'late' }, image: { image: 'busybox' } } }));
    expect(notReady.code).to.equal(status.FAILED_PRECONDITION);

    await harness.runtime.removePodSandbox({ podSandboxId });
    await harness.runtime.removePodSandbox({ podSandboxId });
    expect(existsSync(dir)).to.equal(false);
    expect((await codeOf(harness.runtime.podSandboxStatus({ podSandboxId }))).details).to.equal(`sandbox "${podSandboxId}" not found`);
    expect((await codeOf(harness.runtime.containerStatus({ containerId }))).code).to.equal(status.NOT_FOUND);
  });

  it('ListPodSandbox filters by id prefix, state and labels', async function () {
    const logDirectory = join(harness.dir, 'logs');
    const a = (await harness.runtime.runPodSandbox({ config: podConfig('a', logDirectory, { labels: { app: 'a', env: 'dev' } }) })).podSandboxId;
    const b = (await harness.runtime.runPodSandbox({ config: podConfig('b', logDirectory, { labels: { app: 'b', env: 'dev' } }) })).podSandboxId;
    await harness.runtime.stopPodSandbox({ podSandboxId: b });
    const ids = async (filter: object): Promise<string[]> => (await harness.runtime.listPodSandbox({ filter })).items.map((item) => item.id).sort();
    expect(await ids({})).to.deep.equal([a, b].sort());
    expect(await ids({ id: b.slice(0, 10) })).to.deep.equal([b]);
    expect(await ids({ state: { state: PodSandboxState.SANDBOX_READY } })).to.deep.equal([a]);
    expect(await ids({ state: { state: PodSandboxState.SANDBOX_NOTREADY } })).to.deep.equal([b]);
    expect(await ids({ labelSelector: { env: 'dev' } })).to.deep.equal([a, b].sort());
    expect(await ids({ labelSelector: { env: 'dev', app: 'a' } })).to.deep.equal([a]);
    const { stats } = await harness.runtime.listPodSandboxStats({ filter: { labelSelector: { env: 'dev' } } });
    expect(stats.map((item) => item.attributes?.id)).to.deep.equal([a]);
  });

  it('answers Version and Status', async function () {
    const version = await harness.runtime.version({ version: 'v1' });
    expect(version).to.include({ runtimeName: 'mast-cri', runtimeApiVersion: 'v1' });
    expect(version.runtimeVersion).to.match(/^\d+\.\d+\.\d+/);
    const { status: runtimeStatus } = await harness.runtime.status({});
    expect(runtimeStatus?.conditions.map((condition) => [condition.type, condition.status])).to.deep.equal([
      ['RuntimeReady', true],
      ['NetworkReady', true],
    ]);
  });

  it('serves the image table: list, status, pull (NOT_FOUND for unknown images), remove, fs info', async function () {
    const { images } = await harness.images.listImages({});
    const tags = images.flatMap((image) => image.repoTags);
    expect(tags).to.include.members(['docker.io/library/busybox:latest', 'docker.io/library/nginx:latest', 'registry.k8s.io/pause:latest', 'example.com/tools/python:latest']);
    const busybox = images.find((image) => image.repoTags.includes('docker.io/library/busybox:latest'));
    expect(busybox).to.include({ id: imageId('docker.io/library/busybox'), size: 0 });

    const { imageRef } = await harness.images.pullImage({ image: { image: 'busybox:1.36' } });
    expect(imageRef).to.equal(imageId('docker.io/library/busybox'));
    expect((await harness.images.pullImage({ image: { image: 'example.com/tools/python:3.12' } })).imageRef).to.equal(imageId('example.com/tools/python'));
    const { image } = await harness.images.imageStatus({ image: { image: 'busybox:1.36' } });
    expect(image?.repoTags).to.include('docker.io/library/busybox:1.36');
    expect((await harness.images.imageStatus({ image: { image: imageRef } })).image?.id).to.equal(imageRef);
    expect((await harness.images.imageStatus({ image: { image: 'registry.k8s.io/pause:3.9' } })).image?.pinned).to.equal(true);
    expect((await harness.images.imageStatus({ image: { image: 'foo:1' } })).image).to.equal(undefined);

    const unknown = await codeOf(harness.images.pullImage({ image: { image: 'foo:1' } }));
    expect(unknown).to.deep.equal({
      code: status.NOT_FOUND,
      details: 'image "docker.io/library/foo:1" is not in mast cri\'s image table (known: busybox, node, httpd, nginx, host, pause, example.com/tools/python); add it with --image-table',
    });
    expect((await codeOf(harness.images.pullImage({ image: { image: 'Bad:Name:x' } }))).code).to.equal(status.INVALID_ARGUMENT);
    await harness.images.removeImage({ image: { image: 'busybox' } });
    expect((await harness.images.imageStatus({ image: { image: 'busybox' } })).image?.id).to.equal(imageRef);
    const { imageFilesystems } = await harness.images.imageFsInfo({});
    expect(imageFilesystems[0]?.fsId?.mountpoint).to.equal(harness.root);
    expect(imageFilesystems[0]?.usedBytes?.value).to.be.greaterThan(0);
  });

  it('runs a container of an image given by its image id (as kubelet passes it)', async function () {
    const { imageRef } = await harness.images.pullImage({ image: { image: 'busybox' } });
    const { containerId } = await runContainer(harness, 'by-id', { image: { image: imageRef }, command: ['true'] });
    expect((await harness.runtime.containerStatus({ containerId })).status?.imageRef).to.equal(imageRef);
  });
});
