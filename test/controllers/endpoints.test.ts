// The Endpoints controller's pure decision: which pods, which ports, ready
// or not, packed into subsets in a stable order.

import { expect } from 'chai';
import type { Pod, Service } from '../../proto/gen/resources/v1/core.js';
import { desiredEndpoints, endpointsMatch } from '../../services/controllers/endpoints/reconcile.js';

const service: Service = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop', labels: { tier: 'front' } },
  spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }, { name: 'metrics', port: 9090, targetPort: 9100 }] },
};

function pod(name: string, ip: string, options: { ready?: boolean; labels?: Record<string, string>; namespace?: string; httpPort?: number; terminating?: boolean; node?: string } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: options.namespace ?? 'shop', uid: `uid-${name}`, labels: options.labels ?? { app: 'web' }, ...(options.terminating ? { deletionTimestamp: '2026-11-25T12:00:00Z' } : {}) },
    spec: { nodeName: options.node ?? 'n1', containers: [{ name: 'c', image: 'i', ports: options.httpPort === undefined ? [] : [{ name: 'http', containerPort: options.httpPort }] }] },
    status: { podIP: ip, conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }] },
  };
}

describe('controllers: endpoints', function () {
  it('lists selected pods by readiness, resolving named target ports per pod, in a stable order', function () {
    const pods = [
      pod('b', '10.0.0.12', { httpPort: 8080 }),
      pod('a', '10.0.0.9', { httpPort: 8080 }),
      pod('slow', '10.0.0.20', { httpPort: 8080, ready: false }),
      pod('other-port', '10.0.0.30', { httpPort: 8081, node: 'n2' }),
      pod('unselected', '10.0.0.40', { httpPort: 8080, labels: { app: 'db' } }),
      pod('elsewhere', '10.0.0.50', { httpPort: 8080, namespace: 'other' }),
      pod('going', '10.0.0.60', { httpPort: 8080, terminating: true }),
      pod('no-ip', '', { httpPort: 8080 }),
    ];
    const endpoints = desiredEndpoints(service, pods)!;
    expect(endpoints.metadata).to.deep.equal({ name: 'web', namespace: 'shop', labels: { tier: 'front' } });
    const address = (name: string, ip: string, node = 'n1'): object => ({ ip, nodeName: node, targetRef: { kind: 'Pod', namespace: 'shop', name, uid: `uid-${name}` } });
    expect(endpoints.subsets).to.deep.equal([
      {
        addresses: [address('a', '10.0.0.9'), address('b', '10.0.0.12')],
        notReadyAddresses: [address('slow', '10.0.0.20')],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'metrics', port: 9100, protocol: 'TCP' }],
      },
      { addresses: [address('other-port', '10.0.0.30', 'n2')], ports: [{ name: 'http', port: 8081, protocol: 'TCP' }, { name: 'metrics', port: 9100, protocol: 'TCP' }] },
    ]);
    // The same world in another order is the same Endpoints: nothing to write.
    expect(endpointsMatch(endpoints, desiredEndpoints(service, [...pods].reverse())!)).to.equal(true);
    expect(endpointsMatch(endpoints, desiredEndpoints(service, pods.slice(1))!)).to.equal(false);
  });

  it('publishes not-ready pods when asked, names StatefulSet hostnames, and leaves selectorless Services alone', function () {
    const headless: Service = { ...service, spec: { ...service.spec, publishNotReadyAddresses: true, ports: [{ port: 80 }] } };
    const member = pod('web-0', '10.0.1.1', { ready: false });
    member.spec = { ...member.spec, hostname: 'web-0', subdomain: 'web' };
    expect(desiredEndpoints(headless, [member])!.subsets).to.deep.equal([
      { addresses: [{ ip: '10.0.1.1', hostname: 'web-0', nodeName: 'n1', targetRef: { kind: 'Pod', namespace: 'shop', name: 'web-0', uid: 'uid-web-0' } }], ports: [{ port: 80, protocol: 'TCP' }] },
    ]);
    expect(desiredEndpoints({ ...service, spec: { ports: [{ port: 80 }] } }, [member])).to.equal(undefined);
    // A pod without the named port is not an endpoint of that port; with no port left, not at all.
    expect(desiredEndpoints({ ...service, spec: { ...service.spec, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } }, [pod('portless', '10.0.0.1')])!.subsets).to.deep.equal([]);
  });
});
