// The HorizontalPodAutoscaler's rate of change (Kubernetes'
// normalizeDesiredReplicas and normalizeDesiredReplicasWithBehaviors), pure:
// from the largest proposal of the metrics to the count to scale to.
// Without spec.behavior, Kubernetes' original rules: scale-down stabilization
// over the last 5 minutes (the highest recent recommendation), scale-up at
// most to max(2 × current, 4) per evaluation. With spec.behavior (missing
// fields defaulted as the API server does): the lowest recommendation of the
// scale-up window and the highest of the scale-down window, then the rates
// the scaling policies allow given the scale events of their periods.

import type { HorizontalPodAutoscalerBehavior, HPAScalingRules } from '../../../proto/gen/resources/v1/autoscaling.js';

export interface TimedRecommendation {
  readonly replicas: number;
  readonly atMs: number;
}

export interface TimedScaleEvent {
  readonly change: number;
  readonly atMs: number;
}

/** The controller's memory of one HPA (Kubernetes keeps it in memory too). */
export interface AutoscalerHistory {
  readonly recommendations: readonly TimedRecommendation[];
  readonly scaleUpEvents: readonly TimedScaleEvent[];
  readonly scaleDownEvents: readonly TimedScaleEvent[];
}

export const EMPTY_HISTORY: AutoscalerHistory = { recommendations: [], scaleUpEvents: [], scaleDownEvents: [] };

/**
 * Bounds on the memory per HPA. Old entries are reused in place (as
 * Kubernetes does), so the lists hold what one window or policy period
 * holds; past these limits the oldest go first.
 */
export const MAX_RECOMMENDATIONS = 1024;
export const MAX_SCALE_EVENTS = 1024;

/** Why AbleToScale and ScalingLimited say what they say. */
export interface Reason {
  readonly reason: string;
  readonly message: string;
}

export interface Normalized {
  readonly replicas: number;
  readonly history: AutoscalerHistory;
  /** AbleToScale (True): stabilized, or ready for a new scale. */
  readonly stabilization: Reason;
  /** ScalingLimited: True when the bounds or rates changed the stabilized count. */
  readonly limited: boolean;
  readonly limit: Reason;
}

export interface NormalizeInput {
  readonly behavior: HorizontalPodAutoscalerBehavior | undefined;
  readonly history: AutoscalerHistory;
  readonly currentReplicas: number;
  /** The largest proposal of the metrics. */
  readonly proposedReplicas: number;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly nowMs: number;
  /** The scale-down window without behavior (and when behavior leaves it unset). */
  readonly downscaleStabilizationWindowMs: number;
}

const READY: Reason = { reason: 'ReadyForNewScale', message: 'recommended size matches current size' };
const WITHIN_RANGE: Reason = { reason: 'DesiredWithinRange', message: 'the desired count is within the acceptable range' };

export function normalizeReplicas(input: NormalizeInput): Normalized {
  const { behavior, history, currentReplicas: current, proposedReplicas: proposed, nowMs } = input;
  if (behavior === undefined) return normalizeWithoutBehavior(input);
  const scaleUp = withDefaults(behavior.scaleUp, SCALE_UP_DEFAULTS);
  const scaleDown = withDefaults(behavior.scaleDown, { ...SCALE_DOWN_DEFAULTS, stabilizationWindowSeconds: input.downscaleStabilizationWindowMs / 1000 });
  const stabilized = stabilizeWithBehaviors(history, current, proposed, scaleUp, scaleDown, nowMs);
  const limited = limitByPolicies(history, current, stabilized.replicas, input.minReplicas, input.maxReplicas, scaleUp, scaleDown, nowMs);
  return {
    replicas: limited.replicas,
    history: stabilized.history,
    stabilization: stabilized.replicas !== proposed ? { reason: stabilized.reason, message: stabilized.message } : READY,
    limited: limited.replicas !== stabilized.replicas,
    limit: { reason: limited.reason, message: limited.message },
  };
}

/** A new sample in the first slot that fell out of every window (Kubernetes reuses it), else appended. */
function record<T extends { readonly atMs: number }>(list: readonly T[], entry: T, outdated: (item: T) => boolean, limit: number): T[] {
  const index = list.findIndex(outdated);
  if (index >= 0) return list.map((item, at) => (at === index ? entry : item));
  const next = [...list, entry];
  return next.length > limit ? next.slice(next.length - limit) : next;
}

function normalizeWithoutBehavior(input: NormalizeInput): Normalized {
  const { history, currentReplicas: current, proposedReplicas: proposed, minReplicas, maxReplicas, nowMs } = input;
  const cutoffMs = nowMs - input.downscaleStabilizationWindowMs;
  let stabilized = proposed;
  for (const recommendation of history.recommendations) if (recommendation.atMs > cutoffMs) stabilized = Math.max(stabilized, recommendation.replicas);
  const recommendations = record(history.recommendations, { replicas: proposed, atMs: nowMs }, (item) => item.atMs < cutoffMs, MAX_RECOMMENDATIONS);
  const stabilization =
    stabilized !== proposed ? { reason: 'ScaleDownStabilized', message: 'recent recommendations were higher than current one, applying the highest recent recommendation' } : READY;
  // Against bogus usage reports: at most double (or 4) per evaluation.
  const scaleUpLimit = Math.max(2 * current, 4);
  const [maximum, tooMany]: [number, Reason] =
    maxReplicas > scaleUpLimit
      ? [scaleUpLimit, { reason: 'ScaleUpLimit', message: 'the desired replica count is increasing faster than the maximum scale rate' }]
      : [maxReplicas, { reason: 'TooManyReplicas', message: 'the desired replica count is more than the maximum replica count' }];
  let replicas = stabilized;
  let limit: Reason = WITHIN_RANGE;
  if (stabilized < minReplicas) [replicas, limit] = [minReplicas, { reason: 'TooFewReplicas', message: 'the desired replica count is less than the minimum replica count' }];
  else if (stabilized > maximum) [replicas, limit] = [maximum, tooMany];
  return { replicas, history: { ...history, recommendations }, stabilization, limited: replicas !== stabilized, limit };
}

interface Rules {
  readonly stabilizationWindowSeconds: number;
  readonly selectPolicy: string;
  readonly policies: readonly { readonly type: string; readonly value: number; readonly periodSeconds: number }[];
}

/** autoscaling/v2 defaults (GenerateHPAScaleUpRules, GenerateHPAScaleDownRules). */
export const SCALE_UP_DEFAULTS: Rules = { stabilizationWindowSeconds: 0, selectPolicy: 'Max', policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }, { type: 'Percent', value: 100, periodSeconds: 15 }] };
export const SCALE_DOWN_DEFAULTS: Rules = { stabilizationWindowSeconds: 300, selectPolicy: 'Max', policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }] };

function withDefaults(rules: HPAScalingRules | undefined, defaults: Rules): Rules {
  return {
    stabilizationWindowSeconds: rules?.stabilizationWindowSeconds ?? defaults.stabilizationWindowSeconds,
    selectPolicy: rules?.selectPolicy ?? defaults.selectPolicy,
    policies: rules?.policies === undefined ? defaults.policies : rules.policies.map((policy) => ({ type: policy.type ?? '', value: policy.value ?? 0, periodSeconds: policy.periodSeconds ?? 0 })),
  };
}

/** stabilizeRecommendationWithBehaviors: between the lowest recommendation of the up window and the highest of the down window. */
function stabilizeWithBehaviors(history: AutoscalerHistory, current: number, proposed: number, scaleUp: Rules, scaleDown: Rules, nowMs: number): Reason & { readonly replicas: number; readonly history: AutoscalerHistory } {
  const upCutoffMs = nowMs - scaleUp.stabilizationWindowSeconds * 1000;
  const downCutoffMs = nowMs - scaleDown.stabilizationWindowSeconds * 1000;
  let up = proposed;
  let down = proposed;
  for (const recommendation of history.recommendations) {
    if (recommendation.atMs > upCutoffMs) up = Math.min(up, recommendation.replicas);
    if (recommendation.atMs > downCutoffMs) down = Math.max(down, recommendation.replicas);
  }
  const replicas = Math.min(Math.max(current, up), down);
  const recommendations = record(history.recommendations, { replicas: proposed, atMs: nowMs }, (item) => item.atMs < upCutoffMs && item.atMs < downCutoffMs, MAX_RECOMMENDATIONS);
  const [reason, message] =
    proposed >= current
      ? ['ScaleUpStabilized', 'recent recommendations were lower than current one, applying the lowest recent recommendation']
      : ['ScaleDownStabilized', 'recent recommendations were higher than current one, applying the highest recent recommendation'];
  return { replicas, history: { ...history, recommendations }, reason, message };
}

function changeWithin(events: readonly TimedScaleEvent[], periodSeconds: number, nowMs: number): number {
  const cutoffMs = nowMs - periodSeconds * 1000;
  return events.reduce((sum, event) => (event.atMs > cutoffMs ? sum + event.change : sum), 0);
}

/** The most replicas the scale-up policies allow now (calculateScaleUpLimitWithScalingRules). */
function scaleUpLimit(history: AutoscalerHistory, current: number, rules: Rules, nowMs: number): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const proposals = rules.policies.map((policy) => {
    const periodStart = current - changeWithin(history.scaleUpEvents, policy.periodSeconds, nowMs) + changeWithin(history.scaleDownEvents, policy.periodSeconds, nowMs);
    return policy.type === 'Pods' ? periodStart + policy.value : Math.ceil(periodStart * (1 + policy.value / 100));
  });
  if (proposals.length === 0) return rules.selectPolicy === 'Min' ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
  return rules.selectPolicy === 'Min' ? Math.min(...proposals) : Math.max(...proposals);
}

/** The fewest replicas the scale-down policies allow now (calculateScaleDownLimitWithBehaviors). */
function scaleDownLimit(history: AutoscalerHistory, current: number, rules: Rules, nowMs: number): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const proposals = rules.policies.map((policy) => {
    const periodStart = current - changeWithin(history.scaleUpEvents, policy.periodSeconds, nowMs) + changeWithin(history.scaleDownEvents, policy.periodSeconds, nowMs);
    return policy.type === 'Pods' ? periodStart - policy.value : Math.trunc(periodStart * (1 - policy.value / 100));
  });
  if (proposals.length === 0) return rules.selectPolicy === 'Min' ? Number.MIN_SAFE_INTEGER : Number.MAX_SAFE_INTEGER;
  return rules.selectPolicy === 'Min' ? Math.max(...proposals) : Math.min(...proposals);
}

/** convertDesiredReplicasWithBehaviorRate: within [min, max] and the policies' rates. */
function limitByPolicies(history: AutoscalerHistory, current: number, desired: number, minReplicas: number, maxReplicas: number, scaleUp: Rules, scaleDown: Rules, nowMs: number): { readonly replicas: number; readonly reason: string; readonly message: string } {
  if (desired > current) {
    const limit = Math.max(scaleUpLimit(history, current, scaleUp, nowMs), current);
    const [maximum, reason, message] =
      maxReplicas > limit
        ? [limit, 'ScaleUpLimit', 'the desired replica count is increasing faster than the maximum scale rate']
        : [maxReplicas, 'TooManyReplicas', 'the desired replica count is more than the maximum replica count'];
    if (desired > maximum) return { replicas: maximum, reason, message };
  } else if (desired < current) {
    const limit = Math.min(scaleDownLimit(history, current, scaleDown, nowMs), current);
    const [minimum, reason, message] =
      minReplicas < limit
        ? [limit, 'ScaleDownLimit', 'the desired replica count is decreasing faster than the maximum scale rate']
        : [minReplicas, 'TooFewReplicas', 'the desired replica count is less than the minimum replica count'];
    if (desired < minimum) return { replicas: minimum, reason, message };
  }
  return { replicas: desired, ...WITHIN_RANGE };
}

/** Remember a scale the controller made (storeScaleEvent); only with spec.behavior, whose policies read them. */
export function recordScale(behavior: HorizontalPodAutoscalerBehavior | undefined, history: AutoscalerHistory, fromReplicas: number, toReplicas: number, nowMs: number): AutoscalerHistory {
  if (behavior === undefined || fromReplicas === toReplicas) return history;
  const up = toReplicas > fromReplicas;
  const rules = up ? withDefaults(behavior.scaleUp, SCALE_UP_DEFAULTS) : withDefaults(behavior.scaleDown, SCALE_DOWN_DEFAULTS);
  const longestPeriodMs = Math.max(0, ...rules.policies.map((policy) => policy.periodSeconds)) * 1000;
  const event = { change: Math.abs(toReplicas - fromReplicas), atMs: nowMs };
  const outdated = (item: TimedScaleEvent): boolean => item.atMs < nowMs - longestPeriodMs;
  return up
    ? { ...history, scaleUpEvents: record(history.scaleUpEvents, event, outdated, MAX_SCALE_EVENTS) }
    : { ...history, scaleDownEvents: record(history.scaleDownEvents, event, outdated, MAX_SCALE_EVENTS) };
}
