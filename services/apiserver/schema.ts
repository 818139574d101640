// Strict decoding of Kubernetes-shaped JSON against the schema generated from
// proto/resources (proto/gen/resources/v1/schema.ts): every field must be
// one the kind has, with the right type. Nothing is silently dropped — an
// unknown or mistyped field is an error naming its path, the way
// `kubectl apply --validate=strict` reports it.
//
// The result is a normalized copy: nulls removed (Kubernetes reads null as
// unset), quantities written as numbers in YAML (`cpu: 1`) turned into their
// string form. Pure: no I/O.

import { RESOURCE_SCHEMA, type FieldType } from '../../proto/gen/resources/v1/schema.js';
import { isQuantity } from '../client/quantity.js';

export interface FieldError {
  /** JSON path of the offending field, e.g. spec.containers[0].ports[1].containerPort */
  readonly path: string;
  readonly message: string;
}

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}

/** A JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

class Decoder {
  readonly errors: FieldError[] = [];

  fail(path: string, message: string): undefined {
    this.errors.push({ path: path === '' ? '(root)' : path, message });
    return undefined;
  }

  message(name: string, value: unknown, path: string): Record<string, Json> | undefined {
    const fields = RESOURCE_SCHEMA[name];
    if (fields === undefined) throw new Error(`no schema for message ${name}`);
    if (!isJsonObject(value)) return this.fail(path, `must be an object, not ${describe(value)}`);
    const out: Record<string, Json> = {};
    for (const [key, field] of Object.entries(value)) {
      const type = fields[key];
      const at = join(path, key);
      if (type === undefined) {
        this.fail(at, `unknown field "${key}"`);
        continue;
      }
      if (field === null || field === undefined) continue;
      const decoded = this.field(type, field, at);
      if (decoded !== undefined) out[key] = decoded;
    }
    return out;
  }

  field(type: FieldType, value: unknown, path: string): Json | undefined {
    if (typeof type === 'string') return this.single(type, value, path);
    if ('list' in type) {
      if (!Array.isArray(value)) return this.fail(path, `must be a list, not ${describe(value)}`);
      const out: Json[] = [];
      value.forEach((item, index) => {
        const decoded = item === null ? this.fail(`${path}[${index}]`, 'must not be null') : this.single(type.list, item, `${path}[${index}]`);
        if (decoded !== undefined) out.push(decoded);
      });
      return out;
    }
    if (!isJsonObject(value)) return this.fail(path, `must be a map, not ${describe(value)}`);
    const out: Record<string, Json> = {};
    for (const [key, item] of Object.entries(value)) {
      const decoded = this.single(type.map, item, `${path}[${JSON.stringify(key)}]`);
      if (decoded !== undefined) out[key] = decoded;
    }
    return out;
  }

  single(type: string, value: unknown, path: string): Json | undefined {
    switch (type) {
      case 'string':
        return typeof value === 'string' ? value : this.fail(path, `must be a string, not ${describe(value)}`);
      case 'bool':
        return typeof value === 'boolean' ? value : this.fail(path, `must be true or false, not ${describe(value)}`);
      case 'int32':
      case 'int64':
      case 'uint32':
      case 'uint64': {
        if (typeof value !== 'number' || !Number.isInteger(value)) return this.fail(path, `must be an integer, not ${describe(value)}`);
        if (type === 'int32' && (value < INT32_MIN || value > INT32_MAX)) return this.fail(path, `${value} does not fit in 32 bits`);
        if (type.startsWith('uint') && value < 0) return this.fail(path, `must not be negative, not ${value}`);
        if (!Number.isSafeInteger(value)) return this.fail(path, `${value} is too large`);
        return value;
      }
      case 'double':
        return typeof value === 'number' && Number.isFinite(value) ? value : this.fail(path, `must be a number, not ${describe(value)}`);
      case 'Quantity': {
        const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
        if (typeof text !== 'string' || !isQuantity(text)) {
          return this.fail(path, `must be a quantity such as 100m, 0.5, 128Mi or 1G, not ${describe(value)}`);
        }
        return text;
      }
      case 'IntOrString':
        if (typeof value === 'number' && Number.isInteger(value)) return value;
        if (typeof value === 'string' && value !== '') return value;
        return this.fail(path, `must be an integer or a non-empty string, not ${describe(value)}`);
      default:
        return this.message(type, value, path);
    }
  }
}

/** Decode `value` as the message `name` (a kind's message, e.g. "Pod"). */
export function decodeStrict(name: string, value: unknown): { value: Record<string, Json> | undefined; errors: FieldError[] } {
  const decoder = new Decoder();
  const decoded = decoder.message(name, value, '');
  return { value: decoder.errors.length === 0 ? decoded : undefined, errors: decoder.errors };
}

export function hasMessage(name: string): boolean {
  return RESOURCE_SCHEMA[name] !== undefined;
}
