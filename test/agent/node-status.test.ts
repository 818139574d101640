// The Node the agent keeps, against an in-memory fake of the few
// ResourceClient calls it makes (get, create, update, updateStatus, with
// resourceVersions, conflicts and the status subresource): registration
// (labels, capacity, allocatable, addresses, system info, daemon endpoint,
// podCIDR), the Lease owned by the Node, condition transitions keeping
// lastTransitionTime, Ready re-reported over the node lifecycle
// controller's Unknown, and the timers (heartbeat, a changed condition
// posted at once, nothing after stop()). One test against a 1-master
// cluster: the API server accepts the Node, its status and the Lease.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node } from '../../proto/gen/resources/v1/core.js';
import type { Condition } from '../../proto/gen/resources/v1/meta.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitForNamespace } from '../../services/launcher/local-cluster.js';
import type { NodeClient } from '../../services/agent/node-lease.js';
import { allocatableOf, formatBytes, formatMilliCPU, NodeStatusReporter, observeConditions, DEFAULT_EVICTION_HARD, type NodeStats, type NodeStatusReporterOptions, type RuntimeReadiness } from '../../services/agent/node-status.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

class ApiFailure extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

interface Write {
  readonly verb: 'create' | 'update' | 'updateStatus';
  readonly kind: string;
  readonly object: KubeObject;
}

/** The ResourceClient calls a node agent makes, over a map, as the API server answers them. */
class FakeClient implements NodeClient {
  readonly objects = new Map<string, KubeObject>();
  readonly writes: Write[] = [];
  private revision = 1;
  /** Fail the next updateStatus calls with a conflict. */
  conflicts = 0;

  private key(kind: string, namespace: string, name: string): string {
    return `${kind}/${namespace}/${name}`;
  }

  private keyOf(kind: string, object: KubeObject): string {
    return this.key(kind, object.metadata?.namespace ?? '', object.metadata?.name ?? '');
  }

  private store(kind: string, object: KubeObject): KubeObject {
    const stored = structuredClone(object);
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.revision) };
    this.objects.set(this.keyOf(kind, stored), stored);
    return structuredClone(stored);
  }

  private current(kind: string, object: KubeObject): KubeObject {
    const existing = this.objects.get(this.keyOf(kind, object));
    if (existing === undefined) throw new ApiFailure(grpc.status.NOT_FOUND, `${kind} "${object.metadata?.name ?? ''}" not found`);
    if (object.metadata?.resourceVersion !== undefined && object.metadata.resourceVersion !== existing.metadata?.resourceVersion) throw new ApiFailure(grpc.status.ABORTED, 'the object has been modified');
    return existing;
  }

  async create(kind: string, object: unknown): Promise<KubeObject> {
    const input = object as KubeObject;
    if (this.objects.has(this.keyOf(kind, input))) throw new ApiFailure(grpc.status.ALREADY_EXISTS, `${kind} "${input.metadata?.name ?? ''}" already exists`);
    this.writes.push({ verb: 'create', kind, object: structuredClone(input) });
    const created: KubeObject = { ...input, metadata: { ...input.metadata, uid: `uid-${input.metadata?.name ?? ''}` } };
    // The status subresource: a create does not set it.
    delete created.status;
    return this.store(kind, created);
  }

  async get(kind: string, namespace: string, name: string): Promise<KubeObject> {
    const found = this.objects.get(this.key(kind, namespace, name));
    if (found === undefined) throw new ApiFailure(grpc.status.NOT_FOUND, `${kind} "${name}" not found`);
    return structuredClone(found);
  }

  async update(kind: string, object: KubeObject): Promise<KubeObject> {
    const existing = this.current(kind, object);
    this.writes.push({ verb: 'update', kind, object: structuredClone(object) });
    return this.store(kind, { ...object, ...(existing.status === undefined ? {} : { status: existing.status }) });
  }

  async updateStatus(kind: string, object: KubeObject): Promise<KubeObject> {
    const existing = this.current(kind, object);
    if (this.conflicts > 0) {
      this.conflicts--;
      // Someone else wrote in between.
      this.store(kind, existing);
      throw new ApiFailure(grpc.status.ABORTED, 'the object has been modified');
    }
    this.writes.push({ verb: 'updateStatus', kind, object: structuredClone(object) });
    return this.store(kind, { ...existing, status: object.status });
  }

  node(name = 'n1'): Node {
    return this.objects.get(`Node//${name}`) as Node;
  }
}

const conditionOf = (node: Node, type: string): Condition => {
  const found = (node.status?.conditions ?? []).find((condition) => condition.type === type);
  expect(found, `condition ${type}`).to.not.equal(undefined);
  return found!;
};

const healthy: NodeStats = { memoryTotalBytes: 16 * GiB, memoryAvailableBytes: 8 * GiB, fsCapacityBytes: 100 * GiB, fsAvailableBytes: 50 * GiB, pidMax: 100_000, pidCount: 500 };

describe('agent: node status (NodeStatusReporter)', function () {
  let client: FakeClient;
  let clockMs: number;
  let runtime: RuntimeReadiness;
  let stats: NodeStats;
  let reporter: NodeStatusReporter | undefined;

  const reporterWith = (options: Partial<NodeStatusReporterOptions> = {}): NodeStatusReporter => {
    reporter = new NodeStatusReporter({
      client,
      nodeName: 'n1',
      rootDir: '/nonexistent/agent',
      runtimeVersion: 'mast-cri://0.1.0',
      runtimeReady: async () => runtime,
      readNodeStats: async () => stats,
      labels: { disktype: 'ssd' },
      cpu: '4',
      reserved: { cpu: '500m', memory: '1Gi' },
      internalIP: '10.0.0.5',
      podCIDR: '10.244.1.0/24',
      daemonPort: 10250,
      systemInfo: { machineID: 'machine-1', bootID: 'boot-1', osImage: 'Test Linux' },
      now: () => new Date(clockMs),
      ...options,
    });
    return reporter;
  };

  beforeEach(function () {
    client = new FakeClient();
    clockMs = Date.parse('2026-01-01T00:00:00Z');
    runtime = { ready: true, message: '' };
    stats = healthy;
  });

  afterEach(function () {
    reporter?.stop();
    reporter = undefined;
  });

  it('registers the Node with labels, podCIDR, capacity, allocatable, addresses, system info and daemon endpoint, and a Lease it owns', async function () {
    const status = reporterWith();
    await status.register();
    await status.heartbeat();
    await status.syncStatus();
    const node = client.node();
    expect(node.metadata?.labels).to.deep.equal({
      'kubernetes.io/hostname': 'n1',
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': status.nodeLabels()['kubernetes.io/arch'],
      'beta.kubernetes.io/os': 'linux',
      'beta.kubernetes.io/arch': status.nodeLabels()['kubernetes.io/arch'],
      disktype: 'ssd',
    });
    expect(['amd64', 'arm64']).to.include(node.metadata?.labels?.['kubernetes.io/arch']);
    expect(node.spec).to.deep.equal({ podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] });
    expect(node.status?.capacity).to.deep.equal({ cpu: '4', 'ephemeral-storage': '100Gi', memory: '16Gi', pods: '110' });
    expect(node.status?.allocatable).to.deep.equal({ cpu: '3500m', 'ephemeral-storage': '100Gi', memory: '15Gi', pods: '110' });
    expect(node.status?.addresses).to.deep.equal([{ type: 'InternalIP', address: '10.0.0.5' }, { type: 'Hostname', address: 'n1' }]);
    expect(node.status?.nodeInfo).to.include({ machineID: 'machine-1', bootID: 'boot-1', osImage: 'Test Linux', containerRuntimeVersion: 'mast-cri://0.1.0', operatingSystem: 'linux' });
    expect(node.status?.nodeInfo?.kubeletVersion).to.match(/^mast\//);
    expect(node.status?.nodeInfo?.kernelVersion).to.be.a('string').and.not.equal('');
    expect(node.status?.daemonEndpoints).to.deep.equal({ kubeletEndpoint: { Port: 10250 } });
    expect((node.status?.conditions ?? []).map((condition) => [condition.type, condition.status, condition.reason])).to.deep.equal([
      ['MemoryPressure', 'False', 'KubeletHasSufficientMemory'],
      ['DiskPressure', 'False', 'KubeletHasNoDiskPressure'],
      ['PIDPressure', 'False', 'KubeletHasSufficientPID'],
      ['Ready', 'True', 'KubeletReady'],
    ]);
    expect(conditionOf(node, 'Ready')).to.include({ message: 'kubelet is posting ready status', lastHeartbeatTime: '2026-01-01T00:00:00Z', lastTransitionTime: '2026-01-01T00:00:00Z' });

    const lease = client.objects.get('Lease/kube-node-lease/n1')!;
    expect(lease.spec).to.deep.equal({ holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2026-01-01T00:00:00.000000Z' });
    expect(lease.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'v1', kind: 'Node', name: 'n1', uid: 'uid-n1' }]);
    clockMs += 10_000;
    await status.heartbeat();
    expect((client.objects.get('Lease/kube-node-lease/n1')!.spec as { renewTime: string }).renewTime).to.equal('2026-01-01T00:00:10.000000Z');
  });

  it('brings an existing Node up to date: its labels (others kept) and an empty podCIDR', async function () {
    await client.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { 'kubernetes.io/hostname': 'n1', team: 'blue', disktype: 'hdd' } } });
    await reporterWith().register();
    const node = client.node();
    expect(node.metadata?.labels).to.include({ team: 'blue', disktype: 'ssd', 'kubernetes.io/os': 'linux' });
    expect(node.spec?.podCIDR).to.equal('10.244.1.0/24');
    const writes = client.writes.length;
    await reporterWith().register();
    expect(client.writes.length, 'nothing to change: no write').to.equal(writes);
  });

  it('moves conditions with the readings, keeping lastTransitionTime while a status stays', async function () {
    const status = reporterWith();
    await status.register();
    await status.syncStatus();

    clockMs += 10_000;
    await status.syncStatus();
    let node = client.node();
    expect(conditionOf(node, 'Ready')).to.include({ status: 'True', lastHeartbeatTime: '2026-01-01T00:00:10Z', lastTransitionTime: '2026-01-01T00:00:00Z' });
    expect(conditionOf(node, 'MemoryPressure')).to.include({ lastTransitionTime: '2026-01-01T00:00:00Z' });

    clockMs += 10_000;
    runtime = { ready: false, message: 'container runtime network not ready: NetworkReady=false reason:NoCNI message:no network' };
    stats = { ...healthy, memoryAvailableBytes: 50 * MiB };
    await status.syncStatus();
    node = client.node();
    expect(conditionOf(node, 'Ready')).to.include({ status: 'False', reason: 'KubeletNotReady', message: runtime.message, lastTransitionTime: '2026-01-01T00:00:20Z' });
    expect(conditionOf(node, 'MemoryPressure')).to.include({ status: 'True', reason: 'KubeletHasInsufficientMemory', lastTransitionTime: '2026-01-01T00:00:20Z' });
    expect(conditionOf(node, 'DiskPressure')).to.include({ status: 'False', lastTransitionTime: '2026-01-01T00:00:00Z', lastHeartbeatTime: '2026-01-01T00:00:20Z' });

    clockMs += 10_000;
    runtime = { ready: true, message: '' };
    stats = healthy;
    await status.syncStatus();
    node = client.node();
    expect(conditionOf(node, 'Ready')).to.include({ status: 'True', lastTransitionTime: '2026-01-01T00:00:30Z' });
    expect(conditionOf(node, 'MemoryPressure')).to.include({ status: 'False', lastTransitionTime: '2026-01-01T00:00:30Z' });
  });

  it('reports Ready again over the node lifecycle controller Unknown (a transition), keeping conditions of others', async function () {
    const status = reporterWith();
    await status.register();
    await status.syncStatus();
    const marked = structuredClone(client.objects.get('Node//n1')!) as KubeObject & Node;
    marked.status!.conditions = [
      ...(marked.status?.conditions ?? []).map((condition) => (condition.type === 'Ready' ? { ...condition, status: 'Unknown', reason: 'NodeStatusUnknown', lastTransitionTime: '2026-01-01T00:00:05Z' } : condition)),
      { type: 'NetworkUnavailable', status: 'False', reason: 'RouteCreated', lastTransitionTime: '2026-01-01T00:00:01Z' },
    ];
    await client.updateStatus('Node', marked);
    clockMs += 20_000;
    await status.syncStatus();
    const node = client.node();
    expect(conditionOf(node, 'Ready')).to.include({ status: 'True', reason: 'KubeletReady', lastTransitionTime: '2026-01-01T00:00:20Z' });
    expect(conditionOf(node, 'NetworkUnavailable')).to.include({ status: 'False', reason: 'RouteCreated', lastTransitionTime: '2026-01-01T00:00:01Z' });
  });

  it('retries a status update that conflicted with another write', async function () {
    const status = reporterWith();
    await status.register();
    client.conflicts = 2;
    await status.syncStatus();
    expect(conditionOf(client.node(), 'Ready').status).to.equal('True');
  });

  it('heartbeats, posts a changed condition at once, and stops', async function () {
    const status = reporterWith({ heartbeatIntervalMs: 20, nodeStatusUpdateFrequencyMs: 60_000, conditionCheckIntervalMs: 20, now: () => new Date() });
    await status.start();
    const renewals = (): number => client.writes.filter((write) => write.kind === 'Lease').length;
    const leaseWrites = renewals();
    const statusPosts = (): number => client.writes.filter((write) => write.verb === 'updateStatus').length;
    const posts = statusPosts();
    await new Promise((done) => setTimeout(done, 100));
    expect(renewals()).to.be.greaterThan(leaseWrites);
    expect(statusPosts(), 'nothing changed: no post before nodeStatusUpdateFrequency').to.equal(posts);

    stats = { ...healthy, fsAvailableBytes: 5 * GiB };
    await new Promise((done) => setTimeout(done, 100));
    expect(conditionOf(client.node(), 'DiskPressure')).to.include({ status: 'True', reason: 'KubeletHasDiskPressure' });

    status.stop();
    await new Promise((done) => setTimeout(done, 30));
    const after = client.writes.length;
    stats = healthy;
    await new Promise((done) => setTimeout(done, 100));
    expect(client.writes.length, 'no writes after stop()').to.equal(after);
  });

  it('writes a Node, status and Lease the API server accepts (1-master cluster)', async function () {
    this.timeout(120_000);
    const cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-node-status-')) });
    const api = new ResourceClient({ endpoints: cluster.endpoints });
    try {
      await waitForNamespace(api, 'kube-node-lease');
      const status = reporterWith({ client: api, now: () => new Date() });
      await status.register();
      await status.heartbeat();
      await status.syncStatus();
      const node = (await api.get('Node', '', 'n1')) as KubeObject & Node;
      expect(node.status?.allocatable).to.include({ cpu: '3500m', memory: '15Gi' });
      expect(node.status?.daemonEndpoints).to.deep.equal({ kubeletEndpoint: { Port: 10250 } });
      expect(conditionOf(node, 'Ready').status).to.equal('True');
      expect(node.spec?.podCIDR).to.equal('10.244.1.0/24');
      const lease = await api.get('Lease', 'kube-node-lease', 'n1');
      expect((lease.metadata?.ownerReferences as Array<{ uid: string }>)[0]?.uid).to.equal(node.metadata?.uid);
      await status.heartbeat();
      await reporterWith({ client: api, labels: { disktype: 'nvme' } }).register();
      expect((await api.get('Node', '', 'n1')).metadata?.labels).to.include({ disktype: 'nvme' });
    } finally {
      api.close();
      await cluster.destroy();
    }
  });

  describe('pure parts', function () {
    it('formats quantities as Kubernetes prints them', function () {
      expect(formatBytes(16 * GiB)).to.equal('16Gi');
      expect(formatBytes(16_303_936 * 1024)).to.equal('16303936Ki');
      expect(formatBytes(1000)).to.equal('1000');
      expect(formatBytes(0)).to.equal('0');
      expect(formatMilliCPU(4000)).to.equal('4');
      expect(formatMilliCPU(3500)).to.equal('3500m');
      expect(allocatableOf({ cpu: '2', memory: '4Gi', pods: '110' }, { cpu: '3', memory: '512Mi', pods: '10' })).to.deep.equal({ cpu: '0', memory: '3584Mi', pods: '100' });
    });

    it('raises pressure at the eviction thresholds and reports missing capacity as not ready', function () {
      const statuses = (readings: NodeStats, capacity: Record<string, string> = { cpu: '1', memory: '1Gi', pods: '110' }): Record<string, string> =>
        Object.fromEntries(observeConditions({ ready: true, message: '' }, readings, capacity, DEFAULT_EVICTION_HARD).map((condition) => [condition.type, condition.status]));
      expect(statuses(healthy)).to.deep.equal({ MemoryPressure: 'False', DiskPressure: 'False', PIDPressure: 'False', Ready: 'True' });
      expect(statuses({ ...healthy, memoryAvailableBytes: 99 * MiB }).MemoryPressure).to.equal('True');
      expect(statuses({ ...healthy, memoryAvailableBytes: 100 * MiB }).MemoryPressure).to.equal('False');
      expect(statuses({ ...healthy, fsAvailableBytes: 9 * GiB }).DiskPressure).to.equal('True');
      expect(statuses({ ...healthy, fsAvailableBytes: 10 * GiB }).DiskPressure).to.equal('False');
      expect(statuses({ ...healthy, pidCount: 95_000 }).PIDPressure).to.equal('True');
      expect(statuses({})).to.deep.equal({ MemoryPressure: 'False', DiskPressure: 'False', PIDPressure: 'False', Ready: 'True' });
      const missing = observeConditions({ ready: true, message: '' }, {}, { cpu: '1', pods: '110' }, DEFAULT_EVICTION_HARD).find((condition) => condition.type === 'Ready');
      expect(missing).to.include({ status: 'False', message: 'missing node capacity for resources: memory' });
    });
  });
});
