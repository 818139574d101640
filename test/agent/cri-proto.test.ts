// The CRI v1 wire contract (proto/cri/v1/api.proto): the generated messages
// round-trip what the agent sends a runtime, and the gRPC method paths are
// the ones containerd's CRI plugin serves.

import { expect } from 'chai';
import {
  ContainerConfig,
  ImageServiceService,
  KeyValue,
  MountPropagation,
  Protocol,
  RunPodSandboxRequest,
  RuntimeServiceService,
} from '../../proto/gen/cri/v1/api.js';

describe('CRI v1 wire contract (proto/cri/v1/api.proto)', () => {
  it('round-trips a ContainerConfig with envs, mounts, linux resources, labels and annotations', () => {
    const config = ContainerConfig.fromPartial({
      metadata: { name: 'web', attempt: 2 },
      image: { image: 'docker.io/library/nginx:1.25' },
      command: ['/bin/sh', '-c'],
      args: ['exec nginx -g "daemon off;"'],
      workingDir: '/srv',
      envs: [
        { key: 'PORT', value: '8080' },
        { key: 'GREETING', value: 'hello world' },
      ],
      mounts: [
        { containerPath: '/etc/config', hostPath: '/var/lib/mast/pods/p1/volumes/config', readonly: true },
        { containerPath: '/data', hostPath: '/mnt/data', propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER },
      ],
      labels: { 'io.kubernetes.pod.name': 'web-0', app: 'web' },
      annotations: { 'io.kubernetes.container.hash': 'abc123' },
      logPath: 'web/2.log',
      linux: {
        resources: { memoryLimitInBytes: 268435456, cpuQuota: 50000, cpuPeriod: 100000, cpuShares: 512 },
        securityContext: { runAsUser: { value: 1000 }, readonlyRootfs: true },
      },
    });

    const decoded = ContainerConfig.decode(ContainerConfig.encode(config).finish());

    expect(decoded).to.deep.equal(config);
    expect(decoded.envs).to.deep.equal([
      { key: 'PORT', value: '8080' },
      { key: 'GREETING', value: 'hello world' },
    ]);
    expect(decoded.mounts[0]).to.include({ containerPath: '/etc/config', readonly: true });
    expect(decoded.mounts[1]?.propagation).to.equal(MountPropagation.PROPAGATION_HOST_TO_CONTAINER);
    expect(decoded.linux?.resources).to.include({ memoryLimitInBytes: 268435456, cpuQuota: 50000, cpuPeriod: 100000, cpuShares: 512 });
    expect(decoded.linux?.securityContext?.runAsUser).to.deep.equal({ value: 1000 });
    expect(decoded.labels).to.deep.equal({ 'io.kubernetes.pod.name': 'web-0', app: 'web' });
    expect(decoded.annotations).to.deep.equal({ 'io.kubernetes.container.hash': 'abc123' });
  });

  it('encodes KeyValue.value as a length-delimited string (field 2), as containerd 1.6 expects', () => {
    const bytes = KeyValue.encode({ key: 'A', value: '1' }).finish();
    expect([...bytes]).to.deep.equal([0x0a, 0x01, 0x41, 0x12, 0x01, 0x31]);
  });

  it('round-trips a RunPodSandboxRequest with dns_config and port_mappings', () => {
    const request = RunPodSandboxRequest.fromPartial({
      config: {
        metadata: { name: 'web-0', uid: '6f1c1c1e-0000-4000-8000-000000000001', namespace: 'default', attempt: 0 },
        hostname: 'web-0',
        logDirectory: '/var/log/pods/default_web-0_6f1c1c1e',
        dnsConfig: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] },
        portMappings: [
          { protocol: Protocol.TCP, containerPort: 80, hostPort: 8080, hostIp: '0.0.0.0' },
          { protocol: Protocol.UDP, containerPort: 53, hostPort: 0, hostIp: '' },
        ],
        labels: { app: 'web' },
        annotations: { 'kubernetes.io/config.source': 'api' },
        linux: { cgroupParent: '/kubepods/pod6f1c1c1e', sysctls: { 'net.ipv4.ip_forward': '1' } },
      },
      runtimeHandler: 'runc',
    });

    const decoded = RunPodSandboxRequest.decode(RunPodSandboxRequest.encode(request).finish());

    expect(decoded).to.deep.equal(request);
    expect(decoded.config?.dnsConfig).to.deep.equal({
      servers: ['10.96.0.10'],
      searches: ['default.svc.cluster.local', 'svc.cluster.local'],
      options: ['ndots:5'],
    });
    expect(decoded.config?.portMappings).to.deep.equal([
      { protocol: Protocol.TCP, containerPort: 80, hostPort: 8080, hostIp: '0.0.0.0' },
      { protocol: Protocol.UDP, containerPort: 53, hostPort: 0, hostIp: '' },
    ]);
    expect(decoded.config?.metadata?.namespace).to.equal('default');
    expect(decoded.runtimeHandler).to.equal('runc');
  });

  it('serves the upstream gRPC method paths', () => {
    expect(RuntimeServiceService.version.path).to.equal('/runtime.v1.RuntimeService/Version');
    expect(RuntimeServiceService.runPodSandbox.path).to.equal('/runtime.v1.RuntimeService/RunPodSandbox');
    expect(RuntimeServiceService.createContainer.path).to.equal('/runtime.v1.RuntimeService/CreateContainer');
    expect(RuntimeServiceService.exec.path).to.equal('/runtime.v1.RuntimeService/Exec');
    expect(RuntimeServiceService.listPodSandboxStats.path).to.equal('/runtime.v1.RuntimeService/ListPodSandboxStats');
    expect(RuntimeServiceService.status.path).to.equal('/runtime.v1.RuntimeService/Status');
    expect(ImageServiceService.pullImage.path).to.equal('/runtime.v1.ImageService/PullImage');
    expect(ImageServiceService.imageFsInfo.path).to.equal('/runtime.v1.ImageService/ImageFsInfo');
    expect(Object.keys(RuntimeServiceService)).to.have.length(23);
    expect(Object.keys(ImageServiceService)).to.have.length(5);
    for (const method of Object.values(RuntimeServiceService)) {
      expect(method.requestStream, method.path).to.equal(false);
      expect(method.responseStream, method.path).to.equal(false);
    }
  });
});
