// mastctl: kubectl's habits against a mast cluster.
//
//   mastctl get KIND[,KIND...]|all [NAME...] [-n NS | -A] [-o wide|yaml|json|name] [-l SEL] [--field-selector SEL] [--show-labels]
//   mastctl apply -f FILE|DIR|-        create or update each object
//   mastctl create -f FILE|DIR|-
//   mastctl delete KIND NAME... | -f FILE|DIR|-
//   mastctl label|annotate KIND NAME key=value... key-  [--overwrite]
//   mastctl scale KIND NAME --replicas=N
//   mastctl run NAME --image=IMAGE [--replicas=N] [--port=P]
//   mastctl describe KIND [NAME...]
//   mastctl get ... -w                 then every change, until Ctrl-C
//   mastctl rollout status|history|undo|pause|resume deploy/NAME   (see rollout.ts)
//   mastctl logs POD|TYPE/NAME [-c CONTAINER] [-f] [-p] [--tail=N] [--since=DURATION] [--timestamps] [--limit-bytes=N]
//   mastctl exec POD|TYPE/NAME [-c CONTAINER] -- CMD [ARGS...]     (non-interactive)
//   mastctl top pods [NAME] [-n NS | -A] [-l SEL] [--containers] | top nodes [NAME]   (see pods.ts)
//   mastctl cluster-info | member list | member remove ID
//   mastctl snapshot save FILE         a backup of the masters' state (see snapshot.ts)
//   mastctl token create|list|delete   join tokens for mast join (see tokens.ts)
//
// Masters: --server URL[,URL...], else $MAST_MASTERS, else the config file
// ($MASTCONFIG or ~/.mast/config: YAML with `masters: [URL, ...]` and, for
// a secure cluster, certificateAuthority and token or clientCertificate +
// clientKey — `mast init` writes it). Errors print as one line on stderr
// with a non-zero exit code.

import * as grpc from '@grpc/grpc-js';
import { stringify as stringifyYaml } from 'yaml';
import { ClientConfigError, loadClientConfig, type ClientConfig } from '../client/client-config.js';
import { EtcdClient } from '../client/etcd.js';
import { KINDS, resolveKind, type KindInfo } from '../client/kinds.js';
import { ResourceClient, type KubeObject } from '../client/resources.js';
import { readManifests, ManifestError } from './manifests.js';
import { describeEvents, formatTable, printObjects, type PrintOptions } from './printers.js';
import { POD_COMMAND_FLAGS, runExec, runLogs, runTop, type PodsIo } from './pods.js';
import { runRollout } from './rollout.js';
import { saveSnapshot } from './snapshot.js';
import { TokenUsageError, runToken } from './tokens.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CtlIo {
  /** A line to stdout (the newline is the callee's). */
  readonly out: (text: string) => void;
  /** A line to stderr; absent: to `out`. */
  readonly err?: (text: string) => void;
  /** Bytes or text as they come, no newline added (logs, exec); absent: each chunk as a line to `out` or `err`. */
  readonly write?: (chunk: Uint8Array | string, stream: 'stdout' | 'stderr') => void;
  readonly readStdin: () => string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: () => Date;
  /** Resolves when the user interrupts (Ctrl-C): ends `get -w` and `logs -f`. */
  readonly interrupted?: Promise<void>;
}

interface Parsed {
  readonly positional: string[];
  readonly flags: Map<string, string[]>;
  /** Where `--` stood: the index in `positional` of the first word after it (undefined: there was none). */
  readonly dashAt: number | undefined;
}

const BOOLEAN_FLAGS = new Set(['A', 'all-namespaces', 'show-labels', 'overwrite', 'w', 'watch', 'help', 'h']);
const SHORT: Readonly<Record<string, string>> = { n: 'namespace', o: 'output', l: 'selector', f: 'filename', A: 'all-namespaces', w: 'watch', h: 'help' };

/** Flags read the global way until the command word, then as that command reads them (logs' -f is --follow, not --filename). */
function parseArgs(args: readonly string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  let dashAt: number | undefined;
  let shortNames: Readonly<Record<string, string>> = SHORT;
  let booleans: ReadonlySet<string> = BOOLEAN_FLAGS;
  const add = (name: string, value: string): void => void flags.set(name, [...(flags.get(name) ?? []), value]);
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--') {
      dashAt = positional.length;
      positional.push(...args.slice(index + 1));
      break;
    }
    const long = /^--([^=]+)(?:=(.*))?$/.exec(arg);
    const short = /^-([A-Za-z])(?:=?(.+))?$/.exec(arg);
    if (long === null && short === null) {
      positional.push(arg);
      const own = positional.length === 1 ? POD_COMMAND_FLAGS[arg] : undefined;
      if (own !== undefined) {
        shortNames = { ...SHORT, ...own.short };
        booleans = new Set([...BOOLEAN_FLAGS, ...own.booleans]);
      }
      continue;
    }
    const rawName = long !== null ? long[1]! : short![1]!;
    const name = (short !== null ? shortNames[rawName] : undefined) ?? SHORT[rawName] ?? rawName;
    const inline = long !== null ? long[2] : short![2];
    if (booleans.has(rawName) || booleans.has(name)) {
      add(name, inline ?? 'true');
    } else if (inline !== undefined) {
      add(name, inline);
    } else {
      const value = args[index + 1];
      if (value === undefined) throw new UsageError(`flag ${arg} needs a value`);
      add(name, value);
      index++;
    }
  }
  return { positional, flags, dashAt };
}

/** kubectl's --cascade: background (default, also "true"), foreground, orphan (also "false"). */
function cascadePolicy(value: string | undefined): string {
  switch (value ?? 'background') {
    case 'background':
    case 'true':
      return 'Background';
    case 'foreground':
      return 'Foreground';
    case 'orphan':
    case 'false':
      return 'Orphan';
    default:
      throw new UsageError(`--cascade must be background, foreground or orphan, not "${value}"`);
  }
}

function flag(parsed: Parsed, name: string): string | undefined {
  const values = parsed.flags.get(name);
  return values === undefined ? undefined : values[values.length - 1];
}

function boolFlag(parsed: Parsed, name: string): boolean {
  const value = flag(parsed, name);
  return value !== undefined && value !== 'false';
}

/**
 * Masters and credentials (services/client/client-config.ts, as the
 * scheduler and controller-manager load them): flags (--server,
 * --certificate-authority, --client-certificate, --client-key, --token,
 * kubectl's names), else $MAST_MASTERS, else the config file ($MASTCONFIG or
 * ~/.mast/config). Its errors are usage errors here, with the same words.
 */
function clientConfigFrom(parsed: Parsed, env: Readonly<Record<string, string | undefined>>): ClientConfig {
  try {
    return loadClientConfig(
      {
        server: flag(parsed, 'server'),
        certificateAuthority: flag(parsed, 'certificate-authority'),
        clientCertificate: flag(parsed, 'client-certificate'),
        clientKey: flag(parsed, 'client-key'),
        token: flag(parsed, 'token'),
      },
      env,
    );
  } catch (error) {
    if (error instanceof ClientConfigError) throw new UsageError(error.message);
    throw error;
  }
}

function kindOrThrow(name: string): KindInfo {
  const info = resolveKind(name);
  if (info === undefined) throw new UsageError(`the server doesn't have a resource type "${name}"`);
  return info;
}

/** kubectl describe's layout: identity and metadata first, then the rest as indented YAML. */
function describeObject(info: KindInfo, object: KubeObject): string {
  const meta = object.metadata ?? {};
  const pairs = (value: unknown): string => {
    const entries = Object.entries((value as Record<string, string> | undefined) ?? {});
    return entries.length === 0 ? '<none>' : entries.map(([key, item]) => `${key}=${item}`).join('\n' + ' '.repeat(14));
  };
  const lines = [
    `Name:         ${String(meta.name)}`,
    ...(info.namespaced ? [`Namespace:    ${String(meta.namespace)}`] : []),
    `Labels:       ${pairs(meta.labels)}`,
    `Annotations:  ${pairs(meta.annotations)}`,
    `API Version:  ${String(object.apiVersion)}`,
    `Kind:         ${String(object.kind)}`,
    `Created:      ${String(meta.creationTimestamp ?? '<unknown>')}`,
    `UID:          ${String(meta.uid ?? '')}`,
  ];
  for (const [key, value] of Object.entries(object)) {
    if (['apiVersion', 'kind', 'metadata'].includes(key)) continue;
    lines.push(`${key.charAt(0).toUpperCase()}${key.slice(1)}:`);
    lines.push(...stringifyYaml(value).trimEnd().split('\n').map((line) => `  ${line}`));
  }
  return lines.join('\n');
}

/** The kinds `get all` shows, as kubectl does. */
const ALL = ['Pod', 'Service', 'DaemonSet', 'Deployment', 'ReplicaSet', 'StatefulSet', 'Job', 'CronJob', 'HorizontalPodAutoscaler'];

/** kubectl's "deployment.apps" style for a kind in listings of several kinds. */
function qualifiedName(info: KindInfo): string {
  const group = info.apiVersion.includes('/') ? info.apiVersion.split('/')[0] : '';
  return `${info.kind.toLowerCase()}${group === '' ? '' : `.${group}`}`;
}

function describeError(error: unknown): string {
  if (error instanceof UsageError || error instanceof ManifestError || error instanceof TokenUsageError) return `error: ${error.message}`;
  const status = error as Partial<grpc.ServiceError>;
  if (typeof status.code === 'number' && typeof status.details === 'string') {
    const reason = status.metadata?.get('mast-reason')[0];
    return `Error from server${reason !== undefined ? ` (${String(reason)})` : ''}: ${status.details}`;
  }
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

async function applyOne(client: ResourceClient, object: KubeObject, mode: 'apply' | 'create', namespace: string | undefined): Promise<string> {
  const info = kindOrThrow(String(object.kind));
  const metadata = { ...(object.metadata ?? {}) };
  if (info.namespaced && (metadata.namespace === undefined || metadata.namespace === '') && namespace !== undefined) metadata.namespace = namespace;
  const desired: KubeObject = { ...object, metadata };
  const label = `${qualifiedName(info)}/${String(metadata.name ?? metadata.generateName ?? '')}`;
  if (mode === 'create' || metadata.name === undefined) {
    await client.create(info.kind, desired);
    return `${label} created`;
  }
  for (let attempt = 0; ; attempt++) {
    let current: KubeObject;
    try {
      current = await client.get(info.kind, String(metadata.namespace ?? ''), String(metadata.name));
    } catch (error) {
      if ((error as grpc.ServiceError).code !== grpc.status.NOT_FOUND) throw error;
      await client.create(info.kind, desired);
      return `${label} created`;
    }
    // The file is the desired state of everything it says; the server keeps
    // identity, status, and what controllers and users added as metadata.
    const merged: KubeObject = {
      ...desired,
      metadata: { ...current.metadata, ...metadata, resourceVersion: current.metadata?.resourceVersion },
    };
    if (current.status !== undefined) merged.status = current.status;
    try {
      // The server stores a no-op update as nothing (the version stays): that is "unchanged".
      const stored = await client.update(info.kind, merged);
      return `${label} ${stored.metadata?.resourceVersion === current.metadata?.resourceVersion ? 'unchanged' : 'configured'}`;
    } catch (error) {
      if ((error as grpc.ServiceError).code !== grpc.status.ABORTED || attempt >= 5) throw error;
    }
  }
}

function parseKeyValues(items: readonly string[], what: string): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const item of items) {
    if (item.endsWith('-') && !item.includes('=')) remove.push(item.slice(0, -1));
    else {
      const equals = item.indexOf('=');
      if (equals <= 0) throw new UsageError(`${what} "${item}" is not key=value or key-`);
      set[item.slice(0, equals)] = item.slice(equals + 1);
    }
  }
  return { set, remove };
}

export async function runCtl(args: readonly string[], io: CtlIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(args);
  } catch (error) {
    io.out(describeError(error));
    return 1;
  }
  const [command, ...rest] = parsed.positional;
  if (command === undefined || command === 'help' || boolFlag(parsed, 'help')) {
    io.out(USAGE);
    return command === undefined && !boolFlag(parsed, 'help') ? 1 : 0;
  }
  let client: ResourceClient | undefined;
  let etcd: EtcdClient | undefined;
  try {
    const { masters, credentials } = clientConfigFrom(parsed, io.env);
    client = new ResourceClient({ endpoints: masters, timeoutMs: 10_000, ...(credentials === undefined ? {} : { credentials }) });
    const namespace = flag(parsed, 'namespace');
    switch (command) {
      case 'get':
        await get(client, rest, parsed, io);
        return 0;
      case 'apply':
      case 'create': {
        // Every -f, in order, as kubectl takes them.
        const files = parsed.flags.get('filename') ?? [];
        if (files.length === 0) throw new UsageError(`${command} needs -f FILE|DIR|-`);
        const manifests = files.flatMap((file) => readManifests(file, io.readStdin));
        for (const manifest of manifests) io.out(await applyOne(client, manifest.object, command, namespace));
        return 0;
      }
      case 'delete': {
        const files = parsed.flags.get('filename') ?? [];
        const targets: Array<{ info: KindInfo; namespace: string; name: string }> = [];
        if (files.length > 0) {
          for (const { object } of files.flatMap((file) => readManifests(file, io.readStdin))) {
            const info = kindOrThrow(String(object.kind));
            targets.push({ info, namespace: String(object.metadata?.namespace ?? namespace ?? 'default'), name: String(object.metadata?.name) });
          }
        } else {
          const [kindName, ...names] = rest;
          if (kindName === undefined || names.length === 0) throw new UsageError('delete needs KIND NAME... or -f FILE');
          const info = kindOrThrow(kindName);
          for (const name of names) targets.push({ info, namespace: namespace ?? 'default', name });
        }
        const propagationPolicy = cascadePolicy(flag(parsed, 'cascade'));
        const grace = flag(parsed, 'grace-period');
        if (grace !== undefined && !/^\d+$/.test(grace)) throw new UsageError(`--grace-period must be a whole number of seconds, not "${grace}"`);
        for (const target of targets) {
          await client.delete(target.info.kind, target.info.namespaced ? target.namespace : '', target.name, { propagationPolicy, ...(grace === undefined ? {} : { gracePeriodSeconds: Number(grace) }) });
          io.out(`${qualifiedName(target.info)} "${target.name}" deleted`);
        }
        return 0;
      }
      case 'label':
      case 'annotate': {
        const [kindName, name, ...items] = rest;
        if (kindName === undefined || name === undefined || items.length === 0) throw new UsageError(`${command} needs KIND NAME key=value... (key- removes)`);
        const info = kindOrThrow(kindName);
        const field = command === 'label' ? 'labels' : 'annotations';
        const { set, remove } = parseKeyValues(items, command === 'label' ? 'label' : 'annotation');
        const ns = info.namespaced ? (namespace ?? 'default') : '';
        const current = await client.get(info.kind, ns, name);
        const existing = (current.metadata?.[field] as Record<string, string> | undefined) ?? {};
        if (!boolFlag(parsed, 'overwrite')) {
          for (const [key, value] of Object.entries(set)) {
            if (existing[key] !== undefined && existing[key] !== value) throw new UsageError(`'${key}' already has a value (${existing[key]}), and --overwrite is false`);
          }
        }
        const patch: Record<string, string | null> = { ...set };
        for (const key of remove) patch[key] = null;
        await client.patch(info.kind, ns, name, { metadata: { [field]: patch, resourceVersion: current.metadata?.resourceVersion } });
        io.out(`${qualifiedName(info)}/${name} ${command === 'label' ? 'labeled' : 'annotated'}`);
        return 0;
      }
      case 'run': {
        const [name] = rest;
        const image = flag(parsed, 'image');
        if (name === undefined || image === undefined || image === '') throw new UsageError('run needs NAME --image=IMAGE [--replicas=N] [--port=P]');
        const replicas = flag(parsed, 'replicas') ?? '1';
        const port = flag(parsed, 'port');
        if (!/^\d+$/.test(replicas)) throw new UsageError(`--replicas: "${replicas}" is not a whole number`);
        if (port !== undefined && !/^\d+$/.test(port)) throw new UsageError(`--port: "${port}" is not a port number`);
        const labels = { app: name };
        const container: Record<string, unknown> = { name, image, ...(port === undefined ? {} : { ports: [{ containerPort: Number(port) }] }) };
        await client.create('Deployment', {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name, namespace: namespace ?? 'default', labels },
          spec: { replicas: Number(replicas), selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [container] } } },
        });
        io.out(`deployment.apps/${name} created`);
        return 0;
      }
      case 'describe': {
        const [kindName, ...names] = rest;
        if (kindName === undefined) throw new UsageError('describe needs KIND [NAME...]');
        const info = kindOrThrow(kindName);
        const ns = info.namespaced ? (namespace ?? 'default') : '';
        const objects = names.length > 0 ? await Promise.all(names.map((name) => client!.get(info.kind, ns, name))) : (await client.list(info.kind, { namespace: ns, labelSelector: flag(parsed, 'selector') ?? '' })).items;
        if (objects.length === 0) io.out(`No resources found${info.namespaced ? ` in ${ns} namespace` : ''}.`);
        const described: string[] = [];
        for (const object of objects) {
          // Events about it live in its namespace (cluster-scoped objects' in default), as Kubernetes keeps them.
          const events = await client.list('Event', { namespace: ns === '' ? 'default' : ns, fieldSelector: `involvedObject.kind=${info.kind},involvedObject.name=${String(object.metadata?.name)}` });
          described.push(`${describeObject(info, object)}\n${describeEvents(events.items, io.now())}`);
        }
        io.out(described.join('\n\n'));
        return 0;
      }
      case 'scale': {
        const [kindName, name] = rest;
        const replicas = flag(parsed, 'replicas');
        if (kindName === undefined || name === undefined || replicas === undefined || !/^\d+$/.test(replicas)) throw new UsageError('scale needs KIND NAME --replicas=N');
        const info = kindOrThrow(kindName);
        if (!['Deployment', 'ReplicaSet', 'ReplicationController', 'StatefulSet'].includes(info.kind)) throw new UsageError(`${info.kind} cannot be scaled`);
        await client.patch(info.kind, namespace ?? 'default', name, { spec: { replicas: Number(replicas) } });
        io.out(`${qualifiedName(info)}/${name} scaled`);
        return 0;
      }
      case 'rollout':
        return await runRollout(client, rest, { namespace: namespace ?? 'default', flag: (name) => flag(parsed, name) }, io);
      case 'logs':
      case 'exec':
      case 'top': {
        const options = { namespace, flag: (name: string) => flag(parsed, name), boolFlag: (name: string) => boolFlag(parsed, name) };
        const podsIo = podsIoOf(io);
        if (command === 'logs') return await runLogs(client, rest, options, podsIo);
        if (command === 'top') return await runTop(client, rest, options, podsIo);
        const dashAt = parsed.dashAt;
        return await runExec(client, dashAt === undefined ? rest : parsed.positional.slice(1, dashAt), dashAt === undefined ? undefined : parsed.positional.slice(dashAt), options, podsIo);
      }
      case 'cluster-info':
      case 'member': {
        if (command === 'member' && rest[0] !== 'list' && rest[0] !== 'remove') throw new UsageError('usage: mastctl member list | mastctl member remove ID');
        etcd = new EtcdClient({ endpoints: masters, timeoutMs: 3000, ...(credentials === undefined ? {} : { credentials }) });
        if (command === 'member' && rest[0] === 'remove') {
          const [, id, ...extra] = rest;
          if (id === undefined || extra.length > 0 || !/^[0-9a-f]{1,16}$/i.test(id)) throw new UsageError('usage: mastctl member remove ID (the hex ID member list shows)');
          const known = await etcd.withFailover((connection) => connection.memberList(), Date.now() + 10_000);
          const member = known.members.find((candidate) => BigInt(candidate.ID) === BigInt(`0x${id}`));
          if (member === undefined) throw new UsageError(`no member ${id}: mastctl member list shows the IDs`);
          await etcd.withFailover((connection) => connection.memberRemove(member.ID), Date.now() + 15_000);
          io.out(`member ${id}${member.name === '' ? '' : ` (${member.name})`} removed`);
          return 0;
        }
        const members = await etcd.withFailover((connection) => connection.memberList(), Date.now() + 10_000);
        const rows: Array<Record<string, string>> = [];
        let leader = '';
        let revision = '';
        for (const member of members.members) {
          let role = 'unreachable';
          for (const url of member.clientURLs) {
            const connection = etcd.connections.find((candidate) => candidate.endpoint.replace(/\/$/, '') === url.replace(/\/$/, ''));
            if (connection === undefined) continue;
            try {
              const status = await connection.status(2000);
              role = status.leader === member.ID ? 'leader' : member.isLearner ? 'learner' : 'follower';
              if (role === 'leader') leader = member.name;
              revision = status.header?.revision ?? revision;
            } catch {
              // stays unreachable
            }
          }
          rows.push({ ID: BigInt(member.ID).toString(16), NAME: member.name, ROLE: role, 'CLIENT URLS': member.clientURLs.join(','), 'PEER URLS': member.peerURLs.join(',') });
        }
        if (command === 'cluster-info') io.out(`mast control plane: ${members.members.length} masters, leader ${leader || '<none>'}, revision ${revision || '<unknown>'}\nmasters: ${masters.join(', ')}`);
        io.out(formatTable(['ID', 'NAME', 'ROLE', 'CLIENT URLS', 'PEER URLS'], rows));
        return 0;
      }
      case 'snapshot': {
        const [verb, file, ...extra] = rest;
        if (verb !== 'save' || file === undefined || extra.length > 0) throw new UsageError('usage: mastctl snapshot save FILE');
        const saved = await saveFromFirstAnswering(masters, credentials, file);
        io.out(`Snapshot saved at ${saved.file} (revision ${saved.revision}, ${saved.bytes} bytes)`);
        return 0;
      }
      case 'token': {
        const [verb = '', ...args] = rest;
        await runToken(client, { verb, args, flag: (name) => flag(parsed, name), masters, credentials, now: io.now, out: io.out });
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"; see mastctl help`);
    }
  } catch (error) {
    io.out(describeError(error));
    return 1;
  } finally {
    client?.close();
    etcd?.close();
  }
}

/** Save a snapshot from the first master that answers (one after another while they are unreachable). */
async function saveFromFirstAnswering(masters: readonly string[], credentials: grpc.ChannelCredentials | undefined, file: string): Promise<Awaited<ReturnType<typeof saveSnapshot>>> {
  for (let index = 0; ; index++) {
    try {
      return await saveSnapshot({ endpoint: masters[index]!, credentials, file });
    } catch (error) {
      if (index + 1 >= masters.length || (error as Partial<grpc.ServiceError>).code !== grpc.status.UNAVAILABLE) throw error;
    }
  }
}

/** The streams logs and exec write to, from what the caller gave (tests give `out` alone). */
function podsIoOf(io: CtlIo): PodsIo {
  const err = io.err ?? io.out;
  const write =
    io.write ??
    ((chunk: Uint8Array | string, stream: 'stdout' | 'stderr'): void => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      (stream === 'stderr' ? err : io.out)(text.replace(/\n$/, ''));
    });
  return { out: io.out, err, write, ...(io.interrupted === undefined ? {} : { interrupted: io.interrupted }) };
}

async function get(client: ResourceClient, rest: readonly string[], parsed: Parsed, io: CtlIo): Promise<void> {
  const [kinds, ...names] = rest;
  if (kinds === undefined) throw new UsageError(`get needs a resource type, e.g. mastctl get pods (known: ${KINDS.map((info) => info.resource).join(', ')})`);
  const infos = kinds === 'all' ? ALL.map((kind) => resolveKind(kind)!) : kinds.split(',').map(kindOrThrow);
  const allNamespaces = boolFlag(parsed, 'all-namespaces');
  const namespace = allNamespaces ? undefined : (flag(parsed, 'namespace') ?? 'default');
  const outputFlag = flag(parsed, 'output') ?? 'table';
  if (!['table', 'wide', 'yaml', 'json', 'name'].includes(outputFlag)) throw new UsageError(`unable to match a printer for output format "${outputFlag}" (use wide, yaml, json or name)`);
  const output = outputFlag as PrintOptions['output'];
  const several = infos.length > 1;
  const sections: string[] = [];
  let lastListVersion = '';
  for (const info of infos) {
    let objects: KubeObject[];
    if (names.length > 0) {
      objects = [];
      for (const name of names) objects.push(await client.get(info.kind, info.namespaced ? (namespace ?? 'default') : '', name));
    } else {
      objects = [];
      let token = '';
      do {
        const page = await client.list(info.kind, {
          namespace: info.namespaced ? (namespace ?? '') : '',
          labelSelector: flag(parsed, 'selector') ?? '',
          fieldSelector: flag(parsed, 'field-selector') ?? '',
          limit: 500,
          continue: token,
        });
        objects.push(...page.items);
        token = page.continue;
        if (lastListVersion === '') lastListVersion = page.resourceVersion;
      } while (token !== '');
    }
    if (objects.length === 0 && several) continue;
    if (objects.length === 0) {
      io.out(allNamespaces || !info.namespaced ? 'No resources found' : `No resources found in ${namespace} namespace.`);
      continue;
    }
    sections.push(
      printObjects(info.kind, objects, {
        output,
        withNamespace: allNamespaces && info.namespaced && (output === 'table' || output === 'wide'),
        showLabels: boolFlag(parsed, 'show-labels'),
        now: io.now(),
        kindPrefix: several || output === 'name' ? qualifiedName(info) : undefined,
      }),
    );
  }
  if (sections.length === 0 && several) io.out(allNamespaces ? 'No resources found' : `No resources found in ${namespace} namespace.`);
  if (sections.length > 0) io.out(sections.join(output === 'table' || output === 'wide' ? '\n\n' : '\n'));
  if (!boolFlag(parsed, 'watch')) return;
  // -w: then every change, one row each, until interrupted (as kubectl get -w).
  if (several) throw new UsageError('get -w watches one resource type at a time');
  const info = infos[0]!;
  const stops: Array<() => void> = [];
  const failed = new Promise<void>((_, reject) => {
    stops.push(
      client.watch(
        info.kind,
        { namespace: info.namespaced ? (namespace ?? '') : '', labelSelector: flag(parsed, 'selector') ?? '', fieldSelector: flag(parsed, 'field-selector') ?? '', resourceVersion: lastListVersion },
        {
          onEvent: (type, object) => {
            if (names.length > 0 && !names.includes(String(object.metadata?.name))) return;
            const text = printObjects(info.kind, [object], { output, withNamespace: allNamespaces && info.namespaced && (output === 'table' || output === 'wide'), showLabels: boolFlag(parsed, 'show-labels'), now: io.now() });
            // A table row without its header; DELETED rows say so, as kubectl's --output-watch-events does not by default but users need.
            const row = output === 'table' || output === 'wide' ? text.split('\n').slice(1).join('\n') : text;
            io.out(type === 'DELETED' && (output === 'table' || output === 'wide') ? `${row}   (deleted)` : row);
          },
          onError: (error) => reject(error),
        },
      ),
    );
  });
  try {
    await Promise.race([io.interrupted ?? new Promise<void>(() => {}), failed]);
  } finally {
    for (const stop of stops) stop();
  }
}

const USAGE = `mastctl controls a mast cluster.

  get KIND[,KIND...]|all [NAME...] [-n NS | -A] [-o wide|yaml|json|name] [-l SELECTOR] [--field-selector SEL] [--show-labels]
  apply -f FILE|DIR|-           create or update the objects in the manifests (multi-document YAML, JSON)
  create -f FILE|DIR|-
  delete KIND NAME... | -f FILE|DIR|-  [--cascade=background|foreground|orphan] [--grace-period=SECONDS]
  label KIND NAME key=value... [key-] [--overwrite]
  annotate KIND NAME key=value... [key-] [--overwrite]
  scale KIND NAME --replicas=N
  run NAME --image=IMAGE [--replicas=N] [--port=P]   create a Deployment
  describe KIND [NAME...] [-l SELECTOR]
  rollout status deploy/NAME [--timeout=DURATION] [--watch=false]   wait for a rollout to finish
  rollout history deploy/NAME [--revision=N]
  rollout undo deploy/NAME [--to-revision=N]
  rollout pause|resume deploy/NAME
  logs POD|TYPE/NAME [-c CONTAINER] [-f|--follow] [-p|--previous] [--tail=N] [--since=DURATION] [--timestamps] [--limit-bytes=N]
                                a container's log (TYPE/NAME: the first pod of a deployment, replicaset, statefulset, daemonset, job...)
  exec POD|TYPE/NAME [-c CONTAINER] -- CMD [ARGS...]   run a command in a container and wait for it (no stdin, no tty)
  top pods [NAME] [-n NS | -A] [-l SELECTOR] [--containers] [--sort-by=cpu|memory]
  top nodes [NAME] [-l SELECTOR] [--sort-by=cpu|memory]   cpu and memory usage, from the metrics the agents report
  cluster-info                  masters, leader, revision
  member list | member remove ID   the masters; remove one for good (a dead machine), by the ID member list shows
  snapshot save FILE            stream a backup of the masters' state to FILE (restore it with mast snapshot restore)
  token create [--for node|master] [--ttl 24h] [--description TEXT]   a join token, and the mast join command that uses it
  token list | token delete ID...

Masters: --server URL[,URL...], else $MAST_MASTERS, else $MASTCONFIG or ~/.mast/config (masters: [URL, ...]).
Credentials: --certificate-authority FILE, --token TOKEN or --client-certificate FILE --client-key FILE,
else the config file's certificateAuthority, token, clientCertificate, clientKey (mast init writes them).`;
