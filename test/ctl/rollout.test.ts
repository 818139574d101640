// mastctl rollout: kubectl's status messages and pod template layout, then
// status, history, undo, pause and resume against a master running the
// Deployment and ReplicaSet controllers in-process (the test plays the
// kubelet), and `get deploy` / `get rs` columns.

import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Deployment } from '../../proto/gen/resources/v1/apps.js';
import { Informer } from '../../services/client/informer.js';
import { ResourceClient, type KubeObject } from '../../services/client/resources.js';
import { DeploymentController } from '../../services/controllers/deployment/controller.js';
import { ReplicaController } from '../../services/controllers/replicaset/controller.js';
import { runCtl } from '../../services/ctl/mastctl.js';
import { describePodTemplate } from '../../services/ctl/printers.js';
import { parseDurationMs, RolloutError, rolloutStatusMessage } from '../../services/ctl/rollout.js';
import { LocalCluster, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';
import { playKubelet } from '../controllers/deployment-kubelet.js';

const DEADLINE_MS = 120_000;

function web(status: NonNullable<Deployment['status']>, generation = 2): Deployment {
  return { metadata: { name: 'web', generation }, spec: { replicas: 3 }, status: { observedGeneration: 2, ...status } };
}

describe('mastctl rollout: messages and layouts', function () {
  it("prints kubectl's rollout status messages", function () {
    const message = (deployment: Deployment): string => rolloutStatusMessage(deployment).message;
    expect(message(web({}, 3))).to.equal('Waiting for deployment spec update to be observed...');
    expect(message(web({ replicas: 4, updatedReplicas: 1 }))).to.equal('Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...');
    expect(message(web({ replicas: 4, updatedReplicas: 3 }))).to.equal('Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...');
    expect(message(web({ replicas: 3, updatedReplicas: 3, availableReplicas: 2 }))).to.equal('Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...');
    expect(rolloutStatusMessage(web({ replicas: 3, updatedReplicas: 3, availableReplicas: 3 }))).to.deep.equal({ message: 'deployment "web" successfully rolled out', done: true });
    const stuck = web({ conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] });
    expect(() => rolloutStatusMessage(stuck)).to.throw(RolloutError, 'deployment "web" exceeded its progress deadline');
    const revised = { ...web({}), metadata: { name: 'web', generation: 2, annotations: { 'deployment.kubernetes.io/revision': '4' } } };
    expect(() => rolloutStatusMessage(revised, 3)).to.throw(RolloutError, 'desired revision (3) is different from the running revision (4)');
  });

  it("parses durations as Go's time.ParseDuration", function () {
    expect(['0', '0s', '30s', '1m30s', '1.5h', '250ms'].map((text) => parseDurationMs(text, 'timeout'))).to.deep.equal([0, 0, 30_000, 90_000, 5_400_000, 250]);
    expect(() => parseDurationMs('5', 'timeout')).to.throw(RolloutError, 'invalid argument "5" for "--timeout" flag: time: missing unit in duration "5"');
    expect(() => parseDurationMs('soon', 'timeout')).to.throw(RolloutError, 'time: invalid duration "soon"');
  });

  it("describes a pod template as kubectl describe does", function () {
    const template = {
      metadata: { labels: { app: 'web', 'pod-template-hash': '6d4cf56db6' }, annotations: { 'kubernetes.io/change-cause': 'v2' } },
      spec: { containers: [{ name: 'web', image: 'nginx:1.25', ports: [{ containerPort: 80, protocol: 'TCP' }], env: [{ name: 'MODE', value: 'prod' }] }] },
    };
    expect(describePodTemplate(template)).to.equal(
      [
        'Pod Template:',
        '  Labels:       app=web',
        '                pod-template-hash=6d4cf56db6',
        '  Annotations:  kubernetes.io/change-cause=v2',
        '  Containers:',
        '   web:',
        '    Image:      nginx:1.25',
        '    Port:       80/TCP',
        '    Host Port:  0/TCP',
        '    Environment:',
        '      MODE:  prod',
        '    Mounts:  <none>',
        '  Volumes:   <none>',
      ].join('\n'),
    );
  });
});

describe('mastctl rollout against a master with the Deployment controller', function () {
  this.timeout(600_000);
  let cluster: LocalCluster | undefined;
  let client: ResourceClient;
  const abort = new AbortController();
  const running: Array<Promise<void>> = [];
  let pods: Informer<KubeObject> | undefined;
  let stopKubelet: (() => void) | undefined;
  let env: Record<string, string>;

  /** mastctl in-process: its exit code and every line it printed. */
  const mastctl = async (...args: string[]): Promise<{ code: number; out: string }> => {
    const lines: string[] = [];
    const code = await runCtl(args, { out: (text) => void lines.push(text), readStdin: () => '', env, now: () => new Date() });
    return { code, out: lines.join('\n') };
  };

  before(async function () {
    cluster = await LocalCluster.start({ size: 1, baseDir: mkdtempSync(join(tmpdir(), 'mast-rollout-')) });
    client = new ResourceClient({ endpoints: cluster.endpoints });
    await waitForNamespace(client, 'default');
    env = { MAST_MASTERS: cluster.endpoints.join(','), MASTCONFIG: join(cluster.options.baseDir, 'no-config') };
    pods = new Informer(client, 'Pod');
    running.push(new ReplicaController({ client, kind: 'ReplicaSet', pods }).run(abort.signal));
    running.push(new DeploymentController({ client, pods }).run(abort.signal));
    pods.start();
    // Pods of "stuck" never start: its rollout never progresses.
    stopKubelet = playKubelet(client, 'default', () => {}, (pod) => pod.metadata?.labels?.app === 'stuck');
  });

  after(async function () {
    abort.abort();
    stopKubelet?.();
    pods?.stop();
    await Promise.allSettled(running);
    client?.close();
    await cluster?.destroy();
  });

  const create = async (name: string, extra: Record<string, unknown> = {}): Promise<void> => {
    await client.create('Deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'default', annotations: { 'kubernetes.io/change-cause': 'create' } },
      spec: { replicas: 3, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: 'nginx:1.24' }] } }, ...extra },
    });
  };
  const setImage = async (image: string, cause: string): Promise<void> => {
    await client.patch('Deployment', 'default', 'web', { metadata: { annotations: { 'kubernetes.io/change-cause': cause } }, spec: { template: { spec: { containers: [{ name: 'web', image }] } } } });
  };
  const imageOf = async (): Promise<string | undefined> => ((await client.get('Deployment', 'default', 'web')) as Deployment).spec?.template?.spec?.containers?.[0]?.image;
  const KUBECTL_LINE = /^(Waiting for deployment spec update to be observed\.\.\.|Waiting for deployment "web" rollout to finish: (\d+ out of 3 new replicas have been updated|\d+ old replicas are pending termination|\d+ of \d+ updated replicas are available)\.\.\.|deployment "web" successfully rolled out)$/;

  it('waits for a rollout with status, printing what it waits for', async function () {
    await create('web');
    const status = await mastctl('rollout', 'status', 'deploy/web');
    expect(status.code).to.equal(0);
    const lines = status.out.split('\n');
    expect(lines.at(-1)).to.equal('deployment "web" successfully rolled out');
    for (const line of lines) expect(line).to.match(KUBECTL_LINE);
    expect((await mastctl('get', 'deploy', 'web')).out).to.match(/^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\nweb\s+3\/3\s+3\s+3\s+\d+s$/);
    const replicaSets = await mastctl('get', 'rs');
    expect(replicaSets.out).to.match(/^NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE\nweb-[bcdfghjklmnpqrstvwxz2456789]+\s+3\s+3\s+3\s+\d+s$/);
    expect(await mastctl('rollout', 'status', 'deployment', 'web', '--watch=false')).to.deep.equal({ code: 0, out: 'deployment "web" successfully rolled out' });
  });

  it('pauses and resumes, and status follows the rollout it was waiting for', async function () {
    expect(await mastctl('rollout', 'pause', 'deploy/web')).to.deep.equal({ code: 0, out: 'deployment.apps/web paused' });
    expect(await mastctl('rollout', 'pause', 'deploy/web')).to.deep.equal({ code: 1, out: 'error: deployments.apps "web" is already paused' });
    await setImage('nginx:1.25', 'v2');
    await waitFor('the paused change observed', async () => {
      const current = (await client.get('Deployment', 'default', 'web')) as Deployment;
      return (current.status?.observedGeneration ?? 0) >= (current.metadata?.generation ?? 0) ? true : undefined;
    }, DEADLINE_MS);
    expect(await mastctl('rollout', 'status', 'deploy/web', '--watch=false')).to.deep.equal({ code: 0, out: 'Waiting for deployment "web" rollout to finish: 0 out of 3 new replicas have been updated...' });
    expect(await mastctl('rollout', 'status', 'deploy/web', '--timeout=300ms')).to.deep.equal({
      code: 1,
      out: 'Waiting for deployment "web" rollout to finish: 0 out of 3 new replicas have been updated...\nerror: timed out waiting for the condition',
    });
    expect(await mastctl('rollout', 'undo', 'deploy/web')).to.deep.equal({ code: 1, out: "error: you cannot rollback a paused deployment; resume it first with 'mastctl rollout resume deployment/web' and try again" });
    // Status watches from here; the resume lets the rollout go.
    const watching = mastctl('rollout', 'status', 'deploy/web');
    expect(await mastctl('rollout', 'resume', 'deploy/web')).to.deep.equal({ code: 0, out: 'deployment.apps/web resumed' });
    expect(await mastctl('rollout', 'resume', 'deploy/web')).to.deep.equal({ code: 1, out: 'error: deployments.apps "web" is not paused' });
    const status = await watching;
    expect(status.code).to.equal(0);
    const lines = status.out.split('\n');
    expect(lines[0]).to.equal('Waiting for deployment "web" rollout to finish: 0 out of 3 new replicas have been updated...');
    expect(lines.at(-1)).to.equal('deployment "web" successfully rolled out');
    expect(lines.length).to.be.above(2);
    for (const line of lines) expect(line).to.match(KUBECTL_LINE);
  });

  it('shows the history, and one revision in detail', async function () {
    expect(await mastctl('rollout', 'history', 'deploy/web')).to.deep.equal({ code: 0, out: ['deployment.apps/web', 'REVISION  CHANGE-CAUSE', '1         create', '2         v2'].join('\n') });
    const detail = await mastctl('rollout', 'history', 'deploy/web', '--revision=2');
    expect(detail.code).to.equal(0);
    expect(detail.out).to.match(/^deployment\.apps\/web with revision #2\nPod Template:\n {2}Labels: {7}app=web\n {16}pod-template-hash=[a-z0-9]+\n {2}Annotations: {2}kubernetes\.io\/change-cause=v2\n {2}Containers:\n {3}web:\n {4}Image: +nginx:1\.25\n/);
    expect(await mastctl('rollout', 'history', 'deploy/web', '--revision=7')).to.deep.equal({ code: 1, out: 'error: unable to find the specified revision' });
  });

  it('undoes to the previous revision, or to a given one', async function () {
    expect(await mastctl('rollout', 'undo', 'deploy/web', '--to-revision=7')).to.deep.equal({ code: 1, out: 'error: unable to find specified revision 7 in history' });
    expect(await mastctl('rollout', 'undo', 'deploy/web')).to.deep.equal({ code: 0, out: 'deployment.apps/web rolled back' });
    expect(await imageOf()).to.equal('nginx:1.24');
    expect((await mastctl('rollout', 'status', 'deploy/web')).out.split('\n').at(-1)).to.equal('deployment "web" successfully rolled out');
    // Revision 1 came back as 3, with its change cause.
    expect((await mastctl('rollout', 'history', 'deploy/web')).out).to.equal(['deployment.apps/web', 'REVISION  CHANGE-CAUSE', '2         v2', '3         create'].join('\n'));
    expect(await mastctl('rollout', 'undo', 'deploy/web', '--to-revision=3')).to.deep.equal({ code: 0, out: 'deployment.apps/web skipped rollback (current template already matches revision 3)' });
    expect(await mastctl('rollout', 'undo', 'deploy/web', '--to-revision=2')).to.deep.equal({ code: 0, out: 'deployment.apps/web rolled back' });
    expect(await imageOf()).to.equal('nginx:1.25');
    expect((await mastctl('rollout', 'status', 'deploy/web')).code).to.equal(0);
  });

  it('fails status when the rollout exceeds its progress deadline, and reports usage errors', async function () {
    await create('stuck', { progressDeadlineSeconds: 2 });
    const status = await mastctl('rollout', 'status', 'deploy/stuck', '--timeout=2m');
    expect(status.code).to.equal(1);
    expect(status.out.split('\n').at(-1)).to.equal('error: deployment "stuck" exceeded its progress deadline');
    expect(await mastctl('rollout', 'status', 'deploy/missing')).to.deep.equal({ code: 1, out: 'Error from server (NotFound): Deployment "missing" not found in namespace "default"' });
    expect((await mastctl('rollout', 'status', 'rs/web')).out).to.equal('error: rollout status is implemented for deployments only, not replicasets');
    expect((await mastctl('rollout', 'restart', 'deploy/web')).out).to.equal('error: unknown rollout command "restart": status, history, undo, pause or resume');
  });
});
