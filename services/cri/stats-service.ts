// ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats
// from what stats.ts reads in /proc and in the rootfs directories. One
// /proc scan serves a whole listing.

import {
  ContainerStats,
  PodSandboxStats,
  type ContainerStatsFilter,
  type PodSandboxStatsFilter,
} from '../../proto/gen/cri/v1/api.js';
import { nowNs } from './clock.js';
import { scanProcesses, type ProcStat } from './processes.js';
import { directoryUsage, nanoCores, NO_USAGE, sessionUsage, type ProcessUsage } from './stats.js';
import { idMatches, labelsMatch, type ContainerRecord, type SandboxRecord, type Store } from './state.js';

interface Sample {
  readonly cpuNs: number;
  readonly atNs: number;
}

export class StatsService {
  /** Last CPU reading per container or sandbox id, for usage_nano_cores. */
  private readonly samples = new Map<string, Sample>();

  constructor(private readonly store: Store) {}

  container(id: string): ContainerStats {
    return this.containerStats(this.store.container(id), scanProcesses());
  }

  /** Stats of the running containers matching the filter. */
  listContainers(filter: ContainerStatsFilter | undefined): ContainerStats[] {
    this.forgetRemoved();
    const processes = scanProcesses();
    return [...this.store.containers.values()]
      .filter((record) => record.state === 'RUNNING')
      .filter((record) => filter === undefined || (idMatches(filter.id, record.id) && idMatches(filter.podSandboxId, record.sandboxId) && labelsMatch(filter.labelSelector, record.labels)))
      .map((record) => this.containerStats(record, processes));
  }

  sandbox(id: string): PodSandboxStats {
    return this.sandboxStats(this.store.sandbox(id), scanProcesses());
  }

  /** Stats of the READY sandboxes matching the filter. */
  listSandboxes(filter: PodSandboxStatsFilter | undefined): PodSandboxStats[] {
    const processes = scanProcesses();
    return [...this.store.sandboxes.values()]
      .filter((record) => record.state === 'READY')
      .filter((record) => filter === undefined || (idMatches(filter.id, record.id) && labelsMatch(filter.labelSelector, record.labels)))
      .map((record) => this.sandboxStats(record, processes));
  }

  private forgetRemoved(): void {
    for (const id of this.samples.keys()) if (!this.store.containers.has(id) && !this.store.sandboxes.has(id)) this.samples.delete(id);
  }

  private usageOf(record: ContainerRecord, processes: readonly ProcStat[]): ProcessUsage {
    return record.state === 'RUNNING' ? sessionUsage(record.pid, record.pidStartTime, processes) : NO_USAGE;
  }

  private cpu(id: string, usage: ProcessUsage, atNs: number): { timestamp: number; usageCoreNanoSeconds: { value: number }; usageNanoCores: { value: number } } {
    const rate = nanoCores(this.samples.get(id), usage.cpuNs, atNs);
    this.samples.set(id, { cpuNs: usage.cpuNs, atNs });
    return { timestamp: atNs, usageCoreNanoSeconds: { value: usage.cpuNs }, usageNanoCores: { value: rate } };
  }

  private memory(usage: ProcessUsage, atNs: number): { timestamp: number; workingSetBytes: { value: number }; rssBytes: { value: number }; usageBytes: { value: number } } {
    return { timestamp: atNs, workingSetBytes: { value: usage.rssBytes }, rssBytes: { value: usage.rssBytes }, usageBytes: { value: usage.rssBytes } };
  }

  private containerStats(record: ContainerRecord, processes: readonly ProcStat[]): ContainerStats {
    const atNs = nowNs();
    const usage = this.usageOf(record, processes);
    const disk = directoryUsage(record.rootfs);
    return ContainerStats.fromPartial({
      attributes: { id: record.id, metadata: record.metadata, labels: record.labels, annotations: record.annotations },
      cpu: this.cpu(record.id, usage, atNs),
      memory: this.memory(usage, atNs),
      writableLayer: { timestamp: atNs, fsId: { mountpoint: record.rootfs }, usedBytes: { value: disk.bytes }, inodesUsed: { value: disk.inodes } },
    });
  }

  private sandboxStats(record: SandboxRecord, processes: readonly ProcStat[]): PodSandboxStats {
    const atNs = nowNs();
    const containers = this.store.containersOf(record.id);
    const usages = containers.map((container) => this.usageOf(container, processes));
    const total = usages.reduce((sum, usage) => ({ cpuNs: sum.cpuNs + usage.cpuNs, rssBytes: sum.rssBytes + usage.rssBytes, processCount: sum.processCount + usage.processCount }), NO_USAGE);
    return PodSandboxStats.fromPartial({
      attributes: { id: record.id, metadata: record.metadata, labels: record.labels, annotations: record.annotations },
      linux: {
        cpu: this.cpu(record.id, total, atNs),
        memory: this.memory(total, atNs),
        process: { timestamp: atNs, processCount: { value: total.processCount } },
        containers: containers.filter((container) => container.state === 'RUNNING').map((container) => this.containerStats(container, processes)),
      },
    });
  }
}
