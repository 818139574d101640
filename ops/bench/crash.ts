// `npm run bench -- crash`: masters killed at --points (1000) random moments
// of a write load, each restarted on its data dir; counts acknowledged writes
// lost (must be 0). Last line: {"bench":"crash","points","acknowledged","lost",...}.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../services/launcher/local-cluster.js';
import { runCrashPoints } from '../../test/support/crash-points.js';

export async function benchCrash(points: number, seed: number, log: (line: string) => void): Promise<Record<string, unknown>> {
  const cluster = await LocalCluster.start({
    size: 3,
    baseDir: mkdtempSync(join(tmpdir(), 'mast-bench-crash-')),
    flags: ['--snapshot-count=1000', '--snapshot-catchup-entries=100'],
  });
  const started = performance.now();
  try {
    const result = await runCrashPoints(cluster, { points, seed, log: (line) => (/\/(\d+):/.test(line) && Number(/point (\d+)/.exec(line)?.[1]) % 50 === 0 ? log(line) : undefined) });
    for (const missing of result.missing) log(`LOST ${missing}`);
    return {
      bench: 'crash',
      seed,
      points: result.points,
      leader_kills: result.leaderKills,
      acknowledged: result.acknowledged,
      lost: result.lost,
      seconds: Math.round((performance.now() - started) / 1000),
    };
  } finally {
    await cluster.destroy();
  }
}
