// The PersistentVolume binder's loop: informers on claims and volumes;
// handlers only enqueue keys — a claim as "namespace/name", a volume as
// "volume:name" — and workers ask the pure plans (reconcile.ts) and write
// what they say, in order, each write on the version the previous one left.
// A claim's change syncs the claim; its deletion syncs the volume it held
// (which is then Released and reclaimed). A volume's change syncs the
// volume and the claim its claimRef names, or — when it is Available to
// any claim — every claim still waiting, since Kubernetes' periodic resync
// is what brings those back there and mast's informers have none here.
// Writes are compare-and-swap on resourceVersion: two claims racing for one
// volume cannot both win; the loser is synced again once the cache shows
// the winner. Level-triggered: a lost or repeated event changes nothing.

import * as grpc from '@grpc/grpc-js';
import type { PersistentVolume, PersistentVolumeClaim } from '../../../proto/gen/resources/v1/core.js';
import type { EventRecorder } from '../../client/events.js';
import { keyOf } from '../../client/informer.js';
import type { KubeObject, ResourceClient } from '../../client/resources.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import { WorkQueue } from '../../client/workqueue.js';
import { isCode, runLoop } from '../common/loop.js';
import { formatTimestamp } from '../../client/timestamps.js';
import { ANNOTATION_BIND_COMPLETED, hasAnnotation, isOpenVolume, planClaim, planVolume, type Plan, type PlanEvent } from './reconcile.js';

export interface PersistentVolumeControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  readonly workers?: number;
  readonly log?: (line: string) => void;
  readonly events?: EventRecorder;
  /** Stamps volumes' status.lastPhaseTransitionTime (default: the clock). */
  readonly now?: () => number;
}

/** Queue keys of volumes; ':' cannot appear in a namespace, so claim keys never start so. */
const VOLUME_KEY_PREFIX = 'volume:';

export class PersistentVolumeController {
  private readonly claims: InformerView<KubeObject>;
  private readonly volumes: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();

  constructor(private readonly options: PersistentVolumeControllerOptions) {
    this.claims = informerFor(options, 'PersistentVolumeClaim');
    this.volumes = informerFor(options, 'PersistentVolume');
  }

  /** Run until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    this.claims.onAdd((claim) => this.queue.add(keyOf(claim)));
    this.claims.onUpdate((_old, claim) => this.queue.add(keyOf(claim)));
    this.claims.onDelete((claim) => this.claimDeleted(claim as PersistentVolumeClaim));
    this.volumes.onAdd((volume) => this.volumeChanged(volume as PersistentVolume));
    this.volumes.onUpdate((_old, volume) => this.volumeChanged(volume as PersistentVolume));
    this.volumes.onDelete((volume) => this.volumeDeleted(volume as PersistentVolume));
    await runLoop({ signal, queue: this.queue, own: [this.claims, this.volumes], workers: this.options.workers ?? 2, name: 'PersistentVolume', sync: (key) => this.sync(key), log: this.options.log });
  }

  private now(): string {
    return formatTimestamp(this.options.now?.() ?? Date.now());
  }

  /** The volume it held, and any volume whose claimRef still names it, are released. */
  private claimDeleted(claim: PersistentVolumeClaim): void {
    const name = claim.spec?.volumeName ?? '';
    if (name !== '') this.queue.add(`${VOLUME_KEY_PREFIX}${name}`);
    for (const volume of this.volumes.list() as PersistentVolume[]) {
      const ref = volume.spec?.claimRef;
      if (ref?.name === claim.metadata?.name && ref?.namespace === claim.metadata?.namespace) this.queue.add(`${VOLUME_KEY_PREFIX}${volume.metadata?.name ?? ''}`);
    }
  }

  private volumeChanged(volume: PersistentVolume): void {
    const name = volume.metadata?.name ?? '';
    this.queue.add(`${VOLUME_KEY_PREFIX}${name}`);
    const ref = volume.spec?.claimRef;
    // The claim it names (pre-bound, or bound) checks its side of the binding.
    if ((ref?.name ?? '') !== '') {
      this.queue.add(`${ref?.namespace ?? ''}/${ref?.name ?? ''}`);
      return;
    }
    // A volume open to any claim (once Available: before that no claim takes it): every claim still waiting may.
    if (!isOpenVolume(volume) || volume.status?.phase !== 'Available') return;
    for (const claim of this.claims.list() as PersistentVolumeClaim[]) {
      const wanted = claim.spec?.volumeName ?? '';
      if (!hasAnnotation(claim, ANNOTATION_BIND_COMPLETED) && (wanted === '' || wanted === name)) this.queue.add(keyOf(claim as KubeObject));
    }
  }

  /** A claim bound to it is Lost. */
  private volumeDeleted(volume: PersistentVolume): void {
    const ref = volume.spec?.claimRef;
    if ((ref?.name ?? '') !== '') this.queue.add(`${ref?.namespace ?? ''}/${ref?.name ?? ''}`);
    const name = volume.metadata?.name ?? '';
    for (const claim of this.claims.list() as PersistentVolumeClaim[]) {
      if (claim.spec?.volumeName === name) this.queue.add(keyOf(claim as KubeObject));
    }
  }

  private async sync(key: string): Promise<void> {
    if (key.startsWith(VOLUME_KEY_PREFIX)) return this.syncVolume(key, key.slice(VOLUME_KEY_PREFIX.length));
    const claim = this.claims.getByKey(key) as PersistentVolumeClaim | undefined;
    // Gone: the volume's sync (queued by the delete) releases what it held.
    if (claim === undefined) return;
    await this.apply(key, planClaim(claim, this.volumes.list() as PersistentVolume[], this.now()));
  }

  private async syncVolume(key: string, name: string): Promise<void> {
    const volume = this.volumes.getByKey(name) as PersistentVolume | undefined;
    if (volume === undefined) return;
    await this.apply(key, planVolume(volume, await this.claimOf(volume), this.now()));
  }

  /**
   * The claim the volume's claimRef names, from the cache, or — when the
   * cache lacks it or holds another of that name — from the API server: a
   * volume is released (and maybe deleted) on the claim's absence, which a
   * cache behind the server must not fake.
   */
  private async claimOf(volume: PersistentVolume): Promise<PersistentVolumeClaim | undefined> {
    const ref = volume.spec?.claimRef;
    if (ref === undefined || (ref.name ?? '') === '' || (ref.uid ?? '') === '') return undefined;
    const cached = this.claims.get(ref.namespace ?? '', ref.name ?? '') as PersistentVolumeClaim | undefined;
    if (cached?.metadata?.uid === ref.uid) return cached;
    try {
      return (await this.options.client.get('PersistentVolumeClaim', ref.namespace ?? '', ref.name ?? '')) as PersistentVolumeClaim;
    } catch (error) {
      if (isCode(error, grpc.status.NOT_FOUND)) return undefined;
      throw error;
    }
  }

  /** The plan's writes in order, each on the version the one before it left; then its events and follow-ups. */
  private async apply(key: string, plan: Plan): Promise<void> {
    const client = this.options.client;
    const versions = new Map<string, string>();
    for (const write of plan.writes) {
      const namespace = write.object.metadata?.namespace ?? '';
      const name = write.object.metadata?.name ?? '';
      const id = `${write.kind}/${namespace}/${name}`;
      const version = versions.get(id) ?? write.object.metadata?.resourceVersion ?? '';
      try {
        if (write.verb === 'delete') {
          await client.delete(write.kind, namespace, name, { resourceVersion: version });
          continue;
        }
        const object = { ...write.object, metadata: { ...write.object.metadata, resourceVersion: version } } as KubeObject;
        const written = write.verb === 'update' ? await client.update(write.kind, object) : await client.updateStatus(write.kind, object);
        versions.set(id, written.metadata?.resourceVersion ?? '');
      } catch (error) {
        // Changed meanwhile: the cache catches up and the key comes back. Gone: its delete event syncs what depends on it.
        if (isCode(error, grpc.status.ABORTED)) {
          this.queue.addRateLimited(key);
          return;
        }
        if (isCode(error, grpc.status.NOT_FOUND)) return;
        throw error;
      }
    }
    for (const event of plan.events) this.record(event);
    for (const claimKey of plan.enqueueClaims) this.queue.add(claimKey);
  }

  private record(event: PlanEvent): void {
    const meta = event.object.metadata;
    const involved = { apiVersion: 'v1', kind: event.involvedKind, ...(meta?.namespace ? { namespace: meta.namespace } : {}), name: meta?.name ?? '', uid: meta?.uid ?? '' };
    void this.options.events?.record(involved, event.type, event.reason, event.message);
  }
}
