// A linearizability checker for histories of registers, after Wing & Gong
// ("Testing and verifying concurrent objects", 1993) with Lowe's memoization
// ("Testing for linearizability", 2017), the way Porcupine implements it:
// call and return events sorted by time in a doubly linked list, operations
// lifted out of it as they are linearized and put back when the search
// backtracks, and a cache of (linearized set, register value) already
// explored so no state is searched twice.
//
// Pure and deterministic: the chaos suite records the history, this decides
// it. Keys are checked one at a time (P-compositionality, Herlihy & Wing: a
// history is linearizable iff the sub-history of every object is). Per key:
// 1. Two shortcuts refute the commonest bugs in O(n log n) with a precise
//    explanation: an observed value nobody wrote in time, a stale value.
// 2. The search (KeySearch), with three prunings that keep it near-linear on
//    real histories; each is argued where it is implemented, and the tests
//    compare the whole against brute force on thousands of small histories.
// 3. On failure, an explanation from the dead end that got furthest in time.
//
// Indeterminate operations (the client timed out or lost its connection) may
// or may not have taken effect, at any time after they were invoked. They get
// their return at +infinity: the search may linearize them anywhere after
// their call, and whatever is left when every completed operation has been
// placed goes at the very end, where nothing observes it — the same as never
// having happened. Their output is unknown, so it is not checked: an
// indeterminate get is dropped outright (no effect, nothing to check), an
// indeterminate put always applies, an indeterminate cas applies iff the key
// holds its expected value (if it took effect, it behaved as a cas does).
// Completed operations are tried before indeterminate ones at every step, so
// an indeterminate write is placed only when nothing else fits.
//
// Timestamps: an operation whose call is at the same millisecond as another's
// return is taken as concurrent with it (calls sort before returns at equal
// times), so the coarse clock never produces a false alarm.

/** An operation one client performed on one key, as the chaos suite recorded it. */
export type Operation = PutOperation | GetOperation | CasOperation;

interface OperationBase {
  /** Unique in the history; explanations name operations by it. */
  readonly id: number;
  readonly client: number;
  readonly key: string;
  /** When the client sent the request. */
  readonly invokeMs: number;
  /**
   * When the client got the answer; undefined when it never did. An operation
   * without a result is indeterminate whether or not this is set (it may take
   * effect after the client gave up), so it bounds nothing.
   */
  readonly completeMs: number | undefined;
}

/** Failed for sure: refused before it was proposed, so it took no effect. Such operations are dropped. */
export interface FailedResult {
  readonly ok: false;
}

export interface PutOperation extends OperationBase {
  readonly kind: 'put';
  readonly value: string;
  /** Absent: indeterminate. */
  readonly result?: { readonly ok: true } | FailedResult;
}

export interface GetOperation extends OperationBase {
  readonly kind: 'get';
  /** Absent: indeterminate (and then dropped: a read has no effect). value null: the key was absent. */
  readonly result?: { readonly ok: true; readonly value: string | null } | FailedResult;
}

export interface CasOperation extends OperationBase {
  readonly kind: 'cas';
  /** What the key must hold for the swap; null: the key must be absent. */
  readonly expected: string | null;
  /** What the key holds after a successful swap. */
  readonly value: string;
  /** Absent: indeterminate. */
  readonly result?: { readonly ok: true; readonly succeeded: boolean } | FailedResult;
}

export interface CheckOptions {
  /** Search steps allowed per key before giving up with 'unknown'. */
  readonly maxSteps?: number;
}

export type CheckResult =
  | { readonly linearizable: true; readonly keys: number }
  | {
      readonly linearizable: false;
      readonly key: string;
      readonly explanation: string;
      /** Ids of the operations the explanation names. */
      readonly operations: readonly number[];
    }
  | { readonly linearizable: 'unknown'; readonly key: string; readonly reason: string };

/**
 * Many times what thousands of operations per key from ten clients need (a
 * linearizable history takes a few steps per operation). A pathological one
 * (say twenty writes all in flight at once, then contradictory reads) stops
 * after a few seconds, its cache at most a few hundred MB (one short string
 * per state, far fewer states than steps).
 */
export const DEFAULT_MAX_STEPS_PER_KEY = 2_000_000;

/** A history that cannot have been recorded (a bug in the recorder, not in the system under test). */
export class HistoryError extends Error {
  override readonly name = 'HistoryError';
  constructor(
    message: string,
    readonly operationId: number,
  ) {
    super(message);
  }
}

/**
 * Decides whether the history is linearizable for a register per key
 * (initially absent). Keys are checked in sorted order; a key shown not
 * linearizable is reported ahead of one whose search ran out of steps.
 */
export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS_PER_KEY;
  if (!(maxSteps > 0)) throw new RangeError(`maxSteps must be positive, not ${maxSteps}`);
  const byKey = new Map<string, Operation[]>();
  const seen = new Set<number>();
  for (const operation of history) {
    validate(operation);
    if (seen.has(operation.id)) throw new HistoryError(`operation id ${operation.id} appears twice`, operation.id);
    seen.add(operation.id);
    const list = byKey.get(operation.key);
    if (list === undefined) byKey.set(operation.key, [operation]);
    else list.push(operation);
  }
  let unknown: CheckResult | undefined;
  let checked = 0;
  for (const key of [...byKey.keys()].sort()) {
    const result = checkKey(key, byKey.get(key) ?? [], maxSteps);
    if (result === undefined) continue;
    checked += 1;
    if (result.linearizable === false) return result;
    if (result.linearizable === 'unknown') unknown ??= result;
  }
  return unknown ?? { linearizable: true, keys: checked };
}

function validate(operation: Operation): void {
  const fail = (problem: string): never => {
    throw new HistoryError(`operation #${operation.id} (${operation.kind} on ${JSON.stringify(operation.key)}): ${problem}`, operation.id);
  };
  if (!Number.isFinite(operation.invokeMs)) fail('invokeMs is not a finite number');
  const { completeMs, result } = operation;
  if (completeMs !== undefined && !(completeMs >= operation.invokeMs)) fail(`completed at ${completeMs} ms, before it was invoked at ${operation.invokeMs} ms`);
  if (result?.ok === true && completeMs === undefined) fail('has a result but no completeMs');
  if (operation.kind === 'put' || operation.kind === 'cas') {
    if (typeof operation.value !== 'string') fail('value is not a string');
  }
  if (operation.kind === 'cas' && operation.expected !== null && typeof operation.expected !== 'string') fail('expected is neither a string nor null');
  if (operation.kind === 'get' && operation.result?.ok === true) {
    const value = operation.result.value;
    if (value !== null && typeof value !== 'string') fail('result.value is neither a string nor null');
  }
  if (operation.kind === 'cas' && operation.result?.ok === true && typeof operation.result.succeeded !== 'boolean') fail('result.succeeded is not a boolean');
}

// ---------------------------------------------------------------------------
// One key: preparation

/** How an operation acts on the register, with its outcome folded in. */
type Effect = 'write' | 'read' | 'cas-succeeded' | 'cas-failed' | 'cas-unknown';

interface KeyOperation {
  readonly source: Operation;
  readonly effect: Effect;
  /** Interned: what a write or cas writes, what a read returned. 0 is absent. */
  readonly value: number;
  /** Interned: what a cas expects. */
  readonly expected: number;
  readonly invokeMs: number;
  /** Infinity when indeterminate. */
  readonly returnMs: number;
  /** Indeterminate write nobody observes (see KeySearch). */
  readonly unobserved: boolean;
  /** Interned value a completed get returned or a successful cas expected, else -1. */
  readonly observes: number;
  /** Interned value it may write (put, successful or indeterminate cas), else -1. */
  readonly writes: number;
}

interface PreparedKey {
  readonly key: string;
  /** Completed operations, by invocation. */
  readonly determinate: readonly KeyOperation[];
  /** Indeterminate operations (gets dropped), by invocation. */
  readonly indeterminate: readonly KeyOperation[];
  /** Operations that failed for sure, kept only to explain. */
  readonly dropped: readonly Operation[];
  /** Interned values expected by completed cas operations that failed. */
  readonly failedCasExpected: ReadonlySet<number>;
  readonly values: readonly (string | null)[];
}

const ABSENT = 0;
const NOT_ALLOWED = -1;

/** The register: the value after the operation takes effect in this state, or NOT_ALLOWED. */
function apply(operation: KeyOperation, state: number): number {
  switch (operation.effect) {
    case 'write':
      return operation.value;
    case 'read':
      return state === operation.value ? state : NOT_ALLOWED;
    case 'cas-succeeded':
      return state === operation.expected ? operation.value : NOT_ALLOWED;
    case 'cas-failed':
      return state === operation.expected ? NOT_ALLOWED : state;
    case 'cas-unknown':
      return state === operation.expected ? operation.value : state;
  }
}

function byInvocation(a: Operation, b: Operation): number {
  return a.invokeMs - b.invokeMs || a.id - b.id;
}

function prepareKey(key: string, operations: readonly Operation[]): PreparedKey {
  const values: (string | null)[] = [null];
  const index = new Map<string | null, number>([[null, ABSENT]]);
  const intern = (value: string | null): number => {
    let id = index.get(value);
    if (id === undefined) {
      id = values.length;
      values.push(value);
      index.set(value, id);
    }
    return id;
  };
  const kept: Operation[] = [];
  const dropped: Operation[] = [];
  for (const operation of [...operations].sort(byInvocation)) {
    if (operation.result?.ok === false) dropped.push(operation);
    else if (!(operation.kind === 'get' && operation.result === undefined)) kept.push(operation);
  }
  // Values somebody observes: read by a completed get, or expected by any cas.
  const observed = new Set<number>();
  for (const operation of kept) {
    if (operation.kind === 'get' && operation.result?.ok === true) observed.add(intern(operation.result.value));
    if (operation.kind === 'cas') observed.add(intern(operation.expected));
  }
  const determinate: KeyOperation[] = [];
  const indeterminate: KeyOperation[] = [];
  const failedCasExpected = new Set<number>();
  for (const source of kept) {
    const prepared = prepareOperation(source, intern, observed);
    (prepared.returnMs === Infinity ? indeterminate : determinate).push(prepared);
    if (prepared.effect === 'cas-failed') failedCasExpected.add(prepared.expected);
  }
  return { key, determinate, indeterminate, dropped, failedCasExpected, values };
}

function prepareOperation(source: Operation, intern: (value: string | null) => number, observed: ReadonlySet<number>): KeyOperation {
  const completed = source.result?.ok === true;
  const returnMs = completed && source.completeMs !== undefined ? source.completeMs : Infinity;
  const { invokeMs } = source;
  switch (source.kind) {
    case 'put': {
      const value = intern(source.value);
      return { source, invokeMs, returnMs, effect: 'write', value, expected: ABSENT, unobserved: !completed && !observed.has(value), observes: -1, writes: value };
    }
    case 'get': {
      // Always completed here: indeterminate gets are dropped.
      const value = intern(source.result?.ok === true ? source.result.value : null);
      return { source, invokeMs, returnMs, effect: 'read', value, expected: ABSENT, unobserved: false, observes: value, writes: -1 };
    }
    case 'cas': {
      const value = intern(source.value);
      const expected = intern(source.expected);
      const outcome = source.result?.ok === true ? source.result.succeeded : undefined;
      const effect: Effect = outcome === undefined ? 'cas-unknown' : outcome ? 'cas-succeeded' : 'cas-failed';
      const observes = effect === 'cas-succeeded' ? expected : -1;
      const writes = effect === 'cas-failed' ? -1 : value;
      return { source, invokeMs, returnMs, effect, value, expected, unobserved: !completed && !observed.has(value), observes, writes };
    }
  }
}

// ---------------------------------------------------------------------------
// One key: checking

type KeyResult = Exclude<CheckResult, { linearizable: true }> | { linearizable: true };

function checkKey(key: string, operations: readonly Operation[], maxSteps: number): KeyResult | undefined {
  const prepared = prepareKey(key, operations);
  if (prepared.determinate.length === 0 && prepared.indeterminate.length === 0) return undefined;
  const impossible = findUnwrittenObservation(prepared) ?? findStaleObservation(prepared);
  if (impossible !== undefined) return impossible;
  const search = new KeySearch(prepared);
  const outcome = search.run(maxSteps);
  if (outcome === 'linearizable') return { linearizable: true };
  const best = search.deadEnd;
  if (outcome === 'budget') {
    const total = prepared.determinate.length + prepared.indeterminate.length;
    return {
      linearizable: 'unknown',
      key,
      reason:
        `key ${JSON.stringify(key)}: search step budget of ${maxSteps} exhausted (${total} operations, ${search.cacheSize} states cached); ` +
        `the linearizable prefix that got furthest orders ${best?.order.length ?? 0} of them`,
    };
  }
  if (best === undefined) throw new Error('linearizability: a failed search recorded no dead end');
  return explainDeadEnd(prepared, best, unplaceableObservers(prepared, search));
}

function violation(prepared: PreparedKey, text: string, operations: readonly number[]): KeyResult {
  return { linearizable: false, key: prepared.key, explanation: `key ${JSON.stringify(prepared.key)}: not linearizable. ${text}`, operations: [...new Set(operations)] };
}

function observationVerb(operation: KeyOperation): string {
  return operation.effect === 'read' ? 'reads' : 'succeeded expecting';
}

/**
 * First shortcut, with a precise explanation: a completed get returning, or
 * a successful cas expecting, a value no operation invoked before it
 * completed writes (absence excepted: the key starts absent).
 */
function findUnwrittenObservation(prepared: PreparedKey): KeyResult | undefined {
  const all = [...prepared.determinate, ...prepared.indeterminate];
  const earliestWriteMs = new Map<number, number>();
  for (const operation of all) {
    if (operation.writes < 0) continue;
    const before = earliestWriteMs.get(operation.writes);
    if (before === undefined || operation.invokeMs < before) earliestWriteMs.set(operation.writes, operation.invokeMs);
  }
  for (const operation of prepared.determinate) {
    const wanted = operation.observes;
    if (wanted <= ABSENT) continue;
    const first = earliestWriteMs.get(wanted);
    if (first !== undefined && first <= operation.returnMs) continue;
    const value = prepared.values[wanted] ?? null;
    const writers = all.filter((other) => other.writes === wanted);
    const refused = prepared.dropped.filter((other) => other.kind !== 'get' && other.value === value);
    let why = writers.length === 0 ? 'which no operation on this key writes' : `which only ${writers.map((w) => describe(w.source)).join(', ')} write(s), invoked after it completed`;
    if (refused.length > 0) why += `; ${refused.map(describe).join(', ')} failed for sure, so took no effect`;
    const ids = [operation.source.id, ...writers.map((w) => w.source.id), ...refused.map((w) => w.id)];
    return violation(prepared, `${describe(operation.source)} ${observationVerb(operation)} ${show(value)}, ${why}.`, ids);
  }
  return undefined;
}

/**
 * Second shortcut: a stale observation. If a completed write X of another
 * value returned before the observer was invoked, and X was invoked after
 * every write of the observed value had returned, the observer cannot see
 * that value: each of its writes took effect before X, X before the observer.
 * (An indeterminate write may take effect any time: it never counts as
 * returned.) A sweep over observers by invocation, keeping the two latest-
 * invoked completed writes of different values returned so far.
 */
function findStaleObservation(prepared: PreparedKey): KeyResult | undefined {
  const all = [...prepared.determinate, ...prepared.indeterminate];
  const lastWriteReturnMs = new Map<number, number>();
  for (const operation of all) {
    if (operation.writes >= 0) lastWriteReturnMs.set(operation.writes, Math.max(lastWriteReturnMs.get(operation.writes) ?? -Infinity, operation.returnMs));
  }
  const writes = prepared.determinate.filter((operation) => operation.effect === 'write' || operation.effect === 'cas-succeeded').sort((a, b) => a.returnMs - b.returnMs);
  const observers = prepared.determinate.filter((operation) => operation.observes >= 0); // already by invocation
  let latest: KeyOperation | undefined; // the latest-invoked completed write returned so far
  let latestOther: KeyOperation | undefined; // the same among values other than latest's
  let next = 0;
  for (const observer of observers) {
    for (let write = writes[next]; write !== undefined && write.returnMs < observer.invokeMs; write = writes[++next]) {
      if (latest === undefined || write.invokeMs > latest.invokeMs) {
        if (latest !== undefined && latest.writes !== write.writes) latestOther = latest;
        latest = write;
      } else if (write.writes !== latest.writes && (latestOther === undefined || write.invokeMs > latestOther.invokeMs)) {
        latestOther = write;
      }
    }
    const wanted = observer.observes;
    const overwrite = latest !== undefined && latest.writes !== wanted ? latest : latestOther;
    if (overwrite === undefined || !((lastWriteReturnMs.get(wanted) ?? -Infinity) < overwrite.invokeMs)) continue;
    const value = show(prepared.values[wanted] ?? null);
    const writers = all.filter((operation) => operation.writes === wanted);
    const before =
      writers.length === 0
        ? `${value} is only the initial state, and ${describe(overwrite.source)} completed before it began`
        : `every write of ${value} (${writers.slice(0, WRITERS_SHOWN).map((w) => describe(w.source)).join(', ')}${writers.length > WRITERS_SHOWN ? ', …' : ''}) ` +
          `completed before ${describe(overwrite.source)} began, which completed before it began`;
    const ids = [observer.source.id, overwrite.source.id, ...writers.slice(0, WRITERS_SHOWN).map((w) => w.source.id)];
    return violation(prepared, `${describe(observer.source)} ${observationVerb(observer)} ${value}, a stale value: ${before}.`, ids);
  }
  return undefined;
}

/** A node of the event list: an operation's call or return. */
interface ListEntry {
  readonly operation: number;
  readonly call: boolean;
  readonly timeMs: number;
  prev: ListEntry | null;
  next: ListEntry | null;
  match: ListEntry | null;
}

/** What undoing one linearized operation restores. */
interface Frame {
  /** Determinate: its call entry. */
  readonly entry: ListEntry | null;
  /** Indeterminate: its index, else -1. */
  readonly indeterminate: number;
  /** Indeterminate: the first return entry when it was placed, where the scan resumes. */
  readonly cutoff: ListEntry | null;
  /** Placed as the only move worth trying: if it fails, so does the node before it. */
  readonly forced: boolean;
  readonly state: number;
  readonly lowest: number;
  readonly highest: number;
  readonly required: number;
}

/** The furthest the search got: the order it found and the operation it then could not place. */
interface DeadEnd {
  readonly order: readonly KeyOperation[];
  readonly state: number;
  readonly blocker: KeyOperation;
}

/**
 * The search over one key: Wing & Gong's list, set and backtracking, Lowe's
 * cache, and three prunings, all sound:
 * - Forced moves. A completed get that reads the current value, or a
 *   completed cas that failed and fits, changes nothing. If any
 *   linearization extends the current prefix, one extends it with that
 *   operation next (move it forward: nothing else sees a difference, and as
 *   a candidate it has no unplaced predecessor). So it is placed without
 *   trying alternatives, and if that fails, the node fails.
 * - Observers first. An operation that changes the value may not be placed
 *   while completed operations observing the current value (gets returning
 *   it, cas operations that succeeded expecting it) remain unplaced and
 *   nothing left can write that value again: they could never be placed.
 * - Unobserved indeterminate writes. One whose value nobody observes (no get
 *   returns it, no cas expects it) matters only if it makes a failed cas
 *   fail. In any linearization it is followed by a run of failed cas
 *   operations (and no-effect indeterminate ones, which can go to the end)
 *   until the next write: a get there would have read it. If none of them
 *   expects the value the key held before the write, the write can be
 *   removed (they all still fail); otherwise it can be moved to just before
 *   the first that does (those it passes still fail). So it is tried only
 *   right before a failed cas expecting the value it overwrites (`required`),
 *   or not at all (the end). Without this, k of them pending at a violation
 *   cost 2^k: a master kill leaves a handful, and most never took effect.
 * With unique values (as the chaos suite writes) the first two make a
 * read-heavy register nearly linear to check.
 */
class KeySearch {
  private readonly head: ListEntry;
  private readonly ops: readonly KeyOperation[];
  private readonly pending: readonly KeyOperation[];
  private readonly placed: Uint32Array; // determinate operations linearized
  private readonly placedPending: Uint32Array; // indeterminate operations linearized
  /** Per value: completed operations that observe it, not yet linearized. */
  private readonly observersLeft: Int32Array;
  /** Per value: operations that may write it, not yet linearized. */
  private readonly writersLeft: Int32Array;
  private readonly frames: Frame[] = [];
  private readonly cache = new Set<string>();
  private state = ABSENT;
  /** Every determinate operation below this index is linearized. */
  private lowest = 0;
  /** The highest determinate index linearized, -1 if none. */
  private highest = -1;
  /** After an unobserved write: the next operation must be a failed cas expecting this. */
  private required = NOT_ALLOWED;
  /** The next list entry to try at the current node. */
  private cursor: ListEntry | null;
  /** The next indeterminate operation to try at the current node. */
  private nextPending = 0;
  /** At a node not looked at yet: look for a forced move first. */
  private fresh = true;
  private furthest: { readonly frames: readonly Frame[]; readonly state: number; readonly blocker: KeyOperation } | undefined;
  /** Values the observers-first pruning refused to let anything overwrite, somewhere. */
  readonly refusedOverwrites = new Set<number>();
  private readonly everPlaced: Uint8Array;

  constructor(private readonly prepared: PreparedKey) {
    this.ops = prepared.determinate;
    this.pending = prepared.indeterminate;
    this.placed = new Uint32Array(Math.ceil(this.ops.length / 32) + 1);
    this.placedPending = new Uint32Array(Math.ceil(this.pending.length / 32));
    this.observersLeft = new Int32Array(prepared.values.length);
    this.writersLeft = new Int32Array(prepared.values.length);
    this.everPlaced = new Uint8Array(this.ops.length);
    for (const operation of [...this.ops, ...this.pending]) this.count(operation, 1);
    this.head = this.buildList();
    this.cursor = this.head.next;
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  private buildList(): ListEntry {
    const events: ListEntry[] = [];
    this.ops.forEach((operation, index) => {
      const call: ListEntry = { operation: index, call: true, timeMs: operation.invokeMs, prev: null, next: null, match: null };
      const ret: ListEntry = { operation: index, call: false, timeMs: operation.returnMs, prev: null, next: null, match: null };
      call.match = ret;
      events.push(call, ret);
    });
    // By time; at equal times calls first (touching operations are concurrent); then by operation.
    events.sort((a, b) => a.timeMs - b.timeMs || Number(!a.call) - Number(!b.call) || a.operation - b.operation);
    const head: ListEntry = { operation: -1, call: false, timeMs: -Infinity, prev: null, next: null, match: null };
    let last = head;
    for (const entry of events) {
      last.next = entry;
      entry.prev = last;
      last = entry;
    }
    return head;
  }

  /** Runs the search; 'budget' when maxSteps ran out first. */
  run(maxSteps: number): 'linearizable' | 'violation' | 'budget' {
    for (let steps = 0; steps < maxSteps; steps += 1) {
      if (this.head.next === null) return 'linearizable'; // what is left goes at the end
      if (this.fresh) {
        this.fresh = false;
        const forced = this.forcedCandidate();
        if (forced !== null) {
          // Already explored from here (and failed): so has this node.
          if (!this.placeDeterminate(forced, true) && !this.backtrack()) return 'violation';
          continue;
        }
      }
      const cursor = this.cursor;
      if (cursor === null) throw new Error('linearizability: the event list ended on a call');
      if (cursor.call) {
        if (!this.placeDeterminate(cursor, false)) this.cursor = cursor.next;
        continue;
      }
      const index = this.nextPendingCandidate(cursor.timeMs);
      if (index >= 0) {
        if (!this.placePending(index, cursor)) this.nextPending = index + 1;
        continue;
      }
      // Dead end: the operation returning here cannot be placed after this prefix.
      this.noteDeadEnd(cursor.operation);
      if (!this.backtrack()) return 'violation';
    }
    return 'budget';
  }

  private op(index: number): KeyOperation {
    const operation = this.ops[index];
    if (operation === undefined) throw new Error(`linearizability: no determinate operation ${index}`);
    return operation;
  }

  private pendingOp(index: number): KeyOperation {
    const operation = this.pending[index];
    if (operation === undefined) throw new Error(`linearizability: no indeterminate operation ${index}`);
    return operation;
  }

  private count(operation: KeyOperation, delta: 1 | -1): void {
    if (operation.observes >= 0) this.observersLeft[operation.observes] = (this.observersLeft[operation.observes] ?? 0) + delta;
    if (operation.writes >= 0) this.writersLeft[operation.writes] = (this.writersLeft[operation.writes] ?? 0) + delta;
  }

  /** The value after the operation in the current state, or NOT_ALLOWED (the model, then the observers-first pruning). */
  private fits(operation: KeyOperation): number {
    const state = this.state;
    const next = apply(operation, state);
    if (next === NOT_ALLOWED || next === state) return next;
    const observersLeft = (this.observersLeft[state] ?? 0) - (operation.observes === state ? 1 : 0);
    if (observersLeft > 0 && this.writersLeft[state] === 0) {
      this.refusedOverwrites.add(state); // for the explanation
      return NOT_ALLOWED;
    }
    return next;
  }

  /** Whether any order tried placed the determinate operation at index. */
  wasEverPlaced(index: number): boolean {
    return this.everPlaced[index] === 1;
  }

  /** A candidate that changes nothing and fits (a forced move), or null. */
  private forcedCandidate(): ListEntry | null {
    for (let entry = this.head.next; entry !== null && entry.call; entry = entry.next) {
      const operation = this.op(entry.operation);
      if (operation.effect !== 'read' && operation.effect !== 'cas-failed') continue;
      if (this.required !== NOT_ALLOWED && !(operation.effect === 'cas-failed' && operation.expected === this.required)) continue;
      if (apply(operation, this.state) === this.state) return entry;
    }
    return null;
  }

  private frame(entry: ListEntry | null, indeterminate: number, cutoff: ListEntry | null, forced: boolean): Frame {
    return { entry, indeterminate, cutoff, forced, state: this.state, lowest: this.lowest, highest: this.highest, required: this.required };
  }

  /** Moves to the node after linearizing the determinate operation called at entry, if it fits and that node is new. */
  private placeDeterminate(entry: ListEntry, forced: boolean): boolean {
    const operation = this.op(entry.operation);
    if (this.required !== NOT_ALLOWED && !(operation.effect === 'cas-failed' && operation.expected === this.required)) return false;
    const next = this.fits(operation);
    if (next === NOT_ALLOWED) return false;
    const frame = this.frame(entry, -1, null, forced);
    this.setPlaced(entry.operation);
    this.required = NOT_ALLOWED;
    if (!this.remember(next)) {
      this.clearPlaced(entry.operation);
      this.restore(frame);
      return false;
    }
    lift(entry);
    this.everPlaced[entry.operation] = 1;
    this.count(operation, -1);
    this.enter(frame, next);
    return true;
  }

  /** As placeDeterminate, for the indeterminate operation at index placed before the return entry cutoff. */
  private placePending(index: number, cutoff: ListEntry): boolean {
    const operation = this.pendingOp(index);
    const next = this.fits(operation);
    if (next === NOT_ALLOWED) return false;
    const frame = this.frame(null, index, cutoff, false);
    this.flipPending(index);
    if (operation.unobserved) this.required = this.state;
    if (!this.remember(next)) {
      this.flipPending(index);
      this.restore(frame);
      return false;
    }
    this.count(operation, -1);
    this.enter(frame, next);
    return true;
  }

  private enter(frame: Frame, state: number): void {
    this.frames.push(frame);
    this.state = state;
    this.cursor = this.head.next;
    this.nextPending = 0;
    this.fresh = true;
  }

  private restore(frame: Frame): void {
    this.state = frame.state;
    this.lowest = frame.lowest;
    this.highest = frame.highest;
    this.required = frame.required;
  }

  /** Undoes the last move, and the forced ones before it; false when there is nothing left to undo. */
  private backtrack(): boolean {
    for (;;) {
      const frame = this.frames.pop();
      if (frame === undefined) return false;
      this.restore(frame);
      if (frame.entry !== null) {
        this.clearPlaced(frame.entry.operation);
        unlift(frame.entry);
        this.count(this.op(frame.entry.operation), 1);
        this.cursor = frame.entry.next;
        this.nextPending = 0;
      } else {
        this.flipPending(frame.indeterminate);
        this.count(this.pendingOp(frame.indeterminate), 1);
        this.cursor = frame.cutoff;
        this.nextPending = frame.indeterminate + 1;
      }
      this.fresh = false;
      if (!frame.forced) return true;
    }
  }

  /** The next indeterminate operation from nextPending on that may be placed before the return at cutoffMs, or -1. */
  private nextPendingCandidate(cutoffMs: number): number {
    if (this.required !== NOT_ALLOWED) return -1;
    for (let index = this.nextPending; index < this.pending.length; index += 1) {
      const operation = this.pendingOp(index);
      if (operation.invokeMs > cutoffMs) return -1;
      if ((this.placedPending[index >>> 5] ?? 0) & (1 << (index & 31))) continue;
      // Taking no effect here is the same as going at the end, which keeps more options open.
      if (apply(operation, this.state) === this.state) continue;
      if (operation.unobserved && !this.prepared.failedCasExpected.has(this.state)) continue;
      return index;
    }
    return -1;
  }

  private flipPending(index: number): void {
    const word = index >>> 5;
    this.placedPending[word] = (this.placedPending[word] ?? 0) ^ (1 << (index & 31));
  }

  private setPlaced(index: number): void {
    const word = index >>> 5;
    this.placed[word] = (this.placed[word] ?? 0) | (1 << (index & 31));
    if (index > this.highest) this.highest = index;
    if (index === this.lowest) {
      while (this.lowest < this.ops.length && (this.placed[this.lowest >>> 5] ?? 0) & (1 << (this.lowest & 31))) this.lowest += 1;
    }
  }

  private clearPlaced(index: number): void {
    const word = index >>> 5;
    this.placed[word] = (this.placed[word] ?? 0) & ~(1 << (index & 31));
  }

  /**
   * Adds (linearized set, state, constraint) to the cache; false if it was
   * there. The set is written compactly: every determinate operation below
   * `lowest` is in it, so only the words from there to `highest` are spelled.
   */
  private remember(state: number): boolean {
    let key = `${state}/${this.required}/${this.lowest}`;
    const from = this.lowest >>> 5;
    const to = this.highest < 0 ? from : Math.max(from, this.highest >>> 5);
    for (let word = from; word <= to; word += 1) key += `,${this.placed[word] ?? 0}`;
    if (this.placedPending.length > 0) {
      key += '|';
      for (const word of this.placedPending) key += `${word},`;
    }
    if (this.cache.has(key)) return false;
    this.cache.add(key);
    return true;
  }

  private noteDeadEnd(blocker: number): void {
    if (this.required !== NOT_ALLOWED) return; // a constrained detour, not a real obstacle
    // Furthest in time first, then deepest: every path stops at the first real violation, while
    // a wrong turn taken earlier stops sooner. The frames are copied, not mapped: this runs
    // every time the frontier moves.
    const operation = this.op(blocker);
    const best = this.furthest;
    if (best !== undefined && (operation.returnMs < best.blocker.returnMs || (operation.returnMs === best.blocker.returnMs && this.frames.length <= best.frames.length))) return;
    this.furthest = { frames: this.frames.slice(), state: this.state, blocker: operation };
  }

  /** The furthest dead end, if the search met one. */
  get deadEnd(): DeadEnd | undefined {
    const best = this.furthest;
    if (best === undefined) return undefined;
    const order = best.frames.map((frame) => (frame.entry !== null ? this.op(frame.entry.operation) : this.pendingOp(frame.indeterminate)));
    return { order, state: best.state, blocker: best.blocker };
  }

}

/** Takes an operation's call and return out of the list (dancing links). */
function lift(call: ListEntry): void {
  const ret = call.match;
  if (call.prev === null || ret === null || ret.prev === null) throw new Error('linearizability: lifting an entry not in the list');
  call.prev.next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  ret.prev.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Puts back what lift took out, in the reverse order. */
function unlift(call: ListEntry): void {
  const ret = call.match;
  if (call.prev === null || ret === null || ret.prev === null) throw new Error('linearizability: unlifting an entry never lifted');
  ret.prev.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev.next = call;
  if (call.next !== null) call.next.prev = call;
}

// ---------------------------------------------------------------------------
// Explanations

const PREFIX_SHOWN = 6;
const PENDING_SHOWN = 8;
const WRITERS_SHOWN = 6;

/**
 * Values the observers-first pruning refused to overwrite, each with its
 * observers that no order tried could place: often the operation at fault (a
 * read of a value that had to survive too long) when the dead end shown is
 * another.
 */
function unplaceableObservers(prepared: PreparedKey, search: KeySearch): Map<number, KeyOperation[]> {
  const waiting = new Map<number, KeyOperation[]>();
  prepared.determinate.forEach((operation, index) => {
    if (operation.observes < 0 || !search.refusedOverwrites.has(operation.observes) || search.wasEverPlaced(index)) return;
    const list = waiting.get(operation.observes);
    if (list === undefined) waiting.set(operation.observes, [operation]);
    else list.push(operation);
  });
  return waiting;
}

function explainDeadEnd(prepared: PreparedKey, deadEnd: DeadEnd, unplaceable: ReadonlyMap<number, readonly KeyOperation[]>): KeyResult {
  const explainer = new DeadEndExplainer(prepared, deadEnd);
  const lines = [
    `key ${JSON.stringify(prepared.key)}: not linearizable (${explainer.all.length} operations).`,
    ...explainer.prefix(),
    ...explainer.blocked(),
    ...explainer.observing(unplaceable),
    ...explainer.writers(),
  ];
  return { linearizable: false, key: prepared.key, explanation: lines.join('\n'), operations: [...new Set(explainer.named)] };
}

/** The parts of a dead end's explanation; collects the ids of the operations it names. */
class DeadEndExplainer {
  readonly all: readonly KeyOperation[];
  readonly named: number[];
  private readonly position: ReadonlyMap<KeyOperation, number>;

  constructor(
    private readonly prepared: PreparedKey,
    private readonly deadEnd: DeadEnd,
  ) {
    this.all = [...prepared.determinate, ...prepared.indeterminate];
    this.position = new Map(deadEnd.order.map((operation, index) => [operation, index + 1]));
    this.named = [deadEnd.blocker.source.id];
  }

  prefix(): string[] {
    const { order, state } = this.deadEnd;
    const holding = `${state === ABSENT ? '' : 'holding '}${this.valueOf(state)}, and cannot be extended:`;
    if (order.length === 0) return ['No operation can be linearized first.', `The key starts ${holding}`];
    const shown = order.slice(-PREFIX_SHOWN);
    this.named.push(...shown.map((operation) => operation.source.id));
    return [
      `The linearizable prefix that got furthest orders ${order.length} of them${order.length > shown.length ? ', ending' : ''}:`,
      ...(order.length > shown.length ? ['  …'] : []),
      ...shown.map((operation) => `  ${describe(operation.source)}`),
      `It leaves the key ${holding}`,
    ];
  }

  /** The operation that could not be placed, and those pending with it. */
  blocked(): string[] {
    const { blocker } = this.deadEnd;
    const lines = [`  ${describe(blocker.source)} must take effect by ${blocker.returnMs} ms, but ${this.why(blocker)}.`];
    const candidates = this.all.filter((operation) => operation !== blocker && !this.position.has(operation) && operation.invokeMs <= blocker.returnMs);
    if (candidates.length === 0) return lines;
    const shown = candidates.slice(0, PENDING_SHOWN);
    this.named.push(...shown.map((operation) => operation.source.id));
    lines.push(`Pending with it, none of which can go first to make it fit${candidates.length > shown.length ? ` (${shown.length} of ${candidates.length})` : ''}:`);
    for (const operation of shown) lines.push(`  ${describe(operation.source)}: ${this.why(operation)}`);
    return lines;
  }

  /** Who still has to observe the value held, and values other orders could not overwrite. */
  observing(unplaceable: ReadonlyMap<number, readonly KeyOperation[]>): string[] {
    const { state, blocker } = this.deadEnd;
    const lines: string[] = [];
    const observers = this.stillObserving(state, blocker);
    if (observers.length > 0) lines.push(`Still to observe ${this.valueOf(state)}, which it holds: ${this.list(observers)}.`);
    for (const [value, waiting] of [...unplaceable].filter(([value]) => value !== state).slice(0, PENDING_SHOWN)) {
      lines.push(`No order tried could overwrite ${this.valueOf(value)} and still place ${this.list(waiting)}, which observe${waiting.length === 1 ? 's' : ''} it.`);
    }
    return lines;
  }

  /** The writers of the value the blocker needed, and where the prefix put them. */
  writers(): string[] {
    const { blocker, state, order } = this.deadEnd;
    const wanted = blocker.effect === 'read' ? blocker.value : blocker.effect === 'cas-succeeded' ? blocker.expected : undefined;
    if (wanted === undefined || wanted === ABSENT || wanted === state) return [];
    const writers = this.all.filter((operation) => operation.writes === wanted).slice(0, WRITERS_SHOWN);
    this.named.push(...writers.map((operation) => operation.source.id));
    const overwrittenBy = new Map<number, KeyOperation>(); // prefix position of a write → the one that changed its value next
    let value = ABSENT;
    let writtenAt = 0;
    order.forEach((operation, index) => {
      const next = apply(operation, value);
      if (next === value) return;
      if (writtenAt > 0) overwrittenBy.set(writtenAt, operation);
      value = next;
      writtenAt = index + 1;
    });
    const lines = [`Writers of ${this.valueOf(wanted)}:`];
    for (const writer of writers) {
      const at = this.position.get(writer);
      const by = at === undefined ? undefined : overwrittenBy.get(at);
      const where = at === undefined ? 'not in the prefix' : `${ordinal(at)} in the prefix${by === undefined ? '' : `, overwritten by #${by.source.id}`}`;
      lines.push(`  ${describe(writer.source)} (${where})`);
    }
    return lines;
  }

  /** Why the operation cannot be linearized right after the prefix, naming the operations involved. */
  private why(operation: KeyOperation): string {
    const { state } = this.deadEnd;
    const next = apply(operation, state);
    if (next === NOT_ALLOWED) return needs(operation, (value) => this.valueOf(value));
    if (next === state && operation.effect === 'cas-unknown') return `it would take no effect: the key does not hold ${this.valueOf(operation.expected)}`;
    const observers = this.stillObserving(state, operation);
    const rewriters = this.all.filter((other) => other !== operation && other.writes === state && !this.position.has(other));
    if (next === state || observers.length === 0 || rewriters.length > 0) return 'every way of placing it here leads to a contradiction further on';
    const value = this.valueOf(state);
    return `it would overwrite ${value}, which ${this.list(observers)} still ${observers.length === 1 ? 'has' : 'have'} to observe, and nothing left writes ${value} again`;
  }

  private stillObserving(value: number, except: KeyOperation): KeyOperation[] {
    return this.all.filter((other) => other !== except && other.observes === value && !this.position.has(other));
  }

  private list(operations: readonly KeyOperation[]): string {
    const shown = operations.slice(0, WRITERS_SHOWN);
    this.named.push(...shown.map((operation) => operation.source.id));
    const parts = shown.map((operation) => describe(operation.source));
    if (operations.length > shown.length) parts.push(`${operations.length - shown.length} more`);
    return parts.join(', ');
  }

  private valueOf(value: number): string {
    return show(this.prepared.values[value] ?? null);
  }
}

function needs(blocker: KeyOperation, valueOf: (value: number) => string): string {
  switch (blocker.effect) {
    case 'read':
      return `it needs the key to hold ${valueOf(blocker.value)}`;
    case 'cas-succeeded':
      return `it succeeded, so it needs the key to hold ${valueOf(blocker.expected)}`;
    case 'cas-failed':
      return `it failed, so it needs the key to hold something other than ${valueOf(blocker.expected)}`;
    default:
      return 'it cannot be placed';
  }
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

function show(value: string | null | undefined): string {
  return value === null || value === undefined ? 'absent' : JSON.stringify(value);
}

/** One line naming an operation, e.g. `#12 (client 3) get → "b" [110 ms, 120 ms]`. */
export function describe(operation: Operation): string {
  let what: string;
  switch (operation.kind) {
    case 'put':
      what = `put ${show(operation.value)}`;
      break;
    case 'get':
      what = `get → ${operation.result?.ok === true ? show(operation.result.value) : '?'}`;
      break;
    case 'cas': {
      const outcome = operation.result === undefined ? 'outcome unknown' : !operation.result.ok ? 'failed for sure' : operation.result.succeeded ? 'succeeded' : 'failed';
      what = `cas ${show(operation.expected)} → ${show(operation.value)} ${outcome}`;
      break;
    }
  }
  if (operation.result?.ok === false && operation.kind !== 'cas') what += ' failed for sure';
  const completed = operation.result?.ok === true ? `${operation.completeMs} ms` : operation.completeMs === undefined ? '?' : `? (gave up at ${operation.completeMs} ms)`;
  return `#${operation.id} (client ${operation.client}) ${what} [${operation.invokeMs} ms, ${completed}]`;
}
