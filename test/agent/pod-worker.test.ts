// The pod worker against the in-memory runtime, on a fake clock: it starts
// init containers then app containers, restarts crashes after their
// back-off, acts on liveness and readiness, honours the grace period when
// the pod is deleted, reports image and config errors as Kubernetes does,
// adopts what a previous agent left running, and finds orphans.

import { expect } from 'chai';
import type { Container, ContainerStatus, Pod, PodStatus } from '../../proto/gen/resources/v1/core.js';
import { fingerprints } from '../../services/agent/pleg.js';
import { PodWorker, findOrphans, imagePullPolicyOf, removeOrphans, sameDesiredState, type PodWorkerOptions } from '../../services/agent/pod-worker.js';
import { FakeClock, FakeCri, FakePodEnvironment, PodConfigError, macrotask } from './fake-cri.js';

const HOST_IP = '192.168.1.10';

function makePod(options: { uid?: string; name?: string; containers?: Container[]; initContainers?: Container[]; restartPolicy?: string; grace?: number } = {}): Pod {
  return {
    metadata: { name: options.name ?? 'web', namespace: 'default', uid: options.uid ?? 'uid-web' },
    spec: { containers: options.containers ?? [{ name: 'app', image: 'app:1' }], initContainers: options.initContainers, restartPolicy: options.restartPolicy, terminationGracePeriodSeconds: options.grace, nodeName: 'n1' },
    status: { phase: 'Pending' },
  };
}

interface Harness {
  readonly clock: FakeClock;
  readonly cri: FakeCri;
  readonly env: FakePodEnvironment;
  readonly statuses: PodStatus[];
  readonly terminated: Pod[];
  readonly logs: string[];
  worker: PodWorker;
  newWorker(pod: Pod, extra?: Partial<PodWorkerOptions>): PodWorker;
  advance(ms: number): Promise<void>;
  status(): PodStatus;
  container(name: string): ContainerStatus | undefined;
}

function harness(pod: Pod, shared?: { clock: FakeClock; cri: FakeCri; env: FakePodEnvironment }): Harness {
  const clock = shared?.clock ?? new FakeClock();
  const cri = shared?.cri ?? new FakeCri(() => clock.now());
  const env = shared?.env ?? new FakePodEnvironment();
  const statuses: PodStatus[] = [];
  const terminated: Pod[] = [];
  const logs: string[] = [];
  const h: Harness = {
    clock,
    cri,
    env,
    statuses,
    terminated,
    logs,
    worker: undefined as unknown as PodWorker,
    newWorker(forPod, extra = {}) {
      return new PodWorker(forPod, {
        runtime: cri,
        environment: env,
        hostIP: HOST_IP,
        clock,
        onStatus: (_pod, status) => statuses.push(status),
        onTerminated: (done) => terminated.push(done),
        log: (line) => logs.push(line),
        ...extra,
      });
    },
    advance: (ms) => clock.advance(ms, () => h.worker.idle()),
    status() {
      const last = statuses[statuses.length - 1];
      if (last === undefined) throw new Error('no status reported yet');
      return last;
    },
    container(name) {
      const status = h.status();
      return [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])].find((entry) => entry.name === name);
    },
  };
  h.worker = h.newWorker(pod);
  return h;
}

function only<T>(items: readonly T[]): T {
  expect(items).to.have.length(1);
  return items[0] as T;
}

/** The pod's runtime state as the relist would report it now. */
const relistedFingerprint = async (h: Harness, uid = 'uid-web'): Promise<string> => fingerprints(await h.cri.listPodSandbox(), await h.cri.listContainers()).get(uid) ?? '';

/** The exit code of a container's last run, whether it is still shown as its state or already as its last state. */
const lastExitCode = (h: Harness, name: string): number | undefined => h.container(name)?.lastState?.terminated?.exitCode ?? h.container(name)?.state?.terminated?.exitCode;

const createdNames = (cri: FakeCri): string[] => cri.callsOf('createContainer').map((call) => (call.args[1] as { metadata: { name: string } }).metadata.name);

describe('agent: pod worker', () => {
  it('starts the init containers one by one, then the app containers', async () => {
    const pod = makePod({
      initContainers: [
        { name: 'init1', image: 'busybox:1' },
        { name: 'init2', image: 'busybox:1' },
      ],
      containers: [
        { name: 'app', image: 'app:1' },
        { name: 'side', image: 'side:1' },
      ],
    });
    const h = harness(pod);
    await h.worker.syncNow();
    expect(h.cri.callsOf('runPodSandbox')).to.have.length(1);
    expect(createdNames(h.cri)).to.deep.equal(['init1']);
    expect(h.status().phase).to.equal('Pending');
    expect(h.container('app')?.state).to.deep.equal({ waiting: { reason: 'PodInitializing' } });

    h.cri.exit(only(h.cri.running('init1')).id, 0);
    await h.advance(1000);
    expect(createdNames(h.cri)).to.deep.equal(['init1', 'init2']);
    h.cri.exit(only(h.cri.running('init2')).id, 0);
    await h.advance(1000);
    expect(createdNames(h.cri)).to.deep.equal(['init1', 'init2', 'app', 'side']);

    const status = h.status();
    expect(status.phase).to.equal('Running');
    expect(status.podIP).to.match(/^10\.88\.0\./);
    expect(status.conditions?.filter((condition) => condition.status === 'True').map((condition) => condition.type)).to.deep.equal(['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled']);
    expect(h.container('init1')?.state?.terminated).to.include({ exitCode: 0, reason: 'Completed' });
    expect(h.container('app')?.containerID).to.equal(`fake://${only(h.cri.running('app')).id}`);
    // The builder got the sandbox's IP and whether each container is an init container.
    const configs = h.env.calls.filter((call) => call.method === 'containerConfig').map((call) => [call.args[0], (call.args[1] as { init: boolean; podIP: string }).init, (call.args[1] as { podIP: string }).podIP]);
    expect(configs).to.deep.equal([
      ['init1', true, status.podIP],
      ['init2', true, status.podIP],
      ['app', false, status.podIP],
      ['side', false, status.podIP],
    ]);
    h.worker.stop();
  });

  it('restarts a crashed container after its back-off (10 s, then 20 s), counting restarts', async () => {
    const h = harness(makePod());
    await h.worker.syncNow();
    h.cri.exit(only(h.cri.running('app')).id, 1, { message: 'boom' });
    await h.advance(1000);
    expect(h.container('app')?.state).to.deep.equal({ waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s restarting failed container=app pod=web_default(uid-web)' } });
    expect(h.container('app')?.lastState?.terminated).to.include({ exitCode: 1, message: 'boom' });
    await h.advance(8000);
    expect(createdNames(h.cri)).to.have.length(1);
    await h.advance(1000);
    expect(createdNames(h.cri)).to.have.length(2);
    expect(h.container('app')).to.deep.include({ restartCount: 1, ready: true });
    expect(h.container('app')?.lastState?.terminated?.exitCode).to.equal(1);

    h.cri.exit(only(h.cri.running('app')).id, 2);
    await h.advance(19_000);
    expect(h.container('app')?.state?.waiting?.message).to.contain('back-off 20s');
    expect(createdNames(h.cri)).to.have.length(2);
    await h.advance(1000);
    expect(createdNames(h.cri)).to.have.length(3);
    expect(h.container('app')?.restartCount).to.equal(2);
    // The restart count went into the container's metadata and annotation.
    const last = h.cri.callsOf('createContainer').pop()?.args[1] as { metadata: { attempt: number }; annotations: Record<string, string> };
    expect(last.metadata.attempt).to.equal(2);
    expect(last.annotations['io.kubernetes.container.restartCount']).to.equal('2');
    h.worker.stop();
  });

  it('kills and restarts a container whose liveness probe fails, with the grace period', async () => {
    const container: Container = { name: 'app', image: 'app:1', livenessProbe: { exec: { command: ['check'] }, periodSeconds: 1, failureThreshold: 2 } };
    const h = harness(makePod({ containers: [container], grace: 7 }));
    await h.worker.syncNow();
    const first = only(h.cri.running('app')).id;
    h.cri.exec = () => ({ stdout: Buffer.from(''), stderr: Buffer.from('unhealthy'), exitCode: 1 });
    await h.advance(1000);
    expect(h.cri.callsOf('stopContainer').map((call) => call.args)).to.deep.equal([[first, 7]]);
    const second = only(h.cri.running('app'));
    expect(second.id).to.not.equal(first);
    expect(h.container('app')).to.deep.include({ restartCount: 1 });
    expect(h.logs.some((line) => line.includes('liveness probe failed'))).to.equal(true);
    // The new instance is probed afresh: healthy now, it stays.
    h.cri.exec = () => ({ stdout: Buffer.from(''), stderr: Buffer.from(''), exitCode: 0 });
    await h.advance(5000);
    expect(only(h.cri.running('app')).id).to.equal(second.id);
    h.worker.stop();
  });

  it('reports Ready as the readiness probe says', async () => {
    const container: Container = { name: 'app', image: 'app:1', readinessProbe: { exec: { command: ['ready?'] }, periodSeconds: 1, failureThreshold: 1 } };
    const h = harness(makePod({ containers: [container] }));
    let ready = false;
    h.cri.exec = () => ({ stdout: Buffer.from(''), stderr: Buffer.from(''), exitCode: ready ? 0 : 1 });
    await h.worker.syncNow();
    const readyCondition = (): string | undefined => h.status().conditions?.find((condition) => condition.type === 'Ready')?.status;
    expect(readyCondition()).to.equal('False');
    await h.advance(1000);
    expect(readyCondition()).to.equal('False');
    ready = true;
    await h.advance(1000);
    expect(readyCondition()).to.equal('True');
    expect(h.container('app')?.ready).to.equal(true);
    ready = false;
    await h.advance(1000);
    expect(readyCondition()).to.equal('False');
    expect(h.status().phase).to.equal('Running');
    h.worker.stop();
  });

  it('terminates a deleted pod with its grace period, cleans up, then says so', async () => {
    const pod = makePod({ grace: 30, containers: [{ name: 'app', image: 'app:1' }, { name: 'side', image: 'side:1' }] });
    const h = harness(pod);
    await h.worker.syncNow();
    const ids = [...h.cri.containers.keys()].sort();
    h.worker.update({ ...pod, metadata: { ...pod.metadata, deletionTimestamp: '2024-01-01T12:00:30Z', deletionGracePeriodSeconds: 7 } });
    await h.worker.terminated;
    await h.worker.idle();
    expect(h.cri.callsOf('stopContainer').map((call) => call.args).sort()).to.deep.equal(ids.map((id) => [id, 7]));
    expect(h.cri.callsOf('stopPodSandbox')).to.have.length(1);
    expect(h.cri.callsOf('removeContainer')).to.have.length(2);
    expect(h.cri.callsOf('removePodSandbox')).to.have.length(1);
    expect(h.cri.containers.size + h.cri.sandboxes.size).to.equal(0);
    expect(h.env.calls.filter((call) => call.method === 'cleanup').map((call) => call.args)).to.deep.equal([['uid-web']]);
    expect(h.terminated.map((done) => done.metadata?.uid)).to.deep.equal(['uid-web']);
    // The last report: every container terminated (the fake's SIGTERM exit, 143), the pod Failed.
    expect(h.status().phase).to.equal('Failed');
    expect(h.container('app')?.state?.terminated?.exitCode).to.equal(143);
    expect(h.worker.phase).to.equal('terminated');
    expect(h.clock.pendingTimers).to.equal(0);
    // Nothing happens after the end.
    const calls = h.cri.calls.length;
    h.worker.update(pod);
    await h.advance(5000);
    expect(h.cri.calls.length).to.equal(calls);
  });

  it('a pod whose object vanished is stopped and cleaned up all the same', async () => {
    const h = harness(makePod({ grace: 30 }));
    await h.worker.syncNow();
    h.worker.podRemoved(0);
    await h.worker.terminated;
    expect(h.cri.callsOf('stopContainer').map((call) => call.args[1])).to.deep.equal([0]);
    expect(h.cri.containers.size + h.cri.sandboxes.size).to.equal(0);
    expect(h.terminated).to.have.length(1);
  });

  it('replaces a sandbox that died (attempt 1) and restarts the containers in it after their back-off', async () => {
    const h = harness(makePod({ initContainers: [{ name: 'init', image: 'busybox:1' }] }));
    await h.worker.syncNow();
    h.cri.exit(only(h.cri.running('init')).id, 0);
    await h.advance(1000);
    only(h.cri.callsOf('runPodSandbox'));
    h.cri.killSandbox([...h.cri.sandboxes.keys()][0] ?? '');
    await h.advance(1000);
    const attempts = h.cri.callsOf('runPodSandbox').map((call) => (call.args[0] as { metadata: { attempt: number } }).metadata.attempt);
    expect(attempts).to.deep.equal([0, 1]);
    // The new sandbox runs the init container again before the app.
    expect(createdNames(h.cri)).to.deep.equal(['init', 'app', 'init']);
    h.cri.exit(only(h.cri.running('init')).id, 0);
    await h.advance(1000);
    expect(h.container('app')?.state?.waiting?.reason).to.equal('CrashLoopBackOff');
    await h.advance(9000);
    expect(createdNames(h.cri)).to.deep.equal(['init', 'app', 'init', 'app']);
    expect(h.container('app')).to.deep.include({ restartCount: 1, ready: true });
    expect(h.container('init')?.restartCount).to.equal(1);
    expect(h.status().phase).to.equal('Running');
    h.worker.stop();
  });

  it('a missing image: ErrImagePull, then ImagePullBackOff, pulling again after the back-off', async () => {
    const h = harness(makePod({ containers: [{ name: 'app', image: 'ghost:1' }] }));
    h.cri.pullFailures.set('ghost:1', 'pull access denied for ghost');
    await h.worker.syncNow();
    expect(h.container('app')?.state).to.deep.equal({ waiting: { reason: 'ErrImagePull', message: 'CRI PullImage failed: pull access denied for ghost' } });
    expect(h.status().phase).to.equal('Pending');
    await h.advance(1000);
    expect(h.container('app')?.state).to.deep.equal({ waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "ghost:1"' } });
    await h.advance(9000);
    expect(h.cri.callsOf('pullImage')).to.have.length(2);
    expect(h.container('app')?.state?.waiting?.reason).to.equal('ErrImagePull');
    h.cri.pullFailures.delete('ghost:1');
    await h.advance(19_000);
    expect(h.cri.callsOf('pullImage')).to.have.length(2); // 20 s this time
    await h.advance(1000);
    expect(h.cri.callsOf('pullImage')).to.have.length(3);
    expect(h.status().phase).to.equal('Running');
    h.worker.stop();
  });

  it('a PodConfigError from the builder shows as CreateContainerConfigError until it is fixed', async () => {
    const h = harness(makePod());
    h.env.configErrors.set('app', new PodConfigError('CreateContainerConfigError', 'configmap "settings" not found'));
    await h.worker.syncNow();
    expect(h.container('app')?.state).to.deep.equal({ waiting: { reason: 'CreateContainerConfigError', message: 'configmap "settings" not found' } });
    expect(h.status().phase).to.equal('Pending');
    h.env.configErrors.clear();
    await h.advance(1000);
    expect(h.container('app')?.state?.running).to.not.equal(undefined);
    h.worker.stop();
  });

  it('volumes that cannot be prepared keep the containers ContainerCreating, with the reason', async () => {
    const h = harness(makePod());
    h.env.volumeError = new PodConfigError('FailedMount', 'secret "tls" not found');
    await h.worker.syncNow();
    expect(h.cri.callsOf('runPodSandbox')).to.have.length(0);
    expect(h.container('app')?.state).to.deep.equal({ waiting: { reason: 'ContainerCreating', message: 'FailedMount: secret "tls" not found' } });
    h.env.volumeError = undefined;
    await h.advance(1000);
    expect(h.status().phase).to.equal('Running');
    h.worker.stop();
  });

  it('adopts what a previous agent left running: starts nothing, same restart count and container', async () => {
    const pod = makePod();
    const h = harness(pod);
    await h.worker.syncNow();
    h.cri.exit(only(h.cri.running('app')).id, 1);
    await h.advance(11_000);
    expect(h.container('app')?.restartCount).to.equal(1);
    const before = h.container('app');
    h.worker.stop();

    const calls = h.cri.calls.length;
    const second = harness({ ...pod, status: h.status() }, h);
    await second.worker.syncNow();
    const made = h.cri.calls.slice(calls).map((call) => call.method);
    for (const method of ['runPodSandbox', 'createContainer', 'startContainer', 'stopContainer', 'stopPodSandbox', 'removeContainer']) expect(made, method).to.not.include(method);
    expect(second.container('app')).to.deep.include({ restartCount: 1, containerID: before?.containerID, ready: true });
    expect(second.container('app')?.lastState?.terminated?.exitCode).to.equal(1);
    expect(second.status().phase).to.equal('Running');
    expect(second.status().startTime).to.equal(h.status().startTime);
    second.worker.stop();
  });

  it('a finished restartPolicy Never pod: Succeeded, sandbox stopped, no more re-syncs', async () => {
    const h = harness(makePod({ restartPolicy: 'Never' }));
    await h.worker.syncNow();
    h.cri.exit(only(h.cri.running('app')).id, 0);
    await h.advance(1000);
    expect(h.status().phase).to.equal('Succeeded');
    expect(h.cri.callsOf('stopPodSandbox')).to.have.length(1);
    expect(h.clock.pendingTimers).to.equal(0);
    h.worker.stop();
  });

  it('restarts a container whose spec changed (a new image)', async () => {
    const pod = makePod();
    const h = harness(pod);
    await h.worker.syncNow();
    const first = only(h.cri.running('app')).id;
    h.worker.update({ ...pod, spec: { ...pod.spec, containers: [{ name: 'app', image: 'app:2' }] } });
    await h.worker.idle();
    expect(h.cri.callsOf('stopContainer').map((call) => call.args[0])).to.deep.equal([first]);
    expect(only(h.cri.running('app')).config.image?.image).to.equal('app:2');
    expect(h.container('app')).to.deep.include({ restartCount: 1, image: 'app:2' });
    h.worker.stop();
  });

  it('never runs two syncs of a pod at once, and coalesces the requests that pile up', async () => {
    const h = harness(makePod());
    let active = 0;
    let most = 0;
    let syncs = 0;
    const list = h.cri.listPodSandbox.bind(h.cri);
    h.cri.listPodSandbox = async (filter) => {
      active += 1;
      syncs += 1;
      most = Math.max(most, active);
      await macrotask();
      active -= 1;
      return list(filter);
    };
    await h.worker.syncNow();
    const afterFirst = syncs;
    for (let index = 0; index < 10; index += 1) h.worker.requestSync();
    await h.worker.idle();
    expect(most).to.equal(1);
    expect(syncs - afterFirst).to.equal(1); // ten requests, one more sync (one observation: nothing changed)
    h.worker.stop();
  });

  it('syncs for a change of what the pod asks for or of the runtime, not for an echo of its own status or a state it already saw', async () => {
    const pod = makePod();
    const h = harness(pod);
    await h.worker.syncNow();
    expect(h.status().phase).to.equal('Running');
    const settled = await relistedFingerprint(h);
    const syncs = (): number => h.cri.callsOf('listPodSandbox').length;
    const before = syncs();
    // Its own status write coming back through the informer, and the relist seeing what the sync did.
    h.worker.update({ ...pod, metadata: { ...pod.metadata, resourceVersion: '7' }, status: h.status() });
    h.worker.runtimeChanged(settled);
    await h.worker.idle();
    expect(syncs()).to.equal(before);
    // A new label is a change of the pod; a container that exited is a change of the runtime.
    h.worker.update({ ...pod, metadata: { ...pod.metadata, labels: { tier: 'web' } } });
    await h.worker.idle();
    expect(syncs()).to.equal(before + 1);
    h.cri.exit(h.cri.latest('app')!.id, 1);
    const exited = await relistedFingerprint(h);
    expect(exited).to.not.equal(settled);
    h.worker.runtimeChanged(exited);
    await h.worker.idle();
    expect(syncs()).to.equal(before + 3); // the two lists above were the test's own
    expect(lastExitCode(h, 'app')).to.equal(1);
    h.worker.stop();
  });

  it('a state the sync did not settle (a container that exited at once) is left to the relist: it syncs again', async () => {
    const h = harness(makePod({ restartPolicy: 'Never' }));
    h.cri.exitOnStart.set('app', 0);
    await h.worker.syncNow();
    const syncs = h.cri.callsOf('listPodSandbox').length;
    h.worker.runtimeChanged(await relistedFingerprint(h));
    await h.worker.idle();
    expect(h.cri.callsOf('listPodSandbox').length).to.be.above(syncs + 1);
    expect(h.status().phase).to.equal('Succeeded');
    h.worker.stop();
  });

  it('a resync of a running pod only lists: the sandbox network and a running container status are remembered until the list shows a change', async () => {
    const h = harness(makePod());
    await h.worker.syncNow();
    expect(h.status().podIP).to.match(/^10\.88\.0\./);
    const statusCalls = (): number => h.cri.callsOf('podSandboxStatus').length + h.cri.callsOf('containerStatus').length;
    const before = statusCalls();
    await h.worker.syncNow();
    await h.worker.syncNow();
    expect(statusCalls()).to.equal(before);
    expect(h.status().phase).to.equal('Running');
    // The list shows the container exited: its status is asked for again (exit code, finish time).
    const containerStatusCalls = h.cri.callsOf('containerStatus').length;
    h.cri.exit(h.cri.latest('app')!.id, 2);
    await h.worker.syncNow();
    expect(h.cri.callsOf('containerStatus').length).to.be.above(containerStatusCalls);
    expect(lastExitCode(h, 'app')).to.equal(2);
    h.worker.stop();
  });

  it('a relist report that arrives while a sync starts the pod starts no other sync: the sync\'s second look saw that state or a newer one', async () => {
    const h = harness(makePod());
    const prepareVolumes = h.env.prepareVolumes.bind(h.env);
    // The relist runs while the sync is between its two looks, and sees a state in between.
    h.env.prepareVolumes = async (pod: Pod) => {
      h.worker.runtimeChanged('s/sandbox-in-between/1');
      return prepareVolumes(pod);
    };
    await h.worker.syncNow();
    expect(h.status().phase).to.equal('Running');
    expect(h.cri.callsOf('listPodSandbox')).to.have.length(2);
    // A report after the sync, of a state it has not seen, does start one.
    h.worker.runtimeChanged('s/sandbox-after/0');
    await h.worker.idle();
    expect(h.cri.callsOf('listPodSandbox')).to.have.length(3);
    h.worker.stop();
  });

  it('tells a change of what a pod asks for from a change of its status', () => {
    const pod = makePod();
    expect(sameDesiredState(pod, { ...pod, metadata: { ...pod.metadata, resourceVersion: '9' }, status: { phase: 'Running', podIP: '10.0.0.2' } })).to.equal(true);
    expect(sameDesiredState(pod, { ...pod, spec: { ...pod.spec, containers: [{ name: 'app', image: 'app:2' }] } })).to.equal(false);
    expect(sameDesiredState(pod, { ...pod, metadata: { ...pod.metadata, annotations: { a: 'b' } } })).to.equal(false);
    expect(sameDesiredState(pod, { ...pod, metadata: { ...pod.metadata, deletionTimestamp: '2024-01-01T12:00:00Z', deletionGracePeriodSeconds: 30 } })).to.equal(false);
  });

  it('finds and removes the sandboxes and containers of pods no longer bound here', async () => {
    const shared = harness(makePod({ uid: 'uid-a', name: 'a' }));
    await shared.worker.syncNow();
    const other = harness(makePod({ uid: 'uid-b', name: 'b' }), shared);
    await other.worker.syncNow();
    shared.worker.stop();
    other.worker.stop();
    const orphans = await findOrphans(shared.cri, new Set(['uid-a']));
    expect(orphans.uids).to.deep.equal(['uid-b']);
    expect(orphans.sandboxes.map((sandbox) => sandbox.labels['io.kubernetes.pod.uid'])).to.deep.equal(['uid-b']);
    expect(orphans.containers.map((container) => container.labels['io.kubernetes.pod.uid'])).to.deep.equal(['uid-b']);
    await removeOrphans(shared.cri, orphans, 3);
    expect(shared.cri.callsOf('stopContainer').map((call) => call.args[1])).to.deep.equal([3]);
    expect([...shared.cri.sandboxes.values()].map((sandbox) => sandbox.config.labels['io.kubernetes.pod.uid'])).to.deep.equal(['uid-a']);
    expect((await findOrphans(shared.cri, new Set(['uid-a']))).uids).to.deep.equal([]);
  });

  it('image pull policy defaults as Kubernetes: Always for latest or untagged, else IfNotPresent', () => {
    expect(imagePullPolicyOf({ image: 'busybox' })).to.equal('Always');
    expect(imagePullPolicyOf({ image: 'busybox:latest' })).to.equal('Always');
    expect(imagePullPolicyOf({ image: 'localhost:5000/busybox' })).to.equal('Always');
    expect(imagePullPolicyOf({ image: 'busybox:1.36' })).to.equal('IfNotPresent');
    expect(imagePullPolicyOf({ image: 'busybox@sha256:abc' })).to.equal('IfNotPresent');
    expect(imagePullPolicyOf({ image: 'busybox', imagePullPolicy: 'Never' })).to.equal('Never');
  });
});
