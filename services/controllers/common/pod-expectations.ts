// client-go's ControllerExpectations for pods, as the ReplicaSet, Job and
// DaemonSet controllers use them: after creating or deleting pods, an owner
// is not synced again until the pod informer shows those changes (or
// EXPECTATIONS_TIMEOUT_MS has passed), so a sync that runs before the cache
// catches up does not create the same pods twice. A pod marked for deletion
// (its grace period running) counts as deleted, as in Kubernetes.

import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import type { KubeObject } from '../../client/resources.js';
import type { InformerView } from '../../client/shared-informers.js';
import { controllerOf } from './reconcile-pod.js';

/** How long a sync waits for the cache to show its own creates and deletes before trusting it anyway. */
export const EXPECTATIONS_TIMEOUT_MS = 60_000;

/** Creates and deletes not yet seen in the cache; a write that failed will never be seen, so its caller takes it back. */
export interface Expected {
  adds: number;
  deletes: number;
  readonly setAtMs: number;
}

export class PodExpectations {
  private readonly byKey = new Map<string, Expected>();

  /** `ownerKind`: the controller references that count ("ReplicaSet", "Job"...); `now`: the controller's clock. */
  constructor(
    private readonly ownerKind: string,
    private readonly now: () => number,
  ) {}

  /**
   * Count what the pod informer shows against the expectations, then pass
   * each pod concerned to `changed` (on an update, the old and the new).
   */
  watch(pods: InformerView<KubeObject>, changed: (pod: Pod) => void): void {
    pods.onAdd((pod) => {
      this.observe(pod as Pod, 'adds');
      changed(pod as Pod);
    });
    pods.onUpdate((old, pod) => {
      if ((old as Pod).metadata?.deletionTimestamp === undefined && (pod as Pod).metadata?.deletionTimestamp !== undefined) this.observe(pod as Pod, 'deletes');
      changed(old as Pod);
      changed(pod as Pod);
    });
    pods.onDelete((pod) => {
      this.observe(pod as Pod, 'deletes');
      changed(pod as Pod);
    });
  }

  /** A pod its owner made or removed is now in (or out of) the cache. */
  private observe(pod: Pod, what: 'adds' | 'deletes'): void {
    const controller = controllerOf(pod);
    if (controller?.kind !== this.ownerKind) return;
    const expected = this.byKey.get(`${pod.metadata?.namespace ?? ''}/${controller.name ?? ''}`);
    if (expected !== undefined) expected[what]--;
  }

  /** Whether the owner's last creates and deletes are all seen (or expected too long): it may sync. */
  satisfied(key: string): boolean {
    const expected = this.byKey.get(key);
    if (expected === undefined) return true;
    if ((expected.adds <= 0 && expected.deletes <= 0) || this.now() - expected.setAtMs > EXPECTATIONS_TIMEOUT_MS) {
      this.byKey.delete(key);
      return true;
    }
    return false;
  }

  /** The owner is about to create `adds` pods and delete `deletes`. */
  expect(key: string, adds: number, deletes: number): Expected {
    const expected: Expected = { adds, deletes, setAtMs: this.now() };
    this.byKey.set(key, expected);
    return expected;
  }

  /** The owner is gone. */
  forget(key: string): void {
    this.byKey.delete(key);
  }
}
