// The HorizontalPodAutoscaler controller's pure decision (replica counts
// from utilization, averages and custom metrics; tolerance; limits;
// stabilization; scaling policies; conditions and status), its units, and
// the PodMetrics kind's registration, RBAC and node restriction.

import { expect } from 'chai';
import type { HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior, MetricSpec } from '../../proto/gen/resources/v1/autoscaling.js';
import type { Pod } from '../../proto/gen/resources/v1/core.js';
import type { Condition } from '../../proto/gen/resources/v1/meta.js';
import type { PodMetrics } from '../../proto/gen/resources/v1/metrics.js';
import { nodeRestriction, type AccessRequest } from '../../services/apiserver/access.js';
import type { ApiObject } from '../../services/apiserver/registry.js';
import { authorize, BOOTSTRAP_CLUSTER_ROLE_BINDINGS, BOOTSTRAP_CLUSTER_ROLES, type RbacSource, type UserInfo } from '../../services/apiserver/rbac.js';
import { kindInfo, resolveKind } from '../../services/client/kinds.js';
import { selectorMatches } from '../../services/controllers/common/reconcile-selector.js';
import { DEFAULT_AUTOSCALER_SETTINGS, EMPTY_HISTORY, failedScaleStatus, planAutoscaler, recordScale, type AutoscalerHistory, type AutoscalerInput, type AutoscalerPlan } from '../../services/controllers/hpa/reconcile.js';
import { formatMilli, parseDurationMs } from '../../services/controllers/hpa/reconcile-units.js';

const NOW_MS = Date.parse('2026-11-25T12:00:00Z');
const LONG_AGO = '2026-11-25T11:00:00Z';
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

interface PodOptions {
  readonly cpu?: string | null;
  readonly phase?: string;
  readonly deleting?: boolean;
  readonly startTime?: string;
  readonly ready?: { readonly status: string; readonly at: string } | null;
  readonly labels?: Record<string, string>;
}

function pod(name: string, options: PodOptions = {}): Pod {
  const ready = options.ready === undefined ? { status: 'True', at: LONG_AGO } : options.ready;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', labels: options.labels ?? { app: 'web' }, ...(options.deleting === true ? { deletionTimestamp: LONG_AGO } : {}) },
    spec: { containers: [{ name: 'c', image: 'nginx', ...(options.cpu === null ? {} : { resources: { requests: { cpu: options.cpu ?? '100m', memory: '64Mi' } } }) }] },
    status: {
      phase: options.phase ?? 'Running',
      startTime: options.startTime ?? LONG_AGO,
      conditions: ready === null ? [] : [{ type: 'Ready', status: ready.status, lastTransitionTime: ready.at }],
    },
  };
}

function usage(name: string, cpu: string, extra: { readonly custom?: Record<string, string>; readonly timestamp?: string; readonly memory?: string } = {}): PodMetrics {
  return {
    apiVersion: 'metrics.k8s.io/v1beta1',
    kind: 'PodMetrics',
    metadata: { name, namespace: 'shop', labels: { app: 'web' } },
    timestamp: extra.timestamp ?? iso(NOW_MS - 5000),
    window: '15s',
    containers: [{ name: 'c', usage: { cpu, memory: extra.memory ?? '32Mi' } }],
    ...(extra.custom === undefined ? {} : { customMetrics: extra.custom }),
  };
}

const cpuAt = (percent: number): MetricSpec => ({ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: percent } } });
const rps = (average: string): MetricSpec => ({ type: 'Pods', pods: { metric: { name: 'requests_per_second' }, target: { type: 'AverageValue', averageValue: average } } });

function hpa(options: { readonly min?: number; readonly max?: number; readonly metrics?: MetricSpec[]; readonly behavior?: HorizontalPodAutoscalerBehavior; readonly conditions?: Condition[] } = {}): HorizontalPodAutoscaler {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: 'web', namespace: 'shop', generation: 2 },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web' },
      ...(options.min === undefined ? {} : { minReplicas: options.min }),
      maxReplicas: options.max ?? 10,
      metrics: options.metrics ?? [cpuAt(50)],
      ...(options.behavior === undefined ? {} : { behavior: options.behavior }),
    },
    ...(options.conditions === undefined ? {} : { status: { conditions: options.conditions } }),
  };
}

function input(autoscaler: HorizontalPodAutoscaler, replicas: number, pods: Pod[], metrics: PodMetrics[], extra: Partial<AutoscalerInput> = {}): AutoscalerInput {
  return {
    hpa: autoscaler,
    target: { kind: 'found', replicas, selects: (labels) => selectorMatches({ matchLabels: { app: 'web' } }, labels) },
    pods,
    metrics: new Map(metrics.map((item) => [item.metadata?.name ?? '', item])),
    history: EMPTY_HISTORY,
    nowMs: NOW_MS,
    ...extra,
  };
}

const condition = (plan: AutoscalerPlan, type: string): Pick<Condition, 'status' | 'reason' | 'message'> | undefined => {
  const found = plan.status.conditions?.find((item) => item.type === type);
  return found === undefined ? undefined : { status: found.status, reason: found.reason, message: found.message };
};

/** n Running pods web-0..n-1 with 100m cpu requests, each using `cpu`. */
function fleet(n: number, cpu: string): { pods: Pod[]; metrics: PodMetrics[] } {
  const names = Array.from({ length: n }, (_, index) => `web-${index}`);
  return { pods: names.map((name) => pod(name)), metrics: names.map((name) => usage(name, cpu)) };
}

describe('controllers: horizontal pod autoscaler', function () {
  describe('units', function () {
    it('writes milli-values back as Kubernetes does (reading them: test/client/quantity.test.ts)', function () {
      expect([250, 2000, 1500, 134_217_728_000, 1e12, 0].map(formatMilli)).to.deep.equal(['250m', '2', '1500m', '134217728', '1G', '0']);
    });

    it('reads Go durations', function () {
      expect(['15s', '1m30s', '500ms', '0', '1.5s', '1h'].map(parseDurationMs)).to.deep.equal([15_000, 90_000, 500, 0, 1500, 3_600_000]);
      expect(parseDurationMs('15')).to.equal(undefined);
    });
  });

  describe('replica counts from metrics', function () {
    it('scales by utilization of the requests: ceil(pods × current / target), and reports the metric', function () {
      const { pods, metrics } = fleet(2, '75m');
      const plan = planAutoscaler(input(hpa(), 2, pods, metrics));
      // 75% of the requests against 50%: ratio 1.5, ceil(1.5 × 2) = 3.
      expect(plan.scaleTo).to.equal(3);
      expect(plan.status).to.deep.equal({
        observedGeneration: 2,
        lastScaleTime: '2026-11-25T12:00:00Z',
        currentReplicas: 2,
        desiredReplicas: 3,
        currentMetrics: [{ type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: 75, averageValue: '75m' } } }],
        conditions: [
          { type: 'AbleToScale', status: 'True', lastTransitionTime: '2026-11-25T12:00:00Z', reason: 'SucceededRescale', message: 'the HPA controller was able to update the target scale to 3' },
          { type: 'ScalingActive', status: 'True', lastTransitionTime: '2026-11-25T12:00:00Z', reason: 'ValidMetricFound', message: 'the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)' },
          { type: 'ScalingLimited', status: 'False', lastTransitionTime: '2026-11-25T12:00:00Z', reason: 'DesiredWithinRange', message: 'the desired count is within the acceptable range' },
        ],
      });
    });

    it('changes nothing within the 10% tolerance', function () {
      const within = fleet(2, '54m');
      const plan = planAutoscaler(input(hpa(), 2, within.pods, within.metrics));
      expect(plan.scaleTo).to.equal(undefined);
      expect(plan.status.desiredReplicas).to.equal(2);
      expect(plan.status.lastScaleTime).to.equal(undefined);
      expect(condition(plan, 'AbleToScale')?.reason).to.equal('ReadyForNewScale');
      const beyond = fleet(2, '56m');
      expect(planAutoscaler(input(hpa(), 2, beyond.pods, beyond.metrics)).scaleTo).to.equal(3);
    });

    it('clamps to maxReplicas and minReplicas (default 1), saying so in ScalingLimited', function () {
      const hot = fleet(4, '500m');
      const capped = planAutoscaler(input(hpa({ max: 5 }), 4, hot.pods, hot.metrics));
      expect(capped.scaleTo).to.equal(5);
      expect(condition(capped, 'ScalingLimited')).to.deep.equal({ status: 'True', reason: 'TooManyReplicas', message: 'the desired replica count is more than the maximum replica count' });
      const idle = fleet(4, '1m');
      const history: AutoscalerHistory = { ...EMPTY_HISTORY, recommendations: [{ replicas: 4, atMs: NOW_MS - 600_000 }] };
      const floored = planAutoscaler(input(hpa({ min: 2 }), 4, idle.pods, idle.metrics, { history }));
      expect(floored.scaleTo).to.equal(2);
      expect(condition(floored, 'ScalingLimited')).to.deep.equal({ status: 'True', reason: 'TooFewReplicas', message: 'the desired replica count is less than the minimum replica count' });
      expect(planAutoscaler(input(hpa(), 4, idle.pods, idle.metrics, { history })).scaleTo).to.equal(1);
      // Outside [min, max] already: straight to the bound, metrics unread.
      const over = planAutoscaler(input(hpa({ max: 3 }), 6, [], []));
      expect(over.scaleTo).to.equal(3);
      expect(condition(over, 'ScalingActive')).to.equal(undefined);
      expect(planAutoscaler(input(hpa({ min: 2 }), 1, [], [])).scaleTo).to.equal(2);
    });

    it('without behavior, scales up at most to max(2 × current, 4) per evaluation', function () {
      const hot = fleet(2, '500m');
      const plan = planAutoscaler(input(hpa({ max: 50 }), 2, hot.pods, hot.metrics));
      expect(plan.scaleTo).to.equal(4);
      expect(condition(plan, 'ScalingLimited')).to.deep.equal({ status: 'True', reason: 'ScaleUpLimit', message: 'the desired replica count is increasing faster than the maximum scale rate' });
    });

    it('takes the largest proposal of several metrics, custom Pods metrics included', function () {
      const names = ['web-0', 'web-1'];
      const pods = names.map((name) => pod(name));
      const metrics = names.map((name) => usage(name, '60m', { custom: { requests_per_second: '25' } }));
      // cpu: 60% of 50% → ceil(1.2 × 2) = 3; requests_per_second: 25 of 10 → ceil(2.5 × 2) = 5.
      const plan = planAutoscaler(input(hpa(), 2, pods, metrics, { hpa: hpa({ metrics: [cpuAt(50), rps('10')] }) }));
      expect(plan.scaleTo).to.equal(4); // the scale-up limit without behavior: max(2 × 2, 4)
      expect(plan.status.currentMetrics).to.deep.equal([
        { type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: 60, averageValue: '60m' } } },
        { type: 'Pods', pods: { metric: { name: 'requests_per_second' }, current: { averageValue: '25' } } },
      ]);
      expect(condition(plan, 'ScalingActive')?.message).to.equal('the HPA was able to successfully calculate a replica count from pods metric requests_per_second');
      const custom = planAutoscaler(input(hpa({ metrics: [rps('500m')] }), 2, pods, names.map((name) => usage(name, '1m', { custom: { requests_per_second: '1' } }))));
      expect(custom.scaleTo).to.equal(4);
      const byValue = planAutoscaler(input(hpa({ metrics: [{ type: 'Resource', resource: { name: 'memory', target: { type: 'AverageValue', averageValue: '16Mi' } } }] }), 2, pods, metrics));
      expect(byValue.scaleTo).to.equal(4);
      expect(byValue.status.currentMetrics).to.deep.equal([{ type: 'Resource', resource: { name: 'memory', current: { averageValue: '33554432' } } }]);
    });

    it('counts pods without metrics as using nothing on a scale-up and their request on a scale-down', function () {
      const pods = ['web-0', 'web-1', 'web-2'].map((name) => pod(name));
      // Two pods at 60% of 50% would scale up; the silent third counted as 0% turns it into 40%: no change.
      const up = planAutoscaler(input(hpa(), 3, pods, [usage('web-0', '60m'), usage('web-1', '60m')]));
      expect(up.scaleTo).to.equal(undefined);
      // Two pods at 10% of 80%: the third counted at its full request makes 40% of 80%: ceil(0.5 × 3) = 2, not 1.
      const history: AutoscalerHistory = { ...EMPTY_HISTORY, recommendations: [{ replicas: 3, atMs: NOW_MS - 600_000 }] };
      const down = planAutoscaler(input(hpa({ metrics: [cpuAt(80)] }), 3, pods, [usage('web-0', '10m'), usage('web-1', '10m')], { history }));
      expect(down.scaleTo).to.equal(2);
      // Pending, Failed and deleting pods are not counted at all.
      const ignored = [...pods.slice(0, 2), pod('web-2', { phase: 'Pending' }), pod('web-3', { deleting: true }), pod('web-4', { phase: 'Failed' })];
      expect(planAutoscaler(input(hpa(), 2, ignored, [usage('web-0', '75m'), usage('web-1', '75m')])).scaleTo).to.equal(3);
    });

    it('leaves cpu samples of pods still starting out on a scale-up, until one window after readiness', function () {
      const startedMs = NOW_MS - 60_000;
      const starting = pod('web-1', { startTime: iso(startedMs), ready: { status: 'True', at: iso(NOW_MS - 10_000) } });
      // web-1's sample (5 s ago, 15 s window) predates its readiness + window: unready, counted as 0 on the scale-up.
      const plan = planAutoscaler(input(hpa(), 2, [pod('web-0'), starting], [usage('web-0', '100m'), usage('web-1', '300m')]));
      // web-0 alone: 100% of 50% → 4 pods; with web-1 at 0: 50% of 50% → no change.
      expect(plan.scaleTo).to.equal(undefined);
      const settled = pod('web-1', { startTime: iso(startedMs), ready: { status: 'True', at: iso(startedMs) } });
      expect(planAutoscaler(input(hpa(), 2, [pod('web-0'), settled], [usage('web-0', '100m'), usage('web-1', '300m')])).scaleTo).to.equal(4);
    });

    it('reports pods without a request, and targets without metrics, in ScalingActive', function () {
      const pods = [pod('web-0'), pod('web-1', { cpu: null })];
      const plan = planAutoscaler(input(hpa(), 2, pods, [usage('web-0', '80m'), usage('web-1', '80m')]));
      expect(plan.scaleTo).to.equal(undefined);
      expect(condition(plan, 'ScalingActive')).to.deep.equal({
        status: 'False',
        reason: 'FailedGetResourceMetric',
        message: 'the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container c of Pod web-1',
      });
      expect(plan.error).to.equal('invalid metrics (1 invalid out of 1), first error is: failed to get cpu utilization: missing request for cpu in container c of Pod web-1');
      expect(plan.status.currentReplicas).to.equal(2);
      const silent = planAutoscaler(input(hpa(), 2, [pod('web-0')], []));
      expect(condition(silent, 'ScalingActive')?.message).to.equal('the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API');
      const noCustom = planAutoscaler(input(hpa({ metrics: [rps('10')] }), 2, [pod('web-0')], [usage('web-0', '1m')]));
      expect(condition(noCustom, 'ScalingActive')?.reason).to.equal('FailedGetPodsMetric');
      // One valid metric proposing a scale-up wins over a failing one.
      const mixed = fleet(2, '100m');
      expect(planAutoscaler(input(hpa({ metrics: [cpuAt(50), rps('10')] }), 2, mixed.pods, mixed.metrics)).scaleTo).to.equal(4);
    });

    it('stops at a target with no replicas, and at one it cannot read', function () {
      const disabled = planAutoscaler(input(hpa(), 0, [], []));
      expect(disabled.scaleTo).to.equal(undefined);
      expect(condition(disabled, 'ScalingActive')?.reason).to.equal('ScalingDisabled');
      const missing = planAutoscaler({ ...input(hpa(), 1, [], []), target: { kind: 'failed', message: 'ReplicaSet "web" not found' } });
      expect(condition(missing, 'AbleToScale')).to.deep.equal({ status: 'False', reason: 'FailedGetScale', message: 'the HPA controller was unable to get the target\'s current scale: ReplicaSet "web" not found' });
      const noSelector = planAutoscaler({ ...input(hpa(), 1, [], []), target: { kind: 'found', replicas: 1, selects: undefined } });
      expect(condition(noSelector, 'ScalingActive')?.reason).to.equal('InvalidSelector');
      // No maxReplicas (the API server does not validate HPAs): never scaled to 0.
      const unbounded = planAutoscaler(input({ ...hpa(), spec: { ...hpa().spec, maxReplicas: undefined } }, 3, [], []));
      expect(unbounded.scaleTo).to.equal(undefined);
      expect(condition(unbounded, 'ScalingActive')?.reason).to.equal('InvalidSpec');
    });
  });

  describe('stabilization and policies', function () {
    it('scales down to the highest recommendation of the scale-down window (default 300 s)', function () {
      const idle = fleet(4, '5m');
      const recent: AutoscalerHistory = { ...EMPTY_HISTORY, recommendations: [{ replicas: 4, atMs: NOW_MS - 100_000 }, { replicas: 3, atMs: NOW_MS - 50_000 }] };
      const held = planAutoscaler(input(hpa(), 4, idle.pods, idle.metrics, { history: recent }));
      expect(held.scaleTo).to.equal(undefined);
      expect(condition(held, 'AbleToScale')?.reason).to.equal('ScaleDownStabilized');
      expect(held.history.recommendations.map((item) => item.replicas)).to.deep.equal([4, 3, 1]);
      const older: AutoscalerHistory = { ...EMPTY_HISTORY, recommendations: [{ replicas: 4, atMs: NOW_MS - 400_000 }, { replicas: 3, atMs: NOW_MS - 50_000 }] };
      const partly = planAutoscaler(input(hpa(), 4, idle.pods, idle.metrics, { history: older }));
      expect(partly.scaleTo).to.equal(3);
      // The sample that left the window is reused for the new one.
      expect(partly.history.recommendations).to.deep.equal([{ replicas: 1, atMs: NOW_MS }, { replicas: 3, atMs: NOW_MS - 50_000 }]);
      // A first evaluation remembers the current scale, so a fresh controller does not scale down at once.
      expect(planAutoscaler(input(hpa(), 4, idle.pods, idle.metrics)).scaleTo).to.equal(undefined);
      // With behavior, the window is spec.behavior.scaleDown.stabilizationWindowSeconds.
      const quick = planAutoscaler(input(hpa({ behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } }), 4, idle.pods, idle.metrics, { history: older }));
      expect(quick.scaleTo).to.equal(3);
      const none = planAutoscaler(input(hpa({ behavior: { scaleDown: { stabilizationWindowSeconds: 0 } } }), 4, idle.pods, idle.metrics, { history: older }));
      expect(none.scaleTo).to.equal(1);
    });

    it('scales up to the lowest recommendation of the scale-up window', function () {
      const hot = fleet(2, '100m');
      const behavior: HorizontalPodAutoscalerBehavior = { scaleUp: { stabilizationWindowSeconds: 60 } };
      const history: AutoscalerHistory = { ...EMPTY_HISTORY, recommendations: [{ replicas: 2, atMs: NOW_MS - 30_000 }, { replicas: 3, atMs: NOW_MS - 20_000 }] };
      const held = planAutoscaler(input(hpa({ behavior }), 2, hot.pods, hot.metrics, { history }));
      expect(held.scaleTo).to.equal(undefined);
      expect(condition(held, 'AbleToScale')).to.deep.equal({ status: 'True', reason: 'ScaleUpStabilized', message: 'recent recommendations were lower than current one, applying the lowest recent recommendation' });
      const later = planAutoscaler(input(hpa({ behavior }), 2, hot.pods, hot.metrics, { history: { ...EMPTY_HISTORY, recommendations: [{ replicas: 3, atMs: NOW_MS - 20_000 }] } }));
      expect(later.scaleTo).to.equal(3);
    });

    it('limits the rate with the default scale-up policy: max(4 pods, 100%) per 15 s', function () {
      const hot = fleet(1, '1');
      const autoscaler = hpa({ max: 50, behavior: { scaleDown: { stabilizationWindowSeconds: 0 } } });
      const first = planAutoscaler(input(autoscaler, 1, hot.pods, hot.metrics));
      expect(first.scaleTo).to.equal(5);
      expect(condition(first, 'ScalingLimited')?.reason).to.equal('ScaleUpLimit');
      const history = recordScale(autoscaler.spec?.behavior, first.history, 1, 5, NOW_MS);
      expect(history.scaleUpEvents).to.deep.equal([{ change: 4, atMs: NOW_MS }]);
      const five = fleet(5, '1');
      // 5 s later: the period started at 1 replica, so still at most 5.
      const soon = planAutoscaler(input(autoscaler, 5, five.pods, five.metrics, { history, nowMs: NOW_MS + 5000 }));
      expect(soon.scaleTo).to.equal(undefined);
      // 16 s later the event has left the period: max(5 + 4, 2 × 5) = 10.
      expect(planAutoscaler(input(autoscaler, 5, five.pods, five.metrics, { history, nowMs: NOW_MS + 16_000 })).scaleTo).to.equal(10);
    });

    it('applies scale-down policies and selectPolicy Min and Disabled', function () {
      const idle = fleet(10, '1m');
      const policies = [{ type: 'Pods', value: 2, periodSeconds: 60 }, { type: 'Percent', value: 50, periodSeconds: 60 }];
      const maxChange = planAutoscaler(input(hpa({ behavior: { scaleDown: { stabilizationWindowSeconds: 0, policies } } }), 10, idle.pods, idle.metrics));
      expect(maxChange.scaleTo).to.equal(5);
      expect(condition(maxChange, 'ScalingLimited')).to.deep.equal({ status: 'True', reason: 'ScaleDownLimit', message: 'the desired replica count is decreasing faster than the maximum scale rate' });
      const minChange = planAutoscaler(input(hpa({ behavior: { scaleDown: { stabilizationWindowSeconds: 0, selectPolicy: 'Min', policies } } }), 10, idle.pods, idle.metrics));
      expect(minChange.scaleTo).to.equal(8);
      const disabled = planAutoscaler(input(hpa({ behavior: { scaleDown: { stabilizationWindowSeconds: 0, selectPolicy: 'Disabled' } } }), 10, idle.pods, idle.metrics));
      expect(disabled.scaleTo).to.equal(undefined);
      // Scale events within the period count against it.
      const autoscaler = hpa({ behavior: { scaleDown: { stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 2, periodSeconds: 60 }] } } });
      const history = recordScale(autoscaler.spec?.behavior, EMPTY_HISTORY, 12, 10, NOW_MS - 30_000);
      expect(planAutoscaler(input(autoscaler, 10, idle.pods, idle.metrics, { history: { ...history, recommendations: [{ replicas: 10, atMs: NOW_MS - 30_000 }] } })).scaleTo).to.equal(undefined);
    });
  });

  describe('status', function () {
    it('moves a condition\'s transition time only when its status changes', function () {
      const earlier = '2026-11-25T11:30:00Z';
      const conditions: Condition[] = [
        { type: 'AbleToScale', status: 'True', lastTransitionTime: earlier, reason: 'ReadyForNewScale', message: 'recommended size matches current size' },
        { type: 'ScalingActive', status: 'False', lastTransitionTime: earlier, reason: 'FailedGetResourceMetric', message: 'old' },
      ];
      const steady = fleet(2, '50m');
      const plan = planAutoscaler(input(hpa({ conditions }), 2, steady.pods, steady.metrics));
      const times = Object.fromEntries((plan.status.conditions ?? []).map((item) => [item.type, item.lastTransitionTime]));
      expect(times).to.deep.equal({ AbleToScale: earlier, ScalingActive: '2026-11-25T12:00:00Z', ScalingLimited: '2026-11-25T12:00:00Z' });
    });

    it('reports a failed scale write in AbleToScale, keeping the last desired count and scale time', function () {
      const hot = fleet(2, '75m');
      const autoscaler = { ...hpa(), status: { desiredReplicas: 2, lastScaleTime: LONG_AGO } };
      const scaled = input(autoscaler, 2, hot.pods, hot.metrics);
      const plan = planAutoscaler(scaled);
      const status = failedScaleStatus(scaled, plan, 'the object has been modified');
      expect(status.desiredReplicas).to.equal(2);
      expect(status.lastScaleTime).to.equal(LONG_AGO);
      expect(status.conditions?.find((item) => item.type === 'AbleToScale')).to.deep.include({ status: 'False', reason: 'FailedUpdateScale', message: 'the HPA controller was unable to update the target scale: the object has been modified' });
      expect(DEFAULT_AUTOSCALER_SETTINGS.tolerance).to.equal(0.1);
    });
  });

  describe('the PodMetrics kind', function () {
    const source: RbacSource = {
      clusterRole: (name) => BOOTSTRAP_CLUSTER_ROLES.find((role) => role.metadata.name === name),
      role: () => undefined,
      clusterRoleBindings: () => BOOTSTRAP_CLUSTER_ROLE_BINDINGS,
      roleBindings: () => [],
    };
    const node: UserInfo = { name: 'system:node:n1', groups: ['system:nodes', 'system:authenticated'] };
    const info = kindInfo('PodMetrics')!;

    it('is served as metrics.k8s.io/v1beta1 podmetrics, namespaced, without a status', function () {
      expect(info).to.deep.equal({ kind: 'PodMetrics', apiVersion: 'metrics.k8s.io/v1beta1', resource: 'podmetrics', namespaced: true, hasStatus: false, shortNames: [] });
      expect(resolveKind('podmetrics.metrics.k8s.io')?.kind).to.equal('PodMetrics');
    });

    it('is written by nodes and read by the controller-manager and viewers', function () {
      const request = (user: UserInfo, verb: string) => ({ user, verb, apiGroup: 'metrics.k8s.io', resource: 'podmetrics', namespace: 'shop', name: 'web-0' });
      for (const verb of ['create', 'update', 'delete', 'get']) expect(authorize(source, request(node, verb)).allowed, verb).to.equal(true);
      const manager: UserInfo = { name: 'system:kube-controller-manager', groups: [] };
      expect(authorize(source, request(manager, 'list')).allowed).to.equal(true);
      expect(authorize(source, request(manager, 'create')).allowed).to.equal(false);
      const scheduler: UserInfo = { name: 'system:kube-scheduler', groups: [] };
      expect(authorize(source, request(scheduler, 'get')).allowed).to.equal(false);
    });

    it('lets a node write only the PodMetrics of pods bound to it', function () {
      const pods: Record<string, ApiObject> = {
        mine: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'mine', namespace: 'shop' }, spec: { nodeName: 'n1' } },
        theirs: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'theirs', namespace: 'shop' }, spec: { nodeName: 'n2' } },
      };
      const podOf = (_namespace: string, name: string): ApiObject | undefined => pods[name];
      const write = (verb: AccessRequest['verb'], name: string): string | undefined => nodeRestriction(node, { verb, info, namespace: 'shop', name }, podOf);
      expect(write('create', 'mine')).to.equal(undefined);
      expect(write('update', 'mine')).to.equal(undefined);
      expect(write('create', 'theirs')).to.equal('node "n1" can only write the PodMetrics of pods bound to it');
      expect(write('update', 'theirs')).to.not.equal(undefined);
      expect(write('create', 'gone')).to.not.equal(undefined);
      // The metrics of a pod that is gone may be cleaned up; those of another node's pod may not.
      expect(write('delete', 'gone')).to.equal(undefined);
      expect(write('delete', 'theirs')).to.not.equal(undefined);
    });
  });
});
