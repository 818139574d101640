// `npm run bench -- api`: the resource API on 3 masters.
//   writes: creates of new ConfigMaps and updates of 1,000 existing ones,
//           half and half, offered at --rate per second (default 1000) by 100
//           concurrent clients for --seconds (10); achieved writes/s and p99
//   floor:  raw etcd-API puts of the same size offered the same way, for
//           comparison: what the replicated store alone does on this machine
//   reads:  gets and lists (50 items) by 100 concurrent clients; p99 of each
//   watch:  --watchers (1000) watch streams spread over the masters; events
//           created at 20/s for --seconds; p99 of creation → delivery over
//           every watcher's copy of every event
// Last line: {"bench":"api","write_ops","write_p99_ms","get_p99_ms",
// "list_p99_ms","watchers","watch_delivery_p99_ms", ...}.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { EtcdClient } from '../../services/client/etcd.js';
import { inParallel } from './parallel.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

export interface ApiBenchOptions {
  readonly seconds: number;
  readonly rate: number;
  readonly watchers: number;
}

function percentile(values: number[], fraction: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;

function configMap(name: string, namespace: string, data: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: { bench: 'api' } }, data };
}

/** Run `operation` from `concurrency` workers, offered at `rate` per second overall (0: as fast as possible). */
async function load(concurrency: number, seconds: number, rate: number, operation: (sequence: number) => Promise<unknown>): Promise<{ latencies: number[]; errors: number; errorKinds: Record<string, number>; elapsed: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const errorKinds: Record<string, number> = {};
  let sequence = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const index = sequence++;
      if (rate > 0) {
        // Open-loop pacing: request `index` is due at index / rate seconds.
        const due = started + (index * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (performance.now() >= end) return;
      }
      const begin = performance.now();
      try {
        await operation(index);
        latencies.push(performance.now() - begin);
      } catch (error) {
        errors++;
        const kind = `${(error as { code?: number }).code ?? '?'} ${String((error as { details?: string }).details ?? error).slice(0, 60)}`;
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, errors, errorKinds, elapsed: (performance.now() - started) / 1000 };
}

export async function benchApi(options: ApiBenchOptions, log: (line: string) => void): Promise<Record<string, unknown>> {
  const baseDir = join(tmpdir(), `mast-bench-api-${process.pid}`);
  log(`starting 3 masters in ${baseDir}`);
  const cluster = await LocalCluster.start({ size: 3, baseDir });
  const clients = cluster.endpoints.map((endpoint) => new ResourceClient({ endpoints: [endpoint], timeoutMs: 30_000 }));
  const pick = (index: number): ResourceClient => clients[index % clients.length]!;
  try {
    await cluster.waitForLeader(60_000);
    await waitForNamespace(clients[0]!, 'default');
    for (const namespace of ['bench', 'watched']) await clients[0]!.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    // Warm up every master's paths, and make the objects the updates replace.
    const UPDATE_POOL = 1000;
    await inParallel(UPDATE_POOL, 20, (index) => pick(index).create('ConfigMap', configMap(`u-${index}`, 'bench', { index: String(index) })));
    await load(20, 2, 0, (index) => pick(index).get('ConfigMap', 'bench', `u-${index % UPDATE_POOL}`));

    // Writes: half creates, half updates spread over the pool (a replace without a
    // version: the server reads, then CAS). 100 writers over 1,000 objects rarely
    // touch the same one at once: this measures write throughput, not one hot key.
    const writes = await load(100, options.seconds, options.rate, async (index) => {
      if (index % 2 === 0) {
        const name = `w-${index}`;
        await pick(index).create('ConfigMap', configMap(name, 'bench', { index: String(index) }));
      } else {
        const name = `u-${Math.floor(index / 2) % UPDATE_POOL}`;
        await pick(index).update('ConfigMap', configMap(name, 'bench', { index: String(index), updated: 'yes' }));
      }
    });
    const writeOps = writes.latencies.length / writes.elapsed;
    log(`writes: ${writeOps.toFixed(0)}/s offered ${options.rate}/s, p50 ${percentile(writes.latencies, 0.5).toFixed(1)} ms, p99 ${percentile(writes.latencies, 0.99).toFixed(1)} ms, errors ${writes.errors}${writes.errors > 0 ? ` ${JSON.stringify(writes.errorKinds)}` : ''}`);

    // The floor under those writes: raw etcd-API puts of the same size, offered the same way on the same masters.
    const etcd = new EtcdClient({ endpoints: cluster.endpoints, timeoutMs: 30_000 });
    const value = JSON.stringify(configMap('x'.repeat(8), 'bench', { index: '000000', updated: 'yes' }));
    const puts = await load(100, options.seconds, options.rate, (index) => etcd.connections[index % etcd.connections.length]!.put(`/bench/raw/${index % UPDATE_POOL}`, value)).finally(() => etcd.close());
    const putOps = puts.latencies.length / puts.elapsed;
    log(`raw etcd puts (the floor): ${putOps.toFixed(0)}/s offered ${options.rate}/s, p50 ${percentile(puts.latencies, 0.5).toFixed(1)} ms, p99 ${percentile(puts.latencies, 0.99).toFixed(1)} ms, errors ${puts.errors}`);

    const gets = await load(100, options.seconds, 0, (index) => pick(index).get('ConfigMap', 'bench', `u-${index % UPDATE_POOL}`));
    log(`gets: ${(gets.latencies.length / gets.elapsed).toFixed(0)}/s, p99 ${percentile(gets.latencies, 0.99).toFixed(1)} ms, errors ${gets.errors}`);
    const lists = await load(100, options.seconds, 0, (index) => pick(index).list('ConfigMap', { namespace: 'bench', limit: 50 }));
    log(`lists of 50: ${(lists.latencies.length / lists.elapsed).toFixed(0)}/s, p99 ${percentile(lists.latencies, 0.99).toFixed(1)} ms, errors ${lists.errors}`);

    // Watchers: each records creation → delivery of every event.
    const delays: number[] = [];
    let received = 0;
    const stops: Array<() => void> = [];
    const start = await clients[0]!.list('ConfigMap', { namespace: 'watched' });
    for (let index = 0; index < options.watchers; index++) {
      stops.push(
        pick(index).watch('ConfigMap', { namespace: 'watched', resourceVersion: start.resourceVersion }, {
          onEvent: (type, object) => {
            if (type !== 'ADDED') return;
            const sent = Number((object.data as Record<string, string> | undefined)?.sentAt);
            delays.push(performance.timeOrigin + performance.now() - sent);
            received++;
          },
        }),
      );
    }
    // Let every stream open before events flow.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const events = Math.max(1, Math.round(options.seconds * 20));
    for (let index = 0; index < events; index++) {
      await clients[index % clients.length]!.create('ConfigMap', configMap(`e-${index}`, 'watched', { sentAt: String(performance.timeOrigin + performance.now()) }));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await waitFor('every watcher to get every event', async () => (received >= events * options.watchers ? true : undefined), 120_000, 50).catch(() => undefined);
    for (const stop of stops) stop();
    const expected = events * options.watchers;
    log(`watch: ${options.watchers} watchers, ${events} events, ${received}/${expected} deliveries, p50 ${percentile(delays, 0.5).toFixed(1)} ms, p99 ${percentile(delays, 0.99).toFixed(1)} ms`);
    return {
      bench: 'api',
      seconds: options.seconds,
      offered_write_rate: options.rate,
      write_ops: round(writeOps, 0),
      write_p50_ms: round(percentile(writes.latencies, 0.5)),
      write_p99_ms: round(percentile(writes.latencies, 0.99)),
      write_errors: writes.errors,
      raw_put_ops: round(putOps, 0),
      raw_put_p99_ms: round(percentile(puts.latencies, 0.99)),
      get_ops: round(gets.latencies.length / gets.elapsed, 0),
      get_p99_ms: round(percentile(gets.latencies, 0.99)),
      list_ops: round(lists.latencies.length / lists.elapsed, 0),
      list_p99_ms: round(percentile(lists.latencies, 0.99)),
      watchers: options.watchers,
      watch_events: events,
      watch_deliveries: received,
      watch_deliveries_expected: expected,
      watch_delivery_p99_ms: round(percentile(delays, 0.99)),
    };
  } finally {
    for (const client of clients) client.close();
    await cluster.destroy();
  }
}
