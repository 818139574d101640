// mastctl rollout: kubectl's rollout commands for Deployments.
//
//   rollout status deploy/NAME [--timeout=DURATION] [--watch=false] [--revision=N]
//   rollout history deploy/NAME [--revision=N]
//   rollout undo deploy/NAME [--to-revision=N]
//   rollout pause|resume deploy/NAME
//
// status watches the Deployment and prints kubectl's messages as they
// change; undo copies a revision's template into the Deployment on the
// client side, as kubectl does, and the Deployment controller rolls it out.

import type { Deployment, ReplicaSet } from '../../proto/gen/resources/v1/apps.js';
import type { PodTemplateSpec } from '../../proto/gen/resources/v1/core.js';
import { resolveKind } from '../client/kinds.js';
import type { KubeObject, ResourceClient } from '../client/resources.js';
import { describePodTemplate } from './printers.js';

/** An error to print as "error: <message>", as kubectl does. */
export class RolloutError extends Error {
  override readonly name = 'RolloutError';
}

export interface RolloutIo {
  readonly out: (text: string) => void;
  /** Resolves when the user interrupts (Ctrl-C): ends a watching `rollout status`. */
  readonly interrupted?: Promise<void>;
}

export interface RolloutOptions {
  readonly namespace: string;
  /** A flag's value (the last given), undefined when absent. */
  readonly flag: (name: string) => string | undefined;
}

const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
const CHANGE_CAUSE_ANNOTATION = 'kubernetes.io/change-cause';
const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';
/** Annotations kubectl's undo neither takes from the ReplicaSet nor drops from the Deployment. */
const ANNOTATIONS_TO_SKIP = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION_ANNOTATION,
  'deployment.kubernetes.io/revision-history',
  'deployment.kubernetes.io/desired-replicas',
  'deployment.kubernetes.io/max-replicas',
  'deprecated.deployment.rollback.to',
]);

/** kubectl's DeploymentStatusViewer: the message for the Deployment as it is, and whether the rollout is done. */
export function rolloutStatusMessage(deployment: Deployment, revision = 0): { readonly message: string; readonly done: boolean } {
  const name = deployment.metadata?.name ?? '';
  const status = deployment.status ?? {};
  if (revision > 0) {
    const running = revisionOf(deployment);
    if (running !== revision) throw new RolloutError(`desired revision (${revision}) is different from the running revision (${running})`);
  }
  if ((deployment.metadata?.generation ?? 0) > (status.observedGeneration ?? 0)) return { message: 'Waiting for deployment spec update to be observed...', done: false };
  if (status.conditions?.some((condition) => condition.type === 'Progressing' && condition.reason === 'ProgressDeadlineExceeded')) throw new RolloutError(`deployment "${name}" exceeded its progress deadline`);
  const waiting = (what: string): { message: string; done: boolean } => ({ message: `Waiting for deployment "${name}" rollout to finish: ${what}...`, done: false });
  const replicas = deployment.spec?.replicas ?? 1;
  const [updated, total, available] = [status.updatedReplicas ?? 0, status.replicas ?? 0, status.availableReplicas ?? 0];
  if (updated < replicas) return waiting(`${updated} out of ${replicas} new replicas have been updated`);
  if (total > updated) return waiting(`${total - updated} old replicas are pending termination`);
  if (available < updated) return waiting(`${available} of ${updated} updated replicas are available`);
  return { message: `deployment "${name}" successfully rolled out`, done: true };
}

function revisionOf(object: { metadata?: { annotations?: Record<string, string> | undefined } | undefined }): number | undefined {
  const text = object.metadata?.annotations?.[REVISION_ANNOTATION];
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Go's time.ParseDuration, in milliseconds ("0" alone needs no unit). */
export function parseDurationMs(text: string, flagName: string): number {
  if (text === '0') return 0;
  const units: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)?/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== text) throw new RolloutError(`invalid argument "${text}" for "--${flagName}" flag: time: invalid duration "${text}"`);
  return parts.reduce((total, part) => {
    if (part[2] === undefined) throw new RolloutError(`invalid argument "${text}" for "--${flagName}" flag: time: missing unit in duration "${text}"`);
    return total + Number(part[1]) * units[part[2]]!;
  }, 0);
}

function wholeNumber(options: RolloutOptions, name: string): number {
  const value = options.flag(name) ?? '0';
  if (!/^\d+$/.test(value)) throw new RolloutError(`invalid argument "${value}" for "--${name}" flag: must be a whole number`);
  return Number(value);
}

/** The Deployment named by "deploy/NAME", "deployment NAME", "deployments.apps/NAME"... */
function targetOf(command: string, words: readonly string[]): string {
  const [first, second] = words;
  if (first === undefined) throw new RolloutError(`rollout ${command} needs a resource, e.g. mastctl rollout ${command} deploy/NAME`);
  const [kindName, name] = first.includes('/') ? [first.slice(0, first.indexOf('/')), first.slice(first.indexOf('/') + 1)] : [first, second];
  const info = resolveKind(kindName);
  if (info === undefined) throw new RolloutError(`the server doesn't have a resource type "${kindName}"`);
  if (info.kind !== 'Deployment') throw new RolloutError(`rollout ${command} is implemented for deployments only, not ${info.resource}`);
  if (name === undefined || name === '') throw new RolloutError(`rollout ${command} needs a deployment name, e.g. deploy/NAME`);
  return name;
}

async function ownedReplicaSets(client: ResourceClient, deployment: Deployment): Promise<ReplicaSet[]> {
  const namespace = deployment.metadata?.namespace ?? '';
  const replicaSets: ReplicaSet[] = [];
  let token = '';
  do {
    const page = await client.list('ReplicaSet', { namespace, limit: 500, continue: token });
    replicaSets.push(...(page.items as ReplicaSet[]));
    token = page.continue;
  } while (token !== '');
  const uid = deployment.metadata?.uid;
  return replicaSets.filter((rs) => rs.metadata?.ownerReferences?.some((reference) => reference.controller === true && reference.uid === uid));
}

/** JSON with sorted keys and without empty members, for comparing templates as Kubernetes' semantic equality does. */
function canonical(value: unknown): string {
  const empty = (item: unknown): boolean => item === undefined || item === null || (Array.isArray(item) ? item.length === 0 : typeof item === 'object' && Object.values(item as object).every(empty));
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value as Record<string, unknown>).filter(([, item]) => !empty(item)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${members.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

function withoutHash(template: PodTemplateSpec | undefined): PodTemplateSpec {
  const copy = structuredClone(template ?? {});
  if (copy.metadata?.labels !== undefined) delete copy.metadata.labels[POD_TEMPLATE_HASH_LABEL];
  return copy;
}

/** Rows in kubectl's tabwriter layout (two spaces between columns). */
function tabbed(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...rows.map(([first]) => first.length)) + 2;
  return rows.map(([first, second]) => `${first.padEnd(width)}${second}`.trimEnd()).join('\n');
}

async function status(client: ResourceClient, namespace: string, name: string, options: RolloutOptions, io: RolloutIo): Promise<number> {
  const timeoutMs = parseDurationMs(options.flag('timeout') ?? '0s', 'timeout');
  const watch = (options.flag('watch') ?? 'true') !== 'false';
  const revision = wholeNumber(options, 'revision');
  const first = (await client.get('Deployment', namespace, name)) as Deployment;
  let last = '';
  // kubectl prints on every event; the same message twice in a row says nothing new.
  const show = (deployment: Deployment): boolean => {
    const { message, done } = rolloutStatusMessage(deployment, revision);
    if (message !== last) io.out(message);
    last = message;
    return done;
  };
  if (show(first) || !watch) return 0;
  return new Promise<number>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let stop: (() => void) | undefined;
    let finished = false;
    const finish = (outcome: { code: number } | { error: unknown }): void => {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clearTimeout(timer);
      stop?.();
      if ('code' in outcome) resolve(outcome.code);
      else reject(outcome.error instanceof Error ? outcome.error : new RolloutError(String(outcome.error)));
    };
    if (timeoutMs > 0) timer = setTimeout(() => finish({ error: new RolloutError('timed out waiting for the condition') }), timeoutMs);
    void io.interrupted?.then(() => finish({ code: 1 }));
    stop = client.watch('Deployment', { namespace, fieldSelector: `metadata.name=${name}`, resourceVersion: first.metadata?.resourceVersion ?? '' }, {
      onEvent: (type, object) => {
        if (type === 'DELETED') return finish({ error: new RolloutError('object has been deleted') });
        if (type !== 'ADDED' && type !== 'MODIFIED') return;
        try {
          if (show(object as Deployment)) finish({ code: 0 });
        } catch (error) {
          finish({ error });
        }
      },
      onError: (error) => finish({ error }),
    });
    if (finished) stop();
  });
}

async function history(client: ResourceClient, deployment: Deployment, options: RolloutOptions, io: RolloutIo): Promise<void> {
  const wanted = wholeNumber(options, 'revision');
  const byRevision = new Map<number, ReplicaSet>();
  for (const rs of await ownedReplicaSets(client, deployment)) {
    const revision = revisionOf(rs);
    if (revision !== undefined) byRevision.set(revision, rs);
  }
  const label = `deployment.apps/${deployment.metadata?.name ?? ''}`;
  if (byRevision.size === 0) {
    io.out(`${label}\nNo rollout history found.`);
    return;
  }
  const changeCause = (rs: ReplicaSet): string | undefined => rs.metadata?.annotations?.[CHANGE_CAUSE_ANNOTATION];
  if (wanted > 0) {
    const rs = byRevision.get(wanted);
    if (rs === undefined) throw new RolloutError('unable to find the specified revision');
    const template = structuredClone(rs.spec?.template ?? {});
    const cause = changeCause(rs);
    if (cause !== undefined && cause !== '') template.metadata = { ...template.metadata, annotations: { ...template.metadata?.annotations, [CHANGE_CAUSE_ANNOTATION]: cause } };
    io.out(`${label} with revision #${wanted}\n${describePodTemplate(template as KubeObject)}`);
    return;
  }
  const revisions = [...byRevision.keys()].sort((a, b) => a - b);
  io.out(`${label}\n${tabbed([['REVISION', 'CHANGE-CAUSE'], ...revisions.map((revision): [string, string] => [String(revision), changeCause(byRevision.get(revision)!) || '<none>'])])}`);
}

/** kubectl's deploymentRevision: the ReplicaSet of `toRevision`, or (0) of the revision before the latest. */
function revisionToRestore(replicaSets: readonly ReplicaSet[], toRevision: number, name: string): ReplicaSet {
  let latest: [number, ReplicaSet | undefined] = [-1, undefined];
  let previous: [number, ReplicaSet | undefined] = [-1, undefined];
  for (const rs of replicaSets) {
    const revision = revisionOf(rs);
    if (revision === undefined) continue;
    if (toRevision > 0) {
      if (revision === toRevision) return rs;
    } else if (revision > latest[0]) {
      previous = latest;
      latest = [revision, rs];
    } else if (revision > previous[0]) {
      previous = [revision, rs];
    }
  }
  if (toRevision > 0) throw new RolloutError(`unable to find specified revision ${toRevision} in history`);
  if (previous[1] === undefined) throw new RolloutError(`no rollout history found for deployment "${name}"`);
  return previous[1];
}

async function undo(client: ResourceClient, deployment: Deployment, options: RolloutOptions): Promise<string> {
  const name = deployment.metadata?.name ?? '';
  const toRevision = wholeNumber(options, 'to-revision');
  if (deployment.spec?.paused === true) throw new RolloutError(`you cannot rollback a paused deployment; resume it first with 'mastctl rollout resume deployment/${name}' and try again`);
  const rs = revisionToRestore(await ownedReplicaSets(client, deployment), toRevision, name);
  if (canonical(withoutHash(rs.spec?.template)) === canonical(withoutHash(deployment.spec?.template))) return `skipped rollback (current template already matches revision ${toRevision})`;
  const annotations: Record<string, string> = {};
  for (const [key, value] of Object.entries(deployment.metadata?.annotations ?? {})) if (ANNOTATIONS_TO_SKIP.has(key)) annotations[key] = value;
  for (const [key, value] of Object.entries(rs.metadata?.annotations ?? {})) if (!ANNOTATIONS_TO_SKIP.has(key)) annotations[key] = value;
  const restored: Deployment = { ...deployment, metadata: { ...deployment.metadata, annotations }, spec: { ...deployment.spec, template: withoutHash(rs.spec?.template) } };
  try {
    await client.update('Deployment', restored as KubeObject);
  } catch (error) {
    throw new RolloutError(`failed restoring revision ${toRevision}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return 'rolled back';
}

async function setPaused(client: ResourceClient, deployment: Deployment, paused: boolean): Promise<string> {
  const name = deployment.metadata?.name ?? '';
  if ((deployment.spec?.paused === true) === paused) throw new RolloutError(`deployments.apps "${name}" is ${paused ? 'already paused' : 'not paused'}`);
  await client.patch('Deployment', deployment.metadata?.namespace ?? '', name, { metadata: { resourceVersion: deployment.metadata?.resourceVersion }, spec: { paused: paused ? true : null } });
  return paused ? 'paused' : 'resumed';
}

/** `mastctl rollout SUBCOMMAND ...`: the exit code (errors are thrown, for the caller to print). */
export async function runRollout(client: ResourceClient, words: readonly string[], options: RolloutOptions, io: RolloutIo): Promise<number> {
  const [command, ...rest] = words;
  if (command === undefined || !['status', 'history', 'undo', 'pause', 'resume'].includes(command)) {
    throw new RolloutError(`${command === undefined ? 'rollout needs a command' : `unknown rollout command "${command}"`}: status, history, undo, pause or resume`);
  }
  const name = targetOf(command, rest);
  if (command === 'status') return status(client, options.namespace, name, options, io);
  const deployment = (await client.get('Deployment', options.namespace, name)) as Deployment;
  if (command === 'history') {
    await history(client, deployment, options, io);
    return 0;
  }
  const outcome = command === 'undo' ? await undo(client, deployment, options) : await setPaused(client, deployment, command === 'pause');
  io.out(`deployment.apps/${name} ${outcome}`);
  return 0;
}
