// The proxy's model: which Services and Endpoints become which rules
// (desiredRules), and what changed between two models (diffRules).

import { expect } from 'chai';
import type { EndpointPort, EndpointSubset, Endpoints, Service, ServiceSpec } from '../../proto/gen/resources/v1/core.js';
import { desiredRules, diffRules, isEmptyChange, sameRule, type ProxyRules, type ServicePortRule } from '../../services/proxy/rules.js';

function service(namespace: string, name: string, spec: ServiceSpec, ingressIPs: readonly string[] = []): Service {
  return {
    metadata: { namespace, name },
    spec,
    ...(ingressIPs.length === 0 ? {} : { status: { loadBalancer: { ingress: ingressIPs.map((ip) => ({ ip })) } } }),
  };
}

function endpoints(namespace: string, name: string, subsets: EndpointSubset[]): Endpoints {
  return { metadata: { namespace, name }, subsets };
}

function subset(ready: readonly string[], ports: EndpointPort[], notReady: readonly string[] = []): EndpointSubset {
  return { addresses: ready.map((ip) => ({ ip })), notReadyAddresses: notReady.map((ip) => ({ ip })), ports };
}

function only(rules: ProxyRules): ServicePortRule {
  expect(rules.services).to.have.length(1);
  return rules.services[0]!;
}

describe('proxy: rules from Services and Endpoints', () => {
  it('a ClusterIP Service: one rule per port, ready addresses only, sorted by IP then port', () => {
    const rules = desiredRules(
      [service('default', 'web', { clusterIP: '10.96.0.10', ports: [{ port: 80, targetPort: 8080 }] })],
      [endpoints('default', 'web', [subset(['10.244.1.9', '10.244.0.5'], [{ port: 8080 }], ['10.244.2.2']), subset(['10.244.0.12'], [{ port: 8080 }])])],
    );
    expect(only(rules)).to.deep.equal({
      id: 'default/web:',
      namespace: 'default',
      name: 'web',
      portName: '',
      protocol: 'TCP',
      clusterIP: '10.96.0.10',
      port: 80,
      externalIPs: [],
      backends: [
        { ip: '10.244.0.5', port: 8080 },
        { ip: '10.244.0.12', port: 8080 },
        { ip: '10.244.1.9', port: 8080 },
      ],
    });
  });

  it('matches endpoint ports by name and protocol: dns over UDP and TCP are two rules with their own ports', () => {
    const rules = desiredRules(
      [
        service('kube-system', 'dns', {
          clusterIP: '10.96.0.53',
          ports: [
            { name: 'dns', protocol: 'UDP', port: 53 },
            { name: 'dns-tcp', protocol: 'TCP', port: 53 },
            { name: 'metrics', port: 9153 },
          ],
        }),
      ],
      [
        endpoints('kube-system', 'dns', [
          subset(['10.244.0.3'], [
            { name: 'dns', protocol: 'UDP', port: 5353 },
            { name: 'dns-tcp', protocol: 'TCP', port: 5354 },
            // Same name, other protocol: must not be taken for the UDP port.
            { name: 'dns', protocol: 'TCP', port: 9999 },
          ]),
        ]),
      ],
    );
    expect(rules.services.map((rule) => [rule.id, rule.protocol, rule.port, rule.backends])).to.deep.equal([
      ['kube-system/dns:dns', 'UDP', 53, [{ ip: '10.244.0.3', port: 5353 }]],
      ['kube-system/dns:dns-tcp', 'TCP', 53, [{ ip: '10.244.0.3', port: 5354 }]],
      // No endpoint port named "metrics": the rule stays, with no backends (traffic is rejected).
      ['kube-system/dns:metrics', 'TCP', 9153, []],
    ]);
  });

  it('a Service without Endpoints, or whose addresses are all not ready, has a rule with no backends', () => {
    const rules = desiredRules(
      [service('a', 'none', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }), service('a', 'unready', { clusterIP: '10.96.0.2', ports: [{ port: 80 }] })],
      [endpoints('a', 'unready', [subset([], [{ port: 80 }], ['10.244.0.1'])])],
    );
    expect(rules.services.map((rule) => [rule.id, rule.backends.length])).to.deep.equal([
      ['a/none:', 0],
      ['a/unready:', 0],
    ]);
  });

  it('headless Services get no rule, unless they have a node port or external IPs; ExternalName gets none', () => {
    const rules = desiredRules(
      [
        service('a', 'headless', { clusterIP: 'None', ports: [{ port: 80 }] }),
        service('a', 'headless-external', { clusterIP: 'None', externalIPs: ['203.0.113.9'], ports: [{ port: 80 }] }),
        service('a', 'headless-nodeport', { clusterIP: 'None', type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }),
        service('a', 'empty-ip', { clusterIP: '', ports: [{ port: 80 }] }),
        service('a', 'alias', { type: 'ExternalName', externalName: 'example.com', clusterIP: '10.96.0.99', ports: [{ port: 80 }] }),
      ],
      [endpoints('a', 'headless', [subset(['10.244.0.1'], [{ port: 80 }])])],
    );
    expect(rules.services.map((rule) => rule.id)).to.deep.equal(['a/headless-external:', 'a/headless-nodeport:']);
    expect(rules.services.every((rule) => rule.clusterIP === undefined)).to.equal(true);
    expect(rules.services[0]!.externalIPs).to.deep.equal(['203.0.113.9']);
    expect(rules.services[1]!.nodePort).to.equal(30080);
  });

  it('LoadBalancer ingress IPs join the external IPs, sorted numerically and without duplicates; hostnames are ignored', () => {
    const rule = only(
      desiredRules(
        [
          service(
            'a',
            'lb',
            { type: 'LoadBalancer', clusterIP: '10.96.0.7', externalIPs: ['203.0.113.10', '203.0.113.9'], ports: [{ port: 443, nodePort: 31443 }] },
            ['203.0.113.9', '198.51.100.2'],
          ),
        ],
        [],
      ),
    );
    expect(rule.externalIPs).to.deep.equal(['198.51.100.2', '203.0.113.9', '203.0.113.10']);
    expect(rule.nodePort).to.equal(31443);
    const withHostname = only(desiredRules([{ ...service('a', 'lb', { clusterIP: '10.96.0.7', ports: [{ port: 80 }] }), status: { loadBalancer: { ingress: [{ hostname: 'lb.example.com' }] } } }], []));
    expect(withHostname.externalIPs).to.deep.equal([]);
  });

  it('ClientIP affinity: 10800 s unless configured; None: no affinity', () => {
    const rules = desiredRules(
      [
        service('a', 'default-timeout', { clusterIP: '10.96.0.1', sessionAffinity: 'ClientIP', ports: [{ port: 80 }] }),
        service('a', 'configured', { clusterIP: '10.96.0.2', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }, ports: [{ port: 80 }] }),
        service('a', 'none', { clusterIP: '10.96.0.3', sessionAffinity: 'None', ports: [{ port: 80 }] }),
      ],
      [],
    );
    expect(rules.services.map((rule) => [rule.id, rule.sessionAffinity])).to.deep.equal([
      ['a/configured:', { timeoutSeconds: 60 }],
      ['a/default-timeout:', { timeoutSeconds: 10_800 }],
      ['a/none:', undefined],
    ]);
  });

  it('skips ports with an unknown protocol or no port number; duplicate addresses across subsets count once', () => {
    const rule = only(
      desiredRules(
        [service('a', 's', { clusterIP: '10.96.0.1', ports: [{ name: 'x', protocol: 'ICMP', port: 1 }, { name: 'y' }, { name: 'web', port: 80 }] })],
        [endpoints('a', 's', [subset(['10.244.0.1', '10.244.0.1'], [{ name: 'web', port: 80 }]), subset(['10.244.0.1'], [{ name: 'web', port: 80 }])])],
      ),
    );
    expect(rule.id).to.equal('a/s:web');
    expect(rule.backends).to.deep.equal([{ ip: '10.244.0.1', port: 80 }]);
  });

  it('is deterministic: Services, Endpoints and addresses in any order give an equal model, sorted by id', () => {
    const services = [
      service('b', 'two', { clusterIP: '10.96.0.2', externalIPs: ['203.0.113.2', '203.0.113.1'], ports: [{ name: 'p', port: 81 }, { name: 'a', port: 80 }] }),
      service('a', 'one', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }),
    ];
    const all = [
      endpoints('a', 'one', [subset(['10.244.0.9', '10.244.0.10'], [{ port: 80 }])]),
      endpoints('b', 'two', [subset(['10.244.1.2', '10.244.1.1'], [{ name: 'a', port: 8080 }, { name: 'p', port: 8081 }])]),
    ];
    const reversed = all.map((item) => ({ ...item, subsets: item.subsets?.map((part) => ({ ...part, addresses: [...(part.addresses ?? [])].reverse() })) })).reverse();
    const first = desiredRules(services, all);
    const second = desiredRules([...services].reverse(), reversed);
    expect(second).to.deep.equal(first);
    expect(first.services.map((rule) => rule.id)).to.deep.equal(['a/one:', 'b/two:a', 'b/two:p']);
    expect(first.services[0]!.backends.map((backend) => backend.ip)).to.deep.equal(['10.244.0.9', '10.244.0.10']);
    expect(isEmptyChange(diffRules(first, second))).to.equal(true);
  });

  it('orders addresses that are not IPv4 deterministically too, after the IPv4 ones', () => {
    const dual = [service('a', 'one', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] })];
    const ips = ['fd00::2', '10.244.0.2', 'fd00::1', '10.244.0.1'];
    const forward = desiredRules(dual, [endpoints('a', 'one', [subset(ips, [{ port: 80 }])])]);
    const backward = desiredRules(dual, [endpoints('a', 'one', [subset([...ips].reverse(), [{ port: 80 }])])]);
    expect(forward.services[0]!.backends.map((backend) => backend.ip)).to.deep.equal(['10.244.0.1', '10.244.0.2', 'fd00::1', 'fd00::2']);
    expect(isEmptyChange(diffRules(forward, backward))).to.equal(true);
  });
});

describe('proxy: differences between two models', () => {
  const base = (id: string, overrides: Partial<ServicePortRule> = {}): ServicePortRule => ({
    id,
    namespace: id.split('/')[0]!,
    name: id.split('/')[1]!.split(':')[0]!,
    portName: id.split(':')[1]!,
    protocol: 'TCP',
    clusterIP: '10.96.0.1',
    port: 80,
    externalIPs: [],
    backends: [{ ip: '10.244.0.1', port: 8080 }],
    ...overrides,
  });

  it('an unchanged model yields an empty change', () => {
    const rules: ProxyRules = { services: [base('a/x:'), base('b/y:')] };
    const change = diffRules(rules, { services: rules.services.map((rule) => ({ ...rule, backends: rule.backends.map((backend) => ({ ...backend })) })) });
    expect(change).to.deep.equal({ added: [], removed: [], changed: [] });
    expect(isEmptyChange(change)).to.equal(true);
  });

  it('reports added, removed and changed rules', () => {
    const before: ProxyRules = { services: [base('a/gone:'), base('a/kept:'), base('a/moved:')] };
    const moved = base('a/moved:', { backends: [{ ip: '10.244.0.2', port: 8080 }] });
    const after: ProxyRules = { services: [base('a/kept:'), moved, base('a/new:')] };
    const change = diffRules(before, after);
    expect(change.added.map((rule) => rule.id)).to.deep.equal(['a/new:']);
    expect(change.removed.map((rule) => rule.id)).to.deep.equal(['a/gone:']);
    expect(change.changed).to.deep.equal([{ before: base('a/moved:'), after: moved }]);
    expect(isEmptyChange(change)).to.equal(false);
  });

  it('every programmed field counts as a change', () => {
    const rule = base('a/x:', { externalIPs: ['203.0.113.1'], nodePort: 30080, sessionAffinity: { timeoutSeconds: 60 } });
    const variants: Partial<ServicePortRule>[] = [
      { protocol: 'UDP' },
      { clusterIP: '10.96.0.2' },
      { port: 81 },
      { nodePort: 30081 },
      { nodePort: undefined },
      { externalIPs: ['203.0.113.2'] },
      { externalIPs: [] },
      { sessionAffinity: { timeoutSeconds: 61 } },
      { sessionAffinity: undefined },
      { backends: [{ ip: '10.244.0.1', port: 8081 }] },
      { backends: [] },
    ];
    for (const variant of variants) {
      const other = { ...rule, ...variant };
      expect(sameRule(rule, other), JSON.stringify(variant)).to.equal(false);
      expect(diffRules({ services: [rule] }, { services: [other] }).changed, JSON.stringify(variant)).to.have.length(1);
    }
    expect(sameRule(rule, { ...rule })).to.equal(true);
  });

  it('from and to an empty model: everything added, then everything removed', () => {
    const rules: ProxyRules = { services: [base('a/x:'), base('a/y:')] };
    expect(diffRules({ services: [] }, rules)).to.deep.equal({ added: rules.services, removed: [], changed: [] });
    expect(diffRules(rules, { services: [] })).to.deep.equal({ added: [], removed: rules.services, changed: [] });
  });
});
