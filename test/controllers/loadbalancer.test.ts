// The LoadBalancer controller: its pure decision (the pool's syntax, the
// three passes — keep, asked-for, lowest free —, exhaustion, release, and
// the same answer whatever order the Services come in); its loop against an
// in-memory API (the writes it makes, in which order, one Event per reason,
// a conflict retried); and in a master started with --load-balancer-ip-pool.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Service } from '../../proto/gen/resources/v1/core.js';
import { EventRecorder, type EventObject, type EventSink } from '../../services/client/events.js';
import { ResourceClient, type KubeObject, type WatchHandlers } from '../../services/client/resources.js';
import { LoadBalancerController } from '../../services/controllers/loadbalancer/controller.js';
import {
  describePool,
  desiredLoadBalancerStatus,
  IpPoolError,
  loadBalancerStatusMatches,
  parseIpPool,
  planLoadBalancers,
  poolSize,
  REASON_EXHAUSTED,
  REASON_NO_POOL,
  type IpPool,
  type LoadBalancerDecision,
} from '../../services/controllers/loadbalancer/reconcile.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

interface ServiceOptions {
  readonly type?: string;
  /** Seconds after a fixed instant. */
  readonly created?: number;
  readonly namespace?: string;
  readonly shows?: string;
  readonly requests?: string;
  readonly loadBalancerClass?: string;
}

function service(name: string, options: ServiceOptions = {}): Service {
  const created = options.created ?? 0;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: options.namespace ?? 'default', uid: `uid-${name}`, creationTimestamp: `2026-01-01T00:${String(Math.floor(created / 60)).padStart(2, '0')}:${String(created % 60).padStart(2, '0')}Z` },
    spec: {
      type: options.type ?? 'LoadBalancer',
      ports: [{ port: 80, protocol: 'TCP' }],
      ...(options.requests === undefined ? {} : { loadBalancerIP: options.requests }),
      ...(options.loadBalancerClass === undefined ? {} : { loadBalancerClass: options.loadBalancerClass }),
    },
    status: { loadBalancer: options.shows === undefined ? {} : { ingress: [{ ip: options.shows, ipMode: 'VIP' }] } },
  };
}

/** The plan as "namespace/name → ip or why not", for compact expectations. */
function summary(plan: ReadonlyMap<string, LoadBalancerDecision>): Record<string, string> {
  return Object.fromEntries([...plan].map(([key, decision]) => [key, decision.kind === 'assign' ? decision.ip : decision.kind === 'pending' ? `pending: ${decision.reason}` : 'release']));
}

/** The Services as they are once the plan is written. */
function applied(services: readonly Service[], plan: ReadonlyMap<string, LoadBalancerDecision>): Service[] {
  return services.map((one) => {
    const decision = plan.get(`${one.metadata?.namespace}/${one.metadata?.name}`);
    return decision === undefined ? one : { ...one, status: { ...one.status, loadBalancer: desiredLoadBalancerStatus(decision) } };
  });
}

function poolError(text: string): string {
  try {
    parseIpPool(text);
  } catch (error) {
    expect(error).to.be.instanceOf(IpPoolError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`);
}

describe('controllers: load balancer addresses (pure)', function () {
  it('reads a pool of CIDRs and ranges, leaving out network and broadcast addresses of CIDRs wider than /31', function () {
    expect(describePool(parseIpPool('10.0.0.0/30'))).to.equal('10.0.0.1-10.0.0.2');
    expect(describePool(parseIpPool('10.0.0.0/31'))).to.equal('10.0.0.0-10.0.0.1');
    expect(describePool(parseIpPool('10.0.0.7/32'))).to.equal('10.0.0.7');
    // Parts in any order, spaces around them allowed: the pool is sorted.
    const pool = parseIpPool(' 192.168.1.240/28 , 10.0.0.10-10.0.0.20,10.0.1.5-10.0.1.5');
    expect(describePool(pool)).to.equal('10.0.0.10-10.0.0.20,10.0.1.5,192.168.1.241-192.168.1.254');
    expect(poolSize(pool)).to.equal(11 + 1 + 14);
    expect(poolSize(parseIpPool('0.0.0.0/0'))).to.equal(2 ** 32 - 2);
  });

  it('names the part of a pool that is wrong', function () {
    expect(poolError('10.0.0.256/24')).to.equal('"10.0.0.256/24" is not a CIDR: "10.0.0.256" is not an IPv4 address');
    expect(poolError('10.0.0.0/24,10.0.0.01-10.0.0.9')).to.equal('"10.0.0.01-10.0.0.9" is not a range of two IPv4 addresses A.B.C.D-E.F.G.H');
    expect(poolError('10.0.0.0/33')).to.equal('"10.0.0.0/33" is not a CIDR: the prefix length must be 0 to 32');
    expect(poolError('10.0.0.0/24/8')).to.contain('the prefix length must be 0 to 32');
    expect(poolError('10.0.0.5/24')).to.equal('"10.0.0.5/24" has host bits set (did you mean 10.0.0.0/24?)');
    expect(poolError('10.0.0.9-10.0.0.1')).to.equal('"10.0.0.9-10.0.0.1" starts after it ends');
    expect(poolError('10.0.0.7')).to.contain('"10.0.0.7" is neither a CIDR (A.B.C.D/N; one address is A.B.C.D/32) nor a range');
    expect(poolError('fd00::/64')).to.contain('is not an IPv4 address');
    expect(poolError('')).to.contain('is empty');
    expect(poolError('10.0.0.0/30,,10.0.1.0/30')).to.contain('has an empty part');
    expect(poolError('10.0.0.0/24,10.0.0.200-10.0.1.5')).to.equal('"10.0.0.200-10.0.1.5" overlaps "10.0.0.0/24"');
  });

  it('gives each LoadBalancer Service the lowest free address, in creation order, across the pool\'s parts', function () {
    const pool = parseIpPool('10.0.0.0/30,10.0.5.1-10.0.5.2');
    const services = [service('c', { created: 3 }), service('a', { created: 1 }), service('plain', { type: 'ClusterIP', created: 0 }), service('b', { created: 2 }), service('d', { created: 4 })];
    expect(summary(planLoadBalancers(pool, services))).to.deep.equal({ 'default/a': '10.0.0.1', 'default/b': '10.0.0.2', 'default/c': '10.0.5.1', 'default/d': '10.0.5.2' });
    // Created in the same second: namespace/name decides.
    expect(summary(planLoadBalancers(pool, [service('y', { namespace: 'b' }), service('z', { namespace: 'a' }), service('x', { namespace: 'b' })]))).to.deep.equal({ 'a/z': '10.0.0.1', 'b/x': '10.0.0.2', 'b/y': '10.0.5.1' });
    // Another implementation's Services (spec.loadBalancerClass) are none of its business.
    expect(summary(planLoadBalancers(pool, [service('theirs', { loadBalancerClass: 'example.com/lb', shows: '10.0.0.1' }), service('ours', { created: 1 })]))).to.deep.equal({ 'default/ours': '10.0.0.1' });
    // The status it writes.
    expect(desiredLoadBalancerStatus({ kind: 'assign', ip: '10.0.0.1' })).to.deep.equal({ ingress: [{ ip: '10.0.0.1', ipMode: 'VIP' }] });
  });

  it('keeps the address a Service shows while it is in the pool and nobody older keeps it', function () {
    const pool = parseIpPool('10.0.0.0/29');
    const services = [
      service('old', { created: 1, shows: '10.0.0.5' }),
      service('copy', { created: 2, shows: '10.0.0.5' }),
      service('outside', { created: 3, shows: '192.168.0.1' }),
      service('network', { created: 4, shows: '10.0.0.0' }),
      service('new', { created: 5 }),
    ];
    expect(summary(planLoadBalancers(pool, services))).to.deep.equal({ 'default/old': '10.0.0.5', 'default/copy': '10.0.0.1', 'default/outside': '10.0.0.2', 'default/network': '10.0.0.3', 'default/new': '10.0.0.4' });
    // Kept with ipMode VIP: nothing to write; without it, the ingress is written again.
    const old = services[0]!;
    expect(loadBalancerStatusMatches(old, { kind: 'assign', ip: '10.0.0.5' })).to.equal(true);
    expect(loadBalancerStatusMatches({ ...old, status: { loadBalancer: { ingress: [{ ip: '10.0.0.5' }] } } }, { kind: 'assign', ip: '10.0.0.5' })).to.equal(false);
  });

  it('honours spec.loadBalancerIP when it is in the pool and free, and says why not otherwise', function () {
    const pool = parseIpPool('10.0.0.0/29');
    const plan = planLoadBalancers(pool, [
      service('any', { created: 1 }),
      service('holder', { created: 2, shows: '10.0.0.3' }),
      service('wants-1', { created: 3, requests: '10.0.0.1' }),
      service('wants-3', { created: 4, requests: '10.0.0.3' }),
      service('wants-outside', { created: 5, requests: '10.9.9.9' }),
      service('wants-network', { created: 6, requests: '10.0.0.0' }),
      service('wants-nonsense', { created: 7, requests: 'ten' }),
      service('elsewhere', { created: 8, requests: '10.0.0.3', namespace: 'team' }),
    ]);
    expect(summary(plan)).to.deep.equal({
      // Asked-for addresses go first: the older Service asking for any address gets the next one.
      'default/any': '10.0.0.2',
      'default/holder': '10.0.0.3',
      'default/wants-1': '10.0.0.1',
      'default/wants-3': 'pending: spec.loadBalancerIP 10.0.0.3 is in use by Service default/holder',
      'default/wants-outside': 'pending: spec.loadBalancerIP 10.9.9.9 is not in the load-balancer pool (10.0.0.1-10.0.0.6)',
      'default/wants-network': 'pending: spec.loadBalancerIP 10.0.0.0 is not in the load-balancer pool (10.0.0.1-10.0.0.6)',
      'default/wants-nonsense': 'pending: spec.loadBalancerIP "ten" is not an IPv4 address',
      // Its Event goes to its own namespace: another namespace's Service is not named.
      'team/elsewhere': 'pending: spec.loadBalancerIP 10.0.0.3 is in use by a Service of another namespace',
    });
    // A Service whose loadBalancerIP changes moves to it (its old address goes back to the pool).
    const moved = planLoadBalancers(pool, [service('mover', { created: 1, shows: '10.0.0.1', requests: '10.0.0.4' }), service('next', { created: 2 })]);
    expect(summary(moved)).to.deep.equal({ 'default/mover': '10.0.0.4', 'default/next': '10.0.0.1' });
    // A shown address that is the one asked for is kept.
    expect(summary(planLoadBalancers(pool, [service('same', { shows: '10.0.0.6', requests: '10.0.0.6' })]))).to.deep.equal({ 'default/same': '10.0.0.6' });
  });

  it('leaves Services pending when the pool is exhausted or there is none, and clears what they showed', function () {
    const pool = parseIpPool('10.0.0.0/31');
    const plan = planLoadBalancers(pool, [service('a', { created: 1 }), service('b', { created: 2 }), service('c', { created: 3 })]);
    expect(summary(plan)).to.deep.equal({ 'default/a': '10.0.0.0', 'default/b': '10.0.0.1', 'default/c': `pending: ${REASON_EXHAUSTED}` });
    expect(REASON_EXHAUSTED).to.equal('no free address in the load-balancer pool');
    const none = planLoadBalancers(undefined, [service('a', { shows: '10.0.0.0' }), service('plain', { type: 'ClusterIP', created: 1 })]);
    expect(summary(none)).to.deep.equal({ 'default/a': `pending: ${REASON_NO_POOL}` });
    const pending = none.get('default/a')!;
    expect(desiredLoadBalancerStatus(pending)).to.deep.equal({});
    expect(loadBalancerStatusMatches(service('a', { shows: '10.0.0.0' }), pending)).to.equal(false);
    expect(loadBalancerStatusMatches(service('a'), pending)).to.equal(true);
  });

  it('releases the address of a Service that is no LoadBalancer any more, or is gone', function () {
    const pool = parseIpPool('10.0.0.0/30');
    const before = [service('a', { created: 1, shows: '10.0.0.1' }), service('b', { created: 2, shows: '10.0.0.2' }), service('c', { created: 3 })];
    expect(summary(planLoadBalancers(pool, before))['default/c']).to.equal(`pending: ${REASON_EXHAUSTED}`);
    // a becomes a ClusterIP Service: its ingress is cleared and c gets its address.
    const changed = [service('a', { created: 1, shows: '10.0.0.1', type: 'ClusterIP' }), before[1]!, before[2]!];
    const plan = planLoadBalancers(pool, changed);
    expect(summary(plan)).to.deep.equal({ 'default/b': '10.0.0.2', 'default/c': '10.0.0.1', 'default/a': 'release' });
    expect(desiredLoadBalancerStatus(plan.get('default/a')!)).to.deep.equal({});
    // Once cleared, nothing more to say about it.
    expect(planLoadBalancers(pool, applied(changed, plan)).has('default/a')).to.equal(false);
    // b deleted: c gets its address.
    expect(summary(planLoadBalancers(pool, [before[0]!, before[2]!]))).to.deep.equal({ 'default/a': '10.0.0.1', 'default/c': '10.0.0.2' });
  });

  it('decides the same whatever order the Services come in, and again once its decisions are written', function () {
    const pool = parseIpPool('10.0.0.0/29');
    const services = [
      service('first', { created: 1, requests: '10.0.0.4' }),
      service('second', { created: 2, requests: '10.0.0.4' }),
      service('other', { created: 2, namespace: 'team' }),
      service('copy-a', { created: 3, shows: '10.0.0.2' }),
      service('copy-b', { created: 3, shows: '10.0.0.2' }),
      service('gone-type', { created: 0, type: 'NodePort', shows: '10.0.0.1' }),
    ];
    const expected = summary(planLoadBalancers(pool, services));
    expect(expected).to.deep.equal({
      'default/first': '10.0.0.4',
      'default/second': 'pending: spec.loadBalancerIP 10.0.0.4 is in use by Service default/first',
      'default/copy-a': '10.0.0.2',
      'default/copy-b': '10.0.0.3',
      'team/other': '10.0.0.1',
      'default/gone-type': 'release',
    });
    // Every rotation and the reverse of the input: the same plan.
    for (let shift = 0; shift < services.length; shift++) {
      const rotated = [...services.slice(shift), ...services.slice(0, shift)];
      expect(summary(planLoadBalancers(pool, rotated))).to.deep.equal(expected);
      expect(summary(planLoadBalancers(pool, [...rotated].reverse()))).to.deep.equal(expected);
    }
    // Written, the plan stands: every Service keeps what it was given, nothing left to write.
    const written = applied(services, planLoadBalancers(pool, services));
    const again = planLoadBalancers(pool, written);
    expect(summary(again)).to.deep.equal(Object.fromEntries(Object.entries(expected).filter(([key]) => key !== 'default/gone-type')));
    for (const one of written) {
      const decision = again.get(`${one.metadata?.namespace}/${one.metadata?.name}`);
      if (decision !== undefined) expect(loadBalancerStatusMatches(one, decision), one.metadata?.name).to.equal(true);
    }
  });

  it('plans a huge pool without walking it', function () {
    const pool = parseIpPool('10.0.0.0/8');
    const services = Array.from({ length: 1000 }, (_, index) => service(`s${String(index).padStart(4, '0')}`, { created: 1 }));
    const plan = planLoadBalancers(pool, services);
    expect(summary(plan)['default/s0999']).to.equal('10.0.3.232');
  });
});

/** Services in memory, as the API server keeps them: versions, a watch, and updateStatus pinned to a version. */
class MemoryServices {
  private version = 1;
  private readonly objects = new Map<string, Service>();
  private readonly watchers = new Set<WatchHandlers>();
  /** status writes, in order: "namespace/name ip" or "namespace/name -" for a cleared ingress. */
  readonly writes: string[] = [];
  /** Status writes of these keys fail with ABORTED (once per entry). */
  readonly conflicts: string[] = [];

  put(object: Service): void {
    const key = `${object.metadata?.namespace}/${object.metadata?.name}`;
    const stored: Service = { ...object, metadata: { ...object.metadata, resourceVersion: String(++this.version) } };
    const existed = this.objects.has(key);
    this.objects.set(key, stored);
    for (const watcher of this.watchers) watcher.onEvent(existed ? 'MODIFIED' : 'ADDED', stored as KubeObject);
  }

  get(key: string): Service | undefined {
    return this.objects.get(key);
  }

  list = async (): Promise<{ items: KubeObject[]; resourceVersion: string; continue: string }> => ({ items: [...this.objects.values()] as KubeObject[], resourceVersion: String(this.version), continue: '' });

  watch = (_kind: string, _params: unknown, handlers: WatchHandlers): (() => void) => {
    this.watchers.add(handlers);
    return () => this.watchers.delete(handlers);
  };

  updateStatus = async (_kind: string, object: KubeObject): Promise<KubeObject> => {
    const written = object as Service;
    const key = `${written.metadata?.namespace}/${written.metadata?.name}`;
    const current = this.objects.get(key);
    const conflict = this.conflicts.indexOf(key);
    if (conflict >= 0) {
      this.conflicts.splice(conflict, 1);
      throw Object.assign(new Error('the object has been modified'), { code: grpc.status.ABORTED });
    }
    if (current === undefined) throw Object.assign(new Error('not found'), { code: grpc.status.NOT_FOUND });
    if (current.metadata?.resourceVersion !== written.metadata?.resourceVersion) throw Object.assign(new Error('stale'), { code: grpc.status.ABORTED });
    this.writes.push(`${key} ${written.status?.loadBalancer?.ingress?.[0]?.ip ?? '-'}`);
    this.put({ ...current, status: written.status });
    return this.objects.get(key) as KubeObject;
  };
}

/** Events in memory. */
function memoryEvents(): { sink: EventSink; events: EventObject[] } {
  const events: EventObject[] = [];
  const sink: EventSink = {
    create: async (event) => void events.push(event),
    update: async (event) => {
      const index = events.findIndex((one) => one.metadata.name === event.metadata.name);
      events[index] = event;
    },
    get: async (_namespace, name) => {
      const found = events.find((one) => one.metadata.name === name);
      if (found === undefined) throw new Error('not found');
      return found;
    },
  };
  return { sink, events };
}

describe('controllers: the LoadBalancer controller against an in-memory API', function () {
  const running: Array<{ stop: AbortController; done: Promise<void> }> = [];

  afterEach(async function () {
    for (const one of running.splice(0)) {
      one.stop.abort();
      await one.done;
    }
  });

  function start(api: MemoryServices, pool: IpPool | undefined): { events: EventObject[]; logged: string[] } {
    const { sink, events } = memoryEvents();
    const logged: string[] = [];
    const log = (line: string): void => void logged.push(line);
    const stop = new AbortController();
    const controller = new LoadBalancerController({ client: api as unknown as ResourceClient, log, events: new EventRecorder(sink, { component: 'controller-manager', host: 'test', log }), ...(pool === undefined ? {} : { pool }) });
    running.push({ stop, done: controller.run(stop.signal) });
    return { events, logged };
  }

  const ingressOf = (api: MemoryServices, name: string): string | undefined => api.get(`default/${name}`)?.status?.loadBalancer?.ingress?.[0]?.ip;

  it('without a pool, leaves LoadBalancer Services pending with one Event each, however often it syncs', async function () {
    const api = new MemoryServices();
    api.put(service('a', { created: 1 }));
    api.put(service('b', { created: 2 }));
    api.put(service('plain', { type: 'ClusterIP' }));
    const { events, logged } = start(api, undefined);
    await waitFor('an Event per Service', async () => (events.length >= 2 ? true : undefined), 5000, 5);
    // More changes, more syncs: no more Events, no writes.
    for (let round = 0; round < 3; round++) {
      api.put({ ...api.get('default/a')!, metadata: { ...api.get('default/a')!.metadata, labels: { round: String(round) } } });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(events.map((event) => [event.involvedObject.name, event.type, event.reason, event.count])).to.deep.equal([
      ['a', 'Warning', 'AllocationFailed', 1],
      ['b', 'Warning', 'AllocationFailed', 1],
    ]);
    expect(events[0]!.message).to.equal(`Failed to allocate IP for "default/a": ${REASON_NO_POOL}`);
    expect(api.writes).to.deep.equal([]);
    expect(logged).to.include('loadbalancer: no --load-balancer-ip-pool: LoadBalancer Services stay pending');
  });

  it('writes addresses through status, releases before it assigns, and retries a conflict', async function () {
    const api = new MemoryServices();
    // "was" lost its LoadBalancer type while showing 10.0.0.1; "new" is waiting for an address.
    api.put(service('was', { type: 'ClusterIP', created: 1, shows: '10.0.0.1' }));
    api.put(service('new', { created: 2 }));
    api.put(service('other', { created: 3 }));
    api.conflicts.push('default/other');
    const { events } = start(api, parseIpPool('10.0.0.0/30'));
    await waitFor('both assigned', async () => (ingressOf(api, 'new') !== undefined && ingressOf(api, 'other') !== undefined ? true : undefined), 5000, 5);
    expect(api.writes).to.deep.equal(['default/was -', 'default/new 10.0.0.1', 'default/other 10.0.0.2']);
    expect(api.get('default/new')!.status?.loadBalancer).to.deep.equal({ ingress: [{ ip: '10.0.0.1', ipMode: 'VIP' }] });
    expect(api.get('default/was')!.status?.loadBalancer).to.deep.equal({});
    await waitFor('the Events', async () => (events.length >= 2 ? true : undefined), 5000, 5);
    expect(events.map((event) => [event.involvedObject.name, event.reason, event.message])).to.deep.equal([
      ['new', 'IPAllocated', 'Assigned IP ["10.0.0.1"]'],
      ['other', 'IPAllocated', 'Assigned IP ["10.0.0.2"]'],
    ]);
    // A Service moving to its new loadBalancerIP shows no address while another may show its old one: cleared first.
    api.put({ ...api.get('default/new')!, spec: { ...api.get('default/new')!.spec, loadBalancerIP: '10.0.0.2' } });
    api.put({ ...api.get('default/other')!, spec: { ...api.get('default/other')!.spec, loadBalancerIP: '10.0.0.1' } });
    await waitFor('the swap', async () => (ingressOf(api, 'new') === '10.0.0.2' && ingressOf(api, 'other') === '10.0.0.1' ? true : undefined), 5000, 5);
    expect(api.writes.slice(3)).to.deep.equal(['default/new -', 'default/other -', 'default/new 10.0.0.2', 'default/other 10.0.0.1']);
  });
});

describe('controllers: the LoadBalancer controller in a master started with --load-balancer-ip-pool', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-loadbalancer-')), controllers: true, flags: ['--load-balancer-ip-pool=10.123.0.0/30'] });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  const create = (name: string): Promise<KubeObject> => client.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { type: 'LoadBalancer', selector: { app: name }, ports: [{ port: 80 }] } });
  const ingress = async (name: string): Promise<Array<{ ip?: string; ipMode?: string }> | undefined> => {
    const found = (await client.get('Service', 'default', name).catch(() => undefined)) as Service | undefined;
    return found?.status?.loadBalancer?.ingress;
  };
  const ipOf = (name: string, ip: string): Promise<true> => waitFor(`${name} at ${ip}`, async () => ((await ingress(name))?.[0]?.ip === ip ? true : undefined), 60_000, 50);

  it('gives LoadBalancer Services the pool\'s addresses, reuses a deleted one\'s, and reports exhaustion', async function () {
    await create('lb-a');
    await ipOf('lb-a', '10.123.0.1');
    expect(await ingress('lb-a')).to.deep.equal([{ ip: '10.123.0.1', ipMode: 'VIP' }]);
    await create('lb-b');
    await ipOf('lb-b', '10.123.0.2');
    // The pool (.1 and .2) is full: lb-a's deletion frees .1 for lb-c, whether lb-c comes before the controller sees it or after.
    await client.delete('Service', 'default', 'lb-a');
    await create('lb-c');
    await ipOf('lb-c', '10.123.0.1');
    await create('lb-d');
    const failed = await waitFor('an AllocationFailed Event for lb-d', async () => {
      const events = (await client.list('Event', { namespace: 'default' })).items as unknown as EventObject[];
      return events.find((event) => event.involvedObject.name === 'lb-d' && event.reason === 'AllocationFailed');
    }, 60_000, 100);
    expect(failed.type).to.equal('Warning');
    expect(failed.message).to.contain(REASON_EXHAUSTED);
    expect(await ingress('lb-d')).to.equal(undefined);
    // lb-b becomes a ClusterIP Service: its ingress is cleared, lb-d gets its address.
    const b = (await client.get('Service', 'default', 'lb-b')) as Service;
    await client.update('Service', { ...b, spec: { ...b.spec, type: 'ClusterIP', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }], externalTrafficPolicy: undefined } } as KubeObject);
    await ipOf('lb-d', '10.123.0.2');
    await waitFor('lb-b cleared', async () => ((await ingress('lb-b')) === undefined ? true : undefined), 60_000, 50);
  });
});
