// What to do next for one pod, from its spec and what the runtime holds for
// it — the kubelet's computePodActions, as a pure function: the pod worker
// observes the runtime, asks this, then does what it answers. Time comes in
// as nowMs, back-off as a read-only view, probe results as a snapshot; the
// same inputs always give the same actions.
//
// The rules, as the kubelet's:
// - No ready sandbox, more than one, or the newest one not ready or without
//   an IP: kill everything and create a sandbox with the next attempt number —
//   unless the pod is finished (restartPolicy Never and containers ran, or
//   nothing is left to run), then it stays down.
// - Init containers run one at a time, in order, in the current sandbox; a
//   failed one restarts per restartPolicy (Never: the pod failed). Regular
//   containers start only when every init container succeeded.
// - Always restarts any exited container, OnFailure only a non-zero exit,
//   Never none; restarts wait for the crash-loop back-off.
// - A running container is killed (and started again unless Never) when its
//   spec hash changed (restarted whatever the policy), or its liveness or
//   startup probe failed.
// - A pod being deleted: kill everything with the deletion grace period.
// - Housekeeping: per container name the newest instance and the newest
//   exited one before it (the status' lastState) stay; older exited ones go,
//   and so do old sandboxes that hold nothing kept.

import type { Container, Pod } from '../../proto/gen/resources/v1/core.js';
import { containerBackoffKey, type BackoffView } from './backoff.js';

export const LABEL_POD_UID = 'io.kubernetes.pod.uid';
export const LABEL_POD_NAME = 'io.kubernetes.pod.name';
export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
export const ANNOTATION_CONTAINER_HASH = 'io.kubernetes.container.hash';
export const ANNOTATION_RESTART_COUNT = 'io.kubernetes.container.restartCount';

/** Kubernetes' default terminationGracePeriodSeconds. */
export const DEFAULT_GRACE_PERIOD_SECONDS = 30;

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

/** A sandbox of this pod as the runtime reports it. */
export interface ObservedSandbox {
  readonly id: string;
  readonly state: 'ready' | 'notready';
  readonly attempt: number;
  readonly createdAtMs: number;
  /** The pod IP; '' when it has none (host network, or its network is gone). */
  readonly ip: string;
  readonly additionalIps?: readonly string[];
}

export type ObservedContainerState = 'created' | 'running' | 'exited' | 'unknown';

/** A container of this pod as the runtime reports it (any sandbox of the pod). */
export interface ObservedContainer {
  readonly id: string;
  readonly sandboxId: string;
  readonly name: string;
  readonly state: ObservedContainerState;
  /** CRI metadata.attempt. */
  readonly attempt: number;
  /** The io.kubernetes.container.restartCount annotation (equal to attempt when mast created it). */
  readonly restartCount: number;
  /** The io.kubernetes.container.hash annotation: containerSpecHash of the spec it was created from. */
  readonly hash: string;
  readonly createdAtMs: number;
  /** 0 when it never started. */
  readonly startedAtMs: number;
  /** 0 when it has not finished. */
  readonly finishedAtMs: number;
  readonly exitCode: number;
  /** The runtime's reason ("Completed", "Error", "OOMKilled") and message (the termination message). */
  readonly reason: string;
  readonly message: string;
  readonly image: string;
  readonly imageRef: string;
}

export interface PodObservation {
  readonly sandboxes: readonly ObservedSandbox[];
  readonly containers: readonly ObservedContainer[];
}

export type ProbeResult = 'success' | 'failure';

/** The current result of each probe of one container instance; absent: no result yet. */
export interface ContainerProbeResults {
  readonly liveness?: ProbeResult;
  readonly readiness?: ProbeResult;
  readonly startup?: ProbeResult;
}

/** Probe results by container id (a new instance starts without results). */
export type ProbeSnapshot = ReadonlyMap<string, ContainerProbeResults>;

export interface PodActionsInput {
  readonly pod: Pod;
  readonly observed: PodObservation;
  readonly probes: ProbeSnapshot;
  readonly backoff: BackoffView;
  readonly nowMs: number;
}

export interface ContainerToStart {
  readonly name: string;
  readonly container: Container;
  readonly init: boolean;
  /** Its restart count: the previous instance's plus one, 0 for the first. */
  readonly attempt: number;
  /** When the instance it replaces exited; the worker records the restart for back-off. Undefined for a first start or a restart after a kill. */
  readonly restartOfExitAtMs: number | undefined;
}

export interface ContainerToKill {
  readonly id: string;
  readonly name: string;
  readonly reason: string;
  readonly gracePeriodSeconds: number;
}

export interface BackoffWait {
  readonly name: string;
  readonly init: boolean;
  readonly untilMs: number;
  readonly delayMs: number;
}

export interface PodActions {
  /** Stop every running container (with this grace) and every ready sandbox of the pod. */
  readonly killPod: { readonly reason: string; readonly gracePeriodSeconds: number } | undefined;
  readonly createSandbox: { readonly attempt: number } | undefined;
  /** The sandbox containers start in; '' when one is to be created. */
  readonly sandboxId: string;
  readonly containersToKill: readonly ContainerToKill[];
  readonly nextInitContainerToStart: ContainerToStart | undefined;
  readonly containersToStart: readonly ContainerToStart[];
  /** An init container failed and restartPolicy is Never: the pod failed. */
  readonly initFailed: boolean;
  readonly waitingBackoff: readonly BackoffWait[];
  readonly sandboxesToRemove: readonly string[];
  readonly containersToRemove: readonly string[];
  /** Nothing runs and nothing will be started again (until the spec changes). */
  readonly podDone: boolean;
}

/** Whether a decision asks the worker for anything: work now, or a back-off to wait out. */
export function asksForAction(actions: PodActions): boolean {
  return (
    actions.killPod !== undefined ||
    actions.createSandbox !== undefined ||
    actions.containersToKill.length > 0 ||
    actions.nextInitContainerToStart !== undefined ||
    actions.containersToStart.length > 0 ||
    actions.waitingBackoff.length > 0 ||
    actions.sandboxesToRemove.length > 0 ||
    actions.containersToRemove.length > 0
  );
}

export function restartPolicyOf(pod: Pod): RestartPolicy {
  const policy = pod.spec?.restartPolicy;
  return policy === 'OnFailure' || policy === 'Never' ? policy : 'Always';
}

export function isHostNetwork(pod: Pod): boolean {
  return pod.spec?.hostNetwork === true;
}

/** The grace period of a pod's deletion: the one the API server stamped, else the spec's, else 30 s. */
export function deletionGracePeriodSeconds(pod: Pod): number {
  return pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_SECONDS;
}

function specGracePeriodSeconds(pod: Pod): number {
  return pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_SECONDS;
}

/** Newest first: by attempt, then creation time. */
export function newestFirst<T extends { readonly attempt: number; readonly createdAtMs: number }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => b.attempt - a.attempt || b.createdAtMs - a.createdAtMs);
}

/** The newest instance of each container name, among the given ones. */
export function latestByName(containers: readonly ObservedContainer[]): Map<string, ObservedContainer> {
  const latest = new Map<string, ObservedContainer>();
  for (const container of newestFirst(containers)) if (!latest.has(container.name)) latest.set(container.name, container);
  return latest;
}

/** When a stopped instance stopped: its finish time, else (never started) its creation. */
export function stoppedAtMs(container: ObservedContainer): number {
  return container.finishedAtMs > 0 ? container.finishedAtMs : container.createdAtMs;
}

/**
 * A stable hash of a container spec (FNV-1a over canonical JSON: keys sorted;
 * undefined, null, empty arrays and empty objects left out, so a field the API
 * omits and one it sends empty hash alike). The worker stamps it on every
 * container it creates, so a changed spec is seen even across agent restarts.
 */
export function containerSpecHash(container: Container): string {
  const text = canonicalJson(container) ?? '';
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

function canonicalJson(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) {
    if (value.length === 0) return undefined;
    return `[${value.map((item) => canonicalJson(item) ?? 'null').join(',')}]`;
  }
  if (typeof value === 'object') {
    const parts: string[] = [];
    for (const key of Object.keys(value).sort()) {
      const text = canonicalJson((value as Record<string, unknown>)[key]);
      if (text !== undefined) parts.push(`${JSON.stringify(key)}:${text}`);
    }
    return parts.length === 0 ? undefined : `{${parts.join(',')}}`;
  }
  return JSON.stringify(value);
}

interface SandboxDecision {
  readonly create: boolean;
  readonly attempt: number;
  readonly current: ObservedSandbox | undefined;
}

/** kubelet's PodSandboxChanged: whether the pod needs a new sandbox, and with which attempt. */
function decideSandbox(pod: Pod, sandboxes: readonly ObservedSandbox[]): SandboxDecision {
  const newest = sandboxes[0];
  if (newest === undefined) return { create: true, attempt: 0, current: undefined };
  const readyCount = sandboxes.filter((sandbox) => sandbox.state === 'ready').length;
  const lostNetwork = !isHostNetwork(pod) && newest.ip === '';
  if (readyCount > 1 || newest.state !== 'ready' || lostNetwork) return { create: true, attempt: newest.attempt + 1, current: undefined };
  return { create: false, attempt: newest.attempt, current: newest };
}

function isAlive(container: ObservedContainer): boolean {
  return container.state === 'running' || container.state === 'created' || container.state === 'unknown';
}

/** kubelet's ShouldContainerBeRestarted, for a pod not being deleted. */
function shouldStart(latest: ObservedContainer | undefined, policy: RestartPolicy): boolean {
  if (latest === undefined) return true;
  if (latest.state === 'running') return false;
  if (latest.state === 'unknown' || latest.state === 'created') return true;
  if (policy === 'Never') return false;
  if (policy === 'OnFailure' && latest.exitCode === 0) return false;
  return true;
}

function isInitFailed(container: ObservedContainer): boolean {
  return container.reason.includes('OOMKilled') || (container.state === 'exited' && container.exitCode !== 0) || container.state === 'unknown';
}

type InitProgress = { readonly kind: 'done' } | { readonly kind: 'running' } | { readonly kind: 'failed'; readonly container: Container; readonly status: ObservedContainer } | { readonly kind: 'next'; readonly container: Container };

/** kubelet's findNextInitContainerToRun, over the current sandbox's containers. */
function initProgress(initSpecs: readonly Container[], appSpecs: readonly Container[], current: Map<string, ObservedContainer>): InitProgress {
  if (initSpecs.length === 0) return { kind: 'done' };
  // A regular container ran in this sandbox: initialization finished, even if its init containers were removed since.
  if (appSpecs.some((spec) => current.get(spec.name ?? '')?.state === 'running')) return { kind: 'done' };
  for (let index = initSpecs.length - 1; index >= 0; index -= 1) {
    const spec = initSpecs[index] as Container;
    const status = current.get(spec.name ?? '');
    if (status !== undefined && isInitFailed(status)) return { kind: 'failed', container: spec, status };
  }
  for (let index = initSpecs.length - 1; index >= 0; index -= 1) {
    const status = current.get(initSpecs[index]?.name ?? '');
    if (status === undefined) continue;
    if (status.state === 'running') return { kind: 'running' };
    if (status.state === 'exited') {
      const next = initSpecs[index + 1];
      return next === undefined ? { kind: 'done' } : { kind: 'next', container: next };
    }
  }
  return { kind: 'next', container: initSpecs[0] as Container };
}

interface Planner {
  readonly starts: ContainerToStart[];
  readonly waits: BackoffWait[];
}

/** Start a container now, or wait for its back-off when it replaces an instance that stopped by itself. */
function planStart(input: PodActionsInput, planner: Planner, container: Container, init: boolean, previous: ObservedContainer | undefined, backoff: boolean): ContainerToStart | undefined {
  const name = container.name ?? '';
  const attempt = previous === undefined ? 0 : previous.restartCount + 1;
  if (previous === undefined || !backoff || (previous.state !== 'exited' && previous.state !== 'created')) {
    const start = { name, container, init, attempt, restartOfExitAtMs: undefined };
    planner.starts.push(start);
    return start;
  }
  const exitedAtMs = stoppedAtMs(previous);
  const delayMs = input.backoff.crashLoopDelayMs(containerBackoffKey(input.pod.metadata?.uid ?? '', name), exitedAtMs);
  if (input.nowMs < exitedAtMs + delayMs) {
    planner.waits.push({ name, init, untilMs: exitedAtMs + delayMs, delayMs });
    return undefined;
  }
  const start = { name, container, init, attempt, restartOfExitAtMs: exitedAtMs };
  planner.starts.push(start);
  return start;
}

/** Which old containers and sandboxes to remove: per name keep the newest and the newest exited one before it. */
function housekeeping(observed: PodObservation, sandboxes: readonly ObservedSandbox[], knownNames: ReadonlySet<string>): { containers: string[]; sandboxes: string[] } {
  const kept = new Set<string>();
  const removed: string[] = [];
  const groups = new Map<string, ObservedContainer[]>();
  for (const container of newestFirst(observed.containers)) {
    const group = groups.get(container.name) ?? [];
    group.push(container);
    groups.set(container.name, group);
  }
  for (const [name, group] of groups) {
    let keptLastState = false;
    group.forEach((container, index) => {
      if (container.state === 'running' || container.state === 'unknown') {
        kept.add(container.id);
      } else if (knownNames.has(name) && index === 0) {
        kept.add(container.id);
      } else if (knownNames.has(name) && !keptLastState && container.state === 'exited' && container.startedAtMs > 0) {
        keptLastState = true;
        kept.add(container.id);
      } else {
        removed.push(container.id);
      }
    });
  }
  const newest = sandboxes[0];
  const holding = new Set(observed.containers.filter((container) => kept.has(container.id)).map((container) => container.sandboxId));
  const removedSandboxes = sandboxes.filter((sandbox) => sandbox !== newest && sandbox.state !== 'ready' && !holding.has(sandbox.id)).map((sandbox) => sandbox.id);
  const gone = new Set(removedSandboxes);
  // RemovePodSandbox takes its containers with it.
  return { containers: removed.filter((id) => !gone.has(observed.containers.find((container) => container.id === id)?.sandboxId ?? '')), sandboxes: removedSandboxes };
}

function noActions(): PodActions {
  return {
    killPod: undefined,
    createSandbox: undefined,
    sandboxId: '',
    containersToKill: [],
    nextInitContainerToStart: undefined,
    containersToStart: [],
    initFailed: false,
    waitingBackoff: [],
    sandboxesToRemove: [],
    containersToRemove: [],
    podDone: false,
  };
}

function somethingAlive(observed: PodObservation): boolean {
  return observed.sandboxes.some((sandbox) => sandbox.state === 'ready') || observed.containers.some(isAlive);
}

function livenessGracePeriodSeconds(pod: Pod, container: Container, probe: 'liveness' | 'startup'): number {
  const spec = probe === 'liveness' ? container.livenessProbe : container.startupProbe;
  return spec?.terminationGracePeriodSeconds ?? specGracePeriodSeconds(pod);
}

interface Context {
  readonly input: PodActionsInput;
  readonly policy: RestartPolicy;
  readonly initSpecs: readonly Container[];
  readonly appSpecs: readonly Container[];
  /** The newest instance of each name, in any sandbox. */
  readonly latest: ReadonlyMap<string, ObservedContainer>;
  readonly gracePeriodSeconds: number;
  readonly planner: Planner;
}

export function computePodActions(input: PodActionsInput): PodActions {
  const { pod, observed } = input;
  if (pod.metadata?.deletionTimestamp !== undefined) {
    const killPod = somethingAlive(observed) ? { reason: 'pod is being deleted', gracePeriodSeconds: deletionGracePeriodSeconds(pod) } : undefined;
    return { ...noActions(), killPod };
  }
  const context: Context = {
    input,
    policy: restartPolicyOf(pod),
    initSpecs: pod.spec?.initContainers ?? [],
    appSpecs: pod.spec?.containers ?? [],
    latest: latestByName(observed.containers),
    gracePeriodSeconds: specGracePeriodSeconds(pod),
    planner: { starts: [], waits: [] },
  };
  const sandboxes = newestFirst(observed.sandboxes);
  const knownNames = new Set([...context.initSpecs, ...context.appSpecs].map((container) => container.name ?? ''));
  const removal = housekeeping(observed, sandboxes, knownNames);
  const base: PodActions = { ...noActions(), containersToRemove: removal.containers, sandboxesToRemove: removal.sandboxes };
  const sandbox = decideSandbox(pod, sandboxes);
  if (sandbox.create) return actionsForNewSandbox(context, base, sandbox.attempt, sandboxes.length === 0);
  return actionsInSandbox(context, base, sandbox.current as ObservedSandbox, knownNames);
}

/** The pod needs a new sandbox: kill what is left, then start over from the first init container — unless the pod is finished. */
function actionsForNewSandbox(context: Context, base: PodActions, attempt: number, noSandbox: boolean): PodActions {
  const { input, policy, latest, planner } = context;
  const killPod = somethingAlive(input.observed) ? { reason: noSandbox ? 'pod sandbox is gone' : 'pod sandbox changed', gracePeriodSeconds: context.gracePeriodSeconds } : undefined;
  if (policy === 'Never' && attempt !== 0 && input.observed.containers.length > 0) return { ...base, killPod, podDone: true };
  const succeeded = (spec: Container): boolean => latest.get(spec.name ?? '')?.state === 'exited' && latest.get(spec.name ?? '')?.exitCode === 0;
  const appToStart = context.appSpecs.filter((spec) => !(policy === 'OnFailure' && succeeded(spec)));
  if (appToStart.length === 0) return { ...base, killPod, podDone: true };
  const created = { ...base, killPod, createSandbox: { attempt } };
  const firstInit = context.initSpecs[0];
  if (firstInit !== undefined) {
    // A new sandbox runs its init containers again, from the first; restart counts go on.
    return { ...created, nextInitContainerToStart: planStart(input, planner, firstInit, true, latest.get(firstInit.name ?? ''), false) };
  }
  for (const spec of appToStart) planStart(input, planner, spec, false, latest.get(spec.name ?? ''), true);
  return { ...created, containersToStart: planner.starts, waitingBackoff: planner.waits };
}

/** The current sandbox is fine: init containers in order, then the regular containers. */
function actionsInSandbox(context: Context, base: PodActions, current: ObservedSandbox, knownNames: ReadonlySet<string>): PodActions {
  const { input, policy, latest, planner } = context;
  const inCurrent = latestByName(input.observed.containers.filter((container) => container.sandboxId === current.id));
  const kill = (container: ObservedContainer, reason: string): ContainerToKill => ({ id: container.id, name: container.name, reason, gracePeriodSeconds: context.gracePeriodSeconds });
  const kills: ContainerToKill[] = [];
  // Whatever runs outside the current sandbox, or under a name the spec lacks, has no place in the pod.
  for (const container of input.observed.containers) {
    if (!isAlive(container)) continue;
    if (container.sandboxId !== current.id) kills.push(kill(container, 'its pod sandbox is gone'));
    else if (!knownNames.has(container.name)) kills.push(kill(container, 'not in the pod spec'));
    else if (latest.get(container.name) !== container) kills.push(kill(container, 'superseded by a newer attempt'));
  }
  const inSandbox = { ...base, sandboxId: current.id };

  const progress = initProgress(context.initSpecs, context.appSpecs, inCurrent);
  if (progress.kind === 'failed' && policy === 'Never') {
    const killPod = somethingAlive(input.observed) ? { reason: `init container ${progress.container.name ?? ''} failed`, gracePeriodSeconds: context.gracePeriodSeconds } : undefined;
    return { ...inSandbox, containersToKill: uniqueById(kills), initFailed: true, podDone: true, killPod };
  }
  if (progress.kind === 'failed') {
    if (progress.status.state === 'unknown') kills.push(kill(progress.status, 'state unknown, restarting'));
    const nextInitContainerToStart = planStart(input, planner, progress.container, true, progress.status, true);
    return { ...inSandbox, containersToKill: uniqueById(kills), nextInitContainerToStart, waitingBackoff: planner.waits };
  }
  if (progress.kind === 'next') {
    const name = progress.container.name ?? '';
    // Back-off only for a retry in this sandbox; a rerun after a new sandbox starts at once.
    const nextInitContainerToStart = planStart(input, planner, progress.container, true, inCurrent.get(name) ?? latest.get(name), inCurrent.has(name));
    return { ...inSandbox, containersToKill: uniqueById(kills), nextInitContainerToStart, waitingBackoff: planner.waits };
  }
  if (progress.kind === 'running') return { ...inSandbox, containersToKill: uniqueById(kills) };

  const keepCount = planRegularContainers(context, current, kills);
  if (keepCount === 0 && planner.starts.length === 0 && planner.waits.length === 0) {
    const killPod = somethingAlive(input.observed) ? { reason: 'no container left to run', gracePeriodSeconds: context.gracePeriodSeconds } : undefined;
    return { ...inSandbox, killPod, containersToKill: killPod === undefined ? uniqueById(kills) : [], podDone: true };
  }
  return { ...inSandbox, containersToKill: uniqueById(kills), containersToStart: planner.starts, waitingBackoff: planner.waits };
}

/** Start, restart or kill each regular container; answers how many keep running. */
function planRegularContainers(context: Context, current: ObservedSandbox, kills: ContainerToKill[]): number {
  const { input, policy, latest, planner } = context;
  let keepCount = 0;
  for (const spec of context.appSpecs) {
    const name = spec.name ?? '';
    const status = latest.get(name);
    if (status === undefined || status.state !== 'running' || status.sandboxId !== current.id) {
      if (shouldStart(status, policy)) {
        if (status?.state === 'unknown') kills.push({ id: status.id, name, reason: 'state unknown, restarting', gracePeriodSeconds: context.gracePeriodSeconds });
        planStart(input, planner, spec, false, status, true);
      }
      continue;
    }
    const probes = input.probes.get(status.id);
    let reason: string;
    let gracePeriodSeconds = context.gracePeriodSeconds;
    let restart = policy !== 'Never';
    if (status.hash !== containerSpecHash(spec)) {
      reason = 'spec changed';
      restart = true;
    } else if (probes?.liveness === 'failure') {
      reason = 'liveness probe failed';
      gracePeriodSeconds = livenessGracePeriodSeconds(input.pod, spec, 'liveness');
    } else if (probes?.startup === 'failure') {
      reason = 'startup probe failed';
      gracePeriodSeconds = livenessGracePeriodSeconds(input.pod, spec, 'startup');
    } else {
      keepCount += 1;
      continue;
    }
    kills.push({ id: status.id, name, reason, gracePeriodSeconds });
    // Killed rather than crashed: the replacement starts at once.
    if (restart) planStart(input, planner, spec, false, status, false);
  }
  return keepCount;
}

function uniqueById(kills: readonly ContainerToKill[]): ContainerToKill[] {
  const seen = new Set<string>();
  return kills.filter((kill) => !seen.has(kill.id) && seen.add(kill.id) !== undefined);
}
