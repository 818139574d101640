// Five masters tolerate two lost members: with the leader and a follower
// killed, writes go on; both come back and catch up.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient, EtcdConnection } from '../../services/client/etcd.js';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';
import { missingAfterCatchUp, startAckedWriter } from '../support/writer.js';

describe('mast master: five processes', function () {
  this.timeout(180_000);
  let cluster: LocalCluster | undefined;

  after(async function () {
    await cluster?.destroy();
  });

  it('keeps writing with two members down and loses nothing', async function () {
    cluster = await LocalCluster.start({ size: 5, baseDir: mkdtempSync(join(tmpdir(), 'mast-five-test-')) });
    const client = new EtcdClient({ endpoints: cluster.endpoints, timeoutMs: 5000 });
    const writer = startAckedWriter(client, '/five');
    try {
      await waitFor('some writes', async () => (writer.acked.size >= 30 ? true : undefined), 30_000);
      const leader = await cluster.waitForLeader();
      const follower = cluster.members.find((member) => member !== leader)!;
      await cluster.stopMember(leader.name, 'SIGKILL');
      await cluster.stopMember(follower.name, 'SIGKILL');
      const before = writer.acked.size;
      await waitFor('writes to go on with two of five down', async () => (writer.acked.size >= before + 30 ? true : undefined), 30_000);
      cluster.startMember(leader.name);
      cluster.startMember(follower.name);
      await cluster.waitForLeader();
      const acked = await writer.stop();
      for (const member of cluster.members) {
        const connection = new EtcdConnection(member.clientUrl);
        try {
          expect(await missingAfterCatchUp(connection, '/five', acked), `acknowledged writes missing on ${member.name}`).to.deep.equal([]);
        } finally {
          connection.close();
        }
      }
    } finally {
      await writer.stop();
      client.close();
    }
  });
});
