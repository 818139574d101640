// ResourceQuota admission: usage arithmetic, and the registry charging and
// releasing quotas in the same transaction as the object (so racing creates
// cannot overrun a quota).

import { expect } from 'chai';
import { kindInfo } from '../../services/client/kinds.js';
import type { ApiError} from '../../services/apiserver/registry.js';
import { Registry, type ApiObject } from '../../services/apiserver/registry.js';
import { applyUsage, exceededMessage, usageOf } from '../../services/apiserver/quota.js';
import { formatQuantity } from '../../services/client/quota.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';
import { refusal } from '../support/refusals.js';

const pod = (name: string, cpu: string, memory: string, namespace = 'limited'): object => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace },
  spec: { containers: [{ name: 'app', image: 'busybox', resources: { requests: { cpu, memory }, limits: { cpu, memory } } }] },
});

describe('apiserver: ResourceQuota', function () {
  describe('usage arithmetic', function () {
    it('sums containers, takes the largest init container, and counts objects', function () {
      const usage = usageOf(kindInfo('Pod')!, {
        spec: {
          containers: [
            { name: 'a', image: 'i', resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '1' } } },
            { name: 'b', image: 'i', resources: { requests: { cpu: '250m', memory: '64Mi' } } },
          ],
          initContainers: [{ name: 'init', image: 'i', resources: { requests: { cpu: '2', memory: '16Mi' } } }],
        },
      });
      expect(Object.fromEntries(usage)).to.deep.equal({
        'count/pods': 1,
        pods: 1,
        'requests.cpu': 2,
        cpu: 2,
        'requests.memory': 128 * 1024 * 1024,
        memory: 128 * 1024 * 1024,
        'limits.cpu': 1,
        'limits.memory': 0,
      });
      expect(Object.fromEntries(usageOf(kindInfo('Deployment')!, {}))).to.deep.equal({ 'count/deployments.apps': 1 });
      expect(Object.fromEntries(usageOf(kindInfo('ConfigMap')!, {}))).to.deep.equal({ 'count/configmaps': 1, configmaps: 1 });
    });

    it('charges, releases, and names what a charge would exceed as Kubernetes does', function () {
      const hard = new Map([['pods', 2], ['requests.cpu', 1]]);
      const charged = applyUsage(hard, new Map([['pods', 1], ['requests.cpu', 0.7]]), new Map([['pods', 1], ['requests.cpu', 0.5]]), 1);
      expect(charged.exceeded).to.deep.equal(['requests.cpu']);
      expect(formatQuantity('requests.cpu', 1.2)).to.equal('1200m');
      expect(formatQuantity('requests.cpu', 2)).to.equal('2');
      expect(exceededMessage('compute', ['requests.cpu'], new Map([['requests.cpu', 0.5]]), new Map([['requests.cpu', 0.7]]), hard)).to.equal('exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=700m, limited: requests.cpu=1');
      expect(Object.fromEntries(applyUsage(hard, new Map([['pods', 1]]), new Map([['pods', 1]]), -1).used)).to.deep.equal({ pods: 0, 'requests.cpu': 0 });
    });
  });

  describe('admission in the registry', function () {
    let store: ReplicatedStore;
    let close: () => Promise<void>;
    let registry: Registry;

    before(async function () {
      ({ store, close } = await openSingleStore());
      registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
      await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'limited' } });
      await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'free' } });
    });

    after(async function () {
      await close();
    });

    const quotaStatus = async (name: string): Promise<unknown> => (await registry.get('ResourceQuota', 'limited', name)).status;

    it('counts what exists when a quota is created, charges creates, refuses the one too many, and releases on delete', async function () {
      await registry.create('Pod', pod('before', '500m', '128Mi'));
      const quota = await registry.create('ResourceQuota', { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'compute', namespace: 'limited' }, spec: { hard: { pods: '3', 'requests.cpu': '1', 'requests.memory': '1Gi' } } });
      expect(quota.status).to.deep.equal({ hard: { pods: '3', 'requests.cpu': '1', 'requests.memory': '1Gi' }, used: { pods: '1', 'requests.cpu': '500m', 'requests.memory': String(128 * 1024 * 1024) } });
      await registry.create('Pod', pod('second', '250m', '128Mi'));
      expect(await quotaStatus('compute')).to.deep.include({ used: { pods: '2', 'requests.cpu': '750m', 'requests.memory': String(256 * 1024 * 1024) } });
      const before = store.kv.revision;
      const refused = await refusal(registry.create('Pod', pod('greedy', '500m', '128Mi')));
      expect(refused.reason).to.equal('Forbidden');
      expect(refused.message).to.equal('pods "greedy" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=750m, limited: requests.cpu=1');
      expect(store.kv.revision).to.equal(before);
      // Other namespaces are not limited.
      await registry.create('Pod', pod('elsewhere', '4', '4Gi', 'free'));
      await registry.delete('Pod', 'limited', 'second');
      expect(await quotaStatus('compute')).to.deep.include({ used: { pods: '1', 'requests.cpu': '500m', 'requests.memory': String(128 * 1024 * 1024) } });
      await registry.create('Pod', pod('fits-now', '500m', '128Mi'));
      // Raising the limit recounts.
      const current = await registry.get('ResourceQuota', 'limited', 'compute');
      const raised = await registry.update('ResourceQuota', { ...current, spec: { hard: { pods: '10', 'requests.cpu': '4', 'requests.memory': '1Gi' } } });
      expect((raised.status as { used: unknown }).used).to.deep.equal({ pods: '2', 'requests.cpu': '1', 'requests.memory': String(256 * 1024 * 1024) });
    });

    it('lets exactly as many racing creates through as the quota allows', async function () {
      await registry.create('ResourceQuota', { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'maps', namespace: 'limited' }, spec: { hard: { 'count/configmaps': '3' } } });
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, index) => registry.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `race-${index}`, namespace: 'limited' } })));
      const created = results.filter((result) => result.status === 'fulfilled') as PromiseFulfilledResult<ApiObject>[];
      const refused = results.filter((result) => result.status === 'rejected') as PromiseRejectedResult[];
      expect(created).to.have.length(3);
      expect(refused.map((result) => (result.reason as ApiError).reason)).to.deep.equal(Array(5).fill('Forbidden'));
      expect((await registry.list('ConfigMap', { namespace: 'limited' })).items).to.have.length(3);
      expect(await quotaStatus('maps')).to.deep.equal({ hard: { 'count/configmaps': '3' }, used: { 'count/configmaps': '3' } });
    });
  });
});
