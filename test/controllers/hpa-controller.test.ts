// The HorizontalPodAutoscaler controller in-process against a 1-master
// cluster, with the ReplicaSet controller: the test plays the kubelet
// (marks pods Running) and the node agent's metrics (writes PodMetrics).
// Usage above the target scales the ReplicaSet up to maxReplicas; usage
// far below it scales it back down once the (zero) window allows.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HorizontalPodAutoscalerStatus } from '../../proto/gen/resources/v1/autoscaling.js';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, statusCodeOf, type KubeObject } from '../../services/client/resources.js';
import { HorizontalPodAutoscalerController } from '../../services/controllers/hpa/controller.js';
import { ReplicaController } from '../../services/controllers/replicaset/controller.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

describe('controllers: the HorizontalPodAutoscaler controller against a cluster', function () {
  this.timeout(240_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;
  const controllers = new AbortController();
  const running: Promise<void>[] = [];
  const logged: string[] = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-hpa-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    const log = (line: string): void => void logged.push(line);
    const pods = new Informer(client, 'Pod', { log });
    pods.start();
    controllers.signal.addEventListener('abort', () => pods.stop(), { once: true });
    running.push(
      new ReplicaController({ client, kind: 'ReplicaSet', pods, log }).run(controllers.signal),
      new HorizontalPodAutoscalerController({ client, pods, log, syncPeriodMs: 1000 }).run(controllers.signal),
    );
  });

  after(async function () {
    controllers.abort();
    await Promise.allSettled(running);
    client?.close();
    await cluster?.destroy();
  });

  /** The kubelet and the metrics agent: every live pod Running and Ready (for long), its PodMetrics at `cpu`. */
  async function report(cpu: string): Promise<KubeObject[]> {
    const api = client!;
    const longAgo = new Date(Date.now() - 10 * 60_000).toISOString();
    const live = (await api.list('Pod', { namespace: 'default', labelSelector: 'app=web' })).items.filter((pod) => pod.metadata?.deletionTimestamp === undefined);
    for (const pod of live) {
      const name = pod.metadata?.name ?? '';
      if ((pod.status as { phase?: string } | undefined)?.phase !== 'Running') {
        await api.updateStatus('Pod', { ...pod, status: { phase: 'Running', startTime: longAgo, podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: longAgo }] } });
      }
      const metrics = {
        apiVersion: 'metrics.k8s.io/v1beta1',
        kind: 'PodMetrics',
        metadata: { name, namespace: 'default', labels: pod.metadata?.labels ?? {} },
        timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
        window: '15s',
        containers: [{ name: 'c', usage: { cpu, memory: '20Mi' } }],
      };
      try {
        const current = await api.get('PodMetrics', 'default', name);
        const usage = (current as { containers?: Array<{ usage?: { cpu?: string } }> }).containers?.[0]?.usage?.cpu;
        if (usage !== cpu) await api.update('PodMetrics', { ...metrics, metadata: { ...metrics.metadata, resourceVersion: current.metadata?.resourceVersion } });
      } catch (error) {
        if (statusCodeOf(error) !== grpc.status.NOT_FOUND) throw error;
        await api.create('PodMetrics', metrics);
      }
    }
    return live;
  }

  const replicas = async (): Promise<number> => ((await client!.get('ReplicaSet', 'default', 'web')).spec as { replicas: number }).replicas;
  const hpaStatus = async (): Promise<HorizontalPodAutoscalerStatus> => ((await client!.get('HorizontalPodAutoscaler', 'default', 'web')).status ?? {}) as HorizontalPodAutoscalerStatus;

  it('scales a ReplicaSet up on high cpu utilization and back down on low', async function () {
    const api = client!;
    await api.create('ReplicaSet', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'nginx', resources: { requests: { cpu: '100m' } } }] } },
      },
    });
    await waitFor('the first pod', async () => ((await report('200m')).length === 1 ? true : undefined), 60_000, 100);
    await api.create('HorizontalPodAutoscaler', {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web' },
        minReplicas: 1,
        maxReplicas: 5,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 50 } } }],
        behavior: { scaleDown: { stabilizationWindowSeconds: 0 } },
      },
    });
    // 200m of 100m requested against a 50% target: 4× the pods, then the cap of 5.
    await waitFor('the ReplicaSet scaled up', async () => {
      await report('200m');
      return (await replicas()) > 1 ? true : undefined;
    }, 120_000, 200);
    const up = await waitFor('5 replicas, all reporting', async () => {
      const live = await report('200m');
      const status = await hpaStatus();
      return (await replicas()) === 5 && live.length === 5 && status.currentReplicas === 5 ? status : undefined;
    }, 120_000, 200);
    expect(up.desiredReplicas).to.equal(5);
    expect(up.lastScaleTime).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(up.currentMetrics).to.deep.equal([{ type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: 200, averageValue: '200m' } } }]);
    const conditions = Object.fromEntries((up.conditions ?? []).map((condition) => [condition.type, `${condition.status} ${condition.reason}`]));
    expect(conditions).to.deep.equal({ AbleToScale: 'True ReadyForNewScale', ScalingActive: 'True ValidMetricFound', ScalingLimited: 'True TooManyReplicas' });
    expect(logged.some((line) => /scaled ReplicaSet web from 1 to [2-5]/.test(line)), logged.join('\n')).to.equal(true);

    // 10m: 10% against 50% → ceil(0.2 × 5) = 1, at once with a zero scale-down window.
    const down = await waitFor('the ReplicaSet scaled down to 1', async () => {
      await report('10m');
      const status = await hpaStatus();
      return (await replicas()) === 1 && status.desiredReplicas === 1 ? status : undefined;
    }, 120_000, 200);
    expect(down.conditions?.find((condition) => condition.type === 'ScalingActive')?.status).to.equal('True');
    const observed = await api.get('HorizontalPodAutoscaler', 'default', 'web');
    expect(down.observedGeneration).to.equal(observed.metadata?.generation);
    await waitFor('one pod left', async () => ((await report('10m')).length === 1 ? true : undefined), 60_000, 200);
  });
});
