// Reading manifests as kubectl does: a file, every .yaml/.yml/.json file of a
// directory (sorted), or standard input; YAML with several documents
// separated by "---"; a List's items. Errors name the file and document.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../client/resources.js';

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

export interface Manifest {
  readonly source: string;
  readonly object: KubeObject;
}

export function parseManifests(text: string, source: string): Manifest[] {
  const manifests: Manifest[] = [];
  parseAllDocuments(text).forEach((document, index) => {
    const where = `${source} (document ${index + 1})`;
    if (document.errors.length > 0) throw new ManifestError(`${where}: ${document.errors[0]!.message}`);
    const value: unknown = document.toJS();
    if (value === null || value === undefined) return; // an empty document
    if (typeof value !== 'object' || Array.isArray(value)) throw new ManifestError(`${where}: expected an object with apiVersion and kind`);
    const object = value as KubeObject;
    if (object.kind === 'List' && Array.isArray(object.items)) {
      for (const item of object.items as KubeObject[]) manifests.push({ source: where, object: item });
      return;
    }
    if (typeof object.kind !== 'string' || typeof object.apiVersion !== 'string') throw new ManifestError(`${where}: apiVersion and kind are required`);
    manifests.push({ source: where, object });
  });
  return manifests;
}

export function readManifests(path: string, readStdin: () => string): Manifest[] {
  if (path === '-') return parseManifests(readStdin(), '<stdin>');
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ManifestError(`${path}: no such file or directory`);
  }
  if (stat.isDirectory()) {
    return readdirSync(path)
      .filter((name) => /\.(ya?ml|json)$/.test(name))
      .sort()
      .flatMap((name) => parseManifests(readFileSync(join(path, name), 'utf8'), join(path, name)));
  }
  return parseManifests(readFileSync(path, 'utf8'), path);
}
