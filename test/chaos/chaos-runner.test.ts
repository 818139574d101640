// The chaos runner (`npm run chaos`): its pure parts — the history it
// records as the linearizability checker takes it, the watcher and
// acknowledged-write checks, the stale-write audit, the report — and one
// short real run of kill-leader that must pass every check.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { checkAckedWrites, checkCurrent, checkWatcher, staleLeaderWrites, boundTwice, type WatchedEvent } from './chaos-checks.js';
import { classifyError, History } from './chaos-history.js';
import { aggregate, median, passed, summary, table, type RunResult } from './chaos-report.js';
import { checkHistory } from './linearizability.js';

/** A clock the test moves by hand. */
function clock(): { now: () => number; at: (ms: number) => void } {
  let current = 0;
  return { now: () => current, at: (ms) => (current = ms) };
}

describe('chaos runner: history recording', function () {
  it('records puts, cas and gets as the checker takes them, with revisions for acknowledged writes', function () {
    const time = clock();
    const history = new History(time.now);
    time.at(1);
    const put = history.invoke(0, 'k', { kind: 'put', value: 'a' });
    time.at(2);
    put.ok({ revision: 10 });
    const cas = history.invoke(1, 'k', { kind: 'cas', expected: 'a', value: 'b' });
    time.at(3);
    cas.ok({ succeeded: true, revision: 11 });
    const get = history.invoke(0, 'k', { kind: 'get' });
    time.at(4);
    get.ok({ value: 'b' });
    const failedCas = history.invoke(1, 'k', { kind: 'cas', expected: 'zzz', value: 'c' });
    failedCas.ok({ succeeded: false, revision: 12 });
    history.invoke(2, 'k', { kind: 'put', value: 'lost-in-flight' });
    const refused = history.invoke(2, 'k', { kind: 'put', value: 'refused' });
    refused.fail('failed');
    const timedOut = history.invoke(3, 'k', { kind: 'put', value: 'timed-out' });
    timedOut.fail('indeterminate');

    const operations = history.operations();
    expect(operations).to.have.length(7);
    expect(operations[0]).to.deep.include({ kind: 'put', value: 'a', invokeMs: 1, completeMs: 2, result: { ok: true } });
    expect(operations[1]).to.deep.include({ kind: 'cas', expected: 'a', value: 'b', result: { ok: true, succeeded: true } });
    expect(operations[2]).to.deep.include({ kind: 'get', result: { ok: true, value: 'b' } });
    expect(operations[4]).to.not.have.property('result');
    expect(operations[5]).to.deep.include({ result: { ok: false } });
    expect(operations[6]).to.not.have.property('result');
    expect(checkHistory(operations).linearizable).to.equal(true);
    expect(history.counts()).to.deep.equal({ ok: 4, failed: 1, indeterminate: 2 });
    expect(history.ackedWrites().map((write) => [write.value, write.revision])).to.deep.equal([['a', 10], ['b', 11]]);
    expect(() => put.ok({})).to.throw(/twice/);
  });

  it('lets the checker refute a stale read it recorded', function () {
    const time = clock();
    const history = new History(time.now);
    history.invoke(0, 'k', { kind: 'put', value: 'old' }).ok({ revision: 5 });
    time.at(10);
    const newer = history.invoke(0, 'k', { kind: 'put', value: 'new' });
    time.at(11);
    newer.ok({ revision: 6 });
    time.at(20);
    const read = history.invoke(1, 'k', { kind: 'get' });
    time.at(21);
    read.ok({ value: 'old' });
    expect(checkHistory(history.operations()).linearizable).to.equal(false);
  });

  it('times writes resuming after a fault from writes invoked after it', function () {
    const time = clock();
    const history = new History(time.now);
    const before = history.invoke(0, 'k', { kind: 'put', value: 'a' });
    time.at(100);
    const after = history.invoke(1, 'k', { kind: 'cas', expected: null, value: 'b' });
    history.invoke(2, 'k', { kind: 'get' }).ok({ value: null });
    time.at(450);
    before.ok({ revision: 2 });
    after.ok({ succeeded: false, revision: 3 });
    expect(history.writeResumeMs(50)).to.equal(400);
    expect(history.writeResumeMs(500)).to.equal(undefined);
  });

  it('calls only a refused connection failed for sure', function () {
    expect(classifyError({ code: 14, details: 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1' })).to.equal('failed');
    expect(classifyError({ code: 14, details: 'Connection dropped' })).to.equal('indeterminate');
    expect(classifyError({ code: 4, details: 'Deadline exceeded' })).to.equal('indeterminate');
    expect(classifyError({ code: 14, details: 'etcdserver: no leader' })).to.equal('indeterminate');
    expect(classifyError(new Error('anything'))).to.equal('indeterminate');
  });
});

describe('chaos runner: checks', function () {
  const reference: WatchedEvent[] = [
    { key: 'a', value: '1', revision: 3 },
    { key: 'b', value: '2', revision: 5 },
    { key: 'a', value: '3', revision: 9 },
  ];

  it('accepts a watcher that saw every revision in order, once', function () {
    expect(checkWatcher('w', reference, reference, 9)).to.deep.equal([]);
    expect(checkWatcher('w', reference.slice(0, 2), reference, 5)).to.deep.equal([]);
  });

  it('finds a duplicate, a gap, a reordering, a wrong value and an invented event', function () {
    expect(checkWatcher('w', [reference[0]!, reference[1]!, reference[1]!, reference[2]!], reference, 9).join()).to.match(/duplicate/);
    expect(checkWatcher('w', [reference[0]!, reference[2]!], reference, 9).join()).to.match(/missed b=2@5/);
    expect(checkWatcher('w', [reference[1]!, reference[0]!, reference[2]!], reference, 9).join()).to.match(/out of order/);
    expect(checkWatcher('w', [reference[0]!, { key: 'b', value: 'x', revision: 5 }, reference[2]!], reference, 9).join()).to.match(/saw b=x@5 where the store has b=2@5/);
    expect(checkWatcher('w', [...reference.slice(0, 2), { key: 'a', value: '7', revision: 7 }, reference[2]!], reference, 9).join()).to.match(/does not have/);
  });

  it('finds an acknowledged write missing from the store\'s history', function () {
    expect(checkAckedWrites([{ id: 1, key: 'a', value: '1', revision: 3, completeMs: 1 }], reference)).to.deep.equal([]);
    expect(checkAckedWrites([{ id: 2, key: 'a', value: '5', revision: 7, completeMs: 1 }], reference)).to.have.length(1);
    expect(checkAckedWrites([{ id: 3, key: 'a', value: 'x', revision: 9, completeMs: 1 }], reference)).to.have.length(1);
  });

  it('requires the history to end in what the keys read now', function () {
    expect(checkCurrent(reference, new Map([['a', { value: '3', revision: 9 }], ['b', { value: '2', revision: 5 }]]))).to.deep.equal([]);
    expect(checkCurrent(reference, new Map([['a', { value: '1', revision: 3 }]]))).to.have.length(1);
  });

  it('flags a write under a token committed after a newer takeover, and only that', function () {
    const audit = (token: number, resourceVersion: number) => ({ member: 'm1', component: 'controller-manager' as const, lease: 'kube-controller-manager', description: 'update ReplicaSet chaos/web', resourceVersion, token });
    const takeovers = [
      { lease: 'kube-controller-manager', identity: 'm1_a', token: 10 },
      { lease: 'kube-controller-manager', identity: 'm2_b', token: 50 },
      { lease: 'kube-scheduler', identity: 'm3_c', token: 70 },
    ];
    expect(staleLeaderWrites([audit(10, 40), audit(50, 60), audit(10, 49)], takeovers)).to.deep.equal([]);
    expect(staleLeaderWrites([audit(10, 51)], takeovers)).to.have.length(1);
    expect(staleLeaderWrites([{ ...audit(10, 80), lease: 'kube-scheduler', component: 'scheduler' }], takeovers)).to.have.length(1);
    expect(boundTwice([{ pod: 'p', at: 'm1@3' }, { pod: 'q', at: 'm1@4' }, { pod: 'p', at: 'm2@9' }])).to.deep.equal(['p: m1@3, m2@9']);
  });
});

describe('chaos runner: report', function () {
  const result = (fault: string, overrides: Partial<RunResult> = {}): RunResult => ({
    run: 1,
    fault,
    seed: 1,
    operations: { ok: 10, failed: 1, indeterminate: 2 },
    verdict: 'linearizable',
    lostAckedWrites: [],
    watcherProblems: [],
    staleLeaderWrites: [],
    doubleBindings: [],
    rolloutCompleted: true,
    otherProblems: [],
    writeResumeMs: [],
    controllerResumeMs: [],
    ...overrides,
  });

  it('aggregates per fault and sums up in the summary line', function () {
    const results = [
      result('kill-leader', { writeResumeMs: [300, 400, 350], controllerResumeMs: [700] }),
      result('kill-leader', { writeResumeMs: [500], verdict: 'unknown' }),
      result('kill-quorum', { writeResumeMs: [3000], lostAckedWrites: ['x'] }),
      result('drop-peer', { rolloutCompleted: false }),
    ];
    expect(passed(results[0]!)).to.equal(true);
    expect(results.slice(1).map(passed)).to.deep.equal([false, false, false]);
    const rows = aggregate(results);
    expect(rows.map((row) => [row.fault, row.runs, row.passed])).to.deep.equal([['kill-leader', 2, 1], ['kill-quorum', 1, 0], ['drop-peer', 1, 0]]);
    expect(rows[0]!.verdicts.unknown).to.equal(1);
    expect(rows[0]!.ok).to.equal(20);
    expect(table(rows)).to.match(/kill-leader \| 2 /);
    const line = summary(results);
    expect(Object.keys(line).slice(0, 11)).to.deep.equal(['chaos', 'runs', 'faults', 'operations', 'linearizable', 'lost_acknowledged_writes', 'stale_leader_writes', 'double_bindings', 'write_failover_median_ms', 'write_failover_max_ms', 'controller_failover_median_ms']);
    expect(line).to.deep.include({ chaos: 'summary', runs: 4, operations: 52, linearizable: false, lost_acknowledged_writes: 1, write_failover_median_ms: 375, write_failover_max_ms: 500, controller_failover_median_ms: 700 });
    expect(median([])).to.equal(null);
  });
});

describe('chaos runner: a short real run', function () {
  this.timeout(300_000);
  let running: ReturnType<typeof spawn> | undefined;

  // A run cut short (a timeout here) still tears its cluster, cgroups and tables down: SIGINT does that.
  after(function () {
    if (running !== undefined && running.exitCode === null) running.kill('SIGINT');
  });

  it('kill-leader: every check passes', async function () {
    const main = fileURLToPath(new URL('../../ops/chaos/main.js', import.meta.url));
    const child = spawn(process.execPath, [main, '--runs', '1', '--faults', 'kill-leader', '--seconds', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    running = child;
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    const last = output.trim().split('\n').at(-1) ?? '';
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(last) as Record<string, unknown>;
    } catch {
      throw new Error(`no summary line; output:\n${output}`);
    }
    expect(line, output).to.deep.include({ chaos: 'summary', runs: 1, passed: 1, linearizable: true, lost_acknowledged_writes: 0, stale_leader_writes: 0, double_bindings: 0, watcher_problems: 0, rollouts_incomplete: 0, runner_errors: 0 });
    expect(line.write_failover_median_ms, output).to.be.a('number');
    expect(code, output).to.equal(0);
  });
});
