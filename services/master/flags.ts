// `mast master` flags: etcd's names and meanings, so operators' habits carry
// over. Every flag is documented in README.md ("mast master flags").

import { IpPoolError, parseIpPool, type IpPool } from '../controllers/loadbalancer/reconcile.js';

export class FlagError extends Error {
  override readonly name = 'FlagError';
}

export interface MasterFlags {
  readonly name: string;
  readonly dataDir: string;
  readonly listenPeerUrls: readonly string[];
  readonly listenClientUrls: readonly string[];
  readonly initialAdvertisePeerUrls: readonly string[];
  readonly advertiseClientUrls: readonly string[];
  readonly initialCluster: string;
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly snapshotCount: number;
  readonly snapshotCatchUpEntries: number;
  readonly maxRequestBytes: number;
  readonly requestTimeoutMs: number;
  readonly watchProgressNotifyIntervalMs: number;
  readonly watchBookmarkIntervalMs: number;
  readonly maxObjectBytes: number;
  readonly serviceClusterIpRange: string;
  readonly serviceNodePortRange: readonly [number, number];
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustedCaFile: string;
  readonly clientCertAuth: boolean;
  readonly peerCertFile: string;
  readonly peerKeyFile: string;
  readonly peerTrustedCaFile: string;
  readonly peerClientCertAuth: boolean;
  /** TLS to node agents (pods/log, pods/exec): the client certificate and key this master presents, and the agents' CA. */
  readonly agentClientCertificate: string;
  readonly agentClientKey: string;
  readonly agentCertificateAuthority: string;
  /** How long Events are kept after they last happened. */
  readonly eventTtlMs: number;
  /** Whether this master runs a (leader-elected) scheduler candidate. */
  readonly scheduler: boolean;
  /** Whether this master runs a (leader-elected) controller-manager candidate. */
  readonly controllers: boolean;
  /** Controller-manager: how long a node may go without a heartbeat before it is Ready=Unknown and tainted. */
  readonly nodeMonitorGracePeriodMs: number;
  /** Controller-manager: the addresses LoadBalancer Services get; undefined: none (they stay pending). */
  readonly loadBalancerIpPool: IpPool | undefined;
  /** Kubernetes' static token file; empty: no bearer tokens. */
  readonly tokenAuthFile: string;
  /** The CA joins are signed with (default --trusted-ca-file) and its key ('' = this master signs no joins). */
  readonly clusterSigningCertFile: string;
  readonly clusterSigningKeyFile: string;
  /** No authentication or authorization at all (every client is an admin). */
  readonly insecure: boolean;
  /** Where Prometheus metrics are served (at most one URL). */
  readonly listenMetricsUrls: readonly string[];
  readonly tracesExporter: 'none' | 'console' | 'otlp';
  readonly otlpTracesEndpoint: string;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly autoCompactionMode: 'periodic' | 'revision';
  /** Milliseconds (periodic) or revisions (revision); 0: off. */
  readonly autoCompactionRetention: number;
}

interface FlagSpec {
  readonly kind: 'string' | 'int' | 'bool' | 'urls';
  readonly help: string;
}

/** Every flag `mast master` accepts, with its help text (also what README lists). */
export const MASTER_FLAGS: Readonly<Record<string, FlagSpec>> = {
  name: { kind: 'string', help: 'human-readable name of this member (default "default")' },
  'data-dir': { kind: 'string', help: 'directory for the Raft log, snapshots and state (default "NAME.mast")' },
  'listen-peer-urls': { kind: 'urls', help: 'URLs to listen on for other masters (default http://localhost:2380)' },
  'listen-client-urls': { kind: 'urls', help: 'URLs to listen on for clients (default http://localhost:2379)' },
  'initial-advertise-peer-urls': { kind: 'urls', help: "this member's peer URLs as the others reach them (default: --listen-peer-urls)" },
  'advertise-client-urls': { kind: 'urls', help: "this member's client URLs as clients reach them (default: --listen-client-urls)" },
  'initial-cluster': { kind: 'string', help: 'founding members, NAME=PEER_URL,... (default NAME=first initial-advertise-peer-url)' },
  'initial-cluster-state': { kind: 'string', help: '"new" to found a cluster, "existing" to join one (after `member add`) (default "new")' },
  'initial-cluster-token': { kind: 'string', help: 'cluster token: member and cluster ids derive from it (default "mast-cluster")' },
  'heartbeat-interval': { kind: 'int', help: 'milliseconds between leader heartbeats (the Raft tick is a fifth of it) (default 50)' },
  'election-timeout': { kind: 'int', help: 'milliseconds without a leader before a follower campaigns (randomized up to twice this) (default 250)' },
  'snapshot-count': { kind: 'int', help: 'applied entries between snapshots; the log before a snapshot is compacted (default 10000)' },
  'snapshot-catchup-entries': { kind: 'int', help: 'entries kept behind a snapshot for slightly lagging followers (default 5000)' },
  'max-request-bytes': { kind: 'int', help: 'largest client request accepted, in bytes (default 1572864)' },
  'request-timeout': { kind: 'int', help: 'milliseconds a write or linearizable read may wait for the cluster (default 5000)' },
  'watch-progress-notify-interval': { kind: 'int', help: 'milliseconds between progress notifications to watchers that asked (default 600000)' },
  'watch-bookmark-interval': { kind: 'int', help: 'resource API: milliseconds of quiet before a watcher that allows bookmarks gets one (default 5000)' },
  'max-object-bytes': { kind: 'int', help: 'resource API: largest object stored, in bytes of JSON (default 1048576)' },
  'service-cluster-ip-range': { kind: 'string', help: 'resource API: CIDR Services get cluster IPs from (default 10.96.0.0/12)' },
  'service-node-port-range': { kind: 'string', help: 'resource API: node ports for NodePort/LoadBalancer Services, LOW-HIGH (default 30000-32767)' },
  'cert-file': { kind: 'string', help: 'TLS certificate for https:// client URLs' },
  'key-file': { kind: 'string', help: 'TLS key for https:// client URLs' },
  'trusted-ca-file': { kind: 'string', help: 'CA bundle to verify client certificates (with --client-cert-auth)' },
  'client-cert-auth': { kind: 'bool', help: 'require clients to present a certificate signed by --trusted-ca-file' },
  'peer-cert-file': { kind: 'string', help: 'TLS certificate for https:// peer URLs (server and client side)' },
  'peer-key-file': { kind: 'string', help: 'TLS key for https:// peer URLs' },
  'peer-trusted-ca-file': { kind: 'string', help: 'CA bundle to verify other masters' },
  'peer-client-cert-auth': { kind: 'bool', help: 'require other masters to present a certificate signed by --peer-trusted-ca-file' },
  'agent-client-certificate': { kind: 'string', help: 'pods/log and pods/exec: TLS client certificate this master presents to node agents (with --agent-client-key; absent: plain connections)' },
  'agent-client-key': { kind: 'string', help: 'pods/log and pods/exec: key of --agent-client-certificate' },
  'agent-certificate-authority': { kind: 'string', help: 'pods/log and pods/exec: CA bundle that signed the agents\' serving certificates' },
  scheduler: { kind: 'bool', help: 'run a scheduler candidate in this master: the one holding the kube-system/kube-scheduler Lease binds pods (default true; --scheduler=false to leave scheduling to others)' },
  controllers: { kind: 'bool', help: 'run a controller-manager candidate in this master: the one holding the kube-system/kube-controller-manager Lease runs the controllers (default true)' },
  'node-monitor-grace-period': { kind: 'string', help: 'controller-manager: how long a node may go without a heartbeat (its Lease) before it is marked Ready=Unknown and tainted unreachable, e.g. 40s (default 40s)' },
  'load-balancer-ip-pool': { kind: 'string', help: 'controller-manager: addresses LoadBalancer Services get their external IP from, comma-separated IPv4 CIDRs and/or ranges, e.g. 192.168.1.240/28,10.0.0.10-10.0.0.20 (CIDRs wider than /31 without their network and broadcast address) (default: none, LoadBalancer Services stay pending)' },
  'event-ttl': { kind: 'string', help: 'resource API: how long Events are kept after they last happened, e.g. 30m, 1h (default 1h)' },
  'token-auth-file': { kind: 'string', help: 'bearer tokens of users: CSV lines token,user,uid[,"group1,group2"] (Kubernetes\' format; mast init writes one)' },
  'cluster-signing-cert-file': { kind: 'string', help: 'joins: the CA certificate joining agents\' and masters\' certificates are signed with (default --trusted-ca-file)' },
  'cluster-signing-key-file': { kind: 'string', help: 'joins: the key of that CA (mast init\'s ca.key); without it this master answers joins with an error' },
  insecure: { kind: 'bool', help: 'no authentication or authorization: every client is a cluster admin (for local tries; required to serve http:// client URLs)' },
  'listen-metrics-urls': { kind: 'string', help: 'http://HOST:PORT to serve Prometheus metrics at /metrics (default: none)' },
  'traces-exporter': { kind: 'string', help: 'where OpenTelemetry spans go: none, console or otlp (default none)' },
  'otlp-traces-endpoint': { kind: 'string', help: 'OTLP/HTTP URL for --traces-exporter=otlp (default http://127.0.0.1:4318/v1/traces)' },
  'log-level': { kind: 'string', help: 'debug, info, warn or error (default info); debug also audits every write the in-master scheduler and controller-manager get accepted (revision and fencing token)' },
  'auto-compaction-mode': { kind: 'string', help: '"periodic" (keep a span of time) or "revision" (keep a number of revisions) (default periodic)' },
  'auto-compaction-retention': { kind: 'string', help: 'periodic: a duration such as 30m or 1h (a bare number is hours); revision: a count; 0 turns it off (default 0)' },
};

type Raw = Map<string, string>;

function readRaw(argv: readonly string[]): Raw {
  const raw: Raw = new Map();
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i]!;
    if (!argument.startsWith('-')) throw new FlagError(`unexpected argument ${JSON.stringify(argument)}: mast master takes only --flags`);
    const body = argument.replace(/^--?/, '');
    const equals = body.indexOf('=');
    const name = equals >= 0 ? body.slice(0, equals) : body;
    const spec = MASTER_FLAGS[name];
    if (spec === undefined) throw new FlagError(`unknown flag --${name} (see \`mast master --help\`)`);
    let value: string;
    if (equals >= 0) value = body.slice(equals + 1);
    else if (spec.kind === 'bool') value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new FlagError(`flag --${name} needs a value`);
      value = next;
      i++;
    }
    raw.set(name, value);
  }
  return raw;
}

function parseUrls(name: string, value: string): string[] {
  const urls = value.split(',').map((url) => url.trim()).filter((url) => url !== '');
  if (urls.length === 0) throw new FlagError(`--${name} is empty`);
  for (const url of urls) {
    if (!/^https?:\/\/[^/\s:]+:\d+\/?$/.test(url) && !/^https?:\/\/\[[0-9a-fA-F:]+\]:\d+\/?$/.test(url)) {
      throw new FlagError(`--${name}: ${JSON.stringify(url)} is not http(s)://host:port`);
    }
  }
  return urls;
}

function parseInt(name: string, value: string, min: number): number {
  if (!/^\d+$/.test(value)) throw new FlagError(`--${name}: ${JSON.stringify(value)} is not a whole number`);
  const parsed = Number(value);
  if (parsed < min) throw new FlagError(`--${name}: ${parsed} is below the minimum ${min}`);
  return parsed;
}

function parseBool(name: string, value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new FlagError(`--${name}: ${JSON.stringify(value)} is not true or false`);
}

export function parseMasterFlags(argv: readonly string[]): MasterFlags {
  const raw = readRaw(argv);
  const text = (name: string, fallback: string): string => raw.get(name) ?? fallback;
  const cidr = (value: string): string => {
    const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
    if (match === null || match.slice(1, 5).some((octet) => Number(octet) > 255) || Number(match[5]) < 8 || Number(match[5]) > 30) {
      throw new FlagError(`--service-cluster-ip-range: ${JSON.stringify(value)} is not an IPv4 CIDR with a prefix of /8 to /30`);
    }
    return value;
  };
  const portRange = (value: string): readonly [number, number] => {
    const match = /^(\d+)-(\d+)$/.exec(value);
    const [low, high] = [Number(match?.[1]), Number(match?.[2])];
    if (match === null || low < 1 || high > 65535 || low > high) throw new FlagError(`--service-node-port-range: ${JSON.stringify(value)} is not LOW-HIGH within 1-65535`);
    return [low, high];
  };
  const int = (name: string, fallback: number, min: number): number => (raw.has(name) ? parseInt(name, raw.get(name)!, min) : fallback);
  const bool = (name: string): boolean => (raw.has(name) ? parseBool(name, raw.get(name)!) : false);
  const urls = (name: string, fallback: readonly string[]): readonly string[] => (raw.has(name) ? parseUrls(name, raw.get(name)!) : fallback);

  const name = text('name', 'default');
  if (name === '' || /[=,\s]/.test(name)) throw new FlagError(`--name ${JSON.stringify(name)} must be non-empty without '=', ',' or spaces`);
  const listenPeerUrls = urls('listen-peer-urls', ['http://localhost:2380']);
  const listenClientUrls = urls('listen-client-urls', ['http://localhost:2379']);
  const initialAdvertisePeerUrls = urls('initial-advertise-peer-urls', listenPeerUrls);
  const advertiseClientUrls = urls('advertise-client-urls', listenClientUrls);
  const state = text('initial-cluster-state', 'new');
  if (state !== 'new' && state !== 'existing') throw new FlagError(`--initial-cluster-state must be "new" or "existing", not ${JSON.stringify(state)}`);
  const logLevel = text('log-level', 'info');
  if (logLevel !== 'debug' && logLevel !== 'info' && logLevel !== 'warn' && logLevel !== 'error') throw new FlagError(`--log-level must be debug, info, warn or error, not ${JSON.stringify(logLevel)}`);
  const heartbeatIntervalMs = int('heartbeat-interval', 50, 1);
  const electionTimeoutMs = int('election-timeout', 250, 1);
  if (electionTimeoutMs < 2 * heartbeatIntervalMs) {
    throw new FlagError(`--election-timeout (${electionTimeoutMs} ms) must be at least twice --heartbeat-interval (${heartbeatIntervalMs} ms)`);
  }
  const compactionMode = text('auto-compaction-mode', 'periodic');
  if (compactionMode !== 'periodic' && compactionMode !== 'revision') throw new FlagError(`--auto-compaction-mode must be "periodic" or "revision", not ${JSON.stringify(compactionMode)}`);
  const autoCompactionRetention = parseRetention(compactionMode, text('auto-compaction-retention', '0'));
  const flags: MasterFlags = {
    name,
    dataDir: text('data-dir', `${name}.mast`),
    listenPeerUrls,
    listenClientUrls,
    initialAdvertisePeerUrls,
    advertiseClientUrls,
    initialCluster: text('initial-cluster', `${name}=${initialAdvertisePeerUrls[0]}`),
    initialClusterState: state,
    initialClusterToken: text('initial-cluster-token', 'mast-cluster'),
    heartbeatIntervalMs,
    electionTimeoutMs,
    snapshotCount: int('snapshot-count', 10_000, 1),
    snapshotCatchUpEntries: int('snapshot-catchup-entries', 5_000, 0),
    maxRequestBytes: int('max-request-bytes', 1_572_864, 1),
    requestTimeoutMs: int('request-timeout', 5_000, 1),
    watchProgressNotifyIntervalMs: int('watch-progress-notify-interval', 600_000, 1),
    watchBookmarkIntervalMs: int('watch-bookmark-interval', 5_000, 1),
    maxObjectBytes: int('max-object-bytes', 1_048_576, 1),
    serviceClusterIpRange: cidr(text('service-cluster-ip-range', '10.96.0.0/12')),
    serviceNodePortRange: portRange(text('service-node-port-range', '30000-32767')),
    certFile: text('cert-file', ''),
    keyFile: text('key-file', ''),
    trustedCaFile: text('trusted-ca-file', ''),
    clientCertAuth: bool('client-cert-auth'),
    peerCertFile: text('peer-cert-file', ''),
    peerKeyFile: text('peer-key-file', ''),
    peerTrustedCaFile: text('peer-trusted-ca-file', ''),
    peerClientCertAuth: bool('peer-client-cert-auth'),
    agentClientCertificate: text('agent-client-certificate', ''),
    agentClientKey: text('agent-client-key', ''),
    agentCertificateAuthority: text('agent-certificate-authority', ''),
    eventTtlMs: parseDuration('event-ttl', text('event-ttl', '1h')),
    scheduler: raw.has('scheduler') ? parseBool('scheduler', raw.get('scheduler')!) : true,
    controllers: raw.has('controllers') ? parseBool('controllers', raw.get('controllers')!) : true,
    nodeMonitorGracePeriodMs: parseDuration('node-monitor-grace-period', text('node-monitor-grace-period', '40s')),
    loadBalancerIpPool: raw.has('load-balancer-ip-pool') ? parseLoadBalancerIpPool(raw.get('load-balancer-ip-pool')!) : undefined,
    tokenAuthFile: text('token-auth-file', ''),
    clusterSigningCertFile: text('cluster-signing-cert-file', text('trusted-ca-file', '')),
    clusterSigningKeyFile: text('cluster-signing-key-file', ''),
    insecure: bool('insecure'),
    listenMetricsUrls: urls('listen-metrics-urls', []),
    tracesExporter: tracesExporter(text('traces-exporter', 'none')),
    otlpTracesEndpoint: text('otlp-traces-endpoint', 'http://127.0.0.1:4318/v1/traces'),
    logLevel,
    autoCompactionMode: compactionMode,
    autoCompactionRetention,
  };
  const tlsUrl = (list: readonly string[]): boolean => list.some((url) => url.startsWith('https://'));
  if (tlsUrl(flags.listenClientUrls) && (flags.certFile === '' || flags.keyFile === '')) throw new FlagError('https:// client URLs need --cert-file and --key-file');
  if (tlsUrl(flags.listenPeerUrls) && (flags.peerCertFile === '' || flags.peerKeyFile === '')) throw new FlagError('https:// peer URLs need --peer-cert-file and --peer-key-file');
  if ((flags.agentClientCertificate === '') !== (flags.agentClientKey === '')) throw new FlagError('--agent-client-certificate and --agent-client-key go together');
  if (flags.clientCertAuth && flags.trustedCaFile === '') throw new FlagError('--client-cert-auth needs --trusted-ca-file');
  if (flags.peerClientCertAuth && flags.peerTrustedCaFile === '') throw new FlagError('--peer-client-cert-auth needs --peer-trusted-ca-file');
  if (!flags.insecure) {
    // Secure by default: clients are authenticated over TLS, by certificate or bearer token.
    const plain = flags.listenClientUrls.filter((url) => !url.startsWith('https://'));
    if (plain.length > 0) {
      throw new FlagError(`client URL ${plain[0]} is plain http: clients must be authenticated over TLS. Use https:// URLs with --cert-file/--key-file, --trusted-ca-file and --token-auth-file (mast init writes them), or pass --insecure for a local try`);
    }
    if (flags.trustedCaFile === '' && flags.tokenAuthFile === '') throw new FlagError('no way to authenticate clients: give --trusted-ca-file (client certificates) and/or --token-auth-file (bearer tokens), or pass --insecure for a local try');
  }
  if (flags.clusterSigningKeyFile !== '' && flags.clusterSigningCertFile === '') throw new FlagError('--cluster-signing-key-file needs --cluster-signing-cert-file or --trusted-ca-file (the CA certificate it belongs to)');
  if (flags.listenMetricsUrls.length > 1) throw new FlagError('--listen-metrics-urls takes one URL');
  return flags;
}

/** A positive duration such as 90s, 30m or 1h. */
/** A duration flag's value (90s, 30m, 1h, 500ms) in milliseconds; FlagError naming the flag otherwise. */
export function parseDuration(name: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  const milliseconds = match === null ? Number.NaN : Math.round(Number(match[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h']));
  if (!(milliseconds > 0)) throw new FlagError(`--${name}: ${JSON.stringify(value)} is not a duration such as 90s, 30m or 1h`);
  return milliseconds;
}

/** --load-balancer-ip-pool's value (CIDRs and A.B.C.D-E.F.G.H ranges); FlagError naming the part that is wrong. */
export function parseLoadBalancerIpPool(value: string): IpPool {
  try {
    return parseIpPool(value);
  } catch (error) {
    if (error instanceof IpPoolError) throw new FlagError(`--load-balancer-ip-pool: ${error.message}`, { cause: error });
    throw error;
  }
}

function tracesExporter(value: string): 'none' | 'console' | 'otlp' {
  if (value === 'none' || value === 'console' || value === 'otlp') return value;
  throw new FlagError(`--traces-exporter must be none, console or otlp, not ${JSON.stringify(value)}`);
}

function parseRetention(mode: 'periodic' | 'revision', value: string): number {
  if (mode === 'revision') {
    if (!/^\d+$/.test(value)) throw new FlagError(`--auto-compaction-retention: ${JSON.stringify(value)} is not a number of revisions`);
    return Number(value);
  }
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (match === null) throw new FlagError(`--auto-compaction-retention: ${JSON.stringify(value)} is not a duration such as 30m, 1h or 2 (hours)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 'h'] ?? 3_600_000;
  return Math.round(Number(match[1]) * unit);
}

export function masterUsage(): string {
  const lines = ['usage: mast master [--flag value ...]', '', 'Runs one master: a Raft member serving the etcd v3 API. Flags (etcd names):'];
  for (const [name, spec] of Object.entries(MASTER_FLAGS)) lines.push(`  --${name.padEnd(32)} ${spec.help}`);
  return lines.join('\n');
}
