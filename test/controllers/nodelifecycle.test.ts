// The node lifecycle controller's pure decisions: node health from the
// Lease and the Ready heartbeat, the conditions and taints it writes, the
// taint eviction plan for pods, and the zone states and rates.

import { expect } from 'chai';
import type { Node, Pod, Taint, Toleration } from '../../proto/gen/resources/v1/core.js';
import type { Lease } from '../../proto/gen/resources/v1/coordination.js';
import type { Condition } from '../../proto/gen/resources/v1/meta.js';
import { assessNodeHealth, planTaints, TAINT_NOT_READY, TAINT_UNREACHABLE, type NodeHealthInput } from '../../services/controllers/nodelifecycle/reconcile.js';
import { notReadyPodStatus, planEviction, type TimedTaint } from '../../services/controllers/nodelifecycle/reconcile-eviction.js';
import { TokenBucket, ZoneReadiness, zoneEvictionRate, zoneKeyOf, zoneState } from '../../services/controllers/nodelifecycle/reconcile-zones.js';

const NOW_MS = Date.parse('2026-11-25T12:00:00Z');
const NOW = '2026-11-25T12:00:00Z';
const GRACE_MS = 40_000;
const iso = (ms: number): string => new Date(ms).toISOString();

function node(conditions: Condition[] | undefined, taints?: Taint[], extra: Partial<Node['spec']> = {}): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'n1', uid: 'n1-uid', creationTimestamp: '2026-11-25T10:00:00Z', resourceVersion: '7' },
    spec: { ...(taints === undefined ? {} : { taints }), ...extra },
    status: { capacity: { cpu: '4', pods: '110' }, ...(conditions === undefined ? {} : { conditions }) },
  };
}

const ready = (status: string, heartbeatMs: number): Condition => ({ type: 'Ready', status, reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: iso(heartbeatMs), lastTransitionTime: '2026-11-25T10:00:05Z' });
const lease = (renewMs: number): Lease => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'n1', namespace: 'kube-node-lease' }, spec: { holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: new Date(renewMs).toISOString().replace('Z', '000Z') } });

function health(subject: Node, extra: Partial<NodeHealthInput> = {}): ReturnType<typeof assessNodeHealth> {
  return assessNodeHealth({ node: subject, lease: undefined, observedSinceMs: 0, nowMs: NOW_MS, gracePeriodMs: GRACE_MS, startupGracePeriodMs: 60_000, ...extra });
}

describe('controllers: node lifecycle', function () {
  describe('node health', function () {
    it('is healthy up to the grace period and stale just after it', function () {
      const at = health(node([ready('True', NOW_MS - GRACE_MS)]));
      expect(at).to.deep.equal({ lastHeartbeatMs: NOW_MS - GRACE_MS, deadlineMs: NOW_MS, stale: false, conditions: undefined });
      const after = health(node([ready('True', NOW_MS - GRACE_MS - 1)]));
      expect(after.stale).to.equal(true);
      expect(after.deadlineMs).to.equal(NOW_MS - 1);
    });

    it('takes the later of the lease renewal and the Ready heartbeat', function () {
      const old = NOW_MS - 5 * 60_000;
      const byLease = health(node([ready('True', old)]), { lease: lease(NOW_MS - 1500) });
      expect(byLease.stale).to.equal(false);
      expect(byLease.lastHeartbeatMs).to.equal(NOW_MS - 1500);
      const byCondition = health(node([ready('True', NOW_MS - 2000)]), { lease: lease(old) });
      expect(byCondition.lastHeartbeatMs).to.equal(NOW_MS - 2000);
      expect(health(node([ready('True', old)]), { lease: lease(old) }).stale).to.equal(true);
    });

    it('gives a node a full grace period from when the controller first saw it', function () {
      const old = NOW_MS - 5 * 60_000;
      expect(health(node([ready('True', old)]), { observedSinceMs: NOW_MS - 1000 })).to.deep.include({ stale: false, deadlineMs: NOW_MS - 1000 + GRACE_MS });
    });

    it('sets the monitored conditions Unknown when the kubelet stops posting, keeping heartbeats and other conditions', function () {
      const old = NOW_MS - 60_000;
      const conditions: Condition[] = [
        ready('True', old),
        { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', lastHeartbeatTime: iso(old), lastTransitionTime: '2026-11-25T10:00:05Z' },
        { type: 'DiskPressure', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: '2026-11-25T11:00:00Z' },
        { type: 'NetworkUnavailable', status: 'False', reason: 'RouteCreated' },
      ];
      const result = health(node(conditions));
      expect(result.conditions).to.deep.equal([
        { type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastHeartbeatTime: iso(old), lastTransitionTime: NOW },
        { type: 'MemoryPressure', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastHeartbeatTime: iso(old), lastTransitionTime: NOW },
        conditions[2],
        conditions[3],
        { type: 'PIDPressure', status: 'Unknown', reason: 'NodeStatusNeverUpdated', message: 'Kubelet never posted node status.', lastHeartbeatTime: '2026-11-25T10:00:00Z', lastTransitionTime: NOW },
      ]);
      // The input is the informer's cache: untouched.
      expect(conditions[0]!.status).to.equal('True');
      // Once Unknown, nothing more to write.
      expect(health(node(result.conditions)).conditions).to.equal(undefined);
    });

    it('waits the startup grace period for a node that never posted a Ready condition', function () {
      const young = node(undefined);
      young.metadata!.creationTimestamp = iso(NOW_MS - 50_000);
      expect(health(young)).to.deep.include({ stale: false, deadlineMs: NOW_MS + 10_000 });
      young.metadata!.creationTimestamp = iso(NOW_MS - 61_000);
      expect(health(young).conditions?.map((condition) => [condition.type, condition.status, condition.reason])).to.deep.equal([
        ['Ready', 'Unknown', 'NodeStatusNeverUpdated'],
        ['MemoryPressure', 'Unknown', 'NodeStatusNeverUpdated'],
        ['DiskPressure', 'Unknown', 'NodeStatusNeverUpdated'],
        ['PIDPressure', 'Unknown', 'NodeStatusNeverUpdated'],
      ]);
    });
  });

  describe('taints', function () {
    const others: Taint = { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' };

    it('taints an unreachable node unreachable NoExecute (with timeAdded) and NoSchedule, keeping other taints', function () {
      const subject = node([ready('Unknown', 0)], [others]);
      const plan = planTaints(subject, subject.status!.conditions!, NOW_MS, 'add');
      expect(plan).to.deep.equal({
        taints: [others, { key: TAINT_UNREACHABLE, effect: 'NoSchedule' }, { key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded: NOW }],
        changed: true,
        addsNoExecute: true,
        heldNoExecute: false,
      });
    });

    it('taints a node reporting Ready=False not-ready, and swaps at once when the status moves', function () {
      const notReady = node([ready('False', NOW_MS)]);
      expect(planTaints(notReady, notReady.status!.conditions!, NOW_MS, 'add').taints).to.deep.equal([
        { key: TAINT_NOT_READY, effect: 'NoSchedule' },
        { key: TAINT_NOT_READY, effect: 'NoExecute', timeAdded: NOW },
      ]);
      const earlier = '2026-11-25T11:59:00Z';
      const wasUnreachable = node([ready('False', NOW_MS)], [{ key: TAINT_UNREACHABLE, effect: 'NoSchedule' }, { key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded: earlier }]);
      // A swap is not rate-limited: it happens even when no new NoExecute taint may be added.
      expect(planTaints(wasUnreachable, wasUnreachable.status!.conditions!, NOW_MS, 'hold')).to.deep.equal({
        taints: [{ key: TAINT_NOT_READY, effect: 'NoSchedule' }, { key: TAINT_NOT_READY, effect: 'NoExecute', timeAdded: NOW }],
        changed: true,
        addsNoExecute: false,
        heldNoExecute: false,
      });
    });

    it('keeps a taint already there, with its timeAdded, and changes nothing', function () {
      const tainted = node([ready('Unknown', 0)], [{ key: TAINT_UNREACHABLE, effect: 'NoSchedule' }, { key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded: '2026-11-25T11:00:00Z' }]);
      const plan = planTaints(tainted, tainted.status!.conditions!, NOW_MS, 'add');
      expect(plan.changed).to.equal(false);
      expect(plan.taints).to.deep.equal(tainted.spec!.taints);
    });

    it('removes its taints when the node is Ready again', function () {
      const recovered = node([ready('True', NOW_MS)], [{ key: TAINT_UNREACHABLE, effect: 'NoSchedule' }, others, { key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded: '2026-11-25T11:00:00Z' }]);
      expect(planTaints(recovered, recovered.status!.conditions!, NOW_MS, 'add')).to.deep.equal({ taints: [others], changed: true, addsNoExecute: false, heldNoExecute: false });
    });

    it('holds a new NoExecute taint back when the rate does not allow it, and clears them in master disruption mode', function () {
      const subject = node([ready('Unknown', 0)]);
      expect(planTaints(subject, subject.status!.conditions!, NOW_MS, 'hold')).to.deep.equal({ taints: [{ key: TAINT_UNREACHABLE, effect: 'NoSchedule' }], changed: true, addsNoExecute: false, heldNoExecute: true });
      const tainted = node([ready('Unknown', 0)], [{ key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded: '2026-11-25T11:00:00Z' }]);
      expect(planTaints(tainted, tainted.status!.conditions!, NOW_MS, 'clear').taints).to.deep.equal([{ key: TAINT_UNREACHABLE, effect: 'NoSchedule' }]);
    });

    it('taints by condition and cordon as TaintNodesByCondition does', function () {
      const conditions = [ready('True', NOW_MS), { type: 'MemoryPressure', status: 'True' }, { type: 'DiskPressure', status: 'False' }, { type: 'PIDPressure', status: 'True' }, { type: 'NetworkUnavailable', status: 'True' }];
      const subject = node(conditions, [{ key: 'node.kubernetes.io/disk-pressure', effect: 'NoSchedule' }], { unschedulable: true });
      expect(planTaints(subject, conditions, NOW_MS, 'add').taints).to.deep.equal([
        { key: 'node.kubernetes.io/memory-pressure', effect: 'NoSchedule' },
        { key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' },
        { key: 'node.kubernetes.io/pid-pressure', effect: 'NoSchedule' },
        { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' },
      ]);
    });
  });

  describe('taint eviction', function () {
    const unreachable: Taint = { key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded: NOW };
    const timed = (taint: Taint, sinceMs = NOW_MS): TimedTaint => ({ taint, sinceMs });
    const pod = (tolerations: Toleration[], extra: Partial<NonNullable<Pod['metadata']>> = {}): Pod => ({ metadata: { name: 'p', namespace: 'default', ...extra }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }], tolerations } });

    it('evicts at once a pod that does not tolerate a NoExecute taint, and ignores other effects', function () {
      expect(planEviction(pod([]), [timed(unreachable)], NOW_MS)).to.deep.equal({ kind: 'evict' });
      expect(planEviction(pod([{ key: TAINT_NOT_READY, operator: 'Exists', effect: 'NoExecute' }]), [timed(unreachable)], NOW_MS)).to.deep.equal({ kind: 'evict' });
      expect(planEviction(pod([]), [timed({ key: TAINT_UNREACHABLE, effect: 'NoSchedule' })], NOW_MS)).to.deep.equal({ kind: 'keep' });
      expect(planEviction(pod([]), [], NOW_MS)).to.deep.equal({ kind: 'keep' });
    });

    it('keeps forever a pod whose tolerations have no tolerationSeconds', function () {
      expect(planEviction(pod([{ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute' }]), [timed(unreachable, NOW_MS - 86_400_000)], NOW_MS)).to.deep.equal({ kind: 'keep' });
      expect(planEviction(pod([{ operator: 'Exists' }]), [timed(unreachable), timed({ key: 'x', effect: 'NoExecute' })], NOW_MS)).to.deep.equal({ kind: 'keep' });
    });

    it('evicts at the taint time plus tolerationSeconds, the earliest of the taints', function () {
      const tolerating = pod([{ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }, { key: 'x', operator: 'Exists', tolerationSeconds: 60 }]);
      expect(planEviction(tolerating, [timed(unreachable, NOW_MS - 100_000)], NOW_MS)).to.deep.equal({ kind: 'evictAt', atMs: NOW_MS + 200_000 });
      expect(planEviction(tolerating, [timed(unreachable, NOW_MS - 100_000), timed({ key: 'x', effect: 'NoExecute' }, NOW_MS - 30_000)], NOW_MS)).to.deep.equal({ kind: 'evictAt', atMs: NOW_MS + 30_000 });
      // The deadline itself: evict.
      expect(planEviction(tolerating, [timed(unreachable, NOW_MS - 300_000)], NOW_MS)).to.deep.equal({ kind: 'evict' });
      expect(planEviction(tolerating, [timed(unreachable, NOW_MS - 299_999)], NOW_MS)).to.deep.equal({ kind: 'evictAt', atMs: NOW_MS + 1 });
    });

    it('evicts at once for tolerationSeconds zero or negative', function () {
      for (const seconds of [0, -5]) {
        expect(planEviction(pod([{ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: seconds }]), [timed(unreachable)], NOW_MS), String(seconds)).to.deep.equal({ kind: 'evict' });
      }
    });

    it('leaves alone a pod already being deleted', function () {
      expect(planEviction(pod([], { deletionTimestamp: NOW }), [timed(unreachable)], NOW_MS)).to.deep.equal({ kind: 'keep' });
    });

    it('marks a Ready pod NotReady, and only one', function () {
      const running: Pod = { ...pod([]), status: { phase: 'Running', conditions: [{ type: 'Initialized', status: 'True' }, { type: 'Ready', status: 'True', lastTransitionTime: '2026-11-25T11:00:00Z' }], podIP: '10.0.0.5' } };
      expect(notReadyPodStatus(running, NOW_MS)).to.deep.equal({ phase: 'Running', conditions: [{ type: 'Initialized', status: 'True' }, { type: 'Ready', status: 'False', lastTransitionTime: NOW }], podIP: '10.0.0.5' });
      expect(running.status!.conditions![1]!.status).to.equal('True');
      expect(notReadyPodStatus({ ...running, status: { ...running.status, conditions: [{ type: 'Ready', status: 'False' }] } }, NOW_MS)).to.equal(undefined);
      expect(notReadyPodStatus({ ...running, status: { ...running.status, phase: 'Succeeded' } }, NOW_MS)).to.equal(undefined);
    });
  });

  describe('zones', function () {
    const rates = { evictionsPerSecond: 10, secondaryEvictionsPerSecond: 0.01, largeClusterSizeThreshold: 50 };

    it('computes zone states as Kubernetes does', function () {
      expect(zoneState(0, 1, 0.55)).to.equal('FullDisruption');
      expect(zoneState(1, 1, 0.55)).to.equal('Normal');
      expect(zoneState(1, 2, 0.55)).to.equal('Normal'); // not more than 2 not ready
      expect(zoneState(2, 3, 0.55)).to.equal('PartialDisruption');
      expect(zoneState(3, 3, 0.55)).to.equal('Normal'); // 50% < 55%
      expect(zoneState(0, 0, 0.55)).to.equal('Normal');
    });

    it('slows or stops evictions by zone state and size', function () {
      expect(zoneEvictionRate('Normal', 3, false, rates)).to.equal(10);
      expect(zoneEvictionRate('FullDisruption', 3, false, rates)).to.equal(10);
      expect(zoneEvictionRate('PartialDisruption', 50, false, rates)).to.equal(0);
      expect(zoneEvictionRate('PartialDisruption', 51, false, rates)).to.equal(0.01);
      expect(zoneEvictionRate('Normal', 3, true, rates)).to.equal(0);
    });

    it('counts ready nodes per zone from node labels', function () {
      const zoned = (zone: string): Node => ({ metadata: { name: zone, labels: { 'topology.kubernetes.io/region': 'r', 'topology.kubernetes.io/zone': zone } } });
      expect(zoneKeyOf(zoned('a'))).to.equal('r:\u0000:a');
      expect(zoneKeyOf({ metadata: { name: 'n' } })).to.equal('');
      const zones = new ZoneReadiness();
      zones.set('n1', 'a', true);
      zones.set('n2', 'a', false);
      zones.set('n3', 'b', false);
      expect([zones.state('a', 0.55), zones.state('b', 0.55), zones.allFullyDisrupted(0.55)]).to.deep.equal(['Normal', 'FullDisruption', false]);
      zones.set('n1', 'a', false);
      expect(zones.allFullyDisrupted(0.55)).to.equal(true);
      zones.remove('n3');
      zones.remove('n2');
      zones.set('n1', 'a', true);
      expect([zones.zones(), zones.size('a'), zones.allFullyDisrupted(0.55)]).to.deep.equal([['a'], 1, false]);
    });

    it('rate-limits with a token bucket on the given clock', function () {
      const bucket = new TokenBucket(10, 1);
      expect(bucket.tryTake(NOW_MS)).to.equal(true);
      expect(bucket.tryTake(NOW_MS)).to.equal(false);
      expect(bucket.waitMs(NOW_MS)).to.equal(100);
      expect(bucket.tryTake(NOW_MS + 99)).to.equal(false);
      expect(bucket.tryTake(NOW_MS + 100)).to.equal(true);
      // Burst 1: a long wait does not save tokens up.
      expect(bucket.tryTake(NOW_MS + 10_000)).to.equal(true);
      expect(bucket.tryTake(NOW_MS + 10_000)).to.equal(false);
      bucket.setRate(0, NOW_MS + 10_000);
      expect(bucket.waitMs(NOW_MS + 60_000)).to.equal(Infinity);
    });
  });
});
