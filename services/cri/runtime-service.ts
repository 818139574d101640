// The CRI RuntimeService: each RPC handed to the sandbox, container and
// stats services. The streaming-URL RPCs (Exec, Attach, PortForward) and
// UpdateContainerResources answer UNIMPLEMENTED, saying why.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ContainerStatsResponse,
  CreateContainerResponse,
  ListContainerStatsResponse,
  ListContainersResponse,
  ListPodSandboxResponse,
  ListPodSandboxStatsResponse,
  PodSandboxStatsResponse,
  RunPodSandboxResponse,
  StatusResponse,
  VersionResponse,
  type RuntimeServiceServer,
} from '../../proto/gen/cri/v1/api.js';
import type { ContainerService } from './containers.js';
import { unimplemented } from './errors.js';
import { unary } from './handlers.js';
import type { CriLogger } from './logger.js';
import type { SandboxService } from './sandboxes.js';
import type { StatsService } from './stats-service.js';

export const RUNTIME_NAME = 'mast-cri';
const FALLBACK_VERSION = '0.1.0';

/** mast's version, from the package.json above this module (dist/services/cri or services/cri). */
function runtimeVersion(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    try {
      const manifest = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'mast' && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // No package.json here: look further up.
    }
    directory = dirname(directory);
  }
  return FALLBACK_VERSION;
}

const STREAMING = 'mast cri serves ExecSync only: it has no streaming server for Exec, Attach or PortForward';

export interface RuntimeServices {
  readonly sandboxes: SandboxService;
  readonly containers: ContainerService;
  readonly stats: StatsService;
  readonly info: Readonly<Record<string, unknown>>;
}

export function runtimeService(services: RuntimeServices, log: CriLogger): RuntimeServiceServer {
  const { sandboxes, containers, stats } = services;
  const version = runtimeVersion();
  return {
    version: unary(log, 'Version', () => VersionResponse.fromPartial({ version: '0.1.0', runtimeName: RUNTIME_NAME, runtimeVersion: version, runtimeApiVersion: 'v1' })),
    runPodSandbox: unary(log, 'RunPodSandbox', (request) => RunPodSandboxResponse.fromPartial({ podSandboxId: sandboxes.run(request) })),
    stopPodSandbox: unary(log, 'StopPodSandbox', async (request) => {
      await sandboxes.stop(request.podSandboxId);
      return {};
    }),
    removePodSandbox: unary(log, 'RemovePodSandbox', async (request) => {
      await sandboxes.remove(request.podSandboxId);
      return {};
    }),
    podSandboxStatus: unary(log, 'PodSandboxStatus', (request) => sandboxes.status(request.podSandboxId, request.verbose)),
    listPodSandbox: unary(log, 'ListPodSandbox', (request) => ListPodSandboxResponse.fromPartial({ items: sandboxes.list(request.filter) })),
    createContainer: unary(log, 'CreateContainer', (request) => CreateContainerResponse.fromPartial({ containerId: containers.create(request) })),
    startContainer: unary(log, 'StartContainer', async (request) => {
      await containers.start(request.containerId);
      return {};
    }),
    stopContainer: unary(log, 'StopContainer', async (request) => {
      await containers.stop(request.containerId, request.timeout);
      return {};
    }),
    removeContainer: unary(log, 'RemoveContainer', async (request) => {
      await containers.remove(request.containerId);
      return {};
    }),
    listContainers: unary(log, 'ListContainers', (request) => ListContainersResponse.fromPartial({ containers: containers.list(request.filter) })),
    containerStatus: unary(log, 'ContainerStatus', (request) => containers.status(request.containerId, request.verbose)),
    updateContainerResources: unary(log, 'UpdateContainerResources', () => {
      throw unimplemented('mast cri does not enforce resources: limits given at CreateContainer are recorded (and reported in ContainerStatus), not applied, and cannot be updated');
    }),
    reopenContainerLog: unary(log, 'ReopenContainerLog', (request) => {
      containers.reopenLog(request.containerId);
      return {};
    }),
    execSync: unary(log, 'ExecSync', (request) => containers.execSync(request.containerId, request.cmd, request.timeout)),
    exec: unary(log, 'Exec', () => {
      throw unimplemented(STREAMING);
    }),
    attach: unary(log, 'Attach', () => {
      throw unimplemented(STREAMING);
    }),
    portForward: unary(log, 'PortForward', () => {
      throw unimplemented(`${STREAMING}; pods listen on their own IP, reachable from the host directly`);
    }),
    containerStats: unary(log, 'ContainerStats', (request) => ContainerStatsResponse.fromPartial({ stats: stats.container(request.containerId) })),
    listContainerStats: unary(log, 'ListContainerStats', (request) => ListContainerStatsResponse.fromPartial({ stats: stats.listContainers(request.filter) })),
    podSandboxStats: unary(log, 'PodSandboxStats', (request) => PodSandboxStatsResponse.fromPartial({ stats: stats.sandbox(request.podSandboxId) })),
    listPodSandboxStats: unary(log, 'ListPodSandboxStats', (request) => ListPodSandboxStatsResponse.fromPartial({ stats: stats.listSandboxes(request.filter) })),
    status: unary(log, 'Status', (request) =>
      StatusResponse.fromPartial({
        status: {
          conditions: [
            { type: 'RuntimeReady', status: true },
            { type: 'NetworkReady', status: true },
          ],
        },
        info: request.verbose ? { config: JSON.stringify(services.info) } : {},
        runtimeHandlers: [{ name: '', features: { recursiveReadOnlyMounts: false, userNamespaces: false } }],
        features: { supplementalGroupsPolicy: false },
      }),
    ),
  };
}
