// client-go's SharedInformerFactory: one informer per kind and selection,
// shared by every controller of a process, and — our use — kept running
// while a candidate waits for its Lease, so a new leader's controllers
// start from warm caches instead of listing everything first.
//
// Controllers hold an InformerView. A view of a shared informer behaves like
// an informer of their own: start() waits for nothing (the factory started
// it), handlers added through it are told of what is cached already, and
// stop() removes only those handlers, leaving the informer running for the
// next leadership.

import { Informer, type AddHandler, type DeleteHandler, type InformerOptions, type ListerWatcher, type UpdateHandler } from './informer.js';
import type { KubeObject } from './resources.js';

/** What a controller uses of an informer. */
export type InformerView<T extends KubeObject = KubeObject> = Pick<
  Informer<T>,
  'kind' | 'hasSynced' | 'lastSyncResourceVersion' | 'waitForSync' | 'onAdd' | 'onUpdate' | 'onDelete' | 'list' | 'get' | 'getByKey' | 'start' | 'stop'
>;

/** Which objects of a kind an informer holds. */
export type Selection = Pick<InformerOptions, 'namespace' | 'labelSelector' | 'fieldSelector'>;

class SharedView<T extends KubeObject> implements InformerView<T> {
  private readonly adds: AddHandler<T>[] = [];
  private readonly updates: UpdateHandler<T>[] = [];
  private readonly deletes: DeleteHandler<T>[] = [];

  constructor(private readonly informer: Informer<T>) {}

  get kind(): string {
    return this.informer.kind;
  }

  get hasSynced(): boolean {
    return this.informer.hasSynced;
  }

  get lastSyncResourceVersion(): string {
    return this.informer.lastSyncResourceVersion;
  }

  waitForSync(): Promise<void> {
    return this.informer.waitForSync();
  }

  onAdd(handler: AddHandler<T>): void {
    this.adds.push(handler);
    this.informer.onAdd(handler);
  }

  onUpdate(handler: UpdateHandler<T>): void {
    this.updates.push(handler);
    this.informer.onUpdate(handler);
  }

  onDelete(handler: DeleteHandler<T>): void {
    this.deletes.push(handler);
    this.informer.onDelete(handler);
  }

  list(): T[] {
    return this.informer.list();
  }

  get(namespace: string, name: string): T | undefined {
    return this.informer.get(namespace, name);
  }

  getByKey(key: string): T | undefined {
    return this.informer.getByKey(key);
  }

  /** The factory runs the informer. */
  start(): void {}

  /** Detach this view's handlers; the informer goes on for others. */
  stop(): void {
    for (const add of this.adds.splice(0)) this.informer.removeHandlers({ add });
    for (const update of this.updates.splice(0)) this.informer.removeHandlers({ update });
    for (const remove of this.deletes.splice(0)) this.informer.removeHandlers({ delete: remove });
  }
}

export class SharedInformers {
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private stopped = false;

  constructor(
    private readonly client: ListerWatcher,
    private readonly log?: (line: string) => void,
  ) {}

  /** A view of the shared informer for this kind and selection, started on first use. */
  view<T extends KubeObject = KubeObject>(kind: string, selection: Selection = {}): InformerView<T> {
    if (this.stopped) throw new Error('SharedInformers: stopped');
    const key = JSON.stringify([kind, selection.namespace ?? '', selection.labelSelector ?? '', selection.fieldSelector ?? '']);
    let informer = this.informers.get(key);
    if (informer === undefined) {
      informer = new Informer(this.client, kind, { ...selection, ...(this.log === undefined ? {} : { log: this.log }) });
      informer.start();
      this.informers.set(key, informer);
    }
    return new SharedView(informer as unknown as Informer<T>);
  }

  /** Start these now (a standby warming its caches for when it leads). */
  warm(kinds: ReadonlyArray<string | readonly [string, Selection]>): void {
    for (const entry of kinds) {
      if (typeof entry === 'string') this.view(entry);
      else this.view(entry[0], entry[1]);
    }
  }

  /** The informers running, as [kind, namespace, labelSelector, fieldSelector] JSON (for checks that a warm set is complete). */
  running(): string[] {
    return [...this.informers.keys()].sort();
  }

  stop(): void {
    this.stopped = true;
    for (const informer of this.informers.values()) informer.stop();
    this.informers.clear();
  }
}

/**
 * The informer a controller should use: a view of the shared one when the
 * caller passes SharedInformers, else one of its own (tests, one-offs).
 */
export function informerFor<T extends KubeObject = KubeObject>(
  options: { readonly client: ListerWatcher; readonly informers?: SharedInformers; readonly log?: (line: string) => void },
  kind: string,
  selection: Selection = {},
): InformerView<T> {
  if (options.informers !== undefined) return options.informers.view<T>(kind, selection);
  return new Informer<T>(options.client, kind, { ...selection, ...(options.log === undefined ? {} : { log: options.log }) });
}
