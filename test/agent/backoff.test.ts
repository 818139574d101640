// Back-off bookkeeping: crash-loop delays doubling to the cap and starting
// over after a long run; image-pull blocking per failure; Go-style delays.

import { expect } from 'chai';
import { Backoff, formatDelay } from '../../services/agent/backoff.js';

describe('agent: back-off', () => {
  it('crash loops: 10 s, doubling per restart, capped at 300 s', () => {
    const backoff = new Backoff();
    const delays: number[] = [];
    let nowMs = 0;
    for (let restart = 0; restart < 7; restart += 1) {
      const delay = backoff.crashLoopDelayMs('p/app', nowMs);
      delays.push(delay);
      nowMs += delay;
      backoff.recordRestart('p/app', nowMs - delay, nowMs);
      nowMs += 500; // runs half a second, then crashes
    }
    expect(delays).to.deep.equal([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
  });

  it('crash loops: a container that ran resetAfterMs since its last restart starts over', () => {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 8000, resetAfterMs: 60_000 });
    backoff.recordRestart('k', 0, 0);
    backoff.recordRestart('k', 10, 1000);
    expect(backoff.crashLoopDelayMs('k', 1000 + 59_999)).to.equal(4000);
    expect(backoff.crashLoopDelayMs('k', 1000 + 60_000)).to.equal(1000);
  });

  it('image pulls: blocked for the delay after each failure, doubling', () => {
    const backoff = new Backoff();
    expect(backoff.blockedUntilMs('img', 0)).to.equal(undefined);
    expect(backoff.recordFailure('img', 0)).to.equal(10_000);
    expect(backoff.blockedUntilMs('img', 9_999)).to.equal(10_000);
    expect(backoff.blockedUntilMs('img', 10_000)).to.equal(undefined);
    expect(backoff.recordFailure('img', 10_000)).to.equal(20_000);
    expect(backoff.blockedUntilMs('img', 29_999)).to.equal(30_000);
    backoff.forget('img');
    expect(backoff.blockedUntilMs('img', 10_001)).to.equal(undefined);
  });

  it('forgets a pod by prefix, and idle entries on gc', () => {
    const backoff = new Backoff();
    backoff.recordFailure('u1/image:a', 0);
    backoff.recordRestart('u1/app', 0, 0);
    backoff.recordRestart('u2/app', 0, 0);
    backoff.forgetPrefix('u1/');
    expect(backoff.size).to.equal(1);
    backoff.gc(300_000 + 600_000 + 1);
    expect(backoff.size).to.equal(0);
  });

  it('rejects a policy that makes no sense', () => {
    expect(() => new Backoff({ initialMs: 0, maxMs: 1, resetAfterMs: 0 })).to.throw(/initialMs/);
    expect(() => new Backoff({ initialMs: 10, maxMs: 5, resetAfterMs: 0 })).to.throw(/maxMs/);
  });

  it('prints delays as the kubelet does', () => {
    expect([10_000, 40_000, 80_000, 160_000, 300_000].map(formatDelay)).to.deep.equal(['10s', '40s', '1m20s', '2m40s', '5m0s']);
  });
});
