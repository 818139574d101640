// The nftables backend against the kernel, as root only (skipped, saying
// why, elsewhere). Everything happens in two network namespaces the tests
// create and delete: a "node" holding the backends' addresses on an
// interface of its own, the servers and the table, and a "client" joined to it by a
// veth pair, so traffic arriving from outside (prerouting, input) is tested
// as well as traffic from the node itself (output). Servers and clients are
// child processes run with `ip netns exec`, killed when the tests end.
//
//   client ns                    node ns
//   client0 10.250.0.2/24 ─veth─ node0 10.250.0.1/24 (the node IP)
//   default via 10.250.0.1       pods0 (dummy) 10.250.2.1/24, backends .10 and .11
//                                10.96.0.0/16 (Service IPs) routed to pods0

import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { NftablesBackend, nftablesUsable } from '../../services/proxy/nftables.js';
import { diffRules, type Backend, type Protocol, type ProxyRules, type ServicePortRule } from '../../services/proxy/rules.js';

const execFileAsync = promisify(execFile);

const NODE_IP = '10.250.0.1';
const CLIENT_IP = '10.250.0.2';
const A: Backend = { ip: '10.250.2.10', port: 8080 };
const B: Backend = { ip: '10.250.2.11', port: 8080 };
const POD: Backend = { ip: '10.250.3.2', port: 8080 };
const TABLE = 'mast';

function rule(overrides: Partial<ServicePortRule> & Pick<ServicePortRule, 'id'>): ServicePortRule {
  const [namespace = '', rest = ''] = overrides.id.split('/');
  const [name = '', portName = ''] = rest.split(':');
  return { namespace, name, portName, protocol: 'TCP', port: 80, externalIPs: [], backends: [], ...overrides };
}

async function run(command: string, args: readonly string[]): Promise<string> {
  try {
    return (await execFileAsync(command, [...args])).stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`${command} ${args.join(' ')}: ${stderr || String(error)}`);
  }
}

const inNetns = (netns: string, command: string, ...args: string[]): Promise<string> => run('ip', ['netns', 'exec', netns, command, ...args]);

// Each server answers with its name and closes; UDP servers echo their name.
const SERVER_SCRIPT = `
const net = require('net'), dgram = require('dgram');
const targets = JSON.parse(process.argv[1]);
let pending = targets.length * 2;
const ready = () => { if (--pending === 0) console.log('ready'); };
for (const { ip, port, name } of targets) {
  net.createServer((socket) => socket.end(name)).listen(port, ip, ready);
  const udp = dgram.createSocket('udp4');
  udp.on('message', (message, from) => udp.send(name, from.port, from.address));
  udp.bind(port, ip, ready);
}`;

// Connects `count` times, one after the other; prints [{reply} | {error}, ms] as JSON.
const CLIENT_SCRIPT = `
const net = require('net'), dgram = require('dgram');
const [protocol, host, port, count, timeoutMs] = process.argv.slice(1);
const once = () => new Promise((resolve) => {
  const started = Date.now();
  const done = (outcome) => resolve({ ...outcome, ms: Date.now() - started });
  if (protocol === 'udp') {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => { socket.close(); done({ error: 'timeout' }); }, Number(timeoutMs));
    socket.on('message', (message) => { clearTimeout(timer); socket.close(); done({ reply: message.toString() }); });
    socket.on('error', (error) => { clearTimeout(timer); socket.close(); done({ error: error.code }); });
    socket.connect(Number(port), host, () => socket.send('hello'));
    return;
  }
  const socket = net.connect({ host, port: Number(port) });
  let data = '';
  socket.setTimeout(Number(timeoutMs), () => { socket.destroy(); done({ error: 'timeout' }); });
  socket.on('data', (chunk) => (data += chunk));
  socket.on('end', () => { socket.destroy(); done({ reply: data }); });
  socket.on('error', (error) => done({ error: error.code }));
});
(async () => {
  const results = [];
  for (let index = 0; index < Number(count); index++) results.push(await once());
  console.log(JSON.stringify(results));
})();`;

interface Attempt {
  readonly reply?: string;
  readonly error?: string;
  readonly ms: number;
}

describe('proxy: nftables backend in the kernel', function () {
  const suffix = randomBytes(4).toString('hex');
  const nodeNs = `mast-nft-test-${suffix}`;
  const clientNs = `mast-nft-test-${suffix}-c`;
  const podNs = `mast-nft-test-${suffix}-p`;
  const children = new Set<ChildProcess>();
  const created: string[] = [];
  let backend: NftablesBackend;

  async function connect(from: string, protocol: 'tcp' | 'udp', host: string, port: number, count: number, timeoutMs = 3000): Promise<Attempt[]> {
    return JSON.parse(await inNetns(from, 'node', '-e', CLIENT_SCRIPT, protocol, host, String(port), String(count), String(timeoutMs))) as Attempt[];
  }

  const replies = (attempts: readonly Attempt[]): string[] => attempts.map((attempt) => attempt.reply ?? `error ${attempt.error}`);

  async function startServers(netns: string, targets: readonly { ip: string; port: number; name: string }[]): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', netns, 'node', '-e', SERVER_SCRIPT, JSON.stringify(targets)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    await new Promise<void>((resolve, reject) => {
      let output = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('ready')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`server exited with ${code} before it was ready`)));
    });
  }

  async function tableNames(): Promise<string[]> {
    const listing = JSON.parse(await inNetns(nodeNs, 'nft', '-j', 'list', 'tables')) as { nftables: { table?: { name: string } }[] };
    return listing.nftables.flatMap((item) => (item.table === undefined ? [] : [item.table.name]));
  }

  before(async function () {
    const usable = await nftablesUsable();
    if (!usable.usable) {
      console.log(`      skipped: nftables is not usable here: ${usable.reason}`);
      this.skip();
    }
    await run('ip', ['netns', 'add', nodeNs]);
    created.push(nodeNs);
    await run('ip', ['netns', 'add', clientNs]);
    created.push(clientNs);
    await run('ip', ['netns', 'add', podNs]);
    created.push(podNs);
    const node = (...args: string[]): Promise<string> => inNetns(nodeNs, 'ip', ...args);
    const client = (...args: string[]): Promise<string> => inNetns(clientNs, 'ip', ...args);
    await node('link', 'set', 'lo', 'up');
    // As on any node: packets for Service IPs without backends are routed (and rejected in forward).
    await inNetns(nodeNs, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
    // No dummy driver in this kernel: a veth pair whose far end stays in the node namespace, unused.
    await node('link', 'add', 'pods0', 'type', 'veth', 'peer', 'name', 'pods1');
    await node('link', 'set', 'pods1', 'up');
    await node('link', 'set', 'pods0', 'up');
    for (const address of ['10.250.2.1/24', `${A.ip}/24`, `${B.ip}/24`]) await node('addr', 'add', address, 'dev', 'pods0');
    await node('route', 'add', '10.96.0.0/16', 'dev', 'pods0');
    await node('link', 'add', 'node0', 'type', 'veth', 'peer', 'name', 'client0', 'netns', clientNs);
    await node('addr', 'add', `${NODE_IP}/24`, 'dev', 'node0');
    await node('link', 'set', 'node0', 'up');
    await client('link', 'set', 'lo', 'up');
    await client('addr', 'add', `${CLIENT_IP}/24`, 'dev', 'client0');
    await client('link', 'set', 'client0', 'up');
    await client('route', 'add', 'default', 'via', NODE_IP);
    const pod = (...args: string[]): Promise<string> => inNetns(podNs, 'ip', ...args);
    await node('link', 'add', 'podhost0', 'type', 'veth', 'peer', 'name', 'pod0', 'netns', podNs);
    await node('addr', 'add', '10.250.3.1/24', 'dev', 'podhost0');
    await node('link', 'set', 'podhost0', 'up');
    await pod('link', 'set', 'lo', 'up');
    await pod('addr', 'add', `${POD.ip}/24`, 'dev', 'pod0');
    await pod('link', 'set', 'pod0', 'up');
    await pod('route', 'add', 'default', 'via', '10.250.3.1');
    await startServers(nodeNs, [
      { ...A, name: 'a' },
      { ...B, name: 'b' },
    ]);
    await startServers(podNs, [{ ...POD, name: 'pod' }]);
    backend = new NftablesBackend({ nodeIPs: [NODE_IP], netns: nodeNs, table: TABLE });
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all([...children].map((child) => (child.exitCode !== null || child.signalCode !== null ? undefined : new Promise((resolve) => child.once('exit', resolve)))));
    // Deleting a namespace removes its interfaces and nft tables with it.
    for (const netns of created.reverse()) await run('ip', ['netns', 'del', netns]).catch((error: unknown) => console.log(`      cleanup: ${String(error)}`));
  });

  const web = rule({ id: 'default/web:', clusterIP: '10.96.0.10', nodePort: 30080, backends: [A, B] });
  const empty = rule({ id: 'default/empty:', clusterIP: '10.96.0.11', nodePort: 30081 });
  const dns = rule({ id: 'default/dns:', protocol: 'UDP', clusterIP: '10.96.0.53', port: 53, backends: [A, B] });
  const quiet = rule({ id: 'default/quiet:', protocol: 'UDP', clusterIP: '10.96.0.54', port: 53 });
  const start: ProxyRules = { services: [web, dns, empty, quiet].sort((x, y) => (x.id < y.id ? -1 : 1)) };

  it('load-balances a cluster IP over both backends, from the node and from outside', async () => {
    await backend.sync(start);
    expect(await tableNames()).to.include(TABLE);
    for (const from of [nodeNs, clientNs]) {
      const seen = replies(await connect(from, 'tcp', '10.96.0.10', 80, 30));
      expect(seen.filter((reply) => reply !== 'a' && reply !== 'b'), from).to.deep.equal([]);
      expect(new Set(seen), from).to.deep.equal(new Set(['a', 'b']));
    }
  });

  it('UDP: DNATs datagrams to both backends too', async () => {
    const seen = replies(await connect(clientNs, 'udp', '10.96.0.53', 53, 30));
    expect(new Set(seen)).to.deep.equal(new Set(['a', 'b']));
  });

  it('a NodePort answers on the node IP, from outside and from the node', async () => {
    for (const from of [clientNs, nodeNs]) {
      const seen = replies(await connect(from, 'tcp', NODE_IP, 30080, 20));
      expect(new Set(seen), from).to.deep.equal(new Set(['a', 'b']));
    }
  });

  it('a Service without backends is refused at once, not timed out: TCP and UDP, cluster IP and node port', async () => {
    for (const [from, host, port] of [
      [nodeNs, '10.96.0.11', 80],
      [clientNs, '10.96.0.11', 80],
      [clientNs, NODE_IP, 30081],
    ] as const) {
      const attempts = await connect(from, 'tcp', host, port, 3);
      expect(attempts.map((attempt) => attempt.error), `${from} → ${host}:${port}`).to.deep.equal(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
      expect(Math.max(...attempts.map((attempt) => attempt.ms))).to.be.below(500);
    }
    for (const from of [nodeNs, clientNs]) {
      const attempts = await connect(from, 'udp', '10.96.0.54', 53, 2);
      expect(attempts.map((attempt) => attempt.error), from).to.deep.equal(['ECONNREFUSED', 'ECONNREFUSED']);
      expect(Math.max(...attempts.map((attempt) => attempt.ms))).to.be.below(500);
    }
  });

  it('after an update removes a backend, it gets no new connections; a refused Service starts answering once it has one', async () => {
    const after: ProxyRules = { services: start.services.map((item) => (item.id === web.id ? { ...item, backends: [B] } : item.id === empty.id ? { ...item, backends: [A] } : item)) };
    await backend.update(diffRules(start, after), after);
    expect(new Set(replies(await connect(clientNs, 'tcp', '10.96.0.10', 80, 20)))).to.deep.equal(new Set(['b']));
    expect(new Set(replies(await connect(clientNs, 'tcp', '10.96.0.11', 80, 5)))).to.deep.equal(new Set(['a']));
    expect(await backend.verify()).to.equal(true);
    await backend.update(diffRules(after, start), start);
    expect(await backend.verify()).to.equal(true);
  });

  it('a backend in another namespace: reached through the node (forwarded), and by itself through its Service (hairpin, masqueraded)', async () => {
    const remote = rule({ id: 'default/remote:', clusterIP: '10.96.0.13', backends: [POD] });
    const after: ProxyRules = { services: [...start.services, remote] };
    await backend.update(diffRules(start, after), after);
    try {
      expect(replies(await connect(clientNs, 'tcp', '10.96.0.13', 80, 5))).to.deep.equal(['pod', 'pod', 'pod', 'pod', 'pod']);
      expect(replies(await connect(nodeNs, 'tcp', '10.96.0.13', 80, 3))).to.deep.equal(['pod', 'pod', 'pod']);
      // Without masquerade the pod would answer itself directly and the connection would never complete.
      expect(replies(await connect(podNs, 'tcp', '10.96.0.13', 80, 3))).to.deep.equal(['pod', 'pod', 'pod']);
    } finally {
      await backend.update(diffRules(after, start), start);
    }
  });

  it('ClientIP affinity: one client keeps its backend', async () => {
    const sticky = rule({ id: 'default/sticky:', clusterIP: '10.96.0.12', sessionAffinity: { timeoutSeconds: 60 }, backends: [A, B] });
    const after: ProxyRules = { services: [...start.services, sticky] };
    await backend.update(diffRules(start, after), after);
    for (const from of [nodeNs, clientNs]) {
      const seen = replies(await connect(from, 'tcp', '10.96.0.12', 80, 15));
      expect(seen.every((reply) => reply === seen[0]) && (seen[0] === 'a' || seen[0] === 'b'), `${from}: ${seen.join(' ')}`).to.equal(true);
    }
    await backend.update(diffRules(after, start), start);
  });

  it('verify() sees hand edits: a deleted table, chain or map element; sync() repairs', async () => {
    expect(await backend.verify()).to.equal(true);
    await inNetns(nodeNs, 'nft', 'delete', 'table', 'ip', TABLE);
    expect(await backend.verify()).to.equal(false);
    await backend.sync(start);
    expect(await backend.verify()).to.equal(true);

    await inNetns(nodeNs, 'nft', 'delete', 'element', 'ip', TABLE, 'service-ips', '{ 10.96.0.10 . tcp . 80 }');
    expect(await backend.verify()).to.equal(false);
    await backend.sync(start);
    expect(await backend.verify()).to.equal(true);

    // A chain cannot be deleted while map elements point at it: first those, as someone tidying by hand would.
    const listing = await inNetns(nodeNs, 'nft', 'list', 'chains', 'ip');
    const chain = /chain (ext-[^ ]+-default\/web) /.exec(listing)?.[1];
    expect(chain).to.be.a('string');
    const other = /chain (svc-[^ ]+-default\/empty) /.exec(listing)?.[1];
    await inNetns(nodeNs, 'nft', 'delete', 'element', 'ip', TABLE, 'service-ips', `{ ${NODE_IP} . tcp . 30080 }`);
    await inNetns(nodeNs, 'nft', 'add', 'element', 'ip', TABLE, 'service-ips', `{ ${NODE_IP} . tcp . 30080 : goto ${other} }`);
    expect(await backend.verify(), 'element pointing elsewhere').to.equal(false);
    await inNetns(nodeNs, 'nft', 'delete', 'element', 'ip', TABLE, 'service-ips', `{ ${NODE_IP} . tcp . 30080 }`);
    await inNetns(nodeNs, 'nft', 'flush', 'chain', 'ip', TABLE, chain!);
    await inNetns(nodeNs, 'nft', 'delete', 'chain', 'ip', TABLE, chain!);
    expect(await backend.verify()).to.equal(false);
    await backend.sync(start);
    expect(await backend.verify()).to.equal(true);
    expect(new Set(replies(await connect(clientNs, 'tcp', NODE_IP, 30080, 10)))).to.deep.equal(new Set(['a', 'b']));
  });

  it('update() on a table changed by hand falls back to a full sync', async () => {
    const lines: string[] = [];
    const logged = new NftablesBackend({ nodeIPs: [NODE_IP], netns: nodeNs, table: TABLE, log: (line) => lines.push(line) });
    await logged.sync(start);
    await inNetns(nodeNs, 'nft', 'delete', 'table', 'ip', TABLE);
    const after: ProxyRules = { services: start.services.map((item) => (item.id === web.id ? { ...item, backends: [A] } : item)) };
    await logged.update(diffRules(start, after), after);
    expect(lines.some((line) => line.includes('partial update') && line.includes('No such file or directory')), lines.join('\n')).to.equal(true);
    expect(await logged.verify()).to.equal(true);
    expect(new Set(replies(await connect(clientNs, 'tcp', '10.96.0.10', 80, 10)))).to.deep.equal(new Set(['a']));

    // A change computed from some other state than the one applied is not trusted either.
    lines.length = 0;
    await logged.update(diffRules({ services: [] }, start), start);
    expect(lines.some((line) => line.includes('does not follow')), lines.join('\n')).to.equal(true);
    expect(await logged.verify()).to.equal(true);
    expect(new Set(replies(await connect(clientNs, 'tcp', '10.96.0.10', 80, 10)))).to.deep.equal(new Set(['a', 'b']));
  });

  it('nftablesUsable() says why not when the binary is missing', async () => {
    expect(await nftablesUsable()).to.deep.equal({ usable: true });
    const missing = await nftablesUsable('nft-that-does-not-exist');
    expect(missing.usable).to.equal(false);
    expect(missing.usable === false && missing.reason).to.match(/nft-that-does-not-exist.*ENOENT/);
  });

  it('a failed sync rejects with the reason, leaves the table as it was, and verify() is false until a sync succeeds', async () => {
    const broken = new NftablesBackend({ nodeIPs: [NODE_IP], netns: nodeNs, table: TABLE, nft: 'nft-that-does-not-exist', engine: 'process' });
    expect([backend.engine, broken.engine]).to.deep.equal(['library', 'process']);
    let failure: unknown;
    await broken.sync(start).catch((error: unknown) => (failure = error));
    expect(String(failure)).to.match(/nft-that-does-not-exist/);
    expect(await broken.verify()).to.equal(false);
    expect(await backend.verify()).to.equal(true);
  });

  it('programs the same table through nft processes when asked to (where libnftables is missing)', async () => {
    const spawned = new NftablesBackend({ nodeIPs: [NODE_IP], netns: nodeNs, table: 'mast_process', engine: 'process' });
    try {
      await spawned.sync(start);
      expect(await spawned.verify()).to.equal(true);
    } finally {
      await spawned.close();
    }
    expect(await spawned.verify()).to.equal(false);
  });

  it('partial updates leave exactly the table a full sync makes', async () => {
    const incremental = new NftablesBackend({ nodeIPs: [NODE_IP], netns: nodeNs, table: 'mast_incremental' });
    const full = new NftablesBackend({ nodeIPs: [NODE_IP], netns: nodeNs, table: 'mast_full' });
    try {
      const steps = randomSteps(0x5eed, 25);
      await incremental.sync(steps[0]!);
      for (let index = 1; index < steps.length; index++) {
        const before = steps[index - 1]!;
        const after = steps[index]!;
        await incremental.update(diffRules(before, after), after);
        await full.sync(after);
        expect(await normalizedTable(nodeNs, 'mast_incremental'), `step ${index}`).to.deep.equal(await normalizedTable(nodeNs, 'mast_full'));
        expect(await incremental.verify(), `step ${index}`).to.equal(true);
      }
    } finally {
      await incremental.close();
      await full.close();
    }
  });

  it('close() removes the table; closing again is fine', async () => {
    await backend.close();
    expect(await tableNames()).not.to.include(TABLE);
    await backend.close();
    expect(await backend.verify()).to.equal(false);
    const refused = await connect(clientNs, 'tcp', '10.96.0.10', 80, 1, 300);
    expect(refused[0]?.reply).to.equal(undefined);
  });
});

/** A seeded walk through models with every kind of change: backends come and go, affinity and external IPs change, Services appear and vanish. */
function randomSteps(seed: number, count: number): ProxyRules[] {
  let state = seed >>> 0;
  const next = (limit: number): number => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state % limit;
  };
  const protocols: Protocol[] = ['TCP', 'UDP', 'SCTP'];
  const make = (index: number): ServicePortRule => {
    const backends = Array.from({ length: next(4) }, (_, position) => ({ ip: `10.244.${next(3)}.${position + 1}`, port: 8080 + next(2) }));
    const unique = [...new Map(backends.map((backend) => [`${backend.ip}:${backend.port}`, backend])).values()].sort((x, y) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : x.port - y.port));
    const affinity = next(3) === 0 ? { sessionAffinity: { timeoutSeconds: 60 + next(2) } } : {};
    return rule({
      id: `ns/svc${index}:`,
      protocol: protocols[next(3)]!,
      clusterIP: `10.96.1.${index}`,
      ...(next(2) === 0 ? { nodePort: 30_000 + index } : {}),
      // Shared external IPs: keys two rules claim.
      externalIPs: next(3) === 0 ? ['203.0.113.1'] : [],
      ...affinity,
      backends: unique,
    });
  };
  const steps: ProxyRules[] = [];
  let services = new Map<number, ServicePortRule>();
  for (let step = 0; step < count; step++) {
    const changed = new Map(services);
    for (let edit = 0; edit < 1 + next(3); edit++) {
      const index = next(8);
      if (changed.has(index) && next(4) === 0) changed.delete(index);
      else changed.set(index, make(index));
    }
    services = changed;
    steps.push({ services: [...services.values()].sort((x, y) => (x.id < y.id ? -1 : 1)) });
  }
  return steps;
}

/** A table's contents without handles and in a canonical order, to compare two tables. */
async function normalizedTable(netns: string, table: string): Promise<unknown> {
  const listing = JSON.parse(await inNetns(netns, 'nft', '-j', 'list', 'table', 'ip', table)) as { nftables: Record<string, Record<string, unknown>>[] };
  const chains: Record<string, unknown> = {};
  const rules: Record<string, string[]> = {};
  const sets: Record<string, unknown> = {};
  const strip = (item: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(item).filter(([key]) => key !== 'handle' && key !== 'table' && key !== 'family'));
  for (const object of listing.nftables) {
    if (object['chain'] !== undefined) chains[String(object['chain']['name'])] = strip(object['chain']);
    if (object['rule'] !== undefined) (rules[String(object['rule']['chain'])] ??= []).push(JSON.stringify(object['rule']['expr']));
    for (const kind of ['set', 'map']) {
      const item = object[kind];
      if (item === undefined) continue;
      const elements = Array.isArray(item['elem']) ? (item['elem'] as unknown[]).map((element) => JSON.stringify(element)).sort() : [];
      sets[String(item['name'])] = { ...strip(item), elem: elements };
    }
  }
  return { chains, rules, sets };
}
