// The proxy's loop against an in-memory API and a backend that records what
// it is asked to do: a full sync first, then only differences; changes that
// arrive together share one apply; a failed apply is retried as a full sync;
// a backend that reports its rules altered is repaired; static rules (the
// cluster DNS address) are programmed whatever the API holds.

import { expect } from 'chai';
import type { ListerWatcher } from '../../services/client/informer.js';
import type { KubeObject, ListResult, WatchHandlers } from '../../services/client/resources.js';
import type { ProxyBackend } from '../../services/proxy/backend.js';
import { Proxier } from '../../services/proxy/proxier.js';
import type { ProxyRules, RulesChange, ServicePortRule } from '../../services/proxy/rules.js';
import { clusterDnsRules } from '../../services/proxy/service-proxy.js';
import { waitFor } from '../../services/launcher/local-cluster.js';

class MemoryApi implements ListerWatcher {
  private readonly objects = new Map<string, KubeObject>();
  private readonly watchers: Array<{ kind: string; handlers: WatchHandlers; stopped: boolean }> = [];
  private revision = 0;

  put(object: KubeObject): void {
    const key = `${object.kind}/${object.metadata?.namespace}/${object.metadata?.name}`;
    const stored = { ...object, metadata: { ...object.metadata, resourceVersion: String(++this.revision) } };
    const type = this.objects.has(key) ? 'MODIFIED' : 'ADDED';
    this.objects.set(key, stored);
    for (const watcher of this.watchers) if (!watcher.stopped && watcher.kind === object.kind) watcher.handlers.onEvent(type, stored);
  }

  remove(kind: string, namespace: string, name: string): void {
    const key = `${kind}/${namespace}/${name}`;
    const object = this.objects.get(key)!;
    this.objects.delete(key);
    for (const watcher of this.watchers) if (!watcher.stopped && watcher.kind === kind) watcher.handlers.onEvent('DELETED', { ...object, metadata: { ...object.metadata, resourceVersion: String(++this.revision) } });
  }

  async list(kind: string): Promise<ListResult> {
    return { items: [...this.objects.values()].filter((object) => object.kind === kind), resourceVersion: String(this.revision), continue: '' };
  }

  watch(kind: string, _params: unknown, handlers: WatchHandlers): () => void {
    const watcher = { kind, handlers, stopped: false };
    this.watchers.push(watcher);
    return () => {
      watcher.stopped = true;
    };
  }
}

class RecordingBackend implements ProxyBackend {
  readonly mode = 'userspace' as const;
  readonly calls: string[] = [];
  programmed: ProxyRules = { services: [] };
  failNext = 0;
  intact = true;

  async sync(rules: ProxyRules): Promise<void> {
    this.calls.push(`sync ${rules.services.map((rule) => `${rule.id}=${rule.backends.length}`).join(' ')}`);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('nft: no such file or directory');
    }
    this.programmed = rules;
    this.intact = true;
  }

  async update(change: RulesChange, rules: ProxyRules): Promise<void> {
    const parts = [...change.added.map((rule) => `+${rule.id}`), ...change.removed.map((rule) => `-${rule.id}`), ...change.changed.map(({ after }) => `~${after.id}=${after.backends.length}`)];
    this.calls.push(`update ${parts.join(' ')}`);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('nft: busy');
    }
    this.programmed = rules;
  }

  async verify(): Promise<boolean> {
    return this.intact;
  }

  async close(): Promise<void> {
    this.calls.push('close');
  }
}

const service = (name: string, clusterIP: string): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name }, spec: { clusterIP, selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
const endpoints = (name: string, ips: string[]): KubeObject => ({ apiVersion: 'v1', kind: 'Endpoints', metadata: { namespace: 'default', name }, subsets: [{ addresses: ips.map((ip) => ({ ip })), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }] });

describe('proxy: the loop from Services and Endpoints to a backend', function () {
  let proxier: Proxier | undefined;

  afterEach(async function () {
    await proxier?.stop();
    proxier = undefined;
  });

  it('syncs everything first, then applies only what changed; changes made together share one apply', async function () {
    const api = new MemoryApi();
    api.put(service('web', '10.96.0.5'));
    api.put(endpoints('web', ['10.88.0.2']));
    const backend = new RecordingBackend();
    proxier = new Proxier({ client: api, backend, syncPeriodMs: 0 });
    await proxier.start();
    expect(backend.calls).to.deep.equal(['sync default/web:http=1']);

    api.put(endpoints('web', ['10.88.0.2', '10.88.0.3']));
    api.put(service('db', '10.96.0.6'));
    await waitFor('the change to be applied', async () => (backend.calls.length === 2 ? true : undefined), 5000, 5);
    await proxier.settle();
    expect(backend.calls[1]).to.equal('update +default/db:http ~default/web:http=2');
    expect(proxier.lastApply).to.include({ kind: 'partial', ok: true, servicePorts: 2, backends: 2 });
    expect(proxier.lastApply!.programmingMs).to.be.a('number');

    api.remove('Service', 'default', 'db');
    await waitFor('the removal to be applied', async () => (backend.calls.length === 3 ? true : undefined), 5000, 5);
    expect(backend.calls[2]).to.equal('update -default/db:http');
    expect(proxier.counts).to.deep.include({ fullSyncs: 1, partialSyncs: 2, failures: 0 });
  });

  it('ignores events that change nothing it programs', async function () {
    const api = new MemoryApi();
    api.put(service('web', '10.96.0.5'));
    const backend = new RecordingBackend();
    proxier = new Proxier({ client: api, backend, syncPeriodMs: 0 });
    await proxier.start();
    api.put({ ...service('web', '10.96.0.5'), metadata: { namespace: 'default', name: 'web', labels: { tier: 'front' } } });
    await new Promise((resolve) => setImmediate(resolve));
    await proxier.settle();
    expect(backend.calls).to.deep.equal(['sync default/web:http=0']);
  });

  it('retries a failed apply as a full sync', async function () {
    const api = new MemoryApi();
    api.put(service('web', '10.96.0.5'));
    const backend = new RecordingBackend();
    const lines: string[] = [];
    proxier = new Proxier({ client: api, backend, syncPeriodMs: 0, log: (line) => lines.push(line) });
    await proxier.start();
    backend.failNext = 1;
    api.put(endpoints('web', ['10.88.0.2']));
    await waitFor('the retry', async () => (backend.calls.length === 3 ? true : undefined), 10_000, 10);
    expect(backend.calls).to.deep.equal(['sync default/web:http=0', 'update ~default/web:http=1', 'sync default/web:http=1']);
    expect(lines.some((line) => line.includes('applying the userspace rules failed (retrying with a full sync in 1000 ms): Error: nft: busy'))).to.equal(true);
    expect(proxier.counts).to.deep.include({ fullSyncs: 2, partialSyncs: 0, failures: 1 });
  });

  it('repairs rules the backend reports altered, and leaves intact ones alone', async function () {
    const api = new MemoryApi();
    api.put(service('web', '10.96.0.5'));
    const backend = new RecordingBackend();
    proxier = new Proxier({ client: api, backend, syncPeriodMs: 0 });
    await proxier.start();
    expect(await proxier.verifyAndRepair()).to.equal(true);
    expect(backend.calls).to.have.length(1);
    backend.intact = false;
    expect(await proxier.verifyAndRepair()).to.equal(false);
    expect(backend.calls).to.deep.equal(['sync default/web:http=0', 'sync default/web:http=0']);
    expect(proxier.counts.repairs).to.equal(1);
  });

  it('programs static rules (the cluster DNS address to this node\'s server) whatever the API holds', async function () {
    const api = new MemoryApi();
    const backend = new RecordingBackend();
    const staticRules: ServicePortRule[] = clusterDnsRules(['10.96.0.10'], { ip: '192.168.1.5', port: 10053 });
    expect(staticRules.map((rule) => [rule.id, rule.protocol, rule.clusterIP, rule.port, rule.backends])).to.deep.equal([
      ['kube-system/kube-dns:dns', 'UDP', '10.96.0.10', 53, [{ ip: '192.168.1.5', port: 10053 }]],
      ['kube-system/kube-dns:dns-tcp', 'TCP', '10.96.0.10', 53, [{ ip: '192.168.1.5', port: 10053 }]],
    ]);
    expect(clusterDnsRules(['10.96.0.10'], { ip: '10.96.0.10', port: 53 }), 'a server already answering there').to.deep.equal([]);
    proxier = new Proxier({ client: api, backend, staticRules, syncPeriodMs: 0 });
    await proxier.start();
    expect(backend.programmed.services.map((rule) => rule.id)).to.deep.equal(['kube-system/kube-dns:dns', 'kube-system/kube-dns:dns-tcp']);
  });

  it('hands the world it saw to onWorld before each apply (cluster DNS follows it)', async function () {
    const api = new MemoryApi();
    api.put(service('web', '10.96.0.5'));
    const worlds: string[] = [];
    proxier = new Proxier({ client: api, backend: new RecordingBackend(), syncPeriodMs: 0, onWorld: (services, list) => worlds.push(`${services.length}/${list.length}`) });
    await proxier.start();
    api.put(endpoints('web', ['10.88.0.2']));
    await waitFor('the second world', async () => (worlds.length === 2 ? true : undefined), 5000, 5);
    expect(worlds).to.deep.equal(['1/0', '1/1']);
  });
});
