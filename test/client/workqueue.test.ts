// The rate-limited workqueue: client-go's guarantees (dedupe, one worker per
// key, re-queue on done, FIFO), per-key backoff, delayed adds, shutdown and
// the worker loop. Waits are on conditions with generous deadlines; timing is
// asserted only as lower bounds (a timer never fires early).

import { expect } from 'chai';
import { ExponentialBackoff, runWorkers, WorkQueue } from '../../services/client/workqueue.js';
import { waitFor } from '../../services/launcher/local-cluster.js';

/** A small seeded generator (mulberry32): the random schedule is the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether a promise has settled, without waiting for it. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const pending = Symbol('pending');
  return (await Promise.race([promise, new Promise((resolve) => setImmediate(() => resolve(pending)))])) !== pending;
}

describe('client: the workqueue', function () {
  this.timeout(30_000);

  it('queues a key added many times once, in first-added order', async function () {
    const queue = new WorkQueue();
    for (const key of ['a', 'b', 'a', 'c', 'b', 'a']) queue.add(key);
    expect(queue.length).to.equal(3);
    expect([await queue.get(), await queue.get(), await queue.get()]).to.deep.equal(['a', 'b', 'c']);
    expect(queue.length).to.equal(0);
  });

  it('holds a key added while it is processed until done(), then hands it out again', async function () {
    const queue = new WorkQueue();
    queue.add('a');
    expect(await queue.get()).to.equal('a');
    queue.add('a');
    queue.add('a');
    expect(queue.length).to.equal(0);
    const second = queue.get();
    expect(await settled(second)).to.equal(false);
    queue.done('a');
    expect(await second).to.equal('a');
    queue.done('a');
    expect(queue.length).to.equal(0);
  });

  it('never gives one key to two workers, and processes every key after its last add', async function () {
    const random = seededRandom(20261125);
    const queue = new WorkQueue();
    const keys = Array.from({ length: 10 }, (_, index) => `key-${index}`);
    // One logical clock for adds and processing starts: "after" means a later tick.
    let tick = 0;
    const lastAdded = new Map<string, number>();
    const lastStarted = new Map<string, number>();
    const inProgress = new Set<string>();
    const overlaps: string[] = [];
    const workers = runWorkers(queue, 4, async (key) => {
      if (inProgress.has(key)) overlaps.push(key);
      inProgress.add(key);
      lastStarted.set(key, ++tick);
      await pause(Math.floor(random() * 3));
      inProgress.delete(key);
    });
    for (let i = 0; i < 200; i++) {
      const key = keys[Math.floor(random() * keys.length)]!;
      lastAdded.set(key, ++tick);
      queue.add(key);
      if (random() < 0.3) await pause(Math.floor(random() * 2));
    }
    await waitFor('every key processed after its last add', async () => ([...lastAdded].every(([key, added]) => (lastStarted.get(key) ?? 0) > added) ? true : undefined), 20_000, 10);
    queue.shutDown();
    await workers;
    expect(overlaps).to.deep.equal([]);
    expect(inProgress.size).to.equal(0);
  });

  it('backs a key off exponentially up to the maximum, and forget() starts it over', function () {
    const backoff = new ExponentialBackoff({ baseBackoffMs: 5, maxBackoffMs: 100 });
    const delays = Array.from({ length: 7 }, () => backoff.whenMs('a'));
    expect(delays).to.deep.equal([5, 10, 20, 40, 80, 100, 100]);
    expect(backoff.numRequeues('a')).to.equal(7);
    expect(backoff.whenMs('b')).to.equal(5);
    backoff.forget('a');
    expect(backoff.numRequeues('a')).to.equal(0);
    expect(backoff.whenMs('a')).to.equal(5);
    // Defaults: 5 ms doubling to 1 s.
    const defaults = new ExponentialBackoff();
    expect(Array.from({ length: 10 }, () => defaults.whenMs('x'))).to.deep.equal([5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    expect(() => new ExponentialBackoff({ baseBackoffMs: 10, maxBackoffMs: 5 })).to.throw(/baseBackoffMs/);
  });

  it('re-adds a rate-limited key only after its backoff, counting requeues until forgotten', async function () {
    const queue = new WorkQueue({ baseBackoffMs: 20, maxBackoffMs: 1000 });
    for (const expectedMs of [20, 40]) {
      const startMs = performance.now();
      queue.addRateLimited('a');
      expect(queue.length).to.equal(0);
      expect(await queue.get()).to.equal('a');
      expect(performance.now() - startMs).to.be.at.least(expectedMs - 2);
      queue.done('a');
    }
    expect(queue.numRequeues('a')).to.equal(2);
    queue.forget('a');
    expect(queue.numRequeues('a')).to.equal(0);
    queue.shutDown();
  });

  it('adds after a delay, keeping the earlier of two delays and letting add() come first', async function () {
    const queue = new WorkQueue();
    const startMs = performance.now();
    queue.addAfter('a', 60);
    queue.addAfter('a', 5000); // later: ignored
    expect(queue.length).to.equal(0);
    expect(await queue.get()).to.equal('a');
    expect(performance.now() - startMs).to.be.at.least(58);
    expect(performance.now() - startMs).to.be.below(4000);
    queue.done('a');
    queue.addAfter('b', 10_000);
    queue.add('b');
    expect(await queue.get()).to.equal('b');
    queue.done('b');
    queue.addAfter('c', 0);
    expect(queue.length).to.equal(1);
    queue.shutDown(); // drops b's pending timer: the test would otherwise wait 10 s to exit
  });

  it('drains queued keys after shutDown(), then gives undefined, and ignores new adds', async function () {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).to.equal(undefined);
    const queue2 = new WorkQueue();
    queue2.add('a');
    queue2.add('b');
    queue2.addAfter('c', 10);
    queue2.shutDown();
    expect(queue2.shuttingDown).to.equal(true);
    queue2.add('d');
    expect(await queue2.get()).to.equal('a');
    expect(await queue2.get()).to.equal('b');
    expect(await queue2.get()).to.equal(undefined);
    expect(await queue2.get()).to.equal(undefined);
  });

  it('runs workers that requeue failures with backoff and forget successes', async function () {
    const queue = new WorkQueue({ baseBackoffMs: 1, maxBackoffMs: 10 });
    const attempts = new Map<string, number>();
    const requeuesSeen: number[] = [];
    const errors: string[] = [];
    const workers = runWorkers(
      queue,
      2,
      async (key) => {
        const attempt = (attempts.get(key) ?? 0) + 1;
        attempts.set(key, attempt);
        if (key === 'flaky') requeuesSeen.push(queue.numRequeues(key));
        if (key === 'flaky' && attempt <= 3) throw new Error(`attempt ${attempt} failed`);
      },
      (key, error) => errors.push(`${key}: ${(error as Error).message}`),
    );
    queue.add('flaky');
    queue.add('steady');
    await waitFor('the flaky key to succeed', async () => ((attempts.get('flaky') ?? 0) >= 4 ? true : undefined), 10_000, 5);
    await waitFor('the flaky key to be forgotten', async () => (queue.numRequeues('flaky') === 0 ? true : undefined), 10_000, 5);
    queue.shutDown();
    await workers;
    expect(requeuesSeen).to.deep.equal([0, 1, 2, 3]);
    expect(attempts.get('steady')).to.equal(1);
    expect(errors).to.deep.equal(['flaky: attempt 1 failed', 'flaky: attempt 2 failed', 'flaky: attempt 3 failed']);
  });

  it('ends runWorkers() once the queue is shut down, even with workers waiting', async function () {
    const queue = new WorkQueue();
    const workers = runWorkers(queue, 3, async () => {});
    expect(await settled(workers)).to.equal(false);
    queue.shutDown();
    await workers;
  });
});
