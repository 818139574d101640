// The agent's own gRPC server (proto/agent.proto NodeAgent): what masters
// relay pods/log and pods/exec to. It answers only for pods this agent runs
// (found in the runtime by their uid label) and reaches containers through
// CRI: log files by the path the runtime reports, commands by ExecSync.

import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import * as agent from '../../proto/gen/agent.js';
import { logFileExists, streamLogFile } from './cri-log.js';

/** A container attempt of a pod, as the runtime knows it. */
export interface ContainerAttempt {
  readonly id: string;
  readonly attempt: number;
  readonly running: boolean;
  /** Absolute path of its CRI log file ("" if the runtime keeps none). */
  readonly logPath: string;
}

/** What the server needs from the runtime (the agent backs it with its CRI client). */
export interface PodContainers {
  /** Every attempt of a pod's container still in the runtime, any order. */
  attempts(podUid: string, container: string): Promise<ContainerAttempt[]>;
  running(containerId: string): Promise<boolean>;
  execSync(containerId: string, command: readonly string[], timeoutSeconds: number): Promise<{ stdout: Uint8Array; stderr: Uint8Array; exitCode: number }>;
}

export interface AgentServerOptions {
  /** host:port to listen on (port 0: any free port). */
  readonly address: string;
  readonly containers: PodContainers;
  /** TLS: serving certificate and key, and the CA that signed masters' client certificates (required then). Absent: plain. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile: string };
  readonly now?: () => number;
}

export interface AgentServer {
  readonly port: number;
  close(): Promise<void>;
}

class AgentCallFailure extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

function failure(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof AgentCallFailure) return { code: error.code, details: error.message };
  const code = (error as { code?: unknown }).code;
  const details = (error as { details?: unknown }).details;
  if (typeof code === 'number' && typeof details === 'string') return { code, details };
  return { code: grpc.status.INTERNAL, details: `agent: ${error instanceof Error ? error.message : String(error)}` };
}

/** The attempt a request means: the latest, or (previous) the one before it. */
async function chooseAttempt(containers: PodContainers, request: { podUid: string; podNamespace: string; podName: string; container: string }, previous: boolean): Promise<ContainerAttempt> {
  const pod = `${request.podNamespace}/${request.podName}`;
  if (request.podUid === '' || request.container === '') throw new AgentCallFailure(grpc.status.INVALID_ARGUMENT, 'pod uid and container are required');
  const attempts = (await containers.attempts(request.podUid, request.container)).sort((a, b) => b.attempt - a.attempt);
  if (attempts.length === 0) throw new AgentCallFailure(grpc.status.NOT_FOUND, `container "${request.container}" in pod ${pod} is waiting to start (no container in the runtime yet)`);
  if (!previous) return attempts[0]!;
  const before = attempts[1];
  if (before === undefined) throw new AgentCallFailure(grpc.status.NOT_FOUND, `previous terminated container "${request.container}" in pod ${pod} not found`);
  return before;
}

export function agentHandlers(options: Pick<AgentServerOptions, 'containers' | 'now'>): agent.NodeAgentServer {
  const { containers } = options;
  const now = options.now ?? Date.now;
  return {
    containerLogs: (call: grpc.ServerWritableStream<agent.ContainerLogsRequest, agent.LogChunk>) => {
      const request = call.request;
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      (async () => {
        const attempt = await chooseAttempt(containers, request, request.previous);
        if (attempt.logPath === '' || !(await logFileExists(attempt.logPath))) {
          if (attempt.running || !request.follow) return; // nothing written yet
        }
        await streamLogFile(
          attempt.logPath,
          {
            follow: request.follow && !request.previous,
            tailLines: request.tailLines,
            sinceMs: request.sinceSeconds === undefined ? undefined : now() - request.sinceSeconds * 1000,
            timestamps: request.timestamps,
            limitBytes: request.limitBytes,
            stillWriting: () => containers.running(attempt.id),
            signal: abort.signal,
          },
          (data) => {
            if (!abort.signal.aborted) call.write({ data });
          },
        );
      })().then(
        () => {
          if (!abort.signal.aborted) call.end();
        },
        (error: unknown) => {
          if (!abort.signal.aborted) call.emit('error', Object.assign(new Error(failure(error).details), failure(error)));
        },
      );
    },
    execSync: (call: grpc.ServerUnaryCall<agent.ExecSyncRequest, agent.ExecSyncResponse>, callback: grpc.sendUnaryData<agent.ExecSyncResponse>) => {
      const request = call.request;
      (async () => {
        if (request.command.length === 0) throw new AgentCallFailure(grpc.status.INVALID_ARGUMENT, 'a command is required');
        const attempt = await chooseAttempt(containers, request, false);
        if (!attempt.running) throw new AgentCallFailure(grpc.status.FAILED_PRECONDITION, `container "${request.container}" in pod ${request.podNamespace}/${request.podName} is not running`);
        const result = await containers.execSync(attempt.id, request.command, request.timeoutSeconds);
        return { stdout: Buffer.from(result.stdout), stderr: Buffer.from(result.stderr), exitCode: result.exitCode };
      })().then(
        (response) => callback(null, response),
        (error: unknown) => callback(failure(error)),
      );
    },
  };
}

/** Start serving; resolves once the port is bound. */
export async function startAgentServer(options: AgentServerOptions): Promise<AgentServer> {
  const server = new grpc.Server();
  server.addService(agent.NodeAgentService, agentHandlers(options));
  const credentials =
    options.tls === undefined
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(readFileSync(options.tls.clientCaFile), [{ cert_chain: readFileSync(options.tls.certFile), private_key: readFileSync(options.tls.keyFile) }], true);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(options.address, credentials, (error, bound) => (error === null ? resolve(bound) : reject(new Error(`agent server: cannot listen on ${options.address}: ${error.message}`)))));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Streams that follow logs would hold a graceful shutdown open.
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  };
}
