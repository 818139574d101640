// The ReplicaSet controller's pure decision, and the selector and time
// helpers reconcile logic uses.

import { expect } from 'chai';
import type { Pod } from '../../proto/gen/resources/v1/core.js';
import { equalitySelects, selectorMatches } from '../../services/controllers/common/reconcile-selector.js';
import { deletionOrder, MAX_CREATES_PER_SYNC, planReplicas, type ReplicatedOwner } from '../../services/controllers/replicaset/reconcile.js';

const NOW_MS = Date.parse('2026-11-25T12:00:00Z');

function owner(replicas: number, extra: Partial<ReplicatedOwner> = {}): ReplicatedOwner {
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: 'web-abc', namespace: 'shop', uid: 'rs-uid', generation: 3 },
    replicas,
    minReadySeconds: 10,
    template: { metadata: { labels: { app: 'web', tier: 'front' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } },
    selects: (labels) => selectorMatches({ matchLabels: { app: 'web' } }, labels),
    ...extra,
  };
}

interface PodOptions {
  readonly node?: string;
  readonly phase?: string;
  readonly readyAt?: string;
  readonly created?: string;
  readonly restarts?: number;
  readonly ownerUid?: string | null;
  readonly labels?: Record<string, string>;
}

function pod(name: string, options: PodOptions = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'shop',
      uid: `uid-${name}`,
      labels: options.labels ?? { app: 'web', tier: 'front' },
      creationTimestamp: options.created ?? '2026-11-25T11:00:00Z',
      ...(options.ownerUid === null ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc', uid: options.ownerUid ?? 'rs-uid', controller: true }] }),
    },
    spec: { ...(options.node === undefined ? {} : { nodeName: options.node }), containers: [{ name: 'c', image: 'nginx' }] },
    status: {
      phase: options.phase ?? 'Running',
      conditions: options.readyAt === undefined ? [] : [{ type: 'Ready', status: 'True', lastTransitionTime: options.readyAt }],
      containerStatuses: [{ name: 'c', restartCount: options.restarts ?? 0 }],
    },
  };
}

describe('controllers: replicaset', function () {
  it('matches label selectors and ReplicationController equality selectors as Kubernetes does', function () {
    const labels = { app: 'web', tier: 'front' };
    expect(selectorMatches({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, labels)).to.equal(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, labels)).to.equal(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }, { key: 'app', operator: 'Exists' }] }, labels)).to.equal(true);
    expect(selectorMatches({}, labels)).to.equal(true);
    expect(selectorMatches(undefined, labels)).to.equal(false);
    expect(equalitySelects({ app: 'web' }, labels)).to.equal(true);
    expect(equalitySelects({}, labels)).to.equal(false);
  });

  it('creates what is missing from the template, owned by the ReplicaSet', function () {
    const plan = planReplicas(owner(3), [pod('a', { node: 'n1', readyAt: '2026-11-25T11:00:00Z' })], NOW_MS);
    expect(plan.create).to.have.length(2);
    expect(plan.create[0]!.metadata).to.deep.equal({
      generateName: 'web-abc-',
      namespace: 'shop',
      labels: { app: 'web', tier: 'front' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc', uid: 'rs-uid', controller: true, blockOwnerDeletion: true }],
    });
    expect(plan.create[0]!.spec).to.deep.equal({ containers: [{ name: 'c', image: 'nginx' }] });
    expect(plan.delete).to.deep.equal([]);
    expect(planReplicas(owner(10_000), [], NOW_MS).create).to.have.length(MAX_CREATES_PER_SYNC);
  });

  it('deletes unscheduled, then pending, then not ready, then the newest ready first', function () {
    const pods = [
      pod('old-ready', { node: 'n1', readyAt: '2026-11-25T10:00:00Z' }),
      pod('new-ready', { node: 'n1', readyAt: '2026-11-25T11:59:00Z' }),
      pod('not-ready', { node: 'n2' }),
      pod('pending', { node: 'n2', phase: 'Pending' }),
      pod('unscheduled', { phase: 'Pending' }),
      pod('crashy', { node: 'n1', readyAt: '2026-11-25T10:00:00Z', restarts: 5 }),
    ];
    expect([...pods].sort(deletionOrder).map((one) => one.metadata?.name)).to.deep.equal(['unscheduled', 'pending', 'not-ready', 'new-ready', 'crashy', 'old-ready']);
    const plan = planReplicas(owner(2), pods, NOW_MS);
    expect(plan.delete.map((one) => one.metadata?.name)).to.deep.equal(['unscheduled', 'pending', 'not-ready', 'new-ready']);
    expect(plan.create).to.deep.equal([]);
  });

  it('adopts matching orphans, releases pods that stopped matching, and leaves other owners’ pods alone', function () {
    const plan = planReplicas(
      owner(2),
      [pod('orphan', { ownerUid: null, node: 'n1' }), pod('relabelled', { labels: { app: 'debug' } }), pod('theirs', { ownerUid: 'other-uid' }), pod('mine', { node: 'n1' }), pod('elsewhere', { ownerUid: null, labels: { app: 'db' } })],
      NOW_MS,
    );
    expect(plan.adopt.map((one) => one.metadata?.name)).to.deep.equal(['orphan']);
    expect(plan.release.map((one) => one.metadata?.name)).to.deep.equal(['relabelled']);
    expect(plan.create).to.have.length(0);
    expect(plan.delete).to.have.length(0);
    // Being deleted: no adoption, no creation.
    const deleting = planReplicas(owner(5, { metadata: { name: 'web-abc', namespace: 'shop', uid: 'rs-uid', deletionTimestamp: '2026-11-25T11:59:59Z' } }), [pod('orphan', { ownerUid: null })], NOW_MS);
    expect(deleting.adopt).to.deep.equal([]);
    expect(deleting.create).to.deep.equal([]);
  });

  it('reports replicas, fully labelled, ready and available (ready for minReadySeconds), and the generation seen', function () {
    const plan = planReplicas(
      owner(4),
      [
        pod('available', { node: 'n1', readyAt: '2026-11-25T11:59:00Z' }),
        pod('just-ready', { node: 'n1', readyAt: '2026-11-25T11:59:55Z' }),
        pod('partly-labelled', { node: 'n1', labels: { app: 'web' } }),
        pod('finished', { node: 'n1', phase: 'Succeeded' }),
      ],
      NOW_MS,
    );
    expect(plan.status).to.deep.equal({ replicas: 3, fullyLabeledReplicas: 2, readyReplicas: 2, availableReplicas: 1, observedGeneration: 3 });
    expect(plan.create).to.have.length(1);
  });
});
