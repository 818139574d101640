// The project's own lint rules, on TypeScript syntax trees (no type checking,
// so it runs in a second):
//   determinism  raft/core, raft/kv, scheduler plugins and reconcile logic
//                use no clocks, timers, randomness, process or Node I/O;
//   layering     a module imports only what DESIGN.md's module table allows;
//   cycles       no import cycles between files, nor between modules.
// It takes file texts, so the tests can prove each rule fails on bad code.

import ts from 'typescript';
import { dirname, join, normalize } from 'node:path';

export interface SourceFile {
  /** Repository-relative path with forward slashes, e.g. raft/core/raft.ts. */
  readonly path: string;
  readonly text: string;
}

export interface Finding {
  readonly rule: 'determinism' | 'layering' | 'cycle';
  readonly path: string;
  readonly line: number;
  readonly message: string;
}

/** Folders that must stay deterministic (replayable from a seed). */
const DETERMINISTIC: readonly RegExp[] = [
  /^raft\/core\//,
  /^raft\/kv\//,
  /^services\/scheduler\/plugins\//,
  /^services\/controllers\/.*reconcile[^/]*\.ts$/,
  // The pure helpers those share from services/client.
  /^services\/client\/(labels|quantity|quota|scheduling|timestamps)\.ts$/,
  // The agent's pure decisions: what to do next for a pod, the status to report, backoff, env.
  /^services\/agent\/(pod-actions|pod-status|backoff|env)\.ts$/,
  // The proxy's decisions: the rules to program, their nftables text, IPVS messages, DNS answers.
  /^services\/proxy\/(rules|nftables-ruleset|ipvs-messages|netlink|dns-records)\.ts$/,
  // The chaos suite's linearizability checker: a verdict must not depend on when it runs.
  /^test\/chaos\/linearizability\.ts$/,
];

/** Globals that read time, draw randomness, schedule work or reach the process. */
const FORBIDDEN_GLOBALS = new Set([
  'Date',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'performance',
  'process',
  'crypto',
  'require',
  'Buffer',
  'global',
  'globalThis',
]);

/**
 * DESIGN.md's module table: what each module may import besides itself.
 * ops and test may import anything; nothing imports ops.
 */
export const LAYERS: Readonly<Record<string, readonly string[]>> = {
  proto: [],
  'raft/core': [],
  'raft/storage': ['raft/core'],
  'raft/transport': ['raft/core', 'proto'],
  'raft/node': ['raft/core', 'raft/storage', 'raft/transport'],
  'raft/kv': ['raft/core'],
  'services/client': ['proto'],
  'services/store': ['raft/core', 'raft/storage', 'raft/transport', 'raft/node', 'raft/kv', 'proto'],
  'services/telemetry': [],
  'services/etcdapi': ['services/store', 'services/telemetry', 'raft/core', 'raft/kv', 'proto'],
  'services/apiserver': ['services/client', 'services/store', 'services/etcdapi', 'services/telemetry', 'services/pki', 'raft/core', 'raft/kv', 'proto'],
  'services/master': ['services/apiserver', 'services/client', 'services/scheduler', 'services/controllers', 'services/store', 'services/etcdapi', 'services/telemetry', 'services/pki', 'raft/core', 'raft/transport', 'proto'],
  'services/ctl': ['services/client', 'services/pki', 'proto'],
  'services/cmd': ['services/master', 'services/ctl', 'services/client', 'services/agent', 'services/cri', 'services/proxy', 'services/launcher', 'services/store', 'services/pki', 'raft/storage', 'proto'],
  'services/pki': [],
  'services/launcher': ['services/client'],
  'services/scheduler': ['services/client', 'proto'],
  'services/controllers': ['services/client', 'proto'],
  'services/agent': ['services/client', 'proto'],
  'services/cri': ['proto'],
  'services/proxy': ['services/client', 'proto'],
  ops: ['*'],
  test: ['*'],
};

export function moduleOf(path: string): string {
  const parts = path.split('/');
  if (parts[0] === 'raft' || parts[0] === 'services') return parts.slice(0, 2).join('/');
  return parts[0] ?? path;
}

interface ImportReference {
  readonly specifier: string;
  readonly line: number;
}

function lineOf(source: ts.SourceFile, node: ts.Node): number {
  return source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
}

function importsOf(source: ts.SourceFile): ImportReference[] {
  const found: ImportReference[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      if (ts.isStringLiteral(node.moduleSpecifier)) found.push({ specifier: node.moduleSpecifier.text, line: lineOf(source, node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const argument = node.arguments[0];
      if (argument !== undefined && ts.isStringLiteral(argument)) found.push({ specifier: argument.text, line: lineOf(source, node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The repository path a relative import points to (.js specifiers name .ts sources). */
export function resolveImport(fromPath: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const joined = normalize(join(dirname(fromPath), specifier)).replace(/\\/g, '/');
  return joined.replace(/\.js$/, '.ts');
}

function isIdentifierReference(node: ts.Identifier): boolean {
  const parent = node.parent;
  if (ts.isPropertyAccessExpression(parent) && parent.name === node) return false;
  if ((ts.isPropertyAssignment(parent) || ts.isMethodDeclaration(parent) || ts.isPropertyDeclaration(parent)) && parent.name === node) return false;
  if (ts.isPropertySignature(parent) || ts.isMethodSignature(parent)) return false;
  if (ts.isImportSpecifier(parent) || ts.isExportSpecifier(parent)) return false;
  if (ts.isQualifiedName(parent) && parent.right === node) return false;
  return true;
}

function checkDeterminism(file: SourceFile, source: ts.SourceFile, findings: Finding[]): void {
  if (!DETERMINISTIC.some((pattern) => pattern.test(file.path))) return;
  const fail = (node: ts.Node, message: string): void => {
    findings.push({ rule: 'determinism', path: file.path, line: lineOf(source, node), message });
  };
  for (const reference of importsOf(source)) {
    if (!reference.specifier.startsWith('.')) {
      findings.push({
        rule: 'determinism',
        path: file.path,
        line: reference.line,
        message: `imports "${reference.specifier}": deterministic code imports only project files, never Node or packages`,
      });
    }
  }
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && FORBIDDEN_GLOBALS.has(node.text) && isIdentifierReference(node)) {
      fail(node, `uses ${node.text}: deterministic code gets time as ticks and randomness from the injected Rng`);
    } else if (
      ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'Math' &&
      node.name.text === 'random'
    ) {
      fail(node, 'uses Math.random: draw randomness from the injected Rng');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
}

function checkLayering(file: SourceFile, source: ts.SourceFile, findings: Finding[]): void {
  const from = moduleOf(file.path);
  const allowed = LAYERS[from];
  if (allowed === undefined) {
    findings.push({ rule: 'layering', path: file.path, line: 1, message: `module ${from} is not in the layering table (test/lint/rules.ts LAYERS, after DESIGN.md)` });
    return;
  }
  for (const reference of importsOf(source)) {
    const target = resolveImport(file.path, reference.specifier);
    if (target === undefined) continue;
    const to = moduleOf(target);
    if (to === from) continue;
    if (to === 'ops' && from !== 'ops') {
      findings.push({ rule: 'layering', path: file.path, line: reference.line, message: `imports ${target}: nothing imports ops/` });
    } else if (!allowed.includes('*') && !allowed.includes(to)) {
      findings.push({
        rule: 'layering',
        path: file.path,
        line: reference.line,
        message: `imports ${target}: ${from} may import only ${allowed.length === 0 ? 'itself' : allowed.join(', ')}`,
      });
    }
  }
}

/** Strongly connected components with more than one node (or a self-loop): Tarjan's algorithm. */
export function findCycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const connect = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        connect(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || graph.get(node)?.has(node) === true) cycles.push(component.sort());
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) connect(node);
  return cycles;
}

export function lint(files: readonly SourceFile[]): Finding[] {
  const findings: Finding[] = [];
  const known = new Set(files.map((file) => file.path));
  const fileGraph = new Map<string, Set<string>>();
  const moduleGraph = new Map<string, Set<string>>();
  for (const file of files) {
    const source = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    checkDeterminism(file, source, findings);
    checkLayering(file, source, findings);
    const edges = new Set<string>();
    for (const reference of importsOf(source)) {
      const target = resolveImport(file.path, reference.specifier);
      if (target === undefined || !known.has(target)) continue;
      edges.add(target);
      const from = moduleOf(file.path);
      const to = moduleOf(target);
      if (from !== to) {
        const moduleEdges = moduleGraph.get(from) ?? new Set<string>();
        moduleEdges.add(to);
        moduleGraph.set(from, moduleEdges);
      }
    }
    fileGraph.set(file.path, edges);
  }
  for (const cycle of findCycles(fileGraph)) {
    findings.push({ rule: 'cycle', path: cycle[0]!, line: 1, message: `import cycle between files: ${cycle.join(' -> ')}` });
  }
  // ops and test sit above everything; their edges cannot close a production cycle.
  for (const cycle of findCycles(moduleGraph)) {
    findings.push({ rule: 'cycle', path: cycle[0]!, line: 1, message: `import cycle between modules: ${cycle.join(' -> ')}` });
  }
  return findings;
}
