// Kill masters at random points of a write load and check nothing
// acknowledged is lost: the CI test runs 20+ points, `npm run bench -- crash`
// runs 1000. A seeded PRNG picks the victim and the moment, so a failing run
// can be repeated from its seed.

import { EtcdClient, EtcdConnection } from '../../services/client/etcd.js';
import { missingAfterCatchUp, startAckedWriter } from './writer.js';
import { waitFor, type LocalCluster } from '../../services/launcher/local-cluster.js';
import { Prng } from '../simulation/prng.js';

export interface CrashRunResult {
  readonly points: number;
  readonly acknowledged: number;
  readonly lost: number;
  /** Acknowledged writes missing, as `member: key` (empty when nothing was lost). */
  readonly missing: readonly string[];
  readonly leaderKills: number;
}

export interface CrashRunOptions {
  readonly points: number;
  readonly seed: number;
  /** Upper bound of the random wait before each kill, ms. */
  readonly maxDelayMs?: number;
  readonly log?: (line: string) => void;
}

export async function runCrashPoints(cluster: LocalCluster, options: CrashRunOptions): Promise<CrashRunResult> {
  const prng = new Prng(options.seed);
  const client = new EtcdClient({ endpoints: cluster.endpoints, timeoutMs: 5000 });
  const writer = startAckedWriter(client, '/crash');
  const acked = writer.acked;
  let leaderKills = 0;
  try {
    for (let point = 0; point < options.points; point++) {
      const leader = await cluster.waitForLeader(60_000);
      const victim = cluster.members[prng.nextInt(cluster.members.length)]!;
      if (victim === leader) leaderKills++;
      // The fault's timing is the random input here, not a wait for a condition.
      const delay = prng.nextInt(options.maxDelayMs ?? 200);
      await new Promise((resolve) => setTimeout(resolve, delay));
      await cluster.stopMember(victim.name, 'SIGKILL');
      cluster.startMember(victim.name);
      const after = acked.size;
      await waitFor(`writes to go on after killing ${victim.name}`, async () => (acked.size >= after + 3 ? true : undefined), 60_000, 10);
      options.log?.(`point ${point + 1}/${options.points}: killed ${victim.name}${victim === leader ? ' (leader)' : ''}, ${acked.size} writes acknowledged`);
    }
  } finally {
    await writer.stop();
    client.close();
  }
  await cluster.waitForLeader(60_000);
  // Every member, including the last one killed, must hold every acknowledged write.
  const missing: string[] = [];
  for (const member of cluster.members) {
    const connection = new EtcdConnection(member.clientUrl);
    try {
      for (const key of await missingAfterCatchUp(connection, '/crash', acked)) missing.push(`${member.name}: ${key}`);
    } finally {
      connection.close();
    }
  }
  return { points: options.points, acknowledged: acked.size, lost: missing.length, missing: missing.slice(0, 20), leaderKills };
}
