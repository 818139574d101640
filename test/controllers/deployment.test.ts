// The Deployment controller's pure decision: the pod-template-hash,
// maxSurge/maxUnavailable arithmetic, each strategy step by step (and a
// simulated world with lagging ReplicaSets that checks the bounds at every
// step), paused Deployments, revisions, rollback, history cleanup,
// proportional scaling, adoption, hash collisions and the progress deadline.

import { expect } from 'chai';
import type { Deployment, ReplicaSet } from '../../proto/gen/resources/v1/apps.js';
import type { Pod, PodTemplateSpec } from '../../proto/gen/resources/v1/core.js';
import type { Condition } from '../../proto/gen/resources/v1/meta.js';
import { DeploymentSpecError, planDeployment, templateHash, type DeploymentPlan } from '../../services/controllers/deployment/reconcile.js';
import { canonicalJson, resolveFenceposts, sameTemplate, viewOf } from '../../services/controllers/deployment/reconcile-replicasets.js';

const NOW_MS = Date.parse('2026-11-25T12:00:00Z');
const NOW = '2026-11-25T12:00:00Z';

function template(image: string): PodTemplateSpec {
  return { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image }], restartPolicy: 'Always' } };
}
const V1 = template('nginx:1.24');
const V2 = template('nginx:1.25');

interface DeploymentOptions {
  readonly replicas?: number;
  readonly template?: PodTemplateSpec;
  readonly strategy?: NonNullable<Deployment['spec']>['strategy'];
  readonly paused?: boolean;
  readonly revisionHistoryLimit?: number;
  readonly status?: NonNullable<Deployment['status']>;
  readonly annotations?: Record<string, string>;
  readonly generation?: number;
}

function deployment(options: DeploymentOptions = {}): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop', uid: 'd-uid', generation: options.generation ?? 1, resourceVersion: '10', ...(options.annotations ? { annotations: options.annotations } : {}) },
    spec: {
      replicas: options.replicas ?? 3,
      selector: { matchLabels: { app: 'web' } },
      template: options.template ?? V2,
      strategy: options.strategy ?? { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      revisionHistoryLimit: options.revisionHistoryLimit ?? 10,
      progressDeadlineSeconds: 600,
      ...(options.paused === undefined ? {} : { paused: options.paused }),
    },
    ...(options.status ? { status: options.status } : {}),
  };
}

interface RsOptions {
  readonly replicas: number;
  readonly revision: number;
  /** status.replicas (default: replicas) */
  readonly pods?: number;
  /** status.availableReplicas (default: pods) */
  readonly available?: number;
  readonly created?: string;
  readonly owner?: string | null;
  readonly annotations?: Record<string, string>;
}

/** A ReplicaSet as the controller would have made it for `t`. */
function replicaSet(t: PodTemplateSpec, options: RsOptions): ReplicaSet {
  const hash = templateHash(t);
  const pods = options.pods ?? options.replicas;
  const labels = { ...t.metadata!.labels, 'pod-template-hash': hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: `web-${hash}`,
      namespace: 'shop',
      uid: `uid-${hash}`,
      resourceVersion: '5',
      generation: 2,
      creationTimestamp: options.created ?? `2026-11-25T10:00:0${options.revision % 10}Z`,
      labels,
      annotations: { 'deployment.kubernetes.io/revision': String(options.revision), ...options.annotations },
      ...(options.owner === null ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: options.owner ?? 'd-uid', controller: true, blockOwnerDeletion: true }] }),
    },
    spec: { replicas: options.replicas, minReadySeconds: 0, selector: { matchLabels: { app: 'web', 'pod-template-hash': hash } }, template: { ...t, metadata: { labels } } },
    status: { replicas: pods, readyReplicas: options.available ?? pods, availableReplicas: options.available ?? pods, observedGeneration: 2 },
  };
}

const conditionsOf = (plan: DeploymentPlan): Record<string, Pick<Condition, 'status' | 'reason' | 'message'>> =>
  Object.fromEntries((plan.status?.conditions ?? []).map((c) => [c.type, { status: c.status, reason: c.reason, message: c.message }]));
const sizes = (replicaSets: readonly ReplicaSet[]): Record<string, number | undefined> => Object.fromEntries(replicaSets.map((rs) => [rs.metadata!.name!, rs.spec?.replicas]));

describe('controllers: deployment', function () {
  describe('the pod-template-hash', function () {
    it('is a stable, safe-alphabet hash of the template that ignores key order, empty fields and its own label', function () {
      const hash = templateHash(V1);
      expect(hash).to.match(/^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
      // Pinned: the names of ReplicaSets already made must not change between versions.
      expect(hash).to.equal(templateHash({ spec: { restartPolicy: 'Always', containers: [{ image: 'nginx:1.24', name: 'web', args: [] }] }, metadata: { annotations: {}, labels: { app: 'web' } } }));
      expect(templateHash(V1)).to.equal(hash);
      expect(templateHash(V2)).to.not.equal(hash);
      expect(templateHash(V1, 1)).to.not.equal(hash);
      expect(templateHash(V1, 1)).to.not.equal(templateHash(V1, 2));
      expect(templateHash({ ...V1, metadata: { labels: { app: 'web', 'pod-template-hash': 'x' } } })).to.equal(hash);
      expect(sameTemplate(V1, replicaSet(V1, { replicas: 1, revision: 1 }).spec?.template)).to.equal(true);
      expect(sameTemplate(V1, V2)).to.equal(false);
      expect(canonicalJson({ b: 1, a: { c: null, d: [] }, e: [{}] })).to.equal('{"b":1,"e":[{}]}');
    });

    it('is FNV-1a 32 over the canonical JSON, its decimal digits in the safe alphabet', function () {
      // Computed here independently of the implementation.
      let fnv = 0x811c9dc5;
      for (const byte of new TextEncoder().encode('{}')) fnv = Math.imul(fnv ^ byte, 0x01000193) >>> 0;
      const expected = [...String(fnv)].map((digit) => 'bcdfghjklmnpqrstvwxz2456789'[digit.charCodeAt(0) % 27]).join('');
      expect(templateHash({})).to.equal(expected);
    });
  });

  describe('maxSurge and maxUnavailable', function () {
    it('scale percentages of replicas, surge rounding up and unavailable down; both 0 leaves maxUnavailable 1', function () {
      const cases: Array<[string | number, string | number, number, number, number]> = [
        ['25%', '25%', 3, 1, 0],
        ['25%', '25%', 10, 3, 2],
        ['25%', '25%', 4, 1, 1],
        ['50%', '50%', 5, 3, 2],
        ['10%', '10%', 1, 1, 0],
        [0, 0, 3, 0, 1],
        ['0%', '0%', 10, 0, 1],
        [2, '0%', 4, 2, 0],
        ['100%', 1, 7, 7, 1],
      ];
      for (const [surge, unavailable, replicas, wantSurge, wantUnavailable] of cases) {
        expect(resolveFenceposts(surge, unavailable, replicas), `${surge}/${unavailable} of ${replicas}`).to.deep.equal({ surge: wantSurge, unavailable: wantUnavailable });
      }
      expect(resolveFenceposts(undefined, undefined, 8)).to.deep.equal({ surge: 2, unavailable: 2 });
    });

    it('caps maxUnavailable at replicas, is 0 for Recreate, and refuses values that are neither counts nor percentages', function () {
      expect(viewOf(deployment({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 5 } } }))).to.include({ maxSurge: 1, maxUnavailable: 3 });
      expect(viewOf(deployment({ replicas: 0 }))).to.include({ maxSurge: 0, maxUnavailable: 0 });
      expect(viewOf(deployment({ strategy: { type: 'Recreate' } }))).to.include({ maxSurge: 0, maxUnavailable: 0, strategy: 'Recreate' });
      expect(() => viewOf(deployment({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 'lots' } } }))).to.throw(DeploymentSpecError, /maxSurge: "lots"/);
      expect(() => planDeployment(deployment({ strategy: { type: 'BlueGreen' } }), [], [], NOW_MS)).to.throw(DeploymentSpecError);
    });
  });

  describe('a new Deployment', function () {
    it('creates its ReplicaSet named by the template hash, owned, labelled, with revision 1 and the change cause', function () {
      const plan = planDeployment(deployment({ annotations: { 'kubernetes.io/change-cause': 'first', 'kubectl.kubernetes.io/last-applied-configuration': '{}' } }), [], [], NOW_MS);
      const hash = templateHash(V2);
      expect(plan.create).to.deep.equal({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: `web-${hash}`,
          namespace: 'shop',
          labels: { app: 'web', 'pod-template-hash': hash },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd-uid', controller: true, blockOwnerDeletion: true }],
          annotations: { 'kubernetes.io/change-cause': 'first', 'deployment.kubernetes.io/revision': '1', 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' },
        },
        spec: {
          replicas: 3,
          minReadySeconds: 0,
          selector: { matchLabels: { app: 'web', 'pod-template-hash': hash } },
          template: { metadata: { labels: { app: 'web', 'pod-template-hash': hash } }, spec: V2.spec },
        },
      });
      expect(plan.revision).to.equal('1');
      expect(plan.update).to.deep.equal([]);
      expect(plan.status).to.deep.equal({
        observedGeneration: 1,
        replicas: 0,
        updatedReplicas: 0,
        readyReplicas: 0,
        availableReplicas: 0,
        unavailableReplicas: 3,
        conditions: [
          { type: 'Progressing', status: 'True', lastUpdateTime: NOW, lastTransitionTime: NOW, reason: 'NewReplicaSetCreated', message: `Created new replica set "web-${hash}"` },
          { type: 'Available', status: 'False', lastUpdateTime: NOW, lastTransitionTime: NOW, reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' },
        ],
      });
    });

    it('reports it complete once its pods are available, and then writes nothing more', function () {
      const rs = replicaSet(V2, { replicas: 3, revision: 1, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      const created = { type: 'Progressing', status: 'True', lastUpdateTime: '2026-11-25T11:59:00Z', lastTransitionTime: '2026-11-25T11:59:00Z', reason: 'NewReplicaSetCreated', message: 'x' };
      const d = deployment({ annotations: { 'deployment.kubernetes.io/revision': '1' }, status: { observedGeneration: 1, replicas: 0, updatedReplicas: 0, conditions: [created] } });
      const plan = planDeployment(d, [rs], [], NOW_MS);
      expect(plan.create).to.equal(undefined);
      expect(plan.update).to.deep.equal([]);
      expect(plan.revision).to.equal(undefined);
      expect(plan.status).to.deep.include({ replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3, unavailableReplicas: 0 });
      expect(conditionsOf(plan)).to.deep.equal({
        Progressing: { status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${rs.metadata!.name}" has successfully progressed.` },
        Available: { status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' },
      });
      // The Progressing condition keeps its transition time (same status).
      expect(plan.status?.conditions?.find((c) => c.type === 'Progressing')?.lastTransitionTime).to.equal('2026-11-25T11:59:00Z');
      const settled = planDeployment({ ...d, status: plan.status! }, [rs], [], NOW_MS + 5000);
      expect(settled).to.deep.include({ create: undefined, update: [], delete: [], revision: undefined, status: undefined, recheckAfterMs: undefined });
    });
  });

  describe('RollingUpdate', function () {
    it('surges one new pod, then trades old for new one at a time (3 replicas, 25%/25%)', function () {
      const old = replicaSet(V1, { replicas: 3, revision: 1, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      const d = deployment({ annotations: { 'deployment.kubernetes.io/revision': '1' }, status: { observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 3 } });
      // 1: the new ReplicaSet, at 1 (3 + maxSurge 1 = 4 pods); nothing old may go (maxUnavailable 0).
      const first = planDeployment(d, [old], [], NOW_MS);
      expect(first.create?.spec?.replicas).to.equal(1);
      expect(first.create?.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('2');
      expect(first.revision).to.equal('2');
      expect(first.update).to.deep.equal([]);
      // 2: the new pod not yet available: nothing moves.
      const fresh = { ...first.create!, metadata: { ...first.create!.metadata, uid: 'new-uid', creationTimestamp: '2026-11-25T11:00:00Z' }, status: { replicas: 1, availableReplicas: 0 } };
      expect(planDeployment(d, [old, fresh], [], NOW_MS)).to.deep.include({ create: undefined, update: [] });
      // 3: available: one old pod goes.
      const ready = { ...fresh, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } };
      const third = planDeployment(d, [old, ready], [], NOW_MS);
      expect(sizes(third.update)).to.deep.equal({ [old.metadata!.name!]: 2 });
      // 4: the old ReplicaSet still reports the pod it is deleting: the new one must wait (Kubernetes would grow it now).
      const shrinking = { ...old, spec: { ...old.spec, replicas: 2 } };
      expect(planDeployment(d, [shrinking, ready], [], NOW_MS).update).to.deep.equal([]);
      // 5: gone: the new ReplicaSet grows to 2.
      const shrunk = { ...shrinking, status: { replicas: 2, availableReplicas: 2 } };
      expect(sizes(planDeployment(d, [shrunk, ready], [], NOW_MS).update)).to.deep.equal({ [ready.metadata!.name!]: 2 });
    });

    it('with 10 replicas and 25%/25%, creates 3 new and removes 2 old in the first sync', function () {
      const old = replicaSet(V1, { replicas: 10, revision: 1 });
      const plan = planDeployment(deployment({ replicas: 10 }), [old], [], NOW_MS);
      expect(plan.create?.spec?.replicas).to.equal(3);
      expect(sizes(plan.update)).to.deep.equal({ [old.metadata!.name!]: 8 });
      expect(plan.update[0]!.metadata?.annotations).to.include({ 'deployment.kubernetes.io/desired-replicas': '10', 'deployment.kubernetes.io/max-replicas': '13' });
      // As read, changed: the write is pinned to the version it was read at.
      expect(plan.update[0]!.metadata?.resourceVersion).to.equal('5');
    });

    it('removes unavailable old pods first, oldest ReplicaSet first, within maxUnavailable', function () {
      const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } };
      const older = replicaSet(template('nginx:1.22'), { replicas: 1, available: 0, revision: 1, created: '2026-11-25T09:00:00Z' });
      const old = replicaSet(V1, { replicas: 2, revision: 2 });
      const plan = planDeployment(deployment({ strategy }), [older, old], [], NOW_MS);
      // maxSurge 0: the new ReplicaSet starts at 0; the one pod that may go is the unavailable one.
      expect(plan.create?.spec?.replicas).to.equal(0);
      expect(sizes(plan.update)).to.deep.equal({ [older.metadata!.name!]: 0 });
      // With 2 unavailable allowed, an available one of the next oldest goes too.
      const wider = planDeployment(deployment({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 2 } } }), [older, old], [], NOW_MS);
      expect(sizes(wider.update)).to.deep.equal({ [older.metadata!.name!]: 0, [old.metadata!.name!]: 1 });
    });

    it('scales a new ReplicaSet above replicas down to replicas', function () {
      const rs = replicaSet(V2, { replicas: 5, revision: 1, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      expect(sizes(planDeployment(deployment(), [rs], [], NOW_MS).update)).to.deep.equal({ [rs.metadata!.name!]: 3 });
    });

    for (const [replicas, maxSurge, maxUnavailable] of [[3, '25%', '25%'], [10, '25%', '25%'], [5, 0, 1], [4, 2, 0], [7, '50%', '0%'], [6, '20%', '40%']] as const) {
      it(`never exceeds replicas + maxSurge pods nor drops below replicas - maxUnavailable available (${replicas}, ${maxSurge}, ${maxUnavailable}), with ReplicaSets that lag`, function () {
        for (let seed = 1; seed <= 20; seed++) {
          const world = new World(deployment({ replicas, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge, maxUnavailable } } }), [replicaSet(V1, { replicas, revision: 1 })], seed * 2654435761);
          const { maxSurge: surge, maxUnavailable: unavailable } = viewOf(world.deployment);
          for (let step = 0; !world.settled(); step++) {
            expect(step, `seed ${seed}: steps to finish the rollout`).to.be.below(1000);
            world.sync(NOW_MS + step * 1000);
            world.lag();
            expect(world.pods(), `seed ${seed}: pods at step ${step}`).to.be.at.most(replicas + surge);
            expect(world.available(), `seed ${seed}: available at step ${step}`).to.be.at.least(replicas - unavailable);
          }
          const [newRS, ...rest] = world.replicaSets.sort((a, b) => (b.spec?.replicas ?? 0) - (a.spec?.replicas ?? 0));
          expect(newRS!.spec?.template?.spec?.containers?.[0]?.image).to.equal('nginx:1.25');
          expect(newRS!.spec?.replicas).to.equal(replicas);
          expect(rest.map((rs) => rs.spec?.replicas)).to.deep.equal([0]);
          expect(world.deployment.status?.conditions?.find((c) => c.type === 'Progressing')?.reason).to.equal('NewReplicaSetAvailable');
        }
      });
    }
  });

  describe('Recreate', function () {
    it('scales the old ReplicaSet to 0, waits until no old pod is left, then creates the new one at full size', function () {
      const strategy = { type: 'Recreate' };
      const d = deployment({ strategy, annotations: { 'deployment.kubernetes.io/revision': '1' } });
      const old = replicaSet(V1, { replicas: 3, revision: 1 });
      const first = planDeployment(d, [old], [], NOW_MS);
      expect(first.create).to.equal(undefined);
      expect(sizes(first.update)).to.deep.equal({ [old.metadata!.name!]: 0 });
      const scaled = { ...old, spec: { ...old.spec, replicas: 0 } };
      expect(planDeployment(d, [scaled], [], NOW_MS)).to.deep.include({ create: undefined, update: [] });
      // The ReplicaSet counts no pods, but one is still terminating: wait.
      const gone = { ...scaled, status: { replicas: 0, availableReplicas: 0, observedGeneration: 2 } };
      const terminating: Pod = {
        metadata: { name: 'web-old-1', namespace: 'shop', labels: { app: 'web' }, deletionTimestamp: NOW, ownerReferences: [{ kind: 'ReplicaSet', name: old.metadata!.name!, uid: old.metadata!.uid!, controller: true }] },
        status: { phase: 'Running' },
      };
      expect(planDeployment(d, [gone], [terminating], NOW_MS).create).to.equal(undefined);
      // A finished pod does not hold it back.
      const finished = { ...terminating, metadata: { ...terminating.metadata, deletionTimestamp: undefined }, status: { phase: 'Succeeded' } };
      const last = planDeployment(d, [gone], [finished], NOW_MS);
      expect(last.create?.spec?.replicas).to.equal(3);
      expect(last.revision).to.equal('2');
    });
  });

  describe('paused', function () {
    it('makes no new ReplicaSet for a changed template, but still scales, and says so in Progressing', function () {
      const old = replicaSet(V1, { replicas: 3, revision: 1, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      const plan = planDeployment(deployment({ paused: true, replicas: 5 }), [old], [], NOW_MS);
      expect(plan.create).to.equal(undefined);
      expect(sizes(plan.update)).to.deep.equal({ [old.metadata!.name!]: 5 });
      expect(plan.status?.updatedReplicas).to.equal(0);
      expect(conditionsOf(plan).Progressing).to.deep.equal({ status: 'Unknown', reason: 'DeploymentPaused', message: 'Deployment is paused' });
    });

    it('rolls the change out on resume', function () {
      const old = replicaSet(V1, { replicas: 3, revision: 1 });
      const paused = { type: 'Progressing', status: 'Unknown', lastUpdateTime: NOW, lastTransitionTime: NOW, reason: 'DeploymentPaused', message: 'Deployment is paused' };
      const plan = planDeployment(deployment({ status: { observedGeneration: 1, replicas: 3, readyReplicas: 3, availableReplicas: 3, conditions: [paused] } }), [old], [], NOW_MS);
      expect(plan.create?.spec?.replicas).to.equal(1);
      expect(conditionsOf(plan).Progressing?.reason).to.equal('NewReplicaSetCreated');
    });

    it('reports DeploymentResumed when resumed with nothing to roll out', function () {
      const rs = replicaSet(V2, { replicas: 3, revision: 1, available: 1, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      const paused = { type: 'Progressing', status: 'Unknown', lastUpdateTime: NOW, lastTransitionTime: NOW, reason: 'DeploymentPaused', message: 'Deployment is paused' };
      const plan = planDeployment(deployment({ status: { observedGeneration: 1, replicas: 3, updatedReplicas: 3, readyReplicas: 1, availableReplicas: 1, conditions: [paused] } }), [rs], [], NOW_MS);
      expect(conditionsOf(plan).Progressing).to.deep.equal({ status: 'Unknown', reason: 'DeploymentResumed', message: 'Deployment is resumed' });
    });
  });

  describe('revisions and history', function () {
    it('rolls back by reusing the old ReplicaSet: its revision becomes the newest, the old one kept in revision-history', function () {
      const v1 = replicaSet(V1, { replicas: 0, revision: 1 });
      const v2 = replicaSet(V2, { replicas: 3, revision: 2 });
      const plan = planDeployment(deployment({ template: V1, annotations: { 'deployment.kubernetes.io/revision': '2' } }), [v1, v2], [], NOW_MS);
      expect(plan.create).to.equal(undefined);
      expect(plan.revision).to.equal('3');
      const back = plan.update.find((rs) => rs.metadata?.name === v1.metadata!.name);
      expect(back?.metadata?.annotations).to.include({ 'deployment.kubernetes.io/revision': '3', 'deployment.kubernetes.io/revision-history': '1' });
      expect(back?.spec?.replicas).to.equal(1);
    });

    it('deletes ReplicaSets beyond revisionHistoryLimit, oldest revision first, only those with nothing left', function () {
      const olds = Array.from({ length: 6 }, (_, index) => replicaSet(template(`nginx:1.${index}`), { replicas: 0, revision: index + 1 }));
      // Revision 2 still has a pod going away: kept.
      olds[1] = { ...olds[1]!, status: { ...olds[1]!.status, replicas: 1 } };
      const current = replicaSet(V2, { replicas: 3, revision: 7, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      const complete = { observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 3 };
      const plan = planDeployment(deployment({ revisionHistoryLimit: 2, status: complete, annotations: { 'deployment.kubernetes.io/revision': '7' } }), [...olds, current], [], NOW_MS);
      expect(plan.delete.map((rs) => rs.metadata?.annotations?.['deployment.kubernetes.io/revision'])).to.deep.equal(['1', '3', '4']);
      // Not while the rollout is still going.
      expect(planDeployment(deployment({ revisionHistoryLimit: 2, status: { ...complete, availableReplicas: 2 } }), [...olds, current], [], NOW_MS).delete).to.deep.equal([]);
    });

    it('copies a new change cause to the current ReplicaSet', function () {
      const rs = replicaSet(V2, { replicas: 3, revision: 1, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      const plan = planDeployment(deployment({ annotations: { 'kubernetes.io/change-cause': 'bump' } }), [rs], [], NOW_MS);
      expect(plan.update[0]?.metadata?.annotations?.['kubernetes.io/change-cause']).to.equal('bump');
    });
  });

  describe('scaling', function () {
    it('scales a settled Deployment by its one ReplicaSet', function () {
      const rs = replicaSet(V2, { replicas: 3, revision: 1, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } });
      const plan = planDeployment(deployment({ replicas: 5 }), [rs], [], NOW_MS);
      expect(sizes(plan.update)).to.deep.equal({ [rs.metadata!.name!]: 5 });
      expect(plan.update[0]!.metadata?.annotations).to.include({ 'deployment.kubernetes.io/desired-replicas': '5', 'deployment.kubernetes.io/max-replicas': '7' });
    });

    it('shares a new replica count between ReplicaSets in proportion mid-rollout', function () {
      const annotations = { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' };
      const old = replicaSet(V1, { replicas: 3, revision: 1, annotations });
      const fresh = replicaSet(V2, { replicas: 1, revision: 2, available: 0, annotations });
      // 6 replicas + maxSurge 2 = 8 pods where there were 4: each doubles.
      expect(sizes(planDeployment(deployment({ replicas: 6, status: { replicas: 4 } }), [old, fresh], [], NOW_MS).update)).to.deep.equal({ [old.metadata!.name!]: 6, [fresh.metadata!.name!]: 2 });
      // Down to 1 replica (+1 surge = 2): the larger, older one gives up most.
      expect(sizes(planDeployment(deployment({ replicas: 1, status: { replicas: 4 } }), [old, fresh], [], NOW_MS).update)).to.deep.equal({ [old.metadata!.name!]: 1, [fresh.metadata!.name!]: 1 });
    });
  });

  describe('a Deployment being deleted', function () {
    it('creates, adopts and scales nothing, and only reports its status', function () {
      const d = deployment();
      d.metadata!.deletionTimestamp = NOW;
      const old = replicaSet(V1, { replicas: 3, revision: 1 });
      const orphan = replicaSet(template('nginx:1.0'), { replicas: 1, revision: 9, owner: null });
      const plan = planDeployment(d, [old, orphan], [], NOW_MS);
      expect(plan).to.deep.include({ adopt: [], release: [], create: undefined, update: [], delete: [] });
      expect(plan.status).to.deep.include({ replicas: 3, updatedReplicas: 0, availableReplicas: 3 });
    });
  });

  describe('ownership', function () {
    it('adopts a matching orphan and releases an owned ReplicaSet it no longer selects, before anything else', function () {
      const orphan = replicaSet(V2, { replicas: 1, revision: 1, owner: null });
      const stray = replicaSet(V1, { replicas: 1, revision: 2 });
      stray.metadata!.labels = { app: 'other' };
      const foreign = replicaSet(template('other'), { replicas: 1, revision: 3, owner: 'someone-else' });
      const plan = planDeployment(deployment(), [orphan, stray, foreign], [], NOW_MS);
      expect(plan.adopt.map((rs) => rs.metadata?.name)).to.deep.equal([orphan.metadata!.name]);
      expect(plan.release.map((rs) => rs.metadata?.name)).to.deep.equal([stray.metadata!.name]);
      expect(plan).to.deep.include({ create: undefined, update: [], delete: [], status: undefined });
    });

    it('counts a hash collision and makes the next ReplicaSet under another name', function () {
      const squatter = replicaSet(V2, { replicas: 1, revision: 1, owner: 'someone-else' });
      squatter.spec!.template = template('something-else');
      const plan = planDeployment(deployment(), [squatter], [], NOW_MS);
      expect(plan.create).to.equal(undefined);
      expect(plan.status?.collisionCount).to.equal(1);
      const next = planDeployment(deployment({ status: plan.status! }), [squatter], [], NOW_MS);
      expect(next.create?.metadata?.name).to.equal(`web-${templateHash(V2, 1)}`).and.not.equal(squatter.metadata!.name);
    });
  });

  describe('the progress deadline', function () {
    const stuck = (lastUpdateTime: string): NonNullable<Deployment['status']> => ({
      observedGeneration: 1,
      replicas: 4,
      updatedReplicas: 1,
      readyReplicas: 3,
      availableReplicas: 3,
      unavailableReplicas: 1,
      conditions: [
        { type: 'Available', status: 'True', lastUpdateTime, lastTransitionTime: lastUpdateTime, reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' },
        { type: 'Progressing', status: 'True', lastUpdateTime, lastTransitionTime: lastUpdateTime, reason: 'ReplicaSetUpdated', message: 'ReplicaSet "x" is progressing.' },
      ],
    });
    const world = (): ReplicaSet[] => [replicaSet(V1, { replicas: 3, revision: 1 }), replicaSet(V2, { replicas: 1, revision: 2, available: 0, annotations: { 'deployment.kubernetes.io/desired-replicas': '3', 'deployment.kubernetes.io/max-replicas': '4' } })];

    it('asks to look again a second after the deadline, and then reports ProgressDeadlineExceeded', function () {
      const before = planDeployment(deployment({ status: stuck('2026-11-25T11:55:00Z') }), world(), [], NOW_MS);
      expect(before.status).to.equal(undefined);
      expect(before.recheckAfterMs).to.equal(301_000);
      const after = planDeployment(deployment({ status: stuck('2026-11-25T11:49:59Z') }), world(), [], NOW_MS);
      const newName = world()[1]!.metadata!.name!;
      expect(conditionsOf(after).Progressing).to.deep.equal({ status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${newName}" has timed out progressing.` });
      expect(after.recheckAfterMs).to.equal(undefined);
    });

    it('moves lastUpdateTime when there is progress, keeping lastTransitionTime', function () {
      const rs = world();
      rs[1] = { ...rs[1]!, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } };
      const plan = planDeployment(deployment({ status: stuck('2026-11-25T11:49:59Z') }), rs, [], NOW_MS);
      const progressing = plan.status?.conditions?.find((c) => c.type === 'Progressing');
      expect(progressing).to.deep.include({ status: 'True', reason: 'ReplicaSetUpdated', lastUpdateTime: NOW, lastTransitionTime: '2026-11-25T11:49:59Z' });
    });
  });
});

/**
 * A namespace with one Deployment whose ReplicaSets lag: each step, one
 * ReplicaSet's pods catch up with its spec (the new ones not available
 * yet), or its pods become available — a slow ReplicaSet controller and
 * kubelet. Pods are counted as the ReplicaSets report them.
 */
class World {
  replicaSets: ReplicaSet[];
  private serial = 0;

  constructor(
    public deployment: Deployment,
    initial: ReplicaSet[],
    private seed: number,
  ) {
    this.replicaSets = initial;
  }

  sync(nowMs: number): void {
    const plan = planDeployment(this.deployment, this.replicaSets, [], nowMs);
    if (plan.create !== undefined) {
      this.serial++;
      this.replicaSets.push({ ...structuredClone(plan.create), metadata: { ...plan.create.metadata, uid: `new-${this.serial}`, creationTimestamp: `2026-11-25T11:00:0${this.serial}Z`, generation: 1 }, status: {} });
    }
    for (const rs of plan.update) this.replicaSets = this.replicaSets.map((current) => (current.metadata?.name === rs.metadata?.name ? { ...structuredClone(rs), status: current.status } : current));
    const names = new Set(plan.delete.map((rs) => rs.metadata?.name));
    this.replicaSets = this.replicaSets.filter((rs) => !names.has(rs.metadata?.name));
    if (plan.status !== undefined) this.deployment = { ...this.deployment, status: plan.status };
    if (plan.revision !== undefined) this.deployment = { ...this.deployment, metadata: { ...this.deployment.metadata, annotations: { 'deployment.kubernetes.io/revision': plan.revision } } };
  }

  /**
   * A slow ReplicaSet controller and kubelet, drawn from `seed`: each step,
   * nothing happens (a quarter of the time: the controller syncs twice in a
   * row), or one ReplicaSet moves one stage towards its spec — preferring
   * the worst order, growing ones before shrinking ones, half the time.
   */
  lag(): void {
    const draw = this.next() % 4;
    if (draw === 0) return;
    const behind = this.replicaSets.filter((rs) => (rs.status?.replicas ?? 0) !== rs.spec?.replicas || (rs.status?.availableReplicas ?? 0) < (rs.status?.replicas ?? 0));
    const growing = behind.filter((rs) => (rs.status?.replicas ?? 0) < (rs.spec?.replicas ?? 0));
    const rs = draw >= 2 && growing.length > 0 ? growing[0] : behind[this.next() % Math.max(behind.length, 1)];
    if (rs === undefined) return;
    const spec = rs.spec?.replicas ?? 0;
    const status = rs.status ?? {};
    if ((status.replicas ?? 0) !== spec) {
      const available = Math.min(status.availableReplicas ?? 0, spec);
      rs.status = { replicas: spec, readyReplicas: available, availableReplicas: available, observedGeneration: rs.metadata?.generation ?? 0 };
    } else {
      rs.status = { ...status, readyReplicas: spec, availableReplicas: spec };
    }
  }

  /** xorshift32. */
  private next(): number {
    this.seed ^= this.seed << 13;
    this.seed ^= this.seed >>> 17;
    this.seed ^= this.seed << 5;
    this.seed >>>= 0;
    return this.seed;
  }

  pods(): number {
    return this.replicaSets.reduce((sum, rs) => sum + (rs.status?.replicas ?? 0), 0);
  }

  available(): number {
    return this.replicaSets.reduce((sum, rs) => sum + (rs.status?.availableReplicas ?? 0), 0);
  }

  settled(): boolean {
    const status = this.deployment.status;
    return status?.conditions?.find((c) => c.type === 'Progressing')?.reason === 'NewReplicaSetAvailable' && this.pods() === this.deployment.spec?.replicas && this.replicaSets.every((rs) => (rs.status?.replicas ?? 0) === rs.spec?.replicas);
  }
}
