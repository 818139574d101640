// Pod sandboxes: a directory (ROOT/sandboxes/<id>, with etc/hosts,
// etc/resolv.conf and etc/hostname for its containers) and an IP from the
// pod range. No process of its own: a sandbox is READY from RunPodSandbox
// to StopPodSandbox. Its containers share the host's network, PID and IPC
// namespaces, and its status says so (NamespaceMode NODE).

import { status } from '@grpc/grpc-js';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  NamespaceMode,
  PodSandbox,
  PodSandboxConfig,
  PodSandboxFilter,
  PodSandboxState,
  PodSandboxStatus,
  PodSandboxStatusResponse,
  type DNSConfig,
  type RunPodSandboxRequest,
} from '../../proto/gen/cri/v1/api.js';
import { nowNs } from './clock.js';
import { containerStatus, type ContainerService } from './containers.js';
import { CriError, invalidArgument } from './errors.js';
import { nextFreeIp, type Cidr } from './ipam.js';
import type { CriLogger } from './logger.js';
import { idMatches, labelsMatch, newId, type SandboxRecord, type SandboxStateName, type Store } from './state.js';

export const SANDBOX_STATES: Readonly<Record<SandboxStateName, PodSandboxState>> = {
  READY: PodSandboxState.SANDBOX_READY,
  NOTREADY: PodSandboxState.SANDBOX_NOTREADY,
};

function hostsFile(ip: string, hostname: string): string {
  return [
    '# written by mast cri for this pod',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    `${ip}\t${hostname}`,
    '',
  ].join('\n');
}

/** resolv.conf from the pod's DNS config; the host's when it gives none (as containerd does). */
function resolvConf(dns: DNSConfig | undefined): string {
  if (dns === undefined || (dns.servers.length === 0 && dns.searches.length === 0 && dns.options.length === 0)) {
    try {
      return readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      return '';
    }
  }
  const lines = [
    ...(dns.searches.length > 0 ? [`search ${dns.searches.join(' ')}`] : []),
    ...dns.servers.map((server) => `nameserver ${server}`),
    ...(dns.options.length > 0 ? [`options ${dns.options.join(' ')}`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

export class SandboxService {
  constructor(
    private readonly store: Store,
    private readonly containers: ContainerService,
    private readonly podCidr: Cidr,
    private readonly log: CriLogger,
  ) {}

  run(request: RunPodSandboxRequest): string {
    const config = request.config;
    if (config === undefined) throw invalidArgument('config', 'missing');
    const metadata = config.metadata;
    if (metadata === undefined || metadata.name === '') throw invalidArgument('config.metadata.name', 'missing');
    const clash = [...this.store.sandboxes.values()].find(
      (other) => other.metadata.name === metadata.name && other.metadata.namespace === metadata.namespace && other.metadata.uid === metadata.uid && other.metadata.attempt === metadata.attempt,
    );
    if (clash !== undefined) throw new CriError(status.ALREADY_EXISTS, `sandbox ${metadata.namespace}/${metadata.name} (uid ${metadata.uid}) attempt ${metadata.attempt} already exists as "${clash.id}"`);
    const taken = new Set([...this.store.sandboxes.values()].filter((sandbox) => sandbox.state === 'READY').map((sandbox) => sandbox.ip));
    const ip = nextFreeIp(this.podCidr, taken, this.store.lastIp);
    if (ip === undefined) throw new CriError(status.RESOURCE_EXHAUSTED, `no free pod IP left in ${this.podCidr.text} (${taken.size} READY sandboxes)`);
    const id = newId();
    const dir = join(this.store.rootDir, 'sandboxes', id);
    const hostname = config.hostname === '' ? metadata.name : config.hostname;
    mkdirSync(join(dir, 'etc'), { recursive: true });
    writeFileSync(join(dir, 'etc', 'hosts'), hostsFile(ip, hostname));
    writeFileSync(join(dir, 'etc', 'resolv.conf'), resolvConf(config.dnsConfig));
    writeFileSync(join(dir, 'etc', 'hostname'), `${hostname}\n`);
    if (config.logDirectory !== '') mkdirSync(config.logDirectory, { recursive: true });
    const record: SandboxRecord = {
      id,
      metadata: { name: metadata.name, uid: metadata.uid, namespace: metadata.namespace, attempt: metadata.attempt },
      state: 'READY',
      createdAtNs: nowNs(),
      ip,
      hostname,
      logDirectory: config.logDirectory,
      labels: { ...config.labels },
      annotations: { ...config.annotations },
      runtimeHandler: request.runtimeHandler,
      dir,
      config: PodSandboxConfig.toJSON(config),
    };
    this.store.sandboxes.set(id, record);
    this.store.lastIp = ip;
    this.store.persist();
    this.log.info(`sandbox ${id} (${metadata.namespace}/${metadata.name}) ready with IP ${ip}`);
    return id;
  }

  /** Kills the sandbox's containers at once (as containerd does) and frees its IP. */
  async stop(id: string): Promise<void> {
    const record = this.store.sandbox(id);
    await Promise.all(this.store.containersOf(record.id).map((container) => this.containers.stop(container.id, 0)));
    if (record.state === 'NOTREADY') return;
    record.state = 'NOTREADY';
    this.store.persist();
    this.log.info(`sandbox ${record.id} (${record.metadata.namespace}/${record.metadata.name}) stopped`);
  }

  /** Stops the sandbox, removes its containers and directory; an unknown id is not an error. */
  async remove(id: string): Promise<void> {
    const record = this.store.findSandbox(id);
    if (record === undefined) return;
    await this.stop(record.id);
    for (const container of this.store.containersOf(record.id)) await this.containers.remove(container.id);
    rmSync(record.dir, { recursive: true, force: true });
    this.store.sandboxes.delete(record.id);
    this.store.persist();
    this.log.info(`sandbox ${record.id} (${record.metadata.namespace}/${record.metadata.name}) removed`);
  }

  status(id: string, verbose: boolean): PodSandboxStatusResponse {
    const record = this.store.sandbox(id);
    const hostNamespaces = { network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE };
    return PodSandboxStatusResponse.fromPartial({
      status: PodSandboxStatus.fromPartial({
        id: record.id,
        metadata: record.metadata,
        state: SANDBOX_STATES[record.state],
        createdAt: record.createdAtNs,
        network: { ip: record.ip },
        linux: { namespaces: { options: hostNamespaces } },
        labels: record.labels,
        annotations: record.annotations,
        runtimeHandler: record.runtimeHandler,
      }),
      info: verbose ? { info: JSON.stringify({ dir: record.dir, hostname: record.hostname, config: record.config }) } : {},
      containersStatuses: verbose ? this.store.containersOf(record.id).map(containerStatus) : [],
      timestamp: nowNs(),
    });
  }

  list(filter: PodSandboxFilter | undefined): PodSandbox[] {
    const wanted = filter ?? PodSandboxFilter.fromPartial({});
    return [...this.store.sandboxes.values()]
      .filter((record) => idMatches(wanted.id, record.id))
      .filter((record) => wanted.state === undefined || SANDBOX_STATES[record.state] === wanted.state.state)
      .filter((record) => labelsMatch(wanted.labelSelector, record.labels))
      .map((record) =>
        PodSandbox.fromPartial({
          id: record.id,
          metadata: record.metadata,
          state: SANDBOX_STATES[record.state],
          createdAt: record.createdAtNs,
          labels: record.labels,
          annotations: record.annotations,
          runtimeHandler: record.runtimeHandler,
        }),
      );
  }
}
