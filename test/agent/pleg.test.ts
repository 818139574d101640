// The relist (pleg.ts): each relist reports the pods whose sandboxes or
// containers changed since the last one, with their state now, so a pod
// worker can tell a state it already saw from a new one.

import { expect } from 'chai';
import { ContainerConfig, PodSandboxConfig } from '../../proto/gen/cri/v1/api.js';
import { LifecycleEvents } from '../../services/agent/pleg.js';
import { LABEL_POD_UID } from '../../services/agent/pod-actions.js';
import { FakeCri } from './fake-cri.js';

describe('agent: relist (pod lifecycle events)', () => {
  it('reports each changed pod once per change, with its state now, and an empty state once it is gone', async () => {
    const cri = new FakeCri(() => 0);
    const changes: Array<[string, string]> = [];
    const events = new LifecycleEvents({ runtime: cri, onChange: (uid, fingerprint) => changes.push([uid, fingerprint]) });
    const sandbox = await cri.runPodSandbox(PodSandboxConfig.fromPartial({ metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 0 }, labels: { [LABEL_POD_UID]: 'u1' } }));
    await events.relist();
    expect(changes.map(([uid]) => uid)).to.deep.equal(['u1']);
    const sandboxOnly = changes[0]![1];
    expect(sandboxOnly).to.contain(sandbox);

    await events.relist();
    expect(changes).to.have.length(1); // nothing changed

    cri.addImage('app:1');
    const container = await cri.createContainer(sandbox, ContainerConfig.fromPartial({ metadata: { name: 'app', attempt: 0 }, image: { image: 'app:1' }, labels: { [LABEL_POD_UID]: 'u1' } }), PodSandboxConfig.fromPartial({}));
    await cri.startContainer(container);
    await events.relist();
    expect(changes).to.have.length(2);
    expect(changes[1]![1]).to.contain(container).and.not.equal(sandboxOnly);

    await cri.removePodSandbox(sandbox);
    await events.relist();
    expect(changes[2]).to.deep.equal(['u1', '']);
  });
});
