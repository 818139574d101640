// computePodStatus: the phase by Kubernetes' rules (restart policy, init
// containers, terminal pods), the conditions, and each container's state,
// last state, readiness and restart count — from the runtime's view, the
// probe results, the reasons containers wait and the previous report.

import { expect } from 'chai';
import type { Container, Pod, PodStatus } from '../../proto/gen/resources/v1/core.js';
import { containerSpecHash, type ObservedContainer, type ObservedSandbox, type ProbeSnapshot } from '../../services/agent/pod-actions.js';
import { computePodStatus, formatRfc3339, type PodStatusInput, type WaitingReason } from '../../services/agent/pod-status.js';

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const app: Container = { name: 'app', image: 'app:1' };
const init1: Container = { name: 'init1', image: 'init:1' };

function pod(options: { containers?: Container[]; initContainers?: Container[]; restartPolicy?: string } = {}): Pod {
  return { metadata: { name: 'web', namespace: 'default', uid: 'u1' }, spec: { containers: options.containers ?? [app], initContainers: options.initContainers, restartPolicy: options.restartPolicy } };
}

const ready: ObservedSandbox = { id: 's0', state: 'ready', attempt: 0, createdAtMs: T0, ip: '10.0.0.7' };

let next = 0;
function container(spec: Container, state: ObservedContainer['state'], options: Partial<ObservedContainer> = {}): ObservedContainer {
  next += 1;
  return {
    id: `c${next}`,
    sandboxId: 's0',
    name: spec.name ?? '',
    state,
    attempt: options.restartCount ?? 0,
    restartCount: 0,
    hash: containerSpecHash(spec),
    createdAtMs: T0 + 1000,
    startedAtMs: state === 'created' ? 0 : T0 + 2000,
    finishedAtMs: state === 'exited' ? T0 + 5000 : 0,
    exitCode: 0,
    reason: '',
    message: '',
    image: spec.image ?? '',
    imageRef: 'sha256:abc',
    ...options,
  };
}

function status(input: Partial<PodStatusInput> & { containers?: ObservedContainer[]; sandboxes?: ObservedSandbox[] }): PodStatus {
  return computePodStatus({
    pod: pod(),
    observed: { sandboxes: input.sandboxes ?? [ready], containers: input.containers ?? [] },
    probes: new Map(),
    waiting: new Map(),
    previous: undefined,
    nowMs: T0 + 10_000,
    hostIP: '192.168.1.10',
    runtimeName: 'containerd',
    ...input,
  });
}

function condition(result: PodStatus, type: string): { status?: string; reason?: string; message?: string; lastTransitionTime?: string } | undefined {
  return result.conditions?.find((entry) => entry.type === type);
}

describe('agent: computePodStatus', () => {
  it('a pod with no sandbox yet: Pending, containers ContainerCreating, not ready', () => {
    const result = status({ sandboxes: [] });
    expect(result.phase).to.equal('Pending');
    expect(result.containerStatuses?.[0]).to.deep.include({ name: 'app', ready: false, started: false, restartCount: 0, image: 'app:1', imageID: '' });
    expect(result.containerStatuses?.[0]?.state).to.deep.equal({ waiting: { reason: 'ContainerCreating' } });
    expect(condition(result, 'PodReadyToStartContainers')?.status).to.equal('False');
    expect(condition(result, 'Initialized')?.status).to.equal('True');
    expect(condition(result, 'Ready')).to.deep.include({ status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [app]' });
    expect(condition(result, 'PodScheduled')?.status).to.equal('True');
    expect(result.hostIP).to.equal('192.168.1.10');
    expect(result.podIP).to.equal(undefined);
    expect(result.startTime).to.equal(iso(T0 + 10_000));
    expect(result.initContainerStatuses).to.equal(undefined);
  });

  it('a running pod: Running, Ready, with IPs, containerID and start time', () => {
    const running = container(app, 'running');
    const result = status({ containers: [running] });
    expect(result.phase).to.equal('Running');
    expect(result.podIP).to.equal('10.0.0.7');
    expect(result.podIPs).to.deep.equal([{ ip: '10.0.0.7' }]);
    expect(result.containerStatuses?.[0]).to.deep.include({ ready: true, started: true, containerID: `containerd://${running.id}`, imageID: 'sha256:abc' });
    expect(result.containerStatuses?.[0]?.state).to.deep.equal({ running: { startedAt: iso(T0 + 2000) } });
    for (const type of ['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready']) expect(condition(result, type)?.status, type).to.equal('True');
  });

  it('readiness probe: not ready until it succeeds', () => {
    const spec = { ...app, readinessProbe: { exec: { command: ['true'] } } };
    const running = container(spec, 'running');
    const input = { pod: pod({ containers: [spec] }), containers: [running] };
    expect(status(input).containerStatuses?.[0]?.ready).to.equal(false);
    const succeeded: ProbeSnapshot = new Map([[running.id, { readiness: 'success' }]]);
    expect(status({ ...input, probes: succeeded }).containerStatuses?.[0]?.ready).to.equal(true);
    const failed: ProbeSnapshot = new Map([[running.id, { readiness: 'failure' }]]);
    const result = status({ ...input, probes: failed });
    expect(result.phase).to.equal('Running');
    expect(condition(result, 'ContainersReady')?.status).to.equal('False');
  });

  it('startup probe: not started (so not ready) until it succeeds', () => {
    const spec = { ...app, startupProbe: { exec: { command: ['true'] } } };
    const running = container(spec, 'running');
    const input = { pod: pod({ containers: [spec] }), containers: [running] };
    expect(status(input).containerStatuses?.[0]).to.deep.include({ started: false, ready: false });
    const probes: ProbeSnapshot = new Map([[running.id, { startup: 'success' }]]);
    expect(status({ ...input, probes }).containerStatuses?.[0]).to.deep.include({ started: true, ready: true });
  });

  it('a crash-looping container: waiting CrashLoopBackOff, the crash as lastState, its restart count', () => {
    const crashed = container(app, 'exited', { restartCount: 3, exitCode: 2, reason: 'Error', message: 'boom' });
    const waiting = new Map<string, WaitingReason>([['app', { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container=app pod=web_default(u1)' }]]);
    const result = status({ containers: [crashed], waiting });
    const entry = result.containerStatuses?.[0];
    expect(entry?.state).to.deep.equal({ waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container=app pod=web_default(u1)' } });
    expect(entry?.lastState?.terminated).to.deep.equal({ exitCode: 2, reason: 'Error', message: 'boom', startedAt: iso(T0 + 2000), finishedAt: iso(T0 + 5000), containerID: `containerd://${crashed.id}` });
    expect(entry?.restartCount).to.equal(3);
    expect(result.phase).to.equal('Running');
  });

  it('a restarted container: running, the previous instance as lastState', () => {
    const first = container(app, 'exited', { restartCount: 0, exitCode: 1 });
    const second = container(app, 'running', { restartCount: 1, startedAtMs: T0 + 8000 });
    const entry = status({ containers: [first, second] }).containerStatuses?.[0];
    expect(entry?.state).to.deep.equal({ running: { startedAt: iso(T0 + 8000) } });
    expect(entry?.lastState?.terminated).to.include({ exitCode: 1, reason: 'Error', containerID: `containerd://${first.id}` });
    expect(entry?.restartCount).to.equal(1);
  });

  it('lastState comes from the previous report when the runtime no longer has the old instance', () => {
    const second = container(app, 'running', { restartCount: 1 });
    const previous: PodStatus = {
      phase: 'Running',
      startTime: iso(T0),
      containerStatuses: [{ name: 'app', state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 7, containerID: 'containerd://gone' } }, restartCount: 0 }],
    };
    const result = status({ containers: [second], previous });
    expect(result.containerStatuses?.[0]?.lastState).to.deep.equal({ terminated: { exitCode: 7, containerID: 'containerd://gone' } });
    expect(result.startTime).to.equal(iso(T0));
  });

  it('waiting reasons for containers not created yet: ErrImagePull, CreateContainerConfigError', () => {
    const waiting = new Map<string, WaitingReason>([['app', { reason: 'ErrImagePull', message: 'pull access denied' }]]);
    expect(status({ waiting }).containerStatuses?.[0]?.state).to.deep.equal({ waiting: { reason: 'ErrImagePull', message: 'pull access denied' } });
    const config = new Map<string, WaitingReason>([['app', { reason: 'CreateContainerConfigError', message: 'configmap "x" not found' }]]);
    const result = status({ waiting: config });
    expect(result.containerStatuses?.[0]?.state?.waiting?.reason).to.equal('CreateContainerConfigError');
    expect(result.phase).to.equal('Pending');
  });

  describe('phase by restart policy', () => {
    const cases: Array<{ policy: string; exitCode: number; phase: string }> = [
      { policy: 'Never', exitCode: 0, phase: 'Succeeded' },
      { policy: 'Never', exitCode: 1, phase: 'Failed' },
      { policy: 'OnFailure', exitCode: 0, phase: 'Succeeded' },
      { policy: 'OnFailure', exitCode: 1, phase: 'Running' },
      { policy: 'Always', exitCode: 0, phase: 'Running' },
      { policy: 'Always', exitCode: 1, phase: 'Running' },
    ];
    for (const { policy, exitCode, phase } of cases) {
      it(`${policy}, the only container exited ${exitCode}: ${phase}`, () => {
        const result = status({ pod: pod({ restartPolicy: policy }), containers: [container(app, 'exited', { exitCode })] });
        expect(result.phase).to.equal(phase);
        if (phase === 'Succeeded') {
          expect(condition(result, 'Ready')).to.deep.include({ status: 'False', reason: 'PodCompleted' });
          expect(condition(result, 'Initialized')).to.deep.include({ status: 'True', reason: 'PodCompleted' });
        }
      });
    }

    it('a terminal pod (deleted and stopped) is Succeeded or Failed whatever the policy', () => {
      expect(status({ containers: [container(app, 'exited', { exitCode: 0 })], terminal: true }).phase).to.equal('Succeeded');
      expect(status({ containers: [container(app, 'exited', { exitCode: 143 })], terminal: true }).phase).to.equal('Failed');
    });

    it('a terminal phase is never left', () => {
      const previous: PodStatus = { phase: 'Succeeded' };
      expect(status({ containers: [container(app, 'running')], previous }).phase).to.equal('Succeeded');
    });
  });

  describe('init containers', () => {
    const initPod = (restartPolicy?: string): Pod => pod({ initContainers: [init1], restartPolicy });

    it('running init container: Pending, Initialized False, app containers PodInitializing', () => {
      const result = status({ pod: initPod(), containers: [container(init1, 'running')] });
      expect(result.phase).to.equal('Pending');
      expect(condition(result, 'Initialized')).to.deep.include({ status: 'False', reason: 'ContainersNotInitialized', message: 'containers with incomplete status: [init1]' });
      expect(result.containerStatuses?.[0]?.state).to.deep.equal({ waiting: { reason: 'PodInitializing' } });
      expect(result.initContainerStatuses?.[0]?.state?.running).to.not.equal(undefined);
    });

    it('init done, app running: Running and Initialized', () => {
      const result = status({ pod: initPod(), containers: [container(init1, 'exited'), container(app, 'running')] });
      expect(result.phase).to.equal('Running');
      expect(condition(result, 'Initialized')?.status).to.equal('True');
      expect(result.initContainerStatuses?.[0]?.state?.terminated).to.include({ exitCode: 0, reason: 'Completed' });
    });

    it('a failed init container under Never: Failed', () => {
      expect(status({ pod: initPod('Never'), containers: [container(init1, 'exited', { exitCode: 1 })] }).phase).to.equal('Failed');
    });

    it('a failed init container under Always waits to restart: Pending', () => {
      const waiting = new Map<string, WaitingReason>([['init1', { reason: 'CrashLoopBackOff', message: 'back-off 10s' }]]);
      const result = status({ pod: initPod(), containers: [container(init1, 'exited', { exitCode: 1 })], waiting });
      expect(result.phase).to.equal('Pending');
      expect(result.initContainerStatuses?.[0]?.state?.waiting?.reason).to.equal('CrashLoopBackOff');
    });
  });

  it('keeps condition transition times while the status holds, moves them when it flips', () => {
    const first = status({ containers: [container(app, 'running')], nowMs: T0 + 10_000 });
    const same = status({ containers: [container(app, 'running')], previous: first, nowMs: T0 + 20_000 });
    expect(condition(same, 'Ready')?.lastTransitionTime).to.equal(iso(T0 + 10_000));
    const flipped = status({ containers: [container(app, 'exited', { exitCode: 1 })], previous: same, nowMs: T0 + 30_000 });
    expect(condition(flipped, 'Ready')).to.deep.include({ status: 'False', lastTransitionTime: iso(T0 + 30_000) });
    expect(condition(flipped, 'PodScheduled')?.lastTransitionTime).to.equal(iso(T0 + 10_000));
  });

  it('passes through conditions it does not own, and a hostNetwork pod has the node IP', () => {
    const hostPod = pod();
    hostPod.spec = { ...hostPod.spec, hostNetwork: true };
    const previous: PodStatus = { conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI' }] };
    const result = status({ pod: hostPod, sandboxes: [{ ...ready, ip: '' }], containers: [container(app, 'running')], previous });
    expect(result.podIP).to.equal('192.168.1.10');
    expect(condition(result, 'DisruptionTarget')?.reason).to.equal('EvictionByEvictionAPI');
  });

  it('formatRfc3339 writes UTC times with second precision, like Date without milliseconds', () => {
    for (const ms of [0, 951_782_400_000, 1_709_208_000_999, T0, Date.UTC(2100, 11, 31, 23, 59, 59), Date.UTC(1999, 11, 31, 23, 59, 59, 500)]) {
      expect(formatRfc3339(ms), String(ms)).to.equal(iso(ms));
    }
  });
});
