// mast cri's image table: there are no image files, only a table saying how
// a container of each image repository runs on the host. References are
// normalised the way containerd does (busybox = docker.io/library/busybox:latest),
// and any tag or digest of a repository in the table is that entry.
// Pure data and lookups; services/cri/README.md documents the table and the
// --image-table file format.

import { createHash } from 'node:crypto';

export interface ImageEntry {
  /** Normalised repository, e.g. docker.io/library/busybox. */
  readonly repo: string;
  /** Short name in messages and help, e.g. busybox. */
  readonly name: string;
  /** The image's entrypoint on the host: runs when the pod gives no command. */
  readonly command: readonly string[];
  /** The image's default arguments: used when the pod gives neither command nor args. */
  readonly defaultArgs: readonly string[];
  /** Program name (or path) in a pod's command → the host command that replaces it. */
  readonly programs: Readonly<Record<string, readonly string[]>>;
  /** Programs named in a pod's command run as applets of the host's busybox, when it has one. */
  readonly applets: boolean;
  /** A sandbox (pause) image: kept out of garbage collection. */
  readonly pinned: boolean;
}

/** Entries by normalised repository, in listing order. */
export type ImageTable = ReadonlyMap<string, ImageEntry>;

export interface ImageReference {
  /** Normalised repository, e.g. docker.io/library/busybox. */
  readonly repo: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
  /** The full normalised reference, e.g. docker.io/library/busybox:latest. */
  readonly normalised: string;
}

export class ImageReferenceError extends Error {
  override readonly name = 'ImageReferenceError';
}

export class ImageTableError extends Error {
  override readonly name = 'ImageTableError';
}

const DEFAULT_DOMAIN = 'docker.io';
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
const DOMAIN = /^[a-zA-Z0-9.-]+(?::\d+)?$/;
const IMAGE_ID = /^(?:sha256:)?([a-f0-9]{64})$/;

/** Docker's reference grammar, normalised as containerd's ParseNormalizedNamed does. */
export function parseImageReference(reference: string): ImageReference {
  let rest = reference.trim();
  if (rest === '') throw new ImageReferenceError('empty image reference');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new ImageReferenceError(`image reference "${reference}": invalid digest "${digest}"`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ImageReferenceError(`image reference "${reference}": invalid tag "${tag}"`);
  }
  const repo = normaliseRepository(rest, reference);
  const suffix = (tag !== undefined ? `:${tag}` : digest === undefined ? ':latest' : '') + (digest !== undefined ? `@${digest}` : '');
  return { repo, tag, digest, normalised: `${repo}${suffix}` };
}

function normaliseRepository(name: string, reference: string): string {
  let domain = DEFAULT_DOMAIN;
  let path = name;
  const slash = name.indexOf('/');
  if (slash >= 0) {
    const first = name.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = name.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (!DOMAIN.test(domain)) throw new ImageReferenceError(`image reference "${reference}": invalid registry "${domain}"`);
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw new ImageReferenceError(`image reference "${reference}": invalid repository name "${path}" (lowercase letters, digits and separators only)`);
    }
  }
  return `${domain}/${path}`;
}

/** The image id mast cri reports for a repository: "sha256:" + sha256 of its name. */
export function imageId(repo: string): string {
  return `sha256:${createHash('sha256').update(repo).digest('hex')}`;
}

export interface ImageMatch {
  readonly entry: ImageEntry;
  readonly id: string;
  /** Undefined when the image was named by its id. */
  readonly reference: ImageReference | undefined;
}

/**
 * The table entry a reference or image id names, or undefined.
 * Throws ImageReferenceError for a malformed reference.
 */
export function findImage(table: ImageTable, reference: string): ImageMatch | undefined {
  const byId = IMAGE_ID.exec(reference.trim());
  if (byId !== null) {
    const id = `sha256:${byId[1]}`;
    for (const entry of table.values()) if (imageId(entry.repo) === id) return { entry, id, reference: undefined };
    if (reference.startsWith('sha256:')) return undefined;
  }
  const parsed = parseImageReference(reference);
  const entry = table.get(parsed.repo);
  return entry === undefined ? undefined : { entry, id: imageId(entry.repo), reference: parsed };
}

/** Short names of the table's entries, without repeats, e.g. "busybox, node, ..., pause". */
export function knownImageNames(table: ImageTable): string {
  return [...new Set([...table.values()].map((entry) => entry.name))].join(', ');
}

/** Why a reference cannot be pulled, naming it normalised and the images there are. */
export function notInTableMessage(table: ImageTable, reference: string): string {
  let shown = reference;
  try {
    if (!IMAGE_ID.test(reference.trim())) shown = parseImageReference(reference).normalised;
  } catch {
    // Shown as given.
  }
  return `image "${shown}" is not in mast cri's image table (known: ${knownImageNames(table)}); add it with --image-table`;
}

export interface BuiltinPrograms {
  /** The Node.js binary (process.execPath). */
  readonly node: string;
  /** The compiled built-in HTTP server script (services/cri/images/httpd.js). */
  readonly httpdScript: string;
  /** The compiled built-in pause script (services/cri/images/pause.js). */
  readonly pauseScript: string;
}

function entry(repo: string, name: string, fields: Partial<Omit<ImageEntry, 'repo' | 'name'>>): ImageEntry {
  return { repo, name, command: [], defaultArgs: [], programs: {}, applets: false, pinned: false, ...fields };
}

/** The images mast cri knows without an --image-table file. */
export function builtinImageTable(programs: BuiltinPrograms): Map<string, ImageEntry> {
  const httpd = (flavor: string): readonly string[] => [programs.node, programs.httpdScript, '--flavor', flavor];
  const pause = entry('', 'pause', { command: [programs.node, programs.pauseScript], pinned: true });
  const entries: ImageEntry[] = [
    entry('docker.io/library/busybox', 'busybox', { defaultArgs: ['sh'], applets: true }),
    entry('docker.io/library/node', 'node', { command: [programs.node], programs: { node: [programs.node], nodejs: [programs.node] } }),
    entry('docker.io/library/httpd', 'httpd', { command: httpd('httpd'), programs: { httpd: httpd('httpd'), 'httpd-foreground': httpd('httpd') } }),
    entry('docker.io/library/nginx', 'nginx', { command: httpd('nginx'), programs: { nginx: httpd('nginx') } }),
    entry('docker.io/library/host', 'host', {}),
    ...['docker.io/library/pause', 'registry.k8s.io/pause', 'k8s.gcr.io/pause', 'docker.io/local/pause'].map((repo) => ({ ...pause, repo })),
  ];
  return new Map(entries.map((image) => [image.repo, image]));
}

const ENTRY_FIELDS = new Set(['command', 'defaultArgs', 'programs', 'applets']);

function stringArray(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new ImageTableError(`${where} must be an array of strings`);
  return value as string[];
}

function parseEntry(key: string, value: unknown, source: string): ImageEntry {
  const where = `${source}: "${key}"`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ImageTableError(`${where} must be an object`);
  const fields = value as Record<string, unknown>;
  for (const field of Object.keys(fields)) {
    if (!ENTRY_FIELDS.has(field)) throw new ImageTableError(`${where}: unknown field "${field}" (known: ${[...ENTRY_FIELDS].join(', ')})`);
  }
  let reference: ImageReference;
  try {
    reference = parseImageReference(key);
  } catch (error) {
    throw new ImageTableError(`${where}: ${(error as Error).message}`);
  }
  if (reference.digest !== undefined || reference.tag !== undefined) throw new ImageTableError(`${where}: keys name a repository, without a tag or digest (every tag matches)`);
  const programs: Record<string, readonly string[]> = {};
  if (fields.programs !== undefined) {
    if (typeof fields.programs !== 'object' || fields.programs === null || Array.isArray(fields.programs)) throw new ImageTableError(`${where}.programs must be an object`);
    for (const [program, command] of Object.entries(fields.programs)) {
      const list = stringArray(command, `${where}.programs.${program}`);
      if (list.length === 0) throw new ImageTableError(`${where}.programs.${program} must not be empty`);
      programs[program] = list;
    }
  }
  if (fields.applets !== undefined && typeof fields.applets !== 'boolean') throw new ImageTableError(`${where}.applets must be true or false`);
  return entry(reference.repo, key, {
    command: fields.command === undefined ? [] : stringArray(fields.command, `${where}.command`),
    defaultArgs: fields.defaultArgs === undefined ? [] : stringArray(fields.defaultArgs, `${where}.defaultArgs`),
    programs,
    applets: fields.applets === true,
  });
}

/**
 * The table with an --image-table document's entries added or replacing
 * built-in ones. `source` names the document in error messages.
 */
export function extendImageTable(base: ImageTable, document: unknown, source: string): Map<string, ImageEntry> {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new ImageTableError(`${source}: the image table must be a JSON object of repository → entry`);
  }
  const table = new Map(base);
  for (const [key, value] of Object.entries(document)) {
    const parsed = parseEntry(key, value, source);
    table.set(parsed.repo, parsed);
  }
  return table;
}
