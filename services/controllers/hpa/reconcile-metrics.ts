// Kubernetes' replica calculator (pkg/controller/podautoscaler/
// replica_calculator.go) as pure functions: from the target's pods, their
// PodMetrics and the time, the replica count one metric asks for.
//
// Pods being deleted, Failed, Succeeded or Pending are ignored. A pod
// without a sample is "missing": on a scale-up it counts as using nothing,
// on a scale-down as using its request (or the target, whichever is more).
// For cpu, a pod not yet ready, or still starting with a sample older than
// its readiness, is "unready": ignored, or counted as using nothing on a
// scale-up. A ratio within the tolerance of 1 keeps the current count, and
// so does a correction that would reverse the direction.

import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { PodMetrics } from '../../../proto/gen/resources/v1/metrics.js';
import { parseTimestampMs } from '../../client/timestamps.js';
import { parseQuantity } from '../../client/quantity.js';
import { parseDurationMs } from './reconcile-units.js';

export interface CalculatorSettings {
  /** No change while |1 - ratio| is at most this (--horizontal-pod-autoscaler-tolerance). */
  readonly tolerance: number;
  /** After a pod starts, cpu samples count only once they follow its readiness. */
  readonly cpuInitializationPeriodMs: number;
  /** A pod that turned unready this soon after starting has never been ready. */
  readonly delayOfInitialReadinessStatusMs: number;
}

/** One pod's value of one metric, in milli-units. */
export interface Sample {
  readonly milli: number;
  readonly timestampMs: number;
  readonly windowMs: number;
}

export type Proposal =
  | { readonly kind: 'proposal'; readonly replicas: number; readonly averageMilli: number; readonly utilization?: number }
  | { readonly kind: 'failed'; readonly message: string };

function failed(message: string): Proposal {
  return { kind: 'failed', message };
}

/** A pod's usage of a resource: the sum over its containers (or the one named); none when a container lacks it. */
export function resourceSample(metrics: PodMetrics, resource: string, container = ''): Sample | undefined {
  const containers = (metrics.containers ?? []).filter((entry) => container === '' || entry.name === container);
  if (containers.length === 0) return undefined;
  let milli = 0;
  for (const entry of containers) {
    const value = parseQuantity(entry.usage?.[resource], 'milli');
    if (value === undefined) return undefined;
    milli += value;
  }
  return { milli, timestampMs: parseTimestampMs(metrics.timestamp) ?? 0, windowMs: parseDurationMs(metrics.window) ?? 0 };
}

/** A pod's value of a custom metric (PodMetrics.customMetrics, mast's stand-in for the custom metrics API). */
export function customSample(metrics: PodMetrics, name: string): Sample | undefined {
  const milli = parseQuantity(metrics.customMetrics?.[name], 'milli');
  if (milli === undefined) return undefined;
  return { milli, timestampMs: parseTimestampMs(metrics.timestamp) ?? 0, windowMs: parseDurationMs(metrics.window) ?? 0 };
}

interface Groups {
  readyCount: number;
  readonly unready: Set<string>;
  readonly missing: Set<string>;
}

function cpuUnready(pod: Pod, sample: Sample, nowMs: number, settings: CalculatorSettings): boolean {
  const ready = (pod.status?.conditions ?? []).find((condition) => condition.type === 'Ready');
  const startMs = parseTimestampMs(pod.status?.startTime);
  if (ready === undefined || startMs === undefined) return true;
  const transitionMs = parseTimestampMs(ready.lastTransitionTime) ?? 0;
  if (startMs + settings.cpuInitializationPeriodMs > nowMs) {
    return ready.status === 'False' || sample.timestampMs < transitionMs + sample.windowMs;
  }
  return ready.status === 'False' && startMs + settings.delayOfInitialReadinessStatusMs > transitionMs;
}

/** Kubernetes' groupPods; the samples of ignored and unready pods are not returned in `counted`. */
function groupPods(pods: readonly Pod[], samples: ReadonlyMap<string, Sample>, resource: string, nowMs: number, settings: CalculatorSettings): Groups & { readonly counted: Map<string, number> } {
  const groups = { readyCount: 0, unready: new Set<string>(), missing: new Set<string>(), counted: new Map<string, number>() };
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    const phase = pod.status?.phase ?? 'Pending';
    if (pod.metadata?.deletionTimestamp !== undefined || phase === 'Failed' || phase === 'Succeeded' || phase === 'Pending') continue;
    const sample = samples.get(name);
    if (sample === undefined) groups.missing.add(name);
    else if (resource === 'cpu' && cpuUnready(pod, sample, nowMs, settings)) groups.unready.add(name);
    else {
      groups.readyCount++;
      groups.counted.set(name, sample.milli);
    }
  }
  return groups;
}

/**
 * The shared tail of GetResourceReplicas and calcPlainMetricReplicas: the
 * plain proposal when nothing is missing or unready, otherwise the
 * proposal with missing and unready pods filled in.
 */
function proposeReplicas(currentReplicas: number, groups: Groups, counted: ReadonlyMap<string, number>, ratioOf: (values: ReadonlyMap<string, number>) => number, scaleDownFallback: (pod: string) => number, tolerance: number): number {
  const ratio = ratioOf(counted);
  const scaleUpWithUnready = groups.unready.size > 0 && ratio > 1;
  if (!scaleUpWithUnready && groups.missing.size === 0) {
    return Math.abs(1 - ratio) <= tolerance ? currentReplicas : Math.ceil(ratio * groups.readyCount);
  }
  const filled = new Map(counted);
  if (ratio < 1) for (const pod of groups.missing) filled.set(pod, scaleDownFallback(pod));
  else if (ratio > 1) for (const pod of groups.missing) filled.set(pod, 0);
  if (scaleUpWithUnready) for (const pod of groups.unready) filled.set(pod, 0);
  const newRatio = ratioOf(filled);
  if (Math.abs(1 - newRatio) <= tolerance || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1)) return currentReplicas;
  const replicas = Math.ceil(newRatio * filled.size);
  if ((newRatio < 1 && replicas > currentReplicas) || (newRatio > 1 && replicas < currentReplicas)) return currentReplicas;
  return replicas;
}

/** Each pod's request of the resource in milli-units (its containers', or the one named); an error names the first container without one. */
export function podRequests(pods: readonly Pod[], resource: string, container = ''): Map<string, number> | string {
  const requests = new Map<string, number>();
  for (const pod of pods) {
    let sum = 0;
    for (const entry of pod.spec?.containers ?? []) {
      if (container !== '' && entry.name !== container) continue;
      const request = parseQuantity(entry.resources?.requests?.[resource], 'milli');
      if (request === undefined) return `missing request for ${resource} in container ${entry.name ?? ''} of Pod ${pod.metadata?.name ?? ''}`;
      sum += request;
    }
    requests.set(pod.metadata?.name ?? '', sum);
  }
  return requests;
}

/** Utilization in whole percent of the requests, and the average usage (GetResourceUtilizationRatio). */
function utilizationOf(values: ReadonlyMap<string, number>, requests: ReadonlyMap<string, number>): { readonly utilization: number; readonly averageMilli: number } | undefined {
  let usage = 0;
  let requested = 0;
  let entries = 0;
  for (const [pod, value] of values) {
    const request = requests.get(pod);
    if (request === undefined) continue;
    usage += value;
    requested += request;
    entries++;
  }
  if (requested === 0) return undefined;
  return { utilization: Math.trunc((usage * 100) / requested), averageMilli: Math.trunc(usage / entries) };
}

/** Replicas for a resource's target utilization (percent of the pods' requests). */
export function utilizationReplicas(currentReplicas: number, targetUtilization: number, resource: string, container: string, pods: readonly Pod[], samples: ReadonlyMap<string, Sample>, nowMs: number, settings: CalculatorSettings): Proposal {
  if (samples.size === 0) return failed(`unable to get metrics for resource ${resource}: no metrics returned from resource metrics API`);
  if (pods.length === 0) return failed('no pods returned by selector while calculating replica count');
  const groups = groupPods(pods, samples, resource, nowMs, settings);
  if (groups.counted.size === 0) return failed('did not receive metrics for targeted pods (pods might be unready)');
  const requests = podRequests(pods, resource, container);
  if (typeof requests === 'string') return failed(requests);
  const current = utilizationOf(groups.counted, requests);
  if (current === undefined) return failed('no metrics returned matched known pods');
  const ratioOf = (values: ReadonlyMap<string, number>): number => (utilizationOf(values, requests)?.utilization ?? 0) / targetUtilization;
  const fallback = (pod: string): number => Math.trunc(((requests.get(pod) ?? 0) * Math.max(100, targetUtilization)) / 100);
  const replicas = proposeReplicas(currentReplicas, groups, groups.counted, ratioOf, fallback, settings.tolerance);
  return { kind: 'proposal', replicas, averageMilli: current.averageMilli, utilization: current.utilization };
}

/** Replicas for a target average value per pod (calcPlainMetricReplicas): resources by AverageValue, and Pods metrics. */
export function averageValueReplicas(currentReplicas: number, targetMilli: number, resource: string, pods: readonly Pod[], samples: ReadonlyMap<string, Sample>, nowMs: number, settings: CalculatorSettings): Proposal {
  if (pods.length === 0) return failed('no pods returned by selector while calculating replica count');
  const groups = groupPods(pods, samples, resource, nowMs, settings);
  if (groups.counted.size === 0) return failed('did not receive metrics for targeted pods (pods might be unready)');
  const averageOf = (values: ReadonlyMap<string, number>): number => Math.trunc([...values.values()].reduce((sum, value) => sum + value, 0) / values.size);
  const ratioOf = (values: ReadonlyMap<string, number>): number => averageOf(values) / targetMilli;
  const replicas = proposeReplicas(currentReplicas, groups, groups.counted, ratioOf, () => targetMilli, settings.tolerance);
  return { kind: 'proposal', replicas, averageMilli: averageOf(groups.counted) };
}
