// A container's environment as the kubelet builds it: Service link
// variables (own namespace and the master service, links on or off), envFrom
// with prefixes, $(VAR) expansion with $$ escapes, every valueFrom kind,
// and the errors a pod gets for a missing ConfigMap, Secret or key.

import { expect } from 'chai';
import type { ConfigMap, Container, Pod, Secret, Service, ServicePort } from '../../proto/gen/resources/v1/core.js';
import { containerEnvironment, expand, expandCommandAndArgs, expandSubPathExpr, mappingFor, resourceFieldValue, serviceEnvironment, type EnvSources } from '../../services/agent/env.js';
import { PodConfigError } from '../../services/agent/pod-environment-types.js';

const service = (namespace: string, name: string, clusterIP: string, ports: ServicePort[]): Service => ({ metadata: { namespace, name }, spec: { clusterIP, ports } });
const base64 = (text: string): string => Buffer.from(text).toString('base64');

const pod = (overrides: Partial<NonNullable<Pod['spec']>> = {}): Pod => ({
  metadata: { name: 'web-0', namespace: 'shop', uid: 'uid-1', labels: { app: 'web', tier: 'front' }, annotations: { note: 'hi' } },
  spec: { nodeName: 'n1', serviceAccountName: 'builder', containers: [{ name: 'c' }], ...overrides },
});

const sources = (extra: Partial<EnvSources> = {}): EnvSources => ({ configMaps: new Map(), secrets: new Map(), services: [], podIP: '10.244.1.7', hostIP: '192.168.1.10', ...extra });

const asRecord = (env: ReadonlyArray<{ name: string; value: string }>): Record<string, string> => Object.fromEntries(env.map((variable) => [variable.name, variable.value]));

function configError(run: () => unknown): PodConfigError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(PodConfigError);
    expect((error as PodConfigError).reason).to.equal('CreateContainerConfigError');
    return error as PodConfigError;
  }
  throw new Error('expected a PodConfigError');
}

describe('agent: container environment (env.ts)', function () {
  describe('service links', function () {
    const services = [
      service('shop', 'redis-primary', '10.96.0.11', [{ name: 'redis', port: 6379, protocol: 'TCP' }, { name: 'metrics', port: 9121, protocol: 'UDP' }]),
      service('shop', 'headless', 'None', [{ port: 80 }]),
      service('shop', 'external', '', [{ port: 80 }]),
      service('other', 'elsewhere', '10.96.0.99', [{ port: 80 }]),
      service('default', 'kubernetes', '10.96.0.1', [{ name: 'https', port: 443, protocol: 'TCP' }]),
    ];

    it('gives Docker-link variables for Services with a cluster IP in the pod namespace, plus the master service', function () {
      const env = serviceEnvironment(services, 'shop', true);
      expect(Object.fromEntries(env)).to.deep.equal({
        KUBERNETES_SERVICE_HOST: '10.96.0.1',
        KUBERNETES_SERVICE_PORT: '443',
        KUBERNETES_SERVICE_PORT_HTTPS: '443',
        KUBERNETES_PORT: 'tcp://10.96.0.1:443',
        KUBERNETES_PORT_443_TCP: 'tcp://10.96.0.1:443',
        KUBERNETES_PORT_443_TCP_PROTO: 'tcp',
        KUBERNETES_PORT_443_TCP_PORT: '443',
        KUBERNETES_PORT_443_TCP_ADDR: '10.96.0.1',
        REDIS_PRIMARY_SERVICE_HOST: '10.96.0.11',
        REDIS_PRIMARY_SERVICE_PORT: '6379',
        REDIS_PRIMARY_SERVICE_PORT_REDIS: '6379',
        REDIS_PRIMARY_SERVICE_PORT_METRICS: '9121',
        REDIS_PRIMARY_PORT: 'tcp://10.96.0.11:6379',
        REDIS_PRIMARY_PORT_6379_TCP: 'tcp://10.96.0.11:6379',
        REDIS_PRIMARY_PORT_6379_TCP_PROTO: 'tcp',
        REDIS_PRIMARY_PORT_6379_TCP_PORT: '6379',
        REDIS_PRIMARY_PORT_6379_TCP_ADDR: '10.96.0.11',
        REDIS_PRIMARY_PORT_9121_UDP: 'udp://10.96.0.11:9121',
        REDIS_PRIMARY_PORT_9121_UDP_PROTO: 'udp',
        REDIS_PRIMARY_PORT_9121_UDP_PORT: '9121',
        REDIS_PRIMARY_PORT_9121_UDP_ADDR: '10.96.0.11',
      });
    });

    it('keeps only the master service when enableServiceLinks is false', function () {
      const env = containerEnvironment(pod({ enableServiceLinks: false }), { name: 'c' }, sources({ services }));
      expect(env.env.map((variable) => variable.name).every((name) => name.startsWith('KUBERNETES_'))).to.equal(true);
      expect(asRecord(env.env)).to.include({ KUBERNETES_SERVICE_HOST: '10.96.0.1' });
    });

    it('lets a Service named kubernetes in the pod namespace win over the master one', function () {
      const own = service('shop', 'kubernetes', '10.96.0.50', [{ port: 8080 }]);
      expect(serviceEnvironment([...services, own], 'shop', true).get('KUBERNETES_SERVICE_HOST')).to.equal('10.96.0.50');
      expect(serviceEnvironment([own, ...services], 'shop', true).get('KUBERNETES_SERVICE_HOST')).to.equal('10.96.0.50');
    });

    it('does not override a variable the container sets itself', function () {
      const env = containerEnvironment(pod(), { name: 'c', env: [{ name: 'KUBERNETES_SERVICE_HOST', value: 'mine' }] }, sources({ services }));
      expect(env.env.filter((variable) => variable.name === 'KUBERNETES_SERVICE_HOST')).to.deep.equal([{ name: 'KUBERNETES_SERVICE_HOST', value: 'mine' }]);
    });
  });

  describe('$(VAR) expansion', function () {
    const mapping = mappingFor(new Map([['A', 'alpha'], ['EMPTY', '']]));
    const cases: Array<[string, string]> = [
      ['$(A)', 'alpha'],
      ['x-$(A)-y', 'x-alpha-y'],
      ['$$(A)', '$(A)'],
      ['$$$(A)', '$alpha'],
      ['$(MISSING)', '$(MISSING)'],
      ['$(EMPTY)!', '!'],
      ['$(A', '$(A'],
      ['$A', '$A'],
      ['end$', 'end$'],
      ['$()', '$()'],
      ['$(A)$(A)', 'alphaalpha'],
    ];
    for (const [input, output] of cases) it(`${JSON.stringify(input)} → ${JSON.stringify(output)}`, () => expect(expand(input, mapping)).to.equal(output));

    it('expands env values from earlier variables, envFrom and Service variables, not later ones', function () {
      const configMaps = new Map<string, ConfigMap>([['cfg', { data: { HOST: 'db' } }]]);
      const container: Container = {
        name: 'c',
        envFrom: [{ configMapRef: { name: 'cfg' } }],
        env: [
          { name: 'URL', value: 'postgres://$(HOST):$(PORT)/$(LATER)' },
          { name: 'PORT', value: '5432' },
          { name: 'AGAIN', value: '$(PORT) $(REDIS_SERVICE_HOST) $$(HOST)' },
          { name: 'LATER', value: 'x' },
        ],
      };
      const env = asRecord(containerEnvironment(pod(), container, sources({ configMaps, services: [service('shop', 'redis', '10.96.0.12', [{ port: 6379 }])] })).env);
      expect(env.URL).to.equal('postgres://db:$(PORT)/$(LATER)');
      expect(env.AGAIN).to.equal('5432 10.96.0.12 $(HOST)');
    });

    it('expands command and args from the final environment', function () {
      const expanded = expandCommandAndArgs({ command: ['/bin/$(BIN)'], args: ['--port=$(PORT)', '$$(PORT)', '$(NOPE)'] }, [{ name: 'BIN', value: 'server' }, { name: 'PORT', value: '80' }]);
      expect(expanded).to.deep.equal({ command: ['/bin/server'], args: ['--port=80', '$(PORT)', '$(NOPE)'] });
    });

    it('expands subPathExpr and refuses one naming an unset variable', function () {
      expect(expandSubPathExpr({ subPathExpr: 'logs/$(POD_NAME)' }, [{ name: 'POD_NAME', value: 'web-0' }])).to.equal('logs/web-0');
      expect(configError(() => expandSubPathExpr({ subPathExpr: '$(A)/$(B)' }, [{ name: 'A', value: '' }])).message).to.equal('missing value for A, B');
    });
  });

  describe('envFrom and valueFrom', function () {
    const configMaps = new Map<string, ConfigMap>([['cfg', { data: { MODE: 'prod', 'bad key': 'x', LEVEL: 'debug' } }]]);
    const secrets = new Map<string, Secret>([['creds', { data: { PASSWORD: base64('s3cr=t'), TOKEN: base64('tok') }, stringData: { TOKEN: 'plain-wins' } }]]);

    it('takes envFrom keys with their prefix, skips invalid names with a warning, and lets env override', function () {
      const container: Container = { name: 'c', envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'APP_' }, { secretRef: { name: 'creds' } }, { configMapRef: { name: 'absent', optional: true } }], env: [{ name: 'APP_MODE', value: 'dev' }] };
      const result = containerEnvironment(pod(), container, sources({ configMaps, secrets }));
      expect(asRecord(result.env)).to.deep.equal({ APP_MODE: 'dev', APP_LEVEL: 'debug', PASSWORD: 's3cr=t', TOKEN: 'plain-wins' });
      expect(result.warnings).to.have.length(1);
      expect(result.warnings[0]).to.include('APP_bad key');
    });

    it('resolves configMapKeyRef, secretKeyRef (base64-decoded), fieldRef and resourceFieldRef', function () {
      const container: Container = {
        name: 'c',
        resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '1500m', memory: '128Mi' } },
        env: [
          { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'MODE' } } },
          { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'PASSWORD' } } },
          { name: 'NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
          { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: 'NOTE', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['note']" } } },
          { name: 'NONE', valueFrom: { fieldRef: { fieldPath: "metadata.labels['nope']" } } },
          { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
          { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
          { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
          { name: 'CPU_REQUEST_M', valueFrom: { resourceFieldRef: { resource: 'requests.cpu', divisor: '1m' } } },
          { name: 'MEM_LIMIT_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
          { name: 'MEM_REQUEST', valueFrom: { resourceFieldRef: { resource: 'requests.memory' } } },
          { name: 'OPTIONAL', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'nope', optional: true } } },
          { name: 'OPTIONAL_SECRET', valueFrom: { secretKeyRef: { name: 'gone', key: 'x', optional: true } } },
        ],
      };
      const env = asRecord(containerEnvironment(pod(), container, sources({ configMaps, secrets })).env);
      expect(env).to.deep.equal({
        MODE: 'prod',
        PASSWORD: 's3cr=t',
        NAME: 'web-0',
        NAMESPACE: 'shop',
        UID: 'uid-1',
        APP: 'web',
        NOTE: 'hi',
        NONE: '',
        NODE: 'n1',
        SA: 'builder',
        HOST_IP: '192.168.1.10',
        POD_IP: '10.244.1.7',
        CPU_LIMIT: '2',
        CPU_REQUEST_M: '250',
        MEM_LIMIT_MI: '128',
        MEM_REQUEST: String(64 * 2 ** 20),
      });
    });

    it('reads a missing limit as the node allocatable amount, and a missing request as the limit', function () {
      const container: Container = { name: 'c', resources: { limits: { memory: '1Gi' } } };
      expect(resourceFieldValue(container, 'limits.cpu', undefined, { cpu: '4' })).to.equal('4');
      expect(resourceFieldValue(container, 'requests.memory', '1Mi')).to.equal('1024');
      expect(resourceFieldValue(container, 'requests.cpu', undefined)).to.equal('0');
      expect(() => resourceFieldValue(container, 'limits.gpu', undefined)).to.throw(PodConfigError, 'unsupported container resource');
    });

    it('fails with CreateContainerConfigError for a missing ConfigMap, Secret or key', function () {
      const run = (env: Container['env'], envFrom?: Container['envFrom']) => () => containerEnvironment(pod(), { name: 'c', env, envFrom }, sources({ configMaps, secrets }));
      expect(configError(run([{ name: 'X', valueFrom: { configMapKeyRef: { name: 'x', key: 'k' } } }])).message).to.equal('configmap "x" not found');
      expect(configError(run([{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'K' } } }])).message).to.equal("couldn't find key K in ConfigMap shop/cfg");
      expect(configError(run([{ name: 'X', valueFrom: { secretKeyRef: { name: 'y', key: 'k' } } }])).message).to.equal('secret "y" not found');
      expect(configError(run([{ name: 'X', valueFrom: { secretKeyRef: { name: 'creds', key: 'K' } } }])).message).to.equal("couldn't find key K in Secret shop/creds");
      expect(configError(run([], [{ secretRef: { name: 'z' } }])).message).to.equal('secret "z" not found');
      expect(configError(run([{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'spec.bogus' } } }])).message).to.equal('unsupported fieldPath: spec.bogus');
    });
  });
});
