import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';
import { age, describeEvents, formatTable, printObjects } from '../../services/ctl/printers.js';
import { parseManifests, ManifestError } from '../../services/ctl/manifests.js';

const MASTCTL = fileURLToPath(new URL('../../services/cmd/mastctl.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../../../test/ctl/fixtures/guestbook.yaml', import.meta.url));
const run = promisify(execFile);

describe('mastctl printers and manifests', function () {
  const now = new Date('2026-11-25T12:00:00Z');

  it('prints ages and tables as kubectl does', function () {
    const ago = (seconds: number): string => age(new Date(now.getTime() - seconds * 1000).toISOString(), now);
    expect([45, 450, 720, 9000, 19200, 34 * 3600, 76 * 3600, 55 * 86400, 760 * 86400].map(ago)).to.deep.equal(['45s', '7m30s', '12m', '150m', '5h20m', '34h', '3d4h', '55d', '2y30d']);
    expect(age(undefined, now)).to.equal('<unknown>');
    expect(formatTable(['NAME', 'AGE'], [{ NAME: 'a-long-name', AGE: '1m' }, { NAME: 'b', AGE: '2d' }])).to.equal('NAME          AGE\na-long-name   1m\nb             2d');
    const pod = {
      metadata: { name: 'web-1', creationTimestamp: '2026-11-25T11:00:00Z' },
      spec: { containers: [{}, {}], nodeName: 'n1' },
      status: { phase: 'Running', podIP: '10.0.0.5', containerStatuses: [{ ready: true, restartCount: 2 }, { ready: false, restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } } }] },
    };
    expect(printObjects('Pod', [pod], { output: 'table', withNamespace: false, showLabels: false, now })).to.equal('NAME    READY   STATUS             RESTARTS   AGE\nweb-1   1/2     CrashLoopBackOff   3          60m');
    expect(printObjects('Pod', [pod], { output: 'wide', withNamespace: false, showLabels: false, now }).split('\n')[0]).to.equal('NAME    READY   STATUS             RESTARTS   AGE   IP         NODE');
    expect(printObjects('Pod', [pod], { output: 'name', withNamespace: false, showLabels: false, now })).to.equal('pod/web-1');
    expect(describeEvents([], now)).to.equal('Events:  <none>');
    expect(
      describeEvents(
        [
          { type: 'Warning', reason: 'BackOff', message: 'Back-off restarting failed container', count: 4, firstTimestamp: '2026-11-25T11:58:00Z', lastTimestamp: '2026-11-25T11:59:50Z', source: { component: 'kubelet', host: 'n1' } },
          { type: 'Normal', reason: 'Scheduled', message: 'Successfully assigned default/web-1 to n1', count: 1, firstTimestamp: '2026-11-25T11:57:00Z', lastTimestamp: '2026-11-25T11:57:00Z', source: { component: 'default-scheduler' } },
        ],
        now,
      ),
    ).to.equal(
      [
        'Events:',
        '  Type      Reason      Age                From                Message',
        '  ----      ------      ----               ----                -------',
        '  Normal    Scheduled   3m                 default-scheduler   Successfully assigned default/web-1 to n1',
        '  Warning   BackOff     10s (x4 over 2m)   kubelet, n1         Back-off restarting failed container',
      ].join('\n'),
    );
  });

  it('reads multi-document YAML and Lists, and names the document that is wrong', function () {
    const manifests = parseManifests('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n', 'app.yaml');
    expect(manifests.map((manifest) => `${manifest.object.kind}/${String(manifest.object.metadata?.name)}`)).to.deep.equal(['ConfigMap/a', 'Secret/s']);
    expect(() => parseManifests('apiVersion: v1\nkind: ConfigMap\n---\nkind: [unclosed', 'bad.yaml')).to.throw(ManifestError, /^bad\.yaml \(document 2\): /);
    expect(() => parseManifests('- 1\n- 2\n', 'list.yaml')).to.throw(ManifestError, 'list.yaml (document 1): expected an object with apiVersion and kind');
    expect(() => parseManifests('metadata: {name: x}\n', 'nokind.yaml')).to.throw(ManifestError, 'nokind.yaml (document 1): apiVersion and kind are required');
  });
});

describe('mastctl against 3 masters', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let env: NodeJS.ProcessEnv;
  const mastctl = async (...args: string[]): Promise<{ code: number; out: string }> => {
    try {
      const { stdout } = await run(process.execPath, [MASTCTL, ...args], { env });
      return { code: 0, out: stdout.trimEnd() };
    } catch (error) {
      const failed = error as { code: number; stdout: string };
      return { code: failed.code, out: failed.stdout.trimEnd() };
    }
  };

  before(async function () {
    cluster = await LocalCluster.start({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-ctl-test-')) });
    await cluster.waitForLeader(60_000);
    // The client config file, as a user would write it.
    const config = join(cluster.options.baseDir, 'config');
    writeFileSync(config, `masters:\n${cluster.endpoints.map((endpoint) => `  - http://${endpoint}`).join('\n')}\n`);
    env = { ...process.env, MASTCONFIG: config, MAST_MASTERS: '' };
  });

  after(async function () {
    await cluster?.destroy();
  });

  it('applies a Kubernetes multi-document manifest unchanged, then lists it', async function () {
    const applied = await mastctl('apply', '-f', FIXTURE);
    expect(applied).to.deep.equal({
      code: 0,
      out: ['namespace/guestbook created', 'configmap/frontend-config created', 'deployment.apps/frontend created', 'service/frontend created'].join('\n'),
    });
    const again = await mastctl('apply', '-f', FIXTURE);
    expect(again.out.split('\n').every((line) => line.endsWith(' unchanged'))).to.equal(true);
    const all = await mastctl('get', 'all', '-n', 'guestbook');
    expect(all.code).to.equal(0);
    expect(all.out).to.match(/^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\nservice\/frontend\s+NodePort\s+10\.(9[6-9]|10\d|11[01])\.\d+\.\d+\s+<none>\s+80:3\d{4}\/TCP\s+\d+s\n\nNAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\ndeployment\.apps\/frontend\s+0\/3\s+0\s+0\s+\d+s$/);
    const configmaps = await mastctl('get', 'cm', '-n', 'guestbook', '-o', 'name');
    expect(configmaps.out).to.equal('configmap/frontend-config');
    const yaml = await mastctl('get', 'deploy', 'frontend', '-n', 'guestbook', '-o', 'yaml');
    expect(yaml.out).to.contain('maxSurge: 25%').and.contain('image: gcr.io/google-samples/gb-frontend:v5').and.contain('resourceVersion:');
    const namespaces = await mastctl('get', 'ns', '--show-labels');
    expect(namespaces.out).to.match(/guestbook\s+Active\s+\d+s\s+team=web/);
  });

  it('labels, scales, deletes, and reports errors as one line with a non-zero exit', async function () {
    expect((await mastctl('label', 'deploy', 'frontend', 'release=stable', '-n', 'guestbook')).out).to.equal('deployment.apps/frontend labeled');
    expect((await mastctl('get', 'deploy', '-n', 'guestbook', '-l', 'release=stable', '-o', 'name')).out).to.equal('deployment.apps/frontend');
    expect((await mastctl('label', 'deploy', 'frontend', 'release=canary', '-n', 'guestbook')).out).to.equal("error: 'release' already has a value (stable), and --overwrite is false");
    expect((await mastctl('scale', 'deployment', 'frontend', '--replicas=5', '-n', 'guestbook')).out).to.equal('deployment.apps/frontend scaled');
    expect((await mastctl('get', 'deploy', 'frontend', '-n', 'guestbook', '-o', 'json')).out).to.contain('"replicas": 5');
    const missing = await mastctl('get', 'pod', 'nope', '-n', 'guestbook');
    expect(missing).to.deep.equal({ code: 1, out: 'Error from server (NotFound): Pod "nope" not found in namespace "guestbook"' });
    const unknown = await mastctl('get', 'widgets');
    expect(unknown).to.deep.equal({ code: 1, out: 'error: the server doesn\'t have a resource type "widgets"' });
    const bad = join(cluster.options.baseDir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  namespace: guestbook\ndata:\n  port: 8080\n');
    expect(await mastctl('apply', '-f', bad)).to.deep.equal({ code: 1, out: 'Error from server (Invalid): ConfigMap "bad" is invalid: data["port"]: must be a string, not number 8080' });
    // Several -f, in order, as kubectl takes them.
    const one = join(cluster.options.baseDir, 'one.yaml');
    const two = join(cluster.options.baseDir, 'two.yaml');
    writeFileSync(one, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  namespace: guestbook\n');
    writeFileSync(two, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  namespace: guestbook\n');
    expect((await mastctl('apply', '-f', one, '-f', two)).out.split('\n')).to.deep.equal(['configmap/one created', 'configmap/two created']);
    expect((await mastctl('delete', '-f', one, '-f', two)).out.split('\n')).to.deep.equal(['configmap "one" deleted', 'configmap "two" deleted']);
    expect((await mastctl('delete', '-f', FIXTURE)).out.split('\n')).to.deep.equal([
      'namespace "guestbook" deleted',
      'configmap "frontend-config" deleted',
      'deployment.apps "frontend" deleted',
      'service "frontend" deleted',
    ]);
    expect((await mastctl('get', 'deploy', '-n', 'guestbook')).out).to.equal('No resources found in guestbook namespace.');
  });

  it('runs a Deployment, describes it, and watches changes with get -w', async function () {
    expect((await mastctl('run', 'hello', '--image=busybox:1.36', '--replicas=2', '--port=8080')).out).to.equal('deployment.apps/hello created');
    const described = await mastctl('describe', 'deployment', 'hello');
    expect(described.out).to.match(/^Name:\s+hello\nNamespace:\s+default\nLabels:\s+app=hello\n/);
    expect(described.out).to.contain('Spec:\n  replicas: 2').and.contain('image: busybox:1.36').and.contain('containerPort: 8080');
    expect(described.out).to.match(/\nEvents:  <none>$/);
    expect((await mastctl('run', 'nameless')).out).to.equal('error: run needs NAME --image=IMAGE [--replicas=N] [--port=P]');
    // get -w: the table, then a row per change, until interrupted.
    const watcher = spawn(process.execPath, [MASTCTL, 'get', 'configmaps', '-w'], { env });
    let output = '';
    watcher.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => watcher.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the first listing', async () => (/^NAME\s+DATA\s+AGE|No resources found/.test(output) ? true : undefined), 30_000, 20);
      const file = join(cluster.options.baseDir, 'watched.yaml');
      writeFileSync(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched-one\ndata:\n  a: b\n');
      await mastctl('apply', '-f', file);
      await waitFor('the watch row', async () => (/watched-one\s+1\s+\d+s/.test(output) ? true : undefined), 30_000, 20);
      await mastctl('delete', 'cm', 'watched-one');
      await waitFor('the deletion row', async () => (/watched-one\s+1\s+\d+s\s+\(deleted\)/.test(output) ? true : undefined), 30_000, 20);
      watcher.kill('SIGINT');
      expect(await exited).to.equal(0);
    } finally {
      if (watcher.exitCode === null && watcher.signalCode === null) watcher.kill('SIGKILL');
    }
  });

  it('shows the masters and the leader', async function () {
    const members = await mastctl('member', 'list');
    expect(members.code).to.equal(0);
    const lines = members.out.split('\n');
    expect(lines[0]).to.match(/^ID\s+NAME\s+ROLE\s+CLIENT URLS\s+PEER URLS$/);
    expect(lines.slice(1).filter((line) => /\sleader\s/.test(line))).to.have.length(1);
    expect((await mastctl('cluster-info')).out).to.match(/^mast control plane: 3 masters, leader m\d, revision \d+/);
  });
});
