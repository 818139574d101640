// The resource quota controller's pure decision (usage counted exactly as
// the API server charges it, the status to write), and the registry
// charging a pod's change of usage when it finishes.

import { expect } from 'chai';
import { usageOf as chargedUsage } from '../../services/apiserver/quota.js';
import { Registry } from '../../services/apiserver/registry.js';
import { KINDS, kindInfo, type KindInfo } from '../../services/client/kinds.js';
import { contributes, formatQuantity, usageOf } from '../../services/client/quota.js';
import { computeUsed, planQuotaStatus, type QuotaObject } from '../../services/controllers/resourcequota/reconcile.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';

const POD = kindInfo('Pod')!;

function pod(name: string, requests: Record<string, string>, extra: Record<string, unknown> = {}): QuotaObject & Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop' },
    spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests, limits: requests } }] },
    ...extra,
  };
}

const quota = (hard: Record<string, string>, status?: object): QuotaObject => ({ metadata: { name: 'q', namespace: 'shop', resourceVersion: '7' }, spec: { hard }, ...(status === undefined ? {} : { status }) });

describe('controllers: resourcequota (decision)', function () {
  it('counts every kind exactly as the API server charges it: with the same function', function () {
    expect(chargedUsage).to.equal(usageOf);
    expect(Object.fromEntries(usageOf(POD, pod('finished', { cpu: '2' }, { status: { phase: 'Succeeded' } })))).to.deep.equal({ 'count/pods': 1 });
    expect(Object.fromEntries(usageOf(POD, pod('running', { cpu: '1.5', memory: '1G' }, { status: { phase: 'Running' } })))).to.deep.equal({
      'count/pods': 1,
      pods: 1,
      cpu: 1.5,
      'requests.cpu': 1.5,
      memory: 1e9,
      'requests.memory': 1e9,
      'limits.cpu': 1.5,
      'limits.memory': 1e9,
    });
    expect(formatQuantity('requests.cpu', 0.75)).to.equal('750m');
    expect(formatQuantity('memory', 64 * 1024 * 1024)).to.equal(String(64 * 1024 * 1024));
  });

  it('looks only at the kinds a quota limits', function () {
    const looked = (names: string[]): string[] => KINDS.filter((info) => info.namespaced && contributes(info, names)).map((info) => info.kind);
    expect(looked(['requests.cpu'])).to.deep.equal(['Pod']);
    expect(looked(['count/deployments.apps', 'services'])).to.deep.equal(['Service', 'Deployment']);
    expect(looked(['resourcequotas'])).to.deep.equal(['ResourceQuota']);
  });

  it('sums what exists for each name the quota limits, and nothing else', function () {
    const content = new Map<KindInfo, readonly QuotaObject[]>([
      [POD, [pod('a', { cpu: '250m', memory: '64Mi' }), pod('b', { cpu: '500m', memory: '64Mi' }), pod('done', { cpu: '4', memory: '1Gi' }, { status: { phase: 'Succeeded' } })]],
      [kindInfo('ConfigMap')!, [{ metadata: { name: 'one' } }, { metadata: { name: 'two' } }]],
    ]);
    expect(Object.fromEntries(computeUsed(['pods', 'count/pods', 'requests.cpu', 'limits.memory', 'configmaps', 'services'], content))).to.deep.equal({
      pods: 2,
      'count/pods': 3,
      'requests.cpu': 0.75,
      'limits.memory': 128 * 1024 * 1024,
      configmaps: 2,
      services: 0,
    });
  });

  it('plans status.hard = spec.hard and status.used from what exists, and nothing when it already says so', function () {
    const content = new Map<KindInfo, readonly QuotaObject[]>([[POD, [pod('a', { cpu: '250m', memory: '64Mi' }), pod('b', { cpu: '750m', memory: '64Mi' })]]]);
    const hard = { pods: '10', 'requests.cpu': '4', 'requests.memory': '1Gi' };
    const drifted = quota(hard, { hard, used: { pods: '3', 'requests.cpu': '1250m', 'requests.memory': String(192 * 1024 * 1024) } });
    expect(planQuotaStatus(drifted, content)).to.deep.equal({ hard, used: { pods: '2', 'requests.cpu': '1', 'requests.memory': String(128 * 1024 * 1024) } });
    // The same amounts written differently are the same.
    expect(planQuotaStatus(quota(hard, { hard: { ...hard, pods: '10' }, used: { pods: '2', 'requests.cpu': '1000m', 'requests.memory': '128Mi' } }), content)).to.equal(undefined);
    // A new limit (status.hard lagging spec.hard) is a change even when usage is right.
    expect(planQuotaStatus(quota({ ...hard, pods: '20' }, { hard, used: { pods: '2', 'requests.cpu': '1', 'requests.memory': '128Mi' } }), content)).to.deep.equal({
      hard: { ...hard, pods: '20' },
      used: { pods: '2', 'requests.cpu': '1', 'requests.memory': String(128 * 1024 * 1024) },
    });
    // No status yet.
    expect(planQuotaStatus(quota({ 'count/configmaps': '5' }), new Map())).to.deep.equal({ hard: { 'count/configmaps': '5' }, used: { 'count/configmaps': '0' } });
  });
});

describe('apiserver: a pod that finishes gives back its quota', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let registry: Registry;

  before(async function () {
    ({ store, close } = await openSingleStore());
    registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
    await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  });

  after(async function () {
    await close();
  });

  it('charges the change of usage with the pod’s status update, and releases only the rest on delete', async function () {
    await registry.create('ResourceQuota', { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'q', namespace: 'shop' }, spec: { hard: { pods: '2', 'count/pods': '5', 'requests.cpu': '1' } } });
    const used = async (): Promise<unknown> => ((await registry.get('ResourceQuota', 'shop', 'q')).status as { used: unknown }).used;
    const first = await registry.create('Pod', pod('first', { cpu: '500m' }));
    await registry.create('Pod', pod('second', { cpu: '500m' }));
    expect(await used()).to.deep.equal({ 'count/pods': '2', pods: '2', 'requests.cpu': '1' });
    const before = store.kv.revision;
    await registry.updateStatus('Pod', { ...first, status: { phase: 'Succeeded' } });
    expect(await used()).to.deep.equal({ 'count/pods': '2', pods: '1', 'requests.cpu': '500m' });
    // One transaction: the pod and the quota.
    expect(store.kv.revision).to.equal(before + 1);
    // Its room is free for another.
    await registry.create('Pod', pod('third', { cpu: '500m' }));
    await registry.delete('Pod', 'shop', 'first');
    expect(await used()).to.deep.equal({ 'count/pods': '2', pods: '2', 'requests.cpu': '1' });
    // A status update that changes no usage does not touch the quota.
    const quotaVersion = (await registry.get('ResourceQuota', 'shop', 'q')).metadata.resourceVersion;
    const third = await registry.get('Pod', 'shop', 'third');
    await registry.updateStatus('Pod', { ...third, status: { phase: 'Running', podIP: '10.0.0.3' } });
    expect((await registry.get('ResourceQuota', 'shop', 'q')).metadata.resourceVersion).to.equal(quotaVersion);
  });
});
