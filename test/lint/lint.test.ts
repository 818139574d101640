import { expect } from 'chai';
import { findCycles, lint, type SourceFile } from './rules.js';

const rulesOf = (files: SourceFile[]): string[] => lint(files).map((finding) => `${finding.rule} ${finding.path}:${finding.line}`);

describe('lint rules', () => {
  describe('determinism boundary', () => {
    const bad: Array<[string, string]> = [
      ['Date.now', 'export const now = (): number => Date.now();'],
      ['new Date', 'export const now = (): Date => new Date();'],
      ['Math.random', 'export const pick = (): number => Math.random();'],
      ['setTimeout', 'export function later(f: () => void): void { setTimeout(f, 1); }'],
      ['process', 'export const home = process.env["HOME"];'],
      ['node:fs', "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;"],
      ['a package', "import { nanoid } from 'nanoid';\nexport const id = nanoid;"],
      ['performance', 'export const t = performance.now();'],
    ];
    for (const [what, text] of bad) {
      it(`rejects ${what} in raft/core`, () => {
        const findings = lint([{ path: 'raft/core/bad.ts', text }]);
        expect(findings.map((f) => f.rule)).to.include('determinism');
      });
    }

    it('applies to raft/kv, scheduler plugins and reconcile logic too, and to the pure helpers they share from services/client', () => {
      const text = 'export const now = (): number => Date.now();';
      for (const path of ['raft/kv/mvcc.ts', 'services/scheduler/plugins/fit.ts', 'services/controllers/replicaset/reconcile.ts', 'services/client/quantity.ts', 'services/client/scheduling.ts']) {
        expect(rulesOf([{ path, text }]), path).to.include(`determinism ${path}:1`);
      }
      expect(rulesOf([{ path: 'services/client/informer.ts', text }])).to.deep.equal([]);
    });

    it('allows clocks outside the boundary, and names that only look alike inside it', () => {
      expect(lint([{ path: 'raft/node/node.ts', text: 'export const now = (): number => Date.now();' }])).to.deep.equal([]);
      const lookalikes = 'export interface T { Date: number; process(): void }\nexport const o = { setTimeout: 1 };\nexport const x = (t: T): number => t.Date;';
      expect(lint([{ path: 'raft/core/ok.ts', text: lookalikes }])).to.deep.equal([]);
    });
  });

  describe('layering', () => {
    it('rejects an import the module table does not allow, and any import of ops', () => {
      const findings = rulesOf([
        { path: 'raft/core/a.ts', text: "import { x } from '../storage/b.js';\nexport const y = x;" },
        { path: 'raft/storage/b.ts', text: 'export const x = 1;' },
        { path: 'services/client/c.ts', text: "import { z } from '../../ops/tool.js';\nexport const w = z;" },
        { path: 'ops/tool.ts', text: 'export const z = 1;' },
      ]);
      expect(findings).to.include('layering raft/core/a.ts:1');
      expect(findings).to.include('layering services/client/c.ts:1');
    });

    it('rejects a module missing from the table', () => {
      expect(rulesOf([{ path: 'services/mystery/m.ts', text: 'export const m = 1;' }])).to.deep.equal(['layering services/mystery/m.ts:1']);
    });

    it('accepts allowed imports', () => {
      const files = [
        { path: 'raft/storage/s.ts', text: "import type { Entry } from '../core/types.js';\nexport type E = Entry;" },
        { path: 'raft/core/types.ts', text: 'export interface Entry { index: number }' },
      ];
      expect(lint(files)).to.deep.equal([]);
    });
  });

  describe('import cycles', () => {
    it('finds a cycle between two files', () => {
      const findings = lint([
        { path: 'raft/core/a.ts', text: "import { b } from './b.js';\nexport const a = b;" },
        { path: 'raft/core/b.ts', text: "import { a } from './a.js';\nexport const b = a;" },
      ]);
      expect(findings.map((f) => f.message)).to.deep.equal(['import cycle between files: raft/core/a.ts -> raft/core/b.ts']);
    });

    it("finds a cycle between modules built from files that don't form one", () => {
      const cycles = findCycles(
        new Map([
          ['ops', new Set(['test'])],
          ['test', new Set(['ops'])],
          ['raft/core', new Set<string>()],
        ]),
      );
      expect(cycles).to.deep.equal([['ops', 'test']]);
    });
  });
});
