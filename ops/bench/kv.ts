// `npm run bench -- kv`: the same etcd v3 load against a 3-master mast
// cluster and, when the `etcd` binary is installed, a 3-member etcd cluster
// on this machine in the same run:
//   (a) one writer in sequence, (b) 100 writes in flight, (c) 100
//   linearizable reads in flight — 256-byte values, --seconds each (10);
//   then failover: kill -9 the leader under a sequential write load and time
//   until the next write is acknowledged, --kills times (5).
// Last line: one JSON object with the figures (keys prefixed etcd_ for etcd).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient, EtcdConnection, isRetriable } from '../../services/client/etcd.js';
import { LocalCluster, waitFor, type Flavor } from '../../services/launcher/local-cluster.js';

export interface KvBenchOptions {
  readonly seconds: number;
  readonly kills: number;
  readonly etcd: boolean;
}

interface CaseResult {
  readonly ops: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

const VALUE = Buffer.alloc(256, 'v');
const KEY_SPACE = 10_000;

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

async function runLoad(connections: readonly EtcdConnection[], concurrency: number, seconds: number, operation: (connection: EtcdConnection, sequence: number) => Promise<unknown>): Promise<CaseResult> {
  const latencies: number[] = [];
  let errors = 0;
  let sequence = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  const worker = async (workerIndex: number): Promise<void> => {
    let round = workerIndex;
    while (performance.now() < end) {
      const connection = connections[round++ % connections.length]!;
      const begin = performance.now();
      try {
        await operation(connection, sequence++);
        latencies.push(performance.now() - begin);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)));
  const elapsed = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return { ops: latencies.length, opsPerSecond: latencies.length / elapsed, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), errors };
}

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match === null ? Number.NaN : Number(match[1]) / 1024;
}

async function measureFailover(cluster: LocalCluster, kills: number, log: (line: string) => void): Promise<number[]> {
  const times: number[] = [];
  // Each attempt gets 0.5 s: a write that a member forwarded to the dead
  // leader is abandoned and retried elsewhere after that (etcd does not
  // re-propose on a leader change, so its clients wait out their timeout;
  // mast re-proposes, so its writes do not depend on this).
  const client = new EtcdClient({ endpoints: cluster.endpoints, timeoutMs: 500 });
  try {
    for (let kill = 0; kill < kills; kill++) {
      const leader = await cluster.waitForLeader(60_000);
      // A steady sequential write load; the kill happens in the middle of it.
      let acknowledgedAfterKill = 0;
      let killedAt = 0;
      let stop = false;
      let sequence = 0;
      const writer = (async () => {
        while (!stop) {
          const issuedAt = performance.now();
          try {
            await client.withFailover((connection) => connection.put(`bench/failover/${sequence++ % 100}`, VALUE), Date.now() + 30_000);
            if (killedAt > 0 && issuedAt >= killedAt && acknowledgedAfterKill === 0) acknowledgedAfterKill = performance.now();
          } catch (error) {
            if (!isRetriable(error)) throw error;
          }
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 500));
      killedAt = performance.now();
      leader.process?.kill('SIGKILL');
      await waitFor('a write acknowledged after the kill', async () => (acknowledgedAfterKill > 0 ? true : undefined), 60_000, 5);
      stop = true;
      await writer;
      const took = acknowledgedAfterKill - killedAt;
      times.push(took);
      log(`  kill ${kill + 1}: leader ${leader.name} killed, next write acknowledged after ${took.toFixed(0)} ms`);
      await cluster.stopMember(leader.name);
      cluster.startMember(leader.name);
      await cluster.waitForLeader(60_000);
      // Let the restarted member catch up before the next kill.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } finally {
    client.close();
  }
  return times;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function benchFlavor(flavor: Flavor, options: KvBenchOptions, log: (line: string) => void): Promise<Record<string, number>> {
  const baseDir = join(tmpdir(), `mast-bench-${flavor}-${process.pid}`);
  log(`${flavor}: starting 3 members in ${baseDir}`);
  const cluster = await LocalCluster.start({ size: 3, baseDir, flavor });
  try {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idleRss = Math.max(...cluster.members.map((member) => rssMb(member.process?.pid)));
    log(`${flavor}: idle RSS of the largest member ${idleRss.toFixed(1)} MB`);
    const connections = cluster.members.map((member) => new EtcdConnection(member.clientUrl));
    const leader = await cluster.waitForLeader();
    const leaderConnection = connections[cluster.members.indexOf(leader)]!;
    // Warm up before measuring: connections, and for mast V8's optimizing
    // compiler, which takes several thousand requests through each path to
    // reach steady state (the first thousand sequential writes run about
    // twice as slow as the fifth). Both systems get the same warm-up.
    await runLoad(connections, 20, 3, (connection, i) => connection.put(`bench/key/${i % KEY_SPACE}`, VALUE));
    await runLoad([leaderConnection], 1, 2, (connection, i) => connection.put(`bench/key/${i % KEY_SPACE}`, VALUE));
    await runLoad(connections, 20, 1, (connection, i) => connection.get(`bench/key/${i % KEY_SPACE}`));

    const seq = await runLoad([leaderConnection], 1, options.seconds, (connection, i) => connection.put(`bench/key/${i % KEY_SPACE}`, VALUE));
    log(`${flavor}: (a) put, 1 in sequence:  ${seq.opsPerSecond.toFixed(0)} ops/s  p50 ${seq.p50Ms.toFixed(2)} ms  p99 ${seq.p99Ms.toFixed(2)} ms  errors ${seq.errors}`);
    const put = await runLoad(connections, 100, options.seconds, (connection, i) => connection.put(`bench/key/${i % KEY_SPACE}`, VALUE));
    log(`${flavor}: (b) put, 100 in flight:  ${put.opsPerSecond.toFixed(0)} ops/s  p50 ${put.p50Ms.toFixed(2)} ms  p99 ${put.p99Ms.toFixed(2)} ms  errors ${put.errors}`);
    const get = await runLoad(connections, 100, options.seconds, (connection, i) => connection.get(`bench/key/${i % KEY_SPACE}`));
    log(`${flavor}: (c) get, 100 in flight:  ${get.opsPerSecond.toFixed(0)} ops/s  p50 ${get.p50Ms.toFixed(2)} ms  p99 ${get.p99Ms.toFixed(2)} ms  errors ${get.errors}`);
    for (const connection of connections) connection.close();

    log(`${flavor}: failover, ${options.kills} kills of the leader under sequential writes`);
    const failovers = await measureFailover(cluster, options.kills, log);
    return {
      put_seq_ops: round(seq.opsPerSecond),
      put_seq_p50_ms: round(seq.p50Ms, 3),
      put_seq_p99_ms: round(seq.p99Ms, 3),
      put_c100_ops: round(put.opsPerSecond),
      put_c100_p50_ms: round(put.p50Ms, 3),
      put_c100_p99_ms: round(put.p99Ms, 3),
      get_c100_ops: round(get.opsPerSecond),
      get_c100_p50_ms: round(get.p50Ms, 3),
      get_c100_p99_ms: round(get.p99Ms, 3),
      failover_median_ms: round(median(failovers)),
      failover_max_ms: round(Math.max(...failovers)),
      master_idle_rss_mb: round(idleRss, 1),
    };
  } finally {
    await cluster.destroy();
  }
}

function round(value: number, digits = 0): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export function etcdInstalled(): string | undefined {
  try {
    const version = execFileSync('etcd', ['--version'], { encoding: 'utf8' });
    return /etcd Version: (\S+)/.exec(version)?.[1] ?? 'unknown';
  } catch {
    return undefined;
  }
}

export async function benchKv(options: KvBenchOptions, log: (line: string) => void): Promise<Record<string, unknown>> {
  const mast = await benchFlavor('mast', options, log);
  const result: Record<string, unknown> = { bench: 'kv', seconds_per_case: options.seconds, kills: options.kills, ...mast };
  const etcdVersion = options.etcd ? etcdInstalled() : undefined;
  if (etcdVersion === undefined) {
    log(options.etcd ? 'etcd is not installed (apt-get install etcd-server): mast figures only' : 'etcd skipped (--no-etcd)');
    return result;
  }
  result.etcd_version = etcdVersion;
  const etcd = await benchFlavor('etcd', options, log);
  for (const [key, value] of Object.entries(etcd)) result[`etcd_${key}`] = value;
  log('mast/etcd ratios:');
  for (const key of ['put_seq_ops', 'put_c100_ops', 'get_c100_ops'] as const) {
    const ratio = mast[key]! / etcd[key]!;
    result[`ratio_${key}`] = round(ratio, 2);
    log(`  ${key}: ${ratio.toFixed(2)}`);
  }
  return result;
}
