// `mast scheduler` and `mast controller-manager`: a leader-elected
// component as a process of its own, a client of the masters (as
// kube-scheduler and kube-controller-manager are of the API server). It
// competes for the same Lease as the candidates inside the masters, so
// any mix of in-master and standalone candidates elects exactly one.

import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { CLIENT_FLAG_OPTIONS, ClientConfigError, clientSettingsFromFlags, loadClientConfig } from '../client/client-config.js';
import { startCandidate, COMPONENT_LEASES, type Component } from '../master/candidates.js';
import { parseDuration, parseLoadBalancerIpPool } from '../master/flags.js';
import { jsonLogger } from '../client/log.js';

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

const CONTROLLER_MANAGER_USAGE = `  --node-monitor-grace-period D  how long a node may go without a heartbeat before it is Ready=Unknown, e.g. 40s (default 40s)
  --load-balancer-ip-pool POOL   addresses LoadBalancer Services get their external IP from: comma-separated
                                 IPv4 CIDRs and/or ranges, e.g. 192.168.1.240/28,10.0.0.10-10.0.0.20
                                 (default: none, LoadBalancer Services stay pending)
`;

export function componentUsage(component: Component): string {
  const lease = COMPONENT_LEASES[component];
  return `usage: mast ${component} [flags]

Runs a ${component} candidate as a client of the masters: it acts while it
holds the Lease ${lease.namespace}/${lease.name}, and every write it makes
carries that Lease's fencing token.

flags:
  --server URL[,URL...]          the masters' client URLs (else $MAST_MASTERS, else the config file)
  --kubeconfig FILE              a mastctl config file (default $MASTCONFIG or ~/.mast/config)
  --certificate-authority FILE   CA bundle to verify https:// masters
  --client-certificate FILE      client certificate (with --client-key)
  --client-key FILE
  --token TOKEN                  bearer token
  --name NAME                    this candidate's name in the Lease's holderIdentity (default: the host name)
  --log-level LEVEL              debug, info, warn or error (default info); debug logs each bind with its commit revision
${component === 'controller-manager' ? CONTROLLER_MANAGER_USAGE : ''}`;
}

export async function runComponent(component: Component, argv: readonly string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...CLIENT_FLAG_OPTIONS,
        name: { type: 'string' },
        'log-level': { type: 'string' },
        ...(component === 'controller-manager' ? { 'node-monitor-grace-period': { type: 'string' as const }, 'load-balancer-ip-pool': { type: 'string' as const } } : {}),
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new ClientConfigError(`${error instanceof Error ? error.message : String(error)} (see \`mast ${component} --help\`)`);
  }
  if (values.help === true) {
    process.stdout.write(componentUsage(component));
    return;
  }
  const level = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new ClientConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${level}"`);
  const { masters, credentials } = loadClientConfig(clientSettingsFromFlags(values), process.env);
  const name = values.name ?? hostname();
  const grace = (values as { 'node-monitor-grace-period'?: string })['node-monitor-grace-period'];
  const nodeMonitorGracePeriodMs = grace === undefined ? undefined : parseDuration('node-monitor-grace-period', grace);
  const poolText = (values as { 'load-balancer-ip-pool'?: string })['load-balancer-ip-pool'];
  const loadBalancerIpPool = poolText === undefined ? undefined : parseLoadBalancerIpPool(poolText);
  const logger = jsonLogger(`${component}/${name}`, level as (typeof LOG_LEVELS)[number]);
  const running = startCandidate({
    endpoints: masters.map((url) => url.replace(/^https?:\/\//, '')),
    ...(credentials === undefined ? {} : { credentials }),
    identityPrefix: name,
    component,
    log: (line) => logger.info(line),
    ...(level === 'debug' ? { debug: (line: string) => logger.debug(line) } : {}),
    controllerManager: { ...(nodeMonitorGracePeriodMs === undefined ? {} : { nodeMonitorGracePeriodMs }), ...(loadBalancerIpPool === undefined ? {} : { loadBalancerIpPool }) },
  });
  logger.info(`${component} candidate started against ${masters.join(',')}`);
  const shutdown = (signal: string): void => {
    logger.info(`received ${signal}, shutting down`);
    setTimeout(() => process.exit(0), 900).unref();
    void running.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
