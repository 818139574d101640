// npm run sim -- --seeds N [--from S]   run N seeds
// npm run sim -- --seed S               replay one seed with a readable trace
// The last line printed is one JSON summary object.

import { simulate, type SimulationResult } from '../../test/simulation/simulator.js';

function parseArguments(argv: readonly string[]): { seeds: number; from: number; replay: number | undefined } {
  let seeds = 1000;
  let from = 1;
  let replay: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const number = Number(value);
    if (flag === '--seeds' || flag === '--from' || flag === '--seed') {
      if (value === undefined || !Number.isSafeInteger(number) || number < 0) {
        throw new Error(`${flag} needs a non-negative integer, got ${value ?? 'nothing'}`);
      }
      if (flag === '--seeds') seeds = number;
      else if (flag === '--from') from = number;
      else replay = number;
      i++;
    } else {
      throw new Error(`unknown argument ${flag}; use --seeds N [--from S] or --seed S`);
    }
  }
  return { seeds, from, replay };
}

function report(result: SimulationResult): void {
  for (const violation of result.violations) {
    console.log(`VIOLATION seed ${result.seed} t=${violation.time} [${violation.check}] ${violation.message}`);
    console.log(`  replay: npm run sim -- --seed ${result.seed}`);
  }
}

function main(): void {
  const { seeds, from, replay } = parseArguments(process.argv.slice(2));
  const started = performance.now();
  let violations = 0;
  let committed = 0;
  let count = 0;
  if (replay !== undefined) {
    const result = simulate({ seed: replay, trace: (line) => console.log(line) });
    report(result);
    violations = result.violations.length;
    committed = result.proposalsCommitted;
    count = 1;
  } else {
    for (let seed = from; seed < from + seeds; seed++) {
      const result = simulate({ seed });
      report(result);
      violations += result.violations.length;
      committed += result.proposalsCommitted;
      count++;
      if (count % 500 === 0) process.stderr.write(`${count}/${seeds} seeds, ${violations} violations\n`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const summary = {
    sim: 'summary',
    seeds: count,
    violations,
    seeds_per_s: Math.round((count / seconds) * 10) / 10,
    proposals_committed: committed,
  };
  console.log(JSON.stringify(summary));
  process.exitCode = violations > 0 ? 1 : 0;
}

main();
