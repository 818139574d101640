// `mast up` (`npm start`): flags, the progress and summary it prints, and
// signals — SIGINT/SIGTERM/SIGHUP stop the cluster in order and exit 0; a
// second one kills every process at once. The cluster itself is
// services/launcher/up.ts; the hooks it needs from the agent side (stopping
// the embedded runtime's pods, nftables detection, the host's address) are
// made here.

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FlagError } from '../master/flags.js';
import { defaultInternalIP } from '../agent/node-status.js';
import { startCriServer } from '../cri/server.js';
import { DEFAULT_BASE_PORT, LocalUp, UpAborted, UpError, type RequestedSettings, type UpHooks, type UpRuntime, type UpSummary } from '../launcher/up.js';

/** A signal this soon after the first is the same Ctrl-C delivered twice (by the terminal and by npm), not a second one. */
const SIGNAL_REPEAT_MS = 1000;

export interface UpFlags {
  readonly dataDir: string;
  readonly requested: RequestedSettings;
  readonly fresh: boolean;
}

export function upUsage(): string {
  return `usage: mast up [flags]        (npm start -- [flags])

Starts a local cluster on this machine and keeps it running until Ctrl-C:
masters (scheduler and controllers on), node agents node-1, node-2, ... on the
embedded runtime (pods are host processes: no root needed), the Service proxy
(userspace: cluster IPs in 127.96.0.0/16 answer on this host) and the cluster
DNS server on node-1. Writes a mastctl config (~/.mast/config, or $MASTCONFIG,
unless a file there is your own) so \`mastctl get nodes\` needs no flags.
Ctrl-C stops the agents, their pods and the masters; the next \`mast up\`
starts the same cluster again from its data dir (flags are remembered there).
While it runs, a master or agent that dies is restarted after 5 s, and a new
leader is reported.
The masters serve plain http on 127.0.0.1 with --insecure: every client is an
admin. For a secured cluster, see \`mast init\`.

flags:
  --masters N                  1, 3 or 5 (default 3)
  --agents N                   node agents (default 2)
  --runtime RUNTIME            embedded (default) or containerd: real containers, one private containerd per
                               node with its own CNI bridge (needs root and ops/containerd/install.sh); the
                               nftables proxy then carries Services into pods
  --data-dir DIR               where the cluster lives (default ~/.mast/up)
  --fresh                      delete the data dir first (stopping what it left running): a new cluster
  --base-port PORT             master i's client port is PORT+10000·i, its peer port one more (mast init's
                               convention); the proxy status is PORT+${10_249 - DEFAULT_BASE_PORT} and the cluster DNS PORT+${10_053 - DEFAULT_BASE_PORT}
                               (default ${DEFAULT_BASE_PORT}: 2379/2380, 12379/12380, 22379/22380, 10249, 10053)
  --service-cluster-ip-range CIDR   Services' cluster IPs (default 127.96.0.0/16; containerd: 10.96.0.0/16)
  --pod-cidr CIDR              node-1's pod range; node i gets the i-th next range of its size (default
                               127.10.0.0/16, so 127.11.0.0/16 for node-2; containerd: 10.89.1.0/24)
  --load-balancer-ip-pool POOL LoadBalancer Services' addresses (default 127.97.0.0/24; containerd: 10.97.0.0/24)
  -h, --help

The ports, ranges, runtime and number of masters are fixed when the cluster is
made (DIR/up.json); --agents may change from one start to the next.
Logs: DIR/logs/NAME.log; pids: DIR/run/NAME.pid.
`;
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new FlagError(`--${flag}: ${JSON.stringify(value)} is not a whole number`);
  return Number(value);
}

export function parseUpFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): UpFlags | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        masters: { type: 'string' },
        agents: { type: 'string' },
        runtime: { type: 'string' },
        'data-dir': { type: 'string' },
        fresh: { type: 'boolean' },
        'base-port': { type: 'string' },
        'service-cluster-ip-range': { type: 'string' },
        'pod-cidr': { type: 'string' },
        'load-balancer-ip-pool': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new FlagError(`${error instanceof Error ? error.message : String(error)} (see \`mast up --help\`)`);
  }
  if (values.help === true) return 'help';
  const runtime = values.runtime;
  if (runtime !== undefined && runtime !== 'embedded' && runtime !== 'containerd') throw new FlagError(`--runtime: ${JSON.stringify(runtime)} is not embedded or containerd`);
  const requested: RequestedSettings = {};
  const masters = integer('masters', values.masters);
  if (masters !== undefined) requested.masters = masters;
  const agents = integer('agents', values.agents);
  if (agents !== undefined) requested.agents = agents;
  if (runtime !== undefined) requested.runtime = runtime as UpRuntime;
  const basePort = integer('base-port', values['base-port']);
  if (basePort !== undefined) requested.basePort = basePort;
  if (values['service-cluster-ip-range'] !== undefined) requested.serviceClusterIpRange = values['service-cluster-ip-range'];
  if (values['pod-cidr'] !== undefined) requested.podCidr = values['pod-cidr'];
  if (values['load-balancer-ip-pool'] !== undefined) requested.loadBalancerIpPool = values['load-balancer-ip-pool'];
  const dataDir = resolve(values['data-dir'] ?? join(env.HOME ?? homedir(), '.mast', 'up'));
  return { dataDir, requested, fresh: values.fresh === true };
}

const hooks: UpHooks = {
  async stopEmbeddedPods(agentRoot, podCidr) {
    // The agent has stopped; a runtime on its root adopts the containers still running and stops them.
    const runtime = await startCriServer({ socketPath: join(agentRoot, 'cri.sock'), rootDir: join(agentRoot, 'cri'), podCidr });
    try {
      await runtime.stopAllContainers(5);
    } finally {
      await runtime.close();
    }
  },
  async nftablesUsable() {
    // Loaded only here: it loads libnftables through koffi.
    const { nftablesUsable } = await import('../proxy/nftables.js');
    const result = await nftablesUsable();
    return result.usable ? { usable: true } : { usable: false, reason: result.reason };
  },
  hostIp() {
    const ip = defaultInternalIP();
    return ip === '127.0.0.1' ? '' : ip;
  },
};

/** An example manifest as the user can type it: relative to the working dir when it is there, else next to this build. */
function examplePath(name: string): string | undefined {
  const inWorkingDir = join('ops', 'examples', name);
  if (existsSync(inWorkingDir)) return inWorkingDir;
  const besideBuild = fileURLToPath(new URL(`../../../ops/examples/${name}`, import.meta.url));
  return existsSync(besideBuild) ? besideBuild : undefined;
}

/** Whether this user can listen on port 80 (the web example's Service port) with the userspace proxy. */
function canBindLowPorts(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim()) <= 80;
  } catch {
    return false;
  }
}

export function describeUp(summary: UpSummary, env: Readonly<Record<string, string | undefined>>): string {
  const { settings } = summary;
  const width = Math.max(...summary.masters.map((master) => master.clientUrl.length));
  const nodeIp = summary.dnsAddress.slice(0, summary.dnsAddress.lastIndexOf(':'));
  const lines = [
    '',
    `mast up: the cluster is ready (${(summary.elapsedMs / 1000).toFixed(1)} s). Ctrl-C stops it; \`npm start\` again resumes it.`,
    '',
    'masters (insecure: plain http on 127.0.0.1, every client is an admin; for a secured cluster see `mast init`):',
    ...summary.masters.map((master) => `  ${master.name}  ${master.clientUrl.padEnd(width)}  pid ${master.pid ?? '-'}${summary.leader?.name === master.name ? '  leader' : ''}`),
    `leader:   ${summary.leader === undefined ? '<none yet>' : `${summary.leader.name} ${summary.leader.clientUrl}`}`,
  ];
  if (summary.nodes.length === 0) lines.push('nodes:    none (--agents 0)');
  else {
    lines.push('nodes:', ...summary.nodes.map((node) => `  ${node.name}  pods in ${node.podCidr}, pid ${node.pid ?? '-'}${node.proxy ? `; runs the Service proxy and the cluster DNS` : ''}`));
    lines.push(
      `services: cluster IPs from ${settings.serviceClusterIpRange}${settings.proxyMode === 'userspace' ? ' (they answer on this host)' : ''}; node ports ${summary.nodePorts.low}-${summary.nodePorts.high} on ${nodeIp}; load balancers from ${settings.loadBalancerIpPool}`,
      `          proxy: ${settings.proxyMode} (${summary.proxyStatusUrl}/proxyMode); cluster DNS on ${summary.dnsAddress} (dig @${nodeIp} -p ${summary.dnsAddress.slice(nodeIp.length + 1)} web.default.svc.cluster.local)`,
      summary.clusterDns === undefined ? "          pods on the embedded runtime are host processes: they use the host's resolver" : `          pods resolve through ${summary.clusterDns}`,
    );
  }
  lines.push(`config:   ${summary.config.path}${summary.config.isDefault ? ' (mastctl reads it by default)' : ''}`);
  if (summary.config.kept !== undefined) lines.push(`          ${summary.config.kept} is your own, so it was left alone; point mastctl at the cluster with:`, `            export MASTCONFIG=${summary.config.path}`);
  if (env.MAST_MASTERS !== undefined && env.MAST_MASTERS !== '') lines.push('          note: $MAST_MASTERS is set and wins over the config file: unset MAST_MASTERS');
  lines.push(`logs:     ${join(summary.dataDir, 'logs')}/NAME.log (pids in ${join(summary.dataDir, 'run')}/NAME.pid)`, '', 'try:', '  npx mastctl get nodes');
  const examples = settings.runtime === 'embedded' ? [examplePath('web.yaml')] : [examplePath('web-containerd.yaml'), examplePath('web-service.yaml')];
  if (summary.nodes.length > 0 && examples.every((example) => example !== undefined)) {
    lines.push(
      ...examples.map((example, index) => `  npx mastctl apply -f ${example}${index === examples.length - 1 ? '     # web servers and a Service in front of them' : ''}`),
      '  npx mastctl rollout status deploy/web',
      '  npx mastctl get svc web                        # then: curl http://CLUSTER-IP/',
    );
    if (!canBindLowPorts()) lines.push('    (not root: the proxy cannot listen on port 80 here; curl http://127.0.0.1:NODE-PORT/ instead, or allow it: sysctl net.ipv4.ip_unprivileged_port_start=80)');
  }
  if (summary.masters.length > 1) {
    const leader = summary.leader?.name ?? 'm1';
    lines.push('  npx mastctl member list                        # which master leads', `  kill -9 $(cat ${join(summary.dataDir, 'run', `${leader}.pid`)})   # kill the leader (${leader} now): another takes over`);
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
}

export async function runUp(argv: readonly string[]): Promise<void> {
  const flags = parseUpFlags(argv, process.env);
  if (flags === 'help') {
    process.stdout.write(upUsage());
    return;
  }
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const up = new LocalUp({ dataDir: flags.dataDir, requested: flags.requested, fresh: flags.fresh, hooks, say, env: process.env });
  let stopping: Promise<void> | undefined;
  const stop = (reason: string, code: number): Promise<void> => {
    stopping ??= (async () => {
      if (reason !== '') say(reason);
      try {
        await up.stop();
        if (code === 0) say(`mast up: stopped; the cluster's data stays in ${flags.dataDir} (\`mast up\` resumes it, --fresh starts over)`);
      } catch (error) {
        say(`mast up: stopping failed: ${error instanceof Error ? error.message : String(error)}`);
        code = 1;
      }
      process.exit(code);
    })();
    return stopping;
  };
  let firstSignalMs = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    // `npm start` forwards the terminal's Ctrl-C to us, which the terminal sent us too: a repeat within a moment is that same one.
    if (stopping !== undefined && performance.now() - firstSignalMs < SIGNAL_REPEAT_MS) return;
    if (stopping !== undefined) {
      const killed = up.kill();
      say(`mast up: ${signal} again: killed ${killed} process${killed === 1 ? '' : 'es'}; pods still running are adopted by the next mast up`);
      process.exit(130);
    }
    firstSignalMs = performance.now();
    void stop(`\nmast up: ${signal}: stopping the cluster (${signal} again to force)`, 0);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  try {
    const summary = await up.start();
    process.stdout.write(describeUp(summary, process.env));
  } catch (error) {
    if (error instanceof UpAborted) return; // stop() is under way and exits
    const message = error instanceof UpError || error instanceof FlagError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`mast up: ${message}\n`);
    await stop('', 1);
  }
}
