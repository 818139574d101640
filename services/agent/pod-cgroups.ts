// Pod-level cgroups. The agent names each pod's cgroup parent
// (<root>/pod<uid>, see podCgroupParent) and the runtime creates it — the
// OCI runtime (crun, runc) makes the parents of a container's cgroup — but removes only the
// containers' own cgroups. So the agent removes the pod's, as the kubelet
// does, once the runtime holds nothing of the pod: in every hierarchy, and
// only when no cgroup is left below it (a container still there means the
// runtime is not done; the next sweep tries again).
//
// First it reclaims the memory still charged to the pod and to its removed
// containers (cgroup v1 memory.force_empty; v2 memory.reclaim): page cache a
// removed memory cgroup is still charged for keeps it alive as a "dying"
// cgroup, which the kernel goes on walking. They pile up with every pod, and
// a few hundred made every process on a node 15-30 % slower (measured with
// `npm run bench -- pods`: p99 0.65 s on a clean machine, 1.7-2.3 s one bench
// run later). Reclaim cannot drop dirty pages (the runtime's last writes for
// the pod, e.g. its deleted rootfs's metadata), so a pod's cgroup is released
// only once the kernel has written those back: the dirty-page expiry plus
// one writeback period after the pod left the runtime.

import { readFileSync } from 'node:fs';
import { readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The cgroup parent the agent gives a pod's sandbox ('' when cgroupRoot is ''). */
export function podCgroupParent(cgroupRoot: string, uid: string): string {
  return cgroupRoot === '' ? '' : `${cgroupRoot.replace(/\/$/, '')}/pod${uid}`;
}

/** Where cgroup hierarchies (v1 and v2) are mounted, from a mountinfo text. */
export function cgroupMounts(mountinfo: string): string[] {
  const mounts = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const fsType = after.split(' ')[0];
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    const mountPoint = before.split(' ')[4];
    if (mountPoint !== undefined) mounts.add(mountPoint.replace(/\\040/g, ' '));
  }
  return [...mounts];
}

const POD_DIRECTORY = /^pod([0-9A-Za-z_-]+)$/;

/** The cgroup root pods go under unless the agent is told otherwise. */
export const DEFAULT_CGROUP_ROOT = '/mast';

export interface PodCgroupsOptions {
  /** The agent's cgroup root (e.g. /mast); '' disables everything here. */
  readonly cgroupRoot: string;
  /** The cgroup mount points (default: from /proc/self/mountinfo). */
  readonly mounts?: () => Promise<string[]>;
  /** How long after a pod left the runtime its cgroup is released (default: writebackDelayMs()). */
  readonly delayMs?: number;
  readonly log: (line: string) => void;
}

/** How long the kernel may keep a page dirty before it is on disk: dirty_expire plus one dirty_writeback period (and a margin). */
export function writebackDelayMs(readSysctl: (name: string) => string | undefined = readVmSysctl): number {
  const centiseconds = (name: string, fallback: number): number => {
    const value = Number(readSysctl(name)?.trim());
    return Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  return (centiseconds('dirty_expire_centisecs', 3000) + centiseconds('dirty_writeback_centisecs', 500)) * 10 + 5000;
}

function readVmSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/vm/${name}`, 'utf8');
  } catch {
    return undefined;
  }
}

export class PodCgroups {
  private warned = false;
  /** Pods whose cgroups are to be released, and when (monotonic ms). */
  private readonly due = new Map<string, number>();
  private readonly delayMs: number;

  constructor(private readonly options: PodCgroupsOptions) {
    this.delayMs = options.delayMs ?? writebackDelayMs();
  }

  /** The pod left the runtime at `nowMs`: release its cgroups once its dirty pages are written back. */
  later(uid: string, nowMs: number): void {
    if (this.options.cgroupRoot === '') return;
    this.due.set(uid, nowMs + this.delayMs);
  }

  /** Release the cgroups whose time has come; those that cannot go yet are tried again next time. */
  async releaseDue(nowMs: number, mounts?: readonly string[]): Promise<void> {
    const due = [...this.due].filter(([, at]) => at <= nowMs);
    if (due.length === 0) return;
    const hierarchies = mounts ?? (await this.mounts());
    for (const [uid] of due) {
      if (await this.releaseIn(hierarchies, uid)) this.due.delete(uid);
    }
  }

  /** Reclaim and remove the pod's cgroups now; true when none is left. */
  async release(uid: string): Promise<boolean> {
    return this.releaseIn(await this.mounts(), uid);
  }

  /**
   * Schedule the release of the pod cgroups under the root of every pod not
   * in `keep` (pods deleted while the agent was down, or missed), then
   * release those whose time has come.
   */
  async sweep(keep: ReadonlySet<string>, nowMs: number): Promise<void> {
    if (this.options.cgroupRoot === '') return;
    const mounts = await this.mounts();
    for (const mount of mounts) {
      for (const name of await subdirectories(join(mount, this.options.cgroupRoot))) {
        const uid = POD_DIRECTORY.exec(name)?.[1];
        if (uid !== undefined && !keep.has(uid) && !this.due.has(uid)) this.later(uid, nowMs);
      }
    }
    await this.releaseDue(nowMs, mounts);
  }

  private async releaseIn(mounts: readonly string[], uid: string): Promise<boolean> {
    const parent = podCgroupParent(this.options.cgroupRoot, uid);
    if (parent === '') return true;
    let released = true;
    for (const mount of mounts) {
      if (!(await this.releaseDirectory(join(mount, parent)))) released = false;
    }
    return released;
  }

  private async mounts(): Promise<string[]> {
    if (this.options.mounts !== undefined) return this.options.mounts();
    try {
      return cgroupMounts(await readFile('/proc/self/mountinfo', 'utf8'));
    } catch {
      return []; // not Linux
    }
  }

  /** One hierarchy's pod cgroup: false when it is still there (in use, or not ours to remove). */
  private async releaseDirectory(directory: string): Promise<boolean> {
    if ((await subdirectories(directory)).length > 0) return false; // the runtime still has a container here
    try {
      // Never reclaim from a cgroup with processes in it (their pages are in use). ENOENT: not there, nothing to do.
      if ((await readFile(join(directory, 'cgroup.procs'), 'utf8')).trim() !== '') return false;
      if (await exists(join(directory, 'memory.force_empty'))) {
        await writeFile(join(directory, 'memory.force_empty'), '0');
      } else if (await exists(join(directory, 'memory.reclaim'))) {
        const current = (await readFile(join(directory, 'memory.current'), 'utf8')).trim();
        if (current !== '0') await writeFile(join(directory, 'memory.reclaim'), current).catch(() => undefined); // EAGAIN: reclaimed less than asked
      }
      await rmdir(directory);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      // EBUSY: a process is still in it. EACCES/EPERM: not root (the embedded runtime makes no cgroups anyway).
      if ((code === 'EACCES' || code === 'EPERM') && !this.warned) {
        this.warned = true;
        this.options.log(`cannot remove pod cgroup ${directory}: ${(error as Error).message} (pod cgroups are left to the runtime's host)`);
      }
      return false;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function subdirectories(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  } catch {
    return [];
  }
}
