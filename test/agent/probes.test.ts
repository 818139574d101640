// Probes: one try of each handler against real local servers (tcp, http on
// 127.0.0.1 ephemeral ports) and the fake runtime's exec; then the
// ProbeManager's schedule and thresholds, driven by a fake clock.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ContainerConfig, PodSandboxConfig } from '../../proto/gen/cri/v1/api.js';
import type { Container, Probe } from '../../proto/gen/resources/v1/core.js';
import { CriError } from '../../services/agent/cri.js';
import type { ProbeResult } from '../../services/agent/pod-actions.js';
import { execProbe, httpProbe, ProbeManager, resolveProbePort, runProbe, tcpProbe, type ProbeKind, type ProbeOutcome, type ProbeTarget } from '../../services/agent/probes.js';
import { FakeClock, FakeCri } from './fake-cri.js';

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function close(server: net.Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('agent: probes', () => {
  describe('tcpSocket', () => {
    it('succeeds when something listens, fails when nothing does', async () => {
      const server = net.createServer((socket) => socket.end());
      const port = await listen(server);
      expect((await tcpProbe('127.0.0.1', port, 1000)).result).to.equal('success');
      await close(server);
      const refused = await tcpProbe('127.0.0.1', port, 1000);
      expect(refused.result).to.equal('failure');
      expect(refused.message).to.contain(`127.0.0.1:${port}`);
    });

    it('finds a named port among the container ports', async () => {
      const server = net.createServer((socket) => socket.end());
      const port = await listen(server);
      try {
        const container: Container = { name: 'app', ports: [{ name: 'admin', containerPort: port }] };
        const target: ProbeTarget = { runtime: new FakeCri(), containerId: 'c', container, podIP: '127.0.0.1' };
        expect((await runProbe({ tcpSocket: { port: 'admin' } }, target)).result).to.equal('success');
        const missing = await runProbe({ tcpSocket: { port: 'nope' } }, target);
        expect(missing).to.deep.equal({ result: 'failure', message: 'tcpSocket probe: container app has no port named "nope"' });
      } finally {
        await close(server);
      }
    });
  });

  describe('httpGet', () => {
    let server: http.Server;
    let port: number;
    const seen: Array<{ url?: string; headers: http.IncomingHttpHeaders }> = [];

    before(async () => {
      server = http.createServer((request, response) => {
        seen.push({ url: request.url, headers: request.headers });
        if (request.url === '/hang') return; // never answers
        const code = Number(/^\/status\/(\d+)/.exec(request.url ?? '')?.[1] ?? 200);
        response.writeHead(code, code === 301 ? { Location: '/elsewhere' } : {});
        response.end(code >= 400 ? 'not well' : 'ok');
      });
      port = await listen(server);
    });

    after(async () => {
      server.closeAllConnections();
      await close(server);
    });

    it('passes on 200–399 and fails on 400 and up, with the body in the message', async () => {
      const probe = (path: string): Promise<ProbeOutcome> => httpProbe({ host: '127.0.0.1', port, path, headers: [] }, 1000);
      expect((await probe('/status/200')).result).to.equal('success');
      expect((await probe('/status/301')).result).to.equal('success');
      const failed = await probe('/status/503');
      expect(failed.result).to.equal('failure');
      expect(failed.message).to.contain('503').and.contain('not well');
    });

    it('sends the path and headers to the pod IP by default, and the named port', async () => {
      const container: Container = { name: 'app', ports: [{ name: 'http', containerPort: port }] };
      const target: ProbeTarget = { runtime: new FakeCri(), containerId: 'c', container, podIP: '127.0.0.1' };
      const outcome = await runProbe({ httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'X-Probe', value: 'yes' }] } }, target);
      expect(outcome.result).to.equal('success');
      const request = seen.find((entry) => entry.url === '/healthz');
      expect(request?.headers['x-probe']).to.equal('yes');
      expect(request?.headers['user-agent']).to.match(/^kube-probe\//);
    });

    it('fails a request that outlives its timeout', async () => {
      const outcome = await httpProbe({ host: '127.0.0.1', port, path: '/hang', headers: [] }, 50);
      expect(outcome.result).to.equal('failure');
      expect(outcome.message).to.contain('timed out');
    });

    it('refuses HTTPS and gRPC probes by name', async () => {
      const target: ProbeTarget = { runtime: new FakeCri(), containerId: 'c', container: { name: 'app' }, podIP: '127.0.0.1' };
      const https = await runProbe({ httpGet: { port, scheme: 'HTTPS' } }, target);
      expect(https).to.deep.equal({ result: 'failure', message: 'httpGet probe: scheme HTTPS is not supported by mast (only HTTP)' });
      expect((await runProbe({ grpc: { port } }, target)).message).to.contain('grpc');
    });
  });

  describe('exec', () => {
    it('exit 0 passes, others fail with the output, a timeout fails, a runtime error counts neither way', async () => {
      const cri = new FakeCri();
      cri.exec = (_id, cmd) => ({ stdout: Buffer.from(cmd.join(' ')), stderr: Buffer.from(''), exitCode: cmd[0] === 'ok' ? 0 : 3 });
      const sandboxConfig = PodSandboxConfig.fromPartial({ metadata: { name: 'p', uid: 'u', namespace: 'n', attempt: 0 } });
      const sandboxId = await cri.runPodSandbox(sandboxConfig);
      cri.addImage('img');
      const id = await cri.createContainer(sandboxId, ContainerConfig.fromPartial({ metadata: { name: 'app', attempt: 0 }, image: { image: 'img' } }), sandboxConfig);
      await cri.startContainer(id);
      expect(await execProbe(cri, id, ['ok'], 1)).to.deep.equal({ result: 'success', message: 'ok' });
      expect(await execProbe(cri, id, ['bad', 'thing'], 1)).to.deep.equal({ result: 'failure', message: 'command ["bad","thing"] exited with 3: bad thing' });
      expect(cri.callsOf('execSync').map((call) => call.args[2])).to.deep.equal([1, 1]);
      cri.failNext('execSync', new CriError('ExecSync', grpc.status.DEADLINE_EXCEEDED, 'deadline'));
      expect((await execProbe(cri, id, ['slow'], 2)).message).to.equal('command ["slow"] timed out after 2s');
      cri.failNext('execSync', new CriError('ExecSync', grpc.status.UNAVAILABLE, 'runtime down'));
      expect((await execProbe(cri, id, ['ok'], 1)).result).to.equal('unknown');
    });
  });

  it('resolveProbePort: numbers, numeric strings, names', () => {
    const container: Container = { name: 'app', ports: [{ name: 'web', containerPort: 8080 }] };
    expect(resolveProbePort(80, container)).to.equal(80);
    expect(resolveProbePort('81', container)).to.equal(81);
    expect(resolveProbePort('web', container)).to.equal(8080);
    expect(resolveProbePort(70_000, container)).to.be.instanceOf(Error);
  });

  describe('ProbeManager', () => {
    interface Harness {
      readonly clock: FakeClock;
      readonly manager: ProbeManager;
      readonly changes: Array<[ProbeKind, ProbeResult, number]>;
      readonly tries: Array<[string, number]>;
      /** The next tries' results, by probe command. */
      readonly script: Map<string, Array<ProbeOutcome['result']>>;
    }

    function harness(): Harness {
      const clock = new FakeClock(0);
      const changes: Harness['changes'] = [];
      const tries: Harness['tries'] = [];
      const script = new Map<string, Array<ProbeOutcome['result']>>();
      const manager = new ProbeManager({
        runtime: new FakeCri(),
        clock,
        onChange: (_id, kind, result) => changes.push([kind, result, clock.now()]),
        runProbe: async (probe: Probe) => {
          const name = probe.exec?.command?.[0] ?? '';
          tries.push([name, clock.now()]);
          const result = script.get(name)?.shift() ?? 'success';
          return { result, message: result };
        },
      });
      return { clock, manager, changes, tries, script };
    }

    const exec = (name: string, extra: Partial<Probe> = {}): Probe => ({ exec: { command: [name] }, periodSeconds: 10, ...extra });

    it('first try after initialDelaySeconds from the container start, then every periodSeconds', async () => {
      const { clock, manager, tries } = harness();
      manager.sync([{ id: 'c1', spec: { name: 'app', readinessProbe: exec('ready', { initialDelaySeconds: 5 }) }, startedAtMs: 0 }], '10.0.0.1');
      await clock.advance(4_999);
      expect(tries).to.deep.equal([]);
      await clock.advance(25_001);
      expect(tries).to.deep.equal([
        ['ready', 5_000],
        ['ready', 15_000],
        ['ready', 25_000],
      ]);
      manager.stop();
    });

    it('reports failure only after failureThreshold failures in a row, success after successThreshold', async () => {
      const { clock, manager, changes, script } = harness();
      script.set('ready', ['success', 'success', 'failure', 'failure', 'success', 'failure', 'failure', 'failure']);
      manager.sync([{ id: 'c1', spec: { name: 'app', readinessProbe: exec('ready', { successThreshold: 2, failureThreshold: 3 }) }, startedAtMs: 0 }], '10.0.0.1');
      await clock.advance(80_000);
      expect(changes).to.deep.equal([
        ['readiness', 'success', 10_000],
        ['readiness', 'failure', 70_000],
      ]);
      expect(manager.snapshot().get('c1')).to.deep.equal({ readiness: 'failure' });
      manager.stop();
    });

    it('liveness waits for the startup probe; a liveness failure goes quiet until the container is replaced', async () => {
      const { clock, manager, changes, tries, script } = harness();
      script.set('started', ['failure', 'success']);
      script.set('alive', ['failure']);
      const spec: Container = { name: 'app', startupProbe: exec('started', { failureThreshold: 5 }), livenessProbe: exec('alive', { failureThreshold: 1 }) };
      manager.sync([{ id: 'c1', spec, startedAtMs: 0 }], '10.0.0.1');
      await clock.advance(50_000);
      expect(changes).to.deep.equal([
        ['startup', 'success', 10_000],
        ['liveness', 'failure', 10_000],
      ]);
      // Startup stopped after its success, liveness stopped after its failure.
      expect(tries.filter(([name]) => name === 'started')).to.have.length(2);
      expect(tries.filter(([name]) => name === 'alive')).to.have.length(1);
      // The replacement instance starts over.
      manager.sync([{ id: 'c2', spec, startedAtMs: 50_000 }], '10.0.0.1');
      expect(manager.snapshot().has('c1')).to.equal(false);
      await clock.advance(1);
      expect(manager.snapshot().get('c2')).to.deep.equal({ startup: 'success', liveness: 'success' });
      manager.stop();
      expect(clock.pendingTimers).to.equal(0);
    });

    it('a try that could not run counts neither way', async () => {
      const { clock, manager, changes, script } = harness();
      script.set('alive', ['failure', 'unknown', 'failure']);
      manager.sync([{ id: 'c1', spec: { name: 'app', livenessProbe: exec('alive', { failureThreshold: 2 }) }, startedAtMs: 0 }], '10.0.0.1');
      await clock.advance(15_000);
      expect(changes).to.deep.equal([]);
      await clock.advance(10_000);
      expect(changes).to.deep.equal([['liveness', 'failure', 20_000]]);
      manager.stop();
    });
  });
});
