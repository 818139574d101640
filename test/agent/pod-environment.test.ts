// The CRI configs the agent builds for a pod: the sandbox's metadata,
// hostname, log directory, DNS by policy, host ports, labels, annotations and
// Linux settings; a container's image, expanded command, environment,
// mounts, log path, labels, hash annotation and resources (kubelet's
// arithmetic: 250m → 256 shares, 500m → 50000/100000 quota, 128Mi bytes).

import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { NamespaceMode, Protocol, SecurityProfile_ProfileType } from '../../proto/gen/cri/v1/api.js';
import type { ConfigMap, Container, Pod, Service } from '../../proto/gen/resources/v1/core.js';
import { PodConfigError } from '../../services/agent/pod-environment-types.js';
import { containerHash, containerOOMScoreAdjust, milliCPUToQuota, milliCPUToShares, NodePodEnvironment, podQOSClass, type NodePodEnvironmentOptions } from '../../services/agent/pod-environment.js';

const GiB = 2 ** 30;

function makePod(spec: Partial<NonNullable<Pod['spec']>> = {}, metadata: Partial<NonNullable<Pod['metadata']>> = {}): Pod {
  return {
    metadata: { name: 'web-0', namespace: 'shop', uid: '1f2e3d', labels: { app: 'web' }, annotations: { owner: 'team-a' }, ...metadata },
    spec: {
      nodeName: 'n1',
      terminationGracePeriodSeconds: 45,
      dnsPolicy: 'ClusterFirst',
      containers: [{ name: 'app', image: 'nginx:1.25', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' }],
      ...spec,
    },
  };
}

describe('agent: pod environment (NodePodEnvironment)', function () {
  let root: string;
  let resolvConf: string;
  const configMaps = new Map<string, ConfigMap>();
  const services: Service[] = [
    { metadata: { namespace: 'default', name: 'kubernetes' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443 }] } },
    { metadata: { namespace: 'shop', name: 'db' }, spec: { clusterIP: '10.96.0.20', ports: [{ port: 5432 }] } },
  ];

  const environment = (options: Partial<NodePodEnvironmentOptions> = {}): NodePodEnvironment =>
    new NodePodEnvironment({
      rootDir: join(root, 'agent'),
      nodeName: 'n1',
      hostIP: '192.168.1.10',
      resolvConf,
      clusterDNS: ['10.96.0.10'],
      memoryCapacityBytes: 8 * GiB,
      objects: {
        getConfigMap: (namespace, name) => configMaps.get(`${namespace}/${name}`),
        getSecret: () => undefined,
        getClaim: () => undefined,
        getVolume: () => undefined,
        listServices: (namespace) => services.filter((service) => service.metadata?.namespace === namespace),
      },
      ...options,
    });

  before(function () {
    root = mkdtempSync(join(tmpdir(), 'mast-podenv-'));
    resolvConf = join(root, 'resolv.conf');
    writeFileSync(resolvConf, '# host\nnameserver 192.168.1.1\nnameserver 8.8.8.8\nsearch corp.example lab.example.\noptions edns0 ndots:2\n');
    configMaps.set('shop/cfg', { data: { MODE: 'prod' } });
  });

  after(function () {
    rmSync(root, { recursive: true, force: true });
  });

  describe('sandboxConfig', function () {
    it('fills metadata, hostname, an absolute log directory it makes, labels, annotations and the cgroup parent', function () {
      const config = environment().sandboxConfig(makePod(), 2);
      expect(config.metadata).to.deep.equal({ name: 'web-0', namespace: 'shop', uid: '1f2e3d', attempt: 2 });
      expect(config.hostname).to.equal('web-0');
      expect(config.logDirectory).to.equal(join(root, 'agent', 'logs', 'shop_web-0_1f2e3d'));
      expect(isAbsolute(config.logDirectory)).to.equal(true);
      expect(statSync(config.logDirectory).isDirectory()).to.equal(true);
      expect(config.labels).to.deep.equal({ app: 'web', 'io.kubernetes.pod.name': 'web-0', 'io.kubernetes.pod.namespace': 'shop', 'io.kubernetes.pod.uid': '1f2e3d' });
      expect(config.annotations).to.deep.equal({ owner: 'team-a', 'io.kubernetes.pod.terminationGracePeriod': '45' });
      expect(config.linux?.cgroupParent).to.equal('/mast/pod1f2e3d');
      expect(config.linux?.securityContext?.namespaceOptions).to.include({ network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD });
      expect(environment({ cgroupRoot: '' }).sandboxConfig(makePod(), 0).linux?.cgroupParent).to.equal('');
      expect(environment({ cgroupRoot: '/kubepods/' }).sandboxConfig(makePod(), 0).linux?.cgroupParent).to.equal('/kubepods/pod1f2e3d');
    });

    it('names a StatefulSet pod by spec.hostname (the FQDN only with setHostnameAsFQDN), and leaves a host-network pod the node name', function () {
      const stateful = makePod({ hostname: 'web-0', subdomain: 'nginx' });
      expect(environment().sandboxConfig(stateful, 0).hostname).to.equal('web-0');
      expect(environment().sandboxConfig(makePod({ hostname: 'web-0', subdomain: 'nginx', setHostnameAsFQDN: true }), 0).hostname).to.equal('web-0.nginx.shop.svc.cluster.local');
      expect(environment().sandboxConfig(makePod({ hostname: 'custom' }), 0).hostname).to.equal('custom');
      const long = environment().sandboxConfig(makePod({}, { name: `${'a'.repeat(62)}-b-c` }), 0).hostname;
      expect(long).to.equal('a'.repeat(62));
      const hostNetwork = environment().sandboxConfig(makePod({ hostNetwork: true, hostPID: true }), 0);
      expect(hostNetwork.hostname).to.equal('');
      expect(hostNetwork.linux?.securityContext?.namespaceOptions).to.include({ network: NamespaceMode.NODE, pid: NamespaceMode.NODE });
      expect(() => environment().sandboxConfig(makePod({ hostname: 'Not_Valid' }), 0)).to.throw(PodConfigError, 'not a valid DNS label');
    });

    it('configures DNS by policy: ClusterFirst, Default, ClusterFirst on the host network, None with dnsConfig', function () {
      const env = environment();
      expect(env.sandboxConfig(makePod(), 0).dnsConfig).to.deep.equal({
        servers: ['10.96.0.10'],
        searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example', 'lab.example'],
        options: ['ndots:5'],
      });
      const host = { servers: ['192.168.1.1', '8.8.8.8'], searches: ['corp.example', 'lab.example'], options: ['edns0', 'ndots:2'] };
      expect(env.sandboxConfig(makePod({ dnsPolicy: 'Default' }), 0).dnsConfig).to.deep.equal(host);
      expect(env.sandboxConfig(makePod({ hostNetwork: true }), 0).dnsConfig).to.deep.equal(host);
      expect(env.sandboxConfig(makePod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }), 0).dnsConfig?.servers).to.deep.equal(['10.96.0.10']);
      expect(environment({ clusterDNS: [] }).sandboxConfig(makePod(), 0).dnsConfig).to.deep.equal(host);
      expect(environment({ resolvConf: '' }).sandboxConfig(makePod({ dnsPolicy: 'Default' }), 0).dnsConfig).to.deep.equal({ servers: ['127.0.0.1'], searches: ['.'], options: [] });
      const none = makePod({ dnsPolicy: 'None', dnsConfig: { nameservers: ['1.1.1.1'], searches: ['my.example'], options: [{ name: 'ndots', value: '1' }, { name: 'rotate' }] } });
      expect(env.sandboxConfig(none, 0).dnsConfig).to.deep.equal({ servers: ['1.1.1.1'], searches: ['my.example'], options: ['ndots:1', 'rotate'] });
      const merged = makePod({ dnsConfig: { nameservers: ['10.96.0.10', '1.1.1.1'], options: [{ name: 'ndots', value: '2' }] } });
      expect(env.sandboxConfig(merged, 0).dnsConfig).to.deep.include({ servers: ['10.96.0.10', '1.1.1.1'], options: ['ndots:2'] });
    });

    it('maps containers host ports (not the others)', function () {
      const pod = makePod({
        containers: [
          { name: 'app', ports: [{ name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP' }, { containerPort: 9090 }, { name: 'dns', containerPort: 53, hostPort: 5353, protocol: 'UDP', hostIP: '127.0.0.1' }] },
        ],
      });
      expect(environment().sandboxConfig(pod, 0).portMappings).to.deep.equal([
        { protocol: Protocol.TCP, containerPort: 80, hostPort: 8080, hostIp: '' },
        { protocol: Protocol.UDP, containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' },
      ]);
    });
  });

  describe('containerConfig', function () {
    const container: Container = {
      name: 'app',
      image: 'registry.example/app:2',
      command: ['/bin/app'],
      args: ['--db=$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)', '--mode=$(MODE)', '$$(LITERAL)'],
      workingDir: '/srv',
      env: [{ name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'MODE' } } }, { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }],
      volumeMounts: [{ name: 'scratch', mountPath: '/tmp/scratch' }],
      resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
      securityContext: { privileged: true, runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: { add: ['NET_ADMIN'] } },
      terminationMessagePath: '/dev/termination-log',
      terminationMessagePolicy: 'File',
      stdin: true,
      tty: true,
      ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }],
    };
    const pod = makePod({ volumes: [{ name: 'scratch', emptyDir: {} }], containers: [container], securityContext: { fsGroup: 2000, supplementalGroups: [3000] } });

    it('fills metadata, image, expanded command and args, env, mounts, log path, labels and annotations', async function () {
      const env = environment();
      await env.prepareVolumes(pod);
      const config = await env.containerConfig(pod, container, { attempt: 3, podIP: '10.244.0.5', init: false });
      expect(config.metadata).to.deep.equal({ name: 'app', attempt: 3 });
      expect(config.image).to.include({ image: 'registry.example/app:2', userSpecifiedImage: 'registry.example/app:2' });
      expect(config.command).to.deep.equal(['/bin/app']);
      expect(config.args).to.deep.equal(['--db=10.96.0.20:5432', '--mode=prod', '$(LITERAL)']);
      expect(config.workingDir).to.equal('/srv');
      const envs = Object.fromEntries(config.envs.map((variable) => [variable.key, variable.value]));
      expect(envs).to.include({ MODE: 'prod', POD_IP: '10.244.0.5', DB_SERVICE_HOST: '10.96.0.20', KUBERNETES_SERVICE_HOST: '10.96.0.1' });
      expect(config.mounts.map((mount) => [mount.containerPath, mount.readonly])).to.deep.equal([
        ['/tmp/scratch', false],
        ['/dev/termination-log', false],
      ]);
      const terminationLog = config.mounts[1]!.hostPath;
      expect(terminationLog).to.equal(join(root, 'agent', 'pods', '1f2e3d', 'containers', 'app', 'termination-log.3'));
      expect(statSync(terminationLog).mode & 0o777).to.equal(0o666);
      expect(config.logPath).to.equal('app/3.log');
      expect(existsSync(join(root, 'agent', 'logs', 'shop_web-0_1f2e3d', 'app'))).to.equal(true);
      await env.cleanup('1f2e3d');
      expect(existsSync(join(root, 'agent', 'pods', '1f2e3d'))).to.equal(false);
      expect(existsSync(join(root, 'agent', 'logs', 'shop_web-0_1f2e3d')), 'logs outlive cleanup').to.equal(true);
      await env.removePodLogs('1f2e3d');
      expect(existsSync(join(root, 'agent', 'logs', 'shop_web-0_1f2e3d'))).to.equal(false);
      expect(config).to.include({ stdin: true, stdinOnce: false, tty: true });
      expect(config.labels).to.deep.equal({ 'io.kubernetes.container.name': 'app', 'io.kubernetes.pod.name': 'web-0', 'io.kubernetes.pod.namespace': 'shop', 'io.kubernetes.pod.uid': '1f2e3d' });
      expect(config.annotations).to.deep.equal({
        'io.kubernetes.container.hash': containerHash(container),
        'io.kubernetes.container.restartCount': '3',
        'io.kubernetes.container.terminationMessagePath': '/dev/termination-log',
        'io.kubernetes.container.terminationMessagePolicy': 'File',
        'io.kubernetes.pod.terminationGracePeriod': '45',
        'io.kubernetes.container.ports': JSON.stringify(container.ports),
      });
    });

    it('maps resources as the kubelet does: 250m → 256 shares, 500m → 50000/100000, 128Mi → 134217728', async function () {
      const config = await environment().containerConfig(pod, container, { attempt: 0, podIP: '10.244.0.5', init: false });
      expect(config.linux?.resources).to.include({ cpuShares: 256, cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimitInBytes: 134_217_728 });
      // Burstable: 1000 - 1000 × 64Mi / 8Gi.
      expect(config.linux?.resources?.oomScoreAdj).to.equal(993);
      const security = config.linux?.securityContext;
      expect(security).to.deep.include({ privileged: true, runAsUser: { value: 1000 }, noNewPrivs: true, supplementalGroups: [2000, 3000] });
      expect(security?.capabilities?.addCapabilities).to.deep.equal(['NET_ADMIN']);
      expect(security?.seccomp?.profileType).to.equal(SecurityProfile_ProfileType.Unconfined);
      expect(environment().sandboxConfig(pod, 0).linux?.securityContext).to.deep.include({ privileged: true, supplementalGroups: [2000, 3000] });
    });

    it('computes shares, quota, QoS and OOM score at the edges', function () {
      expect(milliCPUToShares(0)).to.equal(2);
      expect(milliCPUToShares(1)).to.equal(2);
      expect(milliCPUToShares(1000)).to.equal(1024);
      expect(milliCPUToQuota(0)).to.equal(0);
      expect(milliCPUToQuota(5)).to.equal(1000);
      const guaranteed = makePod({ containers: [{ name: 'g', resources: { limits: { cpu: '1', memory: '1Gi' } } }] });
      expect(podQOSClass(guaranteed)).to.equal('Guaranteed');
      expect(containerOOMScoreAdjust(guaranteed, guaranteed.spec!.containers![0]!, 8 * GiB)).to.equal(-997);
      const bestEffort = makePod({ containers: [{ name: 'b' }] });
      expect(podQOSClass(bestEffort)).to.equal('BestEffort');
      expect(containerOOMScoreAdjust(bestEffort, bestEffort.spec!.containers![0]!, 8 * GiB)).to.equal(1000);
      expect(podQOSClass(pod)).to.equal('Burstable');
      const tiny = makePod({ containers: [{ name: 't', resources: { requests: { cpu: '10m' } } }] });
      expect(containerOOMScoreAdjust(tiny, tiny.spec!.containers![0]!, 8 * GiB)).to.equal(999);
    });

    it('hashes the container spec stably (key order aside) and differently when it changes', function () {
      const reordered = JSON.parse(JSON.stringify({ tty: container.tty, ...container })) as Container;
      const keys = Object.keys(reordered).reverse();
      const reversed = Object.fromEntries(keys.map((key) => [key, reordered[key as keyof Container]])) as Container;
      expect(containerHash(reversed)).to.equal(containerHash(container));
      expect(containerHash(container)).to.match(/^[0-9a-f]{8}$/);
      expect(containerHash({ ...container, image: 'registry.example/app:3' })).to.not.equal(containerHash(container));
      expect(containerHash({ ...container, env: [] })).to.not.equal(containerHash(container));
      expect(containerHash({ ...container, stdin: undefined })).to.not.equal(containerHash(container));
    });

    it('fails with CreateContainerConfigError when a ConfigMap the env needs is missing, or runAsNonRoot meets runAsUser 0', async function () {
      const broken: Container = { name: 'app', image: 'x', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'missing', key: 'k' } } }] };
      let failure: unknown;
      await environment().containerConfig(makePod({ containers: [broken] }), broken, { attempt: 0, podIP: '', init: false }).catch((error: unknown) => (failure = error));
      expect(failure).to.be.instanceOf(PodConfigError);
      expect((failure as PodConfigError).reason).to.equal('CreateContainerConfigError');
      expect((failure as PodConfigError).message).to.equal('configmap "missing" not found');
      const root0: Container = { name: 'app', image: 'x', securityContext: { runAsNonRoot: true, runAsUser: 0 } };
      failure = undefined;
      await environment().containerConfig(makePod({ containers: [root0] }), root0, { attempt: 0, podIP: '', init: false }).catch((error: unknown) => (failure = error));
      expect((failure as PodConfigError).message).to.include('breaks non-root policy');
    });
  });
});
