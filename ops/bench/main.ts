// npm run bench -- NAME [flags]: runs one benchmark; its last line of output
// is one JSON object with the figures.

import { parseArgs } from 'node:util';
import { benchScheduler } from './scheduler.js';
import { benchApi } from './api.js';
import { benchCrash } from './crash.js';
import { benchKv } from './kv.js';
import { benchPods } from './pods.js';
import { benchProxy } from './proxy.js';

const USAGE = `usage: npm run bench -- NAME [flags]

benchmarks:
  kv      etcd v3 load on 3 masters (and on etcd when installed)
          --seconds N (10) per load case, --kills N (5) failovers, --no-etcd
  crash   kill -9 masters at random points of a write load; count lost writes
          --points N (1000), --seed N (1)
  api     the resource API on 3 masters: writes at a rate, gets, lists, watchers
          --seconds N (10), --rate N (1000) writes/s offered, --watchers N (1000)
  scheduler  hollow nodes and pending pods on 3 masters, then one leader-elected
          scheduler binds them all: pods/s end to end
          --nodes N (1000), --pods N (10000), --kills N (5) failovers of the
          master hosting the active scheduler (and controller-manager),
          --stale-rounds N (3) SIGSTOP/SIGCONT rounds of the active scheduler
  pods    pod startup latency on one agent: --pods N (50) created at --rate N (5)
          pods/s, creation accepted → Running as the API reports it, p50/p99;
          then N created at once, wall time; --runtime containerd (default:
          root and ops/containerd/install.sh) or embedded; --masters 1|3|5 (3)
  proxy   the nftables Service proxy (needs root): --services N (1000) with
          --endpoints N (10) each, through the real API; full sync (median of
          the first and --full-syncs N (5) more) and --changes N (30) endpoint
          changes, Endpoints event seen → applied
`;

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  switch (name) {
    case 'kv': {
      const { values } = parseArgs({ args: rest, options: { seconds: { type: 'string', default: '10' }, kills: { type: 'string', default: '5' }, 'no-etcd': { type: 'boolean', default: false } } });
      const result = await benchKv({ seconds: Number(values.seconds), kills: Number(values.kills), etcd: !values['no-etcd'] }, log);
      log(JSON.stringify(result));
      return;
    }
    case 'api': {
      const { values } = parseArgs({ args: rest, options: { seconds: { type: 'string', default: '10' }, rate: { type: 'string', default: '1000' }, watchers: { type: 'string', default: '1000' } } });
      const result = await benchApi({ seconds: Number(values.seconds), rate: Number(values.rate), watchers: Number(values.watchers) }, log);
      log(JSON.stringify(result));
      return;
    }
    case 'scheduler': {
      const { values } = parseArgs({ args: rest, options: { nodes: { type: 'string', default: '1000' }, pods: { type: 'string', default: '10000' }, kills: { type: 'string', default: '5' }, 'stale-rounds': { type: 'string', default: '3' } } });
      const result = await benchScheduler({ nodes: Number(values.nodes), pods: Number(values.pods), kills: Number(values.kills), staleRounds: Number(values['stale-rounds']) }, log);
      log(JSON.stringify(result));
      return;
    }
    case 'pods': {
      const { values } = parseArgs({ args: rest, options: { pods: { type: 'string', default: '50' }, rate: { type: 'string', default: '5' }, runtime: { type: 'string', default: 'containerd' }, masters: { type: 'string', default: '3' } } });
      if (values.runtime !== 'containerd' && values.runtime !== 'embedded') throw new Error(`--runtime must be containerd or embedded, not ${JSON.stringify(values.runtime)}`);
      const masters = Number(values.masters);
      if (![1, 3, 5].includes(masters)) throw new Error(`--masters must be 1, 3 or 5, not ${JSON.stringify(values.masters)}`);
      const result = await benchPods({ runtime: values.runtime, pods: Number(values.pods), rate: Number(values.rate), masters }, log);
      log(JSON.stringify(result));
      return;
    }
    case 'proxy': {
      const { values } = parseArgs({ args: rest, options: { services: { type: 'string', default: '1000' }, endpoints: { type: 'string', default: '10' }, changes: { type: 'string', default: '30' }, 'full-syncs': { type: 'string', default: '5' } } });
      const result = await benchProxy({ services: Number(values.services), endpoints: Number(values.endpoints), changes: Number(values.changes), fullSyncs: Number(values['full-syncs']) }, log);
      log(JSON.stringify(result));
      return;
    }
    case 'crash': {
      const { values } = parseArgs({ args: rest, options: { points: { type: 'string', default: '1000' }, seed: { type: 'string', default: '1' } } });
      const result = await benchCrash(Number(values.points), Number(values.seed), log);
      log(JSON.stringify(result));
      if (result.lost !== 0) process.exitCode = 1;
      return;
    }
    default:
      process.stderr.write(name === undefined ? USAGE : `unknown benchmark ${JSON.stringify(name)}\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
