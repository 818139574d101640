// The watch cache: one store watch feeds every watcher; lists and watches
// from it answer exactly what the store would.

import { expect } from 'chai';
import { kindInfo } from '../../services/client/kinds.js';
import { Registry } from '../../services/apiserver/registry.js';
import { WatchCache, type CacheWatchEvent } from '../../services/apiserver/watch-cache.js';
import { listCached, startWatch, type WatchHandle } from '../../services/apiserver/watch.js';
import { ApiError } from '../../services/apiserver/registry.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';

const configMap = (name: string, labels: Record<string, string> = {}, data: Record<string, string> = {}): object => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', labels }, data });

interface Seen {
  readonly type: string;
  readonly name: string;
  readonly rv: string;
  readonly bytes: Buffer;
}

function recorder(): { events: Seen[]; emit: (event: CacheWatchEvent) => void } {
  const events: Seen[] = [];
  return {
    events,
    emit: (event) => events.push({ type: event.type, name: String(event.object.object.metadata.name ?? ''), rv: String(event.object.object.metadata.resourceVersion), bytes: event.object.bytes }),
  };
}

const failOnError = (error: ApiError): void => {
  throw error;
};

describe('apiserver: the watch cache', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let registry: Registry;
  let cache: WatchCache;
  const handles: WatchHandle[] = [];
  const info = kindInfo('ConfigMap')!;

  before(async function () {
    ({ store, close } = await openSingleStore());
    registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
    await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    await registry.create('ConfigMap', configMap('before-cache', { app: 'web' }));
    cache = new WatchCache(store, { historyEvents: 5 });
    cache.start();
  });

  afterEach(function () {
    for (const handle of handles.splice(0)) handle.cancel();
  });

  after(async function () {
    cache.stop();
    await close();
  });

  it('holds what the store holds, and lists exactly as the registry does', async function () {
    await registry.create('ConfigMap', configMap('a', { app: 'web' }));
    await registry.create('ConfigMap', configMap('b', { app: 'db' }));
    await registry.create('ConfigMap', configMap('c', { app: 'web' }));
    for (const options of [{}, { labelSelector: 'app=web' }, { labelSelector: 'app=web', limit: 1 }, { fieldSelector: 'metadata.name!=a' }]) {
      const fromStore = await registry.list('ConfigMap', options);
      const fromCache = (await listCached(store, cache, 'ConfigMap', options))!;
      expect(fromCache.items.map((item) => item.object)).to.deep.equal(fromStore.items);
      expect(fromCache.resourceVersion).to.equal(fromStore.resourceVersion);
      expect(fromCache.continue === '').to.equal(fromStore.continue === '');
      if (fromCache.continue !== '') {
        // The next page comes from the store at the cache's snapshot, the same as after the store's first page.
        const next = await registry.list('ConfigMap', { ...options, continue: fromCache.continue });
        const storeNext = await registry.list('ConfigMap', { ...options, continue: fromStore.continue });
        expect(next.items.map((item) => item.metadata.name)).to.deep.equal(['before-cache']);
        expect(next.items).to.deep.equal(storeNext.items);
      }
    }
    // A continue token or a pinned version needs the store.
    expect(await listCached(store, cache, 'ConfigMap', { resourceVersion: '3' })).to.equal(undefined);
  });

  it('feeds any number of watchers from one store watch, encoding each object once', async function () {
    const storeWatchers = store.watchHub.size;
    const recorders = Array.from({ length: 50 }, () => recorder());
    for (const { emit } of recorders) handles.push(await startWatch(store, cache, info, { resourceVersion: String(cache.revision) }, emit, failOnError));
    expect(store.watchHub.size).to.equal(storeWatchers);
    expect(cache.watcherCount).to.equal(50);
    const created = await registry.create('ConfigMap', configMap('shared', { app: 'web' }));
    for (const { events } of recorders) expect(events.map((event) => [event.type, event.name, event.rv])).to.deep.equal([['ADDED', 'shared', created.metadata.resourceVersion]]);
    const first = recorders[0]!.events[0]!.bytes;
    expect(recorders.every(({ events }) => events[0]!.bytes === first)).to.equal(true);
    expect(JSON.parse(first.toString())).to.deep.equal(created);
  });

  it('turns selector transitions into ADDED and DELETED, and deletions carry the deleting version', async function () {
    const { events, emit } = recorder();
    handles.push(await startWatch(store, cache, info, { resourceVersion: String(cache.revision), labelSelector: 'tier=front' }, emit, failOnError));
    const object = await registry.create('ConfigMap', configMap('moving', { tier: 'back' }));
    const front = await registry.update('ConfigMap', { ...object, metadata: { ...object.metadata, labels: { tier: 'front' } } });
    const changed = await registry.update('ConfigMap', { ...front, data: { v: '2' } });
    const back = await registry.update('ConfigMap', { ...changed, metadata: { ...changed.metadata, labels: { tier: 'back' } } });
    const again = await registry.update('ConfigMap', { ...back, metadata: { ...back.metadata, labels: { tier: 'front' } } });
    await registry.delete('ConfigMap', 'default', 'moving');
    const deletedAt = String(store.kv.revision);
    expect(events.map((event) => [event.type, event.rv])).to.deep.equal([
      ['ADDED', front.metadata.resourceVersion],
      ['MODIFIED', changed.metadata.resourceVersion],
      ['DELETED', back.metadata.resourceVersion],
      ['ADDED', again.metadata.resourceVersion],
      ['DELETED', deletedAt],
    ]);
  });

  it('starts from "" with the current objects and a bookmark, then every change with no gap', async function () {
    const { events, emit } = recorder();
    const expected = await registry.list('ConfigMap', {});
    const writes = Promise.all(['w1', 'w2', 'w3'].map((name) => registry.create('ConfigMap', configMap(name))));
    handles.push(await startWatch(store, cache, info, { allowBookmarks: true }, emit, failOnError));
    await writes;
    const names = events.filter((event) => event.type !== 'BOOKMARK').map((event) => event.name);
    for (const item of expected.items) expect(names).to.include(item.metadata.name);
    for (const name of ['w1', 'w2', 'w3']) expect(names.filter((seen) => seen === name)).to.have.length(1);
    const bookmark = events.findIndex((event) => event.type === 'BOOKMARK');
    expect(bookmark).to.be.greaterThan(0);
    // Everything after the bookmark is newer than it.
    for (const event of events.slice(bookmark + 1)) expect(Number(event.rv)).to.be.greaterThan(Number(events[bookmark]!.rv));
  });

  it('serves a resume inside its window from memory and an older one from the store, with the same events', async function () {
    const start = store.kv.revision;
    for (const name of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7']) await registry.create('ConfigMap', configMap(name));
    // A window of 5 events no longer reaches back to `start`.
    expect(cache.canServeFrom(start)).to.equal(false);
    expect(cache.canServeFrom(store.kv.revision - 3)).to.equal(true);
    const old = recorder();
    const storeWatchers = store.watchHub.size;
    handles.push(await startWatch(store, cache, info, { resourceVersion: String(start) }, old.emit, failOnError));
    expect(store.watchHub.size).to.equal(storeWatchers + 1);
    expect(old.events.map((event) => event.name)).to.deep.equal(['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7']);
    const recent = recorder();
    handles.push(await startWatch(store, cache, info, { resourceVersion: String(store.kv.revision - 3) }, recent.emit, failOnError));
    expect(store.watchHub.size).to.equal(storeWatchers + 1);
    expect(recent.events.map((event) => event.name)).to.deep.equal(['h5', 'h6', 'h7']);
    await registry.create('ConfigMap', configMap('h8'));
    expect(old.events.at(-1)!.name).to.equal('h8');
    expect(recent.events.at(-1)!.name).to.equal('h8');
  });

  it('refuses a malformed resourceVersion', async function () {
    const { emit } = recorder();
    try {
      handles.push(await startWatch(store, cache, info, { resourceVersion: 'yesterday' }, emit, failOnError));
      expect.fail('expected a refusal');
    } catch (error) {
      expect(error).to.be.instanceOf(ApiError);
      expect((error as ApiError).message).to.equal('resourceVersion "yesterday" is not a resourceVersion (a decimal revision)');
    }
  });
});
