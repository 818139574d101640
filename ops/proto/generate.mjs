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
  //
  // The resource kinds (proto/resources) are a third pass: TypeScript
  // interfaces only, every field optional (Kubernetes JSON omits what is
  // unset), plus a compact schema (resources/v1/schema.ts) from buf's
  // descriptor that the API server's strict JSON decoder walks.
  const resources = join(root, 'proto', 'resources');
  const passes = [
    { out: join(scratch, 'gen'), long: 'number', paths: ['--exclude-path', resources] },
    { out: join(scratch, 'gen', 'client'), long: 'string', paths: ['--path', join(root, 'proto', 'etcd')] },
    { out: join(scratch, 'gen'), long: 'number', paths: ['--path', resources], typesOnly: true },
  ];
  for (const [index, pass] of passes.entries()) {
    let template = readFileSync(join(root, 'ops', 'proto', 'buf.gen.yaml'), 'utf8')
      .replace('local: node_modules/.bin/protoc-gen-ts_proto', `local: ${join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto')}`)
      .replace('out: proto/gen', `out: ${pass.out}`)
      .replace('forceLong=number', `forceLong=${pass.long}`);
    if (pass.typesOnly) {
      template = template
        .replace('useOptionals=none', 'useOptionals=all')
        .replace('      - outputServices=grpc-js\n', '')
        .concat(['onlyTypes=true', 'snakeToCamel=false'].map((opt) => `      - ${opt}\n`).join(''));
    }
    const templateFile = join(scratch, `buf.gen.${index}.yaml`);
    writeFileSync(templateFile, template);
    execFileSync(join(root, 'node_modules', '.bin', 'buf'), ['generate', '--template', templateFile, join(root, 'proto'), ...pass.paths], {
      stdio: 'inherit',
      cwd: root,
    });
  }
  writeResourceSchema(resources, join(scratch, 'gen', 'resources', 'v1'));
  roundWideCriIntegers(join(scratch, 'gen', 'cri', 'v1', 'api.ts'));
  rmSync(out, { recursive: true, force: true });
  cpSync(join(scratch, 'gen'), out, { recursive: true });
  console.log(`generated ${readdirSync(out).join(', ')} into ${out}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

/**
 * CRI's int64 fields are nanosecond timestamps (about 1.8e18 today) and
 * byte counts: decoded as JavaScript numbers they must not throw above
 * 2^53, as ts-proto's forceLong=number does, but round to the nearest
 * double (a timestamp keeps about 256 ns of precision).
 */
function roundWideCriIntegers(path) {
  const text = readFileSync(path, 'utf8');
  const throwing = /function longToNumber\(int64: \{ toString\(\): string \}\): number \{\n[\s\S]*?\n\}\n/;
  if (!throwing.test(text)) throw new Error(`${path}: ts-proto's longToNumber has changed shape; update roundWideCriIntegers`);
  writeFileSync(
    path,
    text.replace(throwing, 'function longToNumber(int64: { toString(): string }): number {\n  // Rounded beyond 2^53 (ops/proto/generate.mjs): nanosecond timestamps exceed it.\n  return globalThis.Number(int64.toString());\n}\n'),
  );
}

/**
 * Quantity and IntOrString are marker messages: in JSON they are a string
 * (or a number) — give the interfaces those types — and write the schema:
 * for each message, its fields by JSON name with their type, whether
 * repeated, and for maps the value type.
 */
function writeResourceSchema(resources, outDir) {
  for (const name of readdirSync(outDir)) {
    if (!name.endsWith('.ts')) continue;
    const path = join(outDir, name);
    const text = readFileSync(path, 'utf8')
      .replace(/export interface Quantity \{\n\}/, '/** Decoded as a string ("100m", "128Mi"; a YAML number becomes its decimal text). */\nexport type Quantity = string;')
      .replace(/export interface IntOrString \{\n\}/, 'export type IntOrString = number | string;');
    writeFileSync(path, text);
  }
  const descriptorFile = join(outDir, 'descriptor.json');
  execFileSync(join(root, 'node_modules', '.bin', 'buf'), ['build', join(root, 'proto'), '--path', resources, '--as-file-descriptor-set', '-o', descriptorFile], { cwd: root });
  const set = JSON.parse(readFileSync(descriptorFile, 'utf8'));
  rmSync(descriptorFile);
  const scalar = {
    TYPE_STRING: 'string', TYPE_BOOL: 'bool', TYPE_INT32: 'int32', TYPE_INT64: 'int64', TYPE_UINT32: 'uint32', TYPE_UINT64: 'uint64',
    TYPE_DOUBLE: 'double', TYPE_FLOAT: 'double', TYPE_SINT32: 'int32', TYPE_SINT64: 'int64',
  };
  const messages = {};
  const mapEntries = {};
  const collectMaps = (prefix, message) => {
    for (const nested of message.nestedType ?? []) {
      if (nested.options?.mapEntry) mapEntries[`${prefix}.${message.name}.${nested.name}`] = nested;
      else collectMaps(`${prefix}.${message.name}`, nested);
    }
  };
  for (const file of set.file) for (const message of file.messageType ?? []) collectMaps(`.${file.package}`, message);
  const typeOf = (field) => {
    if (field.type === 'TYPE_MESSAGE') return field.typeName.split('.').pop();
    const type = scalar[field.type];
    if (type === undefined) throw new Error(`${field.name}: ${field.type} is not used in resource schemas (enums are strings)`);
    return type;
  };
  const visit = (file, message) => {
    if (message.options?.mapEntry) return;
    if (messages[message.name] !== undefined) throw new Error(`message ${message.name} is defined twice in proto/resources`);
    const fields = {};
    for (const field of message.field ?? []) {
      const entry = field.type === 'TYPE_MESSAGE' ? mapEntries[field.typeName] : undefined;
      if (entry !== undefined) fields[field.jsonName] = { map: typeOf(entry.field[1]) };
      else fields[field.jsonName] = field.label === 'LABEL_REPEATED' ? { list: typeOf(field) } : typeOf(field);
    }
    messages[message.name] = fields;
    for (const nested of message.nestedType ?? []) visit(file, nested);
  };
  for (const file of set.file) if (file.name.startsWith('resources/')) for (const message of file.messageType ?? []) visit(file, message);
  const body = JSON.stringify(messages, null, 1);
  writeFileSync(
    join(outDir, 'schema.ts'),
    `// Generated by ops/proto/generate.mjs from proto/resources. DO NOT EDIT.\n` +
      `// Each message: its fields by JSON name -> a scalar type, a message name, { list: T } or { map: T }.\n` +
      `/* eslint-disable */\n` +
      `export type FieldType = string | { readonly list: string } | { readonly map: string };\n` +
      `export const RESOURCE_SCHEMA: Readonly<Record<string, Readonly<Record<string, FieldType>>>> = ${body};\n`,
  );
}
