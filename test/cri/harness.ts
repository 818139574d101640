// A real `mast cri` on a temporary unix socket and root, with promise-based
// CRI clients built from the generated service definitions.

import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as api from '../../proto/gen/cri/v1/api.js';
import { startCriServer, type CriServer, type CriServerOptions } from '../../services/cri/server.js';

export type DeepPartial<T> = T extends Buffer | number | string | boolean | undefined
  ? T
  : T extends ReadonlyArray<infer Item>
    ? Array<DeepPartial<Item>>
    : T extends object
      ? { [K in keyof T]?: DeepPartial<T[K]> }
      : T;

type Unary<S, K extends keyof S> = S[K] extends grpc.handleUnaryCall<infer Request, infer Response> ? (request?: DeepPartial<Request>) => Promise<Response> : never;
export type RuntimeApi = { [K in keyof typeof api.RuntimeServiceService]: Unary<api.RuntimeServiceServer, K> };
export type ImageApi = { [K in keyof typeof api.ImageServiceService]: Unary<api.ImageServiceServer, K> };

interface Codec {
  fromPartial(object: unknown): unknown;
}

function promiseClient<T>(service: grpc.ServiceDefinition, serviceName: string, address: string): { api: T; close(): void } {
  const Client = grpc.makeGenericClientConstructor(service, serviceName);
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as Record<string, (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: unknown) => void) => void>;
  const methods: Record<string, (request?: unknown) => Promise<unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    const rpc = method.path.split('/').pop() as string;
    const codec = (api as unknown as Record<string, Codec>)[`${rpc}Request`];
    if (codec === undefined) throw new Error(`no codec ${rpc}Request`);
    methods[name] = (request = {}) =>
      new Promise((resolve, reject) => {
        client[name]?.call(client, codec.fromPartial(request), { deadline: Date.now() + 60_000 }, (error, response) => (error === null ? resolve(response) : reject(error)));
      });
  }
  return { api: methods as T, close: () => (client as unknown as grpc.Client).close() };
}

export interface CriClients {
  readonly runtime: RuntimeApi;
  readonly images: ImageApi;
  close(): void;
}

/** Promise clients of the server on a unix socket. */
export function connectClients(socketPath: string): CriClients {
  const runtime = promiseClient<RuntimeApi>(api.RuntimeServiceService, 'runtime.v1.RuntimeService', `unix://${socketPath}`);
  const images = promiseClient<ImageApi>(api.ImageServiceService, 'runtime.v1.ImageService', `unix://${socketPath}`);
  return {
    runtime: runtime.api,
    images: images.api,
    close: () => {
      runtime.close();
      images.close();
    },
  };
}

export interface Harness {
  /** Temporary directory holding root/, run/cri.sock and whatever a test writes. */
  readonly dir: string;
  readonly root: string;
  readonly socketPath: string;
  server: CriServer;
  runtime: RuntimeApi;
  images: ImageApi;
  /** Closes the clients and the server (containers keep running), then starts both again on the same root. */
  restart(): Promise<void>;
  /** Stops every container, closes everything and removes the temporary directory. */
  destroy(): Promise<void>;
}

export async function startHarness(options: Partial<CriServerOptions> = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'mast-cri-'));
  const root = join(dir, 'root');
  const socketPath = join(dir, 'run', 'cri.sock');
  let clients: CriClients | undefined;
  const connect = async (): Promise<{ server: CriServer; runtime: RuntimeApi; images: ImageApi }> => {
    const server = await startCriServer({ socketPath, rootDir: root, ...options });
    clients = connectClients(socketPath);
    return { server, runtime: clients.runtime, images: clients.images };
  };
  let started;
  try {
    started = await connect();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const harness: Harness = {
    dir,
    root,
    socketPath,
    ...started,
    async restart() {
      clients?.close();
      await harness.server.close();
      Object.assign(harness, await connect());
    },
    async destroy() {
      clients?.close();
      try {
        await harness.server.stopAllContainers(0);
        await harness.server.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return harness;
}

/** Polls until check returns something other than undefined. */
export async function waitFor<T>(description: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The gRPC status code of a rejected call. */
export async function codeOf(call: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await call;
  } catch (error) {
    const serviceError = error as grpc.ServiceError;
    return { code: serviceError.code, details: serviceError.details };
  }
  throw new Error('the call succeeded');
}

/** A pod sandbox config with sensible defaults. */
export function podConfig(name: string, logDirectory: string, extra: DeepPartial<api.PodSandboxConfig> = {}): DeepPartial<api.PodSandboxConfig> {
  return { metadata: { name, namespace: 'default', uid: `uid-${name}`, attempt: 0 }, hostname: name, logDirectory, ...extra };
}

/** Runs a sandbox and one container in it; returns both ids. */
export async function runContainer(
  harness: { readonly runtime: RuntimeApi; readonly dir: string },
  name: string,
  container: DeepPartial<api.ContainerConfig>,
  options: { start?: boolean; logDirectory?: string } = {},
): Promise<{ sandboxId: string; containerId: string; logPath: string }> {
  const logDirectory = options.logDirectory ?? join(harness.dir, 'logs', name);
  const sandbox = podConfig(name, logDirectory);
  const { podSandboxId } = await harness.runtime.runPodSandbox({ config: sandbox });
  const config = { metadata: { name, attempt: 0 }, logPath: `${name}/0.log`, ...container };
  const { containerId } = await harness.runtime.createContainer({ podSandboxId, config, sandboxConfig: sandbox });
  if (options.start !== false) await harness.runtime.startContainer({ containerId });
  return { sandboxId: podSandboxId, containerId, logPath: join(logDirectory, `${name}/0.log`) };
}
