// npm run proto: regenerate proto/gen from proto/*.proto with buf and ts-proto
// (both local devDependencies: no network). `--out DIR` writes elsewhere, which
// the tests use to check that the committed code is up to date.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, cpSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const outIndex = process.argv.indexOf('--out');
const out = outIndex > 0 ? resolve(process.argv[outIndex + 1]) : join(root, 'proto', 'gen');

const scratch = mkdtempSync(join(tmpdir(), 'mast-proto-'));
try {
  // Two passes: everything with 64-bit integers as JavaScript numbers (mast's
  // own ids and revisions stay below 2^53), and a client copy of the etcd API
  // with 64-bit integers as strings, for talking to real etcd members whose
  // ids use all 64 bits.
  const passes = [
    { out: join(scratch, 'gen'), long: 'number', paths: [] },
    { out: join(scratch, 'gen', 'client'), long: 'string', paths: ['--path', join(root, 'proto', 'etcd')] },
  ];
  for (const [index, pass] of passes.entries()) {
    const template = readFileSync(join(root, 'ops', 'proto', 'buf.gen.yaml'), 'utf8')
      .replace('local: node_modules/.bin/protoc-gen-ts_proto', `local: ${join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto')}`)
      .replace('out: proto/gen', `out: ${pass.out}`)
      .replace('forceLong=number', `forceLong=${pass.long}`);
    const templateFile = join(scratch, `buf.gen.${index}.yaml`);
    writeFileSync(templateFile, template);
    execFileSync(join(root, 'node_modules', '.bin', 'buf'), ['generate', '--template', templateFile, join(root, 'proto'), ...pass.paths], {
      stdio: 'inherit',
      cwd: root,
    });
  }
  rmSync(out, { recursive: true, force: true });
  cpSync(join(scratch, 'gen'), out, { recursive: true });
  console.log(`generated ${readdirSync(out).join(', ')} into ${out}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
