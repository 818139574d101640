// Runs the Raft interaction scripts in test/interaction/testdata: each block's
// output must match exactly. MAST_REWRITE=1 rewrites the expectations.

import { expect } from 'chai';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Raft, type LogIndex } from '../../raft/core/index.js';
import { parseFile, renderFile } from './datadriven.js';
import { InteractionEnv, type RaftFactory } from './env.js';

// Compiled to dist/test/interaction: the scripts live in the source tree.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const testdata = join(repoRoot, 'test', 'interaction', 'testdata');
const rewrite = process.env['MAST_REWRITE'] === '1';

function firstDifference(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `output line ${i + 1}:\n  expected: ${a[i] ?? '<nothing>'}\n  actual:   ${b[i] ?? '<nothing>'}`;
  }
  return '';
}

/** Runs one script against a core; returns the first mismatch or error, or undefined when it passes. */
function runScript(path: string, factory?: RaftFactory): string | undefined {
  const parsed = parseFile(readFileSync(path, 'utf8'), path);
  const env = new InteractionEnv(factory);
  for (const block of parsed.blocks) {
    let output: string;
    try {
      output = env.handle(block);
    } catch (error) {
      return `${path}:${block.line}: ${(error as Error).message}`;
    }
    if (output !== block.expected) return `${path}:${block.line}: ${block.command}: output differs`;
  }
  return undefined;
}

describe('raft interaction scripts', () => {
  const files = readdirSync(testdata).filter((name) => name.endsWith('.txt')).sort();

  it('has at least 25 scenario files', () => {
    expect(files.length).to.be.at.least(25);
  });

  for (const name of files) {
    it(name.replace(/\.txt$/, ''), () => {
      const path = join(testdata, name);
      const parsed = parseFile(readFileSync(path, 'utf8'), path);
      const env = new InteractionEnv();
      const outputs: string[] = [];
      const errors: string[] = [];
      for (const block of parsed.blocks) {
        let output: string;
        try {
          output = env.handle(block);
        } catch (error) {
          const message = `${path}:${block.line}: ${block.command}: ${(error as Error).message}`;
          if (!rewrite) throw new Error(message, { cause: error });
          // Keep going so the rewritten file shows what happened around the failure.
          errors.push(message);
          output = `error: ${(error as Error).message}`;
        }
        outputs.push(output);
        if (!rewrite && output !== block.expected) {
          expect.fail(`${path}:${block.line}: ${block.command}\n${firstDifference(block.expected, output)}\n--- actual output ---\n${output}`);
        }
      }
      if (rewrite) writeFileSync(path, renderFile(parsed, outputs));
      expect(errors, errors.join('\n')).to.deep.equal([]);
    });
  }
});

describe('raft interaction scripts catch bugs injected into the core', () => {
  const files = readdirSync(testdata)
    .filter((name) => name.endsWith('.txt'))
    .sort()
    .map((name) => join(testdata, name));

  /** Broken cores, one rule each: every one must make some script fail. */
  const bugs: Record<string, RaftFactory> = {
    'commits an older-term entry by counting replicas (figure 8)': (config, initial) =>
      new (class extends Raft {
        protected override mayCommitAt(index: LogIndex): boolean {
          return this.logTerm(index) !== undefined;
        }
      })(config, initial),
    'grants two votes in one term': (config, initial) =>
      new (class extends Raft {
        protected override canGrantVote(): boolean {
          return true;
        }
      })(config, initial),
    'votes for a candidate whose log is behind': (config, initial) =>
      new (class extends Raft {
        protected override isLogUpToDate(): boolean {
          return true;
        }
      })(config, initial),
    'a leader that never checks its quorum': (config, initial) =>
      new (class extends Raft {
        protected override checkQuorumActive(): boolean {
          return true;
        }
      })(config, initial),
  };

  for (const [bug, factory] of Object.entries(bugs)) {
    it(bug, () => {
      const failures = files.map((path) => runScript(path, factory)).filter((failure) => failure !== undefined);
      expect(failures.length, 'no scenario noticed the bug').to.be.greaterThan(0);
    });
  }
});
