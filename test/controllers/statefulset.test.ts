// The StatefulSet controller's pure decision: ordered creation and removal,
// identities and claims, pods made again under the same name, the rolling
// update (order, partition, OnDelete), Parallel, and the status.

import { expect } from 'chai';
import type { StatefulSet } from '../../proto/gen/resources/v1/apps.js';
import type { PersistentVolumeClaim, Pod, PodTemplateSpec } from '../../proto/gen/resources/v1/core.js';
import { ordinalOf, planStatefulSet, revisionName, type StatefulSetPlan } from '../../services/controllers/statefulset/reconcile.js';

const NOW_MS = Date.parse('2026-11-25T12:00:00Z');
const READY = '2026-11-25T11:00:00Z';
const TEMPLATE: PodTemplateSpec = { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'c', image: 'db:1', volumeMounts: [{ name: 'data', mountPath: '/data' }] }], volumes: [{ name: 'scratch', emptyDir: {} }] } };
const NEW_TEMPLATE: PodTemplateSpec = { ...TEMPLATE, spec: { ...TEMPLATE.spec, containers: [{ name: 'c', image: 'db:2' }] } };
const REVISION = revisionName('db', TEMPLATE);
const NEW_REVISION = revisionName('db', NEW_TEMPLATE);

function statefulSet(spec: Partial<NonNullable<StatefulSet['spec']>> = {}, status: NonNullable<StatefulSet['status']> = {}): StatefulSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db', namespace: 'shop', uid: 'sts-uid', generation: 4 },
    spec: {
      replicas: 3,
      serviceName: 'db-headless',
      selector: { matchLabels: { app: 'db' } },
      template: TEMPLATE,
      volumeClaimTemplates: [{ metadata: { name: 'data', labels: { tier: 'storage' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
      ...spec,
    },
    status,
  };
}

interface PodOptions {
  readonly revision?: string;
  readonly phase?: string;
  readonly ready?: boolean;
  readonly readyAt?: string;
  readonly deleting?: boolean;
  readonly ownerUid?: string | null;
}

function pod(ordinal: number, options: PodOptions = {}): Pod {
  const name = `db-${ordinal}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'shop',
      uid: `uid-${name}`,
      resourceVersion: '9',
      labels: { app: 'db', 'controller-revision-hash': options.revision ?? REVISION, 'statefulset.kubernetes.io/pod-name': name, 'apps.kubernetes.io/pod-index': String(ordinal) },
      ...(options.deleting === true ? { deletionTimestamp: '2026-11-25T11:59:00Z' } : {}),
      ...(options.ownerUid === null ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: options.ownerUid ?? 'sts-uid', controller: true }] }),
    },
    spec: { containers: [{ name: 'c', image: 'db:1' }] },
    status: { phase: options.phase ?? 'Running', conditions: options.ready === false ? [] : [{ type: 'Ready', status: 'True', lastTransitionTime: options.readyAt ?? READY }] },
  };
}

function claim(name: string, deleting = false): PersistentVolumeClaim {
  return { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: 'shop', ...(deleting ? { deletionTimestamp: READY } : {}) }, spec: {} };
}

const CLAIMS = [0, 1, 2, 3, 4].map((ordinal) => claim(`data-db-${ordinal}`));
const plan = (set: StatefulSet, pods: Pod[], claims: PersistentVolumeClaim[] = CLAIMS, revisions?: Map<string, PodTemplateSpec>): StatefulSetPlan => planStatefulSet({ statefulSet: set, pods, claims, nowMs: NOW_MS, ...(revisions ? { revisions } : {}) });
const names = (pods: readonly Pod[] | readonly PersistentVolumeClaim[]): string[] => pods.map((one) => one.metadata?.name ?? '');

describe('controllers: statefulset', function () {
  it('parses ordinals only from "<set>-<n>"', function () {
    expect(ordinalOf('db', 'db-0')).to.equal(0);
    expect(ordinalOf('db', 'db-12')).to.equal(12);
    expect(ordinalOf('my-db', 'my-db-3')).to.equal(3);
    for (const name of ['db-', 'db-01', 'db-x', 'other-1', 'db-1-2', 'db']) expect(ordinalOf('db', name), name).to.equal(undefined);
  });

  it('creates ordinal 0 first, with its identity and claims, the claims before the pod', function () {
    const result = plan(statefulSet(), [], []);
    expect(names(result.createClaims)).to.deep.equal(['data-db-0']);
    expect(result.createClaims[0]).to.deep.equal({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'data-db-0', namespace: 'shop', labels: { tier: 'storage', app: 'db' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    });
    expect(result.createPods).to.deep.equal([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'db-0',
          namespace: 'shop',
          labels: { app: 'db', 'controller-revision-hash': REVISION, 'statefulset.kubernetes.io/pod-name': 'db-0', 'apps.kubernetes.io/pod-index': '0' },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'sts-uid', controller: true, blockOwnerDeletion: true }],
        },
        spec: {
          containers: [{ name: 'c', image: 'db:1', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }, { name: 'scratch', emptyDir: {} }],
          hostname: 'db-0',
          subdomain: 'db-headless',
        },
      },
    ]);
    expect(result.deletePods).to.deep.equal([]);
    expect(REVISION).to.match(/^db-[bcdfghjklmnpqrstvwxz2456789]+$/);
  });

  it('OrderedReady: creates ordinal i only once 0..i-1 are Running and Ready (and available)', function () {
    const set = statefulSet();
    expect(names(plan(set, [pod(0, { phase: 'Pending', ready: false })]).createPods)).to.deep.equal([]);
    expect(names(plan(set, [pod(0, { ready: false })]).createPods)).to.deep.equal([]);
    expect(names(plan(set, [pod(0)]).createPods)).to.deep.equal(['db-1']);
    expect(names(plan(set, [pod(0), pod(1)]).createPods)).to.deep.equal(['db-2']);
    // A gap below is filled first.
    expect(names(plan(set, [pod(1), pod(2)]).createPods)).to.deep.equal(['db-0']);
    // minReadySeconds: ready 30 s ago is not enough for 60; look again in 30 s.
    const slow = plan(statefulSet({ minReadySeconds: 60 }), [pod(0, { readyAt: '2026-11-25T11:59:30Z' })]);
    expect(slow.createPods).to.deep.equal([]);
    expect(slow.requeueAfterMs).to.equal(30_000);
    // Claims that exist are not made again; one being deleted holds its pod back.
    expect(plan(set, [pod(0)]).createClaims).to.deep.equal([]);
    const held = plan(set, [pod(0)], [claim('data-db-0'), claim('data-db-1', true)]);
    expect(held.createPods).to.deep.equal([]);
    // A pending pod whose claim is missing gets it.
    expect(names(plan(set, [pod(0, { phase: 'Pending', ready: false })], []).createClaims)).to.deep.equal(['data-db-0']);
  });

  it('OrderedReady: scales down from the highest ordinal, one at a time, only while the others are Running and Ready', function () {
    const set = statefulSet({ replicas: 2 });
    const five = [0, 1, 2, 3, 4].map((ordinal) => pod(ordinal));
    expect(names(plan(set, five).deletePods)).to.deep.equal(['db-4']);
    // db-4 terminating: wait for it to be gone.
    expect(plan(set, [...five.slice(0, 4), pod(4, { deleting: true })]).deletePods).to.deep.equal([]);
    expect(names(plan(set, five.slice(0, 4)).deletePods)).to.deep.equal(['db-3']);
    // A replica that is not ready blocks removal.
    expect(plan(set, [pod(0), pod(1, { ready: false }), pod(2), pod(3)]).deletePods).to.deep.equal([]);
    // A condemned pod that is not ready blocks unless it is the first unhealthy one (the lowest).
    expect(names(plan(set, [pod(0), pod(1), pod(2, { ready: false }), pod(3, { ready: false })]).deletePods)).to.deep.equal([]);
    expect(names(plan(set, [pod(0), pod(1), pod(2, { ready: false }), pod(3)]).deletePods)).to.deep.equal(['db-3']);
    expect(names(plan(set, [pod(0), pod(1), pod(2), pod(3, { ready: false })]).deletePods)).to.deep.equal(['db-3']);
    // Claims are kept: nothing deletes them.
    expect(plan(set, five).createClaims).to.deep.equal([]);
    expect(names(plan(statefulSet({ replicas: 0 }), [pod(0)]).deletePods)).to.deep.equal(['db-0']);
  });

  it('Parallel: creates and removes all at once', function () {
    const set = statefulSet({ podManagementPolicy: 'Parallel' });
    const created = plan(set, [], []);
    expect(names(created.createPods)).to.deep.equal(['db-0', 'db-1', 'db-2']);
    expect(names(created.createClaims)).to.deep.equal(['data-db-0', 'data-db-1', 'data-db-2']);
    expect(names(plan(set, [pod(0, { ready: false })], []).createPods)).to.deep.equal(['db-1', 'db-2']);
    const shrink = plan(statefulSet({ podManagementPolicy: 'Parallel', replicas: 1 }), [pod(0), pod(1, { ready: false }), pod(2), pod(3, { deleting: true })]);
    expect(names(shrink.deletePods)).to.deep.equal(['db-2', 'db-1']);
  });

  it('deletes a failed pod and makes it again under the same name once it is gone', function () {
    const set = statefulSet();
    const failed = plan(set, [pod(0), pod(1, { phase: 'Failed', ready: false }), pod(2)]);
    expect(names(failed.deletePods)).to.deep.equal(['db-1']);
    expect(failed.createPods).to.deep.equal([]);
    expect(plan(set, [pod(0), pod(1, { phase: 'Failed', ready: false, deleting: true }), pod(2)]).createPods).to.deep.equal([]);
    expect(names(plan(set, [pod(0), pod(2)]).createPods)).to.deep.equal(['db-1']);
  });

  it('adopts orphans named as its members, releases pods that stopped matching, and fixes missing identity labels', function () {
    const orphan = pod(1, { ownerUid: null });
    const stranger = { ...pod(7, { ownerUid: null }), metadata: { ...pod(7, { ownerUid: null }).metadata, name: 'web-1' } };
    const relabelled = { ...pod(2), metadata: { ...pod(2).metadata, labels: { app: 'other' } } };
    const result = plan(statefulSet(), [pod(0), orphan, stranger, relabelled]);
    expect(names(result.adopt)).to.deep.equal(['db-1']);
    expect(names(result.release)).to.deep.equal(['db-2']);
    const unlabelled = { ...pod(0), metadata: { ...pod(0).metadata, labels: { app: 'db', 'controller-revision-hash': REVISION } } };
    expect(plan(statefulSet(), [unlabelled, pod(1), pod(2)]).relabel.map(({ pod: one, labels }) => [one.metadata?.name, labels])).to.deep.equal([
      ['db-0', { 'statefulset.kubernetes.io/pod-name': 'db-0', 'apps.kubernetes.io/pod-index': '0' }],
    ]);
  });

  describe('rolling update', function () {
    const updated = (extra: Partial<NonNullable<StatefulSet['spec']>> = {}): StatefulSet => statefulSet({ template: NEW_TEMPLATE, ...extra }, { currentRevision: REVISION, updateRevision: REVISION });

    it('replaces from the highest ordinal down, one at a time, each waiting for the previous to be Running and Ready', function () {
      const set = updated();
      expect(names(plan(set, [pod(0), pod(1), pod(2)]).deletePods)).to.deep.equal(['db-2']);
      expect(plan(set, [pod(0), pod(1), pod(2, { deleting: true })]).deletePods).to.deep.equal([]);
      const remade = plan(set, [pod(0), pod(1)]);
      expect(names(remade.createPods)).to.deep.equal(['db-2']);
      expect(remade.createPods[0]!.metadata?.labels?.['controller-revision-hash']).to.equal(NEW_REVISION);
      expect(remade.createPods[0]!.spec?.containers).to.deep.equal([{ name: 'c', image: 'db:2' }]);
      expect(remade.deletePods).to.deep.equal([]);
      expect(plan(set, [pod(0), pod(1), pod(2, { revision: NEW_REVISION, ready: false })]).deletePods).to.deep.equal([]);
      expect(names(plan(set, [pod(0), pod(1), pod(2, { revision: NEW_REVISION })]).deletePods)).to.deep.equal(['db-1']);
      // Parallel sets update one at a time too.
      expect(names(plan(updated({ podManagementPolicy: 'Parallel' }), [pod(0), pod(1), pod(2)]).deletePods)).to.deep.equal(['db-2']);
    });

    it('leaves ordinals below the partition at the current revision, remaking them from its template when known', function () {
      const set = updated({ updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } } });
      expect(plan(set, [pod(0), pod(1), pod(2, { revision: NEW_REVISION })]).deletePods).to.deep.equal([]);
      const known = plan(set, [pod(1), pod(2, { revision: NEW_REVISION })], CLAIMS, new Map([[REVISION, TEMPLATE]]));
      expect(names(known.createPods)).to.deep.equal(['db-0']);
      expect(known.createPods[0]!.metadata?.labels?.['controller-revision-hash']).to.equal(REVISION);
      expect(known.createPods[0]!.spec?.containers?.[0]?.image).to.equal('db:1');
      // Not remembered (another controller made the old revision): the update revision it is.
      const unknown = plan(set, [pod(1), pod(2, { revision: NEW_REVISION })]);
      expect(unknown.createPods[0]!.metadata?.labels?.['controller-revision-hash']).to.equal(NEW_REVISION);
      expect([...known.templates.keys()].sort()).to.deep.equal([REVISION, NEW_REVISION].sort());
    });

    it('OnDelete: replaces nothing itself; a pod the user deleted comes back at the update revision', function () {
      const set = updated({ updateStrategy: { type: 'OnDelete' } });
      expect(plan(set, [pod(0), pod(1), pod(2)]).deletePods).to.deep.equal([]);
      const remade = plan(set, [pod(0), pod(2)]);
      expect(remade.createPods[0]!.metadata?.labels?.['controller-revision-hash']).to.equal(NEW_REVISION);
    });
  });

  it('reports the status, and makes the update revision current once every pod is updated and ready', function () {
    const set = statefulSet({ template: NEW_TEMPLATE, minReadySeconds: 60 }, { currentRevision: REVISION });
    const midway = plan(set, [pod(0), pod(1, { readyAt: '2026-11-25T11:59:30Z' }), pod(2, { revision: NEW_REVISION, ready: false }), pod(3, { deleting: true })]);
    expect(midway.status).to.deep.equal({
      observedGeneration: 4,
      replicas: 4,
      readyReplicas: 3,
      currentReplicas: 2,
      updatedReplicas: 1,
      availableReplicas: 2,
      currentRevision: REVISION,
      updateRevision: NEW_REVISION,
    });
    const done = plan(set, [0, 1, 2].map((ordinal) => pod(ordinal, { revision: NEW_REVISION })));
    expect(done.status).to.deep.include({ replicas: 3, currentReplicas: 3, updatedReplicas: 3, currentRevision: NEW_REVISION, updateRevision: NEW_REVISION });
    // A set being deleted only reports.
    const deleting = plan({ ...statefulSet(), metadata: { ...statefulSet().metadata, deletionTimestamp: READY } }, []);
    expect(deleting.createPods).to.deep.equal([]);
    expect(deleting.status.replicas).to.equal(0);
  });
});
