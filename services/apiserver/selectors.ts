// Label and field selectors, as kubectl and Kubernetes write them:
//   labels:  "app=web,tier!=db", "env in (prod, staging)", "env notin (dev)",
//            "release", "!release"; or a LabelSelector (matchLabels +
//            matchExpressions with In, NotIn, Exists, DoesNotExist)
//   fields:  "metadata.name=x,spec.nodeName!=n1" over the fields a kind
//            supports (metadata.name, metadata.namespace, spec.nodeName,
//            status.phase)
// Parse errors name the offending part. Keys and values follow the label
// rules of validation.ts. Pure.

import { labelRequirementMatches } from '../client/labels.js';
import { labelValue, qualifiedName } from './validation.js';

export type Requirement =
  | { readonly key: string; readonly op: 'in' | 'notin'; readonly values: readonly string[] }
  | { readonly key: string; readonly op: 'exists' | 'doesnotexist' };

export class SelectorError extends Error {
  override readonly name = 'SelectorError';
}

export interface LabelSelectorObject {
  matchLabels?: Record<string, string> | undefined;
  matchExpressions?: ReadonlyArray<{ key?: string | undefined; operator?: string | undefined; values?: readonly string[] | undefined }> | undefined;
}

function checkKey(key: string, whole: string): string {
  if (qualifiedName(key, '').length > 0) throw new SelectorError(`invalid label key "${key}" in selector "${whole}"`);
  return key;
}

function checkValue(value: string, whole: string): string {
  if (labelValue(value, '').length > 0) throw new SelectorError(`invalid label value "${value}" in selector "${whole}"`);
  return value;
}

/** Split on commas that are not inside parentheses. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (char === '(') depth++;
    else if (char === ')') depth--;
    else if (char === ',' && depth === 0) {
      terms.push(text.slice(start, index));
      start = index + 1;
    }
  }
  terms.push(text.slice(start));
  return terms.map((term) => term.trim());
}

export function parseLabelSelector(text: string): Requirement[] {
  if (text.trim() === '') return [];
  const requirements: Requirement[] = [];
  for (const term of splitTerms(text)) {
    if (term === '') throw new SelectorError(`empty term in selector "${text}"`);
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term);
    if (set !== null) {
      const values = set[3]!.split(',').map((value) => value.trim());
      if (values.length === 1 && values[0] === '') throw new SelectorError(`"${term}" needs at least one value in selector "${text}"`);
      requirements.push({ key: checkKey(set[1]!, text), op: set[2] as 'in' | 'notin', values: values.map((value) => checkValue(value, text)) });
      continue;
    }
    const equality = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (equality !== null) {
      const values = [checkValue(equality[3]!, text)];
      requirements.push({ key: checkKey(equality[1]!, text), op: equality[2] === '!=' ? 'notin' : 'in', values });
      continue;
    }
    if (term.startsWith('!')) {
      requirements.push({ key: checkKey(term.slice(1).trim(), text), op: 'doesnotexist' });
      continue;
    }
    if (/^\S+$/.test(term)) {
      requirements.push({ key: checkKey(term, text), op: 'exists' });
      continue;
    }
    throw new SelectorError(`cannot parse "${term}" in selector "${text}" (expected key=value, key!=value, key in (a,b), key notin (a,b), key or !key)`);
  }
  return requirements;
}

/** A LabelSelector object as requirements; `path` names it in errors. */
export function labelSelectorRequirements(selector: LabelSelectorObject, path = 'selector'): Requirement[] {
  const requirements: Requirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    requirements.push({ key: checkKey(key, path), op: 'in', values: [checkValue(value, path)] });
  }
  (selector.matchExpressions ?? []).forEach((expression, index) => {
    const at = `${path}.matchExpressions[${index}]`;
    const key = checkKey(expression.key ?? '', at);
    const values = expression.values ?? [];
    switch (expression.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) throw new SelectorError(`${at}.values: must be non-empty for operator ${expression.operator}`);
        requirements.push({ key, op: expression.operator === 'In' ? 'in' : 'notin', values: values.map((value) => checkValue(value, at)) });
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0) throw new SelectorError(`${at}.values: must be empty for operator ${expression.operator}`);
        requirements.push({ key, op: expression.operator === 'Exists' ? 'exists' : 'doesnotexist' });
        break;
      default:
        throw new SelectorError(`${at}.operator: must be In, NotIn, Exists or DoesNotExist, not ${JSON.stringify(expression.operator ?? null)}`);
    }
  });
  return requirements;
}

/** The Kubernetes operator each parsed requirement stands for. */
const OPERATOR: Readonly<Record<Requirement['op'], string>> = { in: 'In', notin: 'NotIn', exists: 'Exists', doesnotexist: 'DoesNotExist' };

/** Whether the labels meet every requirement (evaluated as services/client/labels.ts evaluates a LabelSelector). */
export function matchesLabels(requirements: readonly Requirement[], labels: Readonly<Record<string, string>> | undefined): boolean {
  const have = labels ?? {};
  return requirements.every((requirement) =>
    labelRequirementMatches(OPERATOR[requirement.op], 'values' in requirement ? requirement.values : [], Object.prototype.hasOwnProperty.call(have, requirement.key) ? have[requirement.key] : undefined),
  );
}

export interface FieldRequirement {
  readonly field: string;
  readonly op: '=' | '!=';
  readonly value: string;
}

/** The fields every kind can be selected on; kinds add theirs (Pod: spec.nodeName, status.phase). */
export const COMMON_FIELDS = ['metadata.name', 'metadata.namespace'] as const;

export function parseFieldSelector(text: string, supported: readonly string[]): FieldRequirement[] {
  if (text.trim() === '') return [];
  return text.split(',').map((raw) => {
    const term = raw.trim();
    const match = /^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (match === null) throw new SelectorError(`cannot parse "${term}" in field selector "${text}" (expected field=value or field!=value)`);
    const field = match[1]!;
    if (!supported.includes(field)) throw new SelectorError(`field "${field}" is not supported for selection here; supported: ${supported.join(', ')}`);
    return { field, op: match[2] === '!=' ? '!=' : '=', value: match[3]!.trim() };
  });
}

function fieldValue(object: unknown, path: string): string {
  let value: unknown = object;
  for (const part of path.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
  return value === undefined || value === null ? '' : String(value);
}

export function matchesFields(requirements: readonly FieldRequirement[], object: unknown): boolean {
  return requirements.every((requirement) => (fieldValue(object, requirement.field) === requirement.value) === (requirement.op === '='));
}
