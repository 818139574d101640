// The garbage collector: what ownerReferences promise. An object whose
// owners are all gone is deleted (Background cascading); an owner deleted
// with the foregroundDeletion finalizer waits until its dependents are gone
// (Foreground); one deleted with the orphan finalizer first has its
// dependents' references to it removed (Orphan). As Kubernetes' collector,
// it is level-triggered: a change enqueues the objects it concerns, and a
// worker looks at each from the current state, so a missed or repeated
// event changes nothing.
//
// It runs in every master, acting only on the Raft leader (the others keep
// their indexes warm). Its writes go through the registry with resourceVersion
// preconditions, so one from a stale view fails instead of doing harm.

import { kindInfo, objectKey, type KindInfo } from '../client/kinds.js';
import { isJsonObject, type Json } from './schema.js';
import { ApiError, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, type ApiObject, type Registry } from './registry.js';
import type { CachedObject, WatchCache } from './watch-cache.js';
import type { EventRecorder } from '../client/events.js';

interface OwnerReference {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
  readonly blockOwnerDeletion: boolean;
}

export interface GarbageCollectorOptions {
  /** Whether this member should act (the Raft leader); the collector checks before each item. */
  readonly isActive: () => boolean;
  readonly log: (message: string) => void;
  /** An item that failed is looked at again after this long. */
  readonly retryDelayMs?: number;
  /** Events about what it did (on the dependents it deleted or orphaned). */
  readonly events?: EventRecorder;
}

/** A failing item is logged from this attempt on (it keeps being retried). */
const MAX_ATTEMPTS_BEFORE_LOGGING = 5;

function ownerReferencesOf(object: ApiObject): OwnerReference[] {
  const references = object.metadata.ownerReferences;
  if (!Array.isArray(references)) return [];
  return references.filter(isJsonObject).map((reference) => ({
    apiVersion: String(reference.apiVersion ?? ''),
    kind: String(reference.kind ?? ''),
    name: String(reference.name ?? ''),
    uid: String(reference.uid ?? ''),
    blockOwnerDeletion: reference.blockOwnerDeletion === true,
  }));
}

function finalizersOf(object: ApiObject): string[] {
  return Array.isArray(object.metadata.finalizers) ? object.metadata.finalizers.map(String) : [];
}

function kindOfKey(key: string, object: ApiObject): KindInfo | undefined {
  return typeof object.kind === 'string' && key.startsWith('/registry/') ? kindInfo(object.kind) : undefined;
}

function involved(info: KindInfo, object: ApiObject): { apiVersion: string; kind: string; namespace: string; name: string; uid: string } {
  return { apiVersion: info.apiVersion, kind: info.kind, namespace: String(object.metadata.namespace ?? ''), name: String(object.metadata.name), uid: String(object.metadata.uid) };
}

export class GarbageCollector {
  /** owner uid → keys of objects that name it. */
  private readonly dependents = new Map<string, Set<string>>();
  /** key → the owner uids it names (to update `dependents` when it changes). */
  private readonly ownersOf = new Map<string, string[]>();
  /** uid → key of every object that is, or was named as, an owner. */
  private readonly keyOfUid = new Map<string, string>();
  private readonly queue = new Set<string>();
  private readonly failures = new Map<string, number>();
  private working = false;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly cache: WatchCache,
    private readonly registry: Registry,
    private readonly options: GarbageCollectorOptions,
  ) {}

  start(): void {
    this.unsubscribe = this.cache.onChange((key, before, after) => (key === undefined ? this.rebuild() : this.changed(key, before, after)));
    this.rebuild();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
  }

  /** Look at everything again (this member just became the one that acts, or the cache was reset). */
  resync(): void {
    for (const [key, cached] of this.cache.all()) if (this.concerned(cached.object)) this.enqueue(key);
  }

  /** How many objects wait to be looked at. */
  get pending(): number {
    return this.queue.size;
  }

  private rebuild(): void {
    this.dependents.clear();
    this.ownersOf.clear();
    this.keyOfUid.clear();
    for (const [key, cached] of this.cache.all()) this.index(key, cached.object);
    this.resync();
  }

  private concerned(object: ApiObject): boolean {
    const finalizers = finalizersOf(object);
    return ownerReferencesOf(object).length > 0 || finalizers.includes(ORPHAN_FINALIZER) || finalizers.includes(FOREGROUND_FINALIZER);
  }

  private index(key: string, object: ApiObject | undefined): void {
    if (object !== undefined && typeof object.metadata.uid === 'string') this.keyOfUid.set(object.metadata.uid, key);
    for (const uid of this.ownersOf.get(key) ?? []) {
      const set = this.dependents.get(uid);
      set?.delete(key);
      if (set?.size === 0) this.dependents.delete(uid);
    }
    this.ownersOf.delete(key);
    if (object === undefined) return;
    const uids = ownerReferencesOf(object).map((reference) => reference.uid);
    if (uids.length === 0) return;
    this.ownersOf.set(key, uids);
    for (const uid of uids) {
      let set = this.dependents.get(uid);
      if (set === undefined) {
        set = new Set();
        this.dependents.set(uid, set);
      }
      set.add(key);
    }
  }

  private changed(key: string, before: CachedObject | undefined, after: CachedObject | undefined): void {
    const previousOwners = this.ownersOf.get(key) ?? [];
    this.index(key, after?.object);
    if (after !== undefined && this.concerned(after.object)) this.enqueue(key);
    const uid = (after ?? before)?.object.metadata.uid;
    // An owner that went away or started its deletion: its dependents have work.
    if (typeof uid === 'string' && (after === undefined || after.object.metadata.deletionTimestamp !== undefined)) {
      for (const dependent of this.dependents.get(uid) ?? []) this.enqueue(dependent);
    }
    if (after === undefined && typeof uid === 'string' && !this.dependents.has(uid)) this.keyOfUid.delete(uid);
    // A dependent that went away or dropped a reference: owners waiting in the foreground may be done.
    const nowOwners = new Set(this.ownersOf.get(key) ?? []);
    for (const owner of previousOwners) if (!nowOwners.has(owner)) this.enqueueUid(owner);
  }

  private enqueueUid(uid: string): void {
    const key = this.keyOfUid.get(uid);
    if (key !== undefined) this.enqueue(key);
  }

  private enqueue(key: string): void {
    if (this.stopped) return;
    this.queue.add(key);
    if (!this.working) void this.work();
  }

  private async work(): Promise<void> {
    this.working = true;
    try {
      while (!this.stopped && this.queue.size > 0) {
        if (!this.options.isActive()) {
          // Not ours to act on now; resync() refills the queue when it is.
          this.queue.clear();
          return;
        }
        const key = this.queue.values().next().value as string;
        this.queue.delete(key);
        try {
          await this.process(key);
          this.failures.delete(key);
        } catch (error) {
          this.retryLater(key, error);
        }
      }
    } finally {
      this.working = false;
    }
  }

  private retryLater(key: string, error: unknown): void {
    const attempts = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempts);
    if (attempts >= MAX_ATTEMPTS_BEFORE_LOGGING) this.options.log(`garbage collector: ${key}: ${error instanceof Error ? error.message : String(error)} (attempt ${attempts})`);
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const failed of this.failures.keys()) this.enqueue(failed);
    }, this.options.retryDelayMs ?? 1000);
    this.retryTimer.unref();
  }

  /** One object: collect it if its owners are gone; finish its own orphan or foreground deletion. */
  private async process(key: string): Promise<void> {
    const cached = this.lookup(key);
    if (cached === undefined) return;
    const { object, info } = cached;
    if (object.metadata.deletionTimestamp !== undefined) {
      const finalizers = finalizersOf(object);
      if (finalizers.includes(ORPHAN_FINALIZER)) await this.orphanDependents(object, info);
      else if (finalizers.includes(FOREGROUND_FINALIZER)) await this.deleteDependentsFirst(object, info);
    }
    const references = ownerReferencesOf(object);
    if (references.length === 0) return;
    await this.collectIfOrphaned(object, info, references);
  }

  private lookup(key: string): { object: ApiObject; info: KindInfo } | undefined {
    const cached = this.cache.getKey(key);
    const info = cached === undefined ? undefined : kindOfKey(key, cached.object);
    return info === undefined ? undefined : { object: cached!.object, info };
  }

  /** The owner a reference names, if it exists with that uid. */
  private owner(dependent: ApiObject, reference: OwnerReference): ApiObject | undefined {
    const info = kindInfo(reference.kind);
    if (info === undefined) return undefined;
    const namespace = info.namespaced ? String(dependent.metadata.namespace ?? '') : '';
    const found = this.cache.get(info, objectKey(info, namespace, reference.name));
    return found?.object.metadata.uid === reference.uid ? found.object : undefined;
  }

  private async collectIfOrphaned(object: ApiObject, info: KindInfo, references: OwnerReference[]): Promise<void> {
    const present = references.filter((reference) => this.owner(object, reference) !== undefined);
    const name = String(object.metadata.name);
    const namespace = String(object.metadata.namespace ?? '');
    if (present.length === references.length) {
      // Owners deleting in the foreground take their dependents with them.
      const foreground = present.some((reference) => {
        const owner = this.owner(object, reference)!;
        return owner.metadata.deletionTimestamp !== undefined && finalizersOf(owner).includes(FOREGROUND_FINALIZER);
      });
      if (foreground && object.metadata.deletionTimestamp === undefined) {
        const hasDependents = (this.dependents.get(String(object.metadata.uid)) ?? new Set()).size > 0;
        await this.deleteQuietly(info, namespace, name, object, hasDependents ? 'Foreground' : 'Background');
      }
      return;
    }
    if (present.length === 0) {
      if (object.metadata.deletionTimestamp !== undefined) return;
      const owners = references.map((reference) => `${reference.kind} ${reference.name}`).join(', ');
      this.options.log(`garbage collector: deleting ${info.kind} ${namespace === '' ? '' : `${namespace}/`}${name}: its owners are gone`);
      void this.options.events?.record(involved(info, object), 'Normal', 'GarbageCollected', `Deleting: its owner${references.length > 1 ? 's' : ''} ${owners} ${references.length > 1 ? 'are' : 'is'} gone`);
      await this.deleteQuietly(info, namespace, name, object, 'Background');
      return;
    }
    // Some owners remain: drop only the references to the ones that are gone.
    const keep = new Set(present.map((reference) => reference.uid));
    await this.rewriteReferences(info, object, (reference) => keep.has(String(reference.uid)));
  }

  private async orphanDependents(owner: ApiObject, info: KindInfo): Promise<void> {
    const uid = String(owner.metadata.uid);
    for (const key of [...(this.dependents.get(uid) ?? [])]) {
      const dependent = this.lookup(key);
      if (dependent === undefined) continue;
      if (await this.rewriteReferences(dependent.info, dependent.object, (reference) => reference.uid !== uid)) {
        void this.options.events?.record(involved(dependent.info, dependent.object), 'Normal', 'Orphaned', `Its owner ${info.kind} ${String(owner.metadata.name)} was deleted with propagationPolicy Orphan; the reference to it was removed`);
      }
    }
    await this.removeFinalizer(info, owner, ORPHAN_FINALIZER);
  }

  private async deleteDependentsFirst(owner: ApiObject, info: KindInfo): Promise<void> {
    const uid = String(owner.metadata.uid);
    let blocking = 0;
    for (const key of [...(this.dependents.get(uid) ?? [])]) {
      const dependent = this.lookup(key);
      if (dependent === undefined) continue;
      const reference = ownerReferencesOf(dependent.object).find((candidate) => candidate.uid === uid);
      if (reference?.blockOwnerDeletion === true) blocking++;
      if (dependent.object.metadata.deletionTimestamp === undefined) {
        const hasDependents = (this.dependents.get(String(dependent.object.metadata.uid)) ?? new Set()).size > 0;
        await this.deleteQuietly(dependent.info, String(dependent.object.metadata.namespace ?? ''), String(dependent.object.metadata.name), dependent.object, hasDependents ? 'Foreground' : 'Background');
      }
    }
    // Kubernetes waits only for dependents that block their owner's deletion.
    if (blocking === 0) await this.removeFinalizer(info, owner, FOREGROUND_FINALIZER);
  }

  private async deleteQuietly(info: KindInfo, namespace: string, name: string, object: ApiObject, propagationPolicy: string): Promise<void> {
    try {
      await this.registry.delete(info.kind, namespace, name, { resourceVersion: String(object.metadata.resourceVersion), propagationPolicy });
    } catch (error) {
      // Gone already, or changed since: the change brings it back to the queue.
      if (error instanceof ApiError && (error.reason === 'NotFound' || error.reason === 'Conflict')) return;
      throw error;
    }
  }

  /** Drop the references `keep` refuses; whether there were any. */
  private async rewriteReferences(info: KindInfo, object: ApiObject, keep: (reference: Record<string, Json>) => boolean): Promise<boolean> {
    const references = (Array.isArray(object.metadata.ownerReferences) ? object.metadata.ownerReferences : []).filter(isJsonObject);
    const kept = references.filter(keep);
    if (kept.length === references.length) return false;
    const metadata: Record<string, Json> = { ...object.metadata, ownerReferences: kept };
    if (kept.length === 0) delete metadata.ownerReferences;
    await this.updateQuietly(info, { ...object, metadata });
    return true;
  }

  private async removeFinalizer(info: KindInfo, object: ApiObject, finalizer: string): Promise<void> {
    const metadata: Record<string, Json> = { ...object.metadata, finalizers: finalizersOf(object).filter((name) => name !== finalizer) };
    await this.updateQuietly(info, { ...object, metadata });
  }

  private async updateQuietly(info: KindInfo, object: ApiObject): Promise<void> {
    try {
      await this.registry.update(info.kind, object);
    } catch (error) {
      if (error instanceof ApiError && (error.reason === 'NotFound' || error.reason === 'Conflict')) return;
      throw error;
    }
  }
}
