// Runs the Raft interaction scripts in test/interaction/testdata: each block's
// output must match exactly. MAST_REWRITE=1 rewrites the expectations.

import { expect } from 'chai';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFile, renderFile } from './datadriven.js';
import { InteractionEnv } from './env.js';

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
