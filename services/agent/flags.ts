// `mast agent` flags: kubelet's names where kubelet has the setting.

import { homedir, hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CLIENT_FLAG_OPTIONS, clientSettingsFromFlags, type ClientSettings } from '../client/client-config.js';

export class AgentFlagError extends Error {
  override readonly name = 'AgentFlagError';
}

export interface AgentFlags {
  /** Where the masters are and how to authenticate, as mastctl and the components take them. */
  readonly client: ClientSettings;
  readonly nodeName: string;
  readonly nodeLabels: Readonly<Record<string, string>>;
  /** The node's InternalIP ("" = the first non-loopback IPv4 address, else 127.0.0.1). */
  readonly nodeIp: string;
  /** unix:///path of a CRI runtime; "" = start the embedded runtime (mast cri) under the root dir. */
  readonly runtimeEndpoint: string;
  readonly rootDir: string;
  /** The pod network range (Node spec.podCIDR; the embedded runtime's addresses come from it). */
  readonly podCidr: string;
  readonly maxPods: number;
  readonly clusterDns: readonly string[];
  readonly clusterDomain: string;
  /** host:port of the agent's own API (logs, exec) for the masters. */
  readonly listenAddress: string;
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile: string } | undefined;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly nodeStatusUpdateFrequencyMs: number;
  /** Extra image table for the embedded runtime (JSON file). */
  readonly imageTable: string;
  readonly hollow: boolean;
  /** The Service proxy's backend; 'auto' = nftables when usable (root, nft), else userspace. */
  readonly proxyMode: 'auto' | 'nftables' | 'ipvs' | 'userspace' | 'none';
  /** HOST:PORT of the proxy's /proxyMode, /healthz and /metrics ("" = not served). */
  readonly metricsBindAddress: string;
  readonly proxySyncPeriodMs: number;
  /** Where NodePorts answer (empty: the node IP). */
  readonly nodePortAddresses: readonly string[];
  /** HOST:PORT of the node's cluster DNS server ("" = the node IP, port DEFAULT_DNS_PORT; "none" = no DNS server). */
  readonly dnsBindAddress: string;
  /** Nameservers (IP or IP:PORT) for names outside the cluster domain (empty: /etc/resolv.conf's). */
  readonly dnsUpstream: readonly string[];
  /** nftables mode: the table the proxy owns ("" = mast). */
  readonly nftablesTable: string;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
}

export const DEFAULT_AGENT_PORT = 10250;
/** kube-proxy's metrics address. */
export const DEFAULT_PROXY_METRICS_ADDRESS = '127.0.0.1:10249';
/** The node's cluster DNS port (the proxy sends CLUSTER_DNS:53 there). */
export const DEFAULT_DNS_PORT = 10053;
/** The embedded runtime's default pod range: every 127/8 address reaches loopback, so pods need no network setup. */
export const DEFAULT_EMBEDDED_POD_CIDR = '127.10.0.0/16';

export function agentUsage(): string {
  return `usage: mast agent [flags]

Runs a node agent (the kubelet's role): registers the Node, heartbeats its
Lease, runs the pods bound to it through a CRI v1 runtime and reports their
status and usage. Without --container-runtime-endpoint it starts mast's
embedded runtime (mast cri: containers as plain host processes, no root).

masters:
  --server URL[,URL...]             the masters' client URLs (else $MAST_MASTERS, else the config file)
  --kubeconfig FILE                 a mastctl config file (default $MASTCONFIG or ~/.mast/config)
  --certificate-authority FILE      CA bundle to verify https:// masters
  --client-certificate FILE         client certificate (with --client-key), e.g. CN=system:node:NAME, O=system:nodes
  --client-key FILE
  --token TOKEN                     bearer token
node:
  --node-name NAME                  the Node's name (default: the host name)
  --node-labels K=V[,K=V...]        labels besides kubernetes.io/hostname, kubernetes.io/os and kubernetes.io/arch
  --node-ip IP                      the Node's InternalIP, where masters reach the agent (default: the host of
                                    --listen-address if it names one, else the first non-loopback IPv4, else 127.0.0.1)
  --max-pods N                      pods this node accepts (default 110)
  --root-dir DIR                    pod volumes, logs and the embedded runtime's state (default ~/.mast/agent/NODE)
runtime:
  --container-runtime-endpoint URL  unix:///path/to/containerd.sock (default: embedded mast cri at ROOT/cri.sock)
  --pod-cidr CIDR                   the pod network range (default ${DEFAULT_EMBEDDED_POD_CIDR} for the embedded runtime; with
                                    containerd, the range of its CNI config)
  --image-table FILE                embedded runtime: extra image → host command entries (JSON; see services/cri/README.md)
  --cluster-dns IP[,IP...]          nameservers for pods with dnsPolicy ClusterFirst (default: none, the host's)
  --cluster-domain DOMAIN           default cluster.local
  --crash-loop-backoff-initial D    first restart delay of a crashing container (default 10s)
  --crash-loop-backoff-max D        the delay doubles up to this (default 300s)
  --node-status-update-frequency D  how often the Node status is posted (default 10s)
  --hollow                          no runtime, no proxy: report every bound pod Running and Ready (scale tests)
service proxy and cluster DNS (kube-proxy's and the cluster DNS's roles):
  --proxy-mode MODE                 nftables, ipvs, userspace or none (default: nftables when running as root with
                                    a working nft, else userspace)
  --metrics-bind-address HOST:PORT  the proxy's /proxyMode, /healthz and /metrics (default ${DEFAULT_PROXY_METRICS_ADDRESS};
                                    "" = not served)
  --proxy-sync-period D             how often the programmed rules are verified and repaired (default 30s)
  --nodeport-addresses IP[,IP...]   addresses NodePorts answer on (default: the node IP)
  --nftables-table NAME             nftables mode: the table (family ip) the proxy owns (default mast)
  --dns-bind-address HOST:PORT      this node's cluster DNS server (default NODE_IP:${DEFAULT_DNS_PORT}; "none" = no server);
                                    with --cluster-dns, the proxy sends CLUSTER_DNS:53 (UDP and TCP) to it
  --dns-upstream ADDR[,ADDR...]     nameservers (IP or IP:PORT) for names outside the cluster domain
                                    (default: those of /etc/resolv.conf)
agent API (logs, exec):
  --listen-address HOST:PORT        default NODE_IP:${DEFAULT_AGENT_PORT} (port 0: any free port)
  --tls-cert-file FILE              serve TLS (with --tls-private-key-file and --client-ca-file: masters must
  --tls-private-key-file FILE       present a client certificate signed by that CA)
  --client-ca-file FILE
  --log-level LEVEL                 debug, info, warn or error (default info)
`;
}

/** "10s", "2m", "1h", "500ms" → milliseconds. */
function duration(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (match === null) throw new AgentFlagError(`--${flag}: "${value}" is not a duration (e.g. 10s, 5m, 500ms)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * scale);
}

function labels(value: string): Record<string, string> {
  const result: Record<string, string> = {};
  if (value === '') return result;
  for (const pair of value.split(',')) {
    const at = pair.indexOf('=');
    const key = at < 0 ? pair : pair.slice(0, at);
    if (at < 0 || !/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(key) || key.length > 316) {
      throw new AgentFlagError(`--node-labels: "${pair}" is not KEY=VALUE with a valid label key`);
    }
    const labelValue = pair.slice(at + 1);
    if (labelValue.length > 63 || !/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.test(labelValue)) throw new AgentFlagError(`--node-labels: "${labelValue}" is not a valid label value (for ${key})`);
    result[key] = labelValue;
  }
  return result;
}

function cidr(flag: string, value: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (match === null || match.slice(1, 5).some((octet) => Number(octet) > 255) || Number(match[5]) > 30 || Number(match[5]) < 8) {
    throw new AgentFlagError(`--${flag}: "${value}" is not an IPv4 CIDR between /8 and /30`);
  }
  return value;
}

function ipv4(flag: string, value: string): string {
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(value) || value.split('.').some((octet) => Number(octet) > 255)) throw new AgentFlagError(`--${flag}: "${value}" is not an IPv4 address`);
  return value;
}

function nftablesTable(value: string): string {
  if (value !== '' && !/^[A-Za-z][A-Za-z0-9_-]{0,31}$/.test(value)) throw new AgentFlagError(`--nftables-table: "${value}" is not a table name (a letter, then up to 31 of letters, digits, _ and -)`);
  return value;
}

export function parseAgentFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): AgentFlags | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...CLIENT_FLAG_OPTIONS,
        'node-name': { type: 'string' },
        'node-labels': { type: 'string' },
        'node-ip': { type: 'string' },
        'max-pods': { type: 'string' },
        'root-dir': { type: 'string' },
        'container-runtime-endpoint': { type: 'string' },
        'pod-cidr': { type: 'string' },
        'image-table': { type: 'string' },
        'cluster-dns': { type: 'string' },
        'cluster-domain': { type: 'string' },
        'crash-loop-backoff-initial': { type: 'string' },
        'crash-loop-backoff-max': { type: 'string' },
        'node-status-update-frequency': { type: 'string' },
        hollow: { type: 'boolean' },
        'proxy-mode': { type: 'string' },
        'metrics-bind-address': { type: 'string' },
        'proxy-sync-period': { type: 'string' },
        'nodeport-addresses': { type: 'string' },
        'dns-bind-address': { type: 'string' },
        'dns-upstream': { type: 'string' },
        'nftables-table': { type: 'string' },
        'listen-address': { type: 'string' },
        'tls-cert-file': { type: 'string' },
        'tls-private-key-file': { type: 'string' },
        'client-ca-file': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new AgentFlagError(`${error instanceof Error ? error.message : String(error)} (see \`mast agent --help\`)`);
  }
  if (values.help === true) return 'help';
  const nodeName = (values['node-name'] ?? hostname()).toLowerCase();
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(nodeName) || nodeName.length > 253) throw new AgentFlagError(`--node-name: "${nodeName}" is not a valid node name (lowercase letters, digits, '-' and '.')`);
  const maxPods = Number(values['max-pods'] ?? '110');
  if (!Number.isInteger(maxPods) || maxPods < 1) throw new AgentFlagError(`--max-pods: "${values['max-pods']}" is not a positive whole number`);
  const runtimeEndpoint = values['container-runtime-endpoint'] ?? '';
  if (runtimeEndpoint !== '' && !runtimeEndpoint.startsWith('unix://') && !isAbsolute(runtimeEndpoint)) {
    throw new AgentFlagError(`--container-runtime-endpoint: "${runtimeEndpoint}" is not unix:///path/to/socket`);
  }
  const rootDir = resolve(values['root-dir'] ?? join(env.HOME ?? homedir(), '.mast', 'agent', nodeName));
  const logLevel = values['log-level'] ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new AgentFlagError(`--log-level: "${logLevel}" is not debug, info, warn or error`);
  const tlsParts = [values['tls-cert-file'], values['tls-private-key-file'], values['client-ca-file']];
  if (tlsParts.some((part) => part !== undefined) && tlsParts.some((part) => part === undefined)) {
    throw new AgentFlagError('--tls-cert-file, --tls-private-key-file and --client-ca-file go together (masters must present a client certificate signed by the CA)');
  }
  const listenAddress = values['listen-address'] ?? '';
  if (listenAddress !== '' && !/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/.test(listenAddress)) throw new AgentFlagError(`--listen-address: "${listenAddress}" is not HOST:PORT`);
  // Masters reach the agent at the Node's InternalIP: a specific listen host is the node IP unless --node-ip says otherwise, and then they must agree.
  const listenHost = listenAddress === '' ? '' : listenAddress.slice(0, listenAddress.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const specificHost = listenHost !== '' && !['0.0.0.0', '::'].includes(listenHost) ? listenHost : '';
  const nodeIp = values['node-ip'] === undefined ? (specificHost === '' ? '' : ipv4('listen-address', specificHost)) : ipv4('node-ip', values['node-ip']);
  if (specificHost !== '' && specificHost !== nodeIp) {
    throw new AgentFlagError(`--listen-address ${listenAddress} does not listen on the node IP ${nodeIp}, where masters reach the agent: listen on ${nodeIp} or 0.0.0.0`);
  }
  const backoffInitialMs = duration('crash-loop-backoff-initial', values['crash-loop-backoff-initial'] ?? '10s');
  const backoffMaxMs = duration('crash-loop-backoff-max', values['crash-loop-backoff-max'] ?? '300s');
  if (backoffInitialMs <= 0 || backoffMaxMs < backoffInitialMs) throw new AgentFlagError('--crash-loop-backoff-max must be at least --crash-loop-backoff-initial, and both above 0');
  const proxyMode = values['proxy-mode'] ?? 'auto';
  if (!['auto', 'nftables', 'ipvs', 'userspace', 'none'].includes(proxyMode)) throw new AgentFlagError(`--proxy-mode: "${proxyMode}" is not nftables, ipvs, userspace or none`);
  const metricsBindAddress = values['metrics-bind-address'] ?? DEFAULT_PROXY_METRICS_ADDRESS;
  if (metricsBindAddress !== '' && !/^[^:\s]+:\d{1,5}$/.test(metricsBindAddress)) throw new AgentFlagError(`--metrics-bind-address: "${metricsBindAddress}" is not HOST:PORT`);
  const dnsBindAddress = values['dns-bind-address'] ?? '';
  if (dnsBindAddress !== '' && dnsBindAddress !== 'none' && !/^[^:\s]+:\d{1,5}$/.test(dnsBindAddress)) throw new AgentFlagError(`--dns-bind-address: "${dnsBindAddress}" is not HOST:PORT or none`);
  const proxySyncPeriodMs = duration('proxy-sync-period', values['proxy-sync-period'] ?? '30s');
  if (proxySyncPeriodMs < 1000) throw new AgentFlagError('--proxy-sync-period must be at least 1s');
  const dnsUpstream = (values['dns-upstream'] ?? '').split(',').filter((entry) => entry !== '');
  for (const entry of dnsUpstream) {
    const [ip = '', port] = entry.split(':');
    ipv4('dns-upstream', ip);
    if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) throw new AgentFlagError(`--dns-upstream: "${entry}" is not IP or IP:PORT`);
  }
  return {
    client: clientSettingsFromFlags(values),
    nodeName,
    nodeLabels: labels(values['node-labels'] ?? ''),
    nodeIp,
    runtimeEndpoint,
    rootDir,
    podCidr: cidr('pod-cidr', values['pod-cidr'] ?? (runtimeEndpoint === '' ? DEFAULT_EMBEDDED_POD_CIDR : '10.88.0.0/24')),
    maxPods,
    clusterDns: (values['cluster-dns'] ?? '').split(',').filter((ip) => ip !== '').map((ip) => ipv4('cluster-dns', ip)),
    clusterDomain: values['cluster-domain'] ?? 'cluster.local',
    listenAddress,
    tls: tlsParts.every((part) => part !== undefined) ? { certFile: tlsParts[0]!, keyFile: tlsParts[1]!, clientCaFile: tlsParts[2]! } : undefined,
    backoffInitialMs,
    backoffMaxMs,
    nodeStatusUpdateFrequencyMs: duration('node-status-update-frequency', values['node-status-update-frequency'] ?? '10s'),
    imageTable: values['image-table'] ?? '',
    hollow: values.hollow === true,
    proxyMode: proxyMode as AgentFlags['proxyMode'],
    metricsBindAddress,
    proxySyncPeriodMs,
    nodePortAddresses: (values['nodeport-addresses'] ?? '').split(',').filter((ip) => ip !== '').map((ip) => ipv4('nodeport-addresses', ip)),
    dnsBindAddress,
    dnsUpstream,
    nftablesTable: nftablesTable(values['nftables-table'] ?? ''),
    logLevel: logLevel as AgentFlags['logLevel'],
  };
}
