// Containers: their records (create, status, list, remove), the directory
// each gets (ROOT/containers/<id>/rootfs with its mounts as symlinks), its
// environment and host command line, and ExecSync. Processes are the
// Supervisor's.
//
// Processes see the host's filesystem: a container finds its own files
// under $MAST_ROOTFS (a mount at /data is $MAST_ROOTFS/data, a symlink to
// the host path), and starts in its working_dir inside that rootfs.

import { status } from '@grpc/grpc-js';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import {
  Container,
  ContainerFilter,
  ContainerState,
  ContainerStatus,
  ContainerStatusResponse,
  ExecSyncResponse,
  LinuxContainerResources,
  type ContainerConfig,
  type CreateContainerRequest,
  type Mount,
} from '../../proto/gen/cri/v1/api.js';
import { nowNs } from './clock.js';
import { CommandError, mergeCommand, resolveArgv, type HostLookup } from './commands.js';
import { CriError, failedPrecondition, invalidArgument } from './errors.js';
import { runCaptured } from './exec.js';
import { hostSearchPath } from './host.js';
import { findImage, ImageReferenceError, notInTableMessage, type ImageEntry, type ImageTable } from './images.js';
import type { CriLogger } from './logger.js';
import { envObject, type Supervisor } from './supervisor.js';
import { idMatches, labelsMatch, newId, type ContainerRecord, type ContainerStateName, type MountRecord, type SandboxRecord, type Store } from './state.js';

export const CONTAINER_STATES: Readonly<Record<ContainerStateName, ContainerState>> = {
  CREATED: ContainerState.CONTAINER_CREATED,
  RUNNING: ContainerState.CONTAINER_RUNNING,
  EXITED: ContainerState.CONTAINER_EXITED,
};

/** Files every container sees from its sandbox, unless a mount provides them. */
const SANDBOX_FILES = ['/etc/hosts', '/etc/resolv.conf', '/etc/hostname'];

/** The entry ExecSync falls back to when a container's image left the table (another --image-table after a restart). */
const HOST_ENTRY: ImageEntry = { repo: '', name: 'host', command: [], defaultArgs: [], programs: {}, applets: false, pinned: false };

/** A path inside rootfs; ".." cannot climb out of it. */
function insideRootfs(rootfs: string, path: string): string {
  return join(rootfs, posix.normalize(`/${path}`));
}

function isWithin(parent: string, path: string): boolean {
  return path === parent || path.startsWith(parent === '/' ? '/' : `${parent}/`);
}

function validateMounts(mounts: readonly Mount[]): MountRecord[] {
  const records = mounts.map((mount, index): MountRecord => {
    const field = `config.mounts[${index}]`;
    if (!mount.containerPath.startsWith('/')) throw invalidArgument(`${field}.container_path`, `"${mount.containerPath}" is not an absolute path`);
    if (mount.hostPath === '') throw invalidArgument(`${field}.host_path`, 'missing (mast cri mounts host paths only)');
    const containerPath = posix.normalize(mount.containerPath).replace(/(.)\/$/, '$1');
    return { containerPath, hostPath: mount.hostPath, readonly: mount.readonly, selinuxRelabel: mount.selinuxRelabel, propagation: mount.propagation };
  });
  for (const [index, mount] of records.entries()) {
    const outer = records.find((other, otherIndex) => otherIndex !== index && isWithin(other.containerPath, mount.containerPath));
    if (outer !== undefined) {
      throw invalidArgument(
        `config.mounts[${index}].container_path`,
        `"${mount.containerPath}" is inside (or the same as) mount "${outer.containerPath}"; mast cri mounts are symlinks and cannot nest`,
      );
    }
  }
  return records;
}

function materialiseMounts(rootfs: string, sandbox: SandboxRecord, mounts: readonly MountRecord[]): void {
  const links = [...mounts.map((mount) => ({ path: mount.containerPath, target: mount.hostPath }))];
  for (const file of SANDBOX_FILES) {
    if (!mounts.some((mount) => isWithin(mount.containerPath, file))) links.push({ path: file, target: join(sandbox.dir, file) });
  }
  for (const link of links) {
    const at = insideRootfs(rootfs, link.path);
    mkdirSync(dirname(at), { recursive: true });
    rmSync(at, { recursive: true, force: true });
    symlinkSync(link.target, at);
  }
}

function buildEnv(config: ContainerConfig, sandbox: SandboxRecord, rootfs: string): string[] {
  const env = new Map<string, string>([
    ['PATH', hostSearchPath()],
    ['HOME', rootfs],
    ['HOSTNAME', sandbox.hostname],
    ['POD_IP', sandbox.ip],
  ]);
  for (const [index, pair] of config.envs.entries()) {
    if (pair.key === '' || pair.key.includes('=')) throw invalidArgument(`config.envs[${index}].key`, `"${pair.key}" is not a variable name`);
    env.set(pair.key, pair.value);
  }
  env.set('MAST_ROOTFS', rootfs);
  return [...env].map(([key, value]) => `${key}=${value}`);
}

function lookupImage(table: ImageTable, image: string, field: string): { entry: ImageEntry; id: string } {
  if (image === '') throw invalidArgument(field, 'missing image');
  let match;
  try {
    match = findImage(table, image);
  } catch (error) {
    if (error instanceof ImageReferenceError) throw invalidArgument(field, error.message);
    throw error;
  }
  if (match === undefined) {
    throw new CriError(status.NOT_FOUND, notInTableMessage(table, image));
  }
  return match;
}

interface NewContainer {
  readonly id: string;
  readonly sandbox: SandboxRecord;
  readonly config: ContainerConfig;
  readonly name: string;
  readonly attempt: number;
  readonly image: { readonly entry: ImageEntry; readonly id: string };
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly dir: string;
  readonly rootfs: string;
  readonly cwd: string;
  readonly mounts: readonly MountRecord[];
}

function newContainerRecord(fields: NewContainer): ContainerRecord {
  const { config, sandbox } = fields;
  return {
    id: fields.id,
    sandboxId: sandbox.id,
    metadata: { name: fields.name, attempt: fields.attempt },
    image: config.image?.image ?? '',
    imageRepo: fields.image.entry.repo,
    imageRef: fields.image.id,
    argv: fields.argv,
    env: fields.env,
    dir: fields.dir,
    rootfs: fields.rootfs,
    cwd: fields.cwd,
    mounts: fields.mounts,
    labels: { ...config.labels },
    annotations: { ...config.annotations },
    logPath: sandbox.logDirectory === '' || config.logPath === '' ? '' : join(sandbox.logDirectory, config.logPath),
    resources: config.linux?.resources === undefined ? undefined : LinuxContainerResources.toJSON(config.linux.resources),
    state: 'CREATED',
    createdAtNs: nowNs(),
    startedAtNs: 0,
    finishedAtNs: 0,
    exitCode: 0,
    reason: '',
    message: '',
    pid: 0,
    pidStartTime: 0,
    stdoutOffset: 0,
    stderrOffset: 0,
  };
}

export class ContainerService {
  constructor(
    private readonly store: Store,
    private readonly supervisor: Supervisor,
    private readonly images: ImageTable,
    private readonly host: HostLookup,
    private readonly log: CriLogger,
  ) {}

  create(request: CreateContainerRequest): string {
    const { sandbox, config, name, attempt } = this.validateCreate(request);
    const image = lookupImage(this.images, config.image?.image ?? '', 'config.image.image');
    const mounts = validateMounts(config.mounts);
    const id = newId();
    const dir = join(this.store.rootDir, 'containers', id);
    const rootfs = join(dir, 'rootfs');
    try {
      mkdirSync(rootfs, { recursive: true });
      materialiseMounts(rootfs, sandbox, mounts);
      const cwd = insideRootfs(rootfs, config.workingDir);
      mkdirSync(cwd, { recursive: true });
      const env = buildEnv(config, sandbox, rootfs);
      const merged = mergeCommand(image.entry, config.command, config.args);
      const context = { rootfs, cwd, searchPath: envObject(env).PATH ?? hostSearchPath() };
      const argv = resolveArgv(image.entry, merged.argv, context, this.host, merged.field);
      const record = newContainerRecord({ id, sandbox, config, name, attempt, image, argv, env, dir, rootfs, cwd, mounts });
      this.store.containers.set(id, record);
      this.store.persist();
      this.log.info(`container ${id} (${name}) created in sandbox ${sandbox.id}: ${JSON.stringify(argv)}`);
      return id;
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      if (error instanceof CommandError) throw invalidArgument(error.field, error.message);
      throw error;
    }
  }

  private validateCreate(request: CreateContainerRequest): { sandbox: SandboxRecord; config: ContainerConfig; name: string; attempt: number } {
    const sandbox = this.store.sandbox(request.podSandboxId);
    if (sandbox.state !== 'READY') throw failedPrecondition(`sandbox "${sandbox.id}" is NOTREADY: containers are created in READY sandboxes`);
    const config = request.config;
    if (config === undefined) throw invalidArgument('config', 'missing');
    if (config.metadata === undefined || config.metadata.name === '') throw invalidArgument('config.metadata.name', 'missing');
    const { name, attempt } = config.metadata;
    const clash = this.store.containersOf(sandbox.id).find((other) => other.metadata.name === name && other.metadata.attempt === attempt);
    if (clash !== undefined) throw new CriError(status.ALREADY_EXISTS, `container ${name} attempt ${attempt} already exists in sandbox "${sandbox.id}" as "${clash.id}"`);
    return { sandbox, config, name, attempt };
  }

  async start(id: string): Promise<void> {
    const record = this.store.container(id);
    if (record.state !== 'CREATED') throw failedPrecondition(`container "${record.id}" is ${record.state}: only a CREATED container starts`);
    const sandbox = this.store.sandbox(record.sandboxId);
    if (sandbox.state !== 'READY') throw failedPrecondition(`sandbox "${sandbox.id}" of container "${record.id}" is NOTREADY`);
    try {
      await this.supervisor.start(record);
    } catch (error) {
      record.state = 'EXITED';
      record.exitCode = 128;
      record.reason = 'StartError';
      record.message = (error as Error).message;
      record.finishedAtNs = nowNs();
      this.store.persist();
      throw new CriError(status.UNKNOWN, `start container "${record.id}": ${record.message}`);
    }
  }

  async stop(id: string, timeoutSeconds: number): Promise<void> {
    await this.supervisor.stop(this.store.container(id), Math.max(0, timeoutSeconds));
  }

  /** Kills the container if it runs and forgets it; an unknown id is not an error. */
  async remove(id: string): Promise<void> {
    const record = this.store.findContainer(id);
    if (record === undefined) return;
    await this.supervisor.stop(record, 0);
    rmSync(record.dir, { recursive: true, force: true });
    this.store.containers.delete(record.id);
    this.store.persist();
    this.log.info(`container ${record.id} (${record.metadata.name}) removed`);
  }

  status(id: string, verbose: boolean): ContainerStatusResponse {
    const record = this.store.container(id);
    const info: Record<string, string> = verbose ? { info: JSON.stringify({ pid: record.pid, argv: record.argv, env: record.env, cwd: record.cwd, rootfs: record.rootfs }) } : {};
    return ContainerStatusResponse.fromPartial({ status: containerStatus(record), info });
  }

  list(filter: ContainerFilter | undefined): Container[] {
    const wanted = filter ?? ContainerFilter.fromPartial({});
    return [...this.store.containers.values()]
      .filter((record) => idMatches(wanted.id, record.id) && idMatches(wanted.podSandboxId, record.sandboxId))
      .filter((record) => wanted.state === undefined || CONTAINER_STATES[record.state] === wanted.state.state)
      .filter((record) => labelsMatch(wanted.labelSelector, record.labels))
      .map((record) =>
        Container.fromPartial({
          id: record.id,
          podSandboxId: record.sandboxId,
          metadata: record.metadata,
          image: { image: record.image },
          imageRef: record.imageRef,
          imageId: record.imageRef,
          state: CONTAINER_STATES[record.state],
          createdAt: record.createdAtNs,
          labels: record.labels,
          annotations: record.annotations,
        }),
      );
  }

  reopenLog(id: string): void {
    this.supervisor.reopenLog(this.store.container(id));
  }

  async execSync(id: string, cmd: readonly string[], timeoutSeconds: number): Promise<ExecSyncResponse> {
    const record = this.store.container(id);
    if (!this.supervisor.isRunning(record.id)) throw failedPrecondition(`container "${record.id}" is ${record.state}: ExecSync runs in RUNNING containers only`);
    if (cmd.length === 0) throw invalidArgument('cmd', 'missing');
    const image = this.images.get(record.imageRepo) ?? HOST_ENTRY;
    const env = envObject(record.env);
    let argv: string[];
    try {
      argv = resolveArgv(image, cmd, { rootfs: record.rootfs, cwd: record.cwd, searchPath: env.PATH ?? hostSearchPath() }, this.host, 'cmd');
    } catch (error) {
      if (error instanceof CommandError) throw invalidArgument(error.field, error.message);
      throw error;
    }
    let group = 0;
    const timeoutMs = Math.max(0, timeoutSeconds) * 1000;
    const result = await runCaptured(argv, {
      cwd: record.cwd,
      env,
      timeoutMs,
      onStart: (pid) => {
        group = pid;
        this.supervisor.execStarted(record.id, pid);
      },
    })
      .catch((error: Error) => {
        throw new CriError(status.UNKNOWN, `ExecSync ${JSON.stringify(cmd)} in container "${record.id}": ${error.message}`);
      })
      .finally(() => this.supervisor.execEnded(record.id, group));
    if (result.timedOut) throw new CriError(status.DEADLINE_EXCEEDED, `ExecSync ${JSON.stringify(cmd)} in container "${record.id}" timed out after ${timeoutSeconds} s and was killed`);
    return ExecSyncResponse.fromPartial({ stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode });
  }
}

export function containerStatus(record: ContainerRecord): ContainerStatus {
  return ContainerStatus.fromPartial({
    id: record.id,
    metadata: record.metadata,
    state: CONTAINER_STATES[record.state],
    createdAt: record.createdAtNs,
    startedAt: record.startedAtNs,
    finishedAt: record.finishedAtNs,
    exitCode: record.exitCode,
    image: { image: record.image },
    imageRef: record.imageRef,
    imageId: record.imageRef,
    reason: record.reason,
    message: record.message,
    labels: record.labels,
    annotations: record.annotations,
    mounts: record.mounts.map((mount) => ({ ...mount })),
    logPath: record.logPath,
    resources: record.resources === undefined ? undefined : { linux: LinuxContainerResources.fromJSON(record.resources) },
  });
}
