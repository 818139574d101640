// mastctl logs, exec and top: kubectl's commands for looking into pods.
//
//   logs POD|TYPE/NAME [CONTAINER] [-c CONTAINER] [-f] [-p] [--tail=N] [--since=DURATION] [--timestamps] [--limit-bytes=N]
//   exec POD|TYPE/NAME [-c CONTAINER] -- CMD [ARGS...]
//   top pods [NAME] [-n NS | -A] [-l SELECTOR] [--containers] [--sort-by=cpu|memory]
//   top nodes [NAME] [-l SELECTOR] [--sort-by=cpu|memory]
//
// logs and exec go through the master to the pod's node agent (the
// PodLogs and PodExec calls of proto/api.proto); exec is non-interactive:
// no stdin, no tty, the output arrives when the command has finished. top
// reads the PodMetrics and NodeMetrics the agents write.

import * as grpc from '@grpc/grpc-js';
import type { LabelSelector } from '../../proto/gen/resources/v1/meta.js';
import { resolveKind, type KindInfo } from '../client/kinds.js';
import { labelSelectorMatches, labelsOf } from '../client/labels.js';
import { parseQuantity } from '../client/quantity.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../client/resources.js';
import { formatTable } from './printers.js';
import { parseDurationMs } from './rollout.js';

/** An error to print as "error: <message>", as kubectl does. */
export class PodCommandError extends Error {
  override readonly name = 'PodCommandError';
}

export interface PodsIo {
  /** A line to stdout. */
  readonly out: (text: string) => void;
  /** A line to stderr (kubectl's notes: the defaulted container, the exit code). */
  readonly err: (text: string) => void;
  /** Bytes or text as they come, no newline added. */
  readonly write: (chunk: Uint8Array | string, stream: 'stdout' | 'stderr') => void;
  /** Resolves when the user interrupts (Ctrl-C): ends `logs -f`. */
  readonly interrupted?: Promise<void>;
}

export interface PodsOptions {
  /** -n, when given. */
  readonly namespace: string | undefined;
  /** A flag's value (the last given), undefined when absent. */
  readonly flag: (name: string) => string | undefined;
  /** Whether a boolean flag is on. */
  readonly boolFlag: (name: string) => boolean;
}

/** The flags of these commands that read differently from mastctl's global ones (-f is --follow here, not --filename). */
export const POD_COMMAND_FLAGS: Readonly<Record<string, { readonly short: Readonly<Record<string, string>>; readonly booleans: readonly string[] }>> = {
  logs: { short: { c: 'container', f: 'follow', p: 'previous' }, booleans: ['follow', 'previous', 'timestamps'] },
  exec: { short: { c: 'container', i: 'stdin', t: 'tty' }, booleans: ['stdin', 'tty'] },
  top: { short: {}, booleans: ['containers'] },
};

/** The annotation naming the container kubectl logs and exec use when none is given. */
const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';
/** Pods listed per page while looking for a workload's pod. */
const LIST_PAGE_SIZE = 500;

const get = (object: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((value, part) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined), object);
const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const names = (list: unknown): string[] => (Array.isArray(list) ? list.map((item) => text(get(item, 'name'))).filter((name) => name !== '') : []);

/** kubectl's "deployment.apps" for a kind. */
function qualifiedName(info: KindInfo): string {
  const group = info.apiVersion.includes('/') ? info.apiVersion.split('/')[0] : '';
  return `${info.kind.toLowerCase()}${group === '' ? '' : `.${group}`}`;
}

async function listAll(client: ResourceClient, kind: string, namespace: string, labelSelector = ''): Promise<KubeObject[]> {
  const items: KubeObject[] = [];
  let token = '';
  do {
    const page = await client.list(kind, { namespace, labelSelector, limit: LIST_PAGE_SIZE, continue: token });
    items.push(...page.items);
    token = page.continue;
  } while (token !== '');
  return items;
}

/** The kinds whose pods `logs TYPE/NAME` and `exec TYPE/NAME` pick from, and how each selects them. */
function selectorOf(info: KindInfo, object: KubeObject): LabelSelector | undefined {
  const selector = get(object, 'spec.selector');
  if (typeof selector !== 'object' || selector === null) return undefined;
  // Services and ReplicationControllers select with a plain map.
  if (info.kind === 'Service' || info.kind === 'ReplicationController') return { matchLabels: selector as Record<string, string> };
  return selector as LabelSelector;
}
const WORKLOADS = new Set(['Deployment', 'ReplicaSet', 'ReplicationController', 'StatefulSet', 'DaemonSet', 'Job', 'Service']);

/** kubectl's order for picking a workload's pod to read (podutils.ByLogging, in part): on a node first, then running, then the oldest. */
function loggingOrder(a: KubeObject, b: KubeObject): number {
  const scheduled = (pod: KubeObject): number => (text(get(pod, 'spec.nodeName')) === '' ? 1 : 0);
  const phase = (pod: KubeObject): number => ({ Running: 0, Unknown: 1, Pending: 2 })[text(get(pod, 'status.phase'))] ?? 3;
  const created = (pod: KubeObject): string => text(get(pod, 'metadata.creationTimestamp'));
  return scheduled(a) - scheduled(b) || phase(a) - phase(b) || created(a).localeCompare(created(b)) || text(a.metadata?.name).localeCompare(text(b.metadata?.name));
}

/** The pod that "POD", "pod/NAME" or "TYPE/NAME" means (a workload's: the first of its pods, as kubectl picks it). */
async function podFor(client: ResourceClient, namespace: string, target: string, io: PodsIo): Promise<KubeObject> {
  const slash = target.indexOf('/');
  if (slash < 0) return client.get('Pod', namespace, target);
  const [kindName, name] = [target.slice(0, slash), target.slice(slash + 1)];
  const info = resolveKind(kindName);
  if (info === undefined) throw new PodCommandError(`the server doesn't have a resource type "${kindName}"`);
  if (name === '') throw new PodCommandError(`${target}: a name is needed after the slash`);
  if (info.kind === 'Pod') return client.get('Pod', namespace, name);
  if (!WORKLOADS.has(info.kind)) throw new PodCommandError(`cannot choose a pod of a ${info.resource}: give a pod, or a deployment, replicaset, replicationcontroller, statefulset, daemonset, job or service`);
  const object = await client.get(info.kind, namespace, name);
  const selector = selectorOf(info, object);
  if (selector === undefined || (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)) {
    throw new PodCommandError(`${qualifiedName(info)}/${name} has no pod selector`);
  }
  const pods = (await listAll(client, 'Pod', namespace)).filter((pod) => labelSelectorMatches(selector, labelsOf(pod.metadata?.labels))).sort(loggingOrder);
  const first = pods[0];
  if (first === undefined) throw new PodCommandError(`no pods found for ${qualifiedName(info)}/${name} in namespace ${namespace}`);
  if (pods.length > 1) io.err(`Found ${pods.length} pods, using pod/${text(first.metadata?.name)}`);
  return first;
}

/**
 * kubectl's FindOrDefaultContainerByName: the container asked for, else the
 * one the default-container annotation names, else the first (saying so on
 * stderr when there were others to choose from).
 */
export function chooseContainer(pod: KubeObject, requested: string | undefined, io: Pick<PodsIo, 'err'>): string {
  if (requested !== undefined && requested !== '') return requested;
  const containers = names(get(pod, 'spec.containers'));
  const initContainers = names(get(pod, 'spec.initContainers'));
  const annotated = text((pod.metadata?.annotations as Record<string, unknown> | undefined)?.[DEFAULT_CONTAINER_ANNOTATION]);
  if (annotated !== '') {
    if (containers.includes(annotated) || initContainers.includes(annotated)) return annotated;
    io.err(`Warning: default container name "${annotated}" not found in pod ${text(pod.metadata?.name)}`);
  }
  const first = containers[0];
  // No containers: the master says what is wrong.
  if (first === undefined) return '';
  if (containers.length > 1 || initContainers.length > 0) io.err(`Defaulted container "${first}" out of: ${[...containers, ...initContainers.map((name) => `${name} (init)`)].join(', ')}`);
  return first;
}

/** A flag holding a whole number (kubectl's int64 flags), undefined when absent. */
function integerFlag(options: PodsOptions, name: string): number | undefined {
  const value = options.flag(name);
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new PodCommandError(`invalid argument "${value}" for "--${name}" flag: must be a whole number`);
  return Number(value);
}

/** mastctl logs: the container's log to stdout; with -f, until the server ends it or the user interrupts. */
export async function runLogs(client: ResourceClient, words: readonly string[], options: PodsOptions, io: PodsIo): Promise<number> {
  const [target, positionalContainer, ...extra] = words;
  if (target === undefined || extra.length > 0) throw new PodCommandError('logs needs a pod: mastctl logs POD|TYPE/NAME [-c CONTAINER] [-f] [-p] [--tail=N] [--since=DURATION] [--timestamps] [--limit-bytes=N]');
  const tail = integerFlag(options, 'tail');
  if (tail !== undefined && tail < -1) throw new PodCommandError('--tail must be -1 (all lines) or a whole number of lines');
  const limitBytes = integerFlag(options, 'limit-bytes');
  if (limitBytes !== undefined && limitBytes <= 0) throw new PodCommandError('--limit-bytes must be greater than 0');
  const since = options.flag('since');
  const sinceMs = since === undefined ? 0 : parseDurationMs(since, 'since');
  const namespace = options.namespace ?? 'default';
  const pod = await podFor(client, namespace, target, io);
  const container = chooseContainer(pod, options.flag('container') ?? positionalContainer, io);
  const stream = client.podLogs(
    namespace,
    text(pod.metadata?.name),
    {
      container,
      follow: options.boolFlag('follow'),
      previous: options.boolFlag('previous'),
      timestamps: options.boolFlag('timestamps'),
      ...(tail === undefined || tail < 0 ? {} : { tailLines: tail }),
      // kubectl rounds a --since up to whole seconds.
      ...(sinceMs > 0 ? { sinceSeconds: Math.ceil(sinceMs / 1000) } : {}),
      ...(limitBytes === undefined ? {} : { limitBytes }),
    },
    (chunk) => io.write(chunk, 'stdout'),
  );
  if (io.interrupted !== undefined) void io.interrupted.then(() => stream.cancel());
  await stream.done;
  return 0;
}

/** mastctl exec: the command's stdout and stderr, and its exit code as mastctl's. */
export async function runExec(client: ResourceClient, words: readonly string[], command: readonly string[] | undefined, options: PodsOptions, io: PodsIo): Promise<number> {
  if (options.boolFlag('stdin') || options.boolFlag('tty')) {
    throw new PodCommandError('exec is non-interactive in mast: stdin and a tty are not relayed, so -i/--stdin and -t/--tty are not supported; give the command after --, e.g. mastctl exec POD -- ls /');
  }
  const [target, ...extra] = words;
  if (target === undefined) throw new PodCommandError('exec needs a pod and a command: mastctl exec POD|TYPE/NAME [-c CONTAINER] -- CMD [ARGS...]');
  if (command === undefined || extra.length > 0) throw new PodCommandError(`exec [POD] [COMMAND] is not supported: give the command after --, e.g. mastctl exec ${target} -- ${extra.join(' ') || 'CMD'}`);
  if (command.length === 0) throw new PodCommandError('you must specify at least one command for the container');
  const namespace = options.namespace ?? 'default';
  const pod = await podFor(client, namespace, target, io);
  const container = chooseContainer(pod, options.flag('container'), io);
  const result = await client.podExec(namespace, text(pod.metadata?.name), command, { container });
  if (result.stdout.length > 0) io.write(result.stdout, 'stdout');
  if (result.stderr.length > 0) io.write(result.stderr, 'stderr');
  if (result.exitCode === 0) return 0;
  io.err(`command terminated with exit code ${result.exitCode}`);
  // A process exit code is 1..255; anything else still fails.
  return result.exitCode > 0 && result.exitCode < 256 ? result.exitCode : 1;
}

/** kubectl's columns: cpu in millicores, memory in whole MiB (both rounded as kubectl rounds them). */
const MEBIBYTE = 1024 * 1024;
const cpuMilli = (usage: unknown): number => parseQuantity(text(get(usage, 'cpu')) || '0', 'milli') ?? 0;
const memoryBytes = (usage: unknown): number => parseQuantity(text(get(usage, 'memory')) || '0', 'unit') ?? 0;
const cpuCell = (milli: number): string => `${milli}m`;
const memoryCell = (bytes: number): string => `${Math.floor(bytes / MEBIBYTE)}Mi`;

interface Usage {
  readonly cpuMilli: number;
  readonly memoryBytes: number;
}

/** --sort-by: cpu or memory, largest first (kubectl's); otherwise by name. */
function sortUsage<T extends Usage & { readonly key: string }>(rows: T[], sortBy: string | undefined): T[] {
  if (sortBy !== undefined && sortBy !== 'cpu' && sortBy !== 'memory') throw new PodCommandError(`--sort-by accepts only cpu or memory, not "${sortBy}"`);
  return rows.sort((a, b) => (sortBy === 'cpu' ? b.cpuMilli - a.cpuMilli : sortBy === 'memory' ? b.memoryBytes - a.memoryBytes : 0) || a.key.localeCompare(b.key));
}

/** mastctl top: pods' or nodes' usage from the metrics the agents write. */
export async function runTop(client: ResourceClient, words: readonly string[], options: PodsOptions, io: PodsIo): Promise<number> {
  const [what, name, ...extra] = words;
  const info = what === undefined ? undefined : resolveKind(what);
  if (info?.kind === 'Pod' && extra.length === 0) return topPods(client, name, options, io);
  if (info?.kind === 'Node' && extra.length === 0) return topNodes(client, name, options, io);
  throw new PodCommandError('top needs pods or nodes: mastctl top pods [NAME] [-n NS | -A] [-l SELECTOR] [--containers], mastctl top nodes [NAME] [-l SELECTOR]');
}

async function topPods(client: ResourceClient, name: string | undefined, options: PodsOptions, io: PodsIo): Promise<number> {
  const allNamespaces = options.boolFlag('all-namespaces');
  const namespace = allNamespaces ? '' : (options.namespace ?? 'default');
  const selector = options.flag('selector') ?? '';
  // PodMetrics are named, namespaced and labelled as the pods they measure.
  const metrics = name !== undefined ? [await client.get('PodMetrics', namespace === '' ? 'default' : namespace, name)] : await listAll(client, 'PodMetrics', namespace, selector);
  if (metrics.length === 0) {
    // kubectl's verifyEmptyMetrics: pods without metrics yet, or no pods at all.
    if ((await client.list('Pod', { namespace, labelSelector: selector, limit: 1 })).items.length > 0) throw new PodCommandError('metrics not available yet');
    io.err(allNamespaces ? 'No resources found' : `No resources found in ${namespace} namespace.`);
    return 0;
  }
  const containers = options.boolFlag('containers');
  const rows = sortUsage(
    metrics.map((item) => {
      const list = Array.isArray(get(item, 'containers')) ? (get(item, 'containers') as unknown[]) : [];
      const usages = list.map((container) => ({ name: text(get(container, 'name')), cpuMilli: cpuMilli(get(container, 'usage')), memoryBytes: memoryBytes(get(container, 'usage')) }));
      return {
        key: `${text(item.metadata?.namespace)}/${text(item.metadata?.name)}`,
        namespace: text(item.metadata?.namespace),
        pod: text(item.metadata?.name),
        containers: usages,
        cpuMilli: usages.reduce((sum, usage) => sum + usage.cpuMilli, 0),
        memoryBytes: usages.reduce((sum, usage) => sum + usage.memoryBytes, 0),
      };
    }),
    options.flag('sort-by'),
  );
  const headers = [...(allNamespaces ? ['NAMESPACE'] : []), ...(containers ? ['POD', 'NAME'] : ['NAME']), 'CPU(cores)', 'MEMORY(bytes)'];
  const table = rows.flatMap((row) =>
    containers
      ? row.containers.map((usage) => ({ NAMESPACE: row.namespace, POD: row.pod, NAME: usage.name, 'CPU(cores)': cpuCell(usage.cpuMilli), 'MEMORY(bytes)': memoryCell(usage.memoryBytes) }))
      : [{ NAMESPACE: row.namespace, NAME: row.pod, 'CPU(cores)': cpuCell(row.cpuMilli), 'MEMORY(bytes)': memoryCell(row.memoryBytes) }],
  );
  io.out(formatTable(headers, table));
  return 0;
}

/** kubectl's percentage of allocatable: truncated to a whole percent; <unknown> when the node declares none. */
function percentOf(used: number, allocatable: number | undefined): string {
  return allocatable === undefined || allocatable <= 0 ? '<unknown>' : `${Math.trunc((used / allocatable) * 100)}%`;
}

/** One node's metrics: none yet is not an error of its own (kubectl then says the metrics are not available). */
async function nodeMetricsOf(client: ResourceClient, name: string): Promise<KubeObject[]> {
  try {
    return [await client.get('NodeMetrics', '', name)];
  } catch (error) {
    if (statusCodeOf(error) === grpc.status.NOT_FOUND) return [];
    throw error;
  }
}

async function topNodes(client: ResourceClient, name: string | undefined, options: PodsOptions, io: PodsIo): Promise<number> {
  const selector = options.flag('selector') ?? '';
  const nodes = name !== undefined ? [await client.get('Node', '', name)] : await listAll(client, 'Node', '', selector);
  const wanted = new Set(nodes.map((node) => text(node.metadata?.name)));
  const metrics = (name !== undefined ? await nodeMetricsOf(client, name) : await listAll(client, 'NodeMetrics', '')).filter((item) => wanted.has(text(item.metadata?.name)));
  if (metrics.length === 0) throw new PodCommandError('metrics not available yet');
  const byName = new Map(metrics.map((item) => [text(item.metadata?.name), item]));
  const measured = sortUsage(
    nodes
      .filter((node) => byName.has(text(node.metadata?.name)))
      .map((node) => {
        const usage = get(byName.get(text(node.metadata?.name)), 'usage');
        const allocatable = get(node, 'status.allocatable');
        return {
          key: text(node.metadata?.name),
          cpuMilli: cpuMilli(usage),
          memoryBytes: memoryBytes(usage),
          cpuAllocatableMilli: parseQuantity(text(get(allocatable, 'cpu')), 'milli'),
          memoryAllocatableBytes: parseQuantity(text(get(allocatable, 'memory')), 'unit'),
        };
      }),
    options.flag('sort-by'),
  );
  const rows = measured.map((row) => ({
    NAME: row.key,
    'CPU(cores)': cpuCell(row.cpuMilli),
    'CPU%': percentOf(row.cpuMilli, row.cpuAllocatableMilli),
    'MEMORY(bytes)': memoryCell(row.memoryBytes),
    'MEMORY%': percentOf(row.memoryBytes, row.memoryAllocatableBytes),
  }));
  // Nodes the agents have not measured yet: kubectl lists them last, unknown.
  const missing = nodes.map((node) => text(node.metadata?.name)).filter((node) => !byName.has(node)).sort();
  for (const node of missing) rows.push({ NAME: node, 'CPU(cores)': '<unknown>', 'CPU%': '<unknown>', 'MEMORY(bytes)': '<unknown>', 'MEMORY%': '<unknown>' });
  io.out(formatTable(['NAME', 'CPU(cores)', 'CPU%', 'MEMORY(bytes)', 'MEMORY%'], rows));
  return 0;
}
