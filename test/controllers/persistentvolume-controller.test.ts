// The PersistentVolume binder in-process against a 1-master cluster: a
// claim binds to the smallest local volume that fits (both objects written
// as Kubernetes writes them), a claim nothing fits stays Pending with a
// FailedBinding event until a volume comes, a deleted claim's volume is
// Released (Retain) or deleted (Delete), a bound claim whose volume goes
// is Lost, and a binding found half-written is completed.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PersistentVolume, PersistentVolumeClaim } from '../../proto/gen/resources/v1/core.js';
import { clientEventSink, EventRecorder } from '../../services/client/events.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { PersistentVolumeController } from '../../services/controllers/persistentvolume/controller.js';
import { ANNOTATION_BIND_COMPLETED, ANNOTATION_BOUND_BY_CONTROLLER, MESSAGE_NO_VOLUMES } from '../../services/controllers/persistentvolume/reconcile.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

const NAMESPACE = 'default';

function volume(name: string, size: string, extra: { policy?: string; claimRef?: object; annotations?: Record<string, string> } = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, ...(extra.annotations === undefined ? {} : { annotations: extra.annotations }) },
    spec: {
      capacity: { storage: size },
      accessModes: ['ReadWriteOnce'],
      local: { path: `/mnt/disks/${name}` },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['n1'] }] }] } },
      persistentVolumeReclaimPolicy: extra.policy ?? 'Retain',
      ...(extra.claimRef === undefined ? {} : { claimRef: extra.claimRef }),
    },
  };
}

function claim(name: string, size: string, volumeName?: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: NAMESPACE },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } }, ...(volumeName === undefined ? {} : { volumeName }) },
  };
}

describe('controllers: the PersistentVolume binder in-process', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;
  const stop = new AbortController();
  let running: Promise<void>;
  const logged: string[] = [];

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-pv-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, NAMESPACE);
    const log = (line: string): void => void logged.push(line);
    const events = new EventRecorder(clientEventSink(client), { component: 'persistentvolume-binder', host: 'test', log });
    running = new PersistentVolumeController({ client, events, log }).run(stop.signal);
  });

  after(async function () {
    stop.abort();
    await running?.catch(() => undefined);
    client?.close();
    await cluster?.destroy();
    if (this.test?.parent?.tests.some((test) => test.state === 'failed')) console.log(logged.slice(-40).join('\n'));
  });

  const getVolume = (name: string): Promise<PersistentVolume | undefined> => client.get('PersistentVolume', '', name).then((found) => found as PersistentVolume, () => undefined);
  const getClaim = (name: string): Promise<PersistentVolumeClaim | undefined> => client.get('PersistentVolumeClaim', NAMESPACE, name).then((found) => found as PersistentVolumeClaim, () => undefined);
  const claimIn = (name: string, phase: string): Promise<PersistentVolumeClaim> => waitFor(`claim ${name} ${phase}`, async () => {
    const found = await getClaim(name);
    return found?.status?.phase === phase ? found : undefined;
  }, 30_000);
  const volumeIn = (name: string, phase: string): Promise<PersistentVolume> => waitFor(`volume ${name} ${phase}`, async () => {
    const found = await getVolume(name);
    return found?.status?.phase === phase ? found : undefined;
  }, 30_000);

  it('makes new volumes Available and binds a claim to the smallest that fits, on both objects', async function () {
    await client.create('PersistentVolume', volume('pv-small', '1Gi'));
    await client.create('PersistentVolume', volume('pv-big', '10Gi'));
    await volumeIn('pv-small', 'Available');
    await volumeIn('pv-big', 'Available');
    const created = (await client.create('PersistentVolumeClaim', claim('data', '500Mi'))) as PersistentVolumeClaim;
    const bound = await claimIn('data', 'Bound');
    expect(bound.spec?.volumeName).to.equal('pv-small');
    expect(bound.status).to.deep.include({ accessModes: ['ReadWriteOnce'], capacity: { storage: '1Gi' } });
    expect(bound.metadata?.annotations).to.deep.include({ [ANNOTATION_BIND_COMPLETED]: 'yes', [ANNOTATION_BOUND_BY_CONTROLLER]: 'yes' });
    const pv = await volumeIn('pv-small', 'Bound');
    expect(pv.spec?.claimRef).to.deep.include({ kind: 'PersistentVolumeClaim', namespace: NAMESPACE, name: 'data', uid: created.metadata?.uid });
    expect((await getVolume('pv-big'))?.status?.phase).to.equal('Available');
  });

  it('leaves a claim nothing fits Pending with a FailedBinding event, and binds it when a volume comes', async function () {
    await client.create('PersistentVolumeClaim', claim('waiting', '50Gi'));
    await claimIn('waiting', 'Pending');
    const event = await waitFor('the FailedBinding event', async () => {
      const listed = await client.list('Event', { namespace: NAMESPACE, fieldSelector: 'involvedObject.name=waiting' });
      return listed.items.find((item) => item.reason === 'FailedBinding');
    }, 30_000);
    expect(event).to.deep.include({ type: 'Warning', message: MESSAGE_NO_VOLUMES });
    await client.create('PersistentVolume', volume('pv-huge', '100Gi'));
    expect((await claimIn('waiting', 'Bound')).spec?.volumeName).to.equal('pv-huge');
  });

  it('releases the volume of a deleted claim: Retain keeps it Released, Delete removes the object', async function () {
    await client.create('PersistentVolume', volume('pv-keep', '2Gi', { policy: 'Retain' }));
    await client.create('PersistentVolume', volume('pv-drop', '2Gi', { policy: 'Delete' }));
    await client.create('PersistentVolumeClaim', claim('keep', '1Gi', 'pv-keep'));
    await client.create('PersistentVolumeClaim', claim('drop', '1Gi', 'pv-drop'));
    await claimIn('keep', 'Bound');
    await claimIn('drop', 'Bound');
    await client.delete('PersistentVolumeClaim', NAMESPACE, 'keep');
    await client.delete('PersistentVolumeClaim', NAMESPACE, 'drop');
    const kept = await volumeIn('pv-keep', 'Released');
    expect(kept.spec?.claimRef?.name).to.equal('keep');
    await waitFor('pv-drop to be deleted', async () => ((await getVolume('pv-drop')) === undefined ? true : undefined), 30_000);
  });

  it('marks a bound claim Lost when its volume is deleted', async function () {
    await client.create('PersistentVolume', volume('pv-doomed', '1Gi'));
    await client.create('PersistentVolumeClaim', claim('orphaned', '1Gi', 'pv-doomed'));
    await claimIn('orphaned', 'Bound');
    await client.delete('PersistentVolume', '', 'pv-doomed');
    await claimIn('orphaned', 'Lost');
  });

  it('completes a binding found with only the volume side written', async function () {
    // The claim names a volume that is not there yet: it waits.
    const waiting = (await client.create('PersistentVolumeClaim', claim('half', '1Gi', 'pv-half'))) as PersistentVolumeClaim;
    await claimIn('half', 'Pending');
    // The volume arrives as the binder's first write would leave it.
    const ref = { kind: 'PersistentVolumeClaim', apiVersion: 'v1', namespace: NAMESPACE, name: 'half', uid: waiting.metadata?.uid };
    await client.create('PersistentVolume', volume('pv-half', '1Gi', { claimRef: ref, annotations: { [ANNOTATION_BOUND_BY_CONTROLLER]: 'yes' } }));
    const bound = await claimIn('half', 'Bound');
    expect(bound.metadata?.annotations?.[ANNOTATION_BIND_COMPLETED]).to.equal('yes');
    await volumeIn('pv-half', 'Bound');
    expect(logged.filter((line) => /PersistentVolume .*:/.test(line))).to.deep.equal([]);
  });
});
