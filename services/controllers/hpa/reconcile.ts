// The HorizontalPodAutoscaler controller's decision (Kubernetes'
// reconcileAutoscaler), as a pure function of the HPA, its target's scale,
// the target's pods and their PodMetrics, the controller's memory of recent
// recommendations and scale events, and the time: the replica count to
// write to the target (if any), the HPA's new status, and the memory to keep.
//
// Each metric proposes a count (reconcile-metrics.ts); the largest wins;
// stabilization windows and scaling policies temper it
// (reconcile-behavior.ts). Conditions AbleToScale, ScalingActive and
// ScalingLimited carry Kubernetes' reasons and messages.

import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus } from '../../../proto/gen/resources/v1/autoscaling.js';
import type { Condition } from '../../../proto/gen/resources/v1/meta.js';
import type { PodMetrics } from '../../../proto/gen/resources/v1/metrics.js';
import { averageValueReplicas, customSample, resourceSample, utilizationReplicas, type CalculatorSettings, type Proposal, type Sample } from './reconcile-metrics.js';
import { EMPTY_HISTORY, normalizeReplicas, recordScale, type AutoscalerHistory } from './reconcile-behavior.js';
import { parseQuantity } from '../../client/quantity.js';
import { formatTimestamp } from '../../client/timestamps.js';
import { formatMilli } from './reconcile-units.js';

export { EMPTY_HISTORY, recordScale, type AutoscalerHistory };

export interface AutoscalerSettings extends CalculatorSettings {
  /** The scale-down stabilization window without spec.behavior (--horizontal-pod-autoscaler-downscale-stabilization). */
  readonly downscaleStabilizationWindowMs: number;
}

/** kube-controller-manager's defaults. */
export const DEFAULT_AUTOSCALER_SETTINGS: AutoscalerSettings = {
  tolerance: 0.1,
  cpuInitializationPeriodMs: 5 * 60_000,
  delayOfInitialReadinessStatusMs: 30_000,
  downscaleStabilizationWindowMs: 5 * 60_000,
};

/** What the HPA scales, as read from its scale target (or why it could not be read). */
export type ScaleTarget =
  | { readonly kind: 'found'; readonly replicas: number; readonly selects: ((labels: Readonly<Record<string, string>> | undefined) => boolean) | undefined }
  | { readonly kind: 'failed'; readonly message: string };

export interface AutoscalerInput {
  readonly hpa: HorizontalPodAutoscaler;
  readonly target: ScaleTarget;
  /** Pods of the HPA's namespace (the target's selector picks among them). */
  readonly pods: readonly Pod[];
  /** PodMetrics of the HPA's namespace, by name (= the pod's name). */
  readonly metrics: ReadonlyMap<string, PodMetrics>;
  readonly history: AutoscalerHistory;
  readonly nowMs: number;
  readonly settings?: AutoscalerSettings;
}

export interface AutoscalerPlan {
  /** The target's new spec.replicas; undefined: leave it. */
  readonly scaleTo: number | undefined;
  /** The HPA's status, complete, assuming the scale (if any) succeeds. */
  readonly status: HorizontalPodAutoscalerStatus;
  /** The memory to keep: the recommendation recorded (scale events: recordScale, after the write). */
  readonly history: AutoscalerHistory;
  /** Why the replica count could not be computed, for the log. */
  readonly error?: string;
}

const CPU_DEFAULT_METRIC: MetricSpec = { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } };

/** Kubernetes' setConditionInList: the transition time moves only when the status does. */
export function setCondition(conditions: readonly Condition[], type: string, status: string, reason: string, message: string, nowText: string): Condition[] {
  const existing = conditions.find((condition) => condition.type === type);
  const next: Condition = { type, status, lastTransitionTime: existing !== undefined && existing.status === status ? existing.lastTransitionTime : nowText, reason, message };
  return existing === undefined ? [...conditions, next] : conditions.map((condition) => (condition === existing ? next : condition));
}

/** The conditions under construction, and the clock to stamp them with. */
class Conditions {
  constructor(
    public list: Condition[],
    private readonly nowText: string,
  ) {}

  set(type: string, status: 'True' | 'False', reason: string, message: string): void {
    this.list = setCondition(this.list, type, status, reason, message, this.nowText);
  }
}

export function planAutoscaler(input: AutoscalerInput): AutoscalerPlan {
  const { hpa, target, nowMs } = input;
  const settings = input.settings ?? DEFAULT_AUTOSCALER_SETTINGS;
  const previous = hpa.status ?? {};
  const conditions = new Conditions([...(previous.conditions ?? [])], formatTimestamp(nowMs));
  const observedGeneration = hpa.metadata?.generation ?? 0;
  if (target.kind === 'failed') {
    conditions.set('AbleToScale', 'False', 'FailedGetScale', `the HPA controller was unable to get the target's current scale: ${target.message}`);
    return { scaleTo: undefined, status: { ...previous, observedGeneration, conditions: conditions.list }, history: input.history, error: target.message };
  }
  conditions.set('AbleToScale', 'True', 'SucceededGetScale', "the HPA controller was able to get the target's current scale");
  const currentReplicas = target.replicas;
  let history = input.history.recommendations.length === 0 ? { ...input.history, recommendations: [{ replicas: currentReplicas, atMs: nowMs }] } : input.history;
  const minReplicas = hpa.spec?.minReplicas ?? 1;
  const maxReplicas = hpa.spec?.maxReplicas ?? 0;
  let desired: number;
  let metrics: MetricStatus[] | undefined;
  if (maxReplicas < 1 || minReplicas > maxReplicas) {
    // Kubernetes' API validation refuses such an HPA; mast's API server does not check HPAs yet.
    const message = `spec.maxReplicas (${maxReplicas}) must be at least 1 and at least spec.minReplicas (${minReplicas})`;
    conditions.set('ScalingActive', 'False', 'InvalidSpec', message);
    return { scaleTo: undefined, status: statusOf(observedGeneration, currentReplicas, previous.desiredReplicas ?? 0, undefined, conditions.list, previous.lastScaleTime), history, error: message };
  }
  if (currentReplicas === 0 && minReplicas !== 0) {
    conditions.set('ScalingActive', 'False', 'ScalingDisabled', 'scaling is disabled since the replica count of the target is zero');
    desired = 0;
  } else if (currentReplicas > maxReplicas) {
    desired = maxReplicas;
  } else if (currentReplicas < minReplicas) {
    desired = minReplicas;
  } else {
    const computed = computeReplicasForMetrics(input, currentReplicas, conditions, settings);
    if (computed.kind === 'failed') {
      const status = statusOf(observedGeneration, currentReplicas, previous.desiredReplicas ?? 0, computed.statuses, conditions.list, previous.lastScaleTime);
      return { scaleTo: undefined, status, history, error: computed.message };
    }
    metrics = computed.statuses;
    const normalized = normalizeReplicas({
      behavior: hpa.spec?.behavior,
      history,
      currentReplicas,
      proposedReplicas: computed.replicas,
      minReplicas,
      maxReplicas,
      nowMs,
      downscaleStabilizationWindowMs: settings.downscaleStabilizationWindowMs,
    });
    conditions.set('AbleToScale', 'True', normalized.stabilization.reason, normalized.stabilization.message);
    conditions.set('ScalingLimited', normalized.limited ? 'True' : 'False', normalized.limit.reason, normalized.limit.message);
    desired = normalized.replicas;
    history = normalized.history;
  }
  const rescale = desired !== currentReplicas;
  if (rescale) conditions.set('AbleToScale', 'True', 'SucceededRescale', `the HPA controller was able to update the target scale to ${desired}`);
  const status = statusOf(observedGeneration, currentReplicas, rescale ? desired : currentReplicas, metrics, conditions.list, rescale ? formatTimestamp(nowMs) : previous.lastScaleTime);
  return { scaleTo: rescale ? desired : undefined, status, history };
}

/** The status after the scale write failed (Kubernetes' FailedUpdateScale): no new size, no scale time. */
export function failedScaleStatus(input: AutoscalerInput, plan: AutoscalerPlan, message: string): HorizontalPodAutoscalerStatus {
  const previous = input.hpa.status ?? {};
  const conditions = setCondition(plan.status.conditions ?? [], 'AbleToScale', 'False', 'FailedUpdateScale', `the HPA controller was unable to update the target scale: ${message}`, formatTimestamp(input.nowMs));
  return { ...plan.status, desiredReplicas: previous.desiredReplicas ?? 0, lastScaleTime: previous.lastScaleTime, conditions };
}

function statusOf(observedGeneration: number, currentReplicas: number, desiredReplicas: number, metrics: MetricStatus[] | undefined, conditions: Condition[], lastScaleTime: string | undefined): HorizontalPodAutoscalerStatus {
  return {
    observedGeneration,
    ...(lastScaleTime === undefined ? {} : { lastScaleTime }),
    currentReplicas,
    desiredReplicas,
    ...(metrics === undefined || metrics.length === 0 ? {} : { currentMetrics: metrics }),
    conditions,
  };
}

// ------------------------------------------------------------------ metrics

type MetricResult = { readonly kind: 'computed'; readonly replicas: number; readonly name: string; readonly status: MetricStatus } | { readonly kind: 'failed'; readonly reason: string; readonly message: string };

type MetricsOutcome = { readonly kind: 'computed'; readonly replicas: number; readonly statuses: MetricStatus[] } | { readonly kind: 'failed'; readonly message: string; readonly statuses: MetricStatus[] };

/** Kubernetes' computeReplicasForMetrics: the largest proposal; failing metrics stop only a scale-down (or everything, when all fail). */
function computeReplicasForMetrics(input: AutoscalerInput, currentReplicas: number, conditions: Conditions, settings: AutoscalerSettings): MetricsOutcome {
  const selects = input.target.kind === 'found' ? input.target.selects : undefined;
  if (selects === undefined) {
    conditions.set('ScalingActive', 'False', 'InvalidSelector', "the HPA target's scale is missing a selector");
    return { kind: 'failed', message: "the HPA target's scale is missing a selector", statuses: [] };
  }
  const namespace = input.hpa.metadata?.namespace ?? '';
  const pods = input.pods.filter((pod) => (pod.metadata?.namespace ?? '') === namespace && selects(pod.metadata?.labels));
  const specs = input.hpa.spec?.metrics !== undefined && input.hpa.spec.metrics.length > 0 ? input.hpa.spec.metrics : [CPU_DEFAULT_METRIC];
  const statuses: MetricStatus[] = [];
  let replicas = 0;
  let metricName = '';
  let firstFailure: { readonly reason: string; readonly message: string } | undefined;
  let failures = 0;
  for (const spec of specs) {
    const result = computeReplicasForMetric(spec, currentReplicas, pods, input, settings);
    if (result.kind === 'failed') {
      firstFailure ??= result;
      failures++;
      continue;
    }
    statuses.push(result.status);
    if (replicas === 0 || result.replicas > replicas) {
      replicas = result.replicas;
      metricName = result.name;
    }
  }
  if (firstFailure !== undefined && (failures >= specs.length || replicas < currentReplicas)) {
    conditions.set('ScalingActive', 'False', firstFailure.reason, `the HPA was unable to compute the replica count: ${firstFailure.message}`);
    return { kind: 'failed', message: `invalid metrics (${failures} invalid out of ${specs.length}), first error is: ${firstFailure.message}`, statuses };
  }
  conditions.set('ScalingActive', 'True', 'ValidMetricFound', `the HPA was able to successfully calculate a replica count from ${metricName}`);
  return { kind: 'computed', replicas, statuses };
}

function samplesOf(pods: readonly Pod[], metrics: ReadonlyMap<string, PodMetrics>, sample: (metrics: PodMetrics) => Sample | undefined): Map<string, Sample> {
  const samples = new Map<string, Sample>();
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    const found = metrics.get(name);
    const value = found === undefined ? undefined : sample(found);
    if (value !== undefined) samples.set(name, value);
  }
  return samples;
}

function computeReplicasForMetric(spec: MetricSpec, currentReplicas: number, pods: readonly Pod[], input: AutoscalerInput, settings: AutoscalerSettings): MetricResult {
  switch (spec.type) {
    case 'Resource':
      return resourceMetric(spec.resource?.name ?? '', '', spec.resource?.target, currentReplicas, pods, input, settings, 'FailedGetResourceMetric');
    case 'ContainerResource':
      return resourceMetric(spec.containerResource?.name ?? '', spec.containerResource?.container ?? '', spec.containerResource?.target, currentReplicas, pods, input, settings, 'FailedGetContainerResourceMetric');
    case 'Pods':
      return podsMetric(spec, currentReplicas, pods, input, settings);
    default:
      return { kind: 'failed', reason: 'InvalidMetricSourceType', message: `unsupported metric source type "${spec.type ?? ''}": mast serves Resource, ContainerResource and Pods metrics` };
  }
}

function resourceMetric(resource: string, container: string, target: MetricTarget | undefined, currentReplicas: number, pods: readonly Pod[], input: AutoscalerInput, settings: AutoscalerSettings, reason: string): MetricResult {
  const samples = samplesOf(pods, input.metrics, (metrics) => resourceSample(metrics, resource, container));
  const metricStatus = (current: MetricValueStatus): MetricStatus =>
    container === '' ? { type: 'Resource', resource: { name: resource, current } } : { type: 'ContainerResource', containerResource: { name: resource, current, container } };
  const averageValue = parseQuantity(target?.averageValue, 'milli');
  if (averageValue !== undefined) {
    if (averageValue <= 0) return { kind: 'failed', reason, message: `invalid resource metric source: the average value target of ${resource} must be positive` };
    const proposal = samples.size === 0 ? noResourceMetrics(resource) : averageValueReplicas(currentReplicas, averageValue, resource, pods, samples, input.nowMs, settings);
    if (proposal.kind === 'failed') return { kind: 'failed', reason, message: `failed to get ${resource} usage: ${proposal.message}` };
    return { kind: 'computed', replicas: proposal.replicas, name: `${resource} resource`, status: metricStatus({ averageValue: formatMilli(proposal.averageMilli) }) };
  }
  const utilization = target?.averageUtilization;
  if (utilization === undefined || utilization <= 0) {
    return { kind: 'failed', reason, message: 'invalid resource metric source: neither an average utilization target nor an average value (usage) target was set' };
  }
  const proposal = utilizationReplicas(currentReplicas, utilization, resource, container, pods, samples, input.nowMs, settings);
  if (proposal.kind === 'failed') return { kind: 'failed', reason, message: `failed to get ${resource} utilization: ${proposal.message}` };
  const name = container === '' ? `${resource} resource utilization (percentage of request)` : `${resource} container resource utilization (percentage of request)`;
  return { kind: 'computed', replicas: proposal.replicas, name, status: metricStatus({ averageUtilization: proposal.utilization ?? 0, averageValue: formatMilli(proposal.averageMilli) }) };
}

function noResourceMetrics(resource: string): Proposal {
  return { kind: 'failed', message: `unable to get metrics for resource ${resource}: no metrics returned from resource metrics API` };
}

function podsMetric(spec: MetricSpec, currentReplicas: number, pods: readonly Pod[], input: AutoscalerInput, settings: AutoscalerSettings): MetricResult {
  const name = spec.pods?.metric?.name ?? '';
  const target = parseQuantity(spec.pods?.target?.averageValue, 'milli');
  if (target === undefined || target <= 0) return { kind: 'failed', reason: 'FailedGetPodsMetric', message: `invalid pods metric source: metric ${name} needs an averageValue target` };
  const samples = samplesOf(pods, input.metrics, (metrics) => customSample(metrics, name));
  const proposal =
    samples.size === 0
      ? ({ kind: 'failed', message: 'unable to fetch metrics from custom metrics API: no metrics returned from custom metrics API' } as const)
      : averageValueReplicas(currentReplicas, target, '', pods, samples, input.nowMs, settings);
  if (proposal.kind === 'failed') return { kind: 'failed', reason: 'FailedGetPodsMetric', message: `unable to get metric ${name}: ${proposal.message}` };
  const status: MetricStatus = { type: 'Pods', pods: { metric: { name, ...(spec.pods?.metric?.selector === undefined ? {} : { selector: spec.pods.metric.selector }) }, current: { averageValue: formatMilli(proposal.averageMilli) } } };
  return { kind: 'computed', replicas: proposal.replicas, name: `pods metric ${name}`, status };
}
