// The scheduler's filter and score plugins and the framework that runs them
// (quantities: test/client/quantity.test.ts): each filter's pass and fail with Kubernetes' reason strings,
// the order the scores put nodes in, pod (anti-)affinity both ways, the
// "0/N nodes are available" summary, VolumeBinding's claims and volume node
// affinity, and assume/forget keeping the snapshot
// current between pods.

import { expect } from 'chai';
import type * as core from '../../proto/gen/resources/v1/core.js';
import {
  assume,
  buildSnapshot,
  forget,
  numFeasibleNodesToFind,
  runFilter,
  schedule,
  scoreNodes,
  unschedulableMessage,
  type ClusterSnapshot,
  type FilterName,
} from '../../services/scheduler/plugins/index.js';

const HOSTNAME = 'kubernetes.io/hostname';
const ZONE = 'topology.kubernetes.io/zone';

interface NodeOptions {
  cpu?: string;
  memory?: string;
  pods?: string;
  labels?: Record<string, string>;
  taints?: core.Taint[];
  unschedulable?: boolean;
  ready?: 'True' | 'False' | 'Unknown' | 'missing';
  capacityOnly?: boolean;
  extra?: Record<string, string>;
}

function node(name: string, options: NodeOptions = {}): core.Node {
  const resources = { cpu: options.cpu ?? '4', memory: options.memory ?? '8Gi', pods: options.pods ?? '110', ...options.extra };
  const ready = options.ready ?? 'True';
  return {
    metadata: { name, labels: { [HOSTNAME]: name, ...options.labels } },
    spec: { unschedulable: options.unschedulable, taints: options.taints },
    status: {
      capacity: resources,
      allocatable: options.capacityOnly === true ? undefined : resources,
      conditions: ready === 'missing' ? [] : [{ type: 'Ready', status: ready }],
    },
  };
}

interface PodOptions {
  namespace?: string;
  cpu?: string;
  memory?: string;
  labels?: Record<string, string>;
  owner?: string;
  nodeName?: string;
  spec?: core.PodSpec;
  phase?: string;
}

function pod(name: string, options: PodOptions = {}): core.Pod {
  const requests: Record<string, string> = {};
  if (options.cpu !== undefined) requests['cpu'] = options.cpu;
  if (options.memory !== undefined) requests['memory'] = options.memory;
  return {
    metadata: {
      name,
      namespace: options.namespace ?? 'default',
      labels: options.labels,
      ownerReferences: options.owner === undefined ? undefined : [{ kind: 'ReplicaSet', name: options.owner, uid: `uid-${options.owner}`, controller: true }],
    },
    spec: { containers: [{ name: 'main', image: 'nginx', resources: { requests } }], nodeName: options.nodeName, ...options.spec },
    status: options.phase === undefined ? undefined : { phase: options.phase },
  };
}

const filter = (name: FilterName, incoming: core.Pod, snapshot: ClusterSnapshot, nodeName: string): string => {
  const result = runFilter(name, incoming, snapshot, nodeName);
  return result.ok ? 'ok' : result.reasons.join(' | ');
};

const antiAffinity = (key: string, app: string, topologyKey: string): core.Affinity => ({
  podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { [key]: app } }, topologyKey }] },
});

describe('scheduler plugins', () => {
  describe('filters', () => {
    it('NodeUnschedulable rejects a cordoned node unless the pod tolerates node.kubernetes.io/unschedulable', () => {
      const snapshot = buildSnapshot([node('a', { unschedulable: true }), node('b')], []);
      expect(filter('NodeUnschedulable', pod('p'), snapshot, 'a')).to.equal('node(s) were unschedulable');
      expect(filter('NodeUnschedulable', pod('p'), snapshot, 'b')).to.equal('ok');
      const tolerant = pod('t', { spec: { tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] } });
      expect(filter('NodeUnschedulable', tolerant, snapshot, 'a')).to.equal('ok');
    });

    it('NodeReady wants the Ready condition True', () => {
      const snapshot = buildSnapshot([node('up'), node('down', { ready: 'False' }), node('unknown', { ready: 'Unknown' }), node('silent', { ready: 'missing' })], []);
      expect(filter('NodeReady', pod('p'), snapshot, 'up')).to.equal('ok');
      for (const name of ['down', 'unknown', 'silent']) expect(filter('NodeReady', pod('p'), snapshot, name), name).to.equal('node(s) were not ready');
      const tolerant = pod('t', { spec: { tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists' }] } });
      expect(filter('NodeReady', tolerant, snapshot, 'down')).to.equal('ok');
    });

    it('NodeResourcesFit compares requests with allocatable minus what the node already runs', () => {
      const snapshot = buildSnapshot([node('n', { cpu: '2', memory: '4Gi', pods: '3' })], [pod('old', { cpu: '1500m', memory: '3Gi', nodeName: 'n' })]);
      expect(filter('NodeResourcesFit', pod('fits', { cpu: '500m', memory: '1Gi' }), snapshot, 'n')).to.equal('ok');
      expect(filter('NodeResourcesFit', pod('cpu', { cpu: '501m' }), snapshot, 'n')).to.equal('Insufficient cpu');
      expect(filter('NodeResourcesFit', pod('mem', { memory: '1025Mi' }), snapshot, 'n')).to.equal('Insufficient memory');
      expect(filter('NodeResourcesFit', pod('both', { cpu: '1', memory: '2Gi' }), snapshot, 'n')).to.equal('Insufficient cpu | Insufficient memory');
      expect(filter('NodeResourcesFit', pod('none'), snapshot, 'n')).to.equal('ok');
    });

    it('NodeResourcesFit counts pods against allocatable pods', () => {
      const snapshot = buildSnapshot([node('n', { pods: '2' })], [pod('a', { nodeName: 'n' }), pod('b', { nodeName: 'n' })]);
      expect(filter('NodeResourcesFit', pod('c'), snapshot, 'n')).to.equal('Too many pods');
      expect(filter('NodeResourcesFit', pod('c', { cpu: '5' }), snapshot, 'n')).to.equal('Too many pods | Insufficient cpu');
    });

    it('NodeResourcesFit computes pod requests as Kubernetes does: containers summed, init containers as a maximum, limits as default requests', () => {
      const snapshot = buildSnapshot([node('n', { cpu: '2', memory: '1Gi', extra: { 'nvidia.com/gpu': '1' } })], []);
      const twoContainers: core.PodSpec = {
        containers: [{ name: 'a', resources: { requests: { cpu: '1' } } }, { name: 'b', resources: { requests: { cpu: '1001m' } } }],
      };
      expect(filter('NodeResourcesFit', pod('sum', { spec: twoContainers }), snapshot, 'n')).to.equal('Insufficient cpu');
      const bigInit: core.PodSpec = { initContainers: [{ name: 'init', resources: { requests: { memory: '2Gi' } } }], containers: [{ name: 'a', resources: { requests: { memory: '1Mi' } } }] };
      expect(filter('NodeResourcesFit', pod('init', { spec: bigInit }), snapshot, 'n')).to.equal('Insufficient memory');
      const smallInit: core.PodSpec = { initContainers: [{ name: 'init', resources: { requests: { cpu: '2' } } }], containers: [{ name: 'a', resources: { requests: { cpu: '2' } } }] };
      expect(filter('NodeResourcesFit', pod('init-max', { spec: smallInit }), snapshot, 'n')).to.equal('ok');
      const limitsOnly: core.PodSpec = { containers: [{ name: 'a', resources: { limits: { cpu: '3' } } }] };
      expect(filter('NodeResourcesFit', pod('limits', { spec: limitsOnly }), snapshot, 'n')).to.equal('Insufficient cpu');
      const gpus: core.PodSpec = { containers: [{ name: 'a', resources: { requests: { 'nvidia.com/gpu': '2' } } }] };
      expect(filter('NodeResourcesFit', pod('gpu', { spec: gpus }), snapshot, 'n')).to.equal('Insufficient nvidia.com/gpu');
    });

    it('NodeResourcesFit falls back to status.capacity without status.allocatable', () => {
      const snapshot = buildSnapshot([node('n', { cpu: '1', capacityOnly: true })], []);
      expect(filter('NodeResourcesFit', pod('ok', { cpu: '1' }), snapshot, 'n')).to.equal('ok');
      expect(filter('NodeResourcesFit', pod('big', { cpu: '1001m' }), snapshot, 'n')).to.equal('Insufficient cpu');
    });

    it('NodePorts rejects a host port already bound with the same protocol on an overlapping address', () => {
      const portPod = (name: string, ports: core.ContainerPort[], nodeName?: string): core.Pod => pod(name, { nodeName, spec: { containers: [{ name: 'c', ports }] } });
      const snapshot = buildSnapshot([node('n')], [portPod('web', [{ containerPort: 80, hostPort: 8080, protocol: 'TCP' }, { containerPort: 53, hostPort: 53, hostIP: '10.0.0.1', protocol: 'UDP' }], 'n')]);
      const reason = "node(s) didn't have free ports for the requested pod ports";
      expect(filter('NodePorts', portPod('same', [{ containerPort: 80, hostPort: 8080 }]), snapshot, 'n')).to.equal(reason);
      expect(filter('NodePorts', portPod('udp', [{ containerPort: 80, hostPort: 8080, protocol: 'UDP' }]), snapshot, 'n')).to.equal('ok');
      expect(filter('NodePorts', portPod('other', [{ containerPort: 80, hostPort: 8081 }]), snapshot, 'n')).to.equal('ok');
      expect(filter('NodePorts', portPod('ip', [{ containerPort: 80, hostPort: 8080, hostIP: '10.0.0.2' }]), snapshot, 'n')).to.equal(reason);
      expect(filter('NodePorts', portPod('dns-other-ip', [{ containerPort: 53, hostPort: 53, hostIP: '10.0.0.2', protocol: 'UDP' }]), snapshot, 'n')).to.equal('ok');
      expect(filter('NodePorts', portPod('dns-same-ip', [{ containerPort: 53, hostPort: 53, hostIP: '10.0.0.1', protocol: 'UDP' }]), snapshot, 'n')).to.equal(reason);
      expect(filter('NodePorts', portPod('dns-all', [{ containerPort: 53, hostPort: 53, protocol: 'UDP' }]), snapshot, 'n')).to.equal(reason);
      expect(filter('NodePorts', portPod('hostnet', [{ containerPort: 8080 }]), snapshot, 'n')).to.equal('ok');
      const hostNetwork = pod('hostnet', { spec: { hostNetwork: true, containers: [{ name: 'c', ports: [{ containerPort: 8080 }] }] } });
      expect(filter('NodePorts', hostNetwork, snapshot, 'n')).to.equal(reason);
    });

    describe('NodeAffinity', () => {
      const reason = "node(s) didn't match Pod's node affinity/selector";
      const snapshot = buildSnapshot(
        [node('ssd', { labels: { disk: 'ssd', cores: '16', zone: 'a' } }), node('hdd', { labels: { disk: 'hdd', cores: '4' } }), node('bare')],
        [],
      );
      const required = (...nodeSelectorTerms: core.NodeSelectorTerm[]): core.Pod =>
        pod('p', { spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } } } } });
      const verdicts = (incoming: core.Pod): string[] => ['ssd', 'hdd', 'bare'].map((name) => (filter('NodeAffinity', incoming, snapshot, name) === 'ok' ? name : '-'));

      it('spec.nodeSelector needs every label equal', () => {
        expect(verdicts(pod('p', { spec: { nodeSelector: { disk: 'ssd' } } }))).to.deep.equal(['ssd', '-', '-']);
        expect(verdicts(pod('p', { spec: { nodeSelector: { disk: 'ssd', cores: '4' } } }))).to.deep.equal(['-', '-', '-']);
        expect(filter('NodeAffinity', pod('p', { spec: { nodeSelector: { disk: 'ssd' } } }), snapshot, 'hdd')).to.equal(reason);
      });

      it('matchExpressions: In, NotIn, Exists, DoesNotExist, Gt, Lt', () => {
        expect(verdicts(required({ matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd', 'nvme'] }] }))).to.deep.equal(['ssd', '-', '-']);
        expect(verdicts(required({ matchExpressions: [{ key: 'disk', operator: 'NotIn', values: ['ssd'] }] }))).to.deep.equal(['-', 'hdd', 'bare']);
        expect(verdicts(required({ matchExpressions: [{ key: 'disk', operator: 'Exists' }] }))).to.deep.equal(['ssd', 'hdd', '-']);
        expect(verdicts(required({ matchExpressions: [{ key: 'disk', operator: 'DoesNotExist' }] }))).to.deep.equal(['-', '-', 'bare']);
        expect(verdicts(required({ matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['8'] }] }))).to.deep.equal(['ssd', '-', '-']);
        expect(verdicts(required({ matchExpressions: [{ key: 'cores', operator: 'Lt', values: ['8'] }] }))).to.deep.equal(['-', 'hdd', '-']);
        expect(verdicts(required({ matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['x'] }] }))).to.deep.equal(['-', '-', '-']);
      });

      it('terms are ORed, requirements within a term ANDed; matchFields reads metadata.name; an empty term matches nothing', () => {
        const both = { matchExpressions: [{ key: 'disk', operator: 'Exists' }, { key: 'zone', operator: 'In', values: ['a'] }] };
        expect(verdicts(required(both))).to.deep.equal(['ssd', '-', '-']);
        expect(verdicts(required({ matchExpressions: [{ key: 'disk', operator: 'In', values: ['hdd'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['bare'] }] }))).to.deep.equal(['-', 'hdd', 'bare']);
        expect(verdicts(required({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['bare'] }] }))).to.deep.equal(['ssd', 'hdd', '-']);
        expect(verdicts(required({}))).to.deep.equal(['-', '-', '-']);
        expect(verdicts(required())).to.deep.equal(['-', '-', '-']);
        expect(verdicts(pod('free'))).to.deep.equal(['ssd', 'hdd', 'bare']);
      });
    });

    describe('TaintToleration', () => {
      const snapshot = buildSnapshot(
        [
          node('not-ready', { taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }] }),
          node('gpu', { taints: [{ key: 'soft', value: 'x', effect: 'PreferNoSchedule' }, { key: 'dedicated', value: 'gpu', effect: 'NoExecute' }] }),
          node('soft', { taints: [{ key: 'soft', value: 'x', effect: 'PreferNoSchedule' }] }),
        ],
        [],
      );
      const tolerating = (...tolerations: core.Toleration[]): core.Pod => pod('p', { spec: { tolerations } });

      it('names the first untolerated NoSchedule/NoExecute taint in Kubernetes 1.27 wording', () => {
        expect(filter('TaintToleration', pod('p'), snapshot, 'not-ready')).to.equal('node(s) had untolerated taint {node.kubernetes.io/not-ready: }');
        expect(filter('TaintToleration', pod('p'), snapshot, 'gpu')).to.equal('node(s) had untolerated taint {dedicated: gpu}');
        expect(filter('TaintToleration', pod('p'), snapshot, 'soft')).to.equal('ok');
      });

      it('matches tolerations by key, operator, value and effect', () => {
        expect(filter('TaintToleration', tolerating({ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoExecute' }), snapshot, 'gpu')).to.equal('ok');
        expect(filter('TaintToleration', tolerating({ key: 'dedicated', value: 'gpu' }), snapshot, 'gpu')).to.equal('ok');
        expect(filter('TaintToleration', tolerating({ key: 'dedicated', operator: 'Exists' }), snapshot, 'gpu')).to.equal('ok');
        expect(filter('TaintToleration', tolerating({ operator: 'Exists' }), snapshot, 'gpu')).to.equal('ok');
        expect(filter('TaintToleration', tolerating({ key: 'dedicated', value: 'cpu' }), snapshot, 'gpu')).to.equal('node(s) had untolerated taint {dedicated: gpu}');
        expect(filter('TaintToleration', tolerating({ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }), snapshot, 'gpu')).to.equal('node(s) had untolerated taint {dedicated: gpu}');
        expect(filter('TaintToleration', tolerating({ key: 'other', operator: 'Exists' }), snapshot, 'not-ready')).to.equal('node(s) had untolerated taint {node.kubernetes.io/not-ready: }');
      });
    });

    describe('VolumeBinding', () => {
      const hostAffinity = (...hosts: string[]): core.VolumeNodeAffinity => ({ required: { nodeSelectorTerms: [{ matchExpressions: [{ key: HOSTNAME, operator: 'In', values: hosts }] }] } });
      const localVolume = (name: string, nodeAffinity?: core.VolumeNodeAffinity): core.PersistentVolume => ({ metadata: { name }, spec: { capacity: { storage: '1Gi' }, local: { path: `/mnt/${name}` }, nodeAffinity } });
      const claim = (name: string, volumeName?: string, extra: { deleting?: boolean; annotated?: boolean } = {}): core.PersistentVolumeClaim => ({
        metadata: { name, namespace: 'default', ...(extra.deleting ? { deletionTimestamp: '2026-11-25T12:00:00Z' } : {}), ...(extra.annotated === false ? {} : volumeName === undefined ? {} : { annotations: { 'pv.kubernetes.io/bind-completed': 'yes' } }) },
        spec: { volumeName },
        status: { phase: volumeName === undefined || extra.annotated === false ? 'Pending' : 'Bound' },
      });
      const using = (...claimNames: string[]): core.Pod => pod('p', { spec: { containers: [{ name: 'c' }], volumes: [{ name: 'scratch', emptyDir: {} }, ...claimNames.map((claimName, index) => ({ name: `v${index}`, persistentVolumeClaim: { claimName } }))] } });
      const nodes = [node('n1'), node('n2', { labels: { disk: 'ssd' } }), node('n3')];
      const snapshot = buildSnapshot(nodes, [], {
        claims: [claim('on-n1', 'pv-n1'), claim('on-n2', 'pv-n2'), claim('anywhere', 'pv-free'), claim('pending'), claim('named-only', 'pv-n1', { annotated: false }), claim('going', 'pv-n1', { deleting: true }), claim('dangling', 'pv-gone'), claim('two-nodes', 'pv-n1-n2')],
        volumes: [localVolume('pv-n1', hostAffinity('n1')), localVolume('pv-n2', { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] }] } }), localVolume('pv-free'), localVolume('pv-n1-n2', hostAffinity('n1', 'n2'))],
      });
      const verdicts = (incoming: core.Pod): string[] => ['n1', 'n2', 'n3'].map((name) => filter('VolumeBinding', incoming, snapshot, name));
      const conflict = 'node(s) had volume node affinity conflict';

      it("keeps a pod with a bound local volume to the nodes the volume's node affinity names", () => {
        expect(verdicts(using('on-n1'))).to.deep.equal(['ok', conflict, conflict]);
        expect(verdicts(using('on-n2'))).to.deep.equal([conflict, 'ok', conflict]);
        expect(verdicts(using('two-nodes'))).to.deep.equal(['ok', 'ok', conflict]);
        expect(verdicts(using('two-nodes', 'on-n2'))).to.deep.equal([conflict, 'ok', conflict]);
        expect(verdicts(using('on-n1', 'on-n2'))).to.deep.equal([conflict, conflict, conflict]);
        expect(verdicts(using('anywhere'))).to.deep.equal(['ok', 'ok', 'ok']);
        expect(verdicts(pod('no-claims'))).to.deep.equal(['ok', 'ok', 'ok']);
      });

      it('rejects every node, with Kubernetes\' messages, for a missing, deleted or unbound claim, or a missing volume', () => {
        expect(verdicts(using('nope'))).to.deep.equal(Array(3).fill('persistentvolumeclaim "nope" not found'));
        expect(verdicts(using('going'))).to.deep.equal(Array(3).fill('persistentvolumeclaim "going" is being deleted'));
        expect(verdicts(using('pending'))).to.deep.equal(Array(3).fill('pod has unbound immediate PersistentVolumeClaims'));
        expect(verdicts(using('named-only'))).to.deep.equal(Array(3).fill('pod has unbound immediate PersistentVolumeClaims'));
        expect(verdicts(using('dangling'))).to.deep.equal(Array(3).fill('persistentvolume "pv-gone" not found'));
        // A missing claim is told before an unbound one, as Kubernetes' PreFilter does.
        expect(verdicts(using('pending', 'nope'))[0]).to.equal('persistentvolumeclaim "nope" not found');
        // Claims are looked up in the pod's own namespace.
        expect(filter('VolumeBinding', { ...using('on-n1'), metadata: { name: 'p', namespace: 'other' } }, snapshot, 'n1')).to.equal('persistentvolumeclaim "on-n1" not found');
      });

      it('says why in the summary without filtering any node, and places the pod on its volume\'s node', () => {
        expect(schedule(using('pending'), snapshot).reason).to.equal('0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.');
        expect(schedule(using('nope'), snapshot).reason).to.equal('0/3 nodes are available: persistentvolumeclaim "nope" not found.');
        expect(schedule(using('on-n1', 'on-n2'), snapshot).reason).to.equal('0/3 nodes are available: 3 node(s) had volume node affinity conflict.');
        expect(schedule(using('on-n2'), snapshot).node).to.equal('n2');
        expect(schedule(using('on-n1'), snapshot).node).to.equal('n1');
      });
    });
  });

  describe('InterPodAffinity', () => {
    const zones = [node('a1', { labels: { [ZONE]: 'a' } }), node('a2', { labels: { [ZONE]: 'a' } }), node('b1', { labels: { [ZONE]: 'b' } })];
    const replica = (name: string, topologyKey: string, nodeName?: string): core.Pod =>
      pod(name, { labels: { app: 'web' }, owner: 'web', nodeName, spec: { affinity: antiAffinity('app', 'web', topologyKey) } });

    it('required anti-affinity by hostname keeps replicas on different nodes', () => {
      const snapshot = buildSnapshot(zones, []);
      const placed: string[] = [];
      for (const name of ['web-1', 'web-2', 'web-3']) {
        const incoming = replica(name, HOSTNAME);
        const result = schedule(incoming, snapshot);
        expect(result.node, name).to.be.a('string');
        placed.push(result.node ?? '');
        assume(snapshot, incoming, result.node ?? '');
      }
      expect([...placed].sort()).to.deep.equal(['a1', 'a2', 'b1']);
      expect(schedule(replica('web-4', HOSTNAME), snapshot).reason).to.equal("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.");
    });

    it('required anti-affinity by zone keeps replicas in different zones', () => {
      const snapshot = buildSnapshot(zones, [replica('web-1', ZONE, 'a1')]);
      expect(filter('InterPodAffinity', replica('web-2', ZONE), snapshot, 'a2')).to.equal("node(s) didn't match pod anti-affinity rules");
      expect(schedule(replica('web-2', ZONE), snapshot).node).to.equal('b1');
    });

    it("existing pods' anti-affinity keeps the incoming pod away too (symmetry)", () => {
      const loner = pod('loner', { labels: { app: 'loner' }, nodeName: 'a1', spec: { affinity: antiAffinity('app', 'web', ZONE) } });
      const snapshot = buildSnapshot(zones, [loner]);
      const web = pod('web', { labels: { app: 'web' } });
      expect(filter('InterPodAffinity', web, snapshot, 'a1')).to.equal("node(s) didn't satisfy existing pods anti-affinity rules");
      expect(filter('InterPodAffinity', web, snapshot, 'a2')).to.equal("node(s) didn't satisfy existing pods anti-affinity rules");
      expect(filter('InterPodAffinity', web, snapshot, 'b1')).to.equal('ok');
      expect(filter('InterPodAffinity', pod('other', { labels: { app: 'other' } }), snapshot, 'a1')).to.equal('ok');
    });

    it('required affinity needs a matching pod in the same domain, except for the first of a group', () => {
      const cacheAffinity: core.Affinity = { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'db' } }, topologyKey: ZONE }] } };
      const withDb = buildSnapshot(zones, [pod('db', { labels: { app: 'db' }, nodeName: 'a1' })]);
      const cache = pod('cache', { labels: { app: 'cache' }, spec: { affinity: cacheAffinity } });
      expect(filter('InterPodAffinity', cache, withDb, 'a2')).to.equal('ok');
      expect(filter('InterPodAffinity', cache, withDb, 'b1')).to.equal("node(s) didn't match pod affinity rules");
      const empty = buildSnapshot(zones, []);
      expect(filter('InterPodAffinity', cache, empty, 'a1')).to.equal("node(s) didn't match pod affinity rules");
      const firstDb = pod('db-0', { labels: { app: 'db' }, spec: { affinity: cacheAffinity } });
      expect(filter('InterPodAffinity', firstDb, empty, 'b1')).to.equal('ok');
    });

    it("a term looks in the pod's own namespace unless it lists others", () => {
      const snapshot = buildSnapshot(zones, [pod('db', { namespace: 'other', labels: { app: 'db' }, nodeName: 'a1' })]);
      const term = { labelSelector: { matchLabels: { app: 'db' } }, topologyKey: HOSTNAME };
      const here = pod('p', { spec: { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } } } });
      const there = pod('p', { spec: { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ ...term, namespaces: ['other'] }] } } } });
      const everywhere = pod('p', { spec: { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ ...term, namespaceSelector: {} }] } } } });
      expect(filter('InterPodAffinity', here, snapshot, 'a1')).to.equal('ok');
      expect(filter('InterPodAffinity', there, snapshot, 'a1')).to.equal("node(s) didn't match pod anti-affinity rules");
      expect(filter('InterPodAffinity', everywhere, snapshot, 'a1')).to.equal("node(s) didn't match pod anti-affinity rules");
      const teams = (team: string): core.Pod =>
        pod('p', { spec: { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ ...term, namespaceSelector: { matchLabels: { team } } }] } } } });
      const labelled = buildSnapshot(zones, [pod('db', { namespace: 'other', labels: { app: 'db' }, nodeName: 'a1' })], { namespaces: [{ metadata: { name: 'other', labels: { team: 'red' } } }] });
      expect(filter('InterPodAffinity', teams('red'), labelled, 'a1')).to.equal("node(s) didn't match pod anti-affinity rules");
      expect(filter('InterPodAffinity', teams('blue'), labelled, 'a1')).to.equal('ok');
    });
  });

  describe('scores', () => {
    it('LeastAllocated prefers the emptier node', () => {
      const snapshot = buildSnapshot([node('busy'), node('idle')], [pod('old', { cpu: '3', memory: '6Gi', nodeName: 'busy' })]);
      const scores = scoreNodes('NodeResourcesLeastAllocated', pod('p', { cpu: '1', memory: '2Gi' }), snapshot);
      expect(scores.get('busy')).to.equal(0);
      expect(scores.get('idle')).to.equal(75);
    });

    it('LeastAllocated counts 100m and 200Mi for a container that requests nothing', () => {
      const snapshot = buildSnapshot([node('n', { cpu: '1', memory: '1000Mi' })], []);
      expect(scoreNodes('NodeResourcesLeastAllocated', pod('best-effort'), snapshot).get('n')).to.equal(85);
    });

    it('BalancedAllocation prefers the node whose cpu and memory use stay balanced', () => {
      const snapshot = buildSnapshot([node('cpu-heavy'), node('even')], [pod('c', { cpu: '3', nodeName: 'cpu-heavy' }), pod('e', { cpu: '1', memory: '2Gi', nodeName: 'even' })]);
      const scores = scoreNodes('NodeResourcesBalancedAllocation', pod('p', { cpu: '1', memory: '2Gi' }), snapshot);
      expect(scores.get('even')).to.equal(100);
      expect(scores.get('cpu-heavy')).to.equal(62);
    });

    it('spreading prefers the node without a replica of the same owner, and the emptier zone', () => {
      const zoned = [node('a1', { labels: { [ZONE]: 'a' } }), node('a2', { labels: { [ZONE]: 'a' } }), node('b1', { labels: { [ZONE]: 'b' } })];
      const snapshot = buildSnapshot(zoned, [pod('web-1', { owner: 'web', labels: { app: 'web' }, nodeName: 'a1' }), pod('x', { owner: 'other', nodeName: 'b1' })]);
      const scores = scoreNodes('PodTopologySpread', pod('web-2', { owner: 'web', labels: { app: 'web' } }), snapshot);
      expect(scores.get('a1')).to.equal(0);
      expect(scores.get('a2')).to.equal(33);
      expect(scores.get('b1')).to.equal(100);
      expect(schedule(pod('web-2', { owner: 'web' }), snapshot).node).to.equal('b1');
    });

    it('spreading falls back to equal labels without an owner, and skips pods with neither', () => {
      const snapshot = buildSnapshot([node('a'), node('b')], [pod('x', { labels: { app: 'x' }, nodeName: 'a' })]);
      const scores = scoreNodes('PodTopologySpread', pod('y', { labels: { app: 'x' } }), snapshot);
      expect([scores.get('a'), scores.get('b')]).to.deep.equal([0, 100]);
      expect(scoreNodes('PodTopologySpread', pod('z'), snapshot).size).to.equal(0);
    });

    it('NodeAffinity sums the weights of matching preferred terms, normalized to 100', () => {
      const snapshot = buildSnapshot([node('ssd', { labels: { disk: 'ssd' } }), node('fast', { labels: { disk: 'ssd', net: 'fast' } }), node('plain')], []);
      const preferred: core.PreferredSchedulingTerm[] = [
        { weight: 20, preference: { matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] } },
        { weight: 60, preference: { matchExpressions: [{ key: 'net', operator: 'Exists' }] } },
      ];
      const incoming = pod('p', { spec: { affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: preferred } } } });
      const scores = scoreNodes('NodeAffinity', incoming, snapshot);
      expect(Object.fromEntries(scores)).to.deep.equal({ ssd: 25, fast: 100, plain: 0 });
      expect(schedule(incoming, snapshot).node).to.equal('fast');
    });

    it('InterPodAffinity adds preferred affinity weights and subtracts anti-affinity ones', () => {
      const snapshot = buildSnapshot([node('a'), node('b'), node('c')], [pod('db', { labels: { app: 'db' }, nodeName: 'a' }), pod('noisy', { labels: { app: 'noisy' }, nodeName: 'b' })]);
      const term = (app: string, weight: number): core.WeightedPodAffinityTerm => ({ weight, podAffinityTerm: { labelSelector: { matchLabels: { app } }, topologyKey: HOSTNAME } });
      const incoming = pod('p', { spec: { affinity: { podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [term('db', 10)] }, podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [term('noisy', 30)] } } } });
      expect(Object.fromEntries(scoreNodes('InterPodAffinity', incoming, snapshot))).to.deep.equal({ a: 100, b: 0, c: 75 });
    });

    it("InterPodAffinity scores existing pods' preferences towards the incoming pod", () => {
      const fan = pod('fan', { nodeName: 'b', spec: { affinity: { podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 50, podAffinityTerm: { labelSelector: { matchLabels: { app: 'star' } }, topologyKey: HOSTNAME } }] } } } });
      const snapshot = buildSnapshot([node('a'), node('b')], [fan]);
      expect(Object.fromEntries(scoreNodes('InterPodAffinity', pod('star', { labels: { app: 'star' } }), snapshot))).to.deep.equal({ a: 0, b: 100 });
    });

    it('TaintToleration prefers nodes with fewer untolerated PreferNoSchedule taints', () => {
      const soft = { key: 'spot', value: 'true', effect: 'PreferNoSchedule' };
      const snapshot = buildSnapshot([node('spot', { taints: [soft] }), node('plain')], []);
      expect(Object.fromEntries(scoreNodes('TaintToleration', pod('p'), snapshot))).to.deep.equal({ spot: 0, plain: 100 });
      expect(schedule(pod('p'), snapshot).node).to.equal('plain');
    });
  });

  describe('schedule', () => {
    it('picks the smallest name among equal nodes, or what the injected tieBreak picks', () => {
      const snapshot = buildSnapshot([node('c'), node('a'), node('b')], []);
      expect(schedule(pod('p', { cpu: '1' }), snapshot).node).to.equal('a');
      let offered: readonly string[] = [];
      const last = (candidates: readonly string[]): string => {
        offered = candidates;
        return candidates[candidates.length - 1] ?? '';
      };
      expect(schedule(pod('p', { cpu: '1' }), snapshot, { tieBreak: last }).node).to.equal('c');
      expect(offered).to.deep.equal(['a', 'b', 'c']);
      expect(() => schedule(pod('p'), snapshot, { tieBreak: () => 'nowhere' })).to.throw(/tieBreak/);
    });

    it('finds as many feasible nodes as kube-scheduler does for a cluster of each size', () => {
      // Adaptive: 50% less 1% per 125 nodes, at least 5%, and at least 100 nodes.
      expect([50, 99, 100, 200, 300, 1000, 5000, 10000].map((count) => numFeasibleNodesToFind(count))).to.deep.equal([50, 99, 100, 100, 144, 420, 500, 500]);
      expect(numFeasibleNodesToFind(1000, 100)).to.equal(1000);
      expect(numFeasibleNodesToFind(1000, 30)).to.equal(300);
      expect(numFeasibleNodesToFind(1000, 1)).to.equal(100);
    });

    it('in a large cluster, stops filtering once enough nodes fit and starts the next pod where it stopped', () => {
      const names = Array.from({ length: 300 }, (_, index) => `n${String(index).padStart(3, '0')}`);
      const snapshot = buildSnapshot(names.map((name) => node(name)), []);
      const first = schedule(pod('p1'), snapshot, { withScores: true });
      expect(first.scores?.size).to.equal(144);
      expect(first.nextStartIndex).to.equal(144);
      const second = schedule(pod('p2'), snapshot, { withScores: true, startIndex: first.nextStartIndex });
      expect([...(second.scores?.keys() ?? [])].sort()[0]).to.equal('n144');
      expect(second.nextStartIndex).to.equal(288);
      const wrapped = schedule(pod('p3'), snapshot, { withScores: true, startIndex: second.nextStartIndex });
      expect(wrapped.scores?.has('n299') && wrapped.scores.has('n000')).to.equal(true);
      expect(wrapped.nextStartIndex).to.equal((288 + 144) % 300);
      // Every node looked at when none fits: the summary counts them all.
      expect(schedule(pod('big', { cpu: '64' }), snapshot, { startIndex: 17 }).reason).to.equal('0/300 nodes are available: 300 Insufficient cpu.');
      expect(schedule(pod('p4'), snapshot, { withScores: true, percentageOfNodesToScore: 100 }).scores?.size).to.equal(300);
    });

    it('gives the exact Kubernetes summary when no node fits', () => {
      const hdd = { disk: 'hdd' };
      const snapshot = buildSnapshot([node('n1', { cpu: '1', labels: hdd }), node('n2', { cpu: '1', labels: hdd }), node('n3')], []);
      const result = schedule(pod('p', { cpu: '2', spec: { nodeSelector: hdd } }), snapshot);
      expect(result.node).to.equal(undefined);
      expect(result.reason).to.equal("0/3 nodes are available: 2 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector.");
      const flipped = buildSnapshot([node('n1', { cpu: '1' }), node('n2', { cpu: '1' }), node('n3', { cpu: '1', labels: hdd })], []);
      expect(schedule(pod('p', { cpu: '2', spec: { nodeSelector: hdd } }), flipped).reason).to.equal(
        "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 Insufficient cpu.",
      );
      const big = schedule(pod('big', { cpu: '8' }), buildSnapshot([node('n1', { cpu: '1' }), node('n2', { cpu: '1' }), node('n3', { unschedulable: true })], []));
      expect(big.reason).to.equal('0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable.');
      expect(big.filtered).to.deep.equal(new Map([['n1', 'Insufficient cpu'], ['n2', 'Insufficient cpu'], ['n3', 'node(s) were unschedulable']]));
    });

    it('counts each of a node\'s reasons, and the first failing filter alone decides a node', () => {
      const snapshot = buildSnapshot([node('n1', { cpu: '1', memory: '1Gi' }), node('n2', { cpu: '1', memory: '1Gi', taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] })], []);
      const result = schedule(pod('p', { cpu: '2', memory: '2Gi' }), snapshot);
      expect(result.reason).to.equal('0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) had untolerated taint {k: v}.');
      expect(result.filtered?.get('n1')).to.equal('Insufficient cpu, Insufficient memory');
    });

    it('says 0/0 when there are no nodes', () => {
      expect(schedule(pod('p'), buildSnapshot([], [])).reason).to.equal('0/0 nodes are available.');
      expect(unschedulableMessage(0, new Map())).to.equal('0/0 nodes are available.');
    });

    it('honours weights: spreading (weight 2) outweighs the resource scores unless turned off', () => {
      const snapshot = buildSnapshot([node('busy'), node('idle')], [pod('hog', { cpu: '3', memory: '6Gi', nodeName: 'busy', owner: 'other' }), pod('web-1', { cpu: '100m', memory: '100Mi', nodeName: 'idle', owner: 'web' })]);
      const incoming = pod('web-2', { cpu: '100m', memory: '100Mi', owner: 'web' });
      const result = schedule(incoming, snapshot, { withScores: true });
      expect(result.node).to.equal('busy');
      expect(Object.fromEntries(result.scores ?? [])).to.deep.equal({ busy: 22 + 99 + 2 * 100, idle: 96 + 98 + 2 * 0 });
      expect(schedule(incoming, snapshot, { weights: { PodTopologySpread: 0 } }).node).to.equal('idle');
      expect(schedule(pod('solo', { cpu: '100m' }), snapshot).node).to.equal('idle');
      expect(schedule(pod('solo', { cpu: '100m' }), snapshot, { weights: { NodeResourcesLeastAllocated: 0, NodeResourcesBalancedAllocation: 0 } }).node).to.equal('busy');
    });
  });

  describe('snapshot', () => {
    it('assume() makes the next pod see the requests; forget() undoes it', () => {
      const snapshot = buildSnapshot([node('a', { cpu: '2' }), node('b', { cpu: '2' })], []);
      const first = pod('first', { cpu: '1500m' });
      expect(schedule(first, snapshot).node).to.equal('a');
      expect(assume(snapshot, first, 'a')).to.equal(true);
      expect(snapshot.byName.get('a')?.requested.cpuMillis).to.equal(1500);
      expect(assume(snapshot, first, 'a'), 'twice').to.equal(false);
      expect(snapshot.byName.get('a')?.requested.cpuMillis).to.equal(1500);
      expect(schedule(pod('second', { cpu: '1500m' }), snapshot).node).to.equal('b');
      expect(schedule(pod('small', { cpu: '100m' }), snapshot).node).to.equal('b');
      assume(snapshot, pod('second', { cpu: '1500m' }), 'b');
      expect(schedule(pod('third', { cpu: '1' }), snapshot).reason).to.equal('0/2 nodes are available: 2 Insufficient cpu.');
      expect(forget(snapshot, first, 'a')).to.equal(true);
      expect(snapshot.byName.get('a')?.requested.cpuMillis).to.equal(0);
      expect(schedule(pod('third', { cpu: '1' }), snapshot).node).to.equal('a');
      expect(forget(snapshot, first, 'a')).to.equal(false);
      expect(assume(snapshot, first, 'nowhere')).to.equal(false);
    });

    it('assume() records host ports, workloads and anti-affinity for the next pod', () => {
      const snapshot = buildSnapshot([node('a'), node('b')], []);
      const web = (name: string): core.Pod => pod(name, { owner: 'web', spec: { containers: [{ name: 'c', ports: [{ containerPort: 80, hostPort: 80 }] }] } });
      assume(snapshot, web('web-1'), 'a');
      expect(filter('NodePorts', web('web-2'), snapshot, 'a')).to.equal("node(s) didn't have free ports for the requested pod ports");
      expect(snapshot.byName.get('a')?.workloads.get('owner:uid-web')).to.equal(1);
      expect([...(snapshot.workloadNodes.get('owner:uid-web') ?? new Map()).entries()].map(([info, count]) => [info.name, count])).to.deep.equal([['a', 1]]);
      forget(snapshot, web('web-1'), 'a');
      expect(snapshot.workloadNodes.has('owner:uid-web')).to.equal(false);
      assume(snapshot, web('web-1'), 'a');
      const guard = pod('guard', { labels: { app: 'guard' }, spec: { affinity: antiAffinity('app', 'guard', HOSTNAME) } });
      assume(snapshot, guard, 'b');
      expect(snapshot.podsWithRequiredAntiAffinityCount).to.equal(1);
      expect(schedule(pod('guard-2', { labels: { app: 'guard' } }), snapshot).filtered?.get('b')).to.equal("node(s) didn't satisfy existing pods anti-affinity rules");
      forget(snapshot, guard, 'b');
      expect(snapshot.podsWithRequiredAntiAffinityCount).to.equal(0);
    });

    it('leaves out finished pods, unbound pods and pods on unknown nodes', () => {
      const snapshot = buildSnapshot(
        [node('a')],
        [pod('done', { nodeName: 'a', cpu: '1', phase: 'Succeeded' }), pod('failed', { nodeName: 'a', cpu: '1', phase: 'Failed' }), pod('pending', { cpu: '1' }), pod('lost', { nodeName: 'gone', cpu: '1' }), pod('running', { nodeName: 'a', cpu: '1', phase: 'Running' })],
      );
      expect(snapshot.byName.get('a')?.pods.map((p) => p.metadata?.name)).to.deep.equal(['running']);
      expect(snapshot.byName.get('a')?.requested.cpuMillis).to.equal(1000);
    });
  });
});
