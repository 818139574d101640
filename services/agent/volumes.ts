// A pod's volumes on the node, laid out as the kubelet lays them out:
//   <rootDir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>   emptyDir
//   <rootDir>/pods/<uid>/volumes/kubernetes.io~configmap/<name>   configMap
//   <rootDir>/pods/<uid>/volumes/kubernetes.io~secret/<name>      secret
//   <rootDir>/pods/<uid>/containers/<container>/...               per-container files
// hostPath volumes and persistentVolumeClaims (local or hostPath
// PersistentVolumes) are the node's own directories and are handed to the
// runtime as they are: the kubelet bind-mounts a local PV into the pod
// directory first, which needs root, and the runtime bind-mounts anyway.
//
// ConfigMap and Secret volumes are written the way the kubelet's
// AtomicWriter writes them: the files go into a fresh hidden timestamped
// directory, a `..data` symlink is swapped to it with one rename, and the
// visible names are symlinks through `..data` — a reader sees the old set
// or the new set, never a half-written file. An emptyDir with medium
// Memory is a plain directory here (the kubelet mounts a tmpfs, which
// needs root); sizeLimit is not enforced (the kubelet's eviction manager
// does that).

import { lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile, chmod } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, sep } from 'node:path';
import { Mount, MountPropagation } from '../../proto/gen/cri/v1/api.js';
import type { ConfigMap, Container, HostPathVolumeSource, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume, VolumeMount } from '../../proto/gen/resources/v1/core.js';
import { labelsOf } from '../client/labels.js';
import { nodeSelectorTermMatches } from '../client/scheduling.js';
import { decodeBase64, expandSubPathExpr, secretBytes, type EnvVariable } from './env.js';
import { PodConfigError } from './pod-environment-types.js';

type Maybe<T> = T | undefined | Promise<T | undefined>;

/** Where the volume manager reads API objects (the agent backs it with informer caches); undefined = not found. */
export interface VolumeObjects {
  getConfigMap(namespace: string, name: string): Maybe<ConfigMap>;
  getSecret(namespace: string, name: string): Maybe<Secret>;
  getClaim(namespace: string, name: string): Maybe<PersistentVolumeClaim>;
  getVolume(name: string): Maybe<PersistentVolume>;
}

export interface VolumeManagerOptions {
  /** The agent's root directory (pods/ lives under it). */
  readonly rootDir: string;
  readonly objects: VolumeObjects;
  readonly nodeName: string;
  /** The Node's labels, for PersistentVolume node affinity (default: kubernetes.io/hostname only). */
  readonly nodeLabels?: () => Readonly<Record<string, string>>;
  /** Names the timestamped directories of configMap and secret volumes. */
  readonly now?: () => Date;
}

export const FAILED_MOUNT = 'FailedMount';
const CONFIG_ERROR = 'CreateContainerConfigError';
/** Kubernetes' default defaultMode of configMap and secret volumes (0644). */
const DEFAULT_FILE_MODE = 0o644;
const DATA_LINK = '..data';
const DATA_LINK_TMP = '..data_tmp';
/** The kubelet's AtomicWriter limits. */
const MAX_PATH_LENGTH = 4096;
const MAX_FILE_NAME_LENGTH = 255;

export const PLUGIN_DIRS = {
  emptyDir: 'kubernetes.io~empty-dir',
  configMap: 'kubernetes.io~configmap',
  secret: 'kubernetes.io~secret',
} as const;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorCode(error: unknown): string | undefined {
  return (error as { code?: unknown } | null)?.code as string | undefined;
}

function setUpFailed(volume: string, detail: string): PodConfigError {
  return new PodConfigError(FAILED_MOUNT, `MountVolume.SetUp failed for volume "${volume}" : ${detail}`);
}

async function statOrUndefined(path: string): Promise<Awaited<ReturnType<typeof stat>> | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return undefined;
    throw error;
  }
}

/**
 * The kubelet's hostPath type check (pkg/volume/hostpath checkType): ""
 * checks nothing; DirectoryOrCreate makes a 0755 directory and
 * FileOrCreate an empty 0644 file (its directory must exist) when nothing
 * is there; the others require what they name. Returns the problem, if any.
 */
export async function checkHostPathType(path: string, type: string): Promise<string | undefined> {
  const found = await statOrUndefined(path);
  switch (type) {
    case '':
      return undefined;
    case 'DirectoryOrCreate':
      if (found === undefined) {
        await mkdir(path, { recursive: true, mode: 0o755 });
        return undefined;
      }
      return found.isDirectory() ? undefined : `hostPath type check failed: ${path} is not a directory`;
    case 'Directory':
      return found?.isDirectory() === true ? undefined : `hostPath type check failed: ${path} is not a directory`;
    case 'FileOrCreate':
      if (found === undefined) {
        await (await open(path, 'a', 0o644)).close();
        return undefined;
      }
      return found.isFile() ? undefined : `hostPath type check failed: ${path} is not a file`;
    case 'File':
      return found?.isFile() === true ? undefined : `hostPath type check failed: ${path} is not a file`;
    case 'Socket':
      return found?.isSocket() === true ? undefined : `hostPath type check failed: ${path} is not a socket file`;
    case 'CharDevice':
      return found?.isCharacterDevice() === true ? undefined : `hostPath type check failed: ${path} is not a character device`;
    case 'BlockDevice':
      return found?.isBlockDevice() === true ? undefined : `hostPath type check failed: ${path} is not a block device`;
    default:
      return `${type} is an invalid volume type`;
  }
}

// ------------------------------------------------------------ atomic writer

export interface FileProjection {
  readonly data: Uint8Array;
  readonly mode: number;
}

/** AtomicWriter validatePath: relative, no '..' element, not starting with '..', bounded lengths. */
function validatePayloadPath(path: string): string | undefined {
  if (path === '') return `invalid path: must not be empty: "${path}"`;
  if (posix.isAbsolute(path)) return `invalid path: must be relative path: ${path}`;
  if (path.length > MAX_PATH_LENGTH) return `invalid path: must be less than or equal to ${MAX_PATH_LENGTH} characters`;
  const items = path.split('/');
  if (items.includes('..')) return `invalid path: must not contain '..': ${path}`;
  if (items.some((item) => item.length > MAX_FILE_NAME_LENGTH)) return `invalid path: filenames must be less than or equal to ${MAX_FILE_NAME_LENGTH} characters`;
  if ((items[0] ?? '').startsWith('..') && (items[0] ?? '').length > 2) return `invalid path: must not start with '..': ${path}`;
  return undefined;
}

/** Every file under `dir`, as relative paths with '/'. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...(await filesUnder(join(dir, entry.name), relative)));
    else files.push(relative);
  }
  return files;
}

/** Whether the data directory already holds exactly this payload (same files, bytes and modes). */
async function holdsPayload(dataDir: string, payload: ReadonlyMap<string, FileProjection>): Promise<boolean> {
  const existing = await filesUnder(dataDir);
  if (existing.length !== payload.size || existing.some((path) => !payload.has(path))) return false;
  for (const [path, file] of payload) {
    const full = join(dataDir, path);
    if (((await stat(full)).mode & 0o7777) !== (file.mode & 0o7777)) return false;
    if (!Buffer.from(file.data).equals(await readFile(full))) return false;
  }
  return true;
}

function timestamp(date: Date): string {
  const two = (value: number): string => String(value).padStart(2, '0');
  return `${date.getUTCFullYear()}_${two(date.getUTCMonth() + 1)}_${two(date.getUTCDate())}_${two(date.getUTCHours())}_${two(date.getUTCMinutes())}_${two(date.getUTCSeconds())}`;
}

/**
 * Project `payload` into `targetDir` atomically (the kubelet's
 * AtomicWriter.Write): unchanged payloads write nothing; otherwise a new
 * `..<timestamp>.<random>` directory is filled, `..data` is swapped to it
 * by rename, visible symlinks are added (and those of removed keys
 * dropped), and the previous directory is removed.
 */
export async function writeAtomically(targetDir: string, payload: ReadonlyMap<string, FileProjection>, now: Date): Promise<void> {
  const clean = new Map<string, FileProjection>();
  for (const [path, file] of payload) {
    const problem = validatePayloadPath(path);
    if (problem !== undefined) throw new Error(problem);
    clean.set(posix.normalize(path), file);
  }
  await mkdir(targetDir, { recursive: true });
  const dataLink = join(targetDir, DATA_LINK);
  let oldDir = '';
  try {
    oldDir = await readlink(dataLink);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
  const oldTop = new Set(oldDir === '' ? [] : await readdir(join(targetDir, oldDir)).catch(() => []));
  const write = oldDir === '' || !(await holdsPayload(join(targetDir, oldDir), clean).catch(() => false));
  if (write) {
    const dataDir = await mkdtemp(join(targetDir, `..${timestamp(now)}.`));
    await chmod(dataDir, 0o755);
    for (const [path, file] of clean) {
      const full = join(dataDir, path);
      await mkdir(dirname(full), { recursive: true, mode: 0o755 });
      await writeFile(full, file.data, { mode: file.mode });
      await chmod(full, file.mode & 0o7777);
    }
    const tmpLink = join(targetDir, DATA_LINK_TMP);
    await rm(tmpLink, { force: true });
    await symlink(basename(dataDir), tmpLink);
    await rename(tmpLink, dataLink);
  }
  const newTop = new Set([...clean.keys()].map((path) => path.split('/')[0] ?? path));
  for (const top of newTop) {
    const visible = join(targetDir, top);
    const present = await lstat(visible).catch(() => undefined);
    if (present?.isSymbolicLink() === true) continue;
    if (present !== undefined) await rm(visible, { recursive: true, force: true });
    await symlink(`${DATA_LINK}/${top}`, visible);
  }
  for (const top of oldTop) if (!newTop.has(top)) await rm(join(targetDir, top), { force: true });
  if (write && oldDir !== '') await rm(join(targetDir, oldDir), { recursive: true, force: true });
}

/** configmap/secret MakePayload: every key (defaultMode), or the listed items (their path and mode). */
function makePayload(values: ReadonlyMap<string, Uint8Array>, items: readonly KeyToPath[], defaultMode: number, optional: boolean, what: string): Map<string, FileProjection> {
  const payload = new Map<string, FileProjection>();
  if (items.length === 0) {
    for (const [key, data] of values) payload.set(key, { data, mode: defaultMode });
    return payload;
  }
  for (const item of items) {
    const data = values.get(item.key ?? '');
    if (data === undefined) {
      if (optional) continue;
      throw new Error(`${what} references non-existent ${what === 'configmap' ? 'config' : 'secret'} key: ${item.key ?? ''}`);
    }
    payload.set(item.path ?? item.key ?? '', { data, mode: item.mode ?? defaultMode });
  }
  return payload;
}

function configMapBytes(configMap: ConfigMap): Map<string, Uint8Array> {
  const values = new Map<string, Uint8Array>();
  const encoder = new TextEncoder();
  for (const [key, value] of Object.entries(configMap.data ?? {})) values.set(key, encoder.encode(value));
  for (const [key, value] of Object.entries(configMap.binaryData ?? {})) values.set(key, decodeBase64(value));
  return values;
}

// ------------------------------------------------------------ the manager

function subPathProblem(subPath: string): string | undefined {
  if (isAbsolute(subPath) || posix.isAbsolute(subPath)) return `error SubPath \`${subPath}\` must not be an absolute path`;
  if (subPath.split(/[\\/]/).includes('..')) return `unable to provision SubPath \`${subPath}\`: must not contain '..'`;
  return undefined;
}

function propagationOf(mount: VolumeMount): MountPropagation {
  if (mount.mountPropagation === 'HostToContainer') return MountPropagation.PROPAGATION_HOST_TO_CONTAINER;
  if (mount.mountPropagation === 'Bidirectional') return MountPropagation.PROPAGATION_BIDIRECTIONAL;
  return MountPropagation.PROPAGATION_PRIVATE;
}

export class VolumeManager {
  /** Writes in flight per target directory: one projection at a time. */
  private readonly writing = new Map<string, Promise<void>>();

  constructor(private readonly options: VolumeManagerOptions) {}

  podDir(podUid: string): string {
    return join(this.options.rootDir, 'pods', podUid);
  }

  /** A directory of the agent's for one container of the pod (the kubelet's pods/<uid>/containers/<name>). */
  containerDir(podUid: string, container: string): string {
    return join(this.podDir(podUid), 'containers', container);
  }

  private pluginDir(podUid: string, plugin: keyof typeof PLUGIN_DIRS, volume: string): string {
    return join(this.podDir(podUid), 'volumes', PLUGIN_DIRS[plugin], volume);
  }

  /** Materialise every volume of the pod (idempotent; configMaps and secrets are refreshed). Throws PodConfigError(FailedMount). */
  async prepare(pod: Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    if (uid === '') throw new PodConfigError(FAILED_MOUNT, `pod ${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''} has no uid`);
    for (const volume of pod.spec?.volumes ?? []) await this.prepareVolume(pod, volume);
  }

  private async prepareVolume(pod: Pod, volume: Volume): Promise<void> {
    const name = volume.name ?? '';
    const uid = pod.metadata?.uid ?? '';
    if (volume.emptyDir !== undefined) {
      const dir = this.pluginDir(uid, 'emptyDir', name);
      await mkdir(dir, { recursive: true });
      // The kubelet's emptyDir is world-writable, whatever the umask.
      await chmod(dir, 0o777);
    } else if (volume.hostPath !== undefined) {
      await this.checkHostPath(name, volume.hostPath, '');
    } else if (volume.configMap !== undefined || volume.secret !== undefined) {
      await this.project(pod, volume);
    } else if (volume.persistentVolumeClaim !== undefined) {
      await this.claimPath(pod, volume);
    } else {
      throw new PodConfigError(FAILED_MOUNT, `volume "${name}" has no source this node supports (emptyDir, hostPath, configMap, secret, persistentVolumeClaim)`);
    }
  }

  private async checkHostPath(volume: string, source: HostPathVolumeSource, defaultType: string): Promise<string> {
    const path = source.path ?? '';
    if (!isAbsolute(path)) throw setUpFailed(volume, `hostPath ${JSON.stringify(path)} is not an absolute path`);
    let problem: string | undefined;
    try {
      problem = await checkHostPathType(path, source.type === undefined || source.type === '' ? defaultType : source.type);
    } catch (error) {
      problem = `hostPath ${path}: ${errorText(error)}`;
    }
    if (problem !== undefined) throw setUpFailed(volume, problem);
    return path;
  }

  private async project(pod: Pod, volume: Volume): Promise<void> {
    const namespace = pod.metadata?.namespace ?? '';
    const name = volume.name ?? '';
    const isConfigMap = volume.configMap !== undefined;
    const source = isConfigMap ? volume.configMap! : volume.secret!;
    const objectName = (isConfigMap ? volume.configMap?.name : volume.secret?.secretName) ?? '';
    const optional = source.optional === true;
    const object = await (isConfigMap ? this.options.objects.getConfigMap(namespace, objectName) : this.options.objects.getSecret(namespace, objectName));
    const what = isConfigMap ? 'configmap' : 'secret';
    if (object === undefined && !optional) throw setUpFailed(name, `${what} "${objectName}" not found`);
    let values: Map<string, Uint8Array>;
    try {
      values = object === undefined ? new Map() : isConfigMap ? configMapBytes(object as ConfigMap) : secretBytes(object as Secret);
    } catch (error) {
      throw setUpFailed(name, `${what} "${objectName}": ${errorText(error)}`);
    }
    const dir = this.pluginDir(pod.metadata?.uid ?? '', isConfigMap ? 'configMap' : 'secret', name);
    const previous = this.writing.get(dir) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        const payload = makePayload(values, source.items ?? [], source.defaultMode ?? DEFAULT_FILE_MODE, optional, what);
        await writeAtomically(dir, payload, (this.options.now ?? (() => new Date()))());
      });
    this.writing.set(dir, next);
    try {
      await next;
    } catch (error) {
      throw setUpFailed(name, errorText(error));
    } finally {
      if (this.writing.get(dir) === next) this.writing.delete(dir);
    }
  }

  /**
   * The node directory behind a persistentVolumeClaim volume: the claim
   * must be Bound (spec.volumeName and status.phase) to a
   * PersistentVolume whose claimRef is that claim and whose node affinity
   * (if any) admits this node. A local PV's path must exist (as in
   * Kubernetes); a hostPath PV's is checked by its type, and made when it
   * has none (DirectoryOrCreate: what a statically provisioned hostPath
   * volume means on a fresh node). Throws PodConfigError(FailedMount).
   */
  private async claimPath(pod: Pod, volume: Volume): Promise<string> {
    const namespace = pod.metadata?.namespace ?? '';
    const claimName = volume.persistentVolumeClaim?.claimName ?? '';
    const claim = await this.options.objects.getClaim(namespace, claimName);
    if (claim === undefined) throw new PodConfigError(FAILED_MOUNT, `persistentvolumeclaim "${claimName}" not found`);
    const volumeName = claim.spec?.volumeName ?? '';
    if (volumeName === '' || claim.status?.phase !== 'Bound') throw new PodConfigError(FAILED_MOUNT, `persistentvolumeclaim "${claimName}" is not bound`);
    const pv = await this.options.objects.getVolume(volumeName);
    if (pv === undefined) throw new PodConfigError(FAILED_MOUNT, `persistentvolume "${volumeName}" (of persistentvolumeclaim "${claimName}") not found`);
    const claimRef = pv.spec?.claimRef;
    const claimUid = claim.metadata?.uid ?? '';
    if (claimRef === undefined || claimRef.name !== claimName || (claimRef.namespace ?? '') !== namespace || (claimRef.uid !== undefined && claimRef.uid !== '' && claimUid !== '' && claimRef.uid !== claimUid)) {
      throw new PodConfigError(FAILED_MOUNT, `persistentvolume "${volumeName}" is not bound to persistentvolumeclaim "${namespace}/${claimName}"`);
    }
    const terms = pv.spec?.nodeAffinity?.required?.nodeSelectorTerms;
    if (terms !== undefined) {
      const labels = labelsOf(this.options.nodeLabels?.() ?? { 'kubernetes.io/hostname': this.options.nodeName });
      if (!terms.some((term) => nodeSelectorTermMatches(term, this.options.nodeName, labels))) {
        throw new PodConfigError(FAILED_MOUNT, `persistentvolume "${volumeName}" has a node affinity that node "${this.options.nodeName}" does not match`);
      }
    }
    const name = volume.name ?? '';
    if (pv.spec?.local !== undefined) {
      const path = pv.spec.local.path ?? '';
      if (!isAbsolute(path) || (await statOrUndefined(path))?.isDirectory() !== true) {
        throw setUpFailed(name, `local persistentvolume "${volumeName}": path ${JSON.stringify(path)} does not exist or is not a directory on node "${this.options.nodeName}"`);
      }
      return path;
    }
    if (pv.spec?.hostPath !== undefined) return this.checkHostPath(name, pv.spec.hostPath, 'DirectoryOrCreate');
    throw setUpFailed(name, `persistentvolume "${volumeName}": only local and hostPath volumes can be used on this node`);
  }

  /** The host directory (or file) a volume is, once prepared. */
  async volumePath(pod: Pod, volume: Volume): Promise<string> {
    const uid = pod.metadata?.uid ?? '';
    const name = volume.name ?? '';
    if (volume.emptyDir !== undefined) return this.pluginDir(uid, 'emptyDir', name);
    if (volume.configMap !== undefined) return this.pluginDir(uid, 'configMap', name);
    if (volume.secret !== undefined) return this.pluginDir(uid, 'secret', name);
    if (volume.hostPath !== undefined) return volume.hostPath.path ?? '';
    if (volume.persistentVolumeClaim !== undefined) return this.claimPath(pod, volume);
    throw new PodConfigError(FAILED_MOUNT, `volume "${name}" has no source this node supports`);
  }

  /**
   * A container's CRI mounts, from its volumeMounts (kubelet makeMounts):
   * read-only when the mount says so, for configMap and secret volumes
   * (always read-only in Kubernetes) and for claims mounted readOnly. A
   * subPath (or subPathExpr, expanded from `env`) must be relative without
   * '..'; it is made as a directory inside the volume if missing, and must
   * not lead out of the volume through a symlink. The path handed over is
   * the unresolved one (a configMap key stays a link through ..data).
   * Throws PodConfigError(CreateContainerConfigError).
   */
  async mounts(pod: Pod, container: Container, env: readonly EnvVariable[] = []): Promise<Mount[]> {
    const volumes = new Map((pod.spec?.volumes ?? []).map((volume) => [volume.name ?? '', volume]));
    const mounts: Mount[] = [];
    for (const mount of container.volumeMounts ?? []) {
      const volume = volumes.get(mount.name ?? '');
      if (volume === undefined) throw new PodConfigError(CONFIG_ERROR, `cannot find volume "${mount.name ?? ''}" to mount into container "${container.name ?? ''}"`);
      let hostPath = await this.volumePath(pod, volume);
      const subPath = mount.subPathExpr !== undefined && mount.subPathExpr !== '' ? expandSubPathExpr(mount, env) : (mount.subPath ?? '');
      if (subPath !== '') hostPath = await this.subPath(hostPath, subPath, mount, container);
      const readonly = mount.readOnly === true || volume.configMap !== undefined || volume.secret !== undefined || volume.persistentVolumeClaim?.readOnly === true;
      mounts.push(Mount.fromPartial({ containerPath: mount.mountPath ?? '', hostPath, readonly, propagation: propagationOf(mount) }));
    }
    return mounts;
  }

  private async subPath(volumePath: string, subPath: string, mount: VolumeMount, container: Container): Promise<string> {
    const problem = subPathProblem(subPath);
    if (problem !== undefined) throw new PodConfigError(CONFIG_ERROR, problem);
    const full = join(volumePath, subPath);
    const where = `volumeMount "${mount.name ?? ''}" of container "${container.name ?? ''}"`;
    try {
      if ((await lstat(full).catch(() => undefined)) === undefined) {
        const mode = (await stat(volumePath)).mode & 0o7777;
        await mkdir(full, { recursive: true, mode });
      }
      const base = await realpath(volumePath);
      const resolved = await realpath(full);
      if (resolved !== base && !resolved.startsWith(base + sep)) throw new PodConfigError(CONFIG_ERROR, `subPath "${subPath}" of ${where} resolves to ${resolved}, outside its volume`);
    } catch (error) {
      if (error instanceof PodConfigError) throw error;
      throw new PodConfigError(CONFIG_ERROR, `failed to create subPath directory for ${where}: ${errorText(error)}`);
    }
    return full;
  }

  /** Remove the pod's directory (volumes it made, per-container files); hostPath and PV contents are left alone. */
  async cleanup(podUid: string): Promise<void> {
    if (podUid === '' || podUid.includes('/') || podUid === '..' || podUid === '.') return;
    await rm(this.podDir(podUid), { recursive: true, force: true, maxRetries: 3 });
  }
}
