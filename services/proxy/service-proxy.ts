// A node's Service proxy and cluster DNS, as `mast agent` runs them: the
// backend chosen by mode (nftables when usable, else userspace, unless told),
// the loop that programs it (proxier.ts), the cluster DNS server answering
// from the same Services and Endpoints, and the /proxyMode, /healthz and
// /metrics endpoint. The cluster DNS address pods get in resolv.conf is one
// more Service to the backend: CLUSTER_DNS:53 over UDP and TCP goes to this
// node's DNS server, so DNS works through whichever mechanism the node uses.

import type { ListerWatcher } from '../client/informer.js';
import type { ProxyBackend, ProxyMode } from './backend.js';
import { DnsRecords } from './dns-records.js';
import { ClusterDnsServer } from './dns-server.js';
import { IpvsBackend, ipvsUsable } from './ipvs.js';
import { NftablesBackend, nftablesUsable } from './nftables.js';
import { Proxier } from './proxier.js';
import type { ServicePortRule } from './rules.js';
import { ProxyStatusServer, type ProxyGauge, type ProxyHistogram } from './status-server.js';
import { UserspaceBackend } from './userspace.js';

export interface ServiceProxyOptions {
  readonly client: ListerWatcher;
  /** 'auto': nftables when usable here (root, a working nft), else userspace. */
  readonly mode: ProxyMode | 'auto';
  /** Addresses NodePorts answer on. */
  readonly nodeIPs: readonly string[];
  /** nftables: the table the proxy owns (default mast). */
  readonly nftablesTable?: string;
  /** HOST:PORT of /proxyMode, /healthz and /metrics; "" = not served. */
  readonly statusAddress: string;
  /** More metrics served there (the agent's own). */
  readonly extraMetrics?: { readonly gauges?: readonly ProxyGauge[]; readonly histograms?: readonly ProxyHistogram[] };
  readonly syncPeriodMs?: number;
  /** The cluster DNS server; absent: none. */
  readonly dns?: {
    readonly host: string;
    readonly port: number;
    /** The addresses pods use as nameserver (--cluster-dns): CLUSTER_DNS:53 is sent to this server. */
    readonly clusterDnsIPs: readonly string[];
    /** Where this node's pods reach the server when it listens on every address (the node IP). */
    readonly nodeIP: string;
    readonly clusterDomain: string;
    /** Nameservers for other names; absent: /etc/resolv.conf's. */
    readonly upstreams?: readonly string[];
  };
  readonly log?: (line: string) => void;
}

export class ServiceProxyError extends Error {
  override readonly name = 'ServiceProxyError';
}

export interface ServiceProxy {
  readonly mode: ProxyMode;
  readonly proxier: Proxier;
  readonly dns: ClusterDnsServer | undefined;
  readonly status: ProxyStatusServer | undefined;
  /** Stops watching and serving; `removeRules` also removes what the backend programmed (kube-proxy leaves it, so traffic flows across a restart). */
  stop(options?: { readonly removeRules?: boolean }): Promise<void>;
}

const DNS_PORT = 53;

/** The mode 'auto' resolves to here, with the reason when nftables is not it. */
export async function resolveProxyMode(mode: ProxyMode | 'auto'): Promise<{ mode: ProxyMode; reason?: string }> {
  if (mode === 'auto') {
    const nftables = await nftablesUsable();
    return nftables.usable ? { mode: 'nftables' } : { mode: 'userspace', reason: `nftables is not usable: ${nftables.reason}` };
  }
  if (mode === 'nftables') {
    const nftables = await nftablesUsable();
    if (!nftables.usable) throw new ServiceProxyError(`--proxy-mode nftables: ${nftables.reason}`);
  }
  if (mode === 'ipvs') {
    const ipvs = await ipvsUsable();
    if (!ipvs.usable) throw new ServiceProxyError(`--proxy-mode ipvs: ${ipvs.reason}`);
  }
  return { mode };
}

async function makeBackend(mode: ProxyMode, options: ServiceProxyOptions, log: (line: string) => void): Promise<ProxyBackend & { gauges?: ProxyGauge[] }> {
  const common = { nodeIPs: options.nodeIPs, log };
  switch (mode) {
    case 'nftables':
      return new NftablesBackend({ ...common, ...(options.nftablesTable === undefined ? {} : { table: options.nftablesTable }) });
    case 'ipvs':
      return IpvsBackend.open(common);
    case 'userspace': {
      const backend = new UserspaceBackend(common);
      const gauges: ProxyGauge[] = [
        { name: 'mast_proxy_userspace_connections_total', kind: 'counter', help: 'TCP connections accepted by the userspace proxy', read: () => backend.stats().connections },
        { name: 'mast_proxy_userspace_active_connections', kind: 'gauge', help: 'TCP connections the userspace proxy relays now', read: () => backend.stats().activeConnections },
        { name: 'mast_proxy_userspace_udp_sessions', kind: 'gauge', help: 'UDP client sessions the userspace proxy relays now', read: () => backend.stats().udpSessions },
        { name: 'mast_proxy_userspace_listen_failures', kind: 'gauge', help: 'Addresses the userspace proxy should answer on but cannot listen on now', read: () => backend.failures().length },
      ];
      return Object.assign(backend, { gauges });
    }
  }
}

/** CLUSTER_DNS:53 (UDP and TCP) → the node's DNS server, as two Service ports of kube-system/kube-dns. */
export function clusterDnsRules(clusterDnsIPs: readonly string[], server: { readonly ip: string; readonly port: number }): ServicePortRule[] {
  const rules: ServicePortRule[] = [];
  clusterDnsIPs.forEach((ip, index) => {
    if (ip === server.ip && server.port === DNS_PORT) return; // the server answers there itself
    const suffix = index === 0 ? '' : `-${index}`;
    for (const protocol of ['UDP', 'TCP'] as const) {
      const portName = `${protocol === 'UDP' ? 'dns' : 'dns-tcp'}${suffix}`;
      rules.push({ id: `kube-system/kube-dns:${portName}`, namespace: 'kube-system', name: 'kube-dns', portName, protocol, clusterIP: ip, port: DNS_PORT, externalIPs: [], backends: [{ ip: server.ip, port: server.port }] });
    }
  });
  return rules;
}

export async function startServiceProxy(options: ServiceProxyOptions): Promise<ServiceProxy> {
  const log = options.log ?? (() => {});
  const resolved = await resolveProxyMode(options.mode);
  if (resolved.reason !== undefined) log(`proxy: using the userspace mode (${resolved.reason})`);
  const backend = await makeBackend(resolved.mode, options, log);
  let dns: ClusterDnsServer | undefined;
  let status: ProxyStatusServer | undefined;
  let proxier: Proxier | undefined;
  try {
    let staticRules: ServicePortRule[] = [];
    let serial = 0;
    if (options.dns !== undefined) {
      const settings = options.dns;
      dns = await ClusterDnsServer.start({
        records: new DnsRecords([], [], { clusterDomain: settings.clusterDomain }),
        host: settings.host,
        port: settings.port,
        ...(settings.upstreams === undefined || settings.upstreams.length === 0 ? {} : { upstreams: settings.upstreams }),
        log,
      });
      const serverIp = settings.host === '0.0.0.0' ? settings.nodeIP : settings.host;
      staticRules = clusterDnsRules(settings.clusterDnsIPs, { ip: serverIp, port: dns.address().port });
    }
    const server = dns;
    proxier = new Proxier({
      client: options.client,
      backend,
      staticRules,
      ...(options.syncPeriodMs === undefined ? {} : { syncPeriodMs: options.syncPeriodMs }),
      ...(server === undefined ? {} : { onWorld: (services, endpoints) => server.setRecords(new DnsRecords(services, endpoints, { clusterDomain: options.dns!.clusterDomain, serial: ++serial })) }),
      log,
    });
    if (options.statusAddress !== '') {
      const gauges: ProxyGauge[] = [...(backend.gauges ?? []), ...(options.extraMetrics?.gauges ?? [])];
      if (server !== undefined) {
        gauges.push(
          { name: 'mast_dns_queries_total', kind: 'counter', help: 'Queries the cluster DNS server received (UDP and TCP)', read: () => server.stats().queries },
          { name: 'mast_dns_nxdomain_total', kind: 'counter', help: 'NXDOMAIN answers of the cluster DNS server', read: () => server.stats().nxdomain },
          { name: 'mast_dns_forwarded_total', kind: 'counter', help: 'Queries the cluster DNS server forwarded upstream', read: () => server.stats().forwarded },
          { name: 'mast_dns_servfail_total', kind: 'counter', help: 'SERVFAIL answers of the cluster DNS server', read: () => server.stats().servfail },
        );
      }
      status = await ProxyStatusServer.start({ proxier, address: options.statusAddress, gauges, histograms: options.extraMetrics?.histograms ?? [] });
    }
    await proxier.start();
    log(`proxy: ${resolved.mode} mode, ${proxier.appliedRules.services.length} service ports programmed${server === undefined ? '' : `; cluster DNS on ${options.dns!.host}:${server.address().port} for ${options.dns!.clusterDomain}`}${status === undefined ? '' : `; status on ${options.statusAddress.replace(/:0$/, `:${status.port}`)}`}`);
  } catch (error) {
    await proxier?.stop().catch(() => undefined);
    await status?.close().catch(() => undefined);
    await dns?.close().catch(() => undefined);
    await backend.close().catch(() => undefined);
    throw error;
  }
  const running = proxier;
  return {
    mode: resolved.mode,
    proxier: running,
    dns,
    status,
    async stop(stopOptions = {}) {
      // Userspace rules are listeners in this process: they go with it.
      await running.stop({ removeRules: stopOptions.removeRules === true || resolved.mode === 'userspace' });
      await status?.close();
      await dns?.close();
    },
  };
}
