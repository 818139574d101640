// The StatefulSet controller running in-process against a 1-master
// cluster: pods made in order (web-1 only once web-0 is Running and Ready),
// each with its own PersistentVolumeClaim, a failed pod made again under its
// name, and a scale-down from the highest ordinal, one at a time, the claims
// kept. The test plays the scheduler and the kubelet.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { StatefulSetController } from '../../services/controllers/statefulset/controller.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

type Pod = KubeObject & {
  spec?: { nodeName?: string; hostname?: string; subdomain?: string; volumes?: unknown[] };
  status?: { phase?: string; conditions?: Array<{ type: string; status: string }> };
};

/** One watch event as recorded: its order is the store's. */
interface Seen {
  readonly type: string;
  readonly name: string;
  readonly ready: boolean;
  readonly deleting: boolean;
}

const isReady = (pod: Pod): boolean => pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True');
const deleting = (pod: Pod): boolean => pod.metadata?.deletionTimestamp !== undefined;

describe('controllers: the StatefulSet controller in-process', function () {
  this.timeout(240_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  let pods: Informer<KubeObject>;
  const stop = new AbortController();
  const running: Promise<unknown>[] = [];
  const seen: Seen[] = [];
  let stopWatch: (() => void) | undefined;
  /** Whether the kubelet starts bound pods by itself (else the test does, one by one). */
  let autoStart = false;

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-sts-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    const listed = await client.list('Pod', { namespace: 'default' });
    stopWatch = client.watch('Pod', { namespace: 'default', labelSelector: 'app=web', resourceVersion: listed.resourceVersion }, {
      onEvent: (type, object) => seen.push({ type, name: object.metadata?.name ?? '', ready: isReady(object as Pod), deleting: deleting(object as Pod) }),
    });
    pods = new Informer(client, 'Pod');
    pods.start();
    running.push(new StatefulSetController({ client, pods }).run(stop.signal), kubelet(stop.signal));
  });

  after(async function () {
    stop.abort();
    stopWatch?.();
    pods?.stop();
    await Promise.allSettled(running);
    client?.close();
    await cluster?.destroy();
  });

  const start = async (pod: Pod): Promise<void> => {
    const bound = (pod.spec?.nodeName ?? '') === '' ? ((await client.bind('default', pod.metadata?.name ?? '', 'n1')) as Pod) : pod;
    await client.updateStatus('Pod', { ...bound, status: { phase: 'Running', podIP: '10.3.0.1', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }] } });
  };

  /** The scheduler and kubelet: graceful deletions complete; with autoStart, new pods are bound and started. */
  async function kubelet(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for (const pod of (await client.list('Pod', { namespace: 'default' })).items as Pod[]) {
          if (deleting(pod)) await client.delete('Pod', 'default', pod.metadata?.name ?? '', { gracePeriodSeconds: 0 });
          else if (autoStart && pod.status?.phase === undefined) await start(pod);
        }
      } catch {
        // A pod changed or went meanwhile: the next round sees it as it is.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  const get = (name: string): Promise<Pod | undefined> => client.get('Pod', 'default', name).then((pod) => pod as Pod, () => undefined);
  const appears = (name: string): Promise<Pod> => waitFor(`pod ${name}`, () => get(name), 90_000, 50);
  const status = (check: (reported: Record<string, unknown>, generation: unknown) => boolean): Promise<Record<string, unknown>> =>
    waitFor('the StatefulSet status', async () => {
      const current = await client.get('StatefulSet', 'default', 'web');
      const reported = (current.status ?? {}) as Record<string, unknown>;
      return check(reported, current.metadata?.generation) ? reported : undefined;
    }, 90_000, 50);
  /** The index of the first recorded event matching, or -1. */
  const firstSeen = (match: (event: Seen) => boolean): number => seen.findIndex(match);

  it('creates web-0, web-1, web-2 in order, each with its claim, only once the one before is Running and Ready', async function () {
    await client.create('StatefulSet', {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 3,
        serviceName: 'web',
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'web:1' }] } },
        volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
      },
    });
    const set = await client.get('StatefulSet', 'default', 'web');
    for (const [index, name] of ['web-0', 'web-1', 'web-2'].entries()) {
      const pod = await appears(name);
      expect(pod.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'web', uid: set.metadata?.uid, controller: true, blockOwnerDeletion: true }]);
      expect(pod.metadata?.labels).to.deep.include({ app: 'web', 'statefulset.kubernetes.io/pod-name': name, 'apps.kubernetes.io/pod-index': String(index) });
      expect(pod.spec).to.deep.include({ hostname: name, subdomain: 'web' });
      expect(pod.spec?.volumes).to.deep.equal([{ name: 'data', persistentVolumeClaim: { claimName: `data-${name}` } }]);
      const claim = await client.get('PersistentVolumeClaim', 'default', `data-${name}`);
      expect(claim.metadata?.labels).to.deep.equal({ app: 'web' });
      // The controller has seen this pod (its status counts it) and still made no next one.
      await status((reported, generation) => typeof reported.replicas === 'number' && reported.replicas >= index + 1 && reported.observedGeneration === generation);
      expect(await get(`web-${index + 1}`)).to.equal(undefined);
      await start(pod);
    }
    await status((reported) => reported.readyReplicas === 3);
    // In the store's own order: each pod was added only after the one before it was seen Ready.
    for (const ordinal of [1, 2]) {
      const added = firstSeen((event) => event.type === 'ADDED' && event.name === `web-${ordinal}`);
      const readyBefore = firstSeen((event) => event.name === `web-${ordinal - 1}` && event.ready);
      expect(readyBefore, `web-${ordinal - 1} ready`).to.be.greaterThan(-1);
      expect(added, `web-${ordinal} added after web-${ordinal - 1} ready`).to.be.greaterThan(readyBefore);
    }
  });

  it('makes a failed pod again under its own name', async function () {
    const failed = (await get('web-1'))!;
    await client.updateStatus('Pod', { ...failed, status: { phase: 'Failed' } });
    const again = await waitFor('web-1 made again', async () => {
      const pod = await get('web-1');
      return pod !== undefined && pod.metadata?.uid !== failed.metadata?.uid ? pod : undefined;
    }, 90_000, 50);
    expect(again.spec?.volumes).to.deep.equal([{ name: 'data', persistentVolumeClaim: { claimName: 'data-web-1' } }]);
    await start(again);
    await status((reported) => reported.readyReplicas === 3);
  });

  it('scales down from the highest ordinal, one at a time, keeping the claims', async function () {
    autoStart = true;
    const from = seen.length;
    await client.patch('StatefulSet', 'default', 'web', { spec: { replicas: 1 } });
    await waitFor('only web-0 left', async () => {
      const names = (await client.list('Pod', { namespace: 'default', labelSelector: 'app=web' })).items.map((pod) => pod.metadata?.name);
      return names.length === 1 && names[0] === 'web-0' ? true : undefined;
    }, 90_000, 50);
    await status((reported) => reported.replicas === 1 && reported.readyReplicas === 1);
    await waitFor('the watch to see web-1 go', async () => (seen.slice(from).some((event) => event.type === 'DELETED' && event.name === 'web-1') ? true : undefined), 30_000, 50);
    const after = seen.slice(from);
    const index = (match: (event: Seen) => boolean): number => after.findIndex(match);
    const web2Gone = index((event) => event.type === 'DELETED' && event.name === 'web-2');
    const web1Marked = index((event) => event.name === 'web-1' && (event.deleting || event.type === 'DELETED'));
    expect(index((event) => event.name === 'web-2' && event.deleting)).to.be.greaterThan(-1);
    expect(web1Marked, 'web-1 deleted only after web-2 was gone').to.be.greaterThan(web2Gone);
    expect(web2Gone).to.be.greaterThan(-1);
    const claims = (await client.list('PersistentVolumeClaim', { namespace: 'default' })).items.map((claim) => claim.metadata?.name).sort();
    expect(claims).to.deep.equal(['data-web-0', 'data-web-1', 'data-web-2']);
  });
});
