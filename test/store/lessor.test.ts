// Lease countdowns with a fake clock: only the leader proposes expiries, a
// new leader first extends every lease, and an unapplied expiry is retried.

import { expect } from 'chai';
import { Lessor } from '../../services/store/index.js';

function setup(): { lessor: Lessor; clock: { time: number; now(): number }; proposed: number[] } {
  const clock = { time: 0, now: () => clock.time };
  const proposed: number[] = [];
  return { lessor: new Lessor(clock, (id) => proposed.push(id), 2000), clock, proposed };
}

describe('lessor', function () {
  it('counts down from each renewal and reports seconds left', function () {
    const { lessor, clock } = setup();
    lessor.renewed(1, 10);
    clock.time = 2500;
    expect(lessor.remainingSeconds(1)).to.equal(8);
    lessor.renewed(1, 10);
    expect(lessor.remainingSeconds(1)).to.equal(10);
    expect(lessor.remainingSeconds(2)).to.equal(undefined);
  });

  it('proposes expiry only on the leader, once per retry period', function () {
    const { lessor, clock, proposed } = setup();
    lessor.renewed(1, 1);
    clock.time = 5000;
    lessor.check();
    expect(proposed).to.deep.equal([]); // a follower never expires leases
    lessor.setLeader(true); // ... and a new leader extends them first
    lessor.check();
    expect(proposed).to.deep.equal([]);
    clock.time = 6001;
    lessor.check();
    lessor.check();
    expect(proposed).to.deep.equal([1]);
    clock.time = 8002;
    lessor.check();
    expect(proposed).to.deep.equal([1, 1]);
    lessor.removed(1);
    clock.time = 20000;
    lessor.check();
    expect(proposed).to.deep.equal([1, 1]);
  });

  it('lets a renewal applied after the decision cancel the pending expiry', function () {
    const { lessor, clock, proposed } = setup();
    lessor.setLeader(true);
    lessor.renewed(4, 1);
    clock.time = 1500;
    lessor.check();
    expect(proposed).to.deep.equal([4]);
    lessor.renewed(4, 1);
    clock.time = 2000;
    lessor.check();
    expect(proposed).to.deep.equal([4]);
  });
});
