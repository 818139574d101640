// The DaemonSet controller's pure decision: which nodes get a pod, what the
// pod looks like, following nodes that join and leave, the rolling update's
// limits, and the status.

import { expect } from 'chai';
import type { DaemonSet } from '../../proto/gen/resources/v1/apps.js';
import type { Node, Pod, Taint } from '../../proto/gen/resources/v1/core.js';
import { daemonTolerations, nodeFit } from '../../services/controllers/daemonset/reconcile-node.js';
import { canonicalJson } from '../../services/controllers/common/reconcile-json.js';
import { fnv1a32, scaledValue, templateHash } from '../../services/controllers/daemonset/reconcile-pod.js';
import { planDaemonSet, type DaemonSetPlan } from '../../services/controllers/daemonset/reconcile.js';

const NOW_MS = Date.parse('2026-11-25T12:00:00Z');
const TEMPLATE = { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'c', image: 'agent:1' }] } };
const HASH = templateHash(TEMPLATE);

function daemonSet(spec: Partial<NonNullable<DaemonSet['spec']>> = {}, metadata: Record<string, unknown> = {}): DaemonSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', namespace: 'kube-system', uid: 'ds-uid', generation: 2, ...metadata },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: TEMPLATE, ...spec },
  };
}

function node(name: string, options: { labels?: Record<string, string>; taints?: Taint[] } = {}): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, ...options.labels } }, spec: { taints: options.taints ?? [] } };
}

interface PodOptions {
  readonly hash?: string;
  readonly phase?: string;
  /** Ready since; absent: not ready. */
  readonly readyAt?: string;
  readonly created?: string;
  readonly deleting?: boolean;
  readonly ownerUid?: string | null;
  readonly labels?: Record<string, string>;
}

function pod(name: string, nodeName: string | undefined, options: PodOptions = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'kube-system',
      uid: `uid-${name}`,
      resourceVersion: '7',
      labels: options.labels ?? { app: 'agent', 'controller-revision-hash': options.hash ?? HASH },
      creationTimestamp: options.created ?? '2026-11-25T11:00:00Z',
      ...(options.deleting === true ? { deletionTimestamp: '2026-11-25T11:59:00Z' } : {}),
      ...(options.ownerUid === null ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: options.ownerUid ?? 'ds-uid', controller: true }] }),
    },
    spec: { ...(nodeName === undefined ? {} : { nodeName }), containers: [{ name: 'c', image: 'agent:1' }] },
    status: { phase: options.phase ?? 'Running', conditions: options.readyAt === undefined ? [] : [{ type: 'Ready', status: 'True', lastTransitionTime: options.readyAt }] },
  };
}

const READY = '2026-11-25T11:00:00Z';
const plan = (set: DaemonSet, nodes: Node[], pods: Pod[], failedBackoffNodes?: Set<string>): DaemonSetPlan => planDaemonSet({ daemonSet: set, nodes, pods, nowMs: NOW_MS, ...(failedBackoffNodes ? { failedBackoffNodes } : {}) });
const createdOn = (result: DaemonSetPlan): string[] => result.create.map((created) => created.spec?.nodeName ?? '');
const deleted = (result: DaemonSetPlan): string[] => result.delete.map(({ pod: gone, reason }) => `${gone.metadata?.name ?? ''}:${reason}`);

const DAEMON_TOLERATIONS = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
];

describe('controllers: daemonset', function () {
  it('hashes a template whatever its key order, in the safe alphabet, and differently when it changes', function () {
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('a')).to.equal(0xe40c292c);
    expect(fnv1a32('é')).to.equal(fnv1a32('\u00e9'));
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }] })).to.equal('{"a":[{"d":2}],"b":1}');
    expect(templateHash({ spec: { containers: [{ image: 'agent:1', name: 'c' }] }, metadata: { labels: { app: 'agent' } } })).to.equal(HASH);
    expect(HASH).to.match(/^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
    expect(templateHash({ ...TEMPLATE, spec: { containers: [{ name: 'c', image: 'agent:2' }] } })).to.not.equal(HASH);
    expect(scaledValue('25%', 10, true)).to.equal(3);
    expect(scaledValue('25%', 10, false)).to.equal(2);
    expect(scaledValue(2, 10, true)).to.equal(2);
    expect(scaledValue('two', 10, true)).to.equal(undefined);
  });

  it('creates one pod per node, bound to it, with the daemon tolerations, the revision label and the owner', function () {
    const set = daemonSet({ template: { ...TEMPLATE, spec: { ...TEMPLATE.spec, tolerations: [{ key: 'dedicated', operator: 'Exists' }] } } });
    const result = plan(set, [node('n2'), node('n1')], []);
    expect(createdOn(result)).to.deep.equal(['n1', 'n2']);
    expect(result.create[0]).to.deep.equal({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: 'agent-',
        namespace: 'kube-system',
        labels: { app: 'agent', 'controller-revision-hash': result.hash },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'ds-uid', controller: true, blockOwnerDeletion: true }],
      },
      spec: { containers: [{ name: 'c', image: 'agent:1' }], nodeName: 'n1', tolerations: [{ key: 'dedicated', operator: 'Exists' }, ...DAEMON_TOLERATIONS] },
    });
    expect(result.delete).to.deep.equal([]);
    // A host-network pod tolerates network-unavailable too; a toleration already there is not repeated.
    expect(daemonTolerations({ hostNetwork: true, tolerations: [DAEMON_TOLERATIONS[0]!] })).to.deep.equal([...DAEMON_TOLERATIONS, { key: 'node.kubernetes.io/network-unavailable', operator: 'Exists', effect: 'NoSchedule' }]);
  });

  it('places pods only on nodes matching the nodeSelector and required node affinity', function () {
    const nodes = [node('n1', { labels: { disk: 'ssd', cores: '8' } }), node('n2', { labels: { disk: 'hdd', cores: '16' } }), node('n3', { labels: { disk: 'ssd', cores: '2' } })];
    const bySelector = daemonSet({ template: { ...TEMPLATE, spec: { ...TEMPLATE.spec, nodeSelector: { disk: 'ssd' } } } });
    expect(createdOn(plan(bySelector, nodes, []))).to.deep.equal(['n1', 'n3']);
    const byAffinity = daemonSet({
      template: {
        ...TEMPLATE,
        spec: {
          ...TEMPLATE.spec,
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['4'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n3'] }] }] } } },
        },
      },
    });
    expect(createdOn(plan(byAffinity, nodes, []))).to.deep.equal(['n1', 'n2', 'n3']);
    const pinned = daemonSet({ template: { ...TEMPLATE, spec: { ...TEMPLATE.spec, nodeName: 'n2' } } });
    expect(createdOn(plan(pinned, nodes, []))).to.deep.equal(['n2']);
    // A pod on a node that stopped matching goes.
    const result = plan(bySelector, nodes, [pod('agent-a', 'n1', { readyAt: READY }), pod('agent-b', 'n2', { readyAt: READY })]);
    expect(deleted(result)).to.deep.equal(['agent-b:not-eligible']);
    expect(createdOn(result)).to.deep.equal(['n3']);
  });

  it('keeps new pods off untolerated NoSchedule taints, evicts on untolerated NoExecute, and tolerates node problems', function () {
    const tolerations = daemonTolerations(TEMPLATE.spec);
    const fit = (taints: Taint[]): ReturnType<typeof nodeFit> => nodeFit(TEMPLATE.spec, tolerations, node('n', { taints }));
    expect(fit([{ key: 'gpu', value: 'true', effect: 'NoSchedule' }])).to.deep.equal({ shouldRun: false, shouldContinueRunning: true });
    expect(fit([{ key: 'gpu', value: 'true', effect: 'NoExecute' }])).to.deep.equal({ shouldRun: false, shouldContinueRunning: false });
    expect(fit([{ key: 'gpu', value: 'true', effect: 'PreferNoSchedule' }])).to.deep.equal({ shouldRun: true, shouldContinueRunning: true });
    for (const key of ['node.kubernetes.io/unschedulable', 'node.kubernetes.io/disk-pressure']) expect(fit([{ key, effect: 'NoSchedule' }]).shouldRun, key).to.equal(true);
    expect(fit([{ key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' }]).shouldRun).to.equal(true);
    expect(fit([{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }]).shouldRun).to.equal(false);
    const tolerant = { ...TEMPLATE.spec, tolerations: [{ key: 'gpu', operator: 'Equal', value: 'true', effect: 'NoSchedule' }] };
    expect(nodeFit(tolerant, daemonTolerations(tolerant), node('n', { taints: [{ key: 'gpu', value: 'true', effect: 'NoSchedule' }] })).shouldRun).to.equal(true);
    expect(nodeFit(tolerant, daemonTolerations(tolerant), node('n', { taints: [{ key: 'gpu', value: 'false', effect: 'NoSchedule' }] })).shouldRun).to.equal(false);

    const nodes = [node('n1'), node('n2', { taints: [{ key: 'gpu', value: 'true', effect: 'NoSchedule' }] }), node('n3', { taints: [{ key: 'gpu', value: 'true', effect: 'NoExecute' }] })];
    const result = plan(daemonSet(), nodes, [pod('agent-b', 'n2', { readyAt: READY }), pod('agent-c', 'n3', { readyAt: READY })]);
    expect(createdOn(result)).to.deep.equal(['n1']);
    expect(deleted(result)).to.deep.equal(['agent-c:not-eligible']);
    expect(result.status).to.deep.include({ desiredNumberScheduled: 1, currentNumberScheduled: 0, numberMisscheduled: 2 });
  });

  it('follows nodes joining and leaving, replaces failed pods (after their backoff), and removes extras', function () {
    const set = daemonSet();
    // n3 joined; n9 left (its pod is deleted without grace: no kubelet will confirm it).
    const joined = plan(set, [node('n1'), node('n3')], [pod('agent-a', 'n1', { readyAt: READY }), pod('agent-z', 'n9', { readyAt: READY })]);
    expect(createdOn(joined)).to.deep.equal(['n3']);
    expect(deleted(joined)).to.deep.equal(['agent-z:node-gone']);
    // A pod still terminating on its node: no second one until it is gone.
    expect(createdOn(plan(set, [node('n1')], [pod('agent-a', 'n1', { deleting: true })]))).to.deep.equal([]);
    // A failed pod is deleted; its replacement comes once it is gone. In backoff it waits.
    const failed = plan(set, [node('n1')], [pod('agent-a', 'n1', { phase: 'Failed' })]);
    expect(deleted(failed)).to.deep.equal(['agent-a:failed']);
    expect(createdOn(failed)).to.deep.equal([]);
    const waiting = plan(set, [node('n1')], [pod('agent-a', 'n1', { phase: 'Failed' })], new Set(['n1']));
    expect(waiting.delete).to.deep.equal([]);
    expect(waiting.backingOff).to.deep.equal(['n1']);
    // Two pods on one node: the oldest stays.
    const extras = plan(set, [node('n1')], [pod('agent-new', 'n1', { created: '2026-11-25T11:30:00Z' }), pod('agent-old', 'n1', { created: '2026-11-25T10:00:00Z' })]);
    expect(deleted(extras)).to.deep.equal(['agent-new:excess']);
    // Pods of another owner and other namespaces are not ours.
    const foreign = { ...pod('other', 'n1', { ownerUid: 'someone' }) };
    expect(createdOn(plan(set, [node('n1')], [foreign]))).to.deep.equal(['n1']);
  });

  it('adopts matching orphans, releases pods that stopped matching, and does nothing while being deleted', function () {
    const set = daemonSet();
    const result = plan(set, [node('n1'), node('n2')], [pod('orphan', 'n1', { ownerUid: null, readyAt: READY }), pod('relabelled', 'n2', { labels: { app: 'debug' } })]);
    expect(result.adopt.map((one) => one.metadata?.name)).to.deep.equal(['orphan']);
    expect(result.release.map((one) => one.metadata?.name)).to.deep.equal(['relabelled']);
    expect(createdOn(result)).to.deep.equal(['n2']);
    const deleting = plan(daemonSet({}, { deletionTimestamp: '2026-11-25T11:00:00Z' }), [node('n1')], []);
    expect(deleting.create).to.deep.equal([]);
    expect(deleting.status).to.equal(undefined);
  });

  describe('rolling update', function () {
    const NEW_TEMPLATE = { ...TEMPLATE, spec: { containers: [{ name: 'c', image: 'agent:2' }] } };
    const NEW_HASH = templateHash(NEW_TEMPLATE);
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((name) => node(name));
    const oldPods = (): Pod[] => ['n1', 'n2', 'n3', 'n4'].map((name) => pod(`agent-${name}`, name, { readyAt: READY }));

    it('deletes at most maxUnavailable (default 1) old pods, counting unavailable new ones, and replaces unavailable old pods at once', function () {
      const set = daemonSet({ template: NEW_TEMPLATE });
      expect(deleted(plan(set, nodes, oldPods()))).to.deep.equal(['agent-n1:update']);
      // n1 already has its new pod, not yet ready: that uses the one allowed.
      const progressing = [pod('agent-n1-new', 'n1', { hash: NEW_HASH }), ...oldPods().slice(1)];
      expect(deleted(plan(set, nodes, progressing))).to.deep.equal([]);
      // Ready now: the next one.
      progressing[0] = pod('agent-n1-new', 'n1', { hash: NEW_HASH, readyAt: READY });
      expect(deleted(plan(set, nodes, progressing))).to.deep.equal(['agent-n2:update']);
      // An old pod that is not available is replaced regardless of the limit.
      const broken = oldPods();
      broken[3] = pod('agent-n4', 'n4');
      // (As in Kubernetes, it does not count against the limit: n1 goes too.)
      expect(deleted(plan(set, nodes, broken))).to.deep.equal(['agent-n4:update', 'agent-n1:update']);
      // 50% of 4: two at a time.
      const half = daemonSet({ template: NEW_TEMPLATE, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '50%' } } });
      expect(deleted(plan(half, nodes, oldPods()))).to.deep.equal(['agent-n1:update', 'agent-n2:update']);
    });

    it('waits for manage to finish, and leaves OnDelete pods until the user deletes them', function () {
      const set = daemonSet({ template: NEW_TEMPLATE });
      // A node needs a pod: that sync only creates it.
      const result = plan(set, [...nodes, node('n5')], oldPods());
      expect(createdOn(result)).to.deep.equal(['n5']);
      expect(result.delete).to.deep.equal([]);
      const onDelete = daemonSet({ template: NEW_TEMPLATE, updateStrategy: { type: 'OnDelete' } });
      expect(plan(onDelete, nodes, oldPods()).delete).to.deep.equal([]);
      // The user deleted n2's pod: its replacement is of the new revision.
      const replaced = plan(onDelete, nodes, oldPods().filter((one) => one.spec?.nodeName !== 'n2'));
      expect(createdOn(replaced)).to.deep.equal(['n2']);
      expect(replaced.create[0]!.metadata?.labels?.['controller-revision-hash']).to.equal(NEW_HASH);
    });

    it('surges: a new pod beside the old one, at most maxSurge at a time, the old one going once the new one is available', function () {
      const set = daemonSet({ template: NEW_TEMPLATE, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } });
      const first = plan(set, nodes, oldPods());
      expect(createdOn(first)).to.deep.equal(['n1']);
      expect(first.delete).to.deep.equal([]);
      const surging = [...oldPods(), pod('agent-n1-new', 'n1', { hash: NEW_HASH, created: '2026-11-25T11:30:00Z' })];
      const waiting = plan(set, nodes, surging);
      expect(waiting.create).to.deep.equal([]);
      expect(waiting.delete).to.deep.equal([]);
      surging[4] = pod('agent-n1-new', 'n1', { hash: NEW_HASH, created: '2026-11-25T11:30:00Z', readyAt: READY });
      expect(deleted(plan(set, nodes, surging))).to.deep.equal(['agent-n1:update']);
    });
  });

  it('reports the status as Kubernetes counts it', function () {
    const set = daemonSet({ minReadySeconds: 60 });
    const nodes = [node('n1'), node('n2'), node('n3'), node('n4'), node('n5', { taints: [{ key: 'gpu', effect: 'NoSchedule' }] })];
    const result = plan(set, nodes, [
      pod('agent-1', 'n1', { readyAt: READY }),
      pod('agent-2', 'n2', { readyAt: '2026-11-25T11:59:30Z' }),
      pod('agent-3', 'n3', { hash: 'old' }),
      pod('agent-5', 'n5', { readyAt: READY }),
    ]);
    expect(result.status).to.deep.equal({
      desiredNumberScheduled: 4,
      currentNumberScheduled: 3,
      numberMisscheduled: 1,
      numberReady: 2,
      numberAvailable: 1,
      numberUnavailable: 3,
      updatedNumberScheduled: 2,
      observedGeneration: 2,
    });
    // agent-2 becomes available 30 s from now.
    expect(result.requeueAfterMs).to.equal(30_000);
  });
});
