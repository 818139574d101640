// Pod-level cgroups: the agent finds the cgroup hierarchies, and releases a
// pod's cgroup once the runtime is done with it — reclaiming its memory
// first, so the kernel frees it instead of keeping a "dying" memory cgroup.
// The release test runs on the real cgroup v1 memory hierarchy (root only).

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nanoid } from 'nanoid';
import { cgroupMounts, PodCgroups, podCgroupParent, writebackDelayMs } from '../../services/agent/pod-cgroups.js';
import { waitFor } from '../../services/launcher/local-cluster.js';

const MEMORY = '/sys/fs/cgroup/memory';

describe('agent: pod cgroups', function () {
  this.timeout(60_000);

  it('names a pod’s cgroup parent under the root, and none without a root', function () {
    expect(podCgroupParent('/mast', 'u1')).to.equal('/mast/podu1');
    expect(podCgroupParent('/mast/', 'u1')).to.equal('/mast/podu1');
    expect(podCgroupParent('', 'u1')).to.equal('');
  });

  it('finds v1 and v2 cgroup mounts in mountinfo, and nothing else', function () {
    const mountinfo = [
      '25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw',
      '33 25 0:28 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs rw,mode=755',
      '34 33 0:29 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw',
      '36 33 0:31 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory',
      '37 33 0:32 / /sys/fs/cgroup/cpu rw shared:13 master:2 - cgroup cgroup rw,cpu',
      '38 33 0:31 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory',
    ].join('\n');
    expect(cgroupMounts(mountinfo)).to.deep.equal(['/sys/fs/cgroup/unified', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/cpu']);
  });

  it('waits the kernel’s dirty-page expiry plus a writeback period (and a margin) before releasing', function () {
    const sysctls: Record<string, string> = { dirty_expire_centisecs: '3000\n', dirty_writeback_centisecs: '500\n' };
    expect(writebackDelayMs((name) => sysctls[name])).to.equal(40_000);
    expect(writebackDelayMs(() => undefined)).to.equal(40_000);
    expect(writebackDelayMs((name) => (name === 'dirty_expire_centisecs' ? '100' : '0'))).to.equal(6_000);
  });

  it('with cgroupRoot "", touches nothing', async function () {
    const cgroups = new PodCgroups({ cgroupRoot: '', mounts: async () => ['/nonexistent'], log: () => undefined });
    expect(await cgroups.release('u1')).to.equal(true);
    await cgroups.sweep(new Set(), 0);
    cgroups.later('u2', 0);
    await cgroups.releaseDue(1e12);
  });

  describe('on the kernel’s memory hierarchy', function () {
    const root = `/mast-test-${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;
    const lines: string[] = [];
    // Written by a "container": its pages stay cached, charged to that container's cgroup, until reclaimed.
    const file = join('/tmp', `mast-cgroup-test-${process.pid}`);
    const cgroups = new PodCgroups({ cgroupRoot: root, mounts: async () => [MEMORY], delayMs: 1000, log: (line) => lines.push(line) });

    before(function () {
      if (process.getuid?.() !== 0 || !existsSync(join(MEMORY, 'memory.force_empty'))) this.skip();
    });

    after(function () {
      rmSync(file, { force: true });
      // Whatever a failed test left: deepest first.
      const base = join(MEMORY, root);
      for (const directory of [join(base, 'podbusy', 'ctr'), join(base, 'podbusy'), join(base, 'podgone', 'ctr'), join(base, 'podgone'), join(base, 'podkept'), base]) {
        try {
          rmdirSync(directory);
        } catch {
          // not there
        }
      }
    });

    it('releases a pod’s cgroup whose containers are gone, reclaiming what was charged to it so the kernel frees it', async function () {
      const pod = join(MEMORY, root, 'podgone');
      const container = join(pod, 'ctr');
      mkdirSync(container, { recursive: true });
      // A "container": a process in the container cgroup that writes a file and syncs it (its pages stay cached, charged to that cgroup), then exits.
      try {
        const ran = spawnSync('sh', ['-c', `echo $$ > ${container}/cgroup.procs && dd if=/dev/zero of=${file} bs=1M count=4 conv=fsync status=none`]);
        expect(ran.status, String(ran.stderr)).to.equal(0);
      } finally {
        rmdirSync(container); // what runc does when the container is deleted
      }
      // A removed cgroup's charges still count in its ancestors' usage: the test root's shows what the pod's cgroups pin.
      const pinned = (): number => Number(readFileSync(join(MEMORY, root, 'memory.usage_in_bytes'), 'utf8'));
      expect(pinned()).to.be.at.least(4 * 1024 * 1024);
      expect(await cgroups.release('gone')).to.equal(true);
      expect(existsSync(pod)).to.equal(false);
      // Nothing left charged, so the kernel frees the pod's and its container's memory cgroups instead of keeping them dying.
      expect(pinned()).to.be.below(1024 * 1024);
    });

    it('keeps a pod’s cgroup while a container cgroup or a process is in it, and sweeps only pods not kept', async function () {
      const busy = join(MEMORY, root, 'podbusy');
      mkdirSync(join(busy, 'ctr'), { recursive: true });
      mkdirSync(join(MEMORY, root, 'podkept'), { recursive: true });
      mkdirSync(join(MEMORY, root, 'podgone'), { recursive: true });
      expect(await cgroups.release('busy')).to.equal(false);
      expect(existsSync(busy)).to.equal(true);

      rmdirSync(join(busy, 'ctr'));
      const sleeper = spawnSync('sh', ['-c', `sleep 30 >/dev/null 2>&1 & echo $! > ${busy}/cgroup.procs; echo $!`]);
      const pid = Number(String(sleeper.stdout).trim());
      try {
        expect(await cgroups.release('busy')).to.equal(false);
        expect(existsSync(busy)).to.equal(true);
      } finally {
        process.kill(pid, 'SIGKILL');
      }
      await waitFor('the sleeper to be gone from the cgroup', async () => (readFileSync(join(busy, 'cgroup.procs'), 'utf8').trim() === '' ? true : undefined), 30_000, 50);

      // The sweep schedules the pods not kept; they go when their time comes, not before.
      await cgroups.sweep(new Set(['kept']), 0);
      await cgroups.releaseDue(999);
      expect([existsSync(busy), existsSync(join(MEMORY, root, 'podgone')), existsSync(join(MEMORY, root, 'podkept'))]).to.deep.equal([true, true, true]);
      await cgroups.releaseDue(1000);
      expect([existsSync(busy), existsSync(join(MEMORY, root, 'podgone')), existsSync(join(MEMORY, root, 'podkept'))]).to.deep.equal([false, false, true]);
      expect(lines).to.deep.equal([]);
    });
  });
});
