// `mast cri`: the embedded CRI v1 runtime as a command. It serves until
// SIGINT or SIGTERM, then stops every container it runs (SIGTERM, SIGKILL
// after 5 s; a second signal kills them at once) and exits 0.

import { CidrError, DEFAULT_POD_CIDR, parseCidr } from './ipam.js';
import { ImageTableError } from './images.js';
import { silentLogger, type CriLogger, type LogLevel } from './logger.js';
import { startCriServer, type CriServer } from './server.js';

/** Seconds a container gets between SIGTERM and SIGKILL when mast cri stops. */
const STOP_TIMEOUT_SECONDS = 5;
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export class CriFlagError extends Error {
  override readonly name = 'CriFlagError';
}

export interface CriFlags {
  readonly listen: string;
  readonly root: string;
  readonly imageTable: string | undefined;
  readonly podCidr: string;
  readonly logLevel: LogLevel;
}

export const CRI_USAGE = `usage: mast cri --listen PATH --root DIR [flags]

An embedded CRI v1 runtime (RuntimeService and ImageService) that runs
containers as plain host processes: no root, no images, no namespaces.
Node agents reach it at unix://PATH.

flags:
  --listen PATH          unix socket to serve on ("unix://" prefix accepted; required)
  --root DIR             state.json, sandboxes/ and containers/ (required)
  --image-table FILE     JSON file adding or replacing image table entries (below)
  --pod-cidr CIDR        IPv4 range of pod IPs (default ${DEFAULT_POD_CIDR}: every 127/8 address
                         is loopback on Linux, so each pod listens on an address of its own)
  --log-level LEVEL      debug, info, warn or error (default info); JSON lines on stderr
  -h, --help             show this text

image table (any tag or digest of a repository is that entry):
  busybox   the command runs as an applet of the host's busybox if it has one,
            else from the host PATH; default command: sh
  node      this mast's Node.js binary as node
  httpd, nginx
            a built-in static HTTP server on the pod IP; port from $PORT,
            -p/--port or 80 (ports below 1024 need root: give a port)
  host      the command as given, from the host PATH
  pause, registry.k8s.io/pause, k8s.gcr.io/pause, local/pause
            sandbox images: nothing to run

--image-table FILE.json, for example:
  { "python": { "command": ["/usr/bin/python3"], "defaultArgs": ["-m", "http.server"],
                "programs": { "python": ["/usr/bin/python3"] }, "applets": false } }
  command      the image's entrypoint on the host (used when the pod gives no command)
  defaultArgs  its default arguments (used when the pod gives no command and no args)
  programs     program name in a pod's command -> host command replacing it
  applets      run programs as host busybox applets when possible

Containers see the host filesystem: their mounts are symlinks under
$MAST_ROOTFS, their working_dir is inside it, and they get POD_IP and
HOSTNAME. Resource limits are recorded, not enforced. See services/cri/README.md.
`;

const VALUE_FLAGS = new Set(['listen', 'root', 'image-table', 'pod-cidr', 'log-level']);

export function parseCriFlags(argv: readonly string[]): CriFlags {
  const values = new Map<string, string>();
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index] ?? '';
    if (!argument.startsWith('--')) throw new CriFlagError(`unexpected argument "${argument}"`);
    const equals = argument.indexOf('=');
    const name = argument.slice(2, equals < 0 ? undefined : equals);
    if (!VALUE_FLAGS.has(name)) throw new CriFlagError(`unknown flag --${name}`);
    let value = equals < 0 ? undefined : argument.slice(equals + 1);
    if (value === undefined) {
      value = argv[index + 1];
      index++;
    }
    if (value === undefined || value === '') throw new CriFlagError(`--${name} needs a value`);
    values.set(name, value);
  }
  const listen = values.get('listen');
  const root = values.get('root');
  if (listen === undefined) throw new CriFlagError('--listen PATH is required');
  if (root === undefined) throw new CriFlagError('--root DIR is required');
  const logLevel = values.get('log-level') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) throw new CriFlagError(`--log-level "${logLevel}": must be one of ${LOG_LEVELS.join(', ')}`);
  const podCidr = values.get('pod-cidr') ?? DEFAULT_POD_CIDR;
  try {
    parseCidr(podCidr);
  } catch (error) {
    throw new CriFlagError(`--pod-cidr ${(error as Error).message}`);
  }
  return { listen, root, imageTable: values.get('image-table'), podCidr, logLevel: logLevel as LogLevel };
}

/** Resolves on the first SIGINT or SIGTERM; `again` on the next one, until `release` removes the handlers. */
function watchSignals(): { first: Promise<NodeJS.Signals>; again: Promise<NodeJS.Signals>; release(): void } {
  let count = 0;
  let resolveFirst: (signal: NodeJS.Signals) => void = () => undefined;
  let resolveAgain: (signal: NodeJS.Signals) => void = () => undefined;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const again = new Promise<NodeJS.Signals>((resolve) => (resolveAgain = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    count++;
    (count === 1 ? resolveFirst : resolveAgain)(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    first,
    again,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

async function serveUntilSignal(server: CriServer, log: CriLogger): Promise<void> {
  const signals = watchSignals();
  try {
    const signal = await signals.first;
    log.info(`received ${signal}: stopping every container (SIGKILL after ${STOP_TIMEOUT_SECONDS} s; signal again to kill them now)`);
    const graceful = server.stopAllContainers(STOP_TIMEOUT_SECONDS);
    const hurried = signals.again.then(async (second) => {
      log.warn(`received ${second} again: killing every container now`);
      await server.stopAllContainers(0);
    });
    await Promise.race([graceful, hurried]).catch((error: unknown) => log.error(`stopping the containers: ${String(error)}`));
    await server.close();
  } finally {
    signals.release();
  }
}

/**
 * `mast cri ARGS`: the exit code (0 after a signal, 2 for bad flags, 1 when
 * it cannot start). `makeLogger` logs at a level (`mast cri` passes
 * services/client/log.ts's JSON logger); default silent.
 */
export async function runCriCommand(argv: string[], makeLogger: (level: LogLevel) => CriLogger = () => silentLogger): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(CRI_USAGE);
    return 0;
  }
  let flags: CriFlags;
  try {
    flags = parseCriFlags(argv);
  } catch (error) {
    if (!(error instanceof CriFlagError)) throw error;
    process.stderr.write(`mast cri: ${error.message}\n(mast cri --help lists the flags)\n`);
    return 2;
  }
  const log = makeLogger(flags.logLevel);
  let server: CriServer;
  try {
    server = await startCriServer({ socketPath: flags.listen, rootDir: flags.root, imageTable: flags.imageTable, podCidr: flags.podCidr, log });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`mast cri: ${message}\n`);
    return error instanceof ImageTableError || error instanceof CidrError ? 2 : 1;
  }
  await serveUntilSignal(server, log);
  return 0;
}
