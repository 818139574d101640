// npm run chaos -- [--runs N] [--faults a,b,...] [--seconds S] [--clients N]
// [--keys N] [--seed N] [--keep-logs DIR]: real masters on loopback under
// faults (runs cycle through the fault list), a key-value workload checked
// for linearizability, watchers, a rolling update through the controllers.
// Prints a table per fault; the last line is one JSON object. Exits non-zero
// when any check failed.

import { parseArgs } from 'node:util';
import { FAULTS, isFault, type FaultName } from './faults.js';
import { aggregate, passed, summary, table, type RunResult } from '../../test/chaos/chaos-report.js';
import { Cleanup, runOnce } from './run.js';

const USAGE = `usage: npm run chaos -- [--runs N (${FAULTS.length})] [--faults ${FAULTS.join(',')}] [--seconds S (16) per run]
       [--clients N (4)] [--keys N (3)] [--seed N (1)] [--keep-logs DIR]`;

function positive(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, not ${JSON.stringify(text)}\n${USAGE}`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      runs: { type: 'string', default: String(FAULTS.length) },
      faults: { type: 'string', default: FAULTS.join(',') },
      seconds: { type: 'string', default: '16' },
      clients: { type: 'string', default: '4' },
      keys: { type: 'string', default: '3' },
      seed: { type: 'string', default: '1' },
      'keep-logs': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const faults = values.faults.split(',').filter((name) => name !== '');
  const unknown = faults.filter((name) => !isFault(name));
  if (faults.length === 0 || unknown.length > 0) throw new Error(`unknown fault(s) ${unknown.join(', ')}; known: ${FAULTS.join(', ')}`);
  const runs = positive('runs', values.runs);
  const seed = positive('seed', values.seed);
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };

  let cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`${signal}: tearing down\n`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const results: RunResult[] = [];
  for (let run = 0; run < runs && !interrupted; run++) {
    const fault = faults[run % faults.length] as FaultName;
    const options = { run: run + 1, fault, seconds: positive('seconds', values.seconds), clients: positive('clients', values.clients), keys: positive('keys', values.keys), seed: seed + run, log, ...(values['keep-logs'] === undefined ? {} : { keepLogs: values['keep-logs'] }) };
    const started = Date.now();
    let result: RunResult;
    try {
      result = await runOnce(options, cleanup);
    } catch (error) {
      result = { run: run + 1, fault, seed: seed + run, operations: { ok: 0, failed: 0, indeterminate: 0 }, verdict: 'not checked', lostAckedWrites: [], watcherProblems: [], staleLeaderWrites: [], doubleBindings: [], rolloutCompleted: false, otherProblems: [], writeResumeMs: [], controllerResumeMs: [], error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
    } finally {
      await cleanup.run();
      cleanup = new Cleanup();
    }
    if (interrupted) break;
    results.push(result);
    log(`run ${result.run} (${fault}): ${passed(result) ? 'PASS' : 'FAIL'} in ${((Date.now() - started) / 1000).toFixed(1)} s — ${result.verdict}${result.verdictDetail === undefined ? '' : ` (${result.verdictDetail})`}`);
    const findings: Array<[string, readonly string[]]> = [
      ['lost acknowledged writes', result.lostAckedWrites],
      ['watchers', result.watcherProblems],
      ['stale leader writes', result.staleLeaderWrites],
      ['double bindings', result.doubleBindings],
      ['other', result.otherProblems],
    ];
    for (const [what, lines] of findings) for (const line of lines.slice(0, 10)) log(`  ${what}: ${line}`);
    if (!result.rolloutCompleted && result.error === undefined) log('  the rollout did not complete');
    if (result.error !== undefined) log(`  runner error: ${result.error}`);
  }
  log('');
  log(table(aggregate(results)));
  const all = summary(results);
  log(JSON.stringify(all));
  if (results.length === 0 || results.some((result) => !passed(result))) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`chaos failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
