// The faults, as etcd's functional tester has them, each a script against a
// running cluster: kill -9 (the leader, repeatedly; a follower; a quorum),
// SIGSTOP the leader past the election timeout, a follower restarted so far
// behind that it needs a snapshot, and on the peer links a partition of the
// leader, random loss, and delay.

import type { LocalCluster } from '../../services/launcher/local-cluster.js';
import type { PeerNetwork } from './network.js';
import type { PeerRelay } from '../../test/support/peer-relay.js';

export const FAULTS = ['kill-leader', 'kill-follower', 'kill-quorum', 'stop-leader', 'snapshot-catchup', 'partition-leader', 'drop-peer', 'delay-peer'] as const;
export type FaultName = (typeof FAULTS)[number];

export function isFault(name: string): name is FaultName {
  return (FAULTS as readonly string[]).includes(name);
}

export interface FaultContext {
  readonly cluster: LocalCluster;
  readonly net: PeerNetwork | undefined;
  readonly relays: readonly PeerRelay[] | undefined;
  readonly random: () => number;
  /** How long the fault (each repetition) lasts. */
  readonly holdMs: number;
  log(line: string): void;
  /** Roll out a new template (so the controllers have work across the fault). */
  rollout(): Promise<void>;
  /** The Raft leader as the named running members agree on it. */
  leader(among: readonly string[]): Promise<string>;
  /** Mark the moment of a fault on `victim` (call right before it, after whatever queries it needs). */
  mark(label: string, victim: string | undefined, leaderLost: boolean): Promise<() => void>;
  /** Start a member again (and put it back into its cgroup). */
  restart(name: string): void;
  /** Every member running agrees on a leader and answers. */
  healthy(): Promise<void>;
  /** Write `count` filler entries (not in the watched prefix). */
  fill(count: number): Promise<void>;
  /** Lines of a member's log from line `from` on. */
  logSince(name: string, from: number): string[];
  logLength(name: string): number;
  readonly problems: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function names(cluster: LocalCluster): string[] {
  return cluster.members.map((member) => member.name);
}

function peerPort(cluster: LocalCluster, name: string): number {
  return Number(new URL(cluster.member(name).peerUrl).port);
}

export async function injectFault(fault: FaultName, ctx: FaultContext): Promise<void> {
  const { cluster } = ctx;
  const all = names(cluster);
  switch (fault) {
    case 'kill-leader': {
      for (let round = 0; round < 3; round++) {
        const leader = await ctx.leader(all);
        await ctx.rollout();
        const fire = await ctx.mark(`kill -9 leader ${leader} (round ${round + 1})`, leader, true);
        fire();
        await cluster.stopMember(leader, 'SIGKILL');
        await ctx.leader(all.filter((name) => name !== leader));
        await sleep(ctx.holdMs / 3);
        ctx.restart(leader);
        await ctx.healthy();
        await sleep(1000);
      }
      return;
    }
    case 'kill-follower': {
      const leader = await ctx.leader(all);
      const victim = all.find((name) => name !== leader)!;
      await ctx.rollout();
      (await ctx.mark(`kill -9 follower ${victim}`, victim, false))();
      await cluster.stopMember(victim, 'SIGKILL');
      await sleep(ctx.holdMs);
      ctx.restart(victim);
      await ctx.healthy();
      return;
    }
    case 'kill-quorum': {
      const leader = await ctx.leader(all);
      const follower = all.find((name) => name !== leader)!;
      await ctx.rollout();
      (await ctx.mark(`kill -9 leader ${leader} and follower ${follower}`, leader, true))();
      await Promise.all([cluster.stopMember(leader, 'SIGKILL'), cluster.stopMember(follower, 'SIGKILL')]);
      await sleep(ctx.holdMs);
      ctx.restart(leader);
      ctx.restart(follower);
      await ctx.healthy();
      return;
    }
    case 'stop-leader': {
      const leader = await ctx.leader(all);
      const child = cluster.member(leader).process;
      if (child === undefined) throw new Error(`${leader} is not running`);
      await ctx.rollout();
      (await ctx.mark(`SIGSTOP leader ${leader}`, leader, true))();
      child.kill('SIGSTOP');
      try {
        await ctx.leader(all.filter((name) => name !== leader));
        await sleep(ctx.holdMs);
      } finally {
        child.kill('SIGCONT');
      }
      ctx.log(`SIGCONT ${leader}`);
      await ctx.healthy();
      return;
    }
    case 'snapshot-catchup': {
      const leader = await ctx.leader(all);
      const victim = all.find((name) => name !== leader)!;
      (await ctx.mark(`kill -9 follower ${victim}, then write past several snapshots`, victim, false))();
      await cluster.stopMember(victim, 'SIGKILL');
      await ctx.fill(4000);
      await ctx.rollout();
      const from = ctx.logLength(victim);
      ctx.restart(victim);
      await ctx.healthy();
      const restored = ctx.logSince(victim, from).find((line) => /restores a snapshot at/.test(line));
      if (restored === undefined) ctx.problems.push(`${victim} caught up without a snapshot (no "restores a snapshot" line after its restart)`);
      else ctx.log(`${victim}: ${restored}`);
      return;
    }
    case 'partition-leader': {
      const net = ctx.net!;
      const leader = await ctx.leader(all);
      await ctx.rollout();
      (await ctx.mark(`partition leader ${leader} from the others' peer links`, leader, true))();
      net.partition(
        leader,
        peerPort(cluster, leader),
        all.filter((name) => name !== leader).map((name) => peerPort(cluster, name)),
      );
      try {
        // Only a partition that works lets the others elect one of their own (leader() waits for it).
        const next = await ctx.leader(all.filter((name) => name !== leader));
        ctx.log(`${next} leads the majority side`);
        await sleep(ctx.holdMs);
      } finally {
        ctx.log(`partition dropped ${net.droppedPackets()} packets`);
        net.heal();
      }
      ctx.log('partition healed');
      await ctx.healthy();
      return;
    }
    case 'drop-peer': {
      const net = ctx.net!;
      await ctx.rollout();
      (await ctx.mark('drop 20% of peer packets', undefined, false))();
      net.drop(20, all.map((name) => peerPort(cluster, name)));
      try {
        await sleep(ctx.holdMs * 2);
      } finally {
        const dropped = net.droppedPackets();
        ctx.log(`dropped ${dropped} peer packets`);
        if (dropped === 0) ctx.problems.push('drop-peer dropped no packet');
        net.heal();
      }
      await ctx.healthy();
      return;
    }
    case 'delay-peer': {
      const relays = ctx.relays!;
      await ctx.rollout();
      (await ctx.mark('delay peer traffic 20-80 ms each way', undefined, false))();
      for (const relay of relays) relay.delayMs = () => 20 + Math.floor(ctx.random() * 60);
      try {
        await sleep(ctx.holdMs * 2);
      } finally {
        for (const relay of relays) relay.delayMs = () => 0;
      }
      const delayed = relays.reduce((sum, relay) => sum + relay.delayed, 0);
      ctx.log(`relays delayed ${delayed} of ${relays.reduce((sum, relay) => sum + relay.forwarded, 0)} chunks forwarded`);
      if (delayed === 0) ctx.problems.push('delay-peer delayed nothing: the peers do not talk through the relays');
      await ctx.healthy();
      return;
    }
  }
}
