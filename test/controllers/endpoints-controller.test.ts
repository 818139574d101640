// The Endpoints controller running in a master: a Service's Endpoints follow
// its pods' addresses and readiness, and go with the Service.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

describe('controllers: the Endpoints controller in a master', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: ResourceClient;

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-endpoints-')), controllers: true });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  /** A pod as its node reports it: bound, with an IP, ready or not. */
  const runningPod = async (name: string, ip: string, ready: boolean): Promise<void> => {
    const created = await client.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: 'api' } }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'busybox', ports: [{ name: 'http', containerPort: 8080 }] }] } });
    await client.updateStatus('Pod', { ...created, status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } });
  };

  const endpoints = (): Promise<KubeObject | undefined> => client.get('Endpoints', 'default', 'api').catch(() => undefined);

  it('lists ready and not-ready addresses with resolved ports, follows readiness, and goes with the Service', async function () {
    await client.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'default' }, spec: { selector: { app: 'api' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] } });
    await runningPod('api-1', '10.1.0.1', true);
    await runningPod('api-2', '10.1.0.2', false);
    const ips = (object: KubeObject | undefined, field: 'addresses' | 'notReadyAddresses'): string[] => ((object?.subsets as Array<Record<string, Array<{ ip: string }>>> | undefined) ?? []).flatMap((subset) => (subset[field] ?? []).map((address) => address.ip));
    const first = await waitFor('both pods in the Endpoints', async () => {
      const found = await endpoints();
      return ips(found, 'addresses').length === 1 && ips(found, 'notReadyAddresses').length === 1 ? found : undefined;
    }, 60_000, 50);
    expect(ips(first, 'addresses')).to.deep.equal(['10.1.0.1']);
    expect(ips(first, 'notReadyAddresses')).to.deep.equal(['10.1.0.2']);
    expect((first!.subsets as Array<{ ports: unknown }>)[0]!.ports).to.deep.equal([{ name: 'web', port: 8080, protocol: 'TCP' }]);
    // api-2 becomes ready.
    const api2 = await client.get('Pod', 'default', 'api-2');
    await client.updateStatus('Pod', { ...api2, status: { ...(api2.status as object), conditions: [{ type: 'Ready', status: 'True' }] } });
    await waitFor('both ready', async () => (ips(await endpoints(), 'addresses').length === 2 ? true : undefined), 60_000, 50);
    await client.delete('Service', 'default', 'api');
    await waitFor('the Endpoints to go', async () => ((await endpoints()) === undefined ? true : undefined), 60_000, 50);
  });
});
