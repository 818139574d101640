// Masters killed (SIGKILL) at random points of a write load, 24 times, each
// restarted on its data dir: every acknowledged write is on every member at
// the end. `npm run bench -- crash` runs the same with 1000 points.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../services/launcher/local-cluster.js';
import { runCrashPoints } from '../support/crash-points.js';

describe('mast master: kill -9 at random points of a write load', function () {
  this.timeout(600_000);
  let cluster: LocalCluster | undefined;

  after(async function () {
    await cluster?.destroy();
  });

  it('loses no acknowledged write over 24 kills (seed MAST_CRASH_SEED, default 1)', async function () {
    cluster = await LocalCluster.start({
      size: 3,
      baseDir: mkdtempSync(join(tmpdir(), 'mast-crash-test-')),
      flags: ['--snapshot-count=300', '--snapshot-catchup-entries=50'],
    });
    const seed = Number(process.env.MAST_CRASH_SEED ?? 1);
    const result = await runCrashPoints(cluster, { points: 24, seed });
    expect(result.missing, `seed ${seed}`).to.deep.equal([]);
    expect(result.acknowledged).to.be.greaterThan(24 * 3);
    expect(cluster.running()).to.have.length(3);
  });
});
