// Checks every kind shares: the object's apiVersion and kind, and its
// metadata — DNS-1123 names, label and annotation syntax, namespace
// presence. Kind-specific checks live with each kind's strategy. Messages
// name the field and say what is allowed, as Kubernetes' do. Pure.

import type { FieldError } from './schema.js';
import type { KindInfo } from '../client/kinds.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const MAX_ANNOTATION_BYTES = 256 * 1024;

/** Kinds whose names become DNS labels (a Service name is a host name; a namespace is one too). */
const LABEL_NAMED = new Set(['Namespace', 'Service']);

export function dns1123Label(value: string, path: string): FieldError[] {
  if (value.length > 63) return [{ path, message: `"${value}" is longer than 63 characters` }];
  if (!DNS1123_LABEL.test(value)) {
    return [{ path, message: `"${value}" must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit` }];
  }
  return [];
}

export function dns1123Subdomain(value: string, path: string): FieldError[] {
  if (value.length > 253) return [{ path, message: `"${value.slice(0, 40)}…" is longer than 253 characters` }];
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return [{ path, message: `"${value}" must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit` }];
  }
  return [];
}

/** A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters. */
export function qualifiedName(key: string, path: string): FieldError[] {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const errors: FieldError[] = [];
  if (prefix !== undefined) {
    if (prefix === '') errors.push({ path, message: `key "${key}" has an empty prefix before '/'` });
    else errors.push(...dns1123Subdomain(prefix, path).map((error) => ({ ...error, message: `the prefix of key "${key}": ${error.message}` })));
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    errors.push({ path, message: `key "${key}": the name part must be 1-63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit` });
  }
  return errors;
}

export function labelValue(value: string, path: string): FieldError[] {
  if (value.length > 63 || !LABEL_VALUE.test(value)) {
    return [{ path, message: `"${value}" must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit (or empty)` }];
  }
  return [];
}

/** Kinds whose names need only be a path segment, as in Kubernetes (RBAC names such as "system:node"). */
const PATH_SEGMENT_NAMED = new Set(['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding']);

/** Kubernetes' path segment names: anything but "." and "..", without "/" or "%", at most 253 characters. */
export function pathSegmentName(value: string, path: string): FieldError[] {
  if (value === '.' || value === '..') return [{ path, message: `"${value}" may not be "." or ".."` }];
  if (/[/%]/.test(value)) return [{ path, message: `"${value}" may not contain "/" or "%"` }];
  if (value.length > 253) return [{ path, message: `must be no more than 253 characters` }];
  return [];
}

export interface MetaLike {
  name?: string | undefined;
  generateName?: string | undefined;
  namespace?: string | undefined;
  labels?: Record<string, string> | undefined;
  annotations?: Record<string, string> | undefined;
}

/** The object's apiVersion/kind and metadata, as created or updated (name may come from generateName later). */
export function validateObjectMeta(info: KindInfo, object: { apiVersion?: unknown; kind?: unknown; metadata?: MetaLike | undefined }): FieldError[] {
  const errors: FieldError[] = [];
  if (object.kind !== info.kind) errors.push({ path: 'kind', message: `must be "${info.kind}", not ${JSON.stringify(object.kind ?? null)}` });
  if (object.apiVersion !== info.apiVersion) errors.push({ path: 'apiVersion', message: `must be "${info.apiVersion}" for ${info.kind}, not ${JSON.stringify(object.apiVersion ?? null)}` });
  const meta = object.metadata;
  if (meta === undefined) return [...errors, { path: 'metadata', message: 'is required' }];
  const nameCheck = LABEL_NAMED.has(info.kind) ? dns1123Label : PATH_SEGMENT_NAMED.has(info.kind) ? pathSegmentName : dns1123Subdomain;
  if (meta.name !== undefined && meta.name !== '') errors.push(...nameCheck(meta.name, 'metadata.name'));
  else if (meta.generateName === undefined || meta.generateName === '') errors.push({ path: 'metadata.name', message: 'name or generateName is required' });
  else errors.push(...nameCheck(`${meta.generateName}x`, 'metadata.generateName').map((error) => ({ ...error, message: `prefix "${meta.generateName}" cannot start a valid name` })));
  if (info.namespaced) {
    if (meta.namespace !== undefined && meta.namespace !== '') errors.push(...dns1123Label(meta.namespace, 'metadata.namespace'));
  } else if (meta.namespace !== undefined && meta.namespace !== '') {
    errors.push({ path: 'metadata.namespace', message: `${info.kind} is not namespaced; remove the namespace "${meta.namespace}"` });
  }
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    errors.push(...qualifiedName(key, `metadata.labels[${JSON.stringify(key)}]`), ...labelValue(value, `metadata.labels[${JSON.stringify(key)}]`));
  }
  let annotationBytes = 0;
  for (const [key, value] of Object.entries(meta.annotations ?? {})) {
    errors.push(...qualifiedName(key, `metadata.annotations[${JSON.stringify(key)}]`));
    annotationBytes += key.length + value.length;
  }
  if (annotationBytes > MAX_ANNOTATION_BYTES) errors.push({ path: 'metadata.annotations', message: `${annotationBytes} bytes in total; at most ${MAX_ANNOTATION_BYTES}` });
  return errors;
}
