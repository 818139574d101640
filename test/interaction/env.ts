// The interaction environment behind the scenario scripts: members with
// in-memory disks, per-recipient message queues, partitions, crashes and
// restarts. Every command returns the text the script expects.
//
// Timeouts are exact (the Rng always returns 0): an election timeout of 10
// ticks means a follower campaigns on its 10th tick without a leader.

import {
  describeConf,
  describeEntry,
  describeHardState,
  describeMessage,
  describeSnapshot,
  Raft,
  type Config,
  type Entry,
  type InitialState,
  type Message,
  type NodeId,
  type Ready,
} from '../../raft/core/index.js';
import { MemoryDisk } from '../support/memory-disk.js';
import type { Block } from './datadriven.js';

interface Member {
  readonly id: NodeId;
  raft: Raft | undefined;
  readonly config: Omit<Config, 'id' | 'rng'>;
  readonly initialVoters: NodeId[];
  readonly initialLearners: NodeId[];
  readonly disk: MemoryDisk;
  /** The application's log of applied entries (kept across restarts: it is durable app state). */
  applied: Entry[];
}

const ZERO_RNG = { nextInt: () => 0 };
const encoder = new TextEncoder();

export type RaftFactory = (config: Config, initial: InitialState) => Raft;

export class InteractionEnv {
  constructor(private readonly factory: RaftFactory = (config, initial) => new Raft(config, initial)) {}

  private readonly members = new Map<NodeId, Member>();
  /** Messages in flight, in send order. */
  private network: Message[] = [];
  private readonly groupOf = new Map<NodeId, number>();

  handle(block: Block): string {
    const handler = this.handlers[block.name];
    if (handler === undefined) throw new Error(`unknown command "${block.name}"`);
    const output = handler.call(this, block);
    return output === '' ? 'ok' : output;
  }

  private readonly handlers: Record<string, (this: InteractionEnv, block: Block) => string> = {
    'add-nodes': this.addNodes,
    campaign: (b) => this.eachId(b, (m) => void m.raft!.campaign()),
    propose: this.propose,
    'propose-conf-change': this.proposeConfChange,
    'process-ready': (b) => this.ids(b).map((id) => this.processReady(this.live(id))).join('\n'),
    'deliver-msgs': this.deliverMessages,
    stabilize: this.stabilize,
    tick: this.tick,
    'tick-election': (b) => this.tickTimes(b, (m) => m.config.electionTimeoutTicks),
    'tick-heartbeat': (b) => this.tickTimes(b, (m) => m.config.heartbeatIntervalTicks),
    partition: this.partition,
    heal: () => {
      // Messages that crossed the partition were lost in it.
      this.network = this.network.filter((message) => this.linkUp(message));
      this.groupOf.clear();
      return '';
    },
    crash: this.crash,
    restart: this.restart,
    'transfer-leadership': this.transferLeadership,
    'read-index': this.readIndex,
    compact: this.compact,
    status: (b) => this.ids(b).map((id) => this.status(this.member(id))).join('\n'),
    'raft-log': this.raftLog,
    'raft-state': () => [...this.members.values()].map((m) => this.status(m)).join('\n'),
    'report-unreachable': (b) => {
      this.live(this.id(b, 0)).raft!.reportUnreachable(this.id(b, 1));
      return '';
    },
    'expect-role': this.expectRole,
    'expect-commit': this.expectCommit,
    'expect-applied': this.expectApplied,
  };

  // ------------------------------------------------------------ arguments

  private id(block: Block, position: number): NodeId {
    const text = block.positional[position];
    const id = Number(text);
    if (!Number.isInteger(id) || id <= 0) throw new Error(`${block.name}: argument ${position + 1} must be a member id, got ${text}`);
    return id;
  }

  private ids(block: Block): NodeId[] {
    if (block.positional.length === 0) return [...this.members.keys()].filter((id) => this.members.get(id)!.raft !== undefined);
    return block.positional.map((_, position) => this.id(block, position));
  }

  private member(id: NodeId): Member {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  private live(id: NodeId): Member {
    const member = this.member(id);
    if (member.raft === undefined) throw new Error(`member ${id} is crashed`);
    return member;
  }

  private eachId(block: Block, action: (member: Member) => void): string {
    for (const id of this.ids(block)) action(this.live(id));
    return '';
  }

  private static idList(text: string | undefined): NodeId[] {
    if (text === undefined || text === '') return [];
    return text.replace(/[()]/g, '').split(',').map(Number);
  }

  // ------------------------------------------------------------ commands

  private addNodes(block: Block): string {
    const count = Number(block.positional[0]);
    const option = (name: string, fallback: number): number => Number(block.options.get(name) ?? fallback);
    const flag = (name: string, fallback: boolean): boolean => (block.options.get(name) ?? String(fallback)) === 'true';
    const first = this.members.size + 1;
    const voters = block.options.has('voters')
      ? InteractionEnv.idList(block.options.get('voters'))
      : Array.from({ length: count }, (_, i) => first + i);
    const learners = InteractionEnv.idList(block.options.get('learners'));
    const joining = flag('join', false);
    const config: Omit<Config, 'id' | 'rng'> = {
      electionTimeoutTicks: option('election', 10),
      heartbeatIntervalTicks: option('heartbeat', 1),
      preVote: flag('pre-vote', false),
      checkQuorum: flag('check-quorum', false),
      disableProposalForwarding: !flag('forwarding', true),
      maxMessageBytes: option('max-msg-bytes', 1 << 20),
      maxInflightMessages: option('max-inflight', 256),
      maxUncommittedBytes: option('max-uncommitted-bytes', 1 << 30),
    };
    const lines: string[] = [];
    for (let id = first; id < first + count; id++) {
      const member: Member = {
        id,
        raft: undefined,
        config,
        initialVoters: joining ? [] : voters,
        initialLearners: joining ? [] : learners,
        disk: new MemoryDisk(),
        applied: [],
      };
      this.members.set(id, member);
      this.boot(member);
      lines.push(this.status(member));
    }
    return lines.join('\n');
  }

  private boot(member: Member): void {
    const applied = member.applied.length === 0 ? 0 : member.applied[member.applied.length - 1]!.index;
    member.raft = this.factory(
      { ...member.config, id: member.id, rng: ZERO_RNG },
      member.disk.initialState({ voters: member.initialVoters, learners: member.initialLearners }, applied),
    );
  }

  private propose(block: Block): string {
    const member = this.live(this.id(block, 0));
    const data = block.positional.slice(1).join(' ');
    return InteractionEnv.describeResult(member.raft!.propose(encoder.encode(data)));
  }

  private proposeConfChange(block: Block): string {
    const member = this.live(this.id(block, 0));
    const type = block.positional[1];
    if (type !== 'add-voter' && type !== 'add-learner' && type !== 'remove') {
      throw new Error(`propose-conf-change: type must be add-voter, add-learner or remove, got ${type}`);
    }
    return InteractionEnv.describeResult(member.raft!.proposeConfChange({ type, nodeId: this.id(block, 2) }));
  }

  private static describeResult(result: ReturnType<Raft['propose']>): string {
    switch (result.kind) {
      case 'accepted':
        return `accepted at ${result.term}/${result.index}`;
      case 'forwarded':
        return `forwarded to ${result.leader}`;
      case 'refused':
        return `refused (${result.reason}, leader ${result.leader}): ${result.message}`;
    }
  }

  /** Hand out one Ready: persist it, queue its messages, apply it, advance. */
  private processReady(member: Member): string {
    const raft = member.raft!;
    if (!raft.hasReady()) return `> ${member.id}: no ready`;
    const ready = raft.ready();
    const lines = [`> ${member.id} handling Ready`, ...this.describeReady(ready).map((line) => `  ${line}`)];
    this.network.push(...ready.messages);
    member.disk.persist(ready);
    this.network.push(...ready.messagesAfterPersist);
    if (ready.snapshot !== undefined) member.applied = [];
    member.applied.push(...ready.committedEntries);
    raft.advance(ready);
    return lines.join('\n');
  }

  private describeReady(ready: Ready): string[] {
    const lines: string[] = [];
    if (ready.softState !== undefined) lines.push(`State: ${ready.softState.role} (leader ${ready.softState.leader})`);
    if (ready.hardState !== undefined) lines.push(`HardState ${describeHardState(ready.hardState)}`);
    if (ready.snapshot !== undefined) lines.push(`Snapshot ${describeSnapshot(ready.snapshot)}`);
    if (ready.entries.length > 0) lines.push(`Entries: ${ready.entries.map(describeEntry).join(', ')}`);
    if (ready.committedEntries.length > 0) lines.push(`Committed: ${ready.committedEntries.map(describeEntry).join(', ')}`);
    for (const message of ready.messages) lines.push(`send: ${describeMessage(message)}`);
    for (const message of ready.messagesAfterPersist) lines.push(`send after persist: ${describeMessage(message)}`);
    for (const read of ready.readStates) lines.push(`ReadState context=${read.context} index=${read.index}`);
    return lines;
  }

  private linkUp(message: Message): boolean {
    const from = this.groupOf.get(message.from) ?? 0;
    const to = this.groupOf.get(message.to) ?? 0;
    return from === to;
  }

  /** Deliver (or drop) every queued message for the given members (all by default). */
  private deliverMessages(block: Block): string {
    const targets = new Set(this.ids(block));
    const drop = block.options.get('drop') === 'true';
    const kind = block.options.get('type');
    const from = block.options.has('from') ? Number(block.options.get('from')) : undefined;
    const order = { reverse: block.options.get('reverse') === 'true', duplicate: block.options.get('duplicate') === 'true' };
    const select = (m: Message): boolean => targets.has(m.to) && (kind === undefined || m.kind === kind) && (from === undefined || m.from === from);
    return this.deliver(select, drop, order).join('\n');
  }

  /** Deliver (or drop) the selected messages; `reverse` reorders them, `duplicate` delivers each twice. */
  private deliver(select: (message: Message) => boolean, drop: boolean, order = { reverse: false, duplicate: false }): string[] {
    let chosen = this.network.filter(select);
    if (order.reverse) chosen = chosen.reverse();
    if (order.duplicate) chosen = chosen.flatMap((message) => [message, message]);
    this.network = this.network.filter((message) => !select(message));
    const lines: string[] = [];
    for (const message of chosen) {
      const target = this.members.get(message.to);
      if (drop) {
        lines.push(`dropped: ${describeMessage(message)}`);
      } else if (target?.raft === undefined || !this.linkUp(message)) {
        lines.push(`lost: ${describeMessage(message)}`);
      } else {
        lines.push(describeMessage(message));
        target.raft.step(message);
      }
    }
    return lines;
  }

  /** Alternate ready handling and delivery until nothing moves. */
  private stabilize(block: Block): string {
    const ids = new Set(this.ids(block));
    const lines: string[] = [];
    for (let round = 0; round < 100; round++) {
      let moved = false;
      for (const id of ids) {
        const member = this.members.get(id)!;
        while (member.raft?.hasReady() === true) {
          lines.push(this.processReady(member));
          moved = true;
        }
      }
      const delivered = this.deliver((m) => ids.has(m.to), false);
      if (delivered.length > 0) moved = true;
      lines.push(...delivered);
      if (!moved) return lines.join('\n');
    }
    throw new Error('stabilize: still moving after 100 rounds');
  }

  private tick(block: Block): string {
    const times = Number(block.positional[1] ?? 1);
    const member = this.live(this.id(block, 0));
    for (let i = 0; i < times; i++) member.raft!.tick();
    return '';
  }

  private tickTimes(block: Block, times: (member: Member) => number): string {
    for (const id of this.ids(block)) {
      const member = this.live(id);
      for (let i = times(member); i > 0; i--) member.raft!.tick();
    }
    return '';
  }

  /** `partition 1 | 2 3`: members in different groups cannot exchange messages. */
  private partition(block: Block): string {
    this.groupOf.clear();
    let group = 0;
    for (const word of block.positional) {
      if (word === '|') group++;
      else this.groupOf.set(Number(word), group);
    }
    return '';
  }

  private crash(block: Block): string {
    for (const id of this.ids(block)) {
      const member = this.live(id);
      member.raft = undefined;
      this.network = this.network.filter((message) => message.to !== id);
    }
    return '';
  }

  private restart(block: Block): string {
    return this.ids(block)
      .map((id) => {
        const member = this.member(id);
        if (member.raft !== undefined) throw new Error(`member ${id} is running`);
        // Whatever was sent to it while it was down never arrived.
        this.network = this.network.filter((message) => message.to !== id);
        this.boot(member);
        return this.status(member);
      })
      .join('\n');
  }

  private transferLeadership(block: Block): string {
    const from = Number(block.options.get('from'));
    const to = Number(block.options.get('to'));
    const result = this.live(from).raft!.transferLeadership(to);
    return result.kind === 'started' ? `transfer to ${result.target} started` : `refused (${result.reason}): ${result.message}`;
  }

  private readIndex(block: Block): string {
    const member = this.live(this.id(block, 0));
    const result = member.raft!.readIndex(block.positional[1] ?? 'ctx');
    return result.kind === 'pending' ? 'pending' : `refused (${result.reason}, leader ${result.leader}): ${result.message}`;
  }

  private compact(block: Block): string {
    const member = this.live(this.id(block, 0));
    const raft = member.raft!;
    const index = block.positional[1] === undefined ? raft.status().applied : Number(block.positional[1]);
    const keep = Number(block.options.get('keep') ?? 0);
    raft.compact(index, encoder.encode(`state@${index}`), keep);
    member.disk.saveSnapshot(raft.lastSnapshot()!, keep);
    const status = raft.status();
    return `snapshot at ${index}, log now ${status.firstIndex}..${status.lastIndex}`;
  }

  private status(member: Member): string {
    if (member.raft === undefined) return `${member.id}: crashed`;
    const s = member.raft.status();
    const head = `${s.id}: ${s.role} term=${s.term} vote=${s.vote} leader=${s.leader} commit=${s.commit} applied=${s.applied} log=${s.firstIndex}..${s.lastIndex} ${describeConf(s.conf)}`;
    if (s.progress === undefined) return head;
    const progress = [...s.progress]
      .filter(([id]) => id !== s.id)
      .map(([id, p]) => `  ${id}: ${p.state} match=${p.match} next=${p.next}${p.inflight > 0 ? ` inflight=${p.inflight}` : ''}${p.learner ? ' learner' : ''}`);
    return [head, ...progress].join('\n');
  }

  private raftLog(block: Block): string {
    const member = this.live(this.id(block, 0));
    const raft = member.raft!;
    const s = raft.status();
    const lines: string[] = [];
    for (let index = s.firstIndex; index <= s.lastIndex; index++) lines.push(describeEntry(raft.logEntry(index)!));
    return lines.length === 0 ? `log empty after ${s.firstIndex - 1}` : lines.join('\n');
  }

  private expectRole(block: Block): string {
    const member = this.live(this.id(block, 0));
    const role = member.raft!.status().role;
    const wanted = block.positional[1];
    if (role !== wanted) throw new Error(`expected member ${member.id} to be ${wanted}, it is ${role}`);
    return `${member.id} is ${role}`;
  }

  private expectCommit(block: Block): string {
    const member = this.live(this.id(block, 0));
    const commit = member.raft!.status().commit;
    const wanted = Number(block.positional[1]);
    if (commit !== wanted) throw new Error(`expected member ${member.id} to have commit ${wanted}, it has ${commit}`);
    return `${member.id} commit=${commit}`;
  }

  /** `expect-applied ID a b c`: the data of the non-empty normal entries member ID applied. */
  private expectApplied(block: Block): string {
    const member = this.member(this.id(block, 0));
    const decoder = new TextDecoder();
    const data = member.applied
      .filter((entry): entry is Entry & { kind: 'normal' } => entry.kind === 'normal' && entry.data.byteLength > 0)
      .map((entry) => decoder.decode(entry.data));
    const wanted = block.positional.slice(1);
    if (data.join(' ') !== wanted.join(' ')) {
      throw new Error(`expected member ${member.id} to have applied [${wanted.join(' ')}], it applied [${data.join(' ')}]`);
    }
    return `${member.id} applied ${data.join(' ') || 'nothing'}`;
  }
}
