// The PersistentVolume binder's pure decisions: which volume a claim binds
// to (class, access modes, size, selector, volume mode, pre-binding both
// ways, smallest fit), the four binding writes in Kubernetes' order and
// their completion after a crash between them, and what becomes of a
// volume whose claim is gone (Released; Retain, Delete, Recycle) or of a
// claim whose volume is gone (Lost).

import { expect } from 'chai';
import type { PersistentVolume, PersistentVolumeClaim } from '../../proto/gen/resources/v1/core.js';
import type { LabelSelector } from '../../proto/gen/resources/v1/meta.js';
import {
  ANNOTATION_BIND_COMPLETED,
  ANNOTATION_BOUND_BY_CONTROLLER,
  MESSAGE_NO_VOLUMES,
  MESSAGE_RECYCLE_RETAINED,
  planClaim,
  planVolume,
  type Plan,
  type Write,
} from '../../services/controllers/persistentvolume/reconcile.js';
import { findBestMatch, volumeMismatch } from '../../services/controllers/persistentvolume/reconcile-match.js';

const NOW = '2026-11-25T12:00:00Z';

interface VolumeOptions {
  size?: string;
  modes?: string[];
  className?: string;
  labels?: Record<string, string>;
  mode?: string;
  phase?: string;
  claimRef?: { name: string; namespace?: string; uid?: string };
  policy?: string;
  annotations?: Record<string, string>;
  deleting?: boolean;
}

function volume(name: string, options: VolumeOptions = {}): PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, uid: `uid-${name}`, resourceVersion: '10', labels: options.labels, annotations: options.annotations, ...(options.deleting ? { deletionTimestamp: NOW } : {}) },
    spec: {
      capacity: { storage: options.size ?? '10Gi' },
      accessModes: options.modes ?? ['ReadWriteOnce'],
      storageClassName: options.className,
      volumeMode: options.mode,
      local: { path: `/mnt/disks/${name}` },
      persistentVolumeReclaimPolicy: options.policy,
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['n1'] }] }] } },
      claimRef: options.claimRef === undefined ? undefined : { kind: 'PersistentVolumeClaim', namespace: options.claimRef.namespace ?? 'default', name: options.claimRef.name, uid: options.claimRef.uid },
    },
    status: { phase: options.phase ?? 'Available' },
  };
}

interface ClaimOptions {
  size?: string;
  modes?: string[];
  className?: string;
  selector?: LabelSelector;
  mode?: string;
  volumeName?: string;
  annotations?: Record<string, string>;
  phase?: string;
}

function claim(name: string, options: ClaimOptions = {}): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default', uid: `uid-${name}`, resourceVersion: '20', annotations: options.annotations },
    spec: {
      accessModes: options.modes ?? ['ReadWriteOnce'],
      resources: { requests: { storage: options.size ?? '1Gi' } },
      storageClassName: options.className,
      selector: options.selector,
      volumeMode: options.mode,
      volumeName: options.volumeName,
    },
    status: options.phase === undefined ? undefined : { phase: options.phase },
  };
}

/** "verb Kind name" per write. */
const writes = (plan: Plan): string[] => plan.writes.map((write) => `${write.verb} ${write.kind} ${write.object.metadata?.name ?? ''}`);
const events = (plan: Plan): string[] => plan.events.map((event) => `${event.type} ${event.reason}: ${event.message}`);

/** A world the plans' writes are applied to, as the API server would (update keeps status, updateStatus keeps the rest). */
class World {
  readonly volumes = new Map<string, PersistentVolume>();
  readonly claims = new Map<string, PersistentVolumeClaim>();

  constructor(volumes: PersistentVolume[], claims: PersistentVolumeClaim[]) {
    for (const one of volumes) this.volumes.set(one.metadata!.name!, one);
    for (const one of claims) this.claims.set(one.metadata!.name!, one);
  }

  apply(write: Write): void {
    const name = write.object.metadata!.name!;
    if (write.kind === 'PersistentVolume') {
      const current = this.volumes.get(name)!;
      if (write.verb === 'delete') this.volumes.delete(name);
      else this.volumes.set(name, write.verb === 'update' ? { ...write.object, status: current.status } : { ...current, status: write.object.status });
    } else {
      const current = this.claims.get(name)!;
      this.claims.set(name, write.verb === 'update' ? { ...write.object, status: current.status } : { ...current, status: write.object.status });
    }
  }

  claimPlan(name: string): Plan {
    return planClaim(this.claims.get(name)!, [...this.volumes.values()], NOW);
  }

  volumePlan(name: string): Plan {
    const subject = this.volumes.get(name)!;
    const ref = subject.spec?.claimRef;
    const owner = ref === undefined ? undefined : this.claims.get(ref.name ?? '');
    return planVolume(subject, owner, NOW);
  }
}

describe('controllers: persistentvolume binder (pure)', function () {
  describe('matching', function () {
    const cases: Array<{ what: string; volume: VolumeOptions; claim: ClaimOptions; mismatch?: string; candidate?: boolean }> = [
      { what: 'empty class matches empty class', volume: {}, claim: {} },
      { what: 'same class', volume: { className: 'local' }, claim: { className: 'local' } },
      { what: 'a classed volume for a classless claim', volume: { className: 'local' }, claim: {}, mismatch: 'storageClassName does not match' },
      { what: 'a classless volume for a classed claim', volume: {}, claim: { className: 'local' }, mismatch: 'storageClassName does not match' },
      { what: 'access modes: a superset', volume: { modes: ['ReadWriteOnce', 'ReadOnlyMany'] }, claim: { modes: ['ReadOnlyMany'] } },
      { what: 'access modes: one missing', volume: { modes: ['ReadWriteOnce'] }, claim: { modes: ['ReadWriteOnce', 'ReadWriteMany'] }, mismatch: 'incompatible accessMode' },
      { what: 'capacity equal to the request', volume: { size: '5Gi' }, claim: { size: '5Gi' } },
      { what: 'capacity below the request', volume: { size: '1G' }, claim: { size: '1Gi' }, mismatch: 'requested PV is too small' },
      { what: 'volumeMode unset on both is Filesystem', volume: { mode: 'Filesystem' }, claim: {} },
      { what: 'volumeMode Block for a Filesystem claim', volume: { mode: 'Block' }, claim: {}, mismatch: 'incompatible volumeMode' },
      { what: 'a volume being deleted', volume: { deleting: true }, claim: {}, mismatch: 'the volume is marked for deletion "pv"' },
      { what: 'selector matchLabels picks the volume', volume: { labels: { disk: 'ssd' } }, claim: { selector: { matchLabels: { disk: 'ssd' } } } },
      { what: 'selector matchLabels misses the volume', volume: { labels: { disk: 'hdd' } }, claim: { selector: { matchLabels: { disk: 'ssd' } } }, candidate: false },
      { what: 'selector matchExpressions In', volume: { labels: { disk: 'nvme' } }, claim: { selector: { matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd', 'nvme'] }] } } },
      { what: 'selector matchExpressions DoesNotExist', volume: { labels: { disk: 'nvme' } }, claim: { selector: { matchExpressions: [{ key: 'disk', operator: 'DoesNotExist' }] } }, candidate: false },
      { what: 'a volume not yet Available', volume: { phase: 'Pending' }, claim: {}, candidate: false },
      { what: 'a Released volume', volume: { phase: 'Released', claimRef: { name: 'old', uid: 'uid-old' } }, claim: {}, candidate: false },
      { what: 'a volume bound to another claim', volume: { phase: 'Bound', claimRef: { name: 'other', uid: 'uid-other' } }, claim: {}, candidate: false },
      { what: 'a volume pre-bound to another claim', volume: { claimRef: { name: 'other' } }, claim: {}, candidate: false },
      { what: 'a volume pre-bound to this claim, whatever its phase and labels', volume: { phase: 'Pending', labels: { disk: 'hdd' }, claimRef: { name: 'data' } }, claim: { selector: { matchLabels: { disk: 'ssd' } } } },
      { what: 'a volume pre-bound to this claim in another namespace', volume: { claimRef: { name: 'data', namespace: 'other' } }, claim: {}, candidate: false },
    ];
    for (const { what, volume: volumeOptions, claim: claimOptions, mismatch, candidate } of cases) {
      it(what, function () {
        const subject = volume('pv', volumeOptions);
        const wanting = claim('data', claimOptions);
        expect(volumeMismatch(subject, wanting)).to.equal(mismatch);
        const expected = mismatch === undefined && candidate !== false;
        expect(findBestMatch(wanting, [subject])?.metadata?.name).to.equal(expected ? 'pv' : undefined);
      });
    }

    it('takes the smallest volume that fits, ties by name, and a pre-bound one before any', function () {
      const volumes = [volume('huge', { size: '100Gi' }), volume('small-b', { size: '2Gi' }), volume('tiny', { size: '500Mi' }), volume('small-a', { size: '2Gi' }), volume('mid', { size: '5Gi' })];
      expect(findBestMatch(claim('data'), volumes)?.metadata?.name).to.equal('small-a');
      expect(findBestMatch(claim('data', { size: '3Gi' }), volumes)?.metadata?.name).to.equal('mid');
      expect(findBestMatch(claim('data', { size: '1Ti' }), volumes)).to.equal(undefined);
      const reserved = volume('reserved', { size: '50Gi', claimRef: { name: 'data' } });
      expect(findBestMatch(claim('data'), [...volumes, reserved])?.metadata?.name).to.equal('reserved');
      expect(findBestMatch(claim('other'), [...volumes, reserved])?.metadata?.name).to.equal('small-a');
    });
  });

  describe('binding', function () {
    it('writes the claimRef, the volume phase, the claim volumeName and the claim status, in that order', function () {
      const plan = planClaim(claim('data'), [volume('pv-1', { modes: ['ReadWriteOnce', 'ReadOnlyMany'] })], NOW);
      expect(writes(plan)).to.deep.equal(['update PersistentVolume pv-1', 'updateStatus PersistentVolume pv-1', 'update PersistentVolumeClaim data', 'updateStatus PersistentVolumeClaim data']);
      const [volumeSpec, volumeStatus, claimSpec, claimStatus] = plan.writes.map((write) => write.object) as [PersistentVolume, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaim];
      expect(volumeSpec.spec?.claimRef).to.deep.equal({ kind: 'PersistentVolumeClaim', apiVersion: 'v1', namespace: 'default', name: 'data', uid: 'uid-data', resourceVersion: '20' });
      expect(volumeSpec.metadata?.annotations).to.deep.equal({ [ANNOTATION_BOUND_BY_CONTROLLER]: 'yes' });
      expect(volumeStatus.status).to.deep.include({ phase: 'Bound', lastPhaseTransitionTime: NOW });
      expect(claimSpec.spec?.volumeName).to.equal('pv-1');
      expect(claimSpec.metadata?.annotations).to.deep.equal({ [ANNOTATION_BIND_COMPLETED]: 'yes', [ANNOTATION_BOUND_BY_CONTROLLER]: 'yes' });
      expect(claimStatus.status).to.deep.equal({ phase: 'Bound', accessModes: ['ReadWriteOnce', 'ReadOnlyMany'], capacity: { storage: '10Gi' } });
      expect(plan.events).to.deep.equal([]);
    });

    it('finishes a binding interrupted after any of its writes, and then writes nothing', function () {
      const full = planClaim(claim('data'), [volume('pv-1')], NOW);
      for (let done = 0; done <= full.writes.length; done++) {
        const world = new World([volume('pv-1')], [claim('data')]);
        for (const write of full.writes.slice(0, done)) world.apply(write);
        const rest = world.claimPlan('data');
        expect(writes(rest), `after ${done} write(s)`).to.deep.equal(writes(full).slice(done));
        for (const write of rest.writes) world.apply(write);
        expect(world.claimPlan('data').writes, `claim settled after ${done}`).to.deep.equal([]);
        expect(world.volumePlan('pv-1').writes, `volume settled after ${done}`).to.deep.equal([]);
        expect(world.claims.get('data')?.status?.phase).to.equal('Bound');
        expect(world.volumes.get('pv-1')?.status?.phase).to.equal('Bound');
      }
    });

    it("the volume's sync hands a half-bound claim to the claim's sync", function () {
      const world = new World([volume('pv-1')], [claim('data')]);
      world.apply(planClaim(claim('data'), [volume('pv-1')], NOW).writes[0]!);
      const plan = world.volumePlan('pv-1');
      expect(plan.writes).to.deep.equal([]);
      expect(plan.enqueueClaims).to.deep.equal(['default/data']);
    });

    it("a volume whose claim named it but is not bound yet is Bound, and hands the claim to the claim's sync", function () {
      const plan = planVolume(volume('pv', { claimRef: { name: 'data', uid: 'uid-data' } }), claim('data', { volumeName: 'pv', phase: 'Pending' }), NOW);
      expect(writes(plan)).to.deep.equal(['updateStatus PersistentVolume pv']);
      expect(plan.enqueueClaims).to.deep.equal(['default/data']);
    });

    it('a claim no volume fits stays Pending and says why', function () {
      const plan = planClaim(claim('data', { size: '20Gi' }), [volume('pv-1')], NOW);
      expect(writes(plan)).to.deep.equal(['updateStatus PersistentVolumeClaim data']);
      expect(plan.writes[0]!.object.status).to.deep.equal({ phase: 'Pending' });
      expect(events(plan)).to.deep.equal([`Warning FailedBinding: ${MESSAGE_NO_VOLUMES}`]);
      // Already Pending: only the event again.
      const again = planClaim(claim('data', { size: '20Gi', phase: 'Pending' }), [volume('pv-1')], NOW);
      expect(writes(again)).to.deep.equal([]);
      expect(events(again)).to.deep.equal([`Warning FailedBinding: ${MESSAGE_NO_VOLUMES}`]);
      expect(events(planClaim(claim('data', { className: 'fast', phase: 'Pending' }), [], NOW))).to.deep.equal(['Warning FailedBinding: no persistent volumes of storage class "fast" available for this claim (mast provisions none dynamically)']);
    });

    it("a volume pre-bound by its user keeps the user's mark off and binds its claim", function () {
      const world = new World([volume('small', { size: '1Gi' }), volume('reserved', { claimRef: { name: 'data' } })], [claim('data')]);
      const plan = world.claimPlan('data');
      expect(writes(plan)[0]).to.equal('update PersistentVolume reserved');
      expect(plan.writes[0]!.object.metadata?.annotations).to.equal(undefined);
      for (const write of plan.writes) world.apply(write);
      expect(world.claims.get('data')?.spec?.volumeName).to.equal('reserved');
      expect(world.volumes.get('reserved')?.spec?.claimRef?.uid).to.equal('uid-data');
      expect(world.volumePlan('reserved').writes).to.deep.equal([]);
    });

    it('a pre-bound volume waits Available and hands its claim to the claim sync', function () {
      const plan = planVolume(volume('reserved', { phase: 'Pending', claimRef: { name: 'data' } }), undefined, NOW);
      expect(writes(plan)).to.deep.equal(['updateStatus PersistentVolume reserved']);
      expect(plan.writes[0]!.object.status?.phase).to.equal('Available');
      expect(plan.enqueueClaims).to.deep.equal(['default/data']);
    });

    describe('a claim that names its volume (spec.volumeName)', function () {
      it('binds to it when it fits, even when a smaller one would', function () {
        const world = new World([volume('small', { size: '1Gi' }), volume('big', { size: '50Gi' })], [claim('data', { volumeName: 'big' })]);
        for (const write of world.claimPlan('data').writes) world.apply(write);
        expect(world.volumes.get('big')?.spec?.claimRef?.name).to.equal('data');
        const bound = world.claims.get('data')!;
        expect(bound.status?.phase).to.equal('Bound');
        // The user named the volume: the claim does not carry the controller's mark.
        expect(bound.metadata?.annotations).to.deep.equal({ [ANNOTATION_BIND_COMPLETED]: 'yes' });
      });

      it('stays Pending with a reason when the volume does not fit, is missing, or is taken', function () {
        const tooSmall = planClaim(claim('data', { volumeName: 'pv', size: '20Gi' }), [volume('pv')], NOW);
        expect(writes(tooSmall)).to.deep.equal(['updateStatus PersistentVolumeClaim data']);
        expect(events(tooSmall)).to.deep.equal(['Warning VolumeMismatch: Cannot bind to requested volume "pv": requested PV is too small']);
        expect(events(planClaim(claim('data', { volumeName: 'pv', className: 'fast' }), [volume('pv')], NOW))).to.deep.equal(['Warning VolumeMismatch: Cannot bind to requested volume "pv": storageClassName does not match']);
        expect(events(planClaim(claim('data', { volumeName: 'nope' }), [volume('pv')], NOW))).to.deep.equal(['Warning FailedBinding: volume "nope" requested by the claim not found']);
        const taken = planClaim(claim('data', { volumeName: 'pv', phase: 'Pending' }), [volume('pv', { phase: 'Bound', claimRef: { name: 'other', uid: 'uid-other' } })], NOW);
        expect(writes(taken)).to.deep.equal([]);
        expect(events(taken)).to.deep.equal(['Warning FailedBinding: volume "pv" already bound to a different claim.']);
      });
    });
  });

  describe('volumes', function () {
    it('a volume without a claimRef becomes Available (once)', function () {
      const plan = planVolume(volume('pv', { phase: '' }), undefined, NOW);
      expect(writes(plan)).to.deep.equal(['updateStatus PersistentVolume pv']);
      expect(plan.writes[0]!.object.status).to.deep.equal({ phase: 'Available', lastPhaseTransitionTime: NOW });
      expect(planVolume(volume('pv'), undefined, NOW).writes).to.deep.equal([]);
    });

    const boundTo = (policy?: string, phase = 'Bound'): PersistentVolume => volume('pv', { policy, phase, claimRef: { name: 'data', uid: 'uid-data' }, annotations: { [ANNOTATION_BOUND_BY_CONTROLLER]: 'yes' } });

    const released: Array<{ policy: string | undefined; writes: string[]; phase?: string; message?: string; events?: string[] }> = [
      { policy: undefined, writes: ['updateStatus PersistentVolume pv'], phase: 'Released' },
      { policy: 'Retain', writes: ['updateStatus PersistentVolume pv'], phase: 'Released' },
      { policy: 'Delete', writes: ['updateStatus PersistentVolume pv', 'delete PersistentVolume pv'], phase: 'Released' },
      { policy: 'Recycle', writes: ['updateStatus PersistentVolume pv'], phase: 'Released', message: MESSAGE_RECYCLE_RETAINED, events: [`Warning VolumeFailedRecycle: ${MESSAGE_RECYCLE_RETAINED}`] },
      { policy: 'Shred', writes: ['updateStatus PersistentVolume pv'], phase: 'Failed', message: 'Volume has unrecognized PersistentVolumeReclaimPolicy', events: ['Warning VolumeUnknownReclaimPolicy: Volume has unrecognized PersistentVolumeReclaimPolicy'] },
    ];
    for (const expected of released) {
      it(`a deleted claim releases its volume (policy ${expected.policy ?? 'unset'})`, function () {
        const plan = planVolume(boundTo(expected.policy), undefined, NOW);
        expect(writes(plan)).to.deep.equal(expected.writes);
        const status = plan.writes[0]!.object.status as { phase?: string; message?: string };
        expect([status.phase, status.message]).to.deep.equal([expected.phase, expected.message]);
        expect(events(plan)).to.deep.equal(expected.events ?? []);
        // Once released, the next pass repeats only what is left: the deletion.
        const settled = planVolume({ ...boundTo(expected.policy), status: plan.writes[0]!.object.status }, undefined, NOW);
        expect(writes(settled)).to.deep.equal(expected.policy === 'Delete' ? ['delete PersistentVolume pv'] : []);
        expect(settled.events).to.deep.equal([]);
      });
    }

    it('a claim deleted and made again under its name does not hold the old volume', function () {
      const remade = claim('data');
      const plan = planVolume(boundTo('Retain'), { ...remade, metadata: { ...remade.metadata, uid: 'uid-new' } }, NOW);
      expect(plan.writes[0]!.object.status?.phase).to.equal('Released');
    });

    it('a volume whose claim went to another volume is let go: the controller link dropped, a user pre-binding kept', function () {
      const elsewhere = claim('data', { volumeName: 'other', annotations: { [ANNOTATION_BIND_COMPLETED]: 'yes' } });
      const byController = planVolume(boundTo(), elsewhere, NOW);
      expect(writes(byController)).to.deep.equal(['update PersistentVolume pv', 'updateStatus PersistentVolume pv']);
      expect((byController.writes[0]!.object as PersistentVolume).spec?.claimRef).to.equal(undefined);
      expect(byController.writes[0]!.object.metadata?.annotations).to.equal(undefined);
      expect(byController.writes[1]!.object.status?.phase).to.equal('Available');
      const byUser = planVolume(volume('pv', { phase: 'Bound', claimRef: { name: 'data', uid: 'uid-data' } }), elsewhere, NOW);
      expect((byUser.writes[0]!.object as PersistentVolume).spec?.claimRef).to.deep.include({ name: 'data', uid: '' });
    });
  });

  describe('lost claims', function () {
    const bound = claim('data', { volumeName: 'pv', phase: 'Bound', annotations: { [ANNOTATION_BIND_COMPLETED]: 'yes' } });

    it('a bound claim whose volume vanished is Lost, said once', function () {
      const plan = planClaim(bound, [], NOW);
      expect(writes(plan)).to.deep.equal(['updateStatus PersistentVolumeClaim data']);
      expect(plan.writes[0]!.object.status).to.deep.equal({ phase: 'Lost' });
      expect(events(plan)).to.deep.equal(['Warning ClaimLost: Bound claim has lost its PersistentVolume. Data on the volume is lost!']);
      const again = planClaim({ ...bound, status: { phase: 'Lost' } }, [], NOW);
      expect(again.writes).to.deep.equal([]);
      expect(again.events).to.deep.equal([]);
    });

    it('a bound claim whose volume holds another claim is Lost (misbound)', function () {
      const plan = planClaim(bound, [volume('pv', { phase: 'Bound', claimRef: { name: 'other', uid: 'uid-other' } })], NOW);
      expect(events(plan)).to.deep.equal(['Warning ClaimMisbound: Two claims are bound to the same volume, this one is bound incorrectly']);
    });

    it('a Lost claim whose volume comes back is bound again', function () {
      const plan = planClaim({ ...bound, status: { phase: 'Lost' } }, [volume('pv', { phase: 'Available' })], NOW);
      expect(writes(plan)).to.deep.equal(['update PersistentVolume pv', 'updateStatus PersistentVolume pv', 'updateStatus PersistentVolumeClaim data']);
    });
  });
});
