// 10,000 random and malformed resource requests against 3 real masters:
// bad names, over-size objects, wrong types, unknown fields and kinds,
// invalid selectors, bad resourceVersions and continue tokens, garbage
// bytes. Every answer must be a proper status with a message (never
// INTERNAL or UNKNOWN), the masters must keep running, and the store must
// hold exactly what the accepted requests made — rejected ones change
// nothing. Seeded (MAST_FUZZ_SEED) so a failure replays.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as api from '../../proto/gen/api.js';
import { KINDS } from '../../services/client/kinds.js';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';
import { BOOTSTRAP_CLUSTER_ROLE_BINDINGS } from '../../services/apiserver/rbac.js';
import { Prng } from '../simulation/prng.js';

const REQUESTS = 10_000;
const MAX_OBJECT_BYTES = 4096;
const ACCEPTABLE = new Set([grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.ALREADY_EXISTS, grpc.status.ABORTED, grpc.status.OUT_OF_RANGE]);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

class Generator {
  constructor(private readonly prng: Prng) {}

  pick<T>(items: readonly T[]): T {
    return items[this.prng.nextInt(items.length)]!;
  }

  chance(percent: number): boolean {
    return this.prng.nextInt(100) < percent;
  }

  name(): string {
    return this.pick(['a', 'b', 'c', 'web', 'db-1', 'x.y', '', 'Bad_Name', 'UPPER', '-lead', 'trail-', 'a'.repeat(300), 'sp ace', 'ünï', '../etc', 'a/b']);
  }

  kind(): string {
    return this.chance(90) ? this.pick(KINDS).kind : this.pick(['', 'Widget', 'pods', 'pod', 'List', 'Status', '\u0000', 'x'.repeat(200)]);
  }

  junk(depth = 0): Json {
    switch (this.prng.nextInt(depth > 2 ? 5 : 7)) {
      case 0:
        return null;
      case 1:
        return this.chance(50);
      case 2:
        return this.pick([0, -1, 1.5, 2 ** 31, 2 ** 60, 65536]);
      case 3:
        return this.pick(['', 'x', '100m', '1Gi', 'lots', '10.96.0.1', 'None', 'Always']);
      case 4:
        return 'y'.repeat(this.prng.nextInt(50));
      case 5:
        return Array.from({ length: this.prng.nextInt(3) }, () => this.junk(depth + 1));
      default: {
        const object: Record<string, Json> = {};
        for (let index = this.prng.nextInt(3); index > 0; index--) object[this.pick(['name', 'image', 'ports', 'spec', 'containers', 'colour', 'replicas', 'selector', 'data', 'port'])] = this.junk(depth + 1);
        return object;
      }
    }
  }

  /** A valid object of `kind` or one mutated in a random way. */
  object(kind: string): Json {
    const info = KINDS.find((candidate) => candidate.kind === kind);
    const pod = { containers: [{ name: 'c', image: 'busybox:1.36' }] };
    const template = { metadata: { labels: { app: 'f' } }, spec: pod };
    const specs: Record<string, Json> = {
      Pod: pod,
      Service: { ports: [{ port: 80 }] },
      Deployment: { selector: { matchLabels: { app: 'f' } }, template },
      ReplicaSet: { selector: { matchLabels: { app: 'f' } }, template },
    };
    const object: Record<string, Json> = {
      apiVersion: info?.apiVersion ?? 'v1',
      kind,
      metadata: { name: this.name(), ...(info?.namespaced === true ? { namespace: this.pick(['default', 'default', 'fuzz', 'missing', 'Bad NS']) } : {}) },
    };
    if (specs[kind] !== undefined) object.spec = structuredClone(specs[kind]!);
    if (kind === 'ConfigMap') object.data = { k: 'v' };
    switch (this.prng.nextInt(10)) {
      case 0:
        object[this.pick(['colour', 'spec', 'status', 'data', 'metadata'])] = this.junk();
        break;
      case 1:
        (object.metadata as Record<string, Json>)[this.pick(['labels', 'annotations', 'uid', 'generation', 'resourceVersion', 'extra', 'finalizers'])] = this.junk();
        break;
      case 2:
        object.data = { big: 'z'.repeat(MAX_OBJECT_BYTES) };
        break;
      case 3:
        object.apiVersion = this.pick(['v2', 'apps/v1', '', 7 as unknown as string]);
        break;
      case 4:
        return this.junk();
      default:
        break; // valid (or as valid as its name)
    }
    return object;
  }

  bytes(kind: string): Buffer {
    if (this.chance(5)) return Buffer.from(this.pick(['{', 'null', '[]', '"x"', '\u00ff\u00fe', '{"a":']));
    return Buffer.from(JSON.stringify(this.object(kind)));
  }

  selector(): string {
    return this.chance(60) ? '' : this.pick(['app=web', 'a in (x,y)', 'a in (', '!a', 'a b', '=', 'app!=', 'x'.repeat(100) + '=1', 'metadata.name=a', 'spec.image=x', ',']);
  }

  version(): string {
    return this.chance(60) ? '' : this.pick(['0', '1', '99999999', 'abc', '-5', '1.5', String(this.prng.nextInt(200))]);
  }
}

describe('resource API fuzz on 3 masters', function () {
  this.timeout(600_000);
  let cluster: LocalCluster;

  before(async function () {
    cluster = await LocalCluster.start({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-fuzz-test-')), flags: [`--max-object-bytes=${MAX_OBJECT_BYTES}`] });
    await cluster.waitForLeader(60_000);
  });

  after(async function () {
    await cluster?.destroy();
  });

  it(`answers ${REQUESTS} random and malformed requests properly and changes nothing it refused`, async function () {
    const seed = Number(process.env.MAST_FUZZ_SEED ?? 1);
    const gen = new Generator(new Prng(seed));
    const clients = cluster.endpoints.map((endpoint) => new api.ResourcesClient(endpoint, grpc.credentials.createInsecure()));
    // What accepted writes made, by kind/namespace/name -> resourceVersion.
    const model = new Map<string, string>();
    const keyOf = (object: { kind?: string; metadata?: { namespace?: string; name?: string } }): string => `${object.kind}/${object.metadata?.namespace ?? ''}/${object.metadata?.name}`;
    const counts = new Map<string, number>();
    const bad: string[] = [];
    const ns = await new Promise<api.ObjectResponse>((resolve, reject) =>
      clients[0]!.create({ kind: 'Namespace', object: Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fuzz' } })) }, (error, response) => (error ? reject(error) : resolve(response))),
    );
    model.set(keyOf(JSON.parse(ns.object.toString())), '');
    // What the masters make at startup (namespaces, the bootstrap RBAC policy) is there before the fuzz starts.
    const listAll = async (): Promise<Map<string, string>> => {
      const stored = new Map<string, string>();
      for (const info of KINDS) {
        const list = await new Promise<api.ListResponse>((resolve, reject) => clients[0]!.list(api.ListRequest.fromPartial({ kind: info.kind }), (error, response) => (error ? reject(error) : resolve(response))));
        for (const item of list.items) {
          const object = JSON.parse(item.toString()) as { kind?: string; metadata?: { namespace?: string; name?: string; resourceVersion?: string } };
          stored.set(keyOf(object), object.metadata?.resourceVersion ?? '');
        }
      }
      return stored;
    };
    const startup = await waitFor('the startup objects', async () => {
      const stored = await listAll();
      return [...stored.keys()].filter((key) => key.startsWith('ClusterRoleBinding/')).length >= BOOTSTRAP_CLUSTER_ROLE_BINDINGS.length && stored.has('Namespace//kube-node-lease') ? stored : undefined;
    }, 60_000, 100);
    for (const [key, version] of startup) if (!model.has(key)) model.set(key, version);
    try {
      for (let index = 0; index < REQUESTS; index++) {
        const client = gen.pick(clients);
        const kind = gen.kind();
        const op = gen.pick(['create', 'create', 'create', 'update', 'updateStatus', 'patch', 'delete', 'get', 'list', 'watch'] as const);
        const namespace = gen.pick(['default', 'fuzz', '', 'missing']);
        const name = gen.name();
        const done = await new Promise<{ code: grpc.status; details: string; object?: string }>((resolve) => {
          const finish = (error: grpc.ServiceError | null, response?: { object?: Buffer }): void =>
            resolve(error === null ? { code: grpc.status.OK, details: '', object: response?.object?.toString() } : { code: error.code, details: error.details });
          const options = { deadline: Date.now() + 10_000 };
          const metadata = new grpc.Metadata();
          switch (op) {
            case 'create':
              client.create({ kind, object: gen.bytes(kind) }, metadata, options, finish);
              break;
            case 'update':
            case 'updateStatus':
              client[op]({ kind, object: gen.bytes(kind) }, metadata, options, finish);
              break;
            case 'patch':
              client.patch({ kind, namespace, name, patch: gen.chance(10) ? Buffer.from('[1,2]') : Buffer.from(JSON.stringify(gen.junk())) }, metadata, options, finish);
              break;
            case 'delete':
              client.delete(api.DeleteRequest.fromPartial({ kind, namespace, name, resourceVersion: gen.version() }), metadata, options, finish);
              break;
            case 'get':
              client.get({ kind, namespace, name }, metadata, options, finish);
              break;
            case 'list':
              client.list(api.ListRequest.fromPartial({ kind, namespace, labelSelector: gen.selector(), fieldSelector: gen.selector(), limit: gen.pick([0, 1, 5, -3]), continue: gen.pick(['', '', 'garbage', 'eyJydiI6MSwic3RhcnQiOiIifQ']), resourceVersion: gen.version() }), metadata, options, (error) => finish(error));
              break;
            case 'watch': {
              const stream = client.watch(api.WatchRequest.fromPartial({ kind, namespace, labelSelector: gen.selector(), fieldSelector: gen.selector(), resourceVersion: gen.version(), allowBookmarks: true }));
              let settled = false;
              const settle = (result: { code: grpc.status; details: string }): void => {
                if (settled) return;
                settled = true;
                stream.cancel();
                resolve(result);
              };
              stream.on('data', () => settle({ code: grpc.status.OK, details: '' }));
              stream.on('error', (error: grpc.ServiceError) => settle(error.code === grpc.status.CANCELLED ? { code: grpc.status.OK, details: '' } : { code: error.code, details: error.details }));
              setTimeout(() => settle({ code: grpc.status.OK, details: '' }), 20);
              break;
            }
          }
        });
        if (process.env.MAST_FUZZ_VERBOSE === '1' && done.code === grpc.status.OUT_OF_RANGE) console.log(op, kind, done.details);
        counts.set(grpc.status[done.code]!, (counts.get(grpc.status[done.code]!) ?? 0) + 1);
        if (!ACCEPTABLE.has(done.code) || (done.code !== grpc.status.OK && done.details.trim() === '')) {
          bad.push(`#${index} ${op} ${JSON.stringify(kind)}: ${grpc.status[done.code]} ${JSON.stringify(done.details)}`);
        }
        if (done.code === grpc.status.OK && done.object !== undefined && ['create', 'update', 'updateStatus', 'patch', 'delete'].includes(op)) {
          const object = JSON.parse(done.object) as { kind?: string; metadata?: { namespace?: string; name?: string; resourceVersion?: string } };
          if (op === 'delete') {
            // A delete may only mark the object (a namespace terminates until emptied): it stays, at its version now.
            const left = await new Promise<string | undefined>((resolve) => client.get({ kind, namespace, name }, (error, response) => resolve(error === null ? (JSON.parse(response.object.toString()) as typeof object).metadata?.resourceVersion : undefined)));
            if (left === undefined) model.delete(keyOf(object));
            else model.set(keyOf(object), left);
          } else model.set(keyOf(object), object.metadata?.resourceVersion ?? '');
        }
      }
      if (process.env.MAST_FUZZ_VERBOSE === '1') console.log(JSON.stringify(Object.fromEntries(counts)));
      expect(bad, `seed ${seed}; answers: ${JSON.stringify(Object.fromEntries(counts))}`).to.deep.equal([]);
      expect(cluster.running()).to.have.length(3);
      // The store holds exactly what accepted requests made.
      const stored = await listAll();
      // Namespaces made at startup (and the test's own) are compared by presence only.
      for (const key of model.keys()) if (key.startsWith('Namespace/')) model.set(key, stored.get(key) ?? 'missing');
      expect([...stored.entries()].sort()).to.deep.equal([...model.entries()].sort());
      expect(counts.get('OK') ?? 0, 'some requests are accepted').to.be.greaterThan(100);
      expect(counts.get('INVALID_ARGUMENT') ?? 0, 'many are refused').to.be.greaterThan(1000);
    } finally {
      for (const client of clients) client.close();
    }
  });
});
