// npm run lint (part of npm test): the project's own rules on every source
// file (see test/lint/rules.ts), then ESLint. Exits 1 on any finding.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lint, type SourceFile } from '../../test/lint/rules.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SOURCE_FOLDERS = ['proto', 'raft', 'services', 'ops', 'test'];

function collect(folder: string, into: SourceFile[]): void {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'testdata') collect(path, into);
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      into.push({ path: relative(repoRoot, path).replace(/\\/g, '/'), text: readFileSync(path, 'utf8') });
    }
  }
}

const files: SourceFile[] = [];
for (const folder of SOURCE_FOLDERS) {
  if (existsSync(join(repoRoot, folder))) collect(join(repoRoot, folder), files);
}
const findings = lint(files);
for (const finding of findings) console.error(`${finding.path}:${finding.line}: [${finding.rule}] ${finding.message}`);
if (findings.length > 0) {
  console.error(`lint: ${findings.length} finding(s) in ${files.length} files`);
  process.exitCode = 1;
} else {
  console.log(`lint: ${files.length} files: determinism, layering and import cycles clean`);
}
