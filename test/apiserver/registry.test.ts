import { expect } from 'chai';
import { Registry, mergePatch, type ApiObject } from '../../services/apiserver/registry.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';
import { refusal } from '../support/refusals.js';

const namespace = (name: string): object => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const configMap = (name: string, data: Record<string, string>, extra: object = {}): object => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', ...extra }, data });

describe('apiserver: the resource registry on a replicated store', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let registry: Registry;

  before(async function () {
    ({ store, close } = await openSingleStore());
    registry = new Registry(store, { maxObjectBytes: 64 * 1024, now: () => new Date('2026-11-25T12:00:00.123Z') });
    await registry.create('Namespace', namespace('default'));
  });

  after(async function () {
    await close();
  });

  it('creates with server-set metadata and reads it back under /registry', async function () {
    const created = await registry.create('ConfigMap', configMap('settings', { color: 'blue' }));
    expect(created.metadata.uid).to.be.a('string').with.length.greaterThan(10);
    expect(created.metadata.creationTimestamp).to.equal('2026-11-25T12:00:00Z');
    expect(created.metadata.generation).to.equal(1);
    const got = await registry.get('ConfigMap', 'default', 'settings');
    expect(got).to.deep.equal(created);
    expect(got.metadata.resourceVersion).to.equal(String(store.kv.range({ key: Buffer.from('/registry/configmaps/default/settings') }).kvs[0]!.modRevision));
    const again = await refusal(registry.create('ConfigMap', configMap('settings', {})));
    expect(again.reason).to.equal('AlreadyExists');
    expect(again.message).to.equal('ConfigMap "settings" already exists in namespace "default"');
  });

  it('names generated from generateName, and namespaced kinds need their namespace', async function () {
    const generated = await registry.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'gen-', namespace: 'default' } });
    expect(generated.metadata.name).to.match(/^gen-[a-z0-9]{5}$/);
    const missing = await refusal(registry.create('ConfigMap', { ...configMap('x', {}), metadata: { name: 'x', namespace: 'nowhere' } }));
    expect(missing.reason).to.equal('NotFound');
    expect(missing.message).to.equal('namespace "nowhere" not found');
  });

  it('refuses invalid objects with every field error and writes nothing', async function () {
    const before = store.kv.revision;
    const invalid = await refusal(registry.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'Bad_Name', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i', colour: 'red' }] } }));
    expect(invalid.reason).to.equal('Invalid');
    expect(invalid.fieldErrors.map((error) => error.path)).to.deep.equal(['spec.containers[0].colour']);
    const badName = await refusal(registry.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'Bad_Name', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } }));
    expect(badName.message).to.match(/^Pod "Bad_Name" is invalid: metadata.name: "Bad_Name" must be a DNS-1123 subdomain/);
    const tooLarge = await refusal(registry.create('ConfigMap', configMap('big', { blob: 'x'.repeat(70 * 1024) })));
    expect(tooLarge.reason).to.equal('TooLarge');
    expect(store.kv.revision).to.equal(before);
  });

  it('updates by compare-and-swap on resourceVersion, bumping generation only on spec changes', async function () {
    await registry.create('Namespace', namespace('apps'));
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'apps', labels: { app: 'web' } },
      spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1' }] } } },
    };
    const v1 = await registry.create('Deployment', deployment);
    const relabeled = await registry.update('Deployment', { ...v1, metadata: { ...v1.metadata, labels: { app: 'web', tier: 'front' } } });
    expect(relabeled.metadata.generation).to.equal(1);
    const scaled = await registry.update('Deployment', { ...relabeled, spec: { ...(relabeled.spec as object), replicas: 3 } });
    expect(scaled.metadata.generation).to.equal(2);
    expect(Number(scaled.metadata.resourceVersion)).to.be.greaterThan(Number(relabeled.metadata.resourceVersion));
    // A writer still holding v1 loses, and is told the current version.
    const stale = await refusal(registry.update('Deployment', { ...v1, spec: { ...(v1.spec as object), replicas: 9 } }));
    expect(stale.reason).to.equal('Conflict');
    expect(stale.message).to.contain(`current resourceVersion ${scaled.metadata.resourceVersion as string}`);
    // Status goes only through updateStatus; update keeps it; updateStatus keeps the spec.
    const withStatus = await registry.updateStatus('Deployment', { ...scaled, spec: { replicas: 100 }, status: { replicas: 3, readyReplicas: 1 } });
    expect((withStatus.spec as { replicas: number }).replicas).to.equal(3);
    expect(withStatus.status).to.deep.equal({ replicas: 3, readyReplicas: 1 });
    expect(withStatus.metadata.generation).to.equal(2);
    const specAgain = await registry.update('Deployment', { ...withStatus, status: { replicas: 0 } });
    expect(specAgain.status).to.deep.equal({ replicas: 3, readyReplicas: 1 });
    // Writing what is stored changes nothing: same version, no new revision.
    const revision = store.kv.revision;
    const same = await registry.update('Deployment', specAgain);
    expect(same.metadata.resourceVersion).to.equal(specAgain.metadata.resourceVersion);
    expect(store.kv.revision).to.equal(revision);
    const immutable = await refusal(registry.update('Deployment', { ...specAgain, metadata: { ...specAgain.metadata, uid: 'other' } }));
    expect(immutable.fieldErrors).to.deep.equal([{ path: 'metadata.uid', message: 'field is immutable' }]);
  });

  it('patches with JSON merge patch', async function () {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] })).to.deep.equal({ a: 1, b: { d: 3, e: 4 }, f: [1] });
    await registry.create('ConfigMap', configMap('patched', { a: '1', b: '2' }, { labels: { keep: 'yes' } }));
    const patched = await registry.patch('ConfigMap', 'default', 'patched', { data: { a: null, c: '3' }, metadata: { labels: { added: 'yes' } } });
    expect(patched.data).to.deep.equal({ b: '2', c: '3' });
    expect(patched.metadata.labels).to.deep.equal({ keep: 'yes', added: 'yes' });
    const bad = await refusal(registry.patch('ConfigMap', 'default', 'patched', { data: { a: 1 } }));
    expect(bad.fieldErrors.map((error) => error.path)).to.deep.equal(['data["a"]']);
  });

  it('lists with label and field selectors, pages with continue tokens from one snapshot, and reads at a resourceVersion', async function () {
    await registry.create('Namespace', namespace('list'));
    for (let index = 0; index < 7; index++) {
      await registry.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `item-${index}`, namespace: 'list', labels: { parity: index % 2 === 0 ? 'even' : 'odd' } } });
    }
    const even = await registry.list('ConfigMap', { namespace: 'list', labelSelector: 'parity=even' });
    expect(even.items.map((item) => item.metadata.name)).to.deep.equal(['item-0', 'item-2', 'item-4', 'item-6']);
    const named = await registry.list('ConfigMap', { namespace: 'list', fieldSelector: 'metadata.name=item-3' });
    expect(named.items.map((item) => item.metadata.name)).to.deep.equal(['item-3']);
    const snapshot = await registry.list('ConfigMap', { namespace: 'list' });
    // Pages of 3, with a write between pages that must not show up.
    const pages: ApiObject[][] = [];
    let token = '';
    do {
      const page = await registry.list('ConfigMap', { namespace: 'list', limit: 3, continue: token });
      pages.push(page.items);
      token = page.continue;
      if (pages.length === 1) await registry.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'item-late', namespace: 'list' } });
    } while (token !== '');
    expect(pages.map((page) => page.length)).to.deep.equal([3, 3, 1]);
    expect(pages.flat().map((item) => item.metadata.name)).to.deep.equal(snapshot.items.map((item) => item.metadata.name));
    const old = await registry.list('ConfigMap', { namespace: 'list', resourceVersion: snapshot.resourceVersion });
    expect(old.items).to.have.length(7);
    expect((await registry.list('ConfigMap', { namespace: 'list' })).items).to.have.length(8);
    const all = await registry.list('ConfigMap', {});
    expect(all.items.some((item) => item.metadata.namespace === 'default')).to.equal(true);
    for (const [options, message] of [
      [{ labelSelector: 'a in ()' }, /at least one value/],
      [{ fieldSelector: 'spec.image=x' }, /not supported/],
      [{ continue: 'garbage' }, /not one this server issued/],
      [{ resourceVersion: 'abc' }, /not a resourceVersion/],
      [{ resourceVersion: '99999999' }, /resourceVersion 99999999 is newer than the store's/],
      [{ continue: Buffer.from(JSON.stringify({ rv: 1, start: '/registry/secrets/' })).toString('base64url') }, /belongs to another listing/],
    ] as const) {
      const error = await refusal(registry.list('ConfigMap', options));
      expect(error.reason).to.equal('BadRequest');
      expect(error.message).to.match(message);
    }
  });

  it('gives Services unique cluster IPs and node ports and frees them on delete', async function () {
    const service = (name: string, extra: object = {}): object => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { type: 'NodePort', selector: { app: name }, ports: [{ port: 80 }], ...extra } });
    const created = await Promise.all(['s1', 's2', 's3', 's4'].map((name) => registry.create('Service', service(name))));
    const ips = created.map((item) => (item.spec as { clusterIP: string }).clusterIP);
    const ports = created.map((item) => (item.spec as { ports: Array<{ nodePort: number }> }).ports[0]!.nodePort);
    expect(new Set(ips).size).to.equal(4);
    expect(new Set(ports).size).to.equal(4);
    // Anywhere in the default 10.96.0.0/12 (10.96.0.0-10.111.255.255): picked from a random start.
    for (const ip of ips) expect(ip).to.match(/^10\.(9[6-9]|10\d|11[01])\.\d+\.\d+$/);
    for (const port of ports) expect(port).to.be.within(30000, 32767);
    const taken = await refusal(registry.create('Service', service('s5', { clusterIP: ips[0] })));
    expect(taken.message).to.contain(`"${ips[0]}": provided IP is already allocated`);
    await registry.delete('Service', 'default', 's1');
    const reused = await registry.create('Service', service('s6', { clusterIP: ips[0], ports: [{ port: 80, nodePort: ports[0] }] }));
    expect((reused.spec as { clusterIP: string }).clusterIP).to.equal(ips[0]);
    const headless = await registry.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'headless', namespace: 'default' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } });
    expect((headless.spec as { clusterIP: string }).clusterIP).to.equal('None');
    // Changing the IP is refused; an update that omits it keeps it.
    const current = await registry.get('Service', 'default', 's2');
    const moved = await refusal(registry.update('Service', { ...current, spec: { ...(current.spec as object), clusterIP: '10.96.200.200' } }));
    expect(moved.fieldErrors.map((error) => error.path)).to.include('spec.clusterIP');
    const kept = await registry.update('Service', { ...current, spec: { type: 'NodePort', selector: { app: 'other' }, ports: [{ port: 80 }] } });
    expect((kept.spec as { clusterIP: string }).clusterIP).to.equal(ips[1]);
    expect((kept.spec as { ports: Array<{ nodePort: number }> }).ports[0]!.nodePort).to.equal(ports[1]);
  });

  it('answers Gone for a resourceVersion whose history was compacted', async function () {
    const before = await registry.list('ConfigMap', { namespace: 'default' });
    await registry.create('ConfigMap', configMap('after-snapshot', {}));
    await store.write({ $case: 'compaction', value: { revision: store.kv.revision, physical: false } });
    const gone = await refusal(registry.list('ConfigMap', { namespace: 'default', resourceVersion: before.resourceVersion }));
    expect(gone.reason).to.equal('Gone');
    expect(gone.message).to.match(/is too old/);
  });

  it('marks objects with finalizers for deletion and removes them with the last finalizer', async function () {
    const created = await registry.create('ConfigMap', configMap('guarded', {}, { finalizers: ['example.com/cleanup', 'example.com/audit'] }));
    const marked = await registry.delete('ConfigMap', 'default', 'guarded');
    expect(marked.metadata.deletionTimestamp).to.equal('2026-11-25T12:00:00Z');
    expect(marked.metadata.deletionGracePeriodSeconds).to.equal(0);
    expect(Number(marked.metadata.resourceVersion)).to.be.greaterThan(Number(created.metadata.resourceVersion));
    // Deleting again changes nothing; new finalizers are refused while deleting.
    expect((await registry.delete('ConfigMap', 'default', 'guarded')).metadata.resourceVersion).to.equal(marked.metadata.resourceVersion);
    const added = await refusal(registry.update('ConfigMap', { ...marked, metadata: { ...marked.metadata, finalizers: ['example.com/cleanup', 'example.com/audit', 'example.com/late'] } }));
    expect(added.message).to.contain('no new finalizers can be added if the object is being deleted');
    const one = await registry.update('ConfigMap', { ...marked, metadata: { ...marked.metadata, finalizers: ['example.com/audit'] } });
    expect(one.metadata.finalizers).to.deep.equal(['example.com/audit']);
    await registry.update('ConfigMap', { ...one, metadata: { ...one.metadata, finalizers: [] } });
    expect((await refusal(registry.get('ConfigMap', 'default', 'guarded'))).reason).to.equal('NotFound');
  });

  it('gives a pod bound to a node its grace period, and deletes unbound or finished pods at once', async function () {
    const pod = (name: string, spec: object = {}): object => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox:1.36' }], ...spec } });
    await registry.create('Pod', pod('unbound'));
    await registry.delete('Pod', 'default', 'unbound');
    expect((await refusal(registry.get('Pod', 'default', 'unbound'))).reason).to.equal('NotFound');
    await registry.create('Pod', pod('bound', { nodeName: 'n1', terminationGracePeriodSeconds: 20 }));
    const terminating = await registry.delete('Pod', 'default', 'bound');
    expect(terminating.metadata.deletionGracePeriodSeconds).to.equal(20);
    expect(terminating.metadata.deletionTimestamp).to.equal('2026-11-25T12:00:20Z');
    // A shorter grace period shortens the wait; 0 (the node is done) removes it.
    expect((await registry.delete('Pod', 'default', 'bound', { gracePeriodSeconds: 5 })).metadata.deletionGracePeriodSeconds).to.equal(5);
    expect((await registry.delete('Pod', 'default', 'bound', { gracePeriodSeconds: 10 })).metadata.deletionGracePeriodSeconds).to.equal(5);
    await registry.delete('Pod', 'default', 'bound', { gracePeriodSeconds: 0 });
    expect((await refusal(registry.get('Pod', 'default', 'bound'))).reason).to.equal('NotFound');
    expect((await refusal(registry.delete('Pod', 'default', 'x', { gracePeriodSeconds: -1 }))).reason).to.equal('NotFound');
    await registry.create('Pod', pod('done', { nodeName: 'n1' }));
    const done = await registry.get('Pod', 'default', 'done');
    await registry.updateStatus('Pod', { ...done, status: { phase: 'Succeeded' } });
    await registry.delete('Pod', 'default', 'done');
    expect((await refusal(registry.get('Pod', 'default', 'done'))).reason).to.equal('NotFound');
    await registry.create('Pod', pod('negative', { nodeName: 'n1' }));
    expect((await refusal(registry.delete('Pod', 'default', 'negative', { gracePeriodSeconds: -1 }))).message).to.contain('gracePeriodSeconds must be a whole number');
  });

  it('deletes, optionally only at a resourceVersion', async function () {
    const created = await registry.create('ConfigMap', configMap('doomed', {}));
    const updated = await registry.update('ConfigMap', { ...created, data: { x: 'y' } });
    const conflict = await refusal(registry.delete('ConfigMap', 'default', 'doomed', { resourceVersion: created.metadata.resourceVersion as string }));
    expect(conflict.reason).to.equal('Conflict');
    const deleted = await registry.delete('ConfigMap', 'default', 'doomed', { resourceVersion: updated.metadata.resourceVersion as string });
    expect(deleted.data).to.deep.equal({ x: 'y' });
    expect((await refusal(registry.get('ConfigMap', 'default', 'doomed'))).message).to.equal('ConfigMap "doomed" not found in namespace "default"');
    expect((await refusal(registry.delete('ConfigMap', 'default', 'doomed'))).reason).to.equal('NotFound');
  });

  it('fences writes with a Lease token: a superseded holder can never write', async function () {
    const lease = (holderIdentity: string, renewTime = '2026-11-25T12:00:00.000000Z'): object => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'scheduler', namespace: 'default' }, spec: { holderIdentity, leaseDurationSeconds: 2, renewTime } });
    const acquiredByA = await registry.create('Lease', lease('a'));
    const tokenA = Number(acquiredByA.metadata.resourceVersion);
    const fenceA = { namespace: 'default', name: 'scheduler', token: tokenA };
    const written = await registry.create('ConfigMap', configMap('fenced', { by: 'a' }), { fence: fenceA });
    // B takes the lease: from then on A's token is refused, in every kind of write.
    const acquiredByB = await registry.update('Lease', { ...acquiredByA, spec: { holderIdentity: 'b', leaseDurationSeconds: 2, renewTime: '2026-11-25T12:00:05.000000Z' } });
    const fenceB = { namespace: 'default', name: 'scheduler', token: Number(acquiredByB.metadata.resourceVersion) };
    const before = store.kv.revision;
    for (const attempt of [
      () => registry.create('ConfigMap', configMap('late', {}), { fence: fenceA }),
      () => registry.update('ConfigMap', { ...written, data: { by: 'stale a' } }, { fence: fenceA }),
      () => registry.patch('ConfigMap', 'default', 'fenced', { data: { by: 'stale a' } }, { fence: fenceA }),
      () => registry.delete('ConfigMap', 'default', 'fenced', { fence: fenceA }),
    ]) {
      const refused = await refusal(attempt());
      expect(refused.reason).to.equal('Fenced');
      expect(refused.message).to.equal(`Lease default/scheduler has had a newer holder since revision ${fenceB.token}: this writer's fencing token ${tokenA} is superseded, so it may not write`);
    }
    expect(store.kv.revision).to.equal(before);
    // B renews (same holder): its token stays good.
    const renewed = await registry.update('Lease', { ...acquiredByB, spec: { holderIdentity: 'b', leaseDurationSeconds: 2, renewTime: '2026-11-25T12:00:07.000000Z' } });
    expect(Number(renewed.metadata.resourceVersion)).to.be.greaterThan(fenceB.token);
    const byB = await registry.update('ConfigMap', { ...written, data: { by: 'b' } }, { fence: fenceB });
    expect(byB.data).to.deep.equal({ by: 'b' });
    // A fenced write that loses an ordinary race is a Conflict, not Fenced.
    expect((await refusal(registry.update('ConfigMap', { ...written, data: { by: 'b again' } }, { fence: fenceB }))).reason).to.equal('Conflict');
    // Without the Lease nobody holds it.
    await registry.delete('Lease', 'default', 'scheduler');
    expect((await refusal(registry.delete('ConfigMap', 'default', 'fenced', { fence: fenceB }))).message).to.equal(`Lease default/scheduler has no holder: this writer's fencing token ${fenceB.token} is superseded, so it may not write`);
  });

  it('binds a pending pod to a node once (pods/binding), at its version when given', async function () {
    const created = await registry.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'to-bind', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    const stale = created.metadata.resourceVersion as string;
    const touched = await registry.patch('Pod', 'default', 'to-bind', { metadata: { labels: { touched: 'yes' } } });
    expect((await refusal(registry.bind('default', 'to-bind', 'n1', { resourceVersion: stale }))).reason).to.equal('Conflict');
    const bound = await registry.bind('default', 'to-bind', 'n1', { resourceVersion: touched.metadata.resourceVersion as string });
    expect((bound.spec as { nodeName: string }).nodeName).to.equal('n1');
    expect(bound.metadata.labels).to.deep.equal({ touched: 'yes' });
    expect(await registry.get('Pod', 'default', 'to-bind')).to.deep.equal(bound);
    const again = await refusal(registry.bind('default', 'to-bind', 'n2'));
    expect(again.reason).to.equal('Conflict');
    expect(again.message).to.equal('pod to-bind is already assigned to node "n1"');
    expect((await refusal(registry.bind('default', 'nowhere', 'n1'))).reason).to.equal('NotFound');
    expect((await refusal(registry.bind('default', 'to-bind', 'Not_A_Node'))).reason).to.equal('Invalid');
  });
});
