// The nftables text for the proxy's rules (kube-proxy's nftables mode,
// adapted): a pure translation of the model in rules.ts into `nft -f` files,
// so the whole design can be read and tested without a kernel.
//
// One table `ip <T>` owns everything:
//   map service-ips           daddr . l4proto . dport → goto the Service's svc-
//                             chain (cluster IP), or its ext- chain (external
//                             IPs, node IP . nodePort), which marks for
//                             masquerade first (replies must come back here)
//   map no-endpoint-services  the same keys of Services without ready backends
//                             → goto reject-chain, so clients fail at once
//   set hairpin-endpoints     ep . ep for every backend: a DNATed packet from a
//                             backend to itself is masqueraded (hairpin)
//   svc-…   with ClientIP affinity, per backend first:
//             ip saddr @aff-… meta l4proto P update @aff-… { ip saddr } dnat to ep
//           then for backend i of N:
//             numgen random mod (N-i) == 0 meta l4proto P [update @aff-… { ip saddr }] dnat to ep
//           (the last one without numgen), which picks each backend with
//           probability 1/N.
//   nat prerouting (dstnat) and nat output (-100: nft 1.0.6 refuses dstnat
//   there) jump to `services`; nat postrouting masquerades marked and hairpin
//   packets; filter input/forward/output send new connections to
//   `endpoints-check`.
//
// Two departures from kube-proxy, both for speed (1,000 Services of 10
// backends, kernel 6.18, nft 1.0.6: a full sync took 4.4 s with both, 1.5 s
// without the first, 0.65 s without either): no `numgen random mod N vmap
// { … }` — the kernel walks the whole transaction each time such an
// anonymous map is bound, so a big transaction is quadratic — and no chain
// per endpoint: DNAT is a terminal statement, so each backend is one rule in
// its Service's chain, and hairpin traffic is found by one set lookup in
// postrouting instead of a rule per backend.
//
// A rule's chains and sets have names derived from its id (and backend), so
// an update touches exactly the objects that changed (changeRuleset). A map
// key two rules claim (a user error, e.g. the same external IP and port)
// goes to the first rule in id order, in full and partial files alike.

import type { Backend, ProxyRules, RulesChange, ServicePortRule } from './rules.js';

export interface RulesetOptions {
  /** The table's name (family ip). */
  readonly table: string;
  /** The node's IPv4 addresses NodePorts answer on. */
  readonly nodeIPs: readonly string[];
}

export const SERVICES_MAP = 'service-ips';
export const NO_ENDPOINTS_MAP = 'no-endpoint-services';
export const HAIRPIN_SET = 'hairpin-endpoints';
/** The maps and sets whose elements the proxy computes (affinity sets fill themselves). */
export type Container = typeof SERVICES_MAP | typeof NO_ENDPOINTS_MAP | typeof HAIRPIN_SET;
const CONTAINERS: readonly Container[] = [SERVICES_MAP, NO_ENDPOINTS_MAP, HAIRPIN_SET];

const REJECT_CHAIN = 'reject-chain';
const SERVICES_CHAIN = 'services';
const ENDPOINTS_CHECK_CHAIN = 'endpoints-check';
const MASQUERADING_CHAIN = 'masquerading';
/** The packet mark bit asking nat postrouting to masquerade (kube-proxy's bit, so the two never disagree). */
const MASQUERADE_MARK = '0x00004000';
/** Names stay well under the kernel's 255 characters so `nft list` stays readable; the hash keeps truncated names unique. */
const NAME_LENGTH_MAX = 96;
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const KEY_TYPE = 'ipv4_addr . inet_proto . inet_service';

const CONTAINER_TYPES: Readonly<Record<Container, string>> = {
  [SERVICES_MAP]: `type ${KEY_TYPE} : verdict`,
  [NO_ENDPOINTS_MAP]: `type ${KEY_TYPE} : verdict`,
  [HAIRPIN_SET]: 'type ipv4_addr . ipv4_addr',
};

/** The fixed chains, in the order a table definition declares them (each refers only to earlier ones). */
const BASE_CHAINS: readonly { readonly name: string; readonly hook?: string; readonly lines: readonly string[] }[] = [
  { name: SERVICES_CHAIN, lines: [`ip daddr . meta l4proto . th dport vmap @${SERVICES_MAP}`] },
  { name: ENDPOINTS_CHECK_CHAIN, lines: [`ip daddr . meta l4proto . th dport vmap @${NO_ENDPOINTS_MAP}`] },
  {
    name: MASQUERADING_CHAIN,
    lines: [
      `ct status dnat ip saddr . ip daddr @${HAIRPIN_SET} masquerade fully-random`,
      `meta mark & ${MASQUERADE_MARK} == 0 return`,
      // Cleared, so the bit does not leak into whatever else reads marks.
      `meta mark set meta mark ^ ${MASQUERADE_MARK}`,
      'masquerade fully-random',
    ],
  },
  { name: 'nat-prerouting', hook: 'type nat hook prerouting priority dstnat; policy accept;', lines: [`jump ${SERVICES_CHAIN}`] },
  { name: 'nat-output', hook: 'type nat hook output priority -100; policy accept;', lines: [`jump ${SERVICES_CHAIN}`] },
  { name: 'nat-postrouting', hook: 'type nat hook postrouting priority srcnat; policy accept;', lines: [`jump ${MASQUERADING_CHAIN}`] },
  // Before the usual filter chains (priority 0), so a host firewall cannot turn the refusal into a timeout.
  { name: 'filter-input', hook: 'type filter hook input priority -110; policy accept;', lines: [`ct state new jump ${ENDPOINTS_CHECK_CHAIN}`] },
  { name: 'filter-forward', hook: 'type filter hook forward priority -110; policy accept;', lines: [`ct state new jump ${ENDPOINTS_CHECK_CHAIN}`] },
  { name: 'filter-output', hook: 'type filter hook output priority -110; policy accept;', lines: [`ct state new jump ${ENDPOINTS_CHECK_CHAIN}`] },
];

/** reject is only allowed in chains reached from input, forward and output: the filter chains above. */
const REJECT_LINES: readonly string[] = ['meta l4proto tcp reject with tcp reset', 'reject'];

interface ChainSpec {
  readonly name: string;
  readonly lines: readonly string[];
}

interface SetSpec {
  readonly name: string;
  readonly timeoutSeconds: number;
}

/** The chains and sets one rule owns. */
interface RuleObjects {
  readonly sets: readonly SetSpec[];
  readonly chains: readonly ChainSpec[];
}

/** One element of a computed map or set: the key, and the verdict for maps. */
interface Element {
  readonly container: Container;
  readonly verdict?: string;
}

/** What a table holding these rules contains, for checking the kernel's copy. */
export interface ExpectedTable {
  /** Sorted. */
  readonly chains: readonly string[];
  /** Sets (not maps), sorted: the hairpin set and the affinity sets. */
  readonly sets: readonly string[];
  /** Each verdict map's elements as `key : verdict`, sorted. */
  readonly maps: Readonly<Record<MapName, readonly string[]>>;
  readonly hairpinCount: number;
}

export type MapName = typeof SERVICES_MAP | typeof NO_ENDPOINTS_MAP;

// ---------------------------------------------------------------- names

/** FNV-1a, 32 bits, as 8 hex digits: short, pure and stable across runs. */
export function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

const UNSAFE = /[^A-Za-z0-9_.-]/g;

/** Only characters an unquoted nft identifier may hold; '/' is kept for our own separators. */
function sanitize(text: string): string {
  return text.replace(UNSAFE, '_');
}

function objectName(prefix: string, hashed: string, rule: ServicePortRule, tail = ''): string {
  const start = `${prefix}-${fnv1a(hashed)}-`;
  const readable = [rule.namespace, rule.name, rule.portName]
    .filter((part) => part !== '')
    .map(sanitize)
    .join('/');
  return start + readable.slice(0, Math.max(0, NAME_LENGTH_MAX - start.length - tail.length)) + tail;
}

export function serviceChainName(rule: ServicePortRule): string {
  return objectName('svc', rule.id, rule);
}

export function externalChainName(rule: ServicePortRule): string {
  return objectName('ext', rule.id, rule);
}

/** The timeout is part of the name: a changed timeout makes a new set, since a set's timeout cannot be altered in place. */
export function affinitySetName(rule: ServicePortRule, backend: Backend, timeoutSeconds: number): string {
  return objectName('aff', `${rule.id} ${backend.ip}:${backend.port} ${timeoutSeconds}`, rule, `__${backend.ip}/${backend.port}`);
}

// ---------------------------------------------------------------- model → objects

/** A dotted quad without leading zeros (what the API server stores). */
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIPv4(text: string | undefined): text is string {
  return text !== undefined && IPV4.test(text);
}

function isPort(value: number | undefined): value is number {
  return value !== undefined && Number.isInteger(value) && value >= 1 && value <= 65_535;
}

/** The part of a rule an `ip` table can express. */
interface Programmable {
  readonly rule: ServicePortRule;
  readonly protocol: string;
  readonly clusterIP: string | undefined;
  readonly externalIPs: readonly string[];
  /** Node IP . nodePort keys. */
  readonly nodeKeys: readonly string[];
  readonly backends: readonly Backend[];
  readonly timeoutSeconds: number | undefined;
}

/** IPv6 or malformed addresses and out-of-range ports are left out, so one bad object cannot make every transaction fail. */
function programmable(rule: ServicePortRule, nodeIPs: readonly string[]): Programmable {
  const portOk = isPort(rule.port);
  const timeoutSeconds = rule.sessionAffinity?.timeoutSeconds;
  const protocol = rule.protocol.toLowerCase();
  return {
    rule,
    protocol,
    clusterIP: portOk && isIPv4(rule.clusterIP) ? rule.clusterIP : undefined,
    externalIPs: portOk ? rule.externalIPs.filter(isIPv4) : [],
    nodeKeys: isPort(rule.nodePort) ? nodeIPs.filter(isIPv4).map((ip) => `${ip} . ${protocol} . ${rule.nodePort}`) : [],
    backends: rule.backends.filter((backend) => isIPv4(backend.ip) && isPort(backend.port)),
    // nft takes whole seconds, at least one; the API server validates 1..86400 anyway.
    timeoutSeconds: timeoutSeconds === undefined ? undefined : Number.isFinite(timeoutSeconds) ? Math.max(1, Math.floor(timeoutSeconds)) : 1,
  };
}

function hasExternalChain(rule: Programmable): boolean {
  return rule.externalIPs.length > 0 || rule.nodeKeys.length > 0;
}

function ruleObjects(rule: Programmable): RuleObjects {
  const service = serviceChainName(rule.rule);
  const sets: SetSpec[] = [];
  const sticky: string[] = [];
  const picks: string[] = [];
  const count = rule.backends.length;
  rule.backends.forEach((backend, index) => {
    const dnat = `dnat to ${backend.ip}:${backend.port}`;
    let remember = '';
    if (rule.timeoutSeconds !== undefined) {
      const set = affinitySetName(rule.rule, backend, rule.timeoutSeconds);
      sets.push({ name: set, timeoutSeconds: rule.timeoutSeconds });
      remember = `update @${set} { ip saddr } `;
      sticky.push(`ip saddr @${set} meta l4proto ${rule.protocol} ${remember}${dnat}`);
    }
    const draw = index === count - 1 ? '' : `numgen random mod ${count - index} == 0 `;
    picks.push(`${draw}meta l4proto ${rule.protocol} ${remember}${dnat}`);
  });
  const chains: ChainSpec[] = [{ name: service, lines: [...sticky, ...picks] }];
  if (hasExternalChain(rule)) chains.push({ name: externalChainName(rule.rule), lines: [`meta mark set meta mark | ${MASQUERADE_MARK}`, `goto ${service}`] });
  return { sets, chains };
}

/** Calls `claim` with each key a rule claims in the computed maps and sets. */
function forEachElement(rule: Programmable, claim: (key: string, element: Element) => void): void {
  const ready = rule.backends.length > 0;
  const container = ready ? SERVICES_MAP : NO_ENDPOINTS_MAP;
  const direct: Element = { container, verdict: ready ? `goto ${serviceChainName(rule.rule)}` : `goto ${REJECT_CHAIN}` };
  const external: Element = hasExternalChain(rule) ? { container, verdict: ready ? `goto ${externalChainName(rule.rule)}` : `goto ${REJECT_CHAIN}` } : direct;
  if (rule.clusterIP !== undefined) claim(`${rule.clusterIP} . ${rule.protocol} . ${rule.rule.port}`, direct);
  for (const ip of rule.externalIPs) claim(`${ip} . ${rule.protocol} . ${rule.rule.port}`, external);
  for (const key of rule.nodeKeys) claim(key, external);
  for (const backend of rule.backends) claim(`${backend.ip} . ${backend.ip}`, HAIRPIN);
}

const HAIRPIN: Element = { container: HAIRPIN_SET };

/** Every key the rules claim, the first claim in id order winning; only `keys` when given. */
function elementsOf(rules: readonly Programmable[], keys?: ReadonlySet<string>): Map<string, Element> {
  const elements = new Map<string, Element>();
  const claim = (key: string, element: Element): void => {
    if ((keys === undefined || keys.has(key)) && !elements.has(key)) elements.set(key, element);
  };
  for (const rule of rules) forEachElement(rule, claim);
  return elements;
}

function elementText(key: string, element: Element): string {
  return element.verdict === undefined ? key : `${key} : ${element.verdict}`;
}

function compareIds(a: ServicePortRule, b: ServicePortRule): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Throws unless `table` is a name this module can write unquoted. */
export function checkTableName(table: string): void {
  if (!TABLE_NAME.test(table)) throw new Error(`nftables table name ${JSON.stringify(table)} must match ${String(TABLE_NAME)}`);
}

function prepare(rules: readonly ServicePortRule[], options: RulesetOptions): Programmable[] {
  checkTableName(options.table);
  // Sorted here too, so the first claim of a key is the same in full and partial files whatever order the caller keeps.
  return [...rules].sort(compareIds).map((rule) => programmable(rule, options.nodeIPs));
}

// ---------------------------------------------------------------- full file

function setDefinition(set: SetSpec): string {
  return `type ipv4_addr; flags dynamic,timeout; timeout ${set.timeoutSeconds}s;`;
}

function renderChain(out: string[], name: string, lines: readonly string[], hook?: string): void {
  const body = hook === undefined ? lines : [hook, ...lines];
  out.push(body.length === 0 ? `  chain ${name} {\n  }` : `  chain ${name} {\n    ${body.join('\n    ')}\n  }`);
}

/** An `nft -f` file replacing the whole table in one transaction (creating it first, so the delete cannot fail). */
export function fullRuleset(rules: ProxyRules, options: RulesetOptions): string {
  const prepared = prepare(rules.services, options);
  const table = options.table;
  const out = [`add table ip ${table}`, `delete table ip ${table}`, `table ip ${table} {`];
  renderChain(out, REJECT_CHAIN, REJECT_LINES);
  for (const rule of prepared) {
    const objects = ruleObjects(rule);
    for (const set of objects.sets) out.push(`  set ${set.name} { ${setDefinition(set)} }`);
    for (const chain of objects.chains) renderChain(out, chain.name, chain.lines);
  }
  const entries = new Map<Container, string[]>(CONTAINERS.map((container) => [container, []]));
  for (const [key, element] of elementsOf(prepared)) entries.get(element.container)?.push(elementText(key, element));
  for (const container of CONTAINERS) {
    out.push(`  ${container === HAIRPIN_SET ? 'set' : 'map'} ${container} {`, `    ${CONTAINER_TYPES[container]}`);
    const items = entries.get(container) ?? [];
    if (items.length > 0) out.push(`    elements = {\n      ${items.join(',\n      ')}\n    }`);
    out.push('  }');
  }
  for (const chain of BASE_CHAINS) renderChain(out, chain.name, chain.lines, chain.hook);
  out.push('}', '');
  return out.join('\n');
}

/** The chains, sets and elements fullRuleset(rules) programs (affinity sets' contents aside). */
export function expectedTable(rules: ProxyRules, options: RulesetOptions): ExpectedTable {
  const prepared = prepare(rules.services, options);
  const chains = [REJECT_CHAIN, ...BASE_CHAINS.map((chain) => chain.name)];
  const sets: string[] = [HAIRPIN_SET];
  for (const rule of prepared) {
    const objects = ruleObjects(rule);
    for (const set of objects.sets) sets.push(set.name);
    for (const chain of objects.chains) chains.push(chain.name);
  }
  const maps: Record<MapName, string[]> = { [SERVICES_MAP]: [], [NO_ENDPOINTS_MAP]: [] };
  let hairpinCount = 0;
  for (const [key, element] of elementsOf(prepared)) {
    if (element.container === HAIRPIN_SET) hairpinCount++;
    else maps[element.container].push(elementText(key, element));
  }
  return { chains: chains.sort(), sets: sets.sort(), maps: { [SERVICES_MAP]: maps[SERVICES_MAP].sort(), [NO_ENDPOINTS_MAP]: maps[NO_ENDPOINTS_MAP].sort() }, hairpinCount };
}

// ---------------------------------------------------------------- partial file

/** What a rule's claimed keys are made of, to find cheaply which untouched rules may claim a touched key. */
interface KeyIndex {
  readonly keys: ReadonlySet<string>;
  readonly hairpinIPs: ReadonlySet<string>;
}

/** Whether `rule` may claim one of the keys (a superset: programmable() decides for those that might). */
function mayClaim(rule: ServicePortRule, index: KeyIndex, nodeIPs: readonly string[]): boolean {
  const protocol = rule.protocol.toLowerCase();
  if (rule.clusterIP !== undefined && index.keys.has(`${rule.clusterIP} . ${protocol} . ${rule.port}`)) return true;
  if (rule.externalIPs.some((ip) => index.keys.has(`${ip} . ${protocol} . ${rule.port}`))) return true;
  if (rule.nodePort !== undefined && nodeIPs.some((ip) => index.keys.has(`${ip} . ${protocol} . ${rule.nodePort}`))) return true;
  return rule.backends.some((backend) => index.hairpinIPs.has(backend.ip));
}

/**
 * The rules that may claim a touched key before and after `change`, sorted
 * by id: the touched rules themselves and any untouched rule sharing a key.
 */
function claimants(change: RulesChange, after: ProxyRules, index: KeyIndex, nodeIPs: readonly string[]): { before: ServicePortRule[]; after: ServicePortRule[] } {
  const added = new Set(change.added.map((rule) => rule.id));
  const changed = new Map(change.changed.map((pair) => [pair.after.id, pair.before]));
  const before: ServicePortRule[] = [...change.removed];
  const next: ServicePortRule[] = [];
  for (const rule of after.services) {
    if (added.has(rule.id) || changed.has(rule.id)) {
      next.push(rule);
      const old = changed.get(rule.id);
      if (old !== undefined) before.push(old);
    } else if (mayClaim(rule, index, nodeIPs)) {
      next.push(rule);
      before.push(rule);
    }
  }
  return { before, after: next };
}

function objectsByName(rules: readonly Programmable[]): { chains: Map<string, readonly string[]>; sets: Map<string, SetSpec> } {
  const chains = new Map<string, readonly string[]>();
  const sets = new Map<string, SetSpec>();
  for (const rule of rules) {
    const objects = ruleObjects(rule);
    for (const chain of objects.chains) chains.set(chain.name, chain.lines);
    for (const set of objects.sets) sets.set(set.name, set);
  }
  return { chains, sets };
}

function sameLines(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((line, index) => line === b[index]);
}

/** The element commands that turn `old` into `next`, for the keys both were computed for. */
function elementChanges(keys: ReadonlySet<string>, old: Map<string, Element>, next: Map<string, Element>): { deletions: Map<Container, string[]>; additions: Map<Container, string[]> } {
  const deletions = new Map<Container, string[]>(CONTAINERS.map((container) => [container, []]));
  const additions = new Map<Container, string[]>(CONTAINERS.map((container) => [container, []]));
  for (const key of keys) {
    const before = old.get(key);
    const after = next.get(key);
    if (before !== undefined && after !== undefined && before.container === after.container && before.verdict === after.verdict) continue;
    if (before !== undefined) deletions.get(before.container)?.push(key);
    if (after !== undefined) additions.get(after.container)?.push(elementText(key, after));
  }
  return { deletions, additions };
}

function elementCommands(verb: 'add' | 'delete', table: string, byContainer: Map<Container, string[]>): string[] {
  const out: string[] = [];
  for (const [container, items] of byContainer) if (items.length > 0) out.push(`${verb} element ip ${table} ${container} { ${items.join(', ')} }`);
  return out;
}

/**
 * One transaction applying `change` to a table that holds the rules before it:
 * elements that go or move are deleted first, chains that change or go are
 * flushed (dropping their references), gone chains and sets deleted, new sets
 * and chains declared, rules (re)added, and new elements added last.
 * An empty change yields an empty string.
 */
export function changeRuleset(change: RulesChange, after: ProxyRules, options: RulesetOptions): string {
  const table = options.table;
  const gone = prepare([...change.removed, ...change.changed.map((pair) => pair.before)], options);
  const coming = prepare([...change.added, ...change.changed.map((pair) => pair.after)], options);
  if (gone.length === 0 && coming.length === 0) return '';

  const keys = new Set<string>();
  const hairpinIPs = new Set<string>();
  for (const rule of [...gone, ...coming]) {
    forEachElement(rule, (key) => keys.add(key));
    for (const backend of rule.backends) hairpinIPs.add(backend.ip);
  }
  const candidates = claimants(change, after, { keys, hairpinIPs }, options.nodeIPs);
  const { deletions, additions } = elementChanges(keys, elementsOf(prepare(candidates.before, options), keys), elementsOf(prepare(candidates.after, options), keys));

  const old = objectsByName(gone);
  const next = objectsByName(coming);
  const flushed: string[] = [];
  const deleted: string[] = [];
  const declared: string[] = [];
  const filled: [string, readonly string[]][] = [];
  for (const [name, lines] of old.chains) {
    const nextLines = next.chains.get(name);
    if (nextLines === undefined) {
      flushed.push(name);
      deleted.push(name);
    } else if (!sameLines(lines, nextLines)) {
      flushed.push(name);
      filled.push([name, nextLines]);
    }
  }
  for (const [name, lines] of next.chains) {
    if (old.chains.has(name)) continue;
    declared.push(name);
    filled.push([name, lines]);
  }

  const out = elementCommands('delete', table, deletions);
  for (const name of flushed) out.push(`flush chain ip ${table} ${name}`);
  for (const name of deleted) out.push(`delete chain ip ${table} ${name}`);
  for (const name of old.sets.keys()) if (!next.sets.has(name)) out.push(`delete set ip ${table} ${name}`);
  for (const [name, set] of next.sets) if (!old.sets.has(name)) out.push(`add set ip ${table} ${name} { ${setDefinition(set)} }`);
  for (const name of declared) out.push(`add chain ip ${table} ${name}`);
  for (const [name, lines] of filled) for (const line of lines) out.push(`add rule ip ${table} ${name} ${line}`);
  out.push(...elementCommands('add', table, additions));
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
