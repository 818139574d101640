// A deterministic simulator for the Raft core, after TigerBeetle's VOPR: one
// seed drives the network (delay, reordering, drops, duplicates, symmetric and
// one-way partitions), the disks (latency; a crash loses what was not yet
// persisted), crashes and restarts, membership changes, leadership transfers,
// compaction, clients proposing and reading — and the checkers watch every
// step. A safety phase with faults is followed by a liveness phase on a healed
// cluster in which everything pending must commit within a tick budget.
//
// Nothing here reads a clock or draws unseeded randomness: `--seed S` replays
// a run byte for byte.

import {
  describeMessage,
  InvariantViolation,
  Raft,
  type Config,
  type InitialState,
  type LogIndex,
  type Message,
  type NodeId,
  type Ready,
  type Term,
} from '../../raft/core/index.js';
import { MemoryDisk } from '../support/memory-disk.js';
import { chainHash, SafetyChecker, type Violation } from './checker.js';
import { Prng } from './prng.js';

export type RaftFactory = (config: Config, initial: InitialState) => Raft;

export interface SimulationOptions {
  readonly seed: number;
  /** Simulated ticks with faults (each tick is TICK_UNITS time units). */
  readonly safetyTicks?: number;
  /** Ticks the healed cluster gets to commit everything pending. */
  readonly livenessTicks?: number;
  readonly factory?: RaftFactory;
  readonly trace?: (line: string) => void;
  /** Stop as soon as a violation is found (bug-injection tests). */
  readonly stopAtFirstViolation?: boolean;
}

export interface SimulationResult {
  readonly seed: number;
  readonly voters: number;
  readonly violations: readonly Violation[];
  readonly proposalsCommitted: number;
  readonly readsCompleted: number;
  readonly faults: Readonly<Record<string, number>>;
}

const TICK_UNITS = 10;
const ELECTION_TIMEOUT_TICKS = 10;
const HEARTBEAT_INTERVAL_TICKS = 2;
/** Ids beyond the initial voters that membership changes may add. */
const MAX_MEMBER_ID = 9;

interface AppState {
  index: LogIndex;
  hash: number;
}

interface Member {
  readonly id: NodeId;
  readonly initialVoters: readonly NodeId[];
  raft: Raft | undefined;
  /** Bumped at every crash: disk completions of an older epoch are lost. */
  epoch: number;
  readonly disk: MemoryDisk;
  app: AppState;
  inFlight: Ready | undefined;
  role: string;
  term: Term;
  restartAt: number;
  /** Removed from the cluster for good: never restarted. */
  retired: boolean;
  readonly tickPhase: number;
  snapshotEvery: number;
  snapshotKeep: number;
}

type SimEvent = { kind: 'deliver'; message: Message } | { kind: 'disk'; id: NodeId; epoch: number };

function encodeApp(app: AppState): Uint8Array {
  return new TextEncoder().encode(`${app.index}:${app.hash}`);
}

function decodeApp(data: Uint8Array): AppState {
  const [index, hash] = new TextDecoder().decode(data).split(':');
  return { index: Number(index), hash: Number(hash) };
}

export class Simulation {
  private readonly prng: Prng;
  private readonly checker: SafetyChecker;
  private readonly factory: RaftFactory;
  private readonly trace: ((line: string) => void) | undefined;
  private readonly members = new Map<NodeId, Member>();
  private readonly timeline = new Map<number, SimEvent[]>();
  private time = 0;
  private readonly blockedLinks = new Set<string>();
  private healAt = Number.POSITIVE_INFINITY;
  private dropRate: number;
  private duplicateRate: number;
  private readonly maxDelayUnits: number;
  /** Peer links are streams: mostly FIFO, but a reconnect can reorder (this share of messages). */
  private readonly reorderRate: number;
  private readonly lastDeliveryOnLink = new Map<string, number>();
  private readonly maxDiskUnits: number;
  private proposalRate: number;
  /** How often members crash, per time unit; some seeds are much harsher than others. */
  private readonly crashRate: number;
  private proposalSequence = 0;
  private readSequence = 0;
  /** Proposals not yet acknowledged: payload -> when its client retries (refused: soon; else after a timeout). */
  private readonly pendingProposals = new Map<string, number>();
  private readsCompleted = 0;
  private readonly faults: Record<string, number> = {};
  private livenessPhase = false;
  private finalRead: string | undefined;
  private finalReadDone = false;
  readonly voterCount: number;

  constructor(private readonly options: SimulationOptions) {
    this.prng = new Prng(options.seed);
    this.checker = new SafetyChecker(() => this.time);
    this.factory = options.factory ?? ((config, initial) => new Raft(config, initial));
    this.trace = options.trace;
    this.voterCount = this.prng.chance(0.5) ? 3 : 5;
    this.dropRate = this.prng.pick([0, 0.01, 0.05, 0.1]);
    this.duplicateRate = this.prng.pick([0, 0.01, 0.05]);
    this.maxDelayUnits = this.prng.pick([2, 5, 10, 30]);
    this.maxDiskUnits = this.prng.pick([0, 1, 5, 15]);
    this.reorderRate = this.prng.pick([0, 0.05, 0.3]);
    this.proposalRate = this.prng.pick([0.02, 0.05, 0.2]);
    this.crashRate = this.prng.pick([0.001, 0.002, 0.005, 0.01]);
    const voters = Array.from({ length: this.voterCount }, (_, i) => i + 1);
    for (const id of voters) this.addMember(id, voters);
    this.log(
      `seed ${options.seed}: ${this.voterCount} voters, drop ${this.dropRate}, duplicate ${this.duplicateRate}, ` +
        `delay <= ${this.maxDelayUnits}, reorder ${this.reorderRate}, disk <= ${this.maxDiskUnits}, proposals ${this.proposalRate}/unit`,
    );
  }

  run(): SimulationResult {
    const safetyUnits = (this.options.safetyTicks ?? 300) * TICK_UNITS;
    const livenessUnits = (this.options.livenessTicks ?? 400) * TICK_UNITS;
    try {
      for (; this.time < safetyUnits && !this.shouldStop(); this.time++) {
        this.step();
        this.injectFaults();
        this.clientActions();
      }
      if (!this.shouldStop()) this.runLiveness(livenessUnits);
    } catch (error) {
      if (!(error instanceof InvariantViolation)) throw error;
      this.log(`core assertion: ${error.message}`);
      this.checker.failAssertion(error.message);
    }
    return {
      seed: this.options.seed,
      voters: this.voterCount,
      violations: this.checker.violations,
      proposalsCommitted: this.checker.acknowledged.size,
      readsCompleted: this.readsCompleted,
      faults: this.faults,
    };
  }

  private shouldStop(): boolean {
    return (this.options.stopAtFirstViolation ?? false) && this.checker.violations.length > 0;
  }

  private log(line: string): void {
    if (this.trace !== undefined) this.trace(`${String(this.time).padStart(6)} ${line}`);
  }

  private countFault(name: string): void {
    this.faults[name] = (this.faults[name] ?? 0) + 1;
  }

  // ------------------------------------------------------------ members

  private addMember(id: NodeId, initialVoters: readonly NodeId[]): Member {
    const member: Member = {
      id,
      initialVoters,
      raft: undefined,
      epoch: 0,
      disk: new MemoryDisk(),
      app: { index: 0, hash: 0 },
      inFlight: undefined,
      role: 'follower',
      term: 0,
      restartAt: Number.POSITIVE_INFINITY,
      retired: false,
      tickPhase: this.prng.nextInt(TICK_UNITS),
      snapshotEvery: this.prng.pick([5, 20, 50, 1_000_000]),
      snapshotKeep: this.prng.pick([0, 2, 10]),
    };
    this.members.set(id, member);
    this.boot(member);
    return member;
  }

  private boot(member: Member): void {
    const disk = member.disk;
    member.app = disk.snapshot !== undefined ? decodeApp(disk.snapshot.data) : { index: 0, hash: 0 };
    const config: Config = {
      id: member.id,
      electionTimeoutTicks: ELECTION_TIMEOUT_TICKS,
      heartbeatIntervalTicks: HEARTBEAT_INTERVAL_TICKS,
      rng: this.prng.fork(),
      maxMessageBytes: this.prng.pick([64, 1024, 1 << 20]),
      maxInflightMessages: this.prng.pick([1, 4, 64]),
      maxUncommittedBytes: this.prng.pick([64, 1 << 20]),
    };
    member.raft = this.factory(config, disk.initialState({ voters: member.initialVoters, learners: [] }, member.app.index));
    member.role = 'follower';
    member.term = disk.hardState.term;
    member.restartAt = Number.POSITIVE_INFINITY;
  }

  private crash(member: Member, downUnits: number): void {
    this.log(`crash ${member.id}${member.inFlight !== undefined ? ' (losing an unpersisted ready)' : ''}`);
    member.raft = undefined;
    member.inFlight = undefined;
    member.epoch++;
    member.role = 'crashed';
    member.restartAt = this.time + downUnits;
  }

  private restart(member: Member): void {
    this.log(`restart ${member.id} at term ${member.disk.hardState.term}, commit ${member.disk.hardState.commit}`);
    this.boot(member);
  }

  private live(): Member[] {
    return [...this.members.values()].filter((member) => member.raft !== undefined);
  }

  private leader(): Member | undefined {
    let best: Member | undefined;
    for (const member of this.live()) {
      if (member.role === 'leader' && (best === undefined || member.term > best.term)) best = member;
    }
    return best;
  }

  // ------------------------------------------------------------ the event loop

  private schedule(at: number, event: SimEvent): void {
    const bucket = this.timeline.get(at);
    if (bucket === undefined) this.timeline.set(at, [event]);
    else bucket.push(event);
  }

  private step(): void {
    if (this.time >= this.healAt) this.healPartition();
    for (const member of this.members.values()) {
      if (member.raft === undefined && !member.retired && this.time >= member.restartAt) this.restart(member);
    }
    const events = this.timeline.get(this.time);
    this.timeline.delete(this.time);
    for (const event of events ?? []) {
      if (event.kind === 'deliver') this.deliver(event.message);
      else this.completeDisk(event.id, event.epoch);
    }
    for (const member of this.live()) {
      if ((this.time + member.tickPhase) % TICK_UNITS === 0) {
        const raft = member.raft!;
        // A driver may skip the ticks before the one the core names (RaftNode does): those must do nothing.
        const due = raft.ticksUntilTimeout();
        const quiet = member.inFlight === undefined && !raft.hasReady();
        raft.tick();
        if (due > 1 && quiet && raft.hasReady()) this.checker.onEarlyTickActed(member.id, due, raft.status().role);
        this.pump(member);
      }
    }
  }

  private deliver(message: Message): void {
    const target = this.members.get(message.to);
    if (target?.raft === undefined || this.blockedLinks.has(`${message.from}>${message.to}`)) return;
    this.log(`deliver ${describeMessage(message)}`);
    target.raft.step(message);
    this.pump(target);
  }

  private send(messages: readonly Message[]): void {
    for (const message of messages) {
      if (this.blockedLinks.has(`${message.from}>${message.to}`) || this.prng.chance(this.dropRate)) {
        this.log(`drop ${describeMessage(message)}`);
        continue;
      }
      const link = `${message.from}>${message.to}`;
      let at = this.time + this.prng.between(1, this.maxDelayUnits);
      if (!this.prng.chance(this.reorderRate)) at = Math.max(at, this.lastDeliveryOnLink.get(link) ?? 0);
      this.lastDeliveryOnLink.set(link, at);
      this.schedule(at, { kind: 'deliver', message });
      if (this.prng.chance(this.duplicateRate)) {
        this.schedule(this.time + this.prng.between(1, this.maxDelayUnits * 2), { kind: 'deliver', message });
      }
    }
  }

  /** Hand out the member's next Ready if its disk is idle. */
  private pump(member: Member): void {
    while (member.raft !== undefined && member.inFlight === undefined && member.raft.hasReady()) {
      const ready = member.raft.ready();
      this.observeRoles(member, ready);
      this.send(ready.messages);
      member.inFlight = ready;
      const latency = this.maxDiskUnits === 0 ? 0 : this.prng.between(0, this.maxDiskUnits);
      if (latency > 0) {
        this.schedule(this.time + latency, { kind: 'disk', id: member.id, epoch: member.epoch });
        return;
      }
      this.completeDisk(member.id, member.epoch);
    }
  }

  private observeRoles(member: Member, ready: Ready): void {
    if (ready.hardState !== undefined) member.term = ready.hardState.term;
    const soft = ready.softState;
    if (soft === undefined || soft.role === member.role) return;
    member.role = soft.role;
    this.log(`member ${member.id} is ${soft.role} at term ${member.term} (leader ${soft.leader})`);
    if (soft.role !== 'leader') return;
    const raft = member.raft!;
    const status = raft.status();
    this.checker.onLeader(member.id, status.term, (index) => raft.logTerm(index), status.firstIndex, status.lastIndex);
  }

  /** The member's disk finished writing its in-flight Ready: persist, send, apply, advance. */
  private completeDisk(id: NodeId, epoch: number): void {
    const member = this.members.get(id)!;
    const ready = member.inFlight;
    if (member.raft === undefined || member.epoch !== epoch || ready === undefined) return;
    member.inFlight = undefined;
    this.persist(member, ready);
    this.send(ready.messagesAfterPersist);
    this.apply(member, ready);
    member.raft.advance(ready);
    this.maybeCompact(member);
    this.retireRemovedMembers(member);
    this.pump(member);
  }

  private persist(member: Member, ready: Ready): void {
    if (ready.entries.length > 0) {
      // The entry before the first new one, as it will stand on disk (a snapshot in this Ready replaces the log).
      const before = ready.entries[0]!.index - 1;
      const previousTerm = ready.snapshot?.meta.index === before ? ready.snapshot.meta.term : ready.snapshot !== undefined ? undefined : member.disk.termAt(before);
      this.checker.onPersist(member.id, ready.entries, previousTerm);
    }
    member.disk.persist(ready);
  }

  private apply(member: Member, ready: Ready): void {
    if (ready.snapshot !== undefined) {
      member.app = decodeApp(ready.snapshot.data);
      this.log(`member ${member.id} installs snapshot at ${ready.snapshot.meta.index}`);
      this.checker.onRestore(member.id, member.app.index, member.app.hash);
    }
    for (const entry of ready.committedEntries) {
      if (entry.index <= member.app.index) continue;
      if (entry.index !== member.app.index + 1) {
        this.checker.failApplyOrder(`member ${member.id} was handed entry ${entry.index} to apply after ${member.app.index}`);
      }
      member.app = { index: entry.index, hash: chainHash(member.app.hash, entry) };
      this.checker.onApply(member.id, entry, member.app.hash);
      if (entry.kind === 'normal' && entry.data.byteLength > 0) {
        const payload = new TextDecoder().decode(entry.data);
        if (this.pendingProposals.delete(payload)) this.log(`commit ${payload} at ${entry.index}`);
        this.checker.onAcknowledge(payload, entry.index);
      }
    }
    for (const readState of ready.readStates) {
      if (!this.checker.onReadResult(readState.context, readState.index)) continue;
      this.readsCompleted++;
      this.log(`read ${readState.context} on ${member.id} -> index ${readState.index}`);
      if (readState.context === this.finalRead) this.finalReadDone = true;
    }
  }

  private maybeCompact(member: Member): void {
    const raft = member.raft!;
    const snapshotIndex = member.disk.snapshot?.meta.index ?? 0;
    if (member.app.index - snapshotIndex < member.snapshotEvery) return;
    raft.compact(member.app.index, encodeApp(member.app), member.snapshotKeep);
    member.disk.saveSnapshot(raft.lastSnapshot()!, member.snapshotKeep);
    this.log(`member ${member.id} snapshots at ${member.app.index} (keeping ${member.snapshotKeep} entries)`);
  }

  /** Operators shut down members once their removal is applied (the leader's view). */
  private retireRemovedMembers(member: Member): void {
    if (member.role !== 'leader') return;
    const conf = member.raft!.status().conf;
    for (const other of this.members.values()) {
      if (conf.voters.includes(other.id) || conf.learners.includes(other.id)) {
        this.joined.add(other.id);
        continue;
      }
      if (other.retired || !this.joined.has(other.id)) continue;
      this.log(`retire removed member ${other.id}`);
      other.retired = true;
      if (other.raft !== undefined) this.crash(other, Number.POSITIVE_INFINITY);
    }
  }

  /** Members seen in a leader's configuration: leaving it afterwards means they were removed. */
  private readonly joined = new Set<NodeId>();

  // ------------------------------------------------------------ faults

  private injectFaults(): void {
    const prng = this.prng;
    const live = this.live();
    if (prng.chance(this.crashRate) && live.length > 0) {
      const crashed = [...this.members.values()].filter((m) => m.raft === undefined && !m.retired).length;
      // Mostly a minority; sometimes a majority, which must stall, not corrupt.
      if (crashed < Math.floor(this.voterCount / 2) || prng.chance(0.2)) {
        // Half the time the leader: the fault that matters most to users.
        const leader = this.leader();
        const victim = leader !== undefined && prng.chance(0.5) ? leader : prng.pick(live);
        this.countFault(victim === leader ? 'crash-leader' : 'crash');
        this.crash(victim, prng.between(2, 40) * TICK_UNITS);
      }
    }
    if (prng.chance(0.0015) && this.blockedLinks.size === 0) this.partition();
    if (prng.chance(0.001)) this.changeMembership();
    if (prng.chance(0.0008)) {
      const leader = this.leader();
      if (leader !== undefined) {
        const voters = leader.raft!.status().conf.voters.filter((id) => id !== leader.id);
        if (voters.length > 0) {
          const target = prng.pick(voters);
          this.countFault('transfer');
          const result = leader.raft!.transferLeadership(target);
          this.log(`transfer leadership ${leader.id} -> ${target}: ${result.kind}`);
          this.pump(leader);
        }
      }
    }
    if (prng.chance(0.0005)) {
      this.dropRate = prng.pick([0, 0.01, 0.05, 0.3]);
      this.log(`drop rate now ${this.dropRate}`);
    }
  }

  private partition(): void {
    const ids = [...this.members.keys()];
    const prng = this.prng;
    if (prng.chance(0.3)) {
      // One-way cuts: a member can send but not receive, or the reverse.
      const victim = prng.pick(ids);
      const inbound = prng.chance(0.5);
      for (const other of ids) if (other !== victim) this.blockedLinks.add(inbound ? `${other}>${victim}` : `${victim}>${other}`);
      this.countFault('one-way-partition');
      this.log(`one-way partition: ${victim} cannot ${inbound ? 'receive' : 'send'}`);
    } else {
      const side = new Set(ids.filter(() => prng.chance(0.5)));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blockedLinks.add(`${a}>${b}`);
      this.countFault('partition');
      this.log(`partition {${[...side].join(' ')}} | {${ids.filter((id) => !side.has(id)).join(' ')}}`);
    }
    this.healAt = this.time + prng.between(20, 150) * TICK_UNITS;
  }

  private healPartition(): void {
    if (this.blockedLinks.size > 0) this.log('heal partition');
    this.blockedLinks.clear();
    this.healAt = Number.POSITIVE_INFINITY;
  }

  private changeMembership(): void {
    const leader = this.leader();
    if (leader === undefined) return;
    const raft = leader.raft!;
    const status = raft.status();
    const { voters, learners } = status.conf;
    const prng = this.prng;
    const choice = prng.nextInt(3);
    if (choice === 0 && voters.length + learners.length < 7) {
      const id = [...Array(MAX_MEMBER_ID).keys()].map((i) => i + 1).find((candidate) => !this.members.has(candidate));
      if (id === undefined) return;
      const result = raft.proposeConfChange({ type: 'add-learner', nodeId: id });
      this.log(`propose add-learner ${id}: ${result.kind}`);
      if (result.kind === 'accepted') {
        this.countFault('add-learner');
        this.addMember(id, []);
      }
    } else if (choice === 1 && learners.length > 0 && voters.length < 5) {
      const id = prng.pick(learners);
      const caughtUp = (status.progress?.get(id)?.match ?? 0) >= status.commit - 5;
      if (!caughtUp) return;
      const result = raft.proposeConfChange({ type: 'add-voter', nodeId: id });
      this.log(`propose add-voter ${id}: ${result.kind}`);
      if (result.kind === 'accepted') this.countFault('promote');
    } else if (choice === 2 && voters.length > 3) {
      const id = prng.pick(voters);
      const result = raft.proposeConfChange({ type: 'remove', nodeId: id });
      this.log(`propose remove ${id}: ${result.kind}`);
      if (result.kind === 'accepted') this.countFault('remove');
    }
    this.pump(leader);
  }

  // ------------------------------------------------------------ clients

  private clientActions(): void {
    const prng = this.prng;
    const live = this.live();
    if (live.length === 0) return;
    if (prng.chance(this.proposalRate)) {
      const payload = `p${++this.proposalSequence}`;
      this.propose(prng.pick(live), payload);
    }
    if (prng.chance(0.01)) this.read(prng.pick(live));
  }

  private propose(member: Member, payload: string): void {
    const result = member.raft!.propose(new TextEncoder().encode(payload));
    const retryTicks = result.kind === 'refused' ? 2 : 40;
    this.pendingProposals.set(payload, this.time + retryTicks * TICK_UNITS);
    this.log(`propose ${payload} at ${member.id}: ${result.kind}${result.kind === 'refused' ? ` (${result.reason})` : ''}`);
    this.pump(member);
  }

  private read(member: Member): string {
    const context = `r${++this.readSequence}`;
    this.checker.onReadInvoke(context, member.id);
    const result = member.raft!.readIndex(context);
    this.log(`read ${context} at ${member.id}: ${result.kind}`);
    this.pump(member);
    return context;
  }

  // ------------------------------------------------------------ liveness

  private runLiveness(budgetUnits: number): void {
    this.livenessPhase = true;
    this.log('liveness phase: heal everything');
    this.healPartition();
    this.dropRate = 0;
    this.duplicateRate = 0;
    this.proposalRate = 0;
    for (const member of this.members.values()) {
      if (member.raft === undefined && !member.retired) this.restart(member);
    }
    const deadline = this.time + budgetUnits;
    for (; this.time < deadline && !this.shouldStop(); this.time++) {
      this.step();
      const leader = this.leader();
      if (leader === undefined) continue;
      for (const [payload, retryAt] of this.pendingProposals) {
        if (retryAt <= this.time) this.propose(leader, payload);
      }
      if (this.pendingProposals.size > 0) continue;
      if (this.finalRead === undefined || (!this.finalReadDone && this.time % (5 * TICK_UNITS) === 0)) {
        this.finalRead = this.read(leader);
      }
      if (this.finalReadDone && this.converged()) break;
    }
    const members = this.finalMembers();
    if (this.pendingProposals.size > 0 || !this.finalReadDone || !this.converged()) {
      const pending = [...this.pendingProposals.keys()].slice(0, 5).join(' ');
      const applied = members.map((m) => `${m.id}:${m.app.index}`).join(' ');
      this.checker.failLiveness(
        `not converged within ${budgetUnits / TICK_UNITS} ticks after healing: ${this.pendingProposals.size} proposals pending (${pending}), ` +
          `final read ${this.finalReadDone ? 'done' : 'not done'}, leader ${this.leader()?.id ?? 'none'}, applied ${applied}`,
      );
      return;
    }
    this.checker.checkDurability(new Map(members.map((m) => [m.id, { appliedIndex: m.app.index }])));
  }

  private finalMembers(): Member[] {
    const leader = this.leader();
    if (leader === undefined) return this.live();
    const conf = leader.raft!.status().conf;
    return [...conf.voters, ...conf.learners].map((id) => this.members.get(id)!).filter((m) => m.raft !== undefined);
  }

  private converged(): boolean {
    const leader = this.leader();
    if (leader === undefined) return false;
    const commit = leader.raft!.status().commit;
    return this.finalMembers().every((member) => member.app.index === commit);
  }
}

export function simulate(options: SimulationOptions): SimulationResult {
  return new Simulation(options).run();
}
