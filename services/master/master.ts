// One `mast master` process: the replicated store, the Raft transport server
// on the peer URLs and the etcd v3 API on the client URLs.

import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { PEER_CHANNEL_OPTIONS, addressOf, disableNagle, raftTransportHandlers, raftWire } from '../../raft/transport/index.js';
import { addEtcdServices } from '../etcdapi/index.js';
import {
  Access,
  addResourceService,
  adminOnlyInterceptor,
  BOOTSTRAP_CLUSTER_ROLE_BINDINGS,
  BOOTSTRAP_CLUSTER_ROLES,
  DEFAULT_WATCH_CACHE_EVENTS,
  ensureCreated,
  ensureNamespaces,
  EventRecorder,
  GarbageCollector,
  registryEventSink,
  sweepEvents,
  NODE_LEASE_NAMESPACE,
  statusOf,
  WatchCache,
  type TokenUser,
} from '../apiserver/index.js';
import { parseTokenFile } from '../pki/index.js';
import { startTelemetry, type Telemetry } from '../telemetry/index.js';
import { startCandidates, type Candidates } from './candidates.js';
import { joinService } from './join-service.js';
import * as joinProto from '../../proto/gen/join.js';
import { ReplicatedStore, formatId, parseInitialCluster, type StoreLogger } from '../store/index.js';
import type { MasterFlags } from './flags.js';
import { jsonLogger } from '../client/log.js';

/** Structured log lines: services/client/log.ts (re-exported for the master's callers). */
export { jsonLogger };

function serverCredentials(url: string, certFile: string, keyFile: string, caFile: string, requireClientCert: boolean): grpc.ServerCredentials {
  if (!url.startsWith('https://')) return grpc.ServerCredentials.createInsecure();
  const ca = caFile === '' ? null : readFileSync(caFile);
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(certFile), private_key: readFileSync(keyFile) }], requireClientCert);
}

/**
 * Client-facing TLS: with a CA, client certificates are asked for but not
 * required (token users have none); those presented are verified against
 * the CA, and only verified ones identify a caller. Files are re-read when
 * they change, so certificates can be rotated without a restart.
 */
function clientServerCredentials(url: string, flags: MasterFlags): grpc.ServerCredentials {
  if (!url.startsWith('https://') || flags.trustedCaFile === '') return serverCredentials(url, flags.certFile, flags.keyFile, flags.trustedCaFile, flags.clientCertAuth);
  const refreshIntervalMs = 60_000;
  const identity = new grpc.experimental.FileWatcherCertificateProvider({ certificateFile: flags.certFile, privateKeyFile: flags.keyFile, refreshIntervalMs });
  const ca = new grpc.experimental.FileWatcherCertificateProvider({ caCertificateFile: flags.trustedCaFile, refreshIntervalMs });
  return grpc.experimental.createCertificateProviderServerCredentials(identity, ca, flags.clientCertAuth);
}

function readTokens(file: string): Map<string, TokenUser> {
  if (file === '') return new Map();
  return parseTokenFile(readFileSync(file, 'utf8'), file);
}

function channelCredentials(tls: boolean, certFile: string, keyFile: string, caFile: string): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    caFile === '' ? null : readFileSync(caFile),
    keyFile === '' ? null : readFileSync(keyFile),
    certFile === '' ? null : readFileSync(certFile),
  );
}

async function bind(server: grpc.Server, url: string, credentials: grpc.ServerCredentials): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(addressOf(url), credentials, (error) => (error === null ? resolve() : reject(new Error(`cannot listen on ${url}: ${error.message}`)))),
  );
}

export class Master {
  private peerServer: grpc.Server | undefined;
  private clientServer: grpc.Server | undefined;
  private stopping: Promise<void> | undefined;
  private garbageCollector: GarbageCollector | undefined;
  private eventSweeper: NodeJS.Timeout | undefined;
  private watchCache: WatchCache | undefined;
  private telemetry: Telemetry | undefined;
  private candidates: Candidates | undefined;
  /** How this master reaches its own client URL (its certificate when TLS). */
  private selfCredentials = grpc.credentials.createInsecure();

  private constructor(
    readonly flags: MasterFlags,
    readonly store: ReplicatedStore,
    private readonly logger: StoreLogger,
  ) {}

  static async start(flags: MasterFlags, onFatal: (error: Error) => void): Promise<Master> {
    const logger = jsonLogger(flags.name, flags.logLevel);
    const initialCluster = parseInitialCluster(flags.initialCluster, flags.initialClusterToken);
    await mkdir(flags.dataDir, { recursive: true });
    const peerTls = flags.initialAdvertisePeerUrls.some((url) => url.startsWith('https://'));
    const store = await ReplicatedStore.open({
      name: flags.name,
      dataDir: flags.dataDir,
      peerUrls: flags.initialAdvertisePeerUrls,
      clientUrls: flags.advertiseClientUrls,
      initialCluster,
      initialClusterState: flags.initialClusterState,
      clusterToken: flags.initialClusterToken,
      heartbeatIntervalMs: flags.heartbeatIntervalMs,
      electionTimeoutMs: flags.electionTimeoutMs,
      snapshotCount: flags.snapshotCount,
      snapshotCatchUpEntries: flags.snapshotCatchUpEntries,
      requestTimeoutMs: flags.requestTimeoutMs,
      maxRequestBytes: flags.maxRequestBytes,
      peerCredentials: channelCredentials(peerTls, flags.peerCertFile, flags.peerKeyFile, flags.peerTrustedCaFile),
      logger,
      onFatal,
      autoCompaction: { mode: flags.autoCompactionMode, retention: flags.autoCompactionRetention },
    });
    const master = new Master(flags, store, logger);
    try {
      await master.listen();
    } catch (error) {
      await store.stop();
      throw error;
    }
    store.start();
    const raftLeadership = {
      isLeader: () => store.leading,
      onBecameLeader: (listener: () => void) => store.onLeaderChange((leader) => {
        if (leader === store.memberId) listener();
      }),
    };
    master.candidates = startCandidates(flags, master.selfCredentials, raftLeadership, (line) => logger.info(line), flags.logLevel === 'debug' ? (line) => logger.debug(line) : undefined);
    logger.info(
      `member ${flags.name} (${formatId(store.memberId)}) of cluster ${formatId(store.clusterId)} serving clients on ${flags.listenClientUrls.join(',')}, peers on ${flags.listenPeerUrls.join(',')}`,
    );
    return master;
  }

  private async listen(): Promise<void> {
    const { flags, store } = this;
    const peerServer = new grpc.Server(PEER_CHANNEL_OPTIONS);
    peerServer.addService(raftWire.RaftTransportService, raftTransportHandlers(
      {
        step: (message) => store.step(message),
        reportUnreachable: () => {},
        reportSnapshot: () => {},
      },
      { self: store.memberId, logger: this.logger },
    ));
    this.peerServer = peerServer;
    for (const url of flags.listenPeerUrls) {
      await bind(peerServer, url, serverCredentials(url, flags.peerCertFile, flags.peerKeyFile, flags.peerTrustedCaFile, flags.peerClientCertAuth));
    }
    // Raft's small messages must not wait for delayed ACKs. (Client sockets keep
    // Nagle: it coalesces a response's frames, which measured better for throughput.)
    disableNagle(peerServer, this.logger);
    const telemetry = await startTelemetry({
      serviceName: 'mast-master',
      instanceId: flags.name,
      ...(flags.listenMetricsUrls[0] === undefined ? {} : { metricsUrl: flags.listenMetricsUrls[0] }),
      tracesExporter: flags.tracesExporter,
      otlpEndpoint: flags.otlpTracesEndpoint,
    });
    this.telemetry = telemetry;
    let leaderChanges = 0;
    telemetry.metrics.observeRaft({
      term: () => store.raftStatus().term,
      commitIndex: () => store.raftStatus().commit,
      appliedIndex: () => store.raftStatus().applied,
      isLeader: () => store.leading,
      hasLeader: () => store.raftStatus().leader !== 0,
      leaderChanges: () => leaderChanges,
      revision: () => store.kv.revision,
    });
    const cache = new WatchCache(store, { historyEvents: DEFAULT_WATCH_CACHE_EVENTS });
    cache.start();
    this.watchCache = cache;
    const access = new Access(cache, { insecure: flags.insecure, tokens: readTokens(flags.tokenAuthFile) });
    const clientServer = new grpc.Server({
      // etcd allows requests up to --max-request-bytes plus 512 KiB of gRPC overhead.
      'grpc.max_receive_message_length': flags.maxRequestBytes + 512 * 1024,
      'grpc.max_send_message_length': 2 ** 31 - 1,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5000,
      // Once auth is on, raw key-value access is for cluster admins (as with etcd's own auth).
      interceptors: [adminOnlyInterceptor(access, ['/etcdserverpb.', '/v3electionpb.', '/v3lockpb.'], statusOf)],
    });
    const clientTls = flags.advertiseClientUrls.some((url) => url.startsWith('https://'));
    this.selfCredentials = channelCredentials(clientTls, flags.certFile, flags.keyFile, flags.trustedCaFile);
    addEtcdServices(clientServer, store, {
      clientCredentials: this.selfCredentials,
      dataDir: flags.dataDir,
      minTtlSeconds: Math.max(1, Math.ceil((1.5 * flags.electionTimeoutMs) / 1000)),
      progressNotifyIntervalMs: flags.watchProgressNotifyIntervalMs,
    });
    const registry = addResourceService(clientServer, store, cache, access, {
      bookmarkIntervalMs: flags.watchBookmarkIntervalMs,
      maxObjectBytes: flags.maxObjectBytes,
      allocator: { serviceCidr: flags.serviceClusterIpRange, nodePortRange: flags.serviceNodePortRange },
      metrics: telemetry.metrics,
      ...(flags.tracesExporter === 'none' ? {} : { tracer: telemetry.tracer }),
      agentCredentials: channelCredentials(flags.agentClientCertificate !== '' || flags.agentCertificateAuthority !== '', flags.agentClientCertificate, flags.agentClientKey, flags.agentCertificateAuthority),
    });
    clientServer.addService(joinProto.JoinService, joinService({
      store,
      cache,
      access,
      caCertPem: flags.clusterSigningCertFile === '' ? '' : readFileSync(flags.clusterSigningCertFile, 'utf8'),
      caKeyPem: flags.clusterSigningKeyFile === '' ? '' : readFileSync(flags.clusterSigningKeyFile, 'utf8'),
      tokenAuthFile: flags.tokenAuthFile,
      initialClusterToken: flags.initialClusterToken,
      selfEndpoint: flags.advertiseClientUrls[0]!,
      selfCredentials: this.selfCredentials,
      log: (line) => this.logger.info(line),
    }));
    // What every cluster has; whichever member gets there first creates it.
    const warn = (message: string): void => this.logger.warn(message);
    ensureNamespaces(registry, ['default', 'kube-system', 'kube-public', NODE_LEASE_NAMESPACE], warn);
    ensureCreated(registry, [...BOOTSTRAP_CLUSTER_ROLES, ...BOOTSTRAP_CLUSTER_ROLE_BINDINGS], warn);
    // Every master keeps the collector's indexes; only the Raft leader acts.
    const events = new EventRecorder(registryEventSink(registry), { component: 'garbage-collector', host: flags.name, log: warn });
    const collector = new GarbageCollector(cache, registry, { isActive: () => store.leading, log: (message) => this.logger.info(message), events });
    store.onLeaderChange((leader) => {
      if (leader !== 0) leaderChanges++;
      // This member just became the one that acts: look at everything again.
      if (leader === store.memberId) collector.resync();
    });
    collector.start();
    this.garbageCollector = collector;
    // Events expire (--event-ttl); the leader sweeps a few times per TTL, at least once a minute.
    let sweeping = false;
    this.eventSweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      void sweepEvents(cache, registry, { ttlMs: flags.eventTtlMs, isActive: () => store.leading, log: warn }).finally(() => (sweeping = false));
    }, Math.min(60_000, Math.max(1000, Math.floor(flags.eventTtlMs / 4))));
    this.eventSweeper.unref();
    this.clientServer = clientServer;
    for (const url of flags.listenClientUrls) {
      await bind(clientServer, url, clientServerCredentials(url, flags));
    }
  }

  /**
   * A leader that is asked to stop first hands leadership to the most
   * caught-up voter (TimeoutNow: it campaigns at once), so a planned restart
   * costs the cluster a round trip instead of an election timeout.
   */
  private async handOverLeadership(timeoutMs: number): Promise<void> {
    const status = this.store.raftStatus();
    if (status.role !== 'leader' || status.progress === undefined) return;
    let target = 0;
    let best = -1;
    for (const [id, progress] of status.progress) {
      if (id === status.id || !status.conf.voters.includes(id) || progress.match <= best) continue;
      target = id;
      best = progress.match;
    }
    if (target === 0) return;
    const moved = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        unsubscribe();
        resolve(false);
      }, timeoutMs);
      const unsubscribe = this.store.onLeaderChange((leader) => {
        if (leader === this.store.memberId || leader === 0) return;
        clearTimeout(timer);
        unsubscribe();
        resolve(true);
      });
    });
    try {
      this.store.transferLeadership(target);
    } catch (error) {
      this.logger.warn(`could not hand leadership over before stopping: ${String(error)}`);
      return;
    }
    const ok = await moved;
    this.logger.info(ok ? `handed leadership to member ${formatId(target)} before stopping` : `leadership did not move to ${formatId(target)} within ${timeoutMs} ms; stopping anyway`);
  }

  /** Stop serving and close the store. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    // Release the scheduler's Lease first: another master's candidate takes over at once.
    await this.candidates?.stop().catch(() => undefined);
    await this.handOverLeadership(400);
    this.garbageCollector?.stop();
    if (this.eventSweeper !== undefined) clearInterval(this.eventSweeper);
    this.watchCache?.stop();
    this.clientServer?.forceShutdown();
    await this.store.stop();
    this.peerServer?.forceShutdown();
    await this.telemetry?.shutdown();
    this.logger.info(`member ${this.flags.name} stopped`);
  }
}
