// Usage of a container without cgroups: its session's processes found in
// /proc (CPU from utime+stime, plus the times of children they reaped;
// memory from resident pages) and the bytes in its rootfs directory.

import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CLOCK_TICKS_PER_SECOND, readRssBytes, sessionMembers, type ProcStat } from './processes.js';

const NS_PER_TICK = 1_000_000_000 / CLOCK_TICKS_PER_SECOND;
/** Directory entries walked per rootfs before giving up on counting the rest. */
const MAX_DU_ENTRIES = 100_000;

export interface ProcessUsage {
  readonly cpuNs: number;
  readonly rssBytes: number;
  readonly processCount: number;
}

export const NO_USAGE: ProcessUsage = { cpuNs: 0, rssBytes: 0, processCount: 0 };

export function sessionUsage(leader: number, startTimeTicks: number, processes: readonly ProcStat[]): ProcessUsage {
  if (leader === 0) return NO_USAGE;
  const members = sessionMembers(leader, startTimeTicks, processes).filter((member) => member.state !== 'Z');
  let ticks = 0;
  let rssBytes = 0;
  for (const member of members) {
    ticks += member.utimeTicks + member.stimeTicks + member.cutimeTicks + member.cstimeTicks;
    rssBytes += readRssBytes(member.pid);
  }
  return { cpuNs: ticks * NS_PER_TICK, rssBytes, processCount: members.length };
}

export interface DiskUsage {
  readonly bytes: number;
  readonly inodes: number;
}

/** Like du: bytes and inodes under a directory, symlinks not followed (mounts are symlinks). */
export function directoryUsage(root: string): DiskUsage {
  let bytes = 0;
  let inodes = 0;
  const pending = [root];
  while (pending.length > 0 && inodes < MAX_DU_ENTRIES) {
    const path = pending.pop() as string;
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      continue;
    }
    inodes++;
    bytes += stat.blocks * 512;
    if (!stat.isDirectory()) continue;
    try {
      for (const name of readdirSync(path)) pending.push(join(path, name));
    } catch {
      // Unreadable: counted as empty.
    }
  }
  return { bytes, inodes };
}

/** CPU rate between two readings of cumulative usage, in nanocores. */
export function nanoCores(previous: { cpuNs: number; atNs: number } | undefined, cpuNs: number, atNs: number): number {
  if (previous === undefined || atNs <= previous.atNs || cpuNs < previous.cpuNs) return 0;
  return Math.round(((cpuNs - previous.cpuNs) / (atNs - previous.atNs)) * 1e9);
}
