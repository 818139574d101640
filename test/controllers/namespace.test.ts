// Namespace deletion: the controller's pure decision (what to delete, the
// conditions, when to finalize), and the registry's side of the lifecycle
// (the 'kubernetes' finalizer, Terminating, creates refused, finalizing by
// update, the namespaces that may not be deleted).

import { expect } from 'chai';
import type { Namespace } from '../../proto/gen/resources/v1/core.js';
import { Registry, type ApiObject } from '../../services/apiserver/registry.js';
import { CONTENT_RECHECK_MAX_MS, CONTENT_RECHECK_MIN_MS, needsFinalizing, planContentDeletion, planNamespaceStatus, withoutOurFinalizer, type ContentGroup } from '../../services/controllers/namespace/reconcile.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { refusal } from '../support/refusals.js';
import { openSingleStore } from '../support/single-store.js';

const NOW_MS = Date.parse('2026-11-25T12:00:00Z');

const terminating: Namespace = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name: 'shop', deletionTimestamp: '2026-11-25T11:59:00Z' },
  spec: { finalizers: ['kubernetes'] },
  status: { phase: 'Terminating' },
};

const group = (kind: string, resource: string, objects: ContentGroup['objects']): ContentGroup => ({ kind, resource, objects });

describe('controllers: namespace deletion (decision)', function () {
  it('works only on namespaces being deleted that still carry its finalizer', function () {
    expect(needsFinalizing(terminating)).to.equal(true);
    expect(needsFinalizing({ ...terminating, spec: { finalizers: [] } })).to.equal(false);
    expect(needsFinalizing({ metadata: { name: 'live' }, spec: { finalizers: ['kubernetes'] } })).to.equal(false);
    expect(withoutOurFinalizer({ spec: { finalizers: ['example.com/x', 'kubernetes'] } })).to.deep.equal(['example.com/x']);
  });

  it('deletes everything not already on its way out', function () {
    const deletions = planContentDeletion([
      group('Pod', 'pods', [{ metadata: { name: 'web-1' } }, { metadata: { name: 'web-2', deletionTimestamp: '2026-11-25T12:00:30Z' } }]),
      group('Deployment', 'deployments.apps', [{ metadata: { name: 'web' } }]),
      group('ConfigMap', 'configmaps', []),
    ]);
    expect(deletions).to.deep.equal([
      { kind: 'Pod', resource: 'pods', name: 'web-1' },
      { kind: 'Deployment', resource: 'deployments.apps', name: 'web' },
    ]);
  });

  it('reports what remains in Kubernetes’ words and looks again when the longest grace period ends', function () {
    const plan = planNamespaceStatus(terminating, [
      group('Pod', 'pods', [{ metadata: { name: 'web-1', deletionTimestamp: '2026-11-25T12:00:20Z' } }, { metadata: { name: 'web-2', deletionTimestamp: '2026-11-25T12:00:05Z' } }]),
      group('ConfigMap', 'configmaps', [{ metadata: { name: 'kept', deletionTimestamp: '2026-11-25T11:59:30Z', finalizers: ['example.com/hold'] } }]),
      group('Secret', 'secrets', []),
    ], ['secrets "s": the server is on fire'], NOW_MS);
    expect(plan.changed).to.equal(true);
    expect(plan.finalize).to.equal(false);
    expect(plan.recheckAfterMs).to.equal(20_000);
    const at = '2026-11-25T12:00:00Z';
    expect(plan.conditions).to.deep.equal([
      { type: 'NamespaceDeletionDiscoveryFailure', status: 'False', lastTransitionTime: at, reason: 'ResourcesDiscovered', message: 'All resources successfully discovered' },
      { type: 'NamespaceDeletionGroupVersionParsingFailure', status: 'False', lastTransitionTime: at, reason: 'ParsedGroupVersions', message: 'All legacy kube types successfully parsed' },
      { type: 'NamespaceDeletionContentFailure', status: 'True', lastTransitionTime: at, reason: 'ContentDeletionFailed', message: 'Failed to delete all resource types, 1 remaining: secrets "s": the server is on fire' },
      { type: 'NamespaceContentRemaining', status: 'True', lastTransitionTime: at, reason: 'SomeResourcesRemain', message: 'Some resources are remaining: configmaps has 1 resource instances, pods has 2 resource instances' },
      { type: 'NamespaceFinalizersRemaining', status: 'True', lastTransitionTime: at, reason: 'SomeFinalizersRemain', message: 'Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances' },
    ]);
    // Content without a grace period (finalizers): the least wait; a very long grace: the most.
    expect(planNamespaceStatus(terminating, [group('ConfigMap', 'configmaps', [{ metadata: { name: 'kept', finalizers: ['x'] } }])], [], NOW_MS).recheckAfterMs).to.equal(CONTENT_RECHECK_MIN_MS);
    expect(planNamespaceStatus(terminating, [group('Pod', 'pods', [{ metadata: { name: 'slow', deletionTimestamp: '2026-11-25T13:00:00Z' } }])], [], NOW_MS).recheckAfterMs).to.equal(CONTENT_RECHECK_MAX_MS);
  });

  it('finalizes an empty namespace, keeps transition times of unchanged conditions and others’ conditions', function () {
    const first = planNamespaceStatus(terminating, [group('Pod', 'pods', [])], [], NOW_MS);
    expect(first.finalize).to.equal(true);
    expect(first.recheckAfterMs).to.equal(undefined);
    expect(first.conditions.map((condition) => [condition.type, condition.status, condition.reason])).to.deep.equal([
      ['NamespaceDeletionDiscoveryFailure', 'False', 'ResourcesDiscovered'],
      ['NamespaceDeletionGroupVersionParsingFailure', 'False', 'ParsedGroupVersions'],
      ['NamespaceDeletionContentFailure', 'False', 'ContentDeleted'],
      ['NamespaceContentRemaining', 'False', 'ContentRemoved'],
      ['NamespaceFinalizersRemaining', 'False', 'ContentHasNoFinalizers'],
    ]);
    const foreign = { type: 'example.com/Ready', status: 'True' };
    const written: Namespace = { ...terminating, status: { phase: 'Terminating', conditions: [...first.conditions, foreign] } };
    const again = planNamespaceStatus(written, [], [], NOW_MS + 60_000);
    expect(again.changed).to.equal(false);
    expect(again.conditions).to.deep.equal([...first.conditions, foreign]);
  });
});

describe('apiserver: the namespace lifecycle in the registry', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let registry: Registry;

  const namespace = (name: string, extra: object = {}): object => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name }, ...extra });
  const configMap = (name: string, ns: string): object => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns } });

  before(async function () {
    ({ store, close } = await openSingleStore());
    registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) await registry.create('Namespace', namespace(name));
  });

  after(async function () {
    await close();
  });

  it('creates namespaces Active with the kubernetes finalizer', async function () {
    const created = await registry.create('Namespace', namespace('fresh'));
    expect(created.spec).to.deep.equal({ finalizers: ['kubernetes'] });
    expect(created.status).to.deep.equal({ phase: 'Active' });
  });

  it('marks a deleted namespace Terminating, refuses new content, and removes it once its finalizer goes', async function () {
    await registry.create('Namespace', namespace('doomed'));
    await registry.create('ConfigMap', configMap('before', 'doomed'));
    const marked = await registry.delete('Namespace', '', 'doomed');
    expect(marked.metadata.deletionTimestamp).to.be.a('string');
    expect(marked.status).to.deep.equal({ phase: 'Terminating' });
    expect(marked.spec).to.deep.equal({ finalizers: ['kubernetes'] });
    // A second delete changes nothing.
    const again = await registry.delete('Namespace', '', 'doomed');
    expect(again.metadata.resourceVersion).to.equal(marked.metadata.resourceVersion);
    const refused = await refusal(registry.create('ConfigMap', configMap('after', 'doomed')));
    expect(refused.reason).to.equal('Forbidden');
    expect(refused.message).to.equal('configmaps "after" is forbidden: unable to create new content in namespace doomed because it is being terminated');
    // What is there can still be changed and deleted.
    const before = await registry.get('ConfigMap', 'doomed', 'before');
    await registry.update('ConfigMap', { ...before, data: { a: '1' } });
    await registry.delete('ConfigMap', 'doomed', 'before');
    // No new finalizers while terminating.
    const current = await registry.get('Namespace', '', 'doomed');
    const added = await refusal(registry.update('Namespace', { ...current, spec: { finalizers: ['kubernetes', 'example.com/more'] } }));
    expect(added.reason).to.equal('Invalid');
    expect(added.message).to.contain('spec.finalizers: Forbidden: no new finalizers can be added if the namespace is being terminated, found new finalizers ["example.com/more"]');
    // A status write (the controller's conditions) keeps it.
    const withConditions = await registry.updateStatus('Namespace', { ...current, status: { phase: 'Terminating', conditions: [{ type: 'NamespaceContentRemaining', status: 'False' }] } });
    expect(withConditions.status).to.deep.include({ phase: 'Terminating' });
    // Finalizing: an update that empties spec.finalizers.
    await registry.update('Namespace', { ...withConditions, spec: { finalizers: [] } });
    const gone = await refusal(registry.get('Namespace', '', 'doomed'));
    expect(gone.reason).to.equal('NotFound');
  });

  it('removes a namespace without finalizers at once, and keeps one with other finalizers until they go', async function () {
    await registry.create('Namespace', namespace('bare', { spec: { finalizers: [] } }));
    await registry.delete('Namespace', '', 'bare');
    expect((await refusal(registry.get('Namespace', '', 'bare'))).reason).to.equal('NotFound');
    await registry.create('Namespace', namespace('held', { metadata: { name: 'held', finalizers: ['example.com/hold'] } }));
    const marked = await registry.delete('Namespace', '', 'held');
    const finalized = await registry.update('Namespace', { ...marked, spec: { finalizers: [] } });
    expect(finalized.metadata.deletionTimestamp).to.be.a('string');
    await registry.update('Namespace', { ...finalized, metadata: { ...finalized.metadata, finalizers: [] } });
    expect((await refusal(registry.get('Namespace', '', 'held'))).reason).to.equal('NotFound');
  });

  it('refuses to delete the namespaces every cluster keeps', async function () {
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      const refused = await refusal(registry.delete('Namespace', '', name));
      expect(refused.reason).to.equal('Forbidden');
      expect(refused.message).to.equal(`namespaces "${name}" is forbidden: this namespace may not be deleted`);
      expect((await registry.get('Namespace', '', name)).metadata.deletionTimestamp).to.equal(undefined);
    }
  });

  it('lets no create racing the deletion land after it', async function () {
    await registry.create('Namespace', namespace('racing'));
    const creates = Array.from({ length: 30 }, (_, index) => registry.create('ConfigMap', configMap(`c${index}`, 'racing')));
    const deletion = registry.delete('Namespace', '', 'racing');
    const results = await Promise.allSettled(creates);
    const marked = await deletion;
    const markedAt = Number(marked.metadata.resourceVersion);
    for (const result of results) {
      if (result.status === 'fulfilled') expect(Number((result.value as ApiObject).metadata.resourceVersion)).to.be.lessThan(markedAt);
      else expect((result.reason as Error).message).to.match(/because it is being terminated$/);
    }
    const stored = (await registry.list('ConfigMap', { namespace: 'racing' })).items;
    expect(stored.length).to.equal(results.filter((result) => result.status === 'fulfilled').length);
  });
});
