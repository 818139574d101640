// Runs `mast agent` processes on this machine, for tests, benchmarks and
// `mast up`: one per node, logging to a file of its own, stopped with a
// signal (the agent leaves its pods running, as a kubelet restart does).

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { MAST_BINARY } from './local-cluster.js';

export interface LocalAgentOptions {
  readonly nodeName: string;
  /** The masters' client URLs. */
  readonly masters: readonly string[];
  /** The agent's --root-dir; its log goes to ROOT/agent.log. */
  readonly rootDir: string;
  /** unix:///path of a CRI runtime; absent: the embedded runtime. */
  readonly runtimeEndpoint?: string;
  readonly podCidr?: string;
  /**
   * Further flags (e.g. --node-labels, --crash-loop-backoff-initial). Without
   * a --proxy-mode among them the agent runs no Service proxy or DNS server:
   * several agents on one host would contend for the same addresses.
   */
  readonly flags?: readonly string[];
  /** Flags for node itself (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
}

export class LocalAgent {
  private exited: Promise<number | null>;

  private constructor(
    readonly options: LocalAgentOptions,
    readonly process: ChildProcess,
    private readonly log: WriteStream,
  ) {
    this.exited = new Promise((resolve) => process.once('exit', (code) => resolve(code)));
  }

  get logFile(): string {
    return join(this.options.rootDir, 'agent.log');
  }

  static start(options: LocalAgentOptions): LocalAgent {
    mkdirSync(options.rootDir, { recursive: true });
    const log = createWriteStream(join(options.rootDir, 'agent.log'), { flags: 'a' });
    const args = [
      ...(options.nodeArgs ?? []),
      MAST_BINARY,
      'agent',
      '--server',
      options.masters.join(','),
      '--node-name',
      options.nodeName,
      '--root-dir',
      options.rootDir,
      '--node-ip',
      '127.0.0.1',
      '--listen-address',
      '127.0.0.1:0',
      ...(options.runtimeEndpoint === undefined ? [] : ['--container-runtime-endpoint', options.runtimeEndpoint]),
      ...(options.podCidr === undefined ? [] : ['--pod-cidr', options.podCidr]),
      ...((options.flags ?? []).some((flag) => flag === '--proxy-mode' || flag.startsWith('--proxy-mode=')) ? [] : ['--proxy-mode', 'none']),
      ...(options.flags ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    return new LocalAgent(options, child, log);
  }

  /** Stop the agent (SIGTERM: it leaves pods running; SIGKILL: a crash) and wait for it. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 10_000);
    const code = await this.exited;
    clearTimeout(timer);
    await new Promise<void>((resolve) => this.log.end(() => resolve()));
    return code;
  }
}
