// The nftables text for the proxy's rules: the lines that matter for a small
// model, the names, the partial files' order and contents, and (as root, with
// nft installed) that nft's check mode accepts every file — full files alone,
// partial files after the full file they apply to, in one checked batch.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import {
  affinitySetName,
  changeRuleset,
  expectedTable,
  externalChainName,
  fnv1a,
  fullRuleset,
  HAIRPIN_SET,
  NO_ENDPOINTS_MAP,
  serviceChainName,
  SERVICES_MAP,
} from '../../services/proxy/nftables-ruleset.js';
import { diffRules, type ProxyRules, type ServicePortRule } from '../../services/proxy/rules.js';

/** A table name no real proxy uses, so the check mode cannot be confused by one. */
const TABLE = `mast_check_${process.pid}`;
const OPTIONS = { table: TABLE, nodeIPs: ['192.168.1.10'] };

function rule(overrides: Partial<ServicePortRule> & Pick<ServicePortRule, 'id'>): ServicePortRule {
  const [namespace = '', rest = ''] = overrides.id.split('/');
  const [name = '', portName = ''] = rest.split(':');
  return { namespace, name, portName, protocol: 'TCP', port: 80, externalIPs: [], backends: [], ...overrides };
}

const WEB = rule({
  id: 'default/web:http',
  clusterIP: '10.96.0.10',
  externalIPs: ['203.0.113.7'],
  nodePort: 30080,
  backends: [
    { ip: '10.244.0.5', port: 8080 },
    { ip: '10.244.1.9', port: 8080 },
  ],
});
const DNS = rule({ id: 'kube-system/dns:dns', protocol: 'UDP', clusterIP: '10.96.0.53', port: 53 });
const STICKY = rule({ id: 'shop/cart:', protocol: 'SCTP', clusterIP: '10.96.0.20', port: 9000, sessionAffinity: { timeoutSeconds: 10_800 }, backends: [{ ip: '10.244.0.7', port: 9000 }, { ip: '10.244.2.1', port: 9001 }] });
const SMALL: ProxyRules = { services: [WEB, DNS, STICKY] };

/** The lines of `chain name { … }` in a full file, trimmed. */
function chainBody(text: string, name: string): string[] {
  const start = text.indexOf(`  chain ${name} {\n`);
  expect(start, `chain ${name}`).to.be.greaterThan(-1);
  const end = text.indexOf('\n  }', start);
  return text
    .slice(start, end)
    .split('\n')
    .slice(1)
    .map((line) => line.trim());
}

/** The elements of `map|set name { … elements = { … } }` in a full file. */
function elementsIn(text: string, name: string): string[] {
  const start = text.search(new RegExp(`  (map|set) ${name} \\{\\n`));
  expect(start, `container ${name}`).to.be.greaterThan(-1);
  const block = text.slice(start, text.indexOf('\n  }', start));
  const match = /elements = \{\n([\s\S]*?)\n {4}\}/.exec(block);
  return match === null ? [] : match[1]!.split(',\n').map((line) => line.trim());
}

async function nftCheck(text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('nft', ['-c', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`nft -c refused the file (exit ${code}):\n${errors}\n--- file ---\n${text.slice(0, 4000)}`))));
    child.stdin.end(text);
  });
}

async function nftMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root: nft -c needs CAP_NET_ADMIN';
  return await new Promise((resolve) => {
    const child = spawn('nft', ['--version'], { stdio: 'ignore' });
    child.on('error', () => resolve('nft is not installed (apt-get install -y nftables)'));
    child.on('close', (code) => resolve(code === 0 ? undefined : `nft --version exited ${code}`));
  });
}

describe('proxy: nftables ruleset text', () => {
  const text = fullRuleset(SMALL, OPTIONS);

  it('replaces the whole table in one file: add, delete, then the definition', () => {
    expect(text.split('\n').slice(0, 3)).to.deep.equal([`add table ip ${TABLE}`, `delete table ip ${TABLE}`, `table ip ${TABLE} {`]);
    expect(text.endsWith('}\n')).to.equal(true);
  });

  it('maps the cluster IP to the Service chain, external IPs and node IP . nodePort to the marking chain', () => {
    const service = serviceChainName(WEB);
    const external = externalChainName(WEB);
    expect(elementsIn(text, SERVICES_MAP)).to.deep.equal([
      `10.96.0.10 . tcp . 80 : goto ${service}`,
      `203.0.113.7 . tcp . 80 : goto ${external}`,
      `192.168.1.10 . tcp . 30080 : goto ${external}`,
      `10.96.0.20 . sctp . 9000 : goto ${serviceChainName(STICKY)}`,
    ]);
    expect(chainBody(text, external)).to.deep.equal(['meta mark set meta mark | 0x00004000', `goto ${service}`]);
  });

  it('picks each backend with probability 1/N and DNATs with the protocol matched first', () => {
    expect(chainBody(text, serviceChainName(WEB))).to.deep.equal(['numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.5:8080', 'meta l4proto tcp dnat to 10.244.1.9:8080']);
  });

  it('a Service without backends goes to the no-endpoints map, which rejects from the filter hooks', () => {
    expect(elementsIn(text, NO_ENDPOINTS_MAP)).to.deep.equal(['10.96.0.53 . udp . 53 : goto reject-chain']);
    expect(chainBody(text, serviceChainName(DNS))).to.deep.equal([]);
    expect(chainBody(text, 'reject-chain')).to.deep.equal(['meta l4proto tcp reject with tcp reset', 'reject']);
    expect(chainBody(text, 'endpoints-check')).to.deep.equal([`ip daddr . meta l4proto . th dport vmap @${NO_ENDPOINTS_MAP}`]);
    for (const hook of ['input', 'forward', 'output']) {
      expect(chainBody(text, `filter-${hook}`)).to.deep.equal([`type filter hook ${hook} priority -110; policy accept;`, 'ct state new jump endpoints-check']);
    }
  });

  it('ClientIP affinity: a timed set per backend, checked first, refreshed on every pick', () => {
    const [first, second] = STICKY.backends.map((backend) => affinitySetName(STICKY, backend, 10_800));
    expect(text).to.contain(`  set ${first} { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }`);
    expect(chainBody(text, serviceChainName(STICKY))).to.deep.equal([
      `ip saddr @${first} meta l4proto sctp update @${first} { ip saddr } dnat to 10.244.0.7:9000`,
      `ip saddr @${second} meta l4proto sctp update @${second} { ip saddr } dnat to 10.244.2.1:9001`,
      `numgen random mod 2 == 0 meta l4proto sctp update @${first} { ip saddr } dnat to 10.244.0.7:9000`,
      `meta l4proto sctp update @${second} { ip saddr } dnat to 10.244.2.1:9001`,
    ]);
  });

  it('hooks: nat prerouting at dstnat, nat output at -100, masquerade of marked and hairpin packets in postrouting', () => {
    expect(chainBody(text, 'nat-prerouting')).to.deep.equal(['type nat hook prerouting priority dstnat; policy accept;', 'jump services']);
    expect(chainBody(text, 'nat-output')).to.deep.equal(['type nat hook output priority -100; policy accept;', 'jump services']);
    expect(chainBody(text, 'services')).to.deep.equal([`ip daddr . meta l4proto . th dport vmap @${SERVICES_MAP}`]);
    expect(chainBody(text, 'masquerading')).to.deep.equal([
      `ct status dnat ip saddr . ip daddr @${HAIRPIN_SET} masquerade fully-random`,
      'meta mark & 0x00004000 == 0 return',
      'meta mark set meta mark ^ 0x00004000',
      'masquerade fully-random',
    ]);
    expect(elementsIn(text, HAIRPIN_SET)).to.deep.equal(['10.244.0.5 . 10.244.0.5', '10.244.1.9 . 10.244.1.9', '10.244.0.7 . 10.244.0.7', '10.244.2.1 . 10.244.2.1']);
  });

  it('is the same text for the same rules in any order', () => {
    expect(fullRuleset({ services: [STICKY, DNS, WEB] }, OPTIONS)).to.equal(text);
  });

  it('leaves out what an ip table cannot hold: IPv6 and malformed addresses, ports out of range', () => {
    const odd = rule({
      id: 'a/odd:',
      clusterIP: 'fd00::10',
      externalIPs: ['203.0.113.300', '198.51.100.1'],
      nodePort: 70_000,
      backends: [
        { ip: 'fd00::1', port: 80 },
        { ip: '10.244.0.1', port: 0 },
        { ip: '10.244.0.2', port: 80 },
      ],
    });
    const oddText = fullRuleset({ services: [odd] }, OPTIONS);
    expect(elementsIn(oddText, SERVICES_MAP)).to.deep.equal([`198.51.100.1 . tcp . 80 : goto ${externalChainName(odd)}`]);
    expect(chainBody(oddText, serviceChainName(odd))).to.deep.equal(['meta l4proto tcp dnat to 10.244.0.2:80']);
    expect(oddText).not.to.contain('fd00');
  });

  it('a key two rules claim goes to the first by id', () => {
    const first = rule({ id: 'a/first:', externalIPs: ['203.0.113.7'], backends: [{ ip: '10.244.0.1', port: 80 }] });
    const second = rule({ id: 'b/second:', externalIPs: ['203.0.113.7'], backends: [{ ip: '10.244.0.2', port: 80 }] });
    expect(elementsIn(fullRuleset({ services: [second, first] }, OPTIONS), SERVICES_MAP)).to.deep.equal([`203.0.113.7 . tcp . 80 : goto ${externalChainName(first)}`]);
  });

  it('rejects a table name nft would not parse', () => {
    expect(() => fullRuleset(SMALL, { table: 'bad name;', nodeIPs: [] })).to.throw(/table name/);
  });
});

describe('proxy: nftables names', () => {
  it('readable, stable and hashed by id (and backend)', () => {
    expect(fnv1a('')).to.equal('811c9dc5');
    expect(fnv1a('a')).to.equal('e40c292c');
    expect(serviceChainName(WEB)).to.equal(`svc-${fnv1a('default/web:http')}-default/web/http`);
    expect(externalChainName(WEB)).to.equal(`ext-${fnv1a('default/web:http')}-default/web/http`);
    expect(serviceChainName(rule({ id: 'a/b:' }))).to.equal(`svc-${fnv1a('a/b:')}-a/b`);
    expect(affinitySetName(WEB, { ip: '10.244.0.5', port: 8080 }, 60)).to.equal(`aff-${fnv1a('default/web:http 10.244.0.5:8080 60')}-default/web/http__10.244.0.5/8080`);
    expect(affinitySetName(WEB, { ip: '10.244.0.5', port: 8080 }, 61)).not.to.equal(affinitySetName(WEB, { ip: '10.244.0.5', port: 8080 }, 60));
  });

  it('at most 96 characters of [A-Za-z0-9_./-], unique after truncation', () => {
    const long = 'n'.repeat(63);
    const one = rule({ id: `${long}/${long}:port-one`, namespace: long, name: long, portName: 'port-one' });
    const two = rule({ id: `${long}/${long}:port-two`, namespace: long, name: long, portName: 'port-two' });
    const weird = rule({ id: 'we ird/na"me:p{o}rt', namespace: 'we ird', name: 'na"me', portName: 'p{o}rt' });
    const names = [serviceChainName(one), serviceChainName(two), affinitySetName(one, { ip: '255.255.255.255', port: 65_535 }, 86_400), serviceChainName(weird)];
    for (const name of names) {
      expect(name.length, name).to.be.at.most(96);
      expect(name, name).to.match(/^[a-z]+-[0-9a-f]{8}-[A-Za-z0-9_./-]*$/);
    }
    expect(names[0]).not.to.equal(names[1]);
    expect(names[2]!.endsWith('__255.255.255.255/65535')).to.equal(true);
    expect(names[3]).to.equal(`svc-${fnv1a('we ird/na"me:p{o}rt')}-we_ird/na_me/p_o_rt`);
  });
});

describe('proxy: nftables partial updates', () => {
  const change = (before: ProxyRules, after: ProxyRules): string[] => changeRuleset(diffRules(before, after), after, OPTIONS).split('\n').filter((line) => line !== '');

  it('an empty change is an empty file', () => {
    expect(changeRuleset(diffRules(SMALL, SMALL), SMALL, OPTIONS)).to.equal('');
  });

  it('an added Service: its chains, their rules, then its elements', () => {
    const lines = change({ services: [DNS] }, { services: [DNS, WEB] });
    const service = serviceChainName(WEB);
    const external = externalChainName(WEB);
    expect(lines).to.deep.equal([
      `add chain ip ${TABLE} ${service}`,
      `add chain ip ${TABLE} ${external}`,
      `add rule ip ${TABLE} ${service} numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.5:8080`,
      `add rule ip ${TABLE} ${service} meta l4proto tcp dnat to 10.244.1.9:8080`,
      `add rule ip ${TABLE} ${external} meta mark set meta mark | 0x00004000`,
      `add rule ip ${TABLE} ${external} goto ${service}`,
      `add element ip ${TABLE} ${SERVICES_MAP} { 10.96.0.10 . tcp . 80 : goto ${service}, 203.0.113.7 . tcp . 80 : goto ${external}, 192.168.1.10 . tcp . 30080 : goto ${external} }`,
      `add element ip ${TABLE} ${HAIRPIN_SET} { 10.244.0.5 . 10.244.0.5, 10.244.1.9 . 10.244.1.9 }`,
    ]);
  });

  it('a removed Service: its elements first, then its chains flushed and deleted, then its sets', () => {
    const lines = change(SMALL, { services: [WEB, DNS] });
    const service = serviceChainName(STICKY);
    const sets = STICKY.backends.map((backend) => affinitySetName(STICKY, backend, 10_800));
    expect(lines).to.deep.equal([
      `delete element ip ${TABLE} ${SERVICES_MAP} { 10.96.0.20 . sctp . 9000 }`,
      `delete element ip ${TABLE} ${HAIRPIN_SET} { 10.244.0.7 . 10.244.0.7, 10.244.2.1 . 10.244.2.1 }`,
      `flush chain ip ${TABLE} ${service}`,
      `delete chain ip ${TABLE} ${service}`,
      `delete set ip ${TABLE} ${sets[0]}`,
      `delete set ip ${TABLE} ${sets[1]}`,
    ]);
  });

  it('a backend gone: the Service chain rewritten, its map elements untouched', () => {
    const after = { services: [{ ...WEB, backends: WEB.backends.slice(1) }, DNS, STICKY] };
    const service = serviceChainName(WEB);
    expect(change(SMALL, after)).to.deep.equal([
      `delete element ip ${TABLE} ${HAIRPIN_SET} { 10.244.0.5 . 10.244.0.5 }`,
      `flush chain ip ${TABLE} ${service}`,
      `add rule ip ${TABLE} ${service} meta l4proto tcp dnat to 10.244.1.9:8080`,
    ]);
  });

  it('the last backend gone: the elements move to the no-endpoints map; back again when one returns', () => {
    const empty = { services: [{ ...WEB, backends: [] }] };
    const full = { services: [WEB] };
    const service = serviceChainName(WEB);
    const external = externalChainName(WEB);
    const emptied = change(full, empty);
    expect(emptied[0]).to.equal(`delete element ip ${TABLE} ${SERVICES_MAP} { 10.96.0.10 . tcp . 80, 203.0.113.7 . tcp . 80, 192.168.1.10 . tcp . 30080 }`);
    expect(emptied).to.include(`flush chain ip ${TABLE} ${service}`);
    expect(emptied.at(-1)).to.equal(`add element ip ${TABLE} ${NO_ENDPOINTS_MAP} { 10.96.0.10 . tcp . 80 : goto reject-chain, 203.0.113.7 . tcp . 80 : goto reject-chain, 192.168.1.10 . tcp . 30080 : goto reject-chain }`);
    const refilled = change(empty, full);
    expect(refilled[0]).to.equal(`delete element ip ${TABLE} ${NO_ENDPOINTS_MAP} { 10.96.0.10 . tcp . 80, 203.0.113.7 . tcp . 80, 192.168.1.10 . tcp . 30080 }`);
    expect(refilled).to.include(`add element ip ${TABLE} ${SERVICES_MAP} { 10.96.0.10 . tcp . 80 : goto ${service}, 203.0.113.7 . tcp . 80 : goto ${external}, 192.168.1.10 . tcp . 30080 : goto ${external} }`);
  });

  it('an external IP replaced: only that element changes; the last one gone: the marking chain goes too', () => {
    const moved = { services: [{ ...WEB, externalIPs: ['203.0.113.8'] }] };
    expect(change({ services: [WEB] }, moved)).to.deep.equal([
      `delete element ip ${TABLE} ${SERVICES_MAP} { 203.0.113.7 . tcp . 80 }`,
      `add element ip ${TABLE} ${SERVICES_MAP} { 203.0.113.8 . tcp . 80 : goto ${externalChainName(WEB)} }`,
    ]);
    const internal = { services: [{ ...WEB, externalIPs: [], nodePort: undefined }] };
    expect(change({ services: [WEB] }, internal)).to.deep.equal([
      `delete element ip ${TABLE} ${SERVICES_MAP} { 203.0.113.7 . tcp . 80, 192.168.1.10 . tcp . 30080 }`,
      `flush chain ip ${TABLE} ${externalChainName(WEB)}`,
      `delete chain ip ${TABLE} ${externalChainName(WEB)}`,
    ]);
  });

  it('a changed affinity timeout makes new sets and drops the old ones after the chain that used them is flushed', () => {
    const after = { services: [{ ...STICKY, sessionAffinity: { timeoutSeconds: 60 } }] };
    const lines = change({ services: [STICKY] }, after);
    const service = serviceChainName(STICKY);
    const oldSets = STICKY.backends.map((backend) => affinitySetName(STICKY, backend, 10_800));
    const newSets = STICKY.backends.map((backend) => affinitySetName(STICKY, backend, 60));
    expect(lines.slice(0, 7)).to.deep.equal([
      `flush chain ip ${TABLE} ${service}`,
      `delete set ip ${TABLE} ${oldSets[0]}`,
      `delete set ip ${TABLE} ${oldSets[1]}`,
      `add set ip ${TABLE} ${newSets[0]} { type ipv4_addr; flags dynamic,timeout; timeout 60s; }`,
      `add set ip ${TABLE} ${newSets[1]} { type ipv4_addr; flags dynamic,timeout; timeout 60s; }`,
      `add rule ip ${TABLE} ${service} ip saddr @${newSets[0]} meta l4proto sctp update @${newSets[0]} { ip saddr } dnat to 10.244.0.7:9000`,
      `add rule ip ${TABLE} ${service} ip saddr @${newSets[1]} meta l4proto sctp update @${newSets[1]} { ip saddr } dnat to 10.244.2.1:9001`,
    ]);
    expect(lines).to.have.length(9);
  });

  it('a backend IP two Services share keeps its hairpin element until the last one goes', () => {
    const other = rule({ id: 'default/admin:', clusterIP: '10.96.0.11', backends: [{ ip: '10.244.0.5', port: 9090 }] });
    const both = { services: [other, WEB] };
    const lines = change(both, { services: [WEB] });
    expect(lines.join('\n')).not.to.contain(HAIRPIN_SET);
    expect(change({ services: [WEB] }, { services: [] })).to.include(`delete element ip ${TABLE} ${HAIRPIN_SET} { 10.244.0.5 . 10.244.0.5, 10.244.1.9 . 10.244.1.9 }`);
  });

  it('a key freed by the rule that held it passes to the next claimant, as a full file would give it', () => {
    const first = rule({ id: 'a/first:', externalIPs: ['203.0.113.7'], backends: [{ ip: '10.244.0.1', port: 80 }] });
    const second = rule({ id: 'b/second:', externalIPs: ['203.0.113.7'], backends: [{ ip: '10.244.0.2', port: 80 }] });
    const lines = change({ services: [first, second] }, { services: [second] });
    expect(lines[0]).to.equal(`delete element ip ${TABLE} ${SERVICES_MAP} { 203.0.113.7 . tcp . 80 }`);
    expect(lines).to.include(`add element ip ${TABLE} ${SERVICES_MAP} { 203.0.113.7 . tcp . 80 : goto ${externalChainName(second)} }`);
  });

  it('expectedTable lists what the full file declares', () => {
    const expected = expectedTable(SMALL, OPTIONS);
    const text = fullRuleset(SMALL, OPTIONS);
    for (const chain of expected.chains) expect(text).to.contain(`  chain ${chain} {\n`);
    expect(expected.chains.filter((name) => /^(svc|ext)-/.test(name))).to.have.length(4);
    expect(expected.sets).to.have.length(3);
    expect(expected.maps[SERVICES_MAP]).to.have.length(4);
    expect(expected.maps[NO_ENDPOINTS_MAP]).to.deep.equal(['10.96.0.53 . udp . 53 : goto reject-chain']);
    expect(expected.hairpinCount).to.equal(4);
  });
});

describe('proxy: nftables files accepted by nft -c', function () {
  before(async function () {
    const reason = await nftMissing();
    if (reason !== undefined) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
  });

  /** A sequence of models exercising every kind of change, each a step from the one before. */
  const steps: ProxyRules[] = [
    { services: [] },
    SMALL,
    { services: [{ ...WEB, backends: WEB.backends.slice(1) }, DNS, STICKY] },
    { services: [{ ...WEB, backends: [] }, { ...DNS, backends: [{ ip: '10.244.0.53', port: 53 }] }, { ...STICKY, sessionAffinity: { timeoutSeconds: 60 } }] },
    { services: [{ ...WEB, externalIPs: ['203.0.113.8'], nodePort: undefined }, { ...STICKY, sessionAffinity: undefined, protocol: 'UDP' }] },
    { services: [rule({ id: 'a/first:', externalIPs: ['203.0.113.8'], backends: [{ ip: '10.244.1.9', port: 80 }] }), { ...WEB, externalIPs: ['203.0.113.8'] }] },
    { services: [{ ...WEB, externalIPs: ['203.0.113.8'] }] },
    { services: [] },
  ];

  it('every full file', async () => {
    for (const rules of steps) await nftCheck(fullRuleset(rules, OPTIONS));
  });

  it('every partial file, after the full file of the state it applies to', async () => {
    for (let index = 1; index < steps.length; index++) {
      const before = steps[index - 1]!;
      const after = steps[index]!;
      const partial = changeRuleset(diffRules(before, after), after, OPTIONS);
      expect(partial, `step ${index}`).not.to.equal('');
      await nftCheck(fullRuleset(before, OPTIONS) + partial);
    }
  });

  it('names at their longest and with odd characters', async () => {
    const long = 'n'.repeat(63);
    const rules: ProxyRules = {
      services: [
        rule({ id: `${long}/${long}:port-one`, namespace: long, name: long, portName: 'port-one', clusterIP: '10.96.0.1', sessionAffinity: { timeoutSeconds: 86_400 }, backends: [{ ip: '255.255.255.254', port: 65_535 }] }),
        rule({ id: 'we ird/na"me:p{o}rt', namespace: 'we ird', name: 'na"me', portName: 'p{o}rt', clusterIP: '10.96.0.2', nodePort: 30000, backends: [{ ip: '10.0.0.1', port: 1 }] }),
      ],
    };
    await nftCheck(fullRuleset(rules, OPTIONS));
  });
});
