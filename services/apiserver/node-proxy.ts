// The pods/log and pods/exec subresources: the master finds the pod's node
// in its watch cache and relays the call to that node's agent (the
// NodeAgent service of proto/agent.proto, at the node's InternalIP and
// status.daemonEndpoints.kubeletEndpoint.Port), as the Kubernetes API
// server proxies to the kubelet. Channels to agents are kept per address
// for the life of the master.

import * as grpc from '@grpc/grpc-js';
import * as agent from '../../proto/gen/agent.js';
import { ApiError, type ApiObject } from './registry.js';
import { isJsonObject } from './schema.js';

/** What the proxy needs to know about an agent's address and how to reach it. */
export interface NodeProxyOptions {
  /** Credentials for calls to agents (TLS with the master's agent-client certificate, or insecure). */
  readonly credentials: grpc.ChannelCredentials;
}

export interface PodTarget {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly container: string;
  readonly endpoint: string;
}

/** Exec calls without a timeout of their own get this one (seconds). */
const DEFAULT_EXEC_TIMEOUT_SECONDS = 60;

function stringField(object: unknown, key: string): string {
  return isJsonObject(object) && typeof object[key] === 'string' ? object[key] : '';
}

/** The names of a pod's containers (init containers after the regular ones, as kubectl lists them). */
function containerNames(pod: ApiObject): string[] {
  const spec = isJsonObject(pod.spec) ? pod.spec : {};
  const names = (list: unknown): string[] => (Array.isArray(list) ? list.map((container) => stringField(container, 'name')).filter((name) => name !== '') : []);
  return [...names(spec.containers), ...names(spec.initContainers)];
}

/** Which container a request means: the one named, or the pod's only one. */
export function chooseContainer(pod: ApiObject, requested: string): string {
  const name = stringField(pod.metadata, 'name');
  const names = containerNames(pod);
  if (requested !== '') {
    if (!names.includes(requested)) throw new ApiError('BadRequest', `container ${requested} is not valid for pod ${name}: choose one of: [${names.join(' ')}]`);
    return requested;
  }
  const regular = isJsonObject(pod.spec) && Array.isArray(pod.spec.containers) ? pod.spec.containers.length : 0;
  if (regular === 1) return names[0]!;
  throw new ApiError('BadRequest', `a container name must be specified for pod ${name}, choose one of: [${names.join(' ')}]`);
}

/** The agent endpoint ("host:port") of a node, from its status. */
export function agentEndpoint(node: ApiObject): string {
  const nodeName = stringField(node.metadata, 'name');
  const status = isJsonObject(node.status) ? node.status : {};
  const endpoints = isJsonObject(status.daemonEndpoints) ? status.daemonEndpoints : {};
  const kubelet = isJsonObject(endpoints.kubeletEndpoint) ? endpoints.kubeletEndpoint : {};
  const port = typeof kubelet.Port === 'number' ? kubelet.Port : 0;
  if (port <= 0) throw new ApiError('BadRequest', `node ${nodeName} reports no agent endpoint (status.daemonEndpoints.kubeletEndpoint.Port): is its agent running?`);
  const addresses = Array.isArray(status.addresses) ? status.addresses : [];
  const internal = addresses.find((address) => stringField(address, 'type') === 'InternalIP');
  const host = stringField(internal, 'address');
  if (host === '') throw new ApiError('BadRequest', `node ${nodeName} reports no InternalIP address`);
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Where a pod's container is served: the pod must be on a node whose agent
 * published its endpoint. `nodeOf` reads the watch cache.
 */
export function podTarget(pod: ApiObject, requestedContainer: string, nodeOf: (name: string) => ApiObject | undefined): PodTarget {
  const namespace = stringField(pod.metadata, 'namespace');
  const name = stringField(pod.metadata, 'name');
  const nodeName = isJsonObject(pod.spec) && typeof pod.spec.nodeName === 'string' ? pod.spec.nodeName : '';
  if (nodeName === '') throw new ApiError('BadRequest', `pod ${namespace}/${name} is not scheduled to a node yet`);
  const node = nodeOf(nodeName);
  if (node === undefined) throw new ApiError('BadRequest', `pod ${namespace}/${name} is on node ${nodeName}, which does not exist`);
  return { uid: stringField(pod.metadata, 'uid'), namespace, name, container: chooseContainer(pod, requestedContainer), endpoint: agentEndpoint(node) };
}

export class NodeProxy {
  private readonly clients = new Map<string, agent.NodeAgentClient>();

  constructor(private readonly options: NodeProxyOptions) {}

  private client(endpoint: string): agent.NodeAgentClient {
    let client = this.clients.get(endpoint);
    if (client === undefined) {
      client = new agent.NodeAgentClient(endpoint, this.options.credentials);
      this.clients.set(endpoint, client);
    }
    return client;
  }

  /** Relay a container's log: chunks go to `write`; resolves when the agent's stream ends. Cancel with the returned function. */
  logs(target: PodTarget, request: Omit<agent.ContainerLogsRequest, 'podUid' | 'podNamespace' | 'podName' | 'container'>, write: (data: Uint8Array) => void): { done: Promise<void>; cancel: () => void } {
    const stream = this.client(target.endpoint).containerLogs(
      agent.ContainerLogsRequest.fromPartial({ ...request, podUid: target.uid, podNamespace: target.namespace, podName: target.name, container: target.container }),
    );
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: agent.LogChunk) => write(chunk.data));
      stream.on('end', () => resolve());
      stream.on('error', (error: grpc.ServiceError) => (error.code === grpc.status.CANCELLED ? resolve() : reject(unreachable(target, error))));
    });
    return { done, cancel: () => stream.cancel() };
  }

  exec(target: PodTarget, command: readonly string[], timeoutSeconds: number): Promise<agent.ExecSyncResponse> {
    if (command.length === 0) return Promise.reject(new ApiError('BadRequest', 'a command is required'));
    const timeout = timeoutSeconds > 0 ? timeoutSeconds : DEFAULT_EXEC_TIMEOUT_SECONDS;
    const request = agent.ExecSyncRequest.fromPartial({ podUid: target.uid, podNamespace: target.namespace, podName: target.name, container: target.container, command: [...command], timeoutSeconds: timeout });
    return new Promise((resolve, reject) => {
      // The agent's own timeout answers first; the deadline only covers an agent that went silent.
      this.client(target.endpoint).execSync(request, new grpc.Metadata(), { deadline: Date.now() + (timeout + 10) * 1000 }, (error, response) => (error === null ? resolve(response) : reject(unreachable(target, error))));
    });
  }
}

/** An agent's answer relayed as the API's status: its own statuses pass through, transport failures name the node's endpoint. */
export class AgentCallError extends Error {
  override readonly name = 'AgentCallError';
  constructor(readonly status: { readonly code: grpc.status; readonly details: string }) {
    super(status.details);
  }
}

function unreachable(target: PodTarget, error: grpc.ServiceError): AgentCallError {
  if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED) {
    return new AgentCallError({ code: grpc.status.FAILED_PRECONDITION, details: `the agent of pod ${target.namespace}/${target.name} at ${target.endpoint} did not answer: ${error.details}` });
  }
  return new AgentCallError({ code: error.code, details: error.details });
}
