// Restart and image-pull back-off, as the kubelet keeps it (client-go's
// flowcontrol.Backoff): one entry per key holding the delay the next retry
// waits, doubled on every retry up to a cap, and forgotten once the thing ran
// long enough. Pure bookkeeping: every call takes the time as a number, so
// the pod worker's decisions replay exactly in tests.
//
// Crash loops: the n-th restart of a container waits min(initial·2^(n-1), max)
// after the exit it follows — 10 s, 20 s, 40 s … 300 s by default — and a
// container that ran for resetAfterMs (10 min) since its last restart starts
// over at the initial delay. (The kubelet restarts the very first crash at
// once and backs off from the second; mast waits from the first, as the
// Kubernetes documentation describes it.)
//
// Image pulls: a failed pull blocks the next attempt for the current delay
// (ErrImagePull, then ImagePullBackOff while waiting), doubling per failure.

export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  /** A container that ran this long since its last restart starts over at initialMs. */
  readonly resetAfterMs: number;
}

export const DEFAULT_BACKOFF_POLICY: BackoffPolicy = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };

interface BackoffEntry {
  /** What the next retry waits. */
  readonly delayMs: number;
  /** When the entry last moved: the last restart, or the last failed pull. */
  readonly updatedAtMs: number;
}

/** Read-only view for pure decisions (computePodActions never writes back-off). */
export interface BackoffView {
  /** The wait before restarting a container that exited at exitedAtMs. */
  crashLoopDelayMs(key: string, exitedAtMs: number): number;
}

export class Backoff implements BackoffView {
  private readonly entries = new Map<string, BackoffEntry>();

  constructor(readonly policy: BackoffPolicy = DEFAULT_BACKOFF_POLICY) {
    if (!(policy.initialMs > 0 && policy.maxMs >= policy.initialMs && policy.resetAfterMs >= 0)) {
      throw new Error(`back-off policy needs 0 < initialMs <= maxMs and resetAfterMs >= 0, got ${JSON.stringify(policy)}`);
    }
  }

  crashLoopDelayMs(key: string, exitedAtMs: number): number {
    const entry = this.entries.get(key);
    if (entry === undefined || exitedAtMs - entry.updatedAtMs >= this.policy.resetAfterMs) return this.policy.initialMs;
    return entry.delayMs;
  }

  /** The container that exited at exitedAtMs was restarted at nowMs: the next restart waits twice as long. */
  recordRestart(key: string, exitedAtMs: number, nowMs: number): void {
    const delayMs = this.crashLoopDelayMs(key, exitedAtMs);
    this.entries.set(key, { delayMs: Math.min(delayMs * 2, this.policy.maxMs), updatedAtMs: nowMs });
  }

  /** Until when a failed operation (an image pull) waits; undefined when it may run now. */
  blockedUntilMs(key: string, nowMs: number): number | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const untilMs = entry.updatedAtMs + entry.delayMs;
    return nowMs < untilMs ? untilMs : undefined;
  }

  /** An operation failed at nowMs: block it for the current delay, doubled on each consecutive failure. */
  recordFailure(key: string, nowMs: number): number {
    const entry = this.entries.get(key);
    const stale = entry === undefined || nowMs - entry.updatedAtMs >= entry.delayMs + this.policy.resetAfterMs;
    const delayMs = stale ? this.policy.initialMs : Math.min(entry.delayMs * 2, this.policy.maxMs);
    this.entries.set(key, { delayMs, updatedAtMs: nowMs });
    return delayMs;
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  /** Drop every key that starts with prefix (a pod's uid when the pod is gone). */
  forgetPrefix(prefix: string): void {
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  /** Drop entries idle for longer than the reset window plus the cap (they would start over anyway). */
  gc(nowMs: number): void {
    for (const [key, entry] of this.entries) {
      if (nowMs - entry.updatedAtMs > this.policy.maxMs + this.policy.resetAfterMs) this.entries.delete(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The crash-loop back-off key of one container of one pod. */
export function containerBackoffKey(podUid: string, containerName: string): string {
  return `${podUid}/${containerName}`;
}

/** The image-pull back-off key of one container's image in one pod. */
export function imageBackoffKey(podUid: string, image: string): string {
  return `${podUid}/image:${image}`;
}

/** A delay the way the kubelet prints it (Go's time.Duration): "10s", "1m20s", "5m0s". */
export function formatDelay(delayMs: number): string {
  const totalSeconds = Math.round(delayMs / 1000);
  if (totalSeconds < 60) return `${totalSeconds}s`;
  const minutes = Math.floor(totalSeconds / 60);
  return `${minutes}m${totalSeconds - minutes * 60}s`;
}
