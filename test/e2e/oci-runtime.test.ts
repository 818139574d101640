// The private containerd's OCI runtime and the host's cgroups: start.sh runs
// crun where it can work, which on a hybrid cgroup host means mounting the
// controllers of the v2 hierarchy as v1 hierarchies; stop.sh must give the
// host back the layout it found. Needs root and the Debian packages
// (ops/containerd/install.sh); skipped otherwise, unless
// MAST_REQUIRE_CONTAINERD=1 (CI), which makes their absence a failure.

import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupMounts } from '../../services/agent/pod-cgroups.js';
import { containerdUnavailable, LocalContainerd } from '../../services/launcher/local-containerd.js';

/** Where the host's cgroup hierarchies are mounted, and the v2 controllers. */
function cgroupLayout(): string[] {
  const mounts = cgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8')).sort();
  const v2 = ['/sys/fs/cgroup/unified/cgroup.controllers', '/sys/fs/cgroup/cgroup.controllers'].find((path) => existsSync(path));
  return [...mounts, `v2 controllers: ${v2 === undefined ? '' : readFileSync(v2, 'utf8').trim()}`];
}

describe('e2e: the private containerd runs crun and leaves the host cgroup layout as it found it', function () {
  this.timeout(120_000);

  it('configures crun when installed, and stop.sh restores the cgroup mounts and v2 controllers', async function () {
    const unavailable = containerdUnavailable() || (existsSync('/usr/bin/crun') ? '' : '/usr/bin/crun is missing (run ops/containerd/install.sh)');
    if (unavailable !== '') {
      if (process.env.MAST_REQUIRE_CONTAINERD === '1') throw new Error(`MAST_REQUIRE_CONTAINERD=1 but crun cannot run here: ${unavailable}`);
      console.log(`      (skipped: needs root and ops/containerd/install.sh: ${unavailable})`);
      this.skip();
    }
    const before = cgroupLayout();
    const baseDir = mkdtempSync(join(tmpdir(), 'mast-e2e-oci-'));
    try {
      const containerd = await LocalContainerd.start(join(baseDir, 'containerd'), { bridge: 'mastoci0', subnet: '10.86.0.0/24' });
      try {
        expect(containerd.ociRuntime).to.equal('/usr/bin/crun');
        // crun refuses a hybrid layout whose v2 hierarchy holds controllers.
        if (existsSync('/sys/fs/cgroup/unified/cgroup.controllers')) expect(readFileSync('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').trim()).to.equal('');
      } finally {
        await containerd.stop();
      }
      expect(cgroupLayout()).to.deep.equal(before);
      expect(existsSync('/run/mast-cgroup-v1-moved')).to.equal(false);
    } finally {
      rmSync(baseDir, { recursive: true, force: true });
    }
  });
});
