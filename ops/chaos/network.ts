// Faults on the peer links between masters on loopback. Loopback has no
// address per process, so traffic is told apart by process: each master runs
// in a cgroup v2 of its own (mast-chaos-<pid>/<member>), and a nftables table
// of this run's own drops peer-port packets by `socket cgroupv2` plus ports.
// Delay needs netem, absent here, so it is done by relays (test/support/peer-relay.ts).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';

const CGROUP_MOUNT = '/sys/fs/cgroup';
/** Where cgroup v2 is mounted: the unified hierarchy of a hybrid setup, or /sys/fs/cgroup itself. */
function cgroup2Root(): string {
  if (existsSync(`${CGROUP_MOUNT}/unified/cgroup.procs`)) return `${CGROUP_MOUNT}/unified`;
  return CGROUP_MOUNT;
}

function nft(script: string): void {
  execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** A run's cgroups and nftables table. */
export class PeerNetwork {
  private readonly root = cgroup2Root();
  private readonly base: string;
  private readonly table: string;
  private readonly members = new Set<string>();
  private destroyed = false;

  constructor(tag: string) {
    this.base = `mast-chaos-${tag}`;
    this.table = `mast_chaos_${tag.replace(/[^A-Za-z0-9_]/g, '_')}`;
  }

  /** nft resolves cgroupv2 paths below /sys/fs/cgroup. */
  private nftPath(member?: string): string {
    const relative = `${this.root.slice(CGROUP_MOUNT.length + 1)}${this.root === CGROUP_MOUNT ? '' : '/'}${this.base}${member === undefined ? '' : `/${member}`}`;
    return `"${relative}"`;
  }

  create(): void {
    mkdirSync(`${this.root}/${this.base}`, { recursive: true });
    nft(`add table inet ${this.table}\nadd chain inet ${this.table} out { type filter hook output priority 0 ; policy accept ; }\nadd chain inet ${this.table} in { type filter hook input priority 0 ; policy accept ; }\n`);
  }

  /** Put a (just started) master process into its member's cgroup. */
  adopt(member: string, pid: number): void {
    const dir = `${this.root}/${this.base}/${member}`;
    mkdirSync(dir, { recursive: true });
    this.members.add(member);
    writeFileSync(`${dir}/cgroup.procs`, String(pid));
  }

  /** Cut `victim` off from the other masters' peer ports, both ways. */
  partition(victim: string, victimPort: number, otherPorts: readonly number[]): void {
    const others = `{ ${otherPorts.join(', ')} }`;
    const me = this.nftPath(victim);
    nft(
      [
        `add rule inet ${this.table} out socket cgroupv2 level 2 ${me} tcp dport ${others} counter drop`,
        `add rule inet ${this.table} out socket cgroupv2 level 2 ${me} tcp sport ${victimPort} counter drop`,
        `add rule inet ${this.table} out socket cgroupv2 level 1 ${this.nftPath()} tcp dport ${victimPort} counter drop`,
        `add rule inet ${this.table} in socket cgroupv2 level 2 ${me} tcp sport ${others} counter drop`,
        `add rule inet ${this.table} in socket cgroupv2 level 2 ${me} tcp dport ${victimPort} counter drop`,
        '',
      ].join('\n'),
    );
  }

  /** Drop `percent` % of the packets on every peer link, at random. */
  drop(percent: number, peerPorts: readonly number[]): void {
    const ports = `{ ${peerPorts.join(', ')} }`;
    const all = this.nftPath();
    nft(
      [
        `add rule inet ${this.table} out socket cgroupv2 level 1 ${all} tcp dport ${ports} numgen random mod 100 < ${percent} counter drop`,
        `add rule inet ${this.table} out socket cgroupv2 level 1 ${all} tcp sport ${ports} numgen random mod 100 < ${percent} counter drop`,
        '',
      ].join('\n'),
    );
  }

  /** Remove every rule (the table stays for the next fault). */
  heal(): void {
    nft(`flush chain inet ${this.table} out\nflush chain inet ${this.table} in\n`);
  }

  /** Packets the rules in force have dropped so far (evidence the fault took effect). */
  droppedPackets(): number {
    const listing = execFileSync('nft', ['list', 'table', 'inet', this.table], { encoding: 'utf8' });
    let total = 0;
    for (const match of listing.matchAll(/counter packets (\d+)/g)) total += Number(match[1]);
    return total;
  }

  /** Delete the table and the cgroups (their processes must have exited; retried briefly). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      nft(`delete table inet ${this.table}\n`);
    } catch {
      // Not there (never created, or already gone).
    }
    const remove = (dir: string): void => {
      if (!existsSync(dir)) return;
      for (let attempt = 0; ; attempt++) {
        try {
          // Anything still in it (a master not yet reaped) goes back to the root first.
          for (const pid of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter((line) => line !== '')) writeFileSync(`${this.root}/cgroup.procs`, pid);
          rmdirSync(dir);
          return;
        } catch (error) {
          if (attempt >= 50) throw error;
          execFileSync('sleep', ['0.1']);
        }
      }
    };
    for (const member of this.members) remove(`${this.root}/${this.base}/${member}`);
    remove(`${this.root}/${this.base}`);
  }
}
