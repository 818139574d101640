// Kubernetes' DefaultTolerationSeconds admission: every pod tolerates the
// node lifecycle controller's not-ready and unreachable NoExecute taints
// for 300 s unless it says otherwise; pod templates are left alone.

import { expect } from 'chai';
import { Registry } from '../../services/apiserver/registry.js';
import { STRATEGIES } from '../../services/apiserver/strategies.js';
import type { Json } from '../../services/apiserver/schema.js';
import { openSingleStore } from '../support/single-store.js';

type Obj = Record<string, Json>;

const NOT_READY = { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 };
const UNREACHABLE = { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 };

function defaulted(tolerations?: Obj[]): Json {
  const pod: Obj = { spec: { containers: [{ name: 'c', image: 'nginx' }], ...(tolerations === undefined ? {} : { tolerations }) } };
  STRATEGIES.Pod!.defaults!(pod);
  return (pod.spec as Obj).tolerations!;
}

describe('apiserver: default toleration seconds', function () {
  it('adds both NoExecute tolerations for 300 s to a pod that has none', function () {
    expect(defaulted()).to.deep.equal([NOT_READY, UNREACHABLE]);
  });

  it('adds only what the pod does not already tolerate, after its own', function () {
    const own = { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 1 };
    expect(defaulted([own])).to.deep.equal([own, NOT_READY]);
    const noEffect = { key: 'node.kubernetes.io/not-ready', operator: 'Exists' };
    expect(defaulted([noEffect])).to.deep.equal([noEffect, UNREACHABLE]);
    const dedicated = { key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' };
    expect(defaulted([dedicated])).to.deep.equal([dedicated, NOT_READY, UNREACHABLE]);
    // A NoSchedule toleration of the same key is not one for NoExecute.
    const noSchedule = { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoSchedule' };
    expect(defaulted([noSchedule])).to.deep.equal([noSchedule, NOT_READY, UNREACHABLE]);
  });

  it('adds nothing to a pod that tolerates everything, and nothing twice', function () {
    expect(defaulted([{ operator: 'Exists' }])).to.deep.equal([{ operator: 'Exists' }]);
    expect(defaulted([NOT_READY, UNREACHABLE])).to.deep.equal([NOT_READY, UNREACHABLE]);
  });

  it('leaves pod templates alone', function () {
    const deployment: Obj = { spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'x:1' }] } } } };
    STRATEGIES.Deployment!.defaults!(deployment);
    expect(((deployment.spec as Obj).template as Obj).spec).to.not.have.property('tolerations');
  });

  it('is applied to pods the registry creates', async function () {
    const { store, close } = await openSingleStore();
    try {
      const registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
      await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
      const created = await registry.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
      expect((created.spec as Obj).tolerations).to.deep.equal([NOT_READY, UNREACHABLE]);
    } finally {
      await close();
    }
  });
});
