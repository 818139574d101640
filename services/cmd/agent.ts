// `mast agent`: a node agent as a process (services/agent). Without
// --container-runtime-endpoint it starts mast's embedded runtime (mast cri)
// in the same process, on ROOT/cri.sock with its state under ROOT/cri, so a
// laptop needs nothing else; with --hollow it runs no pods at all (a
// HollowNode, for scale tests). Beside the pods it runs the node's Service
// proxy and cluster DNS (services/proxy), unless --proxy-mode none.
// SIGTERM/SIGINT stop the agent and leave pods running (a restarted agent
// adopts them), as a kubelet restart does; the proxy's kernel rules stay
// too, as kube-proxy's do.

import { join } from 'node:path';
import { loadClientConfig } from '../client/client-config.js';
import { ResourceClient } from '../client/resources.js';
import { Agent } from '../agent/agent.js';
import { connectCri } from '../agent/cri.js';
import { agentUsage, DEFAULT_AGENT_PORT, DEFAULT_DNS_PORT, parseAgentFlags, type AgentFlags } from '../agent/flags.js';
import { HollowNode } from '../agent/hollow.js';
import { defaultInternalIP } from '../agent/node-status.js';
import { startCriServer } from '../cri/server.js';
import { jsonLogger } from '../client/log.js';
import { startServiceProxy, type ServiceProxy } from '../proxy/service-proxy.js';
import type { ProxyGauge, ProxyHistogram } from '../proxy/status-server.js';

export async function runAgentCommand(argv: readonly string[]): Promise<void> {
  const flags = parseAgentFlags(argv, process.env);
  if (flags === 'help') {
    process.stdout.write(agentUsage());
    return;
  }
  const { masters, credentials } = loadClientConfig(flags.client, process.env);
  const logger = jsonLogger(`agent/${flags.nodeName}`, flags.logLevel);
  const log = (line: string): void => logger.info(line);
  const client = new ResourceClient({ endpoints: masters, ...(credentials === undefined ? {} : { credentials }) });
  const nodeIp = flags.nodeIp === '' ? defaultInternalIP() : flags.nodeIp;

  if (flags.hollow) {
    const hollow = new HollowNode({ client, name: flags.nodeName, labels: flags.nodeLabels, log });
    await hollow.start();
    log(`hollow node ${flags.nodeName} started against ${masters.join(',')}`);
    onSignal(logger, async () => {
      hollow.stop();
      client.close();
    });
    return;
  }

  const embedded =
    flags.runtimeEndpoint === ''
      ? await startCriServer({ socketPath: join(flags.rootDir, 'cri.sock'), rootDir: join(flags.rootDir, 'cri'), podCidr: flags.podCidr, ...(flags.imageTable === '' ? {} : { imageTable: flags.imageTable }), log: logger })
      : undefined;
  const runtime = connectCri(embedded === undefined ? flags.runtimeEndpoint : `unix://${embedded.socketPath}`);
  const agent = new Agent({
    client,
    runtime,
    nodeName: flags.nodeName,
    nodeIp,
    nodeLabels: flags.nodeLabels,
    rootDir: flags.rootDir,
    podCidr: flags.podCidr,
    maxPods: flags.maxPods,
    clusterDns: flags.clusterDns,
    clusterDomain: flags.clusterDomain,
    listenAddress: flags.listenAddress === '' ? `${nodeIp}:${DEFAULT_AGENT_PORT}` : flags.listenAddress,
    tls: flags.tls,
    backoffInitialMs: flags.backoffInitialMs,
    backoffMaxMs: flags.backoffMaxMs,
    nodeStatusUpdateFrequencyMs: flags.nodeStatusUpdateFrequencyMs,
    // The embedded runtime runs host processes: it has no cgroups to parent pods to.
    ...(embedded === undefined ? {} : { cgroupRoot: '' }),
    log,
  });
  try {
    await agent.start();
  } catch (error) {
    await agent.stop().catch(() => undefined);
    runtime.close();
    await embedded?.close();
    client.close();
    throw error;
  }
  let proxy: ServiceProxy | undefined;
  try {
    proxy = await startProxy(flags, client, nodeIp, log, agentMetrics(agent));
  } catch (error) {
    await agent.stop().catch(() => undefined);
    runtime.close();
    await embedded?.close();
    client.close();
    throw error;
  }
  onSignal(logger, async () => {
    await proxy?.stop();
    await agent.stop();
    runtime.close();
    await embedded?.close();
    client.close();
  });
}

/** The agent's own metrics, served with the proxy's on --metrics-bind-address (kubelet's, under mast_agent_ names). */
function agentMetrics(agent: Agent): { gauges: ProxyGauge[]; histograms: ProxyHistogram[] } {
  const gauge = (name: string, kind: 'gauge' | 'counter', help: string, read: (metrics: ReturnType<Agent['metrics']>) => number): ProxyGauge => ({ name, kind, help, read: () => read(agent.metrics()) });
  return {
    gauges: [
      gauge('mast_agent_pods', 'gauge', 'Pods bound to this node that the agent runs or is stopping', (metrics) => metrics.pods),
      gauge('mast_agent_running_pods', 'gauge', 'Pods whose reported phase is Running', (metrics) => metrics.runningPods),
      gauge('mast_agent_container_restarts', 'gauge', 'Restarts of the containers of the pods here, summed', (metrics) => metrics.containerRestarts),
      gauge('mast_agent_pod_status_updates_total', 'counter', 'Pod status updates the masters accepted', (metrics) => metrics.statusUpdates),
      gauge('mast_agent_pod_status_update_failures_total', 'counter', 'Pod status updates that failed (and were retried)', (metrics) => metrics.statusUpdateFailures),
    ],
    histograms: [{ name: 'mast_agent_pod_start_duration_seconds', help: 'From the agent first seeing a pod to its status update saying Running', subscribe: (record) => agent.onPodStarted(record) }],
  };
}

function startProxy(flags: AgentFlags, client: ResourceClient, nodeIp: string, log: (line: string) => void, extraMetrics: { gauges: ProxyGauge[]; histograms: ProxyHistogram[] }): Promise<ServiceProxy | undefined> {
  if (flags.proxyMode === 'none') return Promise.resolve(undefined);
  const dnsAddress = flags.dnsBindAddress === '' ? `${nodeIp}:${DEFAULT_DNS_PORT}` : flags.dnsBindAddress;
  const dnsHost = dnsAddress.slice(0, dnsAddress.lastIndexOf(':'));
  return startServiceProxy({
    client,
    mode: flags.proxyMode,
    nodeIPs: flags.nodePortAddresses.length > 0 ? flags.nodePortAddresses : [nodeIp],
    ...(flags.nftablesTable === '' ? {} : { nftablesTable: flags.nftablesTable }),
    statusAddress: flags.metricsBindAddress,
    extraMetrics,
    syncPeriodMs: flags.proxySyncPeriodMs,
    ...(flags.dnsBindAddress === 'none'
      ? {}
      : { dns: { host: dnsHost, port: Number(dnsAddress.slice(dnsAddress.lastIndexOf(':') + 1)), clusterDnsIPs: flags.clusterDns, nodeIP: nodeIp, clusterDomain: flags.clusterDomain, upstreams: flags.dnsUpstream } }),
    log,
  });
}

function onSignal(logger: { info(message: string): void }, stop: () => Promise<void>): void {
  const shutdown = (signal: string): void => {
    logger.info(`received ${signal}, stopping the agent (pods keep running)`);
    setTimeout(() => process.exit(0), 5000).unref();
    void stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

