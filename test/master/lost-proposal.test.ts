// A write sent to a follower whose peer link to the leader breaks: Raft
// forwards the proposal and never says it was lost, the leader stays (its
// own links out are fine, and the cut is shorter than its quorum check), so
// no leader change would ever propose it again. The member must propose it
// again itself, and the state machine must apply it once.

import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { relayPeerLinks, type PeerRelay } from '../support/peer-relay.js';
import { LocalCluster, waitFor, type LocalMember } from '../../services/launcher/local-cluster.js';

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? []).toString();

/** Lines of a member's log saying its raft stream to `url` broke. */
function brokenStreams(member: LocalMember, url: string): number {
  return readFileSync(member.logFile, 'utf8').split('\n').filter((line) => line.includes(`(${url}) broke`)).length;
}

describe('a write forwarded over a peer link that broke', function () {
  this.timeout(120_000);
  let cluster: LocalCluster | undefined;
  let relays: PeerRelay[] = [];

  after(async function () {
    await cluster?.destroy();
    for (const relay of relays) await relay.stop();
  });

  it('is proposed again by the follower and applied once, under the same leader', async function () {
    // A long election timeout: the leader's quorum check must not notice the cut,
    // so that only the follower's own retry can save the write.
    cluster = await LocalCluster.create({
      size: 3,
      baseDir: mkdtempSync(join(tmpdir(), 'mast-lost-proposal-')),
      flags: ['--election-timeout=4000', '--request-timeout=20000'],
    });
    relays = await relayPeerLinks(cluster);
    for (const member of cluster.members) cluster.startMember(member.name);
    const leader = await cluster.waitForLeader(60_000);
    const leaderRelay = relays[cluster.members.indexOf(leader)]!;
    const follower = cluster.members.find((member) => member !== leader)!;
    const connection = cluster.connection(follower.name);
    try {
      await connection.put('/lost/warm-up', 'through the link');
      const before = await connection.status(5000);

      // Cut every link into the leader; wait until the follower has seen its stream break.
      const brokenBefore = brokenStreams(follower, leaderRelay.url);
      leaderRelay.cut();
      await waitFor('the follower to see its stream to the leader break', async () => (brokenStreams(follower, leaderRelay.url) > brokenBefore ? true : undefined), 30_000);
      // Propose while the link is down, and keep it down until the follower has
      // failed to reconnect once more after that: the forwarded proposal is gone.
      const brokenAtProposal = brokenStreams(follower, leaderRelay.url);
      const write = connection.put('/lost/k', 'proposed again');
      await waitFor('another failed reconnect to the leader', async () => (brokenStreams(follower, leaderRelay.url) > brokenAtProposal ? true : undefined), 30_000);
      leaderRelay.restore();

      const response = await write;
      const after = await connection.status(5000);
      expect(after.leader, 'the leader changed: a leader change, not the retry, proposed the write again').to.equal(before.leader);
      expect(after.raftTerm).to.equal(before.raftTerm);
      const read = await connection.get('/lost/k');
      expect(text(read.kvs[0]?.value)).to.equal('proposed again');
      expect(read.kvs[0]?.version, 'applied once').to.equal('1');
      expect(read.kvs[0]?.modRevision).to.equal(response.header?.revision);
      // Applied once: the only revision after the write's own is none (nothing else writes).
      expect(read.header?.revision).to.equal(response.header?.revision);
      expect(readFileSync(follower.logFile, 'utf8')).to.match(/proposing 1 write\(s\) again: not applied within 4000 ms/);
    } finally {
      connection.close();
    }
  });
});
