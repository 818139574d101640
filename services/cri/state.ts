// The records mast cri keeps for its sandboxes and containers, and their
// file ROOT/state.json, rewritten atomically (temp file, fsync, rename) on
// every change, so that a restarted mast cri finds what it was running.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { CriError, notFound } from './errors.js';

export type SandboxStateName = 'READY' | 'NOTREADY';
export type ContainerStateName = 'CREATED' | 'RUNNING' | 'EXITED';

export interface SandboxRecord {
  readonly id: string;
  readonly metadata: { readonly name: string; readonly uid: string; readonly namespace: string; readonly attempt: number };
  state: SandboxStateName;
  readonly createdAtNs: number;
  readonly ip: string;
  readonly hostname: string;
  readonly logDirectory: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly runtimeHandler: string;
  /** ROOT/sandboxes/<id>. */
  readonly dir: string;
  /** The PodSandboxConfig as JSON, for verbose status. */
  readonly config: unknown;
}

export interface MountRecord {
  readonly containerPath: string;
  readonly hostPath: string;
  readonly readonly: boolean;
  readonly selinuxRelabel: boolean;
  readonly propagation: number;
}

export interface ContainerRecord {
  readonly id: string;
  readonly sandboxId: string;
  readonly metadata: { readonly name: string; readonly attempt: number };
  /** The image as the request named it. */
  readonly image: string;
  readonly imageRepo: string;
  /** "sha256:" + sha256 of the repository. */
  readonly imageRef: string;
  /** The host command line (program resolved). */
  readonly argv: readonly string[];
  /** Environment as KEY=VALUE, in order. */
  readonly env: readonly string[];
  /** ROOT/containers/<id>. */
  readonly dir: string;
  readonly rootfs: string;
  readonly cwd: string;
  readonly mounts: readonly MountRecord[];
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** log_directory/log_path, or '' when the container has no CRI log. */
  readonly logPath: string;
  /** LinuxContainerResources as JSON: recorded, not enforced. */
  readonly resources: unknown;
  state: ContainerStateName;
  readonly createdAtNs: number;
  startedAtNs: number;
  finishedAtNs: number;
  exitCode: number;
  reason: string;
  message: string;
  /** Process (and process group and session) id; 0 before it starts. */
  pid: number;
  /** Field 22 of /proc/<pid>/stat: tells the process from a later one with the same pid. */
  pidStartTime: number;
  /** Bytes of ROOT/containers/<id>/stdout and stderr already copied to the CRI log. */
  stdoutOffset: number;
  stderrOffset: number;
}

interface StateFile {
  readonly version: 1;
  readonly lastIp: string;
  readonly sandboxes: SandboxRecord[];
  readonly containers: ContainerRecord[];
}

export class StateError extends Error {
  override readonly name = 'StateError';
}

/** Every record, in memory, persisted on demand. */
export class Store {
  readonly sandboxes = new Map<string, SandboxRecord>();
  readonly containers = new Map<string, ContainerRecord>();
  /** The pod IP handed out last, so that a freed one is not reused at once. */
  lastIp = '';

  private constructor(readonly rootDir: string) {}

  static load(rootDir: string): Store {
    const store = new Store(rootDir);
    let text: string;
    try {
      text = readFileSync(join(rootDir, 'state.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return store;
      throw error;
    }
    let file: StateFile;
    try {
      file = JSON.parse(text) as StateFile;
    } catch (error) {
      throw new StateError(`${join(rootDir, 'state.json')} is not valid JSON (${(error as Error).message}); move it away to start with no sandboxes`);
    }
    if (file.version !== 1) throw new StateError(`${join(rootDir, 'state.json')}: unknown version ${String(file.version)}`);
    store.lastIp = file.lastIp;
    for (const sandbox of file.sandboxes) store.sandboxes.set(sandbox.id, sandbox);
    for (const container of file.containers) store.containers.set(container.id, container);
    return store;
  }

  persist(): void {
    const file: StateFile = { version: 1, lastIp: this.lastIp, sandboxes: [...this.sandboxes.values()], containers: [...this.containers.values()] };
    mkdirSync(this.rootDir, { recursive: true });
    const target = join(this.rootDir, 'state.json');
    const temporary = `${target}.tmp`;
    const fd = openSync(temporary, 'w');
    try {
      writeSync(fd, JSON.stringify(file, null, 1));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, target);
  }

  /** The sandbox with this id (or unique id prefix); NOT_FOUND otherwise. */
  sandbox(id: string): SandboxRecord {
    const found = findByIdOrPrefix(this.sandboxes, id);
    if (found === undefined) throw notFound('sandbox', id);
    return found;
  }

  /** The container with this id (or unique id prefix); NOT_FOUND otherwise. */
  container(id: string): ContainerRecord {
    const found = findByIdOrPrefix(this.containers, id);
    if (found === undefined) throw notFound('container', id);
    return found;
  }

  findSandbox(id: string): SandboxRecord | undefined {
    return findByIdOrPrefix(this.sandboxes, id);
  }

  findContainer(id: string): ContainerRecord | undefined {
    return findByIdOrPrefix(this.containers, id);
  }

  containersOf(sandboxId: string): ContainerRecord[] {
    return [...this.containers.values()].filter((container) => container.sandboxId === sandboxId);
  }
}

/** A new sandbox or container id: 64 hex digits, as containerd's. */
export function newId(): string {
  return randomBytes(32).toString('hex');
}

/** Exact id, or a prefix of exactly one id (as crictl users type them). */
export function findByIdOrPrefix<T>(records: ReadonlyMap<string, T>, id: string): T | undefined {
  if (id === '') return undefined;
  const exact = records.get(id);
  if (exact !== undefined) return exact;
  const matches = [...records.keys()].filter((key) => key.startsWith(id));
  if (matches.length > 1) throw new CriError(status.INVALID_ARGUMENT, `id prefix "${id}" is ambiguous (${matches.length} matches)`);
  return matches.length === 1 ? records.get(matches[0] as string) : undefined;
}

/** Whether an id filter matches an id: empty matches all; otherwise exact or prefix. */
export function idMatches(filter: string, id: string): boolean {
  return filter === '' || id.startsWith(filter);
}

/** Whether every selector label is on the object with the same value. */
export function labelsMatch(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/**
 * Claims ROOT for this process: ROOT/mast-cri.lock holds the pid and start
 * time of the mast cri using it. A lock whose process is gone is taken
 * over; a live one is refused. Returns the release function.
 */
export function lockRoot(rootDir: string, pid: number, startTimeTicks: number, isAlive: (pid: number, startTimeTicks: number) => boolean): () => void {
  const path = join(rootDir, 'mast-cri.lock');
  const mine = `${pid} ${startTimeTicks}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, mine, { flag: 'wx' });
      return () => {
        if (readLock(path) === mine) rmSync(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const [holder, holderStart] = (readLock(path) ?? '').trim().split(' ').map(Number);
    if (holder !== undefined && holderStart !== undefined && holder !== pid && isAlive(holder, holderStart)) {
      throw new StateError(`${rootDir} is in use by another mast cri (pid ${holder}); give each one its own --root`);
    }
    rmSync(path, { force: true });
  }
  throw new StateError(`cannot take ${path}`);
}

function readLock(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
