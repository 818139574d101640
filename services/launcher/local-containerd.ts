// A private containerd for tests, benchmarks and `mast up --runtime
// containerd`: started by ops/containerd/start.sh under a state directory of
// its own, stopped and purged by ops/containerd/stop.sh (which removes every
// container, mount, bridge and NAT rule it made). Needs root and the Debian
// packages ops/containerd/install.sh installs.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** ops/containerd in the package (dist/services/launcher → the repository root). */
const OPS = fileURLToPath(new URL('../../../ops/containerd/', import.meta.url));

/** Why a private containerd cannot run here ('' if it can). */
export function containerdUnavailable(): string {
  if (process.getuid?.() !== 0) return 'not root';
  const needed: Array<readonly string[]> = [['/usr/bin/containerd'], ['/usr/bin/ctr'], ['/usr/sbin/runc', '/usr/bin/runc'], ['/usr/lib/cni/bridge'], ['/usr/lib/cni/host-local']];
  for (const candidates of needed) {
    if (!candidates.some((path) => existsSync(path))) return `${candidates[0]} is missing (run ops/containerd/install.sh)`;
  }
  return '';
}

export class LocalContainerd {
  private constructor(
    readonly stateDir: string,
    /** The CRI socket path. */
    readonly socket: string,
    /** The OCI runtime binary containerd's runc shim runs (crun or runc; start.sh chooses). */
    readonly ociRuntime: string,
  ) {}

  get endpoint(): string {
    return `unix://${this.socket}`;
  }

  /** Start (or find running) a containerd under `stateDir` with its own CNI bridge and pod subnet. */
  static async start(stateDir: string, options: { readonly bridge: string; readonly subnet: string; readonly cgroupRoot?: string }): Promise<LocalContainerd> {
    const env = { ...process.env, MAST_CNI_BRIDGE: options.bridge, MAST_POD_SUBNET: options.subnet, MAST_CGROUP_ROOT: options.cgroupRoot ?? '/mast' };
    const { stdout } = await run('bash', [join(OPS, 'start.sh'), stateDir], { env });
    const settings = readFileSync(join(stateDir, 'mast-containerd.env'), 'utf8');
    const runtime = /^RUNTIME_BINARY=(.+)$/m.exec(settings)?.[1];
    if (runtime === undefined) throw new Error(`${join(stateDir, 'mast-containerd.env')} names no RUNTIME_BINARY`);
    return new LocalContainerd(stateDir, stdout.trim().split('\n').pop()!, runtime);
  }

  /** Ids of the containers the OCI runtime itself holds in CRI's namespace (its own state, not containerd's). */
  async runtimeContainerIds(): Promise<string[]> {
    const { stdout } = await run(this.ociRuntime, ['--root', join(this.stateDir, 'runc', 'k8s.io'), 'list', '-q']);
    return stdout.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  }

  /** `ctr` in the CRI plugin's namespace. */
  async ctr(...args: string[]): Promise<string> {
    const { stdout } = await run('ctr', ['--address', this.socket, '--connect-timeout', '5s', '-n', 'k8s.io', ...args]);
    return stdout;
  }

  /** Stop containerd and remove everything it made, the state directory included. */
  async stop(): Promise<void> {
    await run('bash', [join(OPS, 'stop.sh'), this.stateDir, '--purge']);
  }
}
