import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Message } from '../../raft/core/index.js';
import { decodeMessage, encodeMessage, WireFormatError } from '../../raft/transport/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const envelope = { from: 1, to: 2, term: 7 };

const samples: Message[] = [
  { ...envelope, kind: 'pre-vote', lastLogIndex: 10, lastLogTerm: 6 },
  { ...envelope, kind: 'vote', lastLogIndex: 10, lastLogTerm: 6, transfer: true },
  { ...envelope, kind: 'pre-vote-response', granted: true },
  { ...envelope, kind: 'vote-response', granted: false },
  {
    ...envelope,
    kind: 'append',
    prevIndex: 9,
    prevTerm: 6,
    commit: 8,
    entries: [
      { kind: 'normal', term: 7, index: 10, data: bytes('payload') },
      { kind: 'normal', term: 7, index: 11, data: new Uint8Array(0) },
      { kind: 'conf-change', term: 7, index: 12, change: { type: 'add-learner', nodeId: 4 } },
    ],
  },
  { ...envelope, kind: 'append-response', index: 9, reject: true, hintIndex: 5, hintTerm: 3 },
  { ...envelope, kind: 'heartbeat', commit: 8, context: 'read-1' },
  { ...envelope, kind: 'heartbeat-response', context: '' },
  {
    ...envelope,
    kind: 'snapshot',
    snapshot: { meta: { index: 2 ** 40, term: 7, conf: { voters: [1, 2, 3], learners: [4] } }, data: bytes('state') },
  },
  { ...envelope, kind: 'timeout-now' },
  { ...envelope, kind: 'propose', entries: [{ kind: 'normal', data: bytes('x') }, { kind: 'conf-change', change: { type: 'remove', nodeId: 3 } }] },
  { ...envelope, kind: 'read-index', context: 'ctx' },
  { ...envelope, kind: 'read-index-response', context: 'ctx', index: 12 },
];

/** Compare with Uint8Array/Buffer differences ignored. */
const normalize = (value: unknown): unknown =>
  JSON.parse(
    JSON.stringify(value, (_, v: unknown) => {
      if (v instanceof Uint8Array) return [...v];
      // Buffer.toJSON runs before this replacer sees the Buffer.
      const asBuffer = v as { type?: unknown; data?: unknown } | null;
      return asBuffer !== null && typeof asBuffer === 'object' && asBuffer.type === 'Buffer' ? asBuffer.data : v;
    }),
  );

describe('raft wire codec (proto/raft.proto)', () => {
  for (const message of samples) {
    it(`round-trips ${message.kind}`, () => {
      expect(normalize(decodeMessage(encodeMessage(message)))).to.deep.equal(normalize(message));
    });
  }

  it('rejects garbage and messages without a body with a clear error', () => {
    expect(() => decodeMessage(new Uint8Array([0xff, 0xff, 0xff]))).to.throw(WireFormatError, /undecodable raft message/);
    expect(() => decodeMessage(new Uint8Array([8, 1, 16, 2]))).to.throw(WireFormatError, /without a body/);
  });

  it('the committed generated code matches proto/*.proto', function () {
    this.timeout(60_000);
    const out = mkdtempSync(join(tmpdir(), 'mast-proto-check-'));
    try {
      execFileSync('node', [join(repoRoot, 'ops', 'proto', 'generate.mjs'), '--out', out], { stdio: 'pipe' });
      const committed = join(repoRoot, 'proto', 'gen');
      const generated = readdirSync(out, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
      const names = generated.map((entry) => relative(out, join(entry.parentPath, entry.name))).sort();
      const committedNames = readdirSync(committed, { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => relative(committed, join(entry.parentPath, entry.name)))
        .sort();
      expect(names).to.deep.equal(committedNames);
      for (const name of names) {
        expect(readFileSync(join(out, name), 'utf8'), `proto/gen/${name} is stale: run npm run proto`).to.equal(
          readFileSync(join(committed, name), 'utf8'),
        );
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
