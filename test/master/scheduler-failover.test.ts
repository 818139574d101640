// Every master hosts a scheduler candidate; the Lease holder's binds pods.
// The Raft leader's candidate is preferred: it holds the Lease, and when
// leadership moves the next leader's candidate takes it over from the
// (healthy, renewing) old holder at once. kill -9 of the master hosting the
// active scheduler: another master's candidate takes over and binds the
// next pod.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pod } from '../../proto/gen/resources/v1/core.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

describe('mast master: hosted scheduler candidates fail over', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;

  before(async function () {
    cluster = await LocalCluster.start({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-sched-failover-')), scheduler: true });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    for (const name of ['n1', 'n2']) {
      const created = await client.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
      const resources = { cpu: '4', memory: '8Gi', pods: '110' };
      await client.updateStatus('Node', { ...created, status: { capacity: resources, allocatable: resources, conditions: [{ type: 'Ready', status: 'True' }] } });
    }
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  const bindsPod = async (name: string): Promise<string> => {
    await waitFor(`pod ${name} to be created`, async () => {
      try {
        await client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } as KubeObject);
        return true;
      } catch (error) {
        if ((error as { code?: number }).code === 6) return true; // created by an earlier attempt
        return undefined;
      }
    }, 60_000, 20);
    return waitFor(`pod ${name} to be bound`, async () => {
      try {
        const found = (await client.get('Pod', 'default', name)) as Pod;
        return (found.spec?.nodeName ?? '') === '' ? undefined : found.spec!.nodeName!;
      } catch {
        return undefined;
      }
    }, 60_000, 20);
  };

  const holder = async (): Promise<string> => {
    const lease = await client.get('Lease', 'kube-system', 'kube-scheduler');
    return String((lease.spec as { holderIdentity?: string }).holderIdentity ?? '');
  };

  it('the Raft leader’s candidate holds the Lease, and the next leader’s takes it over when leadership moves', async function () {
    const hostOfHolder = async (): Promise<string> => (await holder()).split('_')[0]!;
    const leader = await cluster.waitForLeader();
    await waitFor(`the Lease to be held by ${leader.name}, the Raft leader`, async () => ((await hostOfHolder()) === leader.name ? true : undefined), 60_000, 50);
    const transitions = async (): Promise<number> => Number(((await client.get('Lease', 'kube-system', 'kube-scheduler')).spec as { leaseTransitions?: number }).leaseTransitions ?? 0);
    const transitionsBefore = await transitions();

    const target = cluster.running().find((member) => member.name !== leader.name)!;
    const connection = cluster.connection(target.name);
    const leaderConnection = cluster.connection(leader.name);
    try {
      const targetId = String((await connection.status()).header?.memberId);
      await leaderConnection.moveLeader(targetId);
    } finally {
      connection.close();
      leaderConnection.close();
    }
    expect((await cluster.waitForLeader()).name).to.equal(target.name);
    // The old holder is alive and renews every second, so its Lease never expires: only the preference moves it.
    await waitFor(`the Lease to move to ${target.name}`, async () => ((await hostOfHolder()) === target.name ? true : undefined), 60_000, 50);
    expect(await transitions()).to.equal(transitionsBefore + 1);
    expect(await bindsPod('after-move')).to.be.oneOf(['n1', 'n2']);
  });

  it('binds with one master’s scheduler, and with another’s after that master is killed', async function () {
    expect(await bindsPod('before')).to.be.oneOf(['n1', 'n2']);
    const first = await holder();
    const victim = first.split('_')[0]!;
    expect(cluster.members.map((member) => member.name)).to.include(victim);
    await cluster.stopMember(victim, 'SIGKILL');
    expect(await bindsPod('after')).to.be.oneOf(['n1', 'n2']);
    const second = await holder();
    expect(second.split('_')[0]).to.not.equal(victim);
    const lease = await client.get('Lease', 'kube-system', 'kube-scheduler');
    expect((lease.spec as { leaseTransitions?: number }).leaseTransitions).to.be.greaterThan(0);
  });
});
