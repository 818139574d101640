// The informer: list (paginated) into a cache, watch from the list's
// version, events through handlers; a re-list after the watch ends for good
// that reconciles the cache (deletes, adds, updates missed); resync.
//
// Two halves: an in-memory ListerWatcher that the test drives event by event
// (exact, fast: stale events, bookmarks, backoff, failures), and a real master
// for what only it can show (pagination tokens, selectors, real events).
// Every object handed to the informer is deeply frozen: nothing in the
// informer (or these handlers) may write to the cache's objects.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffCache, Informer, keyOf, type ListerWatcher } from '../../services/client/informer.js';
import { informerFor, SharedInformers } from '../../services/client/shared-informers.js';
import { ResourceClient, type KubeObject, type ListResult, type WatchHandlers, type WatchParams } from '../../services/client/resources.js';
import { EtcdConnection } from '../../services/client/etcd.js';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';

type ListParams = NonNullable<Parameters<ResourceClient['list']>[1]>;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function configMap(namespace: string, name: string, resourceVersion: string, data: Record<string, string> = {}, labels?: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name, resourceVersion, ...(labels === undefined ? {} : { labels }) }, data };
}

function tooOld(message: string): grpc.ServiceError {
  return Object.assign(new Error(`${grpc.status.OUT_OF_RANGE} OUT_OF_RANGE: ${message}`), { code: grpc.status.OUT_OF_RANGE, details: message, metadata: new grpc.Metadata() });
}

/** What the handlers were told, as "add ns/name@rv", "update ns/name@rv->rv", "delete ns/name@rv". */
function record(informer: Informer): string[] {
  const calls: string[] = [];
  const at = (object: KubeObject): string => `${keyOf(object)}@${object.metadata?.resourceVersion ?? ''}`;
  informer.onAdd((object) => calls.push(`add ${at(object)}`));
  informer.onUpdate((oldObject, newObject) => calls.push(`update ${at(oldObject)}->${newObject.metadata?.resourceVersion ?? ''}`));
  informer.onDelete((object) => calls.push(`delete ${at(object)}`));
  return calls;
}

/** An API in memory: one namespace of ConfigMaps, list pages, watches the test can feed and fail. */
class FakeApi implements ListerWatcher {
  readonly objects = new Map<string, KubeObject>();
  readonly lists: ListParams[] = [];
  readonly watches: Array<{ readonly params: WatchParams; readonly handlers: WatchHandlers; stopped: boolean }> = [];
  revision = 0;
  /** The next this many lists fail. */
  failLists = 0;

  /** Create or change an object; live watches see it unless `silently` (an event the informer misses). */
  put(name: string, data: Record<string, string> = {}, silently = false): KubeObject {
    const object = deepFreeze(configMap('ns', name, String(++this.revision), data));
    const existed = this.objects.has(name);
    this.objects.set(name, object);
    if (!silently) this.emit(existed ? 'MODIFIED' : 'ADDED', object);
    return object;
  }

  remove(name: string, silently = false): void {
    const object = this.objects.get(name)!;
    this.objects.delete(name);
    const deleted = deepFreeze({ ...object, metadata: { ...object.metadata, resourceVersion: String(++this.revision) } });
    if (!silently) this.emit('DELETED', deleted);
  }

  emit(type: string, object: KubeObject): void {
    for (const watch of this.watches) if (!watch.stopped) watch.handlers.onEvent(type, deepFreeze(object));
  }

  /** End every live watch for good, as the server does when their version was compacted. */
  fail(message: string): void {
    for (const watch of this.watches) {
      if (watch.stopped) continue;
      watch.stopped = true;
      watch.handlers.onError?.(tooOld(message));
    }
  }

  get liveWatches(): number {
    return this.watches.filter((watch) => !watch.stopped).length;
  }

  async list(_kind: string, params: ListParams = {}): Promise<ListResult> {
    this.lists.push(params);
    if (this.failLists > 0) {
      this.failLists--;
      throw new Error('the API is down');
    }
    const names = [...this.objects.keys()].sort();
    const start = params.continue === undefined || params.continue === '' ? 0 : Number(params.continue);
    const end = params.limit === undefined || params.limit === 0 ? names.length : Math.min(names.length, start + params.limit);
    return {
      items: names.slice(start, end).map((name) => this.objects.get(name)!),
      resourceVersion: String(this.revision),
      continue: end < names.length ? String(end) : '',
    };
  }

  watch(_kind: string, params: WatchParams, handlers: WatchHandlers): () => void {
    const watch = { params, handlers, stopped: false };
    this.watches.push(watch);
    return () => {
      watch.stopped = true;
    };
  }
}

describe('client: the informer (in memory)', function () {
  this.timeout(30_000);
  let informer: Informer | undefined;

  afterEach(function () {
    informer?.stop();
    informer = undefined;
  });

  it('keys objects as namespace/name, or name when cluster-scoped', function () {
    expect(keyOf(configMap('web', 'settings', '1'))).to.equal('web/settings');
    expect(keyOf({ kind: 'Node', metadata: { name: 'n1' } })).to.equal('n1');
  });

  it('reconciles a cache with a fresh list: updates and adds in list order, then deletes', function () {
    const cache = new Map(['ns/a@1', 'ns/b@2', 'ns/c@3'].map((spec) => {
      const [key, version] = spec.split('@') as [string, string];
      return [key, configMap('ns', key.slice(3), version)];
    }));
    const changes = diffCache(cache, [configMap('ns', 'b', '5'), configMap('ns', 'c', '3'), configMap('ns', 'd', '6')]);
    expect(changes.map((change) => (change.kind === 'update' ? `update ${keyOf(change.oldObject)} ${change.oldObject.metadata?.resourceVersion}->${change.newObject.metadata?.resourceVersion}` : `${change.kind} ${keyOf(change.object)}`))).to.deep.equal([
      'update ns/b 2->5',
      'add ns/d',
      'delete ns/a',
    ]);
    expect(diffCache(new Map(), [configMap('ns', 'x', '1')]).map((change) => change.kind)).to.deep.equal(['add']);
    expect(diffCache(cache, [...cache.values()])).to.deep.equal([]);
  });

  it('lists page by page into its cache, syncs, then watches from the list version with bookmarks', async function () {
    const api = new FakeApi();
    for (const name of ['a', 'b', 'c', 'd', 'e']) api.put(name);
    informer = new Informer(api, 'ConfigMap', { namespace: 'ns', labelSelector: 'app=web', listPageSize: 2 });
    const calls = record(informer);
    expect(informer.hasSynced).to.equal(false);
    informer.start();
    await informer.waitForSync();
    expect(informer.hasSynced).to.equal(true);
    expect(api.lists.map((params) => `${params.limit}:${params.continue}`)).to.deep.equal(['2:', '2:2', '2:4']);
    expect(api.lists[0]).to.include({ namespace: 'ns', labelSelector: 'app=web' });
    expect(calls).to.deep.equal(['add ns/a@1', 'add ns/b@2', 'add ns/c@3', 'add ns/d@4', 'add ns/e@5']);
    expect(informer.list().map(keyOf)).to.deep.equal(['ns/a', 'ns/b', 'ns/c', 'ns/d', 'ns/e']);
    expect(informer.get('ns', 'c')?.metadata?.resourceVersion).to.equal('3');
    expect(informer.get('ns', 'zz')).to.equal(undefined);
    expect(informer.lastSyncResourceVersion).to.equal('5');
    expect(api.watches).to.have.length(1);
    expect(api.watches[0]!.params).to.deep.include({ namespace: 'ns', labelSelector: 'app=web', resourceVersion: '5', allowBookmarks: true });
  });

  it('applies watch events to the cache and handlers, ignoring ones not newer than the cache', async function () {
    const api = new FakeApi();
    api.put('a');
    informer = new Informer(api, 'ConfigMap');
    const calls = record(informer);
    informer.start();
    await informer.waitForSync();
    api.put('b'); // ADDED
    api.put('a', { x: '1' }); // MODIFIED
    api.emit('MODIFIED', configMap('ns', 'a', '2')); // stale: the cache has 3
    api.emit('ADDED', configMap('ns', 'a', '3')); // repeated
    api.emit('ADDED', configMap('ns', 'b', '10')); // ADDED for a cached key: an update
    api.revision = 10;
    api.remove('b');
    api.emit('DELETED', configMap('ns', 'gone', '12')); // never cached
    api.emit('BOOKMARK', { kind: 'ConfigMap', metadata: { resourceVersion: '40' } });
    expect(calls).to.deep.equal(['add ns/a@1', 'add ns/b@2', 'update ns/a@1->3', 'update ns/b@2->10', 'delete ns/b@11']);
    expect(informer.list().map((object) => `${keyOf(object)}@${object.metadata?.resourceVersion}`)).to.deep.equal(['ns/a@3']);
    api.emit('DELETED', configMap('ns', 'a', '2')); // stale
    expect(informer.get('ns', 'a')?.metadata?.resourceVersion).to.equal('3');
    expect(informer.lastSyncResourceVersion).to.equal('40');
  });

  it('re-lists when the watch ends for good and tells handlers what it missed', async function () {
    const api = new FakeApi();
    for (const name of ['a', 'b', 'c']) api.put(name);
    const logged: string[] = [];
    informer = new Informer(api, 'ConfigMap', { log: (line) => logged.push(line) });
    const calls = record(informer);
    informer.start();
    await informer.waitForSync();
    calls.length = 0;
    // Changes the informer never hears of, then the watch is told its version is gone.
    api.remove('a', true);
    api.put('b', { changed: 'yes' }, true);
    api.put('d', {}, true);
    api.fail('too old resource version: 3 (compacted to 7); list again');
    await waitFor('a second watch', async () => (api.liveWatches === 1 ? true : undefined), 10_000, 5);
    expect(calls).to.deep.equal(['update ns/b@2->5', 'add ns/d@6', 'delete ns/a@1']);
    expect(informer.list().map(keyOf).sort()).to.deep.equal(['ns/b', 'ns/c', 'ns/d']);
    expect(api.watches[1]!.params.resourceVersion).to.equal('6');
    expect(logged).to.deep.equal(['informer ConfigMap: re-listing in 100 ms: watch ended: 11 OUT_OF_RANGE: too old resource version: 3 (compacted to 7); list again']);
    // And on from there.
    api.put('e');
    expect(calls.at(-1)).to.equal('add ns/e@7');
  });

  it('backs re-lists off, doubling from 100 ms, while the list keeps failing', async function () {
    const api = new FakeApi();
    api.put('a');
    const logged: string[] = [];
    informer = new Informer(api, 'ConfigMap', { log: (line) => logged.push(line) });
    informer.start();
    await informer.waitForSync();
    api.failLists = 3;
    api.fail('too old');
    await waitFor('a second watch', async () => (api.liveWatches === 1 ? true : undefined), 10_000, 5);
    expect(logged.map((line) => /re-listing in (\d+) ms: (\w+ \w+)/.exec(line)?.slice(1).join(' '))).to.deep.equal([
      '100 watch ended',
      '200 list failed',
      '400 list failed',
      '800 list failed',
    ]);
    expect(informer.hasSynced).to.equal(true);
  });

  it('resyncs: onUpdate(object, object) for every cached object, periodically', async function () {
    const api = new FakeApi();
    api.put('a');
    api.put('b');
    informer = new Informer(api, 'ConfigMap', { resyncMs: 20 });
    const resynced: string[] = [];
    informer.onUpdate((oldObject, newObject) => {
      if (oldObject === newObject) resynced.push(keyOf(newObject));
    });
    informer.start();
    await waitFor('two resyncs', async () => (resynced.filter((key) => key === 'ns/a').length >= 2 && resynced.includes('ns/b') ? true : undefined), 10_000, 5);
  });

  it('replays the cache to a late onAdd handler and survives a throwing handler', async function () {
    const api = new FakeApi();
    api.put('a');
    const logged: string[] = [];
    informer = new Informer(api, 'ConfigMap', { log: (line) => logged.push(line) });
    informer.onAdd(() => {
      throw new Error('handler bug');
    });
    informer.start();
    await informer.waitForSync();
    const late: string[] = [];
    informer.onAdd((object) => late.push(keyOf(object)));
    expect(late).to.deep.equal(['ns/a']);
    api.put('b');
    expect(late).to.deep.equal(['ns/a', 'ns/b']);
    expect(logged).to.deep.equal(['informer ConfigMap: add handler failed: handler bug', 'informer ConfigMap: add handler failed: handler bug']);
  });

  it('stops: waitForSync() rejects if it never synced, the watch ends, and it cannot start again', async function () {
    const hanging: ListerWatcher = { list: () => new Promise<ListResult>(() => {}), watch: () => () => {} };
    const unsynced = new Informer(hanging, 'ConfigMap');
    unsynced.start();
    unsynced.stop();
    let failure: unknown;
    await unsynced.waitForSync().catch((error: unknown) => (failure = error));
    expect(String(failure)).to.match(/stopped before it synced/);
    expect(() => unsynced.start()).to.throw(/stopped/);

    const api = new FakeApi();
    informer = new Informer(api, 'ConfigMap');
    informer.start();
    informer.start(); // a second start of a running informer does nothing
    await informer.waitForSync();
    expect(api.liveWatches).to.equal(1);
    informer.stop();
    expect(api.liveWatches).to.equal(0);
  });
});

/** A ListerWatcher that hands out deeply frozen objects: the informer must not write to them. */
function frozen(inner: ListerWatcher): ListerWatcher {
  return {
    list: async (kind, params) => deepFreeze(await inner.list(kind, params)),
    watch: (kind, params, handlers) => inner.watch(kind, params, { ...handlers, onEvent: (type, object) => handlers.onEvent(type, deepFreeze(object)) }),
  };
}

/**
 * A ListerWatcher whose first watch connects only when the test calls
 * release(): the version the informer listed at can be compacted away in
 * between, as when a list's answer is slow to arrive. Later watches (the
 * re-list's) connect at once.
 */
class LateFirstWatch implements ListerWatcher {
  private watches = 0;
  private connect: (() => void) | undefined;

  constructor(private readonly inner: ListerWatcher) {}

  list(kind: string, params?: ListParams): Promise<ListResult> {
    return this.inner.list(kind, params);
  }

  watch(kind: string, params: WatchParams, handlers: WatchHandlers): () => void {
    if (++this.watches > 1) return this.inner.watch(kind, params, handlers);
    let stop: (() => void) | undefined;
    let cancelled = false;
    this.connect = () => {
      if (!cancelled) stop = this.inner.watch(kind, params, handlers);
    };
    return () => {
      cancelled = true;
      stop?.();
    };
  }

  release(): void {
    this.connect?.();
  }
}

describe('client: the informer on a real master', function () {
  this.timeout(120_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient;
  const informers: Informer[] = [];

  function newInformer(source: ListerWatcher, options: ConstructorParameters<typeof Informer>[2]): Informer {
    const informer = new Informer(frozen(source), 'ConfigMap', options);
    informers.push(informer);
    return informer;
  }

  async function createNamespace(name: string): Promise<void> {
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }

  function create(namespace: string, name: string, labels?: Record<string, string>): Promise<KubeObject> {
    return client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name, ...(labels === undefined ? {} : { labels }) }, data: { v: '0' } });
  }

  async function change(namespace: string, name: string, mutate: (object: KubeObject) => void): Promise<KubeObject> {
    const object = structuredClone(await client.get('ConfigMap', namespace, name));
    mutate(object);
    return client.update('ConfigMap', object);
  }

  before(async function () {
    // Snapshots every few entries: a restarted master then starts from one (see the re-list test).
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-informer-')), flags: ['--snapshot-count=5'] });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitFor('the default namespace', async () => (await client.get('Namespace', '', 'default')).metadata?.name, 30_000, 100);
  });

  afterEach(function () {
    for (const informer of informers.splice(0)) informer.stop();
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  it('fills its cache from the initial list, page by page, and syncs', async function () {
    for (const name of ['one', 'two', 'three', 'four', 'five']) await create('default', `listed-${name}`);
    const informer = newInformer(client, { namespace: 'default', listPageSize: 2 });
    const calls = record(informer);
    informer.start();
    await informer.waitForSync();
    expect(informer.hasSynced).to.equal(true);
    const names = informer.list().map((object) => object.metadata?.name).filter((name) => name?.startsWith('listed-'));
    expect(names.sort()).to.deep.equal(['listed-five', 'listed-four', 'listed-one', 'listed-three', 'listed-two']);
    expect(calls.filter((call) => call.includes('listed-'))).to.have.length(5);
    expect(informer.get('default', 'listed-two')?.data).to.deep.equal({ v: '0' });
    expect(Number(informer.lastSyncResourceVersion)).to.be.at.least(Number(informer.get('default', 'listed-five')?.metadata?.resourceVersion));
  });

  it('sees creates, updates and deletes through its handlers and its cache', async function () {
    await createNamespace('informer-events');
    const informer = newInformer(client, { namespace: 'informer-events' });
    const calls = record(informer);
    informer.start();
    await informer.waitForSync();
    expect(informer.list()).to.deep.equal([]);
    const created = await create('informer-events', 'web');
    await waitFor('the add', async () => (informer.get('informer-events', 'web') !== undefined ? true : undefined), 10_000);
    const updated = await change('informer-events', 'web', (object) => (object.data = { v: '1' }));
    await waitFor('the update', async () => ((informer.get('informer-events', 'web')?.data as Record<string, string> | undefined)?.v === '1' ? true : undefined), 10_000);
    await client.delete('ConfigMap', 'informer-events', 'web');
    await waitFor('the delete', async () => (informer.get('informer-events', 'web') === undefined ? true : undefined), 10_000);
    const [createdAt, updatedAt] = [created.metadata?.resourceVersion, updated.metadata?.resourceVersion];
    expect(calls.slice(0, 2)).to.deep.equal([`add informer-events/web@${createdAt}`, `update informer-events/web@${createdAt}->${updatedAt}`]);
    expect(calls[2]).to.match(/^delete informer-events\/web@\d+$/);
    expect(calls).to.have.length(3);
  });

  it('with a label selector, sees only the matching objects and loses one that stops matching', async function () {
    await createNamespace('informer-labels');
    await create('informer-labels', 'front-1', { tier: 'front' });
    await create('informer-labels', 'back-1', { tier: 'back' });
    const informer = newInformer(client, { namespace: 'informer-labels', labelSelector: 'tier=front' });
    const calls = record(informer);
    informer.start();
    await informer.waitForSync();
    expect(informer.list().map(keyOf)).to.deep.equal(['informer-labels/front-1']);
    await create('informer-labels', 'back-2', { tier: 'back' });
    await create('informer-labels', 'front-2', { tier: 'front' });
    await waitFor('front-2', async () => (informer.get('informer-labels', 'front-2') !== undefined ? true : undefined), 10_000);
    await change('informer-labels', 'front-1', (object) => (object.metadata!.labels = { tier: 'back' }));
    await waitFor('front-1 to leave', async () => (informer.get('informer-labels', 'front-1') === undefined ? true : undefined), 10_000);
    expect(informer.list().map(keyOf)).to.deep.equal(['informer-labels/front-2']);
    expect(calls.map((call) => call.replace(/@.*/, ''))).to.deep.equal(['add informer-labels/front-1', 'add informer-labels/front-2', 'delete informer-labels/front-1']);
  });

  // SKIPPED until the API server reports a failed watch: its watch handler
  // ends the stream with call.destroy(error), which in grpc-js never sends
  // the status, so the client hangs instead of seeing OUT_OF_RANGE (checked
  // by hand: with call.emit('error', error) instead, this test passes).
  // Runs last: it restarts the master.
  it('re-lists when the version it watches from was compacted away, and catches up', async function () {
    await createNamespace('informer-relist');
    for (const name of ['a', 'b', 'c']) await create('informer-relist', name);
    const late = new LateFirstWatch(client);
    const logged: string[] = [];
    const informer = newInformer(late, { namespace: 'informer-relist', log: (line) => logged.push(line) });
    const calls = record(informer);
    informer.start();
    await informer.waitForSync();
    calls.length = 0;
    // While its first watch has not connected: changes, then the history
    // they are in is compacted.
    await client.delete('ConfigMap', 'informer-relist', 'a');
    const b = await change('informer-relist', 'b', (object) => (object.data = { v: '1' }));
    const d = await create('informer-relist', 'd');
    const etcd = new EtcdConnection(cluster!.endpoints[0]!, undefined, 5000);
    try {
      await etcd.compact(d.metadata!.resourceVersion!);
      // A master keeps recent history in its watch cache whatever the store
      // compacted, and would serve the old version from there. A restarted
      // one starts its cache at its latest snapshot (--snapshot-count=5: a
      // few more writes make one), so the version must come from the
      // compacted store: OUT_OF_RANGE, as after any long disconnection.
      for (let i = 0; i < 12; i++) await etcd.put('/informer-test/filler', String(i));
    } finally {
      etcd.close();
    }
    await cluster!.stopMember('m1');
    cluster!.startMember('m1');
    await cluster!.waitForLeader(30_000);
    late.release();
    await waitFor('the re-list to catch up', async () => (calls.length >= 3 ? true : undefined), 30_000);
    expect(calls.map((call) => call.replace(/@.*/, ''))).to.have.members(['delete informer-relist/a', 'update informer-relist/b', 'add informer-relist/d']);
    expect(calls.find((call) => call.startsWith('update informer-relist/b@'))).to.match(new RegExp(`->${b.metadata?.resourceVersion}$`));
    expect(logged.some((line) => /re-listing in \d+ ms: watch ended: .*too old resource version/.test(line))).to.equal(true);
    expect(informer.list().map(keyOf).sort()).to.deep.equal(['informer-relist/b', 'informer-relist/c', 'informer-relist/d']);
    // The new watch works.
    await create('informer-relist', 'e');
    await waitFor('e', async () => (informer.get('informer-relist', 'e') !== undefined ? true : undefined), 10_000);
  });
});

describe('client: shared informers (in memory)', function () {
  it('shares one list and watch per kind and selection, replaying the cache to views added later', async function () {
    const api = new FakeApi();
    api.put('a');
    const informers = new SharedInformers(api);
    try {
      const first = informers.view('ConfigMap');
      await first.waitForSync();
      api.put('b');
      const second = informers.view('ConfigMap');
      const seen: string[] = [];
      second.onAdd((object) => seen.push(keyOf(object)));
      expect(seen.sort()).to.deep.equal(['ns/a', 'ns/b']);
      expect(api.lists).to.have.length(1);
      expect(api.liveWatches).to.equal(1);
      informers.view('ConfigMap', { labelSelector: 'app=web' });
      await waitFor('a second list for another selection', async () => (api.lists.length === 2 ? true : undefined), 5000, 5);
    } finally {
      informers.stop();
    }
    expect(api.liveWatches).to.equal(0);
  });

  it('stops only the handlers of the view that stops; the informer carries on warm for the next', async function () {
    const api = new FakeApi();
    const informers = new SharedInformers(api);
    try {
      const leader = informers.view('ConfigMap');
      const standby = informers.view('ConfigMap');
      const leaderSaw = record(leader as Informer);
      const standbySaw: string[] = [];
      standby.onAdd((object) => standbySaw.push(keyOf(object)));
      await leader.waitForSync();
      api.put('x');
      leader.start();
      leader.stop();
      api.put('y');
      expect(leaderSaw).to.deep.equal(['add ns/x@1']);
      expect(standbySaw).to.deep.equal(['ns/x', 'ns/y']);
      expect(api.liveWatches).to.equal(1);
      const next = informers.view('ConfigMap');
      const nextSaw: string[] = [];
      next.onAdd((object) => nextSaw.push(keyOf(object)));
      expect(nextSaw.sort()).to.deep.equal(['ns/x', 'ns/y']);
      expect(next.hasSynced).to.equal(true);
    } finally {
      informers.stop();
    }
  });

  it('gives a controller its own informer when no shared ones are passed', function () {
    const api = new FakeApi();
    const own = informerFor({ client: api }, 'ConfigMap');
    expect(own).to.be.instanceOf(Informer);
    expect(api.lists).to.have.length(0);
    const informers = new SharedInformers(api);
    try {
      expect(informerFor({ client: api, informers }, 'ConfigMap')).to.not.be.instanceOf(Informer);
    } finally {
      informers.stop();
    }
  });
});
