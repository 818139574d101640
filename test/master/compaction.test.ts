// --auto-compaction-retention on a real (single-member) master: old
// revisions become unreadable ("compacted") once they age past the retention.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';

describe('mast master: automatic compaction', function () {
  this.timeout(60_000);
  let cluster: LocalCluster | undefined;

  after(async function () {
    await cluster?.destroy();
  });

  it('compacts history older than the periodic retention', async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-compaction-test-')), flags: ['--auto-compaction-retention=1s'] });
    const connection = cluster.connection('m1');
    try {
      const first = await connection.put('/aged', 'old');
      await connection.put('/aged', 'new');
      await waitFor(
        'the first revision to be compacted away',
        async () => {
          await connection.put('/tick', 'x'); // keep revisions moving, as a live cluster does
          try {
            await connection.get('/aged', { revision: first.header!.revision });
            return undefined;
          } catch (error) {
            expect((error as grpc.ServiceError).code).to.equal(grpc.status.OUT_OF_RANGE);
            return true;
          }
        },
        30_000,
        200,
      );
      const latest = await connection.get('/aged');
      expect(Buffer.from(latest.kvs[0]!.value).toString()).to.equal('new');
    } finally {
      connection.close();
    }
  });
});
