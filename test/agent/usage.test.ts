import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerStats } from '../../proto/gen/cri/v1/api.js';
import { ResourceClient, statusCodeOf } from '../../services/client/resources.js';
import { LocalCluster, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { UsageReporter } from '../../services/agent/usage.js';

function stats(id: string, pod: string, container: string, cpuNs: number, memoryBytes: number, atNs: number): ContainerStats {
  return ContainerStats.fromPartial({
    attributes: { id, metadata: { name: container }, labels: { 'io.kubernetes.pod.name': pod, 'io.kubernetes.pod.namespace': 'default', 'io.kubernetes.pod.uid': `uid-${pod}`, 'io.kubernetes.container.name': container } },
    cpu: { timestamp: atNs, usageCoreNanoSeconds: { value: cpuNs } },
    memory: { timestamp: atNs, workingSetBytes: { value: memoryBytes } },
  });
}

describe('usage reporter: PodMetrics and NodeMetrics on a master', function () {
  this.timeout(60_000);
  let baseDir: string;
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;

  before(async function () {
    baseDir = mkdtempSync(join(tmpdir(), 'mast-usage-'));
    cluster = await LocalCluster.start({ size: 1, baseDir });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
    rmSync(baseDir, { recursive: true, force: true });
  });

  it('writes cores over the window and working sets, replaces them each reading, and removes those of pods gone', async function () {
    let reading: ContainerStats[] = [stats('c1', 'web', 'app', 1e9, 64 * 1024 * 1024, 10e9), stats('c2', 'web', 'sidecar', 0, 1024 * 1024, 10e9)];
    let nodeCpuNs = 100e9;
    let nowMs = 10_000;
    const reporter = new UsageReporter({
      client: client!,
      nodeName: 'n1',
      listContainerStats: async () => reading,
      readNode: async () => ({ cpuNs: nodeCpuNs, memoryBytes: 2 * 1024 ** 3 }),
      now: () => nowMs,
      intervalMs: 15_000,
    });
    await reporter.report();
    const first = await client!.get('PodMetrics', 'default', 'web');
    expect(first.containers).to.deep.equal([
      { name: 'app', usage: { cpu: '0', memory: '65536Ki' } },
      { name: 'sidecar', usage: { cpu: '0', memory: '1024Ki' } },
    ]);
    expect(first.window).to.equal('15s');

    // 15 s later: app used 3.75 core-seconds (250m), the node 7.5 (500m); the write replaces the object without reading it.
    reading = [stats('c1', 'web', 'app', 1e9 + 3.75e9, 80 * 1024 * 1024, 25e9), stats('c2', 'web', 'sidecar', 0, 1024 * 1024, 25e9)];
    nodeCpuNs += 7.5e9;
    nowMs += 15_000;
    await reporter.report();
    const second = await client!.get('PodMetrics', 'default', 'web');
    expect(Number(second.metadata?.resourceVersion)).to.be.greaterThan(Number(first.metadata?.resourceVersion));
    expect(second.containers).to.deep.equal([
      { name: 'app', usage: { cpu: '250m', memory: '81920Ki' } },
      { name: 'sidecar', usage: { cpu: '0', memory: '1024Ki' } },
    ]);
    expect((await client!.get('NodeMetrics', '', 'n1')).usage).to.deep.equal({ cpu: '500m', memory: '2097152Ki' });

    // Someone else replaced it meanwhile: the stale version is refused, and the reporter reads and writes again.
    await client!.update('PodMetrics', { ...second, window: '1s' });
    nowMs += 15_000;
    await reporter.report();
    expect((await client!.get('PodMetrics', 'default', 'web')).window).to.equal('15s');

    // The pod's containers are gone: so is its PodMetrics.
    reading = [];
    await reporter.report();
    const gone = await client!.get('PodMetrics', 'default', 'web').then(() => undefined, (error: unknown) => statusCodeOf(error));
    expect(gone).to.equal(grpc.status.NOT_FOUND);
  });
});
