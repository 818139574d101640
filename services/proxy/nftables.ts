// The nftables backend of the Service proxy: runs the files
// nftables-ruleset.ts writes through libnftables in this process (or, where
// the library cannot be loaded, `nft -f -`), one kernel transaction per
// apply, so the table is never seen half-programmed. An
// update that the kernel refuses (the table drifted: someone removed a chain
// or an element by hand) falls back to a full sync, which replaces the table
// whatever it holds. verify() compares the kernel's table with what the last
// apply should have left there (chain and set names, the verdict maps).

import { spawn } from 'node:child_process';
import type { ProxyBackend, ProxyBackendOptions } from './backend.js';
import { LibNftables, LibNftablesError } from './libnftables.js';
import { changeRuleset, checkTableName, expectedTable, fullRuleset, NO_ENDPOINTS_MAP, SERVICES_MAP, type ExpectedTable, type RulesetOptions } from './nftables-ruleset.js';
import { isEmptyChange, sameRule, type ProxyRules, type RulesChange } from './rules.js';

export interface NftablesBackendOptions extends ProxyBackendOptions {
  /** The table (family ip) this backend owns entirely; default 'mast'. */
  readonly table?: string;
  /** The nft binary; default 'nft' from PATH. */
  readonly nft?: string;
  /** Program the table in network namespace /run/netns/NAME (tests, benchmarks). */
  readonly netns?: string;
  /** 'library' (default when libnftables loads): in-process; 'process': an nft process per apply. */
  readonly engine?: 'library' | 'process';
}

export const DEFAULT_TABLE = 'mast';
/** One nft run; a full file of 10,000 backends takes well under a second, so this only catches a hung process. */
const NFT_TIMEOUT_MS = 30_000;
/** How much of nft's stderr an error carries. */
const STDERR_CHARS_MAX = 4_000;

/** nft failed: its exit status and what it printed. */
export class NftError extends Error {
  override readonly name = 'NftError';
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

interface NftInvocation {
  readonly nft: string;
  readonly netns?: string;
}

/** Runs nft with `args`, feeding `input` on stdin; resolves with stdout, rejects with an NftError carrying stderr. */
function runNft(invocation: NftInvocation, args: readonly string[], input = ''): Promise<string> {
  const [command, argv] = invocation.netns === undefined ? [invocation.nft, [...args]] : ['ip', ['netns', 'exec', invocation.netns, invocation.nft, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let settled = false;
    const finish = (error: Error | undefined, output?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error === undefined) resolve(output ?? '');
      else reject(error);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new NftError(`${command} ${argv.join(' ')}: no answer after ${NFT_TIMEOUT_MS} ms`, null, ''));
    }, NFT_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // nft may exit before reading all its input (a parse error); the exit status tells why.
    child.stdin.on('error', () => {});
    child.on('error', (error) => finish(new NftError(`cannot run ${command}: ${error.message}`, null, '')));
    child.on('close', (code) => {
      const errors = Buffer.concat(stderr).toString('utf8').trim();
      if (code === 0) finish(undefined, Buffer.concat(stdout).toString('utf8'));
      else finish(new NftError(`${command} ${argv.join(' ')} failed (exit ${code}): ${errors.slice(0, STDERR_CHARS_MAX)}`, code, errors));
    });
    child.stdin.end(input);
  });
}

function isNoSuchTable(error: unknown): boolean {
  return error instanceof NftError && /No such file or directory/.test(error.stderr);
}

export class NftablesBackend implements ProxyBackend {
  readonly mode = 'nftables' as const;
  private readonly table: string;
  private readonly invocation: NftInvocation;
  private readonly log: (line: string) => void;
  /** What the kernel holds, as far as we know; undefined: unknown (never synced, or the last apply failed). */
  private applied: ProxyRules | undefined;
  private expected: ExpectedTable | undefined;
  /** Applies and verifications run one at a time, in call order. */
  private tail: Promise<unknown> = Promise.resolve();
  /** The in-process engine (made on first use, freed by close()); undefined: nft processes. */
  private library: LibNftables | undefined;
  private readonly useLibrary: boolean;

  constructor(private readonly options: NftablesBackendOptions) {
    this.table = options.table ?? DEFAULT_TABLE;
    checkTableName(this.table);
    this.invocation = { nft: options.nft ?? 'nft', ...(options.netns === undefined ? {} : { netns: options.netns }) };
    this.log = options.log ?? (() => {});
    this.library = options.engine === 'process' ? undefined : LibNftables.open(options.netns);
    this.useLibrary = this.library !== undefined;
  }

  /** How applies reach the kernel. */
  get engine(): 'library' | 'process' {
    return this.useLibrary ? 'library' : 'process';
  }

  private get rulesetOptions(): RulesetOptions {
    return { table: this.table, nodeIPs: this.options.nodeIPs };
  }

  sync(rules: ProxyRules): Promise<void> {
    return this.exclusive(() => this.syncNow(rules));
  }

  update(change: RulesChange, rules: ProxyRules): Promise<void> {
    return this.exclusive(async () => {
      const applied = this.applied;
      if (applied === undefined || !this.follows(change, applied, rules)) {
        this.log(`nftables: the change does not follow what table ${this.table} holds; replacing the table`);
        return this.syncNow(rules);
      }
      if (isEmptyChange(change)) {
        this.remember(rules);
        return;
      }
      try {
        await this.apply(changeRuleset(change, rules, this.rulesetOptions));
        this.remember(rules);
      } catch (error) {
        this.log(`nftables: partial update of table ${this.table} failed, replacing the table: ${String(error)}`);
        await this.syncNow(rules);
      }
    });
  }

  /**
   * Lists chain and set names and the two verdict maps (not whole table:
   * that costs seconds with thousands of rules) and compares them with what
   * the last apply programmed. The hairpin set is only checked to exist:
   * listing its thousands of elements would cost more than the rest.
   */
  verify(): Promise<boolean> {
    // After any apply in flight, so it compares with what that apply left.
    return this.exclusive(() => this.verifyNow());
  }

  private async verifyNow(): Promise<boolean> {
    const applied = this.applied;
    if (applied === undefined) return false;
    this.expected ??= expectedTable(applied, this.rulesetOptions);
    const expected = this.expected;
    const list = (args: readonly string[]): Promise<NftObject[]> => runNft(this.invocation, ['-j', ...args]).then(objectsOf);
    try {
      const [chains, sets, services, noEndpoints] = await Promise.all([
        list(['list', 'chains', 'ip']),
        list(['-t', 'list', 'sets', 'ip']),
        list(['list', 'map', 'ip', this.table, SERVICES_MAP]),
        list(['list', 'map', 'ip', this.table, NO_ENDPOINTS_MAP]),
      ]);
      return (
        sameMembers(namesIn(chains, 'chain', this.table), expected.chains) &&
        sameMembers(namesIn(sets, 'set', this.table), expected.sets) &&
        sameMembers(mapElements(services), expected.maps[SERVICES_MAP]) &&
        sameMembers(mapElements(noEndpoints), expected.maps[NO_ENDPOINTS_MAP])
      );
    } catch (error) {
      if (isNoSuchTable(error)) return false;
      throw error;
    }
  }

  close(): Promise<void> {
    return this.exclusive(async () => {
      this.forget();
      try {
        await this.apply(`delete table ip ${this.table}\n`);
      } catch (error) {
        if (!isNoSuchTable(error)) throw error;
      } finally {
        this.library?.close();
        this.library = undefined;
      }
    });
  }

  private async syncNow(rules: ProxyRules): Promise<void> {
    // An nft transaction is all or nothing, but if it failed the caller may
    // believe otherwise: forget, so the next update replaces the table too.
    this.forget();
    await this.apply(fullRuleset(rules, this.rulesetOptions));
    this.remember(rules);
  }

  /** Whether `change` leads from `applied` to `rules`: what it removes or changes is there as it says, what it adds is not, and the count adds up. */
  private follows(change: RulesChange, applied: ProxyRules, rules: ProxyRules): boolean {
    const byId = new Map(applied.services.map((rule) => [rule.id, rule]));
    const present = (rule: (typeof applied.services)[number]): boolean => {
      const current = byId.get(rule.id);
      return current !== undefined && sameRule(current, rule);
    };
    return (
      applied.services.length + change.added.length - change.removed.length === rules.services.length &&
      change.added.every((rule) => !byId.has(rule.id)) &&
      change.removed.every(present) &&
      change.changed.every((pair) => present(pair.before))
    );
  }

  private async apply(text: string): Promise<void> {
    if (this.useLibrary) this.library ??= LibNftables.open(this.options.netns);
    if (this.library === undefined) {
      await runNft(this.invocation, ['-f', '-'], text);
      return;
    }
    try {
      await this.library.run(text);
    } catch (error) {
      if (error instanceof LibNftablesError) throw new NftError(error.message, null, error.stderr);
      throw error;
    }
  }

  private remember(rules: ProxyRules): void {
    this.applied = rules;
    this.expected = undefined;
  }

  private forget(): void {
    this.applied = undefined;
    this.expected = undefined;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work, work);
    this.tail = result.catch(() => {});
    return result;
  }
}

/** One object of `nft -j list …` output: {chain: {…}}, {set: {…}}, {map: {…}}, … */
type NftObject = Record<string, { readonly table?: string; readonly name?: string; readonly elem?: unknown } | undefined>;

function objectsOf(listing: string): NftObject[] {
  const parsed = JSON.parse(listing) as { nftables?: NftObject[] };
  return parsed.nftables ?? [];
}

function namesIn(objects: readonly NftObject[], kind: 'chain' | 'set', table: string): string[] {
  const names: string[] = [];
  for (const object of objects) {
    const item = object[kind];
    if (item?.table === table && item.name !== undefined) names.push(item.name);
  }
  return names;
}

/** A verdict map's elements as `addr . proto . port : goto chain`, the form expectedTable uses. */
function mapElements(objects: readonly NftObject[]): string[] {
  const elements: string[] = [];
  for (const object of objects) {
    const items = object['map']?.elem;
    if (!Array.isArray(items)) continue;
    for (const item of items as unknown[]) {
      const [key, verdict] = Array.isArray(item) ? (item as unknown[]) : [];
      const parts = (key as { concat?: unknown[] } | undefined)?.concat;
      const target = (verdict as { goto?: { target?: unknown } } | undefined)?.goto?.target;
      elements.push(`${Array.isArray(parts) ? parts.map(String).join(' . ') : JSON.stringify(key)} : ${typeof target === 'string' ? `goto ${target}` : JSON.stringify(verdict)}`);
    }
  }
  return elements;
}

function sameMembers(actual: readonly string[], expected: readonly string[]): boolean {
  if (actual.length !== expected.length) return false;
  const wanted = new Set(expected);
  return actual.every((item) => wanted.has(item));
}

/** Whether this process can program nftables: root, the binary present, and a scratch table with a nat chain accepted by the kernel. */
export async function nftablesUsable(nft = 'nft'): Promise<{ usable: true } | { usable: false; reason: string }> {
  if (process.getuid?.() !== 0) return { usable: false, reason: 'not running as root' };
  const invocation: NftInvocation = { nft };
  try {
    await runNft(invocation, ['--version']);
  } catch (error) {
    return { usable: false, reason: `nft binary ${JSON.stringify(nft)} not usable: ${error instanceof Error ? error.message : String(error)}` };
  }
  const scratch = `mast-probe-${process.pid}`;
  try {
    await runNft(invocation, ['-f', '-'], `table ip ${scratch} {\n  chain probe {\n    type nat hook output priority -100; policy accept;\n  }\n}\n`);
  } catch (error) {
    return { usable: false, reason: `the kernel refused a scratch nat table: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    await runNft(invocation, ['-f', '-'], `delete table ip ${scratch}\n`).catch(() => {});
  }
  return { usable: true };
}
