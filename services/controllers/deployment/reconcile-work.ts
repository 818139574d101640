// One sync's working state (pure): clones of the Deployment's ReplicaSets
// that the steps of a sync change in turn — as Kubernetes' steps write
// each change before the next step reads it — and at the end, the writes
// that turn the ReplicaSets as read into the ReplicaSets as changed.

import type { DeploymentStatus, ReplicaSet } from '../../../proto/gen/resources/v1/apps.js';
import { conditionOf, newCondition, REASON, setCondition } from './reconcile-status.js';
import {
  byRevision,
  canonicalJson,
  findNewReplicaSet,
  hasProgressDeadline,
  newReplicaSetFor,
  replicasAnnotationsNeedUpdate,
  replicasOf,
  revisionOf,
  REVISION_ANNOTATION,
  setNewReplicaSetAnnotations,
  setReplicasAnnotations,
  UNLIMITED,
  type DeploymentView,
} from './reconcile-replicasets.js';

export interface NewAndOld {
  /** The ReplicaSet running the Deployment's template (undefined: none yet, or a hash collision). */
  readonly newRS: ReplicaSet | undefined;
  readonly oldRSs: ReplicaSet[];
}

export function active(replicaSets: ReadonlyArray<ReplicaSet | undefined>): ReplicaSet[] {
  return replicaSets.filter((rs): rs is ReplicaSet => rs !== undefined && replicasOf(rs) > 0);
}

export function present(replicaSets: ReadonlyArray<ReplicaSet | undefined>): ReplicaSet[] {
  return replicaSets.filter((rs): rs is ReplicaSet => rs !== undefined);
}

export const sumOf = (replicaSets: readonly ReplicaSet[], count: (rs: ReplicaSet) => number): number => replicaSets.reduce((total, rs) => total + count(rs), 0);

/**
 * Kubernetes' NewRSNewReplicas: how far the new ReplicaSet may grow now.
 * Recreate: to replicas. RollingUpdate: up to replicas + maxSurge pods in
 * all; each ReplicaSet counts the larger of its spec and the pods its
 * status still reports, so pods of a ReplicaSet just scaled down count
 * until they are gone (Kubernetes counts specs only, and can overshoot).
 */
export function newReplicaSetReplicas(d: DeploymentView, all: readonly ReplicaSet[], newRS: ReplicaSet): number {
  if (d.strategy === 'Recreate') return d.replicas;
  const current = sumOf(all, (rs) => Math.max(replicasOf(rs), rs.status?.replicas ?? 0));
  const maxTotal = d.replicas + d.maxSurge;
  if (current >= maxTotal) return replicasOf(newRS);
  return replicasOf(newRS) + Math.max(Math.min(maxTotal - current, d.replicas - replicasOf(newRS)), 0);
}

export class Work {
  /** The status as the sync goes (conditions set by its steps); the final one is computed from it. */
  readonly status: DeploymentStatus;
  created: ReplicaSet | undefined;
  /** The revision annotation the Deployment should carry. */
  revision: string | undefined;
  private readonly working: ReplicaSet[];
  private readonly asRead = new Map<ReplicaSet, string>();
  private readonly deleted = new Set<ReplicaSet>();

  constructor(
    readonly d: DeploymentView,
    owned: readonly ReplicaSet[],
    /** Whether a ReplicaSet of this name exists in the namespace (owned or not). */
    private readonly nameTaken: (name: string) => boolean,
    readonly nowMs: number,
  ) {
    this.status = structuredClone(d.object.status ?? {});
    this.working = owned.map((rs) => structuredClone(rs));
    for (const rs of this.working) this.asRead.set(rs, canonicalJson(rs));
  }

  /** The owned ReplicaSets as changed so far, the one created included. */
  all(): ReplicaSet[] {
    return [...this.working, ...(this.created === undefined ? [] : [this.created])];
  }

  changed(rs: ReplicaSet): boolean {
    const read = this.asRead.get(rs);
    return read !== undefined && read !== canonicalJson(rs);
  }

  /** ReplicaSets to write back: those changed, not created nor deleted in this sync. */
  updates(): ReplicaSet[] {
    return this.working.filter((rs) => this.changed(rs) && !this.deleted.has(rs));
  }

  deletes(): ReplicaSet[] {
    return [...this.deleted];
  }

  /** Kubernetes' scaleReplicaSet: the size, and the replica annotations; whether the size changed. */
  scale(rs: ReplicaSet, replicas: number): boolean {
    const resized = replicasOf(rs) !== replicas;
    if (resized || replicasAnnotationsNeedUpdate(rs, this.d.replicas, this.d.replicas + this.d.maxSurge)) {
      rs.spec = { ...rs.spec, replicas };
      setReplicasAnnotations(rs, this.d.replicas, this.d.replicas + this.d.maxSurge);
    }
    return resized;
  }

  /**
   * Kubernetes' getAllReplicaSetsAndSyncRevision: the new ReplicaSet (its
   * revision raised above every old one, the Deployment's annotations and
   * minReadySeconds copied), created from the template when `create` and
   * there is none; the Deployment's revision follows the new ReplicaSet's.
   */
  syncRevision(create: boolean): NewAndOld {
    const d = this.d;
    const all = this.all();
    const existing = findNewReplicaSet(d, all);
    const oldRSs = all.filter((rs) => rs !== existing);
    const revision = Math.max(0, ...oldRSs.map(revisionOf)) + 1;
    if (existing !== undefined) {
      setNewReplicaSetAnnotations(d, existing, revision, true);
      if ((existing.spec?.minReadySeconds ?? 0) !== d.minReadySeconds) existing.spec = { ...existing.spec, minReadySeconds: d.minReadySeconds };
      this.revision = existing.metadata?.annotations?.[REVISION_ANNOTATION];
      // A Deployment that never reported progress starts counting from the first sight of its new ReplicaSet.
      if (hasProgressDeadline(d) && conditionOf(this.status, 'Progressing') === undefined) {
        setCondition(this.status, newCondition('Progressing', 'True', REASON.foundNewReplicaSet, `Found new replica set "${existing.metadata?.name ?? ''}"`, this.nowMs));
      }
      return { newRS: existing, oldRSs };
    }
    if (!create || d.deleting) return { newRS: undefined, oldRSs };
    const rs = newReplicaSetFor(d, this.status.collisionCount);
    const name = rs.metadata?.name ?? '';
    if (this.nameTaken(name)) {
      // Another template (or another owner) has this name: a hash collision. A new count gives a new hash.
      this.status.collisionCount = (this.status.collisionCount ?? 0) + 1;
      return { newRS: undefined, oldRSs };
    }
    rs.spec = { ...rs.spec, replicas: newReplicaSetReplicas(d, [...oldRSs, rs], rs) };
    setNewReplicaSetAnnotations(d, rs, revision, false);
    this.created = rs;
    this.revision = String(revision);
    if (hasProgressDeadline(d)) setCondition(this.status, newCondition('Progressing', 'True', REASON.newReplicaSetCreated, `Created new replica set "${name}"`, this.nowMs));
    return { newRS: rs, oldRSs };
  }

  /**
   * Kubernetes' cleanupDeployment: old ReplicaSets beyond
   * revisionHistoryLimit go, lowest revision first — only those scaled to 0
   * with no pods left and their spec observed (and not changed in this sync).
   */
  cleanup(oldRSs: readonly ReplicaSet[]): void {
    if (this.d.revisionHistoryLimit === UNLIMITED) return;
    const cleanable = oldRSs.filter((rs) => rs.metadata?.deletionTimestamp === undefined);
    const excess = cleanable.length - this.d.revisionHistoryLimit;
    if (excess <= 0) return;
    for (const rs of [...cleanable].sort(byRevision).slice(0, excess)) {
      const settled = (rs.status?.replicas ?? 0) === 0 && replicasOf(rs) === 0 && (rs.metadata?.generation ?? 0) <= (rs.status?.observedGeneration ?? 0);
      if (settled && !this.changed(rs)) this.deleted.add(rs);
    }
  }
}
