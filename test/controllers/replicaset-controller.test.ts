// The ReplicaSet controller running in a master (the controller-manager
// candidate holding its Lease): keeps the replica count through deletions
// and scaling, adopts matching orphans, and reports status.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

describe('controllers: the ReplicaSet controller in a master', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-rs-')), controllers: true });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  const pods = async (): Promise<KubeObject[]> => (await client.list('Pod', { namespace: 'default', labelSelector: 'app=web' })).items.filter((pod) => pod.metadata?.deletionTimestamp === undefined);
  const settlesAt = async (count: number): Promise<KubeObject[]> =>
    waitFor(`${count} pods`, async () => {
      const now = await pods();
      return now.length === count ? now : undefined;
    }, 60_000, 50);

  it('creates the replicas, replaces a deleted one, scales down, and adopts a matching orphan', async function () {
    await client.create('ReplicaSet', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    const three = await settlesAt(3);
    const rs = await client.get('ReplicaSet', 'default', 'web');
    for (const pod of three) {
      expect(pod.metadata?.name).to.match(/^web-[a-z0-9]{5}$/);
      expect(pod.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: rs.metadata?.uid, controller: true, blockOwnerDeletion: true }]);
    }
    await client.delete('Pod', 'default', three[0]!.metadata!.name!);
    const replaced = await waitFor('a replacement', async () => {
      const now = await pods();
      return now.length === 3 && !now.some((pod) => pod.metadata?.name === three[0]!.metadata!.name) ? now : undefined;
    }, 60_000, 50);
    expect(replaced).to.have.length(3);
    await client.patch('ReplicaSet', 'default', 'web', { spec: { replicas: 1 } });
    await settlesAt(1);
    await client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'stray', namespace: 'default', labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    // Adopted, then one too many: back to one, owned.
    const [last] = await waitFor('the orphan adopted and the count kept', async () => {
      const now = await pods();
      return now.length === 1 && now.every((pod) => (pod.metadata?.ownerReferences as unknown[] | undefined)?.length === 1) ? now : undefined;
    }, 60_000, 50);
    expect(last!.metadata?.ownerReferences).to.have.length(1);
    const status = await waitFor('the status', async () => {
      const current = await client.get('ReplicaSet', 'default', 'web');
      const reported = current.status as { replicas?: number; observedGeneration?: number } | undefined;
      return reported?.replicas === 1 && reported.observedGeneration === current.metadata?.generation ? reported : undefined;
    }, 60_000, 50);
    expect(status).to.deep.include({ replicas: 1, fullyLabeledReplicas: 1, readyReplicas: 0, availableReplicas: 0 });
  });
});
