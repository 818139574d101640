// Run after every build (npm run build, which npm install runs): link this package's own
// bins (package.json "bin") into node_modules/.bin, so that `npx mast ...`
// and `npx mastctl ...` work in a clone. npm links the bins of dependencies
// there but not the project's own; npx finds `mast` only because it is also
// the package's name.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { bin } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const binDir = join(root, 'node_modules', '.bin');
mkdirSync(binDir, { recursive: true });
for (const [name, target] of Object.entries(bin ?? {})) {
  const file = join(root, target);
  if (!existsSync(file)) throw new Error(`bin ${name}: ${target} does not exist (did the build run?)`);
  chmodSync(file, 0o755);
  const link = join(binDir, name);
  rmSync(link, { force: true });
  symlinkSync(relative(binDir, file), link);
}
