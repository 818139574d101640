// The pod lifecycle event generator (the kubelet's PLEG): one relist of
// the runtime every second — all sandboxes and all containers, two CRI
// calls whatever the number of pods — compared with the previous one; a pod
// whose sandboxes or containers changed (created, started, exited,
// removed) gets a sync at once. Pod workers then need only a slow periodic
// resync of their own, instead of each polling the runtime every second
// (which costs the runtime O(pods²) work per second: its filtered lists scan
// everything).

import type { CriRuntime } from './cri.js';
import { LABEL_POD_UID } from './pod-actions.js';

export interface LifecycleEventsOptions {
  readonly runtime: Pick<CriRuntime, 'listPodSandbox' | 'listContainers'>;
  /**
   * Called with the uid of each pod whose runtime state changed since the
   * last relist, and its fingerprint now ('' once nothing of it is left).
   */
  readonly onChange: (podUid: string, fingerprint: string) => void;
  readonly intervalMs?: number;
  readonly log?: (line: string) => void;
}

export const DEFAULT_RELIST_INTERVAL_MS = 1000;

/** Each pod's runtime state as a comparable string, by pod uid. */
export function fingerprints(
  sandboxes: ReadonlyArray<{ id: string; state: number; labels: Readonly<Record<string, string>> }>,
  containers: ReadonlyArray<{ id: string; state: number; podSandboxId: string; labels: Readonly<Record<string, string>> }>,
): Map<string, string> {
  const parts = new Map<string, string[]>();
  const add = (uid: string | undefined, part: string): void => {
    if (uid === undefined || uid === '') return;
    const list = parts.get(uid) ?? [];
    list.push(part);
    parts.set(uid, list);
  };
  const sandboxUid = new Map<string, string>();
  for (const sandbox of sandboxes) {
    const uid = sandbox.labels[LABEL_POD_UID];
    if (uid !== undefined) sandboxUid.set(sandbox.id, uid);
    add(uid, `s/${sandbox.id}/${sandbox.state}`);
  }
  for (const container of containers) add(container.labels[LABEL_POD_UID] ?? sandboxUid.get(container.podSandboxId), `c/${container.id}/${container.state}`);
  return new Map([...parts].map(([uid, list]) => [uid, list.sort().join(' ')]));
}

export class LifecycleEvents {
  private previous = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failing = false;

  constructor(private readonly options: LifecycleEventsOptions) {}

  start(): void {
    const tick = (): void => {
      if (this.running !== undefined) return; // a slow runtime: skip rather than pile up
      this.running = this.relist().finally(() => (this.running = undefined));
    };
    this.timer = setInterval(tick, this.options.intervalMs ?? DEFAULT_RELIST_INTERVAL_MS);
    tick();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One relist: report every pod whose state differs from the last relist's. */
  async relist(): Promise<void> {
    let current: Map<string, string>;
    try {
      const [sandboxes, containers] = await Promise.all([this.options.runtime.listPodSandbox(), this.options.runtime.listContainers()]);
      current = fingerprints(sandboxes, containers);
      if (this.failing) this.options.log?.('relist: the runtime answers again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) this.options.log?.(`relist failed: ${error instanceof Error ? error.message : String(error)}`);
      this.failing = true;
      return;
    }
    for (const [uid, print] of current) if (this.previous.get(uid) !== print) this.options.onChange(uid, print);
    for (const uid of this.previous.keys()) if (!current.has(uid)) this.options.onChange(uid, '');
    this.previous = current;
  }
}
