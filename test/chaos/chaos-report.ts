// What a chaos run found, and the summary over runs: a table per fault and
// the last line's JSON object.

export type Verdict = 'linearizable' | 'not linearizable' | 'unknown' | 'not checked';

export interface RunResult {
  readonly run: number;
  readonly fault: string;
  readonly seed: number;
  readonly operations: { readonly ok: number; readonly failed: number; readonly indeterminate: number };
  readonly verdict: Verdict;
  /** The checker's explanation when not linearizable (or why unknown). */
  readonly verdictDetail?: string;
  readonly lostAckedWrites: readonly string[];
  readonly watcherProblems: readonly string[];
  readonly staleLeaderWrites: readonly string[];
  readonly doubleBindings: readonly string[];
  readonly rolloutCompleted: boolean;
  /** Anything else the run's own checks found (e.g. no snapshot was needed). */
  readonly otherProblems: readonly string[];
  /** Per fault event that took a leader away: ms until the next write was acknowledged. */
  readonly writeResumeMs: readonly number[];
  /** Per such event whose victim hosted the active controller-manager or scheduler: ms until an in-master component's write was accepted again. */
  readonly controllerResumeMs: readonly number[];
  /** The runner itself failed (cluster never came up, a wait timed out): not a verdict on mast. */
  readonly error?: string;
}

export function passed(result: RunResult): boolean {
  return (
    result.error === undefined &&
    result.verdict === 'linearizable' &&
    result.lostAckedWrites.length === 0 &&
    result.watcherProblems.length === 0 &&
    result.staleLeaderWrites.length === 0 &&
    result.doubleBindings.length === 0 &&
    result.rolloutCompleted &&
    result.otherProblems.length === 0
  );
}

/** The faults whose events count towards the write failover figures (a leader lost). */
export const LEADER_FAULTS: readonly string[] = ['kill-leader', 'stop-leader', 'partition-leader'];
/** The faults whose events count towards the controller failover figure (the host of the active component killed or stopped). */
export const CONTROLLER_FAULTS: readonly string[] = ['kill-leader', 'stop-leader'];

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return Math.round(sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2);
}

export function max(values: readonly number[]): number | null {
  return values.length === 0 ? null : Math.round(Math.max(...values));
}

export interface FaultRow {
  readonly fault: string;
  readonly runs: number;
  readonly passed: number;
  readonly writeResumeMs: readonly number[];
  readonly controllerResumeMs: readonly number[];
  readonly ok: number;
  readonly failed: number;
  readonly indeterminate: number;
  readonly verdicts: Readonly<Record<Verdict, number>>;
  readonly violations: number;
  readonly errors: number;
}

function violations(result: RunResult): number {
  return result.lostAckedWrites.length + result.watcherProblems.length + result.staleLeaderWrites.length + result.doubleBindings.length + (result.rolloutCompleted ? 0 : 1) + result.otherProblems.length + (result.verdict === 'not linearizable' ? 1 : 0);
}

export function aggregate(results: readonly RunResult[]): FaultRow[] {
  const faults = [...new Set(results.map((result) => result.fault))];
  return faults.map((fault) => {
    const mine = results.filter((result) => result.fault === fault);
    const verdicts: Record<Verdict, number> = { linearizable: 0, 'not linearizable': 0, unknown: 0, 'not checked': 0 };
    for (const result of mine) verdicts[result.verdict]++;
    return {
      fault,
      runs: mine.length,
      passed: mine.filter(passed).length,
      writeResumeMs: mine.flatMap((result) => result.writeResumeMs),
      controllerResumeMs: mine.flatMap((result) => result.controllerResumeMs),
      ok: mine.reduce((sum, result) => sum + result.operations.ok, 0),
      failed: mine.reduce((sum, result) => sum + result.operations.failed, 0),
      indeterminate: mine.reduce((sum, result) => sum + result.operations.indeterminate, 0),
      verdicts,
      violations: mine.reduce((sum, result) => sum + violations(result), 0),
      errors: mine.filter((result) => result.error !== undefined).length,
    };
  });
}

const figure = (value: number | null): string => (value === null ? '-' : String(value));

export function table(rows: readonly FaultRow[]): string {
  const header = ['fault', 'runs', 'passed', 'writes resume ms (median/max)', 'controllers act ms (median/max)', 'ops ok/failed/indet', 'linearizable/not/unknown', 'violations', 'runner errors'];
  const lines = rows.map((row) => [
    row.fault,
    String(row.runs),
    String(row.passed),
    `${figure(median(row.writeResumeMs))} / ${figure(max(row.writeResumeMs))} (n=${row.writeResumeMs.length})`,
    `${figure(median(row.controllerResumeMs))} / ${figure(max(row.controllerResumeMs))} (n=${row.controllerResumeMs.length})`,
    `${row.ok}/${row.failed}/${row.indeterminate}`,
    `${row.verdicts.linearizable}/${row.verdicts['not linearizable']}/${row.verdicts.unknown + row.verdicts['not checked']}`,
    String(row.violations),
    String(row.errors),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  const format = (cells: readonly string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ')} |`;
  return [format(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...lines.map(format)].join('\n');
}

export function summary(results: readonly RunResult[]): Record<string, unknown> {
  const leaderWrites = results.filter((result) => LEADER_FAULTS.includes(result.fault)).flatMap((result) => result.writeResumeMs);
  const controllers = results.filter((result) => CONTROLLER_FAULTS.includes(result.fault)).flatMap((result) => result.controllerResumeMs);
  const count = (pick: (result: RunResult) => number): number => results.reduce((sum, result) => sum + pick(result), 0);
  return {
    chaos: 'summary',
    runs: results.length,
    faults: [...new Set(results.map((result) => result.fault))],
    operations: count((result) => result.operations.ok + result.operations.failed + result.operations.indeterminate),
    linearizable: results.length > 0 && results.every((result) => result.verdict === 'linearizable'),
    lost_acknowledged_writes: count((result) => result.lostAckedWrites.length),
    stale_leader_writes: count((result) => result.staleLeaderWrites.length),
    double_bindings: count((result) => result.doubleBindings.length),
    write_failover_median_ms: median(leaderWrites),
    write_failover_max_ms: max(leaderWrites),
    controller_failover_median_ms: median(controllers),
    controller_failover_max_ms: max(controllers),
    passed: results.filter(passed).length,
    not_linearizable_runs: results.filter((result) => result.verdict === 'not linearizable').length,
    unknown_runs: results.filter((result) => result.verdict === 'unknown' || result.verdict === 'not checked').length,
    watcher_problems: count((result) => result.watcherProblems.length),
    rollouts_incomplete: results.filter((result) => !result.rolloutCompleted).length,
    other_problems: count((result) => result.otherProblems.length),
    runner_errors: results.filter((result) => result.error !== undefined).length,
  };
}
