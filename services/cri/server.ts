// `mast cri` as a library: the CRI v1 RuntimeService and ImageService on a
// unix socket, running containers as plain host processes (no root, no
// images). See services/cri/README.md.

import * as grpc from '@grpc/grpc-js';
import { lstatSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import { ImageServiceService, RuntimeServiceService } from '../../proto/gen/cri/v1/api.js';
import { ContainerService } from './containers.js';
import { builtinPrograms, detectHost } from './host.js';
import { imageService } from './image-service.js';
import { builtinImageTable, extendImageTable, ImageTableError, type ImageTable } from './images.js';
import { DEFAULT_POD_CIDR, isLoopbackRange, parseCidr } from './ipam.js';
import { silentLogger, type CriLogger } from './logger.js';
import { isRunning, readProcStat } from './processes.js';
import { runtimeService } from './runtime-service.js';
import { SandboxService } from './sandboxes.js';
import { StatsService } from './stats-service.js';
import { lockRoot, Store } from './state.js';
import { Supervisor } from './supervisor.js';

export interface CriServerOptions {
  /** Socket path, with or without "unix://". */
  readonly socketPath: string;
  /** Where state.json, sandboxes/ and containers/ live. */
  readonly rootDir: string;
  /** Entries added to or replacing built-in ones: an --image-table document, or the path of its JSON file. */
  readonly imageTable?: string | Readonly<Record<string, unknown>>;
  /** IPv4 range pod IPs come from (default 127.10.0.0/16). */
  readonly podCidr?: string;
  readonly log?: CriLogger;
}

export interface CriServer {
  /** The socket's path (without "unix://"). */
  readonly socketPath: string;
  /** Stops serving; containers keep running, and a later server on the same root adopts them. */
  close(): Promise<void>;
  /** Stops every running container: SIGTERM, then SIGKILL after timeoutSeconds (default 5). */
  stopAllContainers(timeoutSeconds?: number): Promise<void>;
}

/** How long close() lets in-flight calls finish before cutting them. */
const SHUTDOWN_GRACE_MS = 2000;

export function loadImageTable(imageTable: CriServerOptions['imageTable']): ImageTable {
  const builtin = builtinImageTable(builtinPrograms());
  if (imageTable === undefined) return builtin;
  if (typeof imageTable !== 'string') return extendImageTable(builtin, imageTable, 'image table');
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(imageTable, 'utf8'));
  } catch (error) {
    throw new ImageTableError(`--image-table ${imageTable}: ${(error as Error).message}`);
  }
  return extendImageTable(builtin, document, imageTable);
}

/** Removes a socket file nobody listens on; refuses when a server answers there, or the path is not a socket. */
async function clearSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw new Error(`another server is listening on ${path}`);
  rmSync(path, { force: true });
}

function bind(server: grpc.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (error) => (error === null ? resolve() : reject(error)));
  });
}

export async function startCriServer(options: CriServerOptions): Promise<CriServer> {
  const log = options.log ?? silentLogger;
  const socketPath = resolve(options.socketPath.replace(/^unix:\/\//, ''));
  const rootDir = resolve(options.rootDir);
  const podCidr = parseCidr(options.podCidr ?? DEFAULT_POD_CIDR);
  if (!isLoopbackRange(podCidr)) log.warn(`pod CIDR ${podCidr.text} is outside 127.0.0.0/8: pods can listen on their IPs only if the host has those addresses`);
  const images = loadImageTable(options.imageTable);
  mkdirSync(rootDir, { recursive: true });
  mkdirSync(dirname(socketPath), { recursive: true });
  const unlockRoot = lockRoot(rootDir, process.pid, readProcStat(process.pid)?.startTimeTicks ?? 0, isRunning);
  let store: Store;
  try {
    store = Store.load(rootDir);
    await clearSocket(socketPath);
  } catch (error) {
    unlockRoot();
    throw error;
  }

  const supervisor = new Supervisor(store, log);
  const host = detectHost();
  const containers = new ContainerService(store, supervisor, images, host, log);
  const sandboxes = new SandboxService(store, containers, podCidr, log);
  const stats = new StatsService(store);
  supervisor.recover();

  const server = new grpc.Server();
  const info = { rootDir, socketPath, podCidr: podCidr.text, busybox: host.busyboxPath ?? null, images: [...images.keys()] };
  server.addService(RuntimeServiceService, runtimeService({ sandboxes, containers, stats, info }, log));
  server.addService(ImageServiceService, imageService(images, rootDir, log));
  try {
    await bind(server, socketPath);
  } catch (error) {
    supervisor.close();
    unlockRoot();
    throw error;
  }
  log.info(`serving CRI v1 on unix://${socketPath} (root ${rootDir}, pod CIDR ${podCidr.text}, busybox ${host.busyboxPath ?? 'none: commands run from the host PATH'})`);

  let closed: Promise<void> | undefined;
  return {
    socketPath,
    stopAllContainers: (timeoutSeconds = 5) => supervisor.stopAll(timeoutSeconds),
    close: () => {
      closed ??= new Promise<void>((resolveClose) => {
        const force = setTimeout(() => server.forceShutdown(), SHUTDOWN_GRACE_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          supervisor.close();
          rmSync(socketPath, { force: true });
          unlockRoot();
          log.info('stopped serving CRI');
          resolveClose();
        });
      });
      return closed;
    },
  };
}
