// The PodStatus the agent reports for one pod, from what the runtime holds,
// the spec, the probe results and why containers wait — the kubelet's
// generateAPIPodStatus, as a pure function. The previously reported status
// comes in too, for what the runtime may have forgotten: startTime, the last
// state of a container whose old instance was removed, and condition
// transition times; a terminal phase (Succeeded, Failed) is never left.
//
// spec.readinessGates are not evaluated: Ready follows ContainersReady.

import type { Container, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus } from '../../proto/gen/resources/v1/core.js';
import type { Condition } from '../../proto/gen/resources/v1/meta.js';
import { formatTimestamp } from '../client/timestamps.js';
import { isHostNetwork, latestByName, newestFirst, restartPolicyOf, type ObservedContainer, type PodObservation, type ProbeSnapshot } from './pod-actions.js';

/** Why a container is not running although it should (the kubelet's reason cache). */
export interface WaitingReason {
  readonly reason: string;
  readonly message: string;
}

export interface PodStatusInput {
  readonly pod: Pod;
  readonly observed: PodObservation;
  readonly probes: ProbeSnapshot;
  /** By container name: CrashLoopBackOff, ErrImagePull, ImagePullBackOff, CreateContainerConfigError, RunContainerError… */
  readonly waiting: ReadonlyMap<string, WaitingReason>;
  /** What was reported last (or the API object's status on the first sync). */
  readonly previous: PodStatus | undefined;
  readonly nowMs: number;
  readonly hostIP: string;
  /** The containerID scheme: "containerd" gives "containerd://<id>". */
  readonly runtimeName: string;
  /** The pod is finished for good (deleted and its containers stopped): report Succeeded or Failed rather than Running. */
  readonly terminal?: boolean;
  readonly formatTime?: (ms: number) => string;
}

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed']);

export function computePodStatus(input: PodStatusInput): PodStatus {
  const { pod, previous } = input;
  const format = input.formatTime ?? formatRfc3339;
  const newestSandbox = newestFirst(input.observed.sandboxes)[0];
  const initSpecs = pod.spec?.initContainers ?? [];
  const hasInit = initSpecs.length > 0;
  const latest = latestByName(input.observed.containers);
  const inNewest = latestByName(input.observed.containers.filter((container) => container.sandboxId === newestSandbox?.id));
  const previousByName = new Map((previous?.containerStatuses ?? []).concat(previous?.initContainerStatuses ?? []).map((status) => [status.name ?? '', status]));

  const initContainerStatuses = initSpecs.map((spec) => {
    const name = spec.name ?? '';
    // A new sandbox runs its init containers again: only its own instances tell where initialization stands.
    return containerStatus(input, spec, inNewest.get(name), latest.get(name), previousByName.get(name), 'PodInitializing', format);
  });
  const containerStatuses = (pod.spec?.containers ?? []).map((spec) => {
    const name = spec.name ?? '';
    return containerStatus(input, spec, latest.get(name), latest.get(name), previousByName.get(name), hasInit ? 'PodInitializing' : 'ContainerCreating', format);
  });

  const appStartedInNewest = (pod.spec?.containers ?? []).some((spec) => {
    const instance = inNewest.get(spec.name ?? '');
    return instance !== undefined && instance.startedAtMs > 0;
  });
  let phase = podPhase(pod, initContainerStatuses, containerStatuses, appStartedInNewest, input.terminal === true);
  if (previous?.phase !== undefined && TERMINAL_PHASES.has(previous.phase)) phase = previous.phase;

  const ip = isHostNetwork(pod) ? input.hostIP : (newestFirst(input.observed.sandboxes).find((sandbox) => sandbox.ip !== '')?.ip ?? '');
  const podIPs = ip !== '' ? [ip, ...(isHostNetwork(pod) ? [] : (newestSandbox?.additionalIps ?? []))] : (previous?.podIPs ?? []).map((entry) => entry.ip ?? '');
  const sandboxReady = newestSandbox?.state === 'ready' && (isHostNetwork(pod) || newestSandbox.ip !== '');

  const status: PodStatus = {
    phase,
    conditions: conditions(input, phase, sandboxReady, initSpecs, initContainerStatuses, containerStatuses, appStartedInNewest, format),
    hostIP: input.hostIP,
    hostIPs: [{ ip: input.hostIP }],
    startTime: previous?.startTime ?? format(input.nowMs),
    initContainerStatuses,
    containerStatuses,
  };
  if (podIPs.length > 0) {
    status.podIP = podIPs[0];
    status.podIPs = podIPs.map((entry) => ({ ip: entry }));
  }
  if (previous?.qosClass !== undefined) status.qosClass = previous.qosClass;
  if (previous?.nominatedNodeName !== undefined) status.nominatedNodeName = previous.nominatedNodeName;
  if (!hasInit) delete status.initContainerStatuses;
  return status;
}

function terminatedState(input: PodStatusInput, instance: ObservedContainer, format: (ms: number) => string): ContainerStateTerminated {
  const terminated: ContainerStateTerminated = {
    exitCode: instance.exitCode,
    reason: instance.reason !== '' ? instance.reason : instance.exitCode === 0 ? 'Completed' : 'Error',
    startedAt: instance.startedAtMs > 0 ? format(instance.startedAtMs) : undefined,
    finishedAt: instance.finishedAtMs > 0 ? format(instance.finishedAtMs) : undefined,
    containerID: `${input.runtimeName}://${instance.id}`,
  };
  if (instance.message !== '') terminated.message = instance.message;
  if (terminated.startedAt === undefined) delete terminated.startedAt;
  if (terminated.finishedAt === undefined) delete terminated.finishedAt;
  return terminated;
}

/** The last terminated state of a container: its previous instance in the runtime, else what was reported before. */
function lastState(input: PodStatusInput, name: string, instance: ObservedContainer | undefined, reported: ContainerStatus | undefined, format: (ms: number) => string): ContainerState {
  const previousInstance = newestFirst(input.observed.containers.filter((container) => container.name === name && container !== instance && container.state === 'exited'))[0];
  if (previousInstance !== undefined && instance !== undefined && previousInstance.attempt <= instance.attempt) return { terminated: terminatedState(input, previousInstance, format) };
  const currentId = instance === undefined ? undefined : `${input.runtimeName}://${instance.id}`;
  for (const candidate of [reported?.state?.terminated, reported?.lastState?.terminated]) {
    if (candidate !== undefined && candidate.containerID !== currentId) return { terminated: candidate };
  }
  return {};
}

function containerStatus(
  input: PodStatusInput,
  spec: Container,
  instance: ObservedContainer | undefined,
  latestAnywhere: ObservedContainer | undefined,
  reported: ContainerStatus | undefined,
  defaultWaitingReason: string,
  format: (ms: number) => string,
): ContainerStatus {
  const name = spec.name ?? '';
  const waiting = input.waiting.get(name);
  const status: ContainerStatus = { name, state: {}, lastState: {}, ready: false, restartCount: 0, image: spec.image ?? '', imageID: '', started: false };
  if (instance === undefined) {
    status.state = { waiting: waiting !== undefined ? { ...waiting } : { reason: defaultWaitingReason } };
    // Instances from an older sandbox, or the last report, keep the count going.
    status.restartCount = latestAnywhere?.restartCount ?? reported?.restartCount ?? 0;
    status.lastState = latestAnywhere?.state === 'exited' ? { terminated: terminatedState(input, latestAnywhere, format) } : lastState(input, name, undefined, reported, format);
    return status;
  }
  status.containerID = `${input.runtimeName}://${instance.id}`;
  status.imageID = instance.imageRef;
  status.restartCount = instance.restartCount;
  status.lastState = lastState(input, name, instance, reported, format);
  switch (instance.state) {
    case 'running': {
      const probes = input.probes.get(instance.id);
      status.state = { running: { startedAt: format(instance.startedAtMs) } };
      status.started = spec.startupProbe === undefined || probes?.startup === 'success';
      status.ready = status.started && (spec.readinessProbe === undefined || probes?.readiness === 'success');
      return status;
    }
    case 'exited':
      if (waiting !== undefined) {
        // It stopped and waits to run again: the stopped instance is the last state.
        status.lastState = { terminated: terminatedState(input, instance, format) };
        status.state = { waiting: { ...waiting } };
      } else {
        status.state = { terminated: terminatedState(input, instance, format) };
      }
      return status;
    case 'created':
      status.state = { waiting: waiting !== undefined ? { ...waiting } : { reason: 'ContainerCreating' } };
      return status;
    case 'unknown':
      status.state = { waiting: waiting !== undefined ? { ...waiting } : { reason: 'ContainerStatusUnknown', message: 'the runtime does not know the state of this container' } };
      return status;
  }
}

/** kubelet's getPhase. */
function podPhase(pod: Pod, initStatuses: readonly ContainerStatus[], statuses: readonly ContainerStatus[], appStarted: boolean, terminal: boolean): string {
  let pendingInitialization = 0;
  let failedInitialization = 0;
  for (const status of initStatuses) {
    const state = status.state ?? {};
    if (state.running !== undefined) pendingInitialization += 1;
    else if (state.terminated !== undefined) failedInitialization += state.terminated.exitCode !== 0 ? 1 : 0;
    else if (state.waiting !== undefined && status.lastState?.terminated !== undefined) failedInitialization += status.lastState.terminated.exitCode !== 0 ? 1 : 0;
    else pendingInitialization += 1;
  }
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const status of statuses) {
    const state = status.state ?? {};
    if (state.running !== undefined) {
      running += 1;
    } else if (state.terminated !== undefined) {
      stopped += 1;
      if (state.terminated.exitCode === 0) succeeded += 1;
    } else if (status.lastState?.terminated !== undefined) {
      stopped += 1;
    } else {
      waiting += 1;
    }
  }
  const policy = restartPolicyOf(pod);
  if (failedInitialization > 0 && policy === 'Never') return 'Failed';
  if ((pendingInitialization > 0 && !appStarted) || waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    if (terminal) return stopped === succeeded ? 'Succeeded' : 'Failed';
    if (policy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    return policy === 'Never' ? 'Failed' : 'Running';
  }
  return 'Pending';
}

function conditions(
  input: PodStatusInput,
  phase: string,
  sandboxReady: boolean,
  initSpecs: readonly Container[],
  initStatuses: readonly ContainerStatus[],
  statuses: readonly ContainerStatus[],
  appStarted: boolean,
  format: (ms: number) => string,
): Condition[] {
  const previous = new Map((input.previous?.conditions ?? []).map((condition) => [condition.type ?? '', condition]));
  const at = format(input.nowMs);
  const make = (type: string, value: boolean, reason?: string, message?: string): Condition => {
    const status = value ? 'True' : 'False';
    const before = previous.get(type);
    const condition: Condition = { type, status, lastTransitionTime: before?.status === status && before.lastTransitionTime !== undefined ? before.lastTransitionTime : at };
    if (reason !== undefined) condition.reason = reason;
    if (message !== undefined) condition.message = message;
    return condition;
  };

  const incompleteInit = initStatuses.filter((status) => !(status.state?.terminated !== undefined && status.state.terminated.exitCode === 0)).map((status) => status.name ?? '');
  let initialized: Condition;
  if (phase === 'Succeeded') initialized = make('Initialized', true, 'PodCompleted');
  else if (initSpecs.length === 0 || appStarted || incompleteInit.length === 0) initialized = make('Initialized', true);
  else initialized = make('Initialized', false, 'ContainersNotInitialized', `containers with incomplete status: [${incompleteInit.join(' ')}]`);

  const unready = statuses.filter((status) => status.ready !== true).map((status) => status.name ?? '');
  let containersReady: Condition;
  let ready: Condition;
  if (phase === 'Succeeded') {
    containersReady = make('ContainersReady', false, 'PodCompleted');
    ready = make('Ready', false, 'PodCompleted');
  } else if (unready.length > 0) {
    const message = `containers with unready status: [${unready.join(' ')}]`;
    containersReady = make('ContainersReady', false, 'ContainersNotReady', message);
    ready = make('Ready', false, 'ContainersNotReady', message);
  } else {
    containersReady = make('ContainersReady', true);
    ready = make('Ready', true);
  }
  const scheduled = previous.get('PodScheduled') ?? make('PodScheduled', true);
  const owned = new Set(['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled']);
  // Conditions others own (DisruptionTarget…) pass through.
  const others = (input.previous?.conditions ?? []).filter((condition) => !owned.has(condition.type ?? ''));
  return [make('PodReadyToStartContainers', sandboxReady), initialized, ready, containersReady, scheduled, ...others];
}

/** RFC 3339 in UTC with second precision, as Kubernetes writes times ("2024-05-01T12:00:00Z"); pure arithmetic, no Date. */
export function formatRfc3339(ms: number): string {
  return formatTimestamp(ms);
}
