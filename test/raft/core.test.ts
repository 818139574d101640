import { expect } from 'chai';
import { MiniCluster } from './mini-cluster.js';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('raft core (unit)', () => {
  it('elects a leader, replicates and applies proposals on every member', () => {
    const cluster = new MiniCluster({ voters: [1, 2, 3], learners: [] });
    cluster.members.get(1)!.campaign();
    cluster.stabilize();
    const leader = cluster.leader();
    expect(leader?.id).to.equal(1);
    for (const word of ['a', 'b', 'c']) expect(leader!.propose(encode(word)).kind).to.equal('accepted');
    cluster.stabilize();
    expect(cluster.appliedData(1)).to.deep.equal(['a', 'b', 'c']);
    // Followers that wait on nothing learn the commit from the next append or,
    // with none coming, within two ticks of the leader (here one: a heartbeat).
    expect(cluster.appliedData(2)).to.deep.equal([]);
    leader!.tick();
    cluster.stabilize();
    for (const id of [1, 2, 3]) expect(cluster.appliedData(id)).to.deep.equal(['a', 'b', 'c']);
  });

  it('says how many ticks may pass before a leader acts: to its next heartbeat, or 1 while commit news waits', () => {
    const cluster = new MiniCluster({ voters: [1, 2, 3], learners: [] }, { config: { heartbeatIntervalTicks: 5, electionTimeoutTicks: 20 } });
    cluster.members.get(1)!.campaign();
    cluster.stabilize();
    const leader = cluster.leader()!;
    // The new term's empty entry is committed; followers have not heard so yet.
    expect(leader.ticksUntilTimeout()).to.equal(1);
    for (let tick = 0; tick < 3 && leader.ticksUntilTimeout() === 1; tick++) {
      leader.tick();
      cluster.stabilize();
    }
    const left = leader.ticksUntilTimeout();
    expect(left).to.be.within(2, 5);
    // The ticks before the one named send nothing; that one sends the heartbeats.
    for (let tick = 1; tick < left; tick++) {
      leader.tick();
      expect(leader.hasReady(), `tick ${tick} of ${left}`).to.equal(false);
      expect(leader.ticksUntilTimeout()).to.equal(left - tick);
    }
    leader.tick();
    expect(leader.ready().messages.map((message) => message.kind)).to.deep.equal(['heartbeat', 'heartbeat']);
  });

  it('says how many ticks may pass before tick() acts on a follower: the rest of its election timeout', () => {
    const cluster = new MiniCluster({ voters: [1, 2, 3], learners: [] });
    cluster.members.get(1)!.campaign();
    cluster.stabilize();
    const follower = cluster.members.get(2)!;
    // A heartbeat restarts the follower's count; each tick takes one off.
    cluster.leader()!.tick();
    for (let tick = 0; tick < 5; tick++) cluster.leader()!.tick();
    cluster.stabilize();
    const left = follower.ticksUntilTimeout();
    expect(left).to.be.at.least(2);
    follower.tick();
    expect(follower.ticksUntilTimeout()).to.equal(left - 1);
    // With no message in between, it campaigns on exactly the tick named.
    for (let tick = 0; tick < left - 2; tick++) follower.tick();
    expect(follower.status().role).to.equal('follower');
    follower.tick();
    expect(follower.status().role).to.not.equal('follower');
  });

  it('piggybacks commit news on the next append', () => {
    const cluster = new MiniCluster({ voters: [1, 2, 3], learners: [] });
    cluster.members.get(1)!.campaign();
    cluster.stabilize();
    const leader = cluster.leader()!;
    leader.propose(encode('a'));
    cluster.stabilize();
    expect(cluster.appliedData(2)).to.deep.equal([]);
    leader.propose(encode('b'));
    cluster.stabilize();
    expect(cluster.appliedData(2)).to.deep.equal(['a']);
  });

  it('forwards a follower proposal to the leader', () => {
    const cluster = new MiniCluster({ voters: [1, 2, 3], learners: [] });
    cluster.members.get(2)!.campaign();
    cluster.stabilize();
    const result = cluster.members.get(3)!.propose(encode('x'));
    expect(result).to.deep.equal({ kind: 'forwarded', leader: 2 });
    cluster.stabilize();
    // The proposer waits on its entry, so the leader tells it of the commit at once.
    expect(cluster.appliedData(3)).to.deep.equal(['x']);
    expect(cluster.appliedData(1)).to.deep.equal([]);
    for (let tick = 0; tick < 2; tick++) {
      cluster.members.get(2)!.tick();
      cluster.stabilize();
    }
    expect(cluster.appliedData(1)).to.deep.equal(['x']);
  });

  it('restarts a member from its disk and catches it up', () => {
    const cluster = new MiniCluster({ voters: [1, 2, 3], learners: [] });
    cluster.members.get(1)!.campaign();
    cluster.stabilize();
    cluster.crash(3);
    cluster.leader()!.propose(encode('while-down'));
    cluster.stabilize();
    cluster.start(3);
    for (let tick = 0; tick < 3; tick++) {
      cluster.leader()!.tick();
      cluster.stabilize();
    }
    expect(cluster.appliedData(3)).to.deep.equal(['while-down']);
  });

  it('sends a snapshot to a member behind the compacted log', () => {
    const cluster = new MiniCluster({ voters: [1, 2, 3], learners: [] });
    cluster.members.get(1)!.campaign();
    cluster.stabilize();
    cluster.crash(3);
    const leader = cluster.leader()!;
    for (const word of ['p', 'q', 'r']) leader.propose(encode(word));
    cluster.stabilize();
    leader.compact(leader.status().applied, encode('state-after-r'));
    expect(leader.status().firstIndex).to.be.greaterThan(1);
    cluster.start(3);
    for (let tick = 0; tick < 3; tick++) {
      leader.tick();
      cluster.stabilize();
    }
    expect(cluster.disks.get(3)!.snapshot?.meta.index).to.equal(leader.status().applied);
    expect(cluster.members.get(3)!.status().commit).to.equal(leader.status().commit);
  });
});
