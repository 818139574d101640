// client-go's rate-limited workqueue, for controllers: event handlers add
// keys ("namespace/name"), workers take them, reconcile, and say done.
//
// The guarantees a level-triggered controller relies on, exactly as
// client-go gives them:
//  - a key added many times before a worker takes it is queued once (the
//    dirty set), so a burst of events costs one reconcile;
//  - a key is never handed to two workers at once: one added while it is
//    being processed waits, and is queued again when the worker calls done();
//  - otherwise keys come out in the order they were first added (FIFO).
//
// Limits: the queue has no hard maximum, as in client-go — keys dedupe, so
// its length (and the number of pending delay timers, and of backoff
// counters) is bounded by the number of distinct keys, i.e. by the objects
// the controller watches. Backoff is bounded by maxBackoffMs.
//
// Unlike client-go's default controller rate limiter, there is no overall
// token bucket on top of the per-key backoff: the API server's own limits
// protect it.

export const DEFAULT_BASE_BACKOFF_MS = 5;
export const DEFAULT_MAX_BACKOFF_MS = 1000;

export interface WorkQueueOptions {
  /** The first addRateLimited() delay of a key; it doubles with each further failure. */
  readonly baseBackoffMs?: number;
  /** The most a key waits in addRateLimited(). */
  readonly maxBackoffMs?: number;
}

/**
 * Per-key exponential backoff (client-go's ItemExponentialFailureRateLimiter):
 * a key's n-th consecutive failure waits baseBackoffMs * 2^(n-1), at most
 * maxBackoffMs, until the key is forgotten.
 */
export class ExponentialBackoff<K extends string = string> {
  /** Consecutive failures per key since it was last forgotten (one entry per distinct failing key). */
  private readonly failures = new Map<K, number>();
  readonly baseBackoffMs: number;
  readonly maxBackoffMs: number;

  constructor(options: WorkQueueOptions = {}) {
    this.baseBackoffMs = options.baseBackoffMs ?? DEFAULT_BASE_BACKOFF_MS;
    this.maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    if (!(this.baseBackoffMs >= 0 && this.maxBackoffMs >= this.baseBackoffMs)) {
      throw new Error(`backoff: need 0 <= baseBackoffMs (${this.baseBackoffMs}) <= maxBackoffMs (${this.maxBackoffMs})`);
    }
  }

  /** Count a failure of the key; how long it should wait before its next try. */
  whenMs(key: K): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    // 2 ** failures is Infinity long before failures overflows; min() caps it.
    return Math.min(this.baseBackoffMs * 2 ** failures, this.maxBackoffMs);
  }

  forget(key: K): void {
    this.failures.delete(key);
  }

  numRequeues(key: K): number {
    return this.failures.get(key) ?? 0;
  }
}

export class WorkQueue<K extends string = string> {
  /** Keys ready for a worker, in order; each at most once, never one being processed. */
  private readonly queue: K[] = [];
  /** Keys that need processing: queued, or added again while being processed. */
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  /** Workers blocked in get(), oldest first. */
  private readonly waiters: Array<(key: K | undefined) => void> = [];
  /** addAfter() keys not yet added: one timer per key, the earliest asked for. */
  private readonly delayed = new Map<K, { readonly timer: NodeJS.Timeout; readonly readyAtMs: number }>();
  private readonly backoff: ExponentialBackoff<K>;
  private closing = false;

  constructor(options: WorkQueueOptions = {}) {
    this.backoff = new ExponentialBackoff(options);
  }

  /** Keys waiting for a worker (not those being processed or delayed). */
  get length(): number {
    return this.queue.length;
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  /** Mark a key for processing. Ignored after shutDown(). */
  add(key: K): void {
    if (this.closing || this.dirty.has(key)) return;
    this.dirty.add(key);
    // A worker has it: done() queues it again.
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.handOut();
  }

  /** add() once `delayMs` have passed. A key already waiting keeps the earlier of the two times. */
  addAfter(key: K, delayMs: number): void {
    if (this.closing) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const readyAtMs = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending !== undefined) {
      if (pending.readyAtMs <= readyAtMs) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { timer, readyAtMs });
  }

  /** addAfter() with the key's backoff: baseBackoffMs doubled per earlier failure, at most maxBackoffMs. */
  addRateLimited(key: K): void {
    this.addAfter(key, this.backoff.whenMs(key));
  }

  /** The key succeeded: its next addRateLimited() starts again from baseBackoffMs. */
  forget(key: K): void {
    this.backoff.forget(key);
  }

  /** How many addRateLimited() calls since the key was last forgotten. */
  numRequeues(key: K): number {
    return this.backoff.numRequeues(key);
  }

  /**
   * The next key to process, once there is one; the caller must call done()
   * with it. Undefined once the queue is shut down and empty: the worker ends.
   */
  get(): Promise<K | undefined> {
    const key = this.take();
    if (key !== undefined || this.closing) return Promise.resolve(key);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The worker is finished with the key; if it was added meanwhile, it is queued again. */
  done(key: K): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.queue.push(key);
      this.handOut();
    }
  }

  /**
   * Take no more keys (delayed ones are dropped); workers get what is queued,
   * then undefined. Keys being processed may still come back once through
   * done() if they were added before the shutdown.
   */
  shutDown(): void {
    if (this.closing) return;
    this.closing = true;
    for (const pending of this.delayed.values()) clearTimeout(pending.timer);
    this.delayed.clear();
    // Waiters exist only while the queue is empty.
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  private take(): K | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }

  /** Give queued keys to blocked workers. */
  private handOut(): void {
    while (this.waiters.length > 0 && this.queue.length > 0) {
      const waiter = this.waiters.shift()!;
      waiter(this.take());
    }
  }
}

/**
 * Run `count` workers over the queue, as sample-controller's
 * processNextWorkItem: take a key, sync it; on success forget its backoff,
 * on failure requeue it rate-limited (and report the error); always done().
 * Resolves once the queue is shut down and every worker has exited.
 */
export async function runWorkers<K extends string>(queue: WorkQueue<K>, count: number, sync: (key: K) => Promise<void>, onError?: (key: K, error: unknown) => void): Promise<void> {
  if (!(Number.isInteger(count) && count > 0)) throw new Error(`runWorkers: count must be a positive integer, not ${count}`);
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      await processItem(queue, key, sync, onError);
    }
  };
  await Promise.all(Array.from({ length: count }, worker));
}

async function processItem<K extends string>(queue: WorkQueue<K>, key: K, sync: (key: K) => Promise<void>, onError?: (key: K, error: unknown) => void): Promise<void> {
  try {
    await sync(key);
    queue.forget(key);
  } catch (error) {
    queue.addRateLimited(key);
    try {
      onError?.(key, error);
    } catch {
      // A failing error reporter must not stop the worker.
    }
  } finally {
    queue.done(key);
  }
}
