// The HorizontalPodAutoscaler controller's loop. Informers on HPAs and on
// PodMetrics; pods come from the shared informer. Each HPA is evaluated
// every syncPeriodMs (Kubernetes' --horizontal-pod-autoscaler-sync-period),
// when its spec changes, and shortly after the PodMetrics of a pod its
// target selects change. A sync reads the target's scale (spec.replicas,
// spec.selector) from the API, as Kubernetes reads the scale subresource,
// asks the pure plan (reconcile.ts) what to do, merge-patches the target's
// spec.replicas, then writes the status when it changed. The memory of
// recent recommendations and scale events lives here, per HPA, as in
// Kubernetes; a new leader starts afresh from the current scale.

import { runLoop } from '../common/loop.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { HorizontalPodAutoscaler } from '../../../proto/gen/resources/v1/autoscaling.js';
import type { LabelSelector } from '../../../proto/gen/resources/v1/meta.js';
import type { PodMetrics } from '../../../proto/gen/resources/v1/metrics.js';
import { keyOf } from '../../client/informer.js';
import type { KubeObject, ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import { sameJson } from '../common/reconcile-json.js';
import { equalitySelects, selectorMatches, type Labels } from '../common/reconcile-selector.js';
import { DEFAULT_AUTOSCALER_SETTINGS, EMPTY_HISTORY, failedScaleStatus, planAutoscaler, recordScale, type AutoscalerHistory, type AutoscalerInput, type AutoscalerSettings, type ScaleTarget } from './reconcile.js';

export interface HorizontalPodAutoscalerControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly pods: InformerView<KubeObject>;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
  /** How often each HPA is evaluated (default 15000, Kubernetes' --horizontal-pod-autoscaler-sync-period). */
  readonly syncPeriodMs?: number;
  /** Tolerance, cpu initialization period...: kube-controller-manager's defaults unless given. */
  readonly settings?: Partial<AutoscalerSettings>;
}

export const DEFAULT_SYNC_PERIOD_MS = 15_000;
/** PodMetrics of many pods change within this long of each other: one evaluation for all of them. */
export const METRICS_BATCH_MS = 1000;

/** The kinds with a scale the HPA can drive, by kind: their API group. */
const SCALABLE: Readonly<Record<string, string>> = { Deployment: 'apps', ReplicaSet: 'apps', StatefulSet: 'apps', ReplicationController: '' };

interface TargetObject extends KubeObject {
  spec?: { replicas?: number; selector?: LabelSelector | Record<string, string>; template?: { metadata?: { labels?: Record<string, string> } } };
}

type Selects = (labels: Labels) => boolean;

function groupOf(apiVersion: string | undefined): string {
  return apiVersion !== undefined && apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
}

function messageOf(error: unknown): string {
  if (typeof error === 'object' && error !== null && typeof (error as { details?: unknown }).details === 'string') return (error as { details: string }).details;
  return error instanceof Error ? error.message : String(error);
}

export class HorizontalPodAutoscalerController {
  private readonly hpas: InformerView<KubeObject>;
  private readonly podMetrics: InformerView<KubeObject>;
  private readonly queue: WorkQueue<string>;
  private readonly syncPeriodMs: number;
  private readonly settings: AutoscalerSettings;
  /** Per HPA key: what the controller remembers between evaluations. */
  private readonly histories = new Map<string, AutoscalerHistory>();
  /** Per HPA key: its target's selector when last read, to route PodMetrics changes. */
  private readonly selectors = new Map<string, { readonly namespace: string; readonly selects: Selects | undefined }>();

  constructor(private readonly options: HorizontalPodAutoscalerControllerOptions) {
    this.syncPeriodMs = options.syncPeriodMs ?? DEFAULT_SYNC_PERIOD_MS;
    this.settings = { ...DEFAULT_AUTOSCALER_SETTINGS, ...options.settings };
    // A failing HPA is retried quickly at first, then no more often than it is evaluated anyway.
    this.queue = new WorkQueue<string>({ maxBackoffMs: this.syncPeriodMs });
    this.hpas = informerFor(options, 'HorizontalPodAutoscaler');
    this.podMetrics = informerFor(options, 'PodMetrics');
  }

  /** Run until `signal` aborts. The pod informer is shared: start it (and wait for its sync) separately. */
  async run(signal: AbortSignal): Promise<void> {
    this.hpas.onAdd((hpa) => this.queue.add(keyOf(hpa)));
    this.hpas.onUpdate((old, hpa) => {
      // The controller's own status writes are no reason to evaluate again before the period.
      if (old.metadata?.generation !== hpa.metadata?.generation) this.queue.add(keyOf(hpa));
    });
    this.hpas.onDelete((hpa) => this.queue.add(keyOf(hpa)));
    this.podMetrics.onAdd((metrics) => this.metricsChanged(metrics));
    this.podMetrics.onUpdate((_old, metrics) => this.metricsChanged(metrics));
    this.podMetrics.onDelete((metrics) => this.metricsChanged(metrics));
    await runLoop({ signal, queue: this.queue, own: [this.hpas, this.podMetrics], shared: [this.options.pods], workers: this.options.workers ?? 2, name: 'HorizontalPodAutoscaler', sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Every HPA of the namespace whose target selects the pod (or whose target is not known yet). */
  private metricsChanged(metrics: KubeObject): void {
    const namespace = metrics.metadata?.namespace ?? '';
    for (const hpa of this.hpas.list()) {
      if ((hpa.metadata?.namespace ?? '') !== namespace) continue;
      const key = keyOf(hpa);
      const known = this.selectors.get(key);
      if (known === undefined || known.selects === undefined || known.selects(metrics.metadata?.labels)) this.queue.addAfter(key, METRICS_BATCH_MS);
    }
  }

  private async sync(key: string): Promise<void> {
    const hpa = this.hpas.getByKey(key) as HorizontalPodAutoscaler | undefined;
    if (hpa === undefined) {
      this.histories.delete(key);
      this.selectors.delete(key);
      return;
    }
    try {
      await this.evaluate(key, hpa);
    } finally {
      this.queue.addAfter(key, this.syncPeriodMs);
    }
  }

  private async evaluate(key: string, hpa: HorizontalPodAutoscaler): Promise<void> {
    const namespace = hpa.metadata?.namespace ?? '';
    const reference = hpa.spec?.scaleTargetRef ?? {};
    const target = await this.readTarget(namespace, reference.kind ?? '', reference.apiVersion, reference.name ?? '');
    this.selectors.set(key, { namespace, selects: target.kind === 'found' ? target.selects : undefined });
    const metrics = new Map<string, PodMetrics>();
    for (const object of this.podMetrics.list()) if (object.metadata?.namespace === namespace) metrics.set(object.metadata.name ?? '', object as PodMetrics);
    const input: AutoscalerInput = {
      hpa,
      target,
      pods: (this.options.pods.list() as Pod[]).filter((pod) => pod.metadata?.namespace === namespace),
      metrics,
      history: this.histories.get(key) ?? EMPTY_HISTORY,
      nowMs: this.now(),
      settings: this.settings,
    };
    const plan = planAutoscaler(input);
    this.histories.set(key, plan.history);
    if (plan.error !== undefined) this.options.log?.(`HorizontalPodAutoscaler ${key}: ${plan.error}`);
    let status = plan.status;
    let scaleError: unknown;
    if (plan.scaleTo !== undefined && target.kind === 'found') {
      try {
        await this.options.client.patch(reference.kind ?? '', namespace, reference.name ?? '', { metadata: { resourceVersion: target.resourceVersion }, spec: { replicas: plan.scaleTo } });
        this.histories.set(key, recordScale(hpa.spec?.behavior, plan.history, target.replicas, plan.scaleTo, input.nowMs));
        this.options.log?.(`HorizontalPodAutoscaler ${key}: scaled ${reference.kind ?? ''} ${reference.name ?? ''} from ${target.replicas} to ${plan.scaleTo}`);
      } catch (error) {
        scaleError = error;
        status = failedScaleStatus(input, plan, messageOf(error));
      }
    }
    if (!sameJson(status, hpa.status ?? {})) await this.options.client.updateStatus('HorizontalPodAutoscaler', { ...(hpa as KubeObject), status });
    if (scaleError !== undefined) throw scaleError;
  }

  /** The target's scale: spec.replicas and how its selector selects. */
  private async readTarget(namespace: string, kind: string, apiVersion: string | undefined, name: string): Promise<ScaleTarget & { readonly resourceVersion?: string }> {
    const group = SCALABLE[kind];
    if (group === undefined || (apiVersion !== undefined && apiVersion !== '' && groupOf(apiVersion) !== group)) {
      return { kind: 'failed', message: `no matches for kind "${kind}" in group "${groupOf(apiVersion)}"` };
    }
    let object: TargetObject;
    try {
      object = (await this.options.client.get(kind, namespace, name)) as TargetObject;
    } catch (error) {
      return { kind: 'failed', message: messageOf(error) };
    }
    const selector = object.spec?.selector;
    let selects: Selects | undefined;
    if (kind === 'ReplicationController') {
      const equality = (selector as Record<string, string> | undefined) ?? object.spec?.template?.metadata?.labels;
      selects = equality === undefined || Object.keys(equality).length === 0 ? undefined : (labels) => equalitySelects(equality, labels);
    } else if (selector !== undefined) {
      selects = (labels) => selectorMatches(selector as LabelSelector, labels);
    }
    return { kind: 'found', replicas: object.spec?.replicas ?? 1, selects, ...(object.metadata?.resourceVersion === undefined ? {} : { resourceVersion: object.metadata.resourceVersion }) };
  }
}

