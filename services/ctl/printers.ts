// How `mastctl get` prints objects: kubectl's tables per kind (default and
// -o wide), yaml, json and name. Pure: objects and the current time in,
// text out.

import { stringify } from 'yaml';
import type { KubeObject } from '../client/resources.js';

type Row = Record<string, string>;
type Column = readonly [header: string, value: (object: KubeObject, now: Date) => string, wideOnly?: boolean];

/** kubectl's age (apimachinery's HumanDuration): 45s, 7m30s, 150m, 5h20m, 34h, 3d4h, 55d, 2y30d. */
export function age(timestamp: unknown, now: Date): string {
  if (typeof timestamp !== 'string') return '<unknown>';
  const seconds = Math.floor((now.getTime() - Date.parse(timestamp)) / 1000);
  if (Number.isNaN(seconds)) return '<unknown>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

const get = (object: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((value, part) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined), object);
const num = (value: unknown): number => (typeof value === 'number' ? value : 0);
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

function podStatus(pod: KubeObject): string {
  if (get(pod, 'metadata.deletionTimestamp') !== undefined) return 'Terminating';
  for (const status of list(get(pod, 'status.containerStatuses'))) {
    const waiting = get(status, 'state.waiting.reason');
    if (typeof waiting === 'string' && waiting !== '') return waiting;
    const terminated = get(status, 'state.terminated.reason');
    if (typeof terminated === 'string' && terminated !== '' && get(pod, 'status.phase') !== 'Succeeded') return terminated;
  }
  const phase = get(pod, 'status.phase');
  return typeof phase === 'string' && phase !== '' ? phase : 'Pending';
}

function servicePorts(service: KubeObject): string {
  const ports = list(get(service, 'spec.ports')).map((port) => {
    const nodePort = get(port, 'nodePort');
    return `${String(get(port, 'port'))}${nodePort !== undefined ? `:${String(nodePort)}` : ''}/${String(get(port, 'protocol') ?? 'TCP')}`;
  });
  return ports.length === 0 ? '<none>' : ports.join(',');
}

const NAME: Column = ['NAME', (object) => String(get(object, 'metadata.name') ?? '')];
const AGE: Column = ['AGE', (object, now) => age(get(object, 'metadata.creationTimestamp'), now)];
const readyOf = (object: KubeObject, desired: string): string => `${num(get(object, 'status.readyReplicas'))}/${num(get(object, desired))}`;

const COLUMNS: Readonly<Record<string, readonly Column[]>> = {
  Pod: [
    NAME,
    ['READY', (pod) => { const statuses = list(get(pod, 'status.containerStatuses')); return `${statuses.filter((status) => get(status, 'ready') === true).length}/${list(get(pod, 'spec.containers')).length}`; }],
    ['STATUS', podStatus],
    ['RESTARTS', (pod) => String(list(get(pod, 'status.containerStatuses')).reduce<number>((sum, status) => sum + num(get(status, 'restartCount')), 0))],
    AGE,
    ['IP', (pod) => String(get(pod, 'status.podIP') ?? '<none>'), true],
    ['NODE', (pod) => String(get(pod, 'spec.nodeName') ?? '<none>'), true],
  ],
  Deployment: [NAME, ['READY', (d) => readyOf(d, 'spec.replicas')], ['UP-TO-DATE', (d) => String(num(get(d, 'status.updatedReplicas')))], ['AVAILABLE', (d) => String(num(get(d, 'status.availableReplicas')))], AGE],
  ReplicaSet: [NAME, ['DESIRED', (r) => String(num(get(r, 'spec.replicas')))], ['CURRENT', (r) => String(num(get(r, 'status.replicas')))], ['READY', (r) => String(num(get(r, 'status.readyReplicas')))], AGE],
  StatefulSet: [NAME, ['READY', (s) => readyOf(s, 'spec.replicas')], AGE],
  DaemonSet: [NAME, ['DESIRED', (d) => String(num(get(d, 'status.desiredNumberScheduled')))], ['CURRENT', (d) => String(num(get(d, 'status.currentNumberScheduled')))], ['READY', (d) => String(num(get(d, 'status.numberReady')))], AGE],
  Service: [
    NAME,
    ['TYPE', (s) => String(get(s, 'spec.type') ?? 'ClusterIP')],
    ['CLUSTER-IP', (s) => String(get(s, 'spec.clusterIP') ?? '<none>')],
    ['EXTERNAL-IP', (s) => { const ingress = list(get(s, 'status.loadBalancer.ingress')).map((entry) => String(get(entry, 'ip'))); return ingress.length > 0 ? ingress.join(',') : '<none>'; }],
    ['PORT(S)', servicePorts],
    AGE,
    ['SELECTOR', (s) => Object.entries((get(s, 'spec.selector') as Record<string, string> | undefined) ?? {}).map(([key, value]) => `${key}=${value}`).join(',') || '<none>', true],
  ],
  ConfigMap: [NAME, ['DATA', (c) => String(Object.keys((get(c, 'data') as object | undefined) ?? {}).length + Object.keys((get(c, 'binaryData') as object | undefined) ?? {}).length)], AGE],
  Secret: [NAME, ['TYPE', (s) => String(get(s, 'type') ?? 'Opaque')], ['DATA', (s) => String(Object.keys((get(s, 'data') as object | undefined) ?? {}).length)], AGE],
  Namespace: [NAME, ['STATUS', (n) => String(get(n, 'status.phase') ?? 'Active')], AGE],
  Node: [
    NAME,
    ['STATUS', (n) => { const ready = list(get(n, 'status.conditions')).find((condition) => get(condition, 'type') === 'Ready'); const status = get(ready, 'status') === 'True' ? 'Ready' : 'NotReady'; return get(n, 'spec.unschedulable') === true ? `${status},SchedulingDisabled` : status; }],
    ['ROLES', () => '<none>'],
    AGE,
    ['VERSION', (n) => String(get(n, 'status.nodeInfo.kubeletVersion') ?? '')],
  ],
  Job: [NAME, ['COMPLETIONS', (j) => `${num(get(j, 'status.succeeded'))}/${num(get(j, 'spec.completions')) || 1}`], AGE],
};

function columnsFor(kind: string): readonly Column[] {
  return COLUMNS[kind] ?? [NAME, AGE];
}

/** Left-aligned columns separated by three spaces, as kubectl prints them. */
export function formatTable(headers: readonly string[], rows: readonly Row[]): string {
  const widths = headers.map((header) => Math.max(header.length, ...rows.map((row) => (row[header] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((cell, index) => (index === cells.length - 1 ? cell : cell.padEnd(widths[index]! + 3))).join('').trimEnd();
  return [line(headers), ...rows.map((row) => line(headers.map((header) => row[header] ?? '')))].join('\n');
}

export interface PrintOptions {
  readonly output: 'table' | 'wide' | 'yaml' | 'json' | 'name';
  /** Print the NAMESPACE column (listing every namespace). */
  readonly withNamespace: boolean;
  readonly showLabels: boolean;
  readonly now: Date;
  /** Prefix names with kind (kubectl does when several kinds are listed): "deployment.apps/web". */
  readonly kindPrefix?: string;
}

export function printObjects(kind: string, objects: readonly KubeObject[], options: PrintOptions): string {
  switch (options.output) {
    case 'json':
      return JSON.stringify(objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects }, null, 4);
    case 'yaml':
      return stringify(objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects }).trimEnd();
    case 'name':
      return objects.map((object) => `${options.kindPrefix ?? kind.toLowerCase()}/${String(object.metadata?.name)}`).join('\n');
    default: {
      const columns = columnsFor(kind).filter((column) => column[2] !== true || options.output === 'wide');
      const headers = [...(options.withNamespace ? ['NAMESPACE'] : []), ...columns.map((column) => column[0]), ...(options.showLabels ? ['LABELS'] : [])];
      const rows = objects.map((object) => {
        const row: Row = {};
        if (options.withNamespace) row.NAMESPACE = String(object.metadata?.namespace ?? '');
        for (const [header, value] of columns) row[header] = value(object, options.now);
        if (options.kindPrefix !== undefined) row.NAME = `${options.kindPrefix}/${row.NAME ?? ''}`;
        if (options.showLabels) row.LABELS = Object.entries(object.metadata?.labels ?? {}).map(([key, value]) => `${key}=${value}`).join(',') || '<none>';
        return row;
      });
      return formatTable(headers, rows);
    }
  }
}

/** kubectl describe's Events section for an object's events, oldest first. */
export function describeEvents(events: readonly KubeObject[], now: Date): string {
  if (events.length === 0) return 'Events:  <none>';
  const sorted = [...events].sort((a, b) => String(a.lastTimestamp ?? '').localeCompare(String(b.lastTimestamp ?? '')));
  const rows = sorted.map((event) => {
    const count = typeof event.count === 'number' ? event.count : 1;
    const last = age(event.lastTimestamp, now);
    const source = event.source as { component?: string; host?: string } | undefined;
    return {
      Type: String(event.type ?? ''),
      Reason: String(event.reason ?? ''),
      Age: count > 1 ? `${last} (x${count} over ${age(event.firstTimestamp, now)})` : last,
      From: [source?.component, source?.host].filter((part) => part !== undefined && part !== '').join(', '),
      Message: String(event.message ?? ''),
    };
  });
  const table = formatTable(['Type', 'Reason', 'Age', 'From', 'Message'], [{ Type: '----', Reason: '------', Age: '----', From: '----', Message: '-------' }, ...rows]);
  return `Events:\n${table.split('\n').map((line) => `  ${line}`).join('\n')}`;
}

/**
 * Go's tabwriter as kubectl describe sets it up (padding 2): in each run of
 * consecutive lines that have a tab, the text before the tab is padded to
 * the widest of the run.
 */
function alignTabs(lines: readonly string[]): string {
  const out: string[] = [];
  for (let start = 0; start < lines.length; ) {
    let end = start;
    while (end < lines.length && lines[end]!.includes('\t')) end++;
    if (end === start) {
      out.push(lines[start]!);
      start++;
      continue;
    }
    const run = lines.slice(start, end).map((line) => [line.slice(0, line.indexOf('\t')), line.slice(line.indexOf('\t') + 1)] as const);
    const width = Math.max(...run.map(([first]) => first.length)) + 2;
    out.push(...run.map(([first, rest]) => `${first.padEnd(width)}${rest}`.trimEnd()));
    start = end;
  }
  return out.join('\n');
}

/** kubectl describe's "Pod Template:" section (what `rollout history --revision` prints). */
export function describePodTemplate(template: KubeObject | undefined): string {
  const multiline = (heading: string, values: readonly string[]): string[] => (values.length === 0 ? [`${heading}\t<none>`] : [`${heading}\t${values[0]!}`, ...values.slice(1).map((value) => `\t${value}`)]);
  const pairs = (value: unknown): string[] => Object.entries((value as Record<string, string> | undefined) ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, item]) => `${key}=${item}`);
  const lines = ['Pod Template:', ...multiline('  Labels:', pairs(get(template, 'metadata.labels')))];
  const annotations = pairs(get(template, 'metadata.annotations'));
  if (annotations.length > 0) lines.push(...multiline('  Annotations:', annotations));
  const account = get(template, 'spec.serviceAccountName');
  if (typeof account === 'string' && account !== '') lines.push(`  Service Account:\t${account}`);
  const containers = list(get(template, 'spec.containers'));
  lines.push(containers.length === 0 ? '  Containers:\t<none>' : '  Containers:');
  for (const container of containers) {
    lines.push(`   ${String(get(container, 'name'))}:`, `    Image:\t${String(get(container, 'image') ?? '')}`);
    const ports = list(get(container, 'ports'));
    const port = (field: string): string[] => ports.map((entry) => `${num(get(entry, field))}/${String(get(entry, 'protocol') ?? 'TCP')}`);
    lines.push(`    ${ports.length > 1 ? 'Ports' : 'Port'}:\t${port('containerPort').join(', ') || '<none>'}`, `    ${ports.length > 1 ? 'Host Ports' : 'Host Port'}:\t${port('hostPort').join(', ') || '<none>'}`);
    for (const [field, heading] of [['command', 'Command'], ['args', 'Args']] as const) {
      const words = list(get(container, field)).map(String);
      if (words.length > 0) lines.push(`    ${heading}:`, ...words.map((word) => `      ${word}`));
    }
    const env = list(get(container, 'env')).map((variable) => `      ${String(get(variable, 'name'))}:\t${String(get(variable, 'value') ?? '')}`);
    lines.push(...(env.length === 0 ? ['    Environment:\t<none>'] : ['    Environment:', ...env]));
    const mounts = list(get(container, 'volumeMounts')).map((mount) => `${String(get(mount, 'mountPath'))} from ${String(get(mount, 'name'))}${get(mount, 'readOnly') === true ? ' (ro)' : ' (rw)'}`);
    lines.push(...multiline('    Mounts:', mounts));
  }
  const volumes = list(get(template, 'spec.volumes')).map((volume) => String(get(volume, 'name')));
  lines.push(...multiline('  Volumes:', volumes));
  return alignTabs(lines);
}
