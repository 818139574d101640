import { expect } from 'chai';
import { decodeStrict } from '../../services/apiserver/schema.js';
import { kindInfo, resolveKind, objectKey, KINDS } from '../../services/client/kinds.js';
import { validateObjectMeta } from '../../services/apiserver/validation.js';
import { hasMessage } from '../../services/apiserver/schema.js';

const paths = (errors: ReadonlyArray<{ path: string }>): string[] => errors.map((error) => error.path);

describe('apiserver: strict decoding against the proto/resources schema', () => {
  it('has a schema message for every kind it serves', () => {
    for (const info of KINDS) expect(hasMessage(info.kind), info.kind).to.equal(true);
  });

  it('accepts a well-formed object and normalizes it (nulls dropped, numeric quantities as text)', () => {
    const { value, errors } = decodeStrict('ObjectMeta', { name: 'web', labels: { app: 'web' }, annotations: null, generation: 3 });
    expect(errors).to.deep.equal([]);
    expect(value).to.deep.equal({ name: 'web', labels: { app: 'web' }, generation: 3 });
    const pod = decodeStrict('Pod', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu: 1, memory: '64Mi' } }, ports: [{ containerPort: 80 }] }] },
    });
    expect(pod.errors).to.deep.equal([]);
    expect((pod.value as any).spec.containers[0].resources.requests).to.deep.equal({ cpu: '1', memory: '64Mi' });
  });

  it('rejects unknown fields and wrong types, naming each path', () => {
    const { value, errors } = decodeStrict('Pod', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', labels: { app: 7 }, colour: 'red' },
      spec: {
        containers: [{ name: 'c', image: 'busybox', ports: [{ containerPort: '80' }], resources: { limits: { cpu: 'lots' } } }, null],
        restartPolicy: true,
        terminationGracePeriodSeconds: 1.5,
        nodeSelector: [],
      },
      extra: {},
    });
    expect(value).to.equal(undefined);
    expect(paths(errors)).to.have.members([
      'metadata.labels["app"]',
      'metadata.colour',
      'spec.containers[0].ports[0].containerPort',
      'spec.containers[0].resources.limits["cpu"]',
      'spec.containers[1]',
      'spec.restartPolicy',
      'spec.terminationGracePeriodSeconds',
      'spec.nodeSelector',
      'extra',
    ]);
    expect(errors.find((error) => error.path === 'metadata.colour')!.message).to.equal('unknown field "colour"');
    expect(errors.find((error) => error.path === 'spec.containers[0].ports[0].containerPort')!.message).to.equal('must be an integer, not the string "80"');
    expect(decodeStrict('Pod', 'a pod').errors).to.deep.equal([{ path: '(root)', message: 'must be an object, not the string "a pod"' }]);
  });

  it('knows int-or-string ports', () => {
    const service = decodeStrict('Service', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's' },
      spec: { ports: [{ port: 80, targetPort: 'http' }, { port: 81, targetPort: 8081 }, { port: 82, targetPort: '' }] },
    });
    expect(paths(service.errors)).to.deep.equal(['spec.ports[2].targetPort']);
  });
});

describe('apiserver: kinds and metadata validation', () => {
  it('resolves what users type to kinds', () => {
    for (const [typed, kind] of [
      ['pods', 'Pod'],
      ['po', 'Pod'],
      ['Pod', 'Pod'],
      ['deploy', 'Deployment'],
      ['deployments.apps', 'Deployment'],
      ['svc', 'Service'],
      ['hpa', 'HorizontalPodAutoscaler'],
      ['clusterrolebindings', 'ClusterRoleBinding'],
    ]) expect(resolveKind(typed!)?.kind, typed).to.equal(kind);
    expect(resolveKind('widgets')).to.equal(undefined);
    expect(objectKey(kindInfo('Pod')!, 'default', 'web')).to.equal('/registry/pods/default/web');
    expect(objectKey(kindInfo('Node')!, '', 'n1')).to.equal('/registry/nodes/n1');
  });

  it('checks apiVersion, kind, names, namespaces, labels and annotations', () => {
    const pod = kindInfo('Pod')!;
    expect(validateObjectMeta(pod, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'default', labels: { 'app.kubernetes.io/name': 'web' } } })).to.deep.equal([]);
    const errors = validateObjectMeta(pod, {
      apiVersion: 'apps/v1',
      kind: 'Pod',
      metadata: { name: 'Web_1', namespace: 'Bad NS', labels: { '-x': 'ok', good: 'not ok!' }, annotations: { 'example.com/': 'v' } },
    });
    expect(paths(errors)).to.deep.equal(['apiVersion', 'metadata.name', 'metadata.namespace', 'metadata.labels["-x"]', 'metadata.labels["good"]', 'metadata.annotations["example.com/"]']);
    expect(errors[0]!.message).to.equal('must be "v1" for Pod, not "apps/v1"');
    expect(errors[1]!.message).to.match(/"Web_1" must be a DNS-1123 subdomain/);
    expect(paths(validateObjectMeta(kindInfo('Service')!, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a.b' } }))).to.deep.equal(['metadata.name']);
    expect(validateObjectMeta(kindInfo('Node')!, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', namespace: 'default' } })[0]!.message).to.match(/Node is not namespaced/);
    expect(validateObjectMeta(pod, { apiVersion: 'v1', kind: 'Pod', metadata: {} })[0]!.message).to.equal('name or generateName is required');
    expect(validateObjectMeta(pod, { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-' } })).to.deep.equal([]);
  });
});
