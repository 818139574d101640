// computePodActions, case by case: what the worker must do next for a pod
// given its spec and what the runtime holds — sandbox (re)creation, init
// containers in order, restart policies, crash-loop back-off, spec changes,
// probes, deletion and housekeeping.

import { expect } from 'chai';
import type { Container, Pod } from '../../proto/gen/resources/v1/core.js';
import { Backoff, containerBackoffKey } from '../../services/agent/backoff.js';
import {
  computePodActions,
  containerSpecHash,
  type ObservedContainer,
  type ObservedSandbox,
  type PodActions,
  type PodActionsInput,
  type ProbeSnapshot,
} from '../../services/agent/pod-actions.js';

const T0 = 1_700_000_000_000;
const UID = 'uid-1';

const app: Container = { name: 'app', image: 'app:1' };
const sidecar: Container = { name: 'sidecar', image: 'sidecar:1' };
const init1: Container = { name: 'init1', image: 'init:1' };
const init2: Container = { name: 'init2', image: 'init:1' };

function pod(options: { containers?: Container[]; initContainers?: Container[]; restartPolicy?: string; grace?: number; deleting?: { grace?: number } } = {}): Pod {
  return {
    metadata: {
      name: 'web',
      namespace: 'default',
      uid: UID,
      ...(options.deleting !== undefined ? { deletionTimestamp: '2024-01-01T00:00:00Z', deletionGracePeriodSeconds: options.deleting.grace } : {}),
    },
    spec: { containers: options.containers ?? [app], initContainers: options.initContainers, restartPolicy: options.restartPolicy, terminationGracePeriodSeconds: options.grace },
  };
}

function sandbox(id: string, attempt: number, state: 'ready' | 'notready' = 'ready', ip = '10.0.0.5'): ObservedSandbox {
  return { id, state, attempt, createdAtMs: T0 + attempt, ip: state === 'ready' ? ip : '' };
}

let nextContainer = 0;
function container(spec: Container, sandboxId: string, state: ObservedContainer['state'], options: Partial<ObservedContainer> = {}): ObservedContainer {
  nextContainer += 1;
  const restartCount = options.restartCount ?? options.attempt ?? 0;
  return {
    id: `c${nextContainer}`,
    sandboxId,
    name: spec.name ?? '',
    state,
    attempt: restartCount,
    restartCount,
    hash: containerSpecHash(spec),
    createdAtMs: T0 + restartCount * 1000,
    startedAtMs: state === 'created' ? 0 : T0 + restartCount * 1000 + 1,
    finishedAtMs: state === 'exited' ? T0 + restartCount * 1000 + 2 : 0,
    exitCode: 0,
    reason: '',
    message: '',
    image: spec.image ?? '',
    imageRef: 'sha256:1',
    ...options,
  };
}

function actions(input: Partial<PodActionsInput> & { pod: Pod }): PodActions {
  return computePodActions({ observed: { sandboxes: [], containers: [] }, probes: new Map(), backoff: new Backoff(), nowMs: T0 + 3_600_000, ...input });
}

function started(result: PodActions): Array<[string, number]> {
  return result.containersToStart.map((start) => [start.name, start.attempt]);
}

describe('agent: computePodActions', () => {
  it('a fresh pod: create sandbox attempt 0 and start every container', () => {
    const result = actions({ pod: pod({ containers: [app, sidecar] }) });
    expect(result.createSandbox).to.deep.equal({ attempt: 0 });
    expect(result.killPod).to.equal(undefined);
    expect(started(result)).to.deep.equal([
      ['app', 0],
      ['sidecar', 0],
    ]);
    expect(result.podDone).to.equal(false);
  });

  it('a fresh pod with init containers: create sandbox and start the first init container only', () => {
    const result = actions({ pod: pod({ initContainers: [init1, init2] }) });
    expect(result.createSandbox).to.deep.equal({ attempt: 0 });
    expect(result.nextInitContainerToStart?.name).to.equal('init1');
    expect(result.containersToStart).to.deep.equal([]);
  });

  it('a running pod with nothing to change does nothing', () => {
    const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'running')] };
    const result = actions({ pod: pod(), observed });
    expect(result).to.deep.include({ killPod: undefined, createSandbox: undefined, sandboxId: 's0', containersToKill: [], containersToStart: [], podDone: false });
  });

  describe('sandbox changes', () => {
    it('sandbox not ready: kill everything, create attempt+1, restart counts go on', () => {
      const observed = { sandboxes: [sandbox('s0', 0, 'notready')], containers: [container(app, 's0', 'exited', { restartCount: 2, exitCode: 137 })] };
      const result = actions({ pod: pod(), observed });
      expect(result.createSandbox).to.deep.equal({ attempt: 1 });
      expect(started(result)).to.deep.equal([['app', 3]]);
      expect(result.sandboxesToRemove).to.deep.equal([]); // the newest sandbox stays until a newer one exists
    });

    it('sandbox ready but its network is gone: kill the pod and create a new sandbox', () => {
      const observed = { sandboxes: [sandbox('s0', 0, 'ready', '')], containers: [container(app, 's0', 'running')] };
      const result = actions({ pod: pod({ grace: 12 }), observed });
      expect(result.killPod).to.deep.equal({ reason: 'pod sandbox changed', gracePeriodSeconds: 12 });
      expect(result.createSandbox).to.deep.equal({ attempt: 1 });
    });

    it('a host-network pod needs no sandbox IP', () => {
      const hostPod = pod();
      hostPod.spec = { ...hostPod.spec, hostNetwork: true };
      const observed = { sandboxes: [sandbox('s0', 0, 'ready', '')], containers: [container(app, 's0', 'running')] };
      expect(actions({ pod: hostPod, observed }).createSandbox).to.equal(undefined);
    });

    it('two ready sandboxes: kill both, create a third attempt', () => {
      const observed = { sandboxes: [sandbox('s0', 0), sandbox('s1', 1)], containers: [container(app, 's1', 'running')] };
      const result = actions({ pod: pod(), observed });
      expect(result.killPod?.reason).to.equal('pod sandbox changed');
      expect(result.createSandbox).to.deep.equal({ attempt: 2 });
    });

    it('restartPolicy Never and containers ran: the pod is done, no new sandbox', () => {
      const observed = { sandboxes: [sandbox('s0', 0, 'notready')], containers: [container(app, 's0', 'exited', { exitCode: 137 })] };
      const result = actions({ pod: pod({ restartPolicy: 'Never' }), observed });
      expect(result.createSandbox).to.equal(undefined);
      expect(result.killPod).to.equal(undefined);
      expect(result.podDone).to.equal(true);
    });

    it('restartPolicy OnFailure and every container succeeded: done, no new sandbox', () => {
      const observed = { sandboxes: [sandbox('s0', 0, 'notready')], containers: [container(app, 's0', 'exited', { exitCode: 0 })] };
      const result = actions({ pod: pod({ restartPolicy: 'OnFailure' }), observed });
      expect(result.createSandbox).to.equal(undefined);
      expect(result.podDone).to.equal(true);
    });

    it('a new sandbox runs the init containers again from the first', () => {
      const observed = {
        sandboxes: [sandbox('s0', 0, 'notready')],
        containers: [container(init1, 's0', 'exited'), container(init2, 's0', 'exited'), container(app, 's0', 'exited', { exitCode: 137 })],
      };
      const result = actions({ pod: pod({ initContainers: [init1, init2] }), observed });
      expect(result.createSandbox).to.deep.equal({ attempt: 1 });
      expect(result.nextInitContainerToStart).to.include({ name: 'init1', attempt: 1, init: true });
    });
  });

  describe('init containers', () => {
    const initPod = (restartPolicy?: string): Pod => pod({ initContainers: [init1, init2], restartPolicy });

    it('run one at a time, in order', () => {
      const s0 = sandbox('s0', 0);
      const first = actions({ pod: initPod(), observed: { sandboxes: [s0], containers: [] } });
      expect(first.nextInitContainerToStart?.name).to.equal('init1');
      const running = actions({ pod: initPod(), observed: { sandboxes: [s0], containers: [container(init1, 's0', 'running')] } });
      expect(running.nextInitContainerToStart).to.equal(undefined);
      expect(running.containersToStart).to.deep.equal([]);
      const second = actions({ pod: initPod(), observed: { sandboxes: [s0], containers: [container(init1, 's0', 'exited')] } });
      expect(second.nextInitContainerToStart?.name).to.equal('init2');
      expect(second.containersToStart).to.deep.equal([]);
      const done = actions({ pod: initPod(), observed: { sandboxes: [s0], containers: [container(init1, 's0', 'exited'), container(init2, 's0', 'exited')] } });
      expect(done.nextInitContainerToStart).to.equal(undefined);
      expect(started(done)).to.deep.equal([['app', 0]]);
    });

    for (const policy of ['Always', 'OnFailure']) {
      it(`a failed init container restarts under ${policy}, after its back-off`, () => {
        const failed = container(init1, 's0', 'exited', { exitCode: 1, finishedAtMs: T0 });
        const observed = { sandboxes: [sandbox('s0', 0)], containers: [failed] };
        const waiting = actions({ pod: initPod(policy), observed, nowMs: T0 + 5_000 });
        expect(waiting.nextInitContainerToStart).to.equal(undefined);
        expect(waiting.waitingBackoff).to.deep.equal([{ name: 'init1', init: true, untilMs: T0 + 10_000, delayMs: 10_000 }]);
        expect(waiting.initFailed).to.equal(false);
        const restarting = actions({ pod: initPod(policy), observed, nowMs: T0 + 10_000 });
        expect(restarting.nextInitContainerToStart).to.include({ name: 'init1', attempt: 1, restartOfExitAtMs: T0 });
      });
    }

    it('a failed init container under Never fails the pod', () => {
      const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(init1, 's0', 'exited', { exitCode: 1 })] };
      const result = actions({ pod: initPod('Never'), observed });
      expect(result.initFailed).to.equal(true);
      expect(result.podDone).to.equal(true);
      expect(result.killPod?.reason).to.equal('init container init1 failed');
      expect(result.nextInitContainerToStart).to.equal(undefined);
      expect(result.containersToStart).to.deep.equal([]);
    });

    it('an OOM-killed init container counts as failed', () => {
      const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(init1, 's0', 'exited', { exitCode: 0, reason: 'OOMKilled' })] };
      expect(actions({ pod: initPod('Never'), observed }).initFailed).to.equal(true);
    });

    it('a running regular container means initialization finished, even with the init containers gone', () => {
      const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'running')] };
      const result = actions({ pod: initPod(), observed });
      expect(result.nextInitContainerToStart).to.equal(undefined);
      expect(result.containersToKill).to.deep.equal([]);
      expect(result.podDone).to.equal(false);
    });
  });

  describe('restart policies', () => {
    const cases: Array<{ policy: string; exitCode: number; restart: boolean }> = [
      { policy: 'Always', exitCode: 0, restart: true },
      { policy: 'Always', exitCode: 1, restart: true },
      { policy: 'OnFailure', exitCode: 0, restart: false },
      { policy: 'OnFailure', exitCode: 1, restart: true },
      { policy: 'Never', exitCode: 0, restart: false },
      { policy: 'Never', exitCode: 1, restart: false },
    ];
    for (const { policy, exitCode, restart } of cases) {
      it(`${policy}, exit ${exitCode}: ${restart ? 'restart' : 'stay down, stop the sandbox'}`, () => {
        const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'exited', { exitCode })] };
        const result = actions({ pod: pod({ restartPolicy: policy }), observed });
        if (restart) {
          expect(started(result)).to.deep.equal([['app', 1]]);
          expect(result.killPod).to.equal(undefined);
          expect(result.podDone).to.equal(false);
        } else {
          expect(result.containersToStart).to.deep.equal([]);
          expect(result.killPod?.reason).to.equal('no container left to run');
          expect(result.podDone).to.equal(true);
        }
      });
    }

    it('keeps a pod with one container still running alive', () => {
      const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'exited'), container(sidecar, 's0', 'running')] };
      const result = actions({ pod: pod({ containers: [app, sidecar], restartPolicy: 'Never' }), observed });
      expect(result.killPod).to.equal(undefined);
      expect(result.podDone).to.equal(false);
    });

    it('a container in an unknown state is killed and started again', () => {
      const unknown = container(app, 's0', 'unknown');
      const result = actions({ pod: pod(), observed: { sandboxes: [sandbox('s0', 0)], containers: [unknown] } });
      expect(result.containersToKill.map((kill) => kill.id)).to.deep.equal([unknown.id]);
      expect(started(result)).to.deep.equal([['app', 1]]);
    });
  });

  describe('crash-loop back-off', () => {
    it('waits 10 s, 20 s, 40 s … 300 s between restarts, and starts over after 10 min of running', () => {
      const backoff = new Backoff();
      const key = containerBackoffKey(UID, 'app');
      const waits: number[] = [];
      let exitedAtMs = T0;
      for (let restart = 0; restart < 8; restart += 1) {
        const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'exited', { restartCount: restart, exitCode: 1, finishedAtMs: exitedAtMs })] };
        const early = computePodActions({ pod: pod(), observed, probes: new Map(), backoff, nowMs: exitedAtMs + 1 });
        const wait = early.waitingBackoff[0];
        expect(wait?.name).to.equal('app');
        waits.push((wait?.untilMs ?? 0) - exitedAtMs);
        const due = computePodActions({ pod: pod(), observed, probes: new Map(), backoff, nowMs: wait?.untilMs ?? 0 });
        expect(started(due)).to.deep.equal([['app', restart + 1]]);
        expect(due.containersToStart[0]?.restartOfExitAtMs).to.equal(exitedAtMs);
        backoff.recordRestart(key, exitedAtMs, wait?.untilMs ?? 0);
        exitedAtMs = (wait?.untilMs ?? 0) + 1_000; // crashes a second after each start
      }
      expect(waits).to.deep.equal([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
      // The last restart ran 10 minutes before crashing: back to 10 s.
      const longRun = exitedAtMs + 600_000;
      const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'exited', { restartCount: 8, exitCode: 1, finishedAtMs: longRun })] };
      const result = computePodActions({ pod: pod(), observed, probes: new Map(), backoff, nowMs: longRun });
      expect(result.waitingBackoff[0]?.delayMs).to.equal(10_000);
    });

    it('keeps the back-off per container of the pod', () => {
      const backoff = new Backoff();
      backoff.recordRestart(containerBackoffKey(UID, 'app'), T0 - 1000, T0 - 1000);
      const observed = {
        sandboxes: [sandbox('s0', 0)],
        containers: [container(app, 's0', 'exited', { exitCode: 1, finishedAtMs: T0 }), container(sidecar, 's0', 'exited', { exitCode: 1, finishedAtMs: T0 })],
      };
      const result = computePodActions({ pod: pod({ containers: [app, sidecar] }), observed, probes: new Map(), backoff, nowMs: T0 + 1 });
      expect(result.waitingBackoff.map((wait) => [wait.name, wait.delayMs])).to.deep.equal([
        ['app', 20_000],
        ['sidecar', 10_000],
      ]);
    });

    it('a container created but never started backs off like a crash', () => {
      const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'created', { createdAtMs: T0 })] };
      const result = actions({ pod: pod(), observed, nowMs: T0 + 1 });
      expect(result.waitingBackoff.map((wait) => wait.untilMs)).to.deep.equal([T0 + 10_000]);
    });
  });

  describe('running containers that must go', () => {
    it('a changed spec kills and restarts the container, whatever the policy', () => {
      const running = container(app, 's0', 'running', { restartCount: 4 });
      const changed = { ...app, image: 'app:2' };
      const result = actions({ pod: pod({ containers: [changed], restartPolicy: 'Never', grace: 9 }), observed: { sandboxes: [sandbox('s0', 0)], containers: [running] } });
      expect(result.containersToKill).to.deep.equal([{ id: running.id, name: 'app', reason: 'spec changed', gracePeriodSeconds: 9 }]);
      expect(started(result)).to.deep.equal([['app', 5]]);
      expect(result.containersToStart[0]?.restartOfExitAtMs).to.equal(undefined);
    });

    it('a failed liveness probe kills and restarts the container at once', () => {
      const live = { ...app, livenessProbe: { exec: { command: ['true'] }, terminationGracePeriodSeconds: 3 } };
      const running = container(live, 's0', 'running');
      const probes: ProbeSnapshot = new Map([[running.id, { liveness: 'failure' }]]);
      const result = actions({ pod: pod({ containers: [live] }), observed: { sandboxes: [sandbox('s0', 0)], containers: [running] }, probes });
      expect(result.containersToKill).to.deep.equal([{ id: running.id, name: 'app', reason: 'liveness probe failed', gracePeriodSeconds: 3 }]);
      expect(started(result)).to.deep.equal([['app', 1]]);
      expect(result.waitingBackoff).to.deep.equal([]);
    });

    it('a failed startup probe under Never kills the container and ends the pod', () => {
      const running = container(app, 's0', 'running');
      const probes: ProbeSnapshot = new Map([[running.id, { startup: 'failure' }]]);
      const result = actions({ pod: pod({ restartPolicy: 'Never' }), observed: { sandboxes: [sandbox('s0', 0)], containers: [running] }, probes });
      expect(result.killPod?.reason).to.equal('no container left to run');
      expect(result.containersToStart).to.deep.equal([]);
      expect(result.podDone).to.equal(true);
    });

    it('a readiness failure kills nothing', () => {
      const running = container(app, 's0', 'running');
      const probes: ProbeSnapshot = new Map([[running.id, { readiness: 'failure' }]]);
      const result = actions({ pod: pod(), observed: { sandboxes: [sandbox('s0', 0)], containers: [running] }, probes });
      expect(result.containersToKill).to.deep.equal([]);
    });

    it('a running container the spec does not name is killed', () => {
      const stray = container({ name: 'old', image: 'x' }, 's0', 'running');
      const result = actions({ pod: pod(), observed: { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'running'), stray] } });
      expect(result.containersToKill).to.deep.equal([{ id: stray.id, name: 'old', reason: 'not in the pod spec', gracePeriodSeconds: 30 }]);
    });
  });

  describe('deletion', () => {
    const observed = { sandboxes: [sandbox('s0', 0)], containers: [container(app, 's0', 'running')] };

    it('kills the pod with deletionGracePeriodSeconds', () => {
      const result = actions({ pod: pod({ grace: 60, deleting: { grace: 5 } }), observed });
      expect(result.killPod).to.deep.equal({ reason: 'pod is being deleted', gracePeriodSeconds: 5 });
      expect(result.createSandbox).to.equal(undefined);
      expect(result.containersToStart).to.deep.equal([]);
    });

    it('falls back to terminationGracePeriodSeconds, then 30 s', () => {
      expect(actions({ pod: pod({ grace: 60, deleting: {} }), observed }).killPod?.gracePeriodSeconds).to.equal(60);
      expect(actions({ pod: pod({ deleting: {} }), observed }).killPod?.gracePeriodSeconds).to.equal(30);
    });

    it('starts nothing once everything is stopped', () => {
      const stopped = { sandboxes: [sandbox('s0', 0, 'notready')], containers: [container(app, 's0', 'exited')] };
      const result = actions({ pod: pod({ deleting: {} }), observed: stopped });
      expect(result.killPod).to.equal(undefined);
      expect(result.createSandbox).to.equal(undefined);
      expect(result.containersToStart).to.deep.equal([]);
    });
  });

  describe('housekeeping', () => {
    it('keeps the newest instance and the newest exited one before it, removes older ones', () => {
      const attempts = [0, 1, 2].map((restartCount) => container(app, 's0', 'exited', { restartCount, exitCode: 1 }));
      const current = container(app, 's0', 'running', { restartCount: 3 });
      const result = actions({ pod: pod(), observed: { sandboxes: [sandbox('s0', 0)], containers: [...attempts, current] } });
      expect(result.containersToRemove).to.deep.equal([attempts[1]?.id, attempts[0]?.id]);
    });

    it('removes old sandboxes that hold nothing kept (their containers go with them)', () => {
      const old = container(app, 's0', 'exited', { restartCount: 0 });
      const older = container(app, 's1', 'exited', { restartCount: 1 });
      const newer = container(app, 's2', 'exited', { restartCount: 2 });
      const current = container(app, 's3', 'running', { restartCount: 3 });
      const observed = { sandboxes: [sandbox('s0', 0, 'notready'), sandbox('s1', 1, 'notready'), sandbox('s2', 2, 'notready'), sandbox('s3', 3)], containers: [old, older, newer, current] };
      const result = actions({ pod: pod(), observed });
      expect(result.sandboxesToRemove).to.deep.equal(['s1', 's0']);
      expect(result.containersToRemove).to.deep.equal([]);
    });
  });

  it('containerSpecHash ignores key order and empty fields, and sees real changes', () => {
    expect(containerSpecHash({ name: 'a', image: 'x', args: [] })).to.equal(containerSpecHash({ image: 'x', name: 'a', env: undefined }));
    expect(containerSpecHash({ name: 'a', image: 'x' })).to.not.equal(containerSpecHash({ name: 'a', image: 'y' }));
    expect(containerSpecHash({ name: 'a', image: 'x' })).to.match(/^[0-9a-f]{8}$/);
  });
});
