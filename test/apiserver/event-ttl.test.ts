// Events expire after --event-ttl (from their last occurrence), swept by the
// leader's master; one counted up since the sweep looked is kept.

import { expect } from 'chai';
import { expiredEvents, sweepEvents } from '../../services/apiserver/event-ttl.js';
import { Registry } from '../../services/apiserver/registry.js';
import { WatchCache } from '../../services/apiserver/watch-cache.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';

const HOUR_MS = 3_600_000;

const event = (name: string, lastTimestamp: string): object => ({
  apiVersion: 'v1',
  kind: 'Event',
  metadata: { name, namespace: 'default' },
  involvedObject: { kind: 'Pod', name: 'web', namespace: 'default' },
  reason: 'BackOff',
  message: 'Back-off restarting failed container',
  type: 'Warning',
  firstTimestamp: lastTimestamp,
  lastTimestamp,
  count: 1,
});

describe('apiserver: event expiry', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let registry: Registry;
  let cache: WatchCache;
  const now = new Date('2026-11-25T12:00:00Z');

  before(async function () {
    ({ store, close } = await openSingleStore());
    registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
    await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    cache = new WatchCache(store, { historyEvents: 100 });
    cache.start();
  });

  after(async function () {
    cache.stop();
    await close();
  });

  it('deletes events last seen before the TTL, keeps the rest, and acts only when active', async function () {
    await registry.create('Event', event('old', '2026-11-25T10:30:00Z'));
    await registry.create('Event', event('recent', '2026-11-25T11:30:00Z'));
    const log: string[] = [];
    expect(await sweepEvents(cache, registry, { ttlMs: HOUR_MS, isActive: () => false, now: () => now, log: (line) => log.push(line) })).to.equal(0);
    expect(await sweepEvents(cache, registry, { ttlMs: HOUR_MS, isActive: () => true, now: () => now, log: (line) => log.push(line) })).to.equal(1);
    expect((await registry.list('Event', { namespace: 'default' })).items.map((item) => item.metadata.name)).to.deep.equal(['recent']);
    expect(log).to.deep.equal([]);
  });

  it('keeps an event that happened again after the sweep looked', async function () {
    const stale = await registry.create('Event', event('again', '2026-11-25T09:00:00Z'));
    expect(expiredEvents(cache, now, HOUR_MS).map((found) => found.name)).to.deep.equal(['again']);
    // It happens again between the sweep's look and its delete: the delete at the old version is refused.
    const looked = expiredEvents(cache, now, HOUR_MS);
    await registry.update('Event', { ...stale, count: 2, lastTimestamp: '2026-11-25T11:59:00Z' });
    for (const found of looked) {
      try {
        await registry.delete('Event', found.namespace, found.name, { resourceVersion: found.resourceVersion });
        expect.fail('a stale delete must be refused');
      } catch (error) {
        expect((error as Error).message).to.match(/changed since you read it|is at resourceVersion/);
      }
    }
    expect(await sweepEvents(cache, registry, { ttlMs: HOUR_MS, isActive: () => true, now: () => now, log: () => {} })).to.equal(0);
    expect((await registry.get('Event', 'default', 'again')).count).to.equal(2);
  });
});
