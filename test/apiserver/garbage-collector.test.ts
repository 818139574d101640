// The garbage collector on a one-member store: Background, Foreground and
// Orphan cascading through ownerReferences, as Kubernetes does them.

import { expect } from 'chai';
import { GarbageCollector } from '../../services/apiserver/garbage-collector.js';
import { ApiError, Registry, type ApiObject } from '../../services/apiserver/registry.js';
import { WatchCache } from '../../services/apiserver/watch-cache.js';
import { EventRecorder } from '../../services/client/events.js';
import { registryEventSink } from '../../services/apiserver/bootstrap.js';
import { waitFor } from '../../services/launcher/local-cluster.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';

function ownedBy(...owners: ApiObject[]): object[] {
  return owners.map((owner) => ({ apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, blockOwnerDeletion: true }));
}

describe('apiserver: the garbage collector', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let registry: Registry;
  let cache: WatchCache;
  let collector: GarbageCollector;
  let active = true;
  const logged: string[] = [];

  const configMap = (name: string, owners: ApiObject[] = [], extra: object = {}): Promise<ApiObject> =>
    registry.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', ...(owners.length > 0 ? { ownerReferences: ownedBy(...owners) } : {}), ...extra } });
  const exists = async (name: string): Promise<ApiObject | undefined> => {
    try {
      return await registry.get('ConfigMap', 'default', name);
    } catch (error) {
      if (error instanceof ApiError && error.reason === 'NotFound') return undefined;
      throw error;
    }
  };
  const gone = (name: string): Promise<unknown> => waitFor(`${name} to be collected`, async () => ((await exists(name)) === undefined ? true : undefined), 10_000, 10);

  before(async function () {
    ({ store, close } = await openSingleStore());
    registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
    await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    cache = new WatchCache(store, { historyEvents: 100 });
    cache.start();
    const events = new EventRecorder(registryEventSink(registry), { component: 'garbage-collector', host: 'test' });
    collector = new GarbageCollector(cache, registry, { isActive: () => active, log: (message) => logged.push(message), retryDelayMs: 20, events });
    collector.start();
  });

  after(async function () {
    collector.stop();
    cache.stop();
    await close();
  });

  it('Background: deletes dependents whose owners are gone, and only the dangling references of the rest', async function () {
    const owner = await configMap('bg-owner');
    const other = await configMap('bg-other');
    const child = await configMap('bg-child', [owner]);
    await configMap('bg-grandchild', [child]);
    await configMap('bg-shared', [owner, other]);
    await registry.delete('ConfigMap', 'default', 'bg-owner');
    await gone('bg-child');
    await gone('bg-grandchild');
    const shared = await waitFor('the dangling reference to go', async () => {
      const object = await exists('bg-shared');
      return Array.isArray(object?.metadata.ownerReferences) && object.metadata.ownerReferences.length === 1 ? object : undefined;
    }, 10_000, 10);
    expect(shared.metadata.ownerReferences).to.deep.equal(ownedBy(other));
    expect(logged.some((line) => line === 'garbage collector: deleting ConfigMap default/bg-child: its owners are gone')).to.equal(true);
    const recorded = await waitFor('the event', async () => (await registry.list('Event', { namespace: 'default', fieldSelector: 'involvedObject.name=bg-child' })).items[0], 10_000, 10);
    expect(recorded).to.deep.include({ reason: 'GarbageCollected', message: 'Deleting: its owner ConfigMap bg-owner is gone', type: 'Normal', count: 1 });
    expect(recorded.involvedObject).to.deep.include({ kind: 'ConfigMap', name: 'bg-child', namespace: 'default' });
  });

  it('Orphan: the owner goes and its dependents stay, without the reference', async function () {
    const owner = await configMap('or-owner');
    await configMap('or-child', [owner]);
    const marked = await registry.delete('ConfigMap', 'default', 'or-owner', { propagationPolicy: 'Orphan' });
    expect(marked.metadata.finalizers).to.deep.equal(['orphan']);
    expect(marked.metadata.deletionTimestamp).to.be.a('string');
    await gone('or-owner');
    const child = await exists('or-child');
    expect(child).to.not.equal(undefined);
    expect(child!.metadata.ownerReferences).to.equal(undefined);
    const recorded = await waitFor('the event', async () => (await registry.list('Event', { namespace: 'default', fieldSelector: 'involvedObject.name=or-child' })).items[0], 10_000, 10);
    expect(recorded).to.deep.include({ reason: 'Orphaned', message: 'Its owner ConfigMap or-owner was deleted with propagationPolicy Orphan; the reference to it was removed' });
  });

  it('Foreground: dependents (and theirs) go first, then the owner', async function () {
    const owner = await configMap('fg-owner');
    const child = await configMap('fg-child', [owner]);
    await configMap('fg-grandchild', [child]);
    // A finalizer of someone else's keeps the grandchild (and so everything above it) waiting.
    await registry.patch('ConfigMap', 'default', 'fg-grandchild', { metadata: { finalizers: ['example.com/hold'] } });
    const marked = await registry.delete('ConfigMap', 'default', 'fg-owner', { propagationPolicy: 'Foreground' });
    expect(marked.metadata.finalizers).to.deep.equal(['foregroundDeletion']);
    await waitFor('the grandchild to be marked', async () => ((await exists('fg-grandchild'))?.metadata.deletionTimestamp !== undefined ? true : undefined), 10_000, 10);
    expect(await exists('fg-owner')).to.not.equal(undefined);
    expect(await exists('fg-child')).to.not.equal(undefined);
    await registry.patch('ConfigMap', 'default', 'fg-grandchild', { metadata: { finalizers: null } });
    await gone('fg-grandchild');
    await gone('fg-child');
    await gone('fg-owner');
  });

  it('acts only while active, and catches up on resync', async function () {
    active = false;
    const owner = await configMap('idle-owner');
    await configMap('idle-child', [owner]);
    await registry.delete('ConfigMap', 'default', 'idle-owner');
    await waitFor('the queue to drain', async () => (collector.pending === 0 ? true : undefined), 10_000, 10);
    expect(await exists('idle-child')).to.not.equal(undefined);
    active = true;
    collector.resync();
    await gone('idle-child');
  });

  it('refuses an unknown propagationPolicy', async function () {
    await configMap('policy');
    try {
      await registry.delete('ConfigMap', 'default', 'policy', { propagationPolicy: 'Sideways' });
      expect.fail('expected a refusal');
    } catch (error) {
      expect((error as ApiError).message).to.equal('propagationPolicy "Sideways" is not one of Orphan, Background, Foreground');
    }
  });
});
