// `npm run bench -- proxy`: the nftables Service proxy at scale. One master
// holds --services Services with --endpoints ready addresses each; a
// Proxier (the loop `mast agent` runs) watches them through the real API
// and programs an nftables backend inside a network namespace the bench
// creates (so the host's rules are untouched). Figures:
// - full sync: the first sync through the loop, then --full-syncs more
//   direct syncs of the same rules (the table replaced atomically each
//   time); the median.
// - endpoint change: --changes times, one address of one Service's
//   Endpoints is replaced through the API; from the loop seeing the
//   Endpoints event to the backend having applied it (the loop's own
//   measure, mast_proxy_network_programming_duration_seconds); median,
//   p99, max.
// Needs root and nft. Last line: {"bench":"proxy","services",
// "endpoints_per_service","full_sync_ms","endpoint_change_ms", ...}.

import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { NftablesBackend, nftablesUsable } from '../../services/proxy/nftables.js';
import { Proxier, type ApplyRecord } from '../../services/proxy/proxier.js';
import { inParallel } from './parallel.js';

export interface ProxyBenchOptions {
  readonly services: number;
  readonly endpoints: number;
  readonly changes: number;
  readonly fullSyncs: number;
}

const NAMESPACE = 'bench';

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The address of endpoint `index` of Service `service` (10.64.0.0/10: room for 4M). */
function endpointIp(service: number, index: number, generation = 0): string {
  const value = service * 64 + index + generation * 16;
  return `10.${64 + Math.floor(value / 65536)}.${Math.floor(value / 256) % 256}.${value % 256}`;
}

function endpointsObject(service: number, count: number, generation = 0): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: `svc-${service}`, namespace: NAMESPACE },
    subsets: [{ addresses: Array.from({ length: count }, (_, index) => ({ ip: endpointIp(service, index, index === 0 ? generation : 0) })), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }],
  } as KubeObject;
}

export async function benchProxy(options: ProxyBenchOptions, log: (line: string) => void): Promise<Record<string, unknown>> {
  const usable = await nftablesUsable();
  if (!usable.usable) throw new Error(`the proxy bench programs nftables: ${usable.reason}`);
  const netns = `mast-bench-proxy-${process.pid}`;
  const baseDir = join(tmpdir(), `mast-bench-proxy-${process.pid}`);
  execFileSync('ip', ['netns', 'add', netns]);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient | undefined;
  let proxier: Proxier | undefined;
  try {
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    log(`starting a master in ${baseDir}; nftables in network namespace ${netns}`);
    cluster = await LocalCluster.start({ size: 1, baseDir });
    client = new ResourceClient({ endpoints: cluster.endpoints, timeoutMs: 30_000 });
    await waitForNamespace(client, 'default');
    await client.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    let started = performance.now();
    const api = client;
    await inParallel(options.services, 50, async (index) => {
      await api.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${index}`, namespace: NAMESPACE }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
      await api.create('Endpoints', endpointsObject(index, options.endpoints));
    });
    log(`${options.services} Services with ${options.endpoints} endpoints each written in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const backend = new NftablesBackend({ nodeIPs: ['10.255.0.1'], table: 'mast_bench', netns, log });
    const applies: ApplyRecord[] = [];
    let applied: (() => void) | undefined;
    proxier = new Proxier({ client, backend, syncPeriodMs: 0, log });
    proxier.onApply((record) => {
      applies.push(record);
      applied?.();
    });
    started = performance.now();
    await proxier.start();
    const first = applies[0];
    if (first === undefined || !first.ok || first.servicePorts !== options.services) throw new Error(`the first sync did not program ${options.services} service ports: ${JSON.stringify(first)}`);
    log(`first sync through the loop: ${first.durationMs.toFixed(0)} ms (${first.backends} backends), ${(performance.now() - started).toFixed(0)} ms from start including the initial list`);

    const fullSyncs = [first.durationMs];
    for (let round = 0; round < options.fullSyncs; round++) {
      const at = performance.now();
      await backend.sync(proxier.appliedRules);
      fullSyncs.push(performance.now() - at);
    }
    fullSyncs.sort((a, b) => a - b);
    log(`full syncs (ms): ${fullSyncs.map((ms) => ms.toFixed(0)).join(' ')}`);

    const changes: number[] = [];
    const backendTimes: number[] = [];
    for (let round = 1; round <= options.changes; round++) {
      const service = (round * 37) % options.services;
      const seen = applies.length;
      const done = new Promise<void>((resolve) => (applied = () => applies.length > seen && applies.at(-1)!.kind === 'partial' && resolve()));
      await client.update('Endpoints', endpointsObject(service, options.endpoints, round));
      await done;
      const record = applies.at(-1)!;
      if (!record.ok || record.programmingMs === undefined) throw new Error(`endpoint change ${round} failed to apply: ${JSON.stringify(record)}`);
      changes.push(record.programmingMs);
      backendTimes.push(record.durationMs);
    }
    changes.sort((a, b) => a - b);
    log(`endpoint changes (ms, sorted): ${changes.map((ms) => ms.toFixed(1)).join(' ')}`);
    backendTimes.sort((a, b) => a - b);
    log(`of which in the backend (ms, sorted): ${backendTimes.map((ms) => ms.toFixed(1)).join(' ')}`);
    const verified = await backend.verify();
    if (!verified) throw new Error('the table does not match the applied rules after the changes');
    return {
      bench: 'proxy',
      services: options.services,
      endpoints_per_service: options.endpoints,
      full_sync_ms: Math.round(percentile(fullSyncs, 50)),
      full_sync_max_ms: Math.round(fullSyncs.at(-1)!),
      endpoint_change_ms: Number(percentile(changes, 50).toFixed(1)),
      endpoint_change_p99_ms: Number(percentile(changes, 99).toFixed(1)),
      endpoint_change_max_ms: Number(changes.at(-1)!.toFixed(1)),
      endpoint_changes: changes.length,
    };
  } finally {
    await proxier?.stop({ removeRules: true }).catch(() => undefined);
    client?.close();
    await cluster?.destroy().catch(() => undefined);
    try {
      execFileSync('ip', ['netns', 'delete', netns]);
    } catch {
      // Already gone.
    }
    rmSync(baseDir, { recursive: true, force: true });
  }
}
