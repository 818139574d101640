import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as agent from '../../proto/gen/agent.js';
import { startAgentServer, type AgentServer, type ContainerAttempt } from '../../services/agent/agent-server.js';
import { CriLogParser, formatRecords, selectRecords, timestampMs } from '../../services/agent/cri-log.js';

describe('CRI log files', function () {
  it('joins partial chunks per stream, keeps interleaved streams apart and reads any chunking', function () {
    const text = [
      '2026-11-26T00:00:01.000000001Z stdout P hel',
      '2026-11-26T00:00:01.500000000Z stderr F oops',
      '2026-11-26T00:00:02.000000000Z stdout F lo',
      '2026-11-26T00:00:03.000000000Z stdout F ',
      'not a cri line',
      '',
    ].join('\n');
    for (const size of [1, 7, text.length]) {
      const parser = new CriLogParser();
      const records = [];
      for (let at = 0; at < text.length; at += size) records.push(...parser.push(text.slice(at, at + size)));
      expect(records.map((record) => `${record.stream}:${record.text}`), `chunks of ${size}`).to.deep.equal(['stderr:oops', 'stdout:hello', 'stdout:', 'stdout:not a cri line']);
      expect(records[1]!.timestamp).to.equal('2026-11-26T00:00:01.000000001Z');
    }
  });

  it('selects by since then tail, and prints timestamps as kubectl does', function () {
    const parser = new CriLogParser();
    const records = parser.push(['2026-11-26T00:00:01.000000000Z stdout F a', '2026-11-26T00:00:02.000000000Z stdout F b', '2026-11-26T00:00:03.000000000Z stdout F c', ''].join('\n'));
    expect(formatRecords(selectRecords(records, { tailLines: 2 }), false)).to.equal('b\nc\n');
    expect(formatRecords(selectRecords(records, { sinceMs: timestampMs('2026-11-26T00:00:02Z') }), false)).to.equal('b\nc\n');
    expect(formatRecords(selectRecords(records, { tailLines: 0 }), false)).to.equal('');
    expect(formatRecords(selectRecords(records, { tailLines: 1 }), true)).to.equal('2026-11-26T00:00:03.000000000Z c\n');
  });
});

describe('agent server (NodeAgent)', function () {
  this.timeout(30_000);
  let dir: string;
  let server: AgentServer | undefined;
  let client: agent.NodeAgentClient | undefined;
  let attempts: ContainerAttempt[];
  let running: boolean;
  const execs: Array<{ id: string; command: readonly string[]; timeout: number }> = [];

  beforeEach(async function () {
    dir = mkdtempSync(join(tmpdir(), 'mast-agent-server-'));
    running = true;
    writeFileSync(join(dir, '0.log'), '2026-11-26T00:00:01.000000000Z stdout F first attempt\n');
    writeFileSync(join(dir, '1.log'), '2026-11-26T00:00:02.000000000Z stdout F one\n2026-11-26T00:00:03.000000000Z stderr F two\n');
    attempts = [
      { id: 'c0', attempt: 0, running: false, logPath: join(dir, '0.log') },
      { id: 'c1', attempt: 1, running: true, logPath: join(dir, '1.log') },
    ];
    server = await startAgentServer({
      address: '127.0.0.1:0',
      containers: {
        attempts: async (uid, container) => (uid === 'uid-1' && container === 'app' ? attempts.map((attempt) => ({ ...attempt, running: attempt.id === 'c1' ? running : false })) : []),
        running: async (id) => id === 'c1' && running,
        execSync: async (id, command, timeout) => {
          execs.push({ id, command, timeout });
          return { stdout: Buffer.from(`ran ${command.join(' ')}\n`), stderr: Buffer.from('warn\n'), exitCode: 3 };
        },
      },
    });
    client = new agent.NodeAgentClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  });

  afterEach(async function () {
    client?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const logs = (request: Partial<agent.ContainerLogsRequest>, onChunk?: (text: string) => void): Promise<string> =>
    new Promise((resolve, reject) => {
      let text = '';
      const stream = client!.containerLogs(agent.ContainerLogsRequest.fromPartial({ podUid: 'uid-1', podNamespace: 'default', podName: 'web', container: 'app', ...request }));
      stream.on('data', (chunk: agent.LogChunk) => {
        text += Buffer.from(chunk.data).toString();
        onChunk?.(text);
      });
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
    });

  it('serves the latest attempt, the previous one, tail, timestamps and a byte limit', async function () {
    expect(await logs({})).to.equal('one\ntwo\n');
    expect(await logs({ previous: true })).to.equal('first attempt\n');
    expect(await logs({ tailLines: 1, timestamps: true })).to.equal('2026-11-26T00:00:03.000000000Z two\n');
    expect(await logs({ limitBytes: 5 })).to.equal('one\nt');
  });

  it('follows a growing log until the container stops writing', async function () {
    let appended = false;
    const text = await logs({ follow: true }, (sofar) => {
      if (!appended && sofar === 'one\ntwo\n') {
        appended = true;
        appendFileSync(join(dir, '1.log'), '2026-11-26T00:00:04.000000000Z stdout P thr\n2026-11-26T00:00:04.100000000Z stdout F ee\n');
      }
      if (sofar.endsWith('three\n')) running = false;
    });
    expect(text).to.equal('one\ntwo\nthree\n');
  });

  it('names what is missing: an unknown pod, no previous attempt', async function () {
    const unknown = await logs({ podUid: 'uid-2' }).then(() => undefined, (error: grpc.ServiceError) => error);
    expect(unknown?.code).to.equal(grpc.status.NOT_FOUND);
    expect(unknown?.details).to.equal('container "app" in pod default/web is waiting to start (no container in the runtime yet)');
    attempts = attempts.slice(1);
    const previous = await logs({ previous: true }).then(() => undefined, (error: grpc.ServiceError) => error);
    expect(previous?.details).to.equal('previous terminated container "app" in pod default/web not found');
  });

  it('runs ExecSync in the running attempt and refuses a stopped container', async function () {
    const exec = (request: Partial<agent.ExecSyncRequest>): Promise<agent.ExecSyncResponse> =>
      new Promise((resolve, reject) => client!.execSync(agent.ExecSyncRequest.fromPartial({ podUid: 'uid-1', podNamespace: 'default', podName: 'web', container: 'app', ...request }), (error, response) => (error === null ? resolve(response) : reject(error))));
    const response = await exec({ command: ['ls', '/'], timeoutSeconds: 5 });
    expect(Buffer.from(response.stdout).toString()).to.equal('ran ls /\n');
    expect(Buffer.from(response.stderr).toString()).to.equal('warn\n');
    expect(response.exitCode).to.equal(3);
    expect(execs.at(-1)).to.deep.equal({ id: 'c1', command: ['ls', '/'], timeout: 5 });
    running = false;
    const refused = await exec({ command: ['true'] }).then(() => undefined, (error: grpc.ServiceError) => error);
    expect(refused?.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(refused?.details).to.equal('container "app" in pod default/web is not running');
    const empty = await exec({ command: [] }).then(() => undefined, (error: grpc.ServiceError) => error);
    expect(empty?.code).to.equal(grpc.status.INVALID_ARGUMENT);
  });
});
