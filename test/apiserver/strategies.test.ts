import { expect } from 'chai';
import { STRATEGIES } from '../../services/apiserver/strategies.js';
import { assign, allocationKeys, parseCidr, type AllocatorConfig } from '../../services/apiserver/allocator.js';
import type { Json } from '../../services/apiserver/schema.js';

type Obj = Record<string, Json>;
const clone = <T>(value: T): T => structuredClone(value);
const paths = (errors: ReadonlyArray<{ path: string }>): string[] => errors.map((error) => error.path);

describe('apiserver: kind strategies (defaults, validation, immutable fields)', function () {
  it('defaults pods as Kubernetes does', function () {
    const pod: Obj = { spec: { containers: [{ name: 'a', image: 'nginx' }, { name: 'b', image: 'nginx:1.25', ports: [{ containerPort: 80 }], readinessProbe: { tcpSocket: { port: 80 } } }] } };
    STRATEGIES.Pod!.defaults!(pod);
    const spec = pod.spec as Obj;
    expect([spec.restartPolicy, spec.terminationGracePeriodSeconds, spec.dnsPolicy, spec.schedulerName]).to.deep.equal(['Always', 30, 'ClusterFirst', 'default-scheduler']);
    const [a, b] = spec.containers as Obj[];
    expect(a!.imagePullPolicy).to.equal('Always'); // no tag means latest
    expect(b!.imagePullPolicy).to.equal('IfNotPresent');
    expect((b!.ports as Obj[])[0]!.protocol).to.equal('TCP');
    expect(b!.readinessProbe).to.deep.equal({ tcpSocket: { port: 80 }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 });
  });

  it('validates pods field by field', function () {
    const pod: Obj = {
      spec: {
        containers: [
          { name: 'web', image: 'nginx', ports: [{ containerPort: 70000, protocol: 'HTTP' }], volumeMounts: [{ name: 'missing', mountPath: '/x' }], resources: { requests: { cpu: '2' }, limits: { cpu: '500m' } } },
          { name: 'web', image: '' },
        ],
        volumes: [{ name: 'v', emptyDir: {}, hostPath: { path: '/' } }],
        restartPolicy: 'Sometimes',
      },
    };
    const errors = STRATEGIES.Pod!.validate!(pod);
    expect(paths(errors)).to.deep.equal([
      'spec.containers[0].ports[0].containerPort',
      'spec.containers[0].ports[0].protocol',
      'spec.containers[0].volumeMounts[0].name',
      'spec.containers[0].resources.requests["cpu"]',
      'spec.containers[1].name',
      'spec.containers[1].image',
      'spec.volumes[0]',
      'spec.restartPolicy',
    ]);
    expect(errors[3]!.message).to.equal('Invalid value: "2": must be less than or equal to cpu limit of 500m');
    expect(errors[7]!.message).to.equal('Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"');
    expect(paths(STRATEGIES.Pod!.validate!({ spec: { containers: [] } }))).to.deep.equal(['spec.containers']);
  });

  it('lets a pod update change only images, deadlines, tolerations and an unset nodeName', function () {
    const current: Obj = { spec: { containers: [{ name: 'c', image: 'a:1' }], restartPolicy: 'Always' } };
    const ok = clone(current);
    ((ok.spec as Obj).containers as Obj[])[0]!.image = 'a:2';
    (ok.spec as Obj).nodeName = 'node-1';
    expect(STRATEGIES.Pod!.validateUpdate!(ok, current)).to.deep.equal([]);
    const bad = clone(current);
    (bad.spec as Obj).restartPolicy = 'Never';
    expect(paths(STRATEGIES.Pod!.validateUpdate!(bad, current))).to.deep.equal(['spec']);
    const bound: Obj = { spec: { ...(current.spec as Obj), nodeName: 'node-1' } };
    const moved = clone(bound);
    (moved.spec as Obj).nodeName = 'node-2';
    expect(paths(STRATEGIES.Pod!.validateUpdate!(moved, bound))).to.deep.equal(['spec']);
  });

  it('defaults and validates workloads: the selector must select the template and cannot change', function () {
    const deployment: Obj = { spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'x:1' }] } } } };
    STRATEGIES.Deployment!.defaults!(deployment);
    const spec = deployment.spec as Obj;
    expect([spec.replicas, spec.strategy, spec.revisionHistoryLimit, spec.progressDeadlineSeconds]).to.deep.equal([1, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } }, 10, 600]);
    expect(((spec.template as Obj).spec as Obj).restartPolicy).to.equal('Always');
    expect(STRATEGIES.Deployment!.validate!(deployment)).to.deep.equal([]);
    const mismatched = clone(deployment);
    ((mismatched.spec as Obj).selector as Obj).matchLabels = { app: 'db' };
    expect(STRATEGIES.Deployment!.validate!(mismatched)).to.deep.equal([{ path: 'spec.template.metadata.labels', message: '`selector` does not match template `labels`' }]);
    expect(paths(STRATEGIES.Deployment!.validateUpdate!(mismatched, deployment))).to.deep.equal(['spec.selector']);
    const job: Obj = { spec: { selector: { matchLabels: { j: '1' } }, template: { metadata: { labels: { j: '1' } }, spec: { containers: [{ name: 'c', image: 'x' }], restartPolicy: 'Always' } } } };
    expect(paths(STRATEGIES.Job!.validate!(job))).to.deep.equal(['spec.template.spec.restartPolicy']);
  });

  it('defaults and validates services', function () {
    const service: Obj = { spec: { ports: [{ port: 80 }, { port: 443, targetPort: 'https' }] } };
    STRATEGIES.Service!.defaults!(service);
    const spec = service.spec as Obj;
    expect([spec.type, spec.sessionAffinity]).to.deep.equal(['ClusterIP', 'None']);
    expect(spec.ports).to.deep.equal([{ port: 80, protocol: 'TCP', targetPort: 80 }, { port: 443, targetPort: 'https', protocol: 'TCP' }]);
    expect(paths(STRATEGIES.Service!.validate!(service))).to.deep.equal(['spec.ports[0].name', 'spec.ports[1].name']);
    expect(paths(STRATEGIES.Service!.validate!({ spec: { type: 'Magic', ports: [] } }))).to.deep.equal(['spec.type', 'spec.ports']);
    expect(STRATEGIES.Service!.validate!({ spec: { clusterIP: 'None', ports: [] } })).to.deep.equal([]);
    expect(paths(STRATEGIES.Service!.validateUpdate!({ spec: { clusterIP: '10.96.0.9' } }, { spec: { clusterIP: '10.96.0.8' } }))).to.deep.equal(['spec.clusterIP']);
    expect(paths(STRATEGIES.Secret!.validate!({ data: { good: 'aGk=', bad: 'not base64!' } }))).to.deep.equal(['data["bad"]']);
  });
});

describe('apiserver: cluster IP and node port allocation', function () {
  const config: AllocatorConfig = { serviceCidr: '10.96.0.0/30', nodePortRange: [30000, 30001] };

  it('starts looking where it is told (a random start, from the registry) and wraps around the range', function () {
    const wide: AllocatorConfig = { serviceCidr: '10.96.0.0/24', nodePortRange: [30000, 30099] };
    const service: Obj = { spec: { type: 'NodePort', ports: [{ port: 80, protocol: 'TCP' }] } };
    expect(assign(service, wide, new Set(['/registry/ranges/serviceips/10.96.0.128']), undefined, 0.5)).to.deep.equal([]);
    // 254 usable addresses: half way is the 128th after the network address, taken; the next is free.
    expect(allocationKeys(service)).to.deep.equal(['/registry/ranges/serviceips/10.96.0.129', '/registry/ranges/servicenodeports/TCP/30050']);
    const last: Obj = { spec: { ports: [] } };
    const allButFirst = new Set(Array.from({ length: 253 }, (_, index) => `/registry/ranges/serviceips/10.96.0.${index + 2}`));
    expect(assign(last, wide, allButFirst, undefined, 0.99)).to.deep.equal([]);
    expect((last.spec as Obj).clusterIP, 'wrapped to the start').to.equal('10.96.0.1');
  });

  it('takes the lowest free values, keeps them on update, and refuses taken or out-of-range ones', function () {
    expect(parseCidr('10.96.0.0/12')).to.deep.equal({ base: 10 * 2 ** 24 + 96 * 2 ** 16, size: 2 ** 20 });
    expect(() => parseCidr('10.96.0.0')).to.throw(/not an IPv4 CIDR/);
    const service: Obj = { spec: { type: 'NodePort', ports: [{ port: 80, protocol: 'TCP' }] } };
    const used = new Set(['/registry/ranges/serviceips/10.96.0.1', '/registry/ranges/servicenodeports/TCP/30000']);
    expect(assign(service, config, used)).to.deep.equal([]);
    expect((service.spec as Obj).clusterIP).to.equal('10.96.0.2');
    expect(((service.spec as Obj).ports as Obj[])[0]!.nodePort).to.equal(30001);
    expect(allocationKeys(service)).to.deep.equal(['/registry/ranges/serviceips/10.96.0.2', '/registry/ranges/servicenodeports/TCP/30001']);
    // An update that omits them keeps them.
    const update: Obj = { spec: { type: 'NodePort', ports: [{ port: 80, protocol: 'TCP' }] } };
    const all = new Set([...used, ...allocationKeys(service)]);
    for (const key of allocationKeys(service)) all.delete(key);
    expect(assign(update, config, all, service)).to.deep.equal([]);
    expect(allocationKeys(update)).to.deep.equal(allocationKeys(service));
    // Full range; taken; out of range.
    const full = new Set([...used, ...allocationKeys(service)]);
    expect(assign({ spec: { ports: [{ port: 1 }] } }, config, full)[0]!.message).to.match(/no cluster IP left in 10.96.0.0\/30/);
    expect(assign({ spec: { clusterIP: '10.96.0.1', ports: [] } }, config, full)[0]!.message).to.equal('Invalid value: "10.96.0.1": provided IP is already allocated');
    expect(assign({ spec: { clusterIP: '192.168.1.1', ports: [] } }, config, full)[0]!.message).to.match(/must be an address in the service range/);
    expect(assign({ spec: { clusterIP: 'None', type: 'NodePort', ports: [{ port: 1, nodePort: 40000 }] } }, config, full)[0]!.message).to.match(/The range of valid ports is 30000-30001/);
    const headless: Obj = { spec: { clusterIP: 'None', ports: [] } };
    expect(assign(headless, config, full)).to.deep.equal([]);
    expect(allocationKeys(headless)).to.deep.equal([]);
  });
});
