// The key-value workload of a chaos run: concurrent clients doing puts,
// compare-and-swap updates and linearizable gets on a few keys, each call
// recorded in the History; and watchers on the keys' prefix that resume from
// the last revision they saw when their stream ends.

import * as grpc from '@grpc/grpc-js';
import { EtcdConnection } from '../../services/client/etcd.js';
import { Compare, Compare_CompareResult, Compare_CompareTarget, PutRequest, type WatchResponse } from '../../proto/gen/client/etcd/rpc.js';
import { classifyError, History } from '../../test/chaos/chaos-history.js';
import type { WatchedEvent } from '../../test/chaos/chaos-checks.js';
import { Prng } from '../../test/simulation/prng.js';
import { prefixEnd } from '../../raft/kv/index.js';

/** A seeded generator in [0, 1) (the simulator's mulberry32): runs replay their choices from --seed. */
export function seededRandom(seed: number): () => number {
  const prng = new Prng(seed);
  return () => prng.next32() / 0x1_0000_0000;
}

export interface KvWorkloadOptions {
  readonly endpoints: readonly string[];
  readonly clients: number;
  readonly keys: number;
  readonly prefix: string;
  /** Unique per run: values are `${tag}-c<client>-<n>`. */
  readonly tag: string;
  readonly random: () => number;
  /** Per-call deadline. */
  readonly timeoutMs: number;
  /** Longest pause between one client's calls. */
  readonly thinkMs: number;
}

export class KvWorkload {
  readonly history = new History();
  private stopping = false;
  private loops: Array<Promise<void>> = [];
  private readonly connections: EtcdConnection[][] = [];

  constructor(private readonly options: KvWorkloadOptions) {}

  key(index: number): string {
    return `${this.options.prefix}k${index}`;
  }

  start(): void {
    for (let client = 0; client < this.options.clients; client++) {
      const connections = this.options.endpoints.map((endpoint) => new EtcdConnection(endpoint, grpc.credentials.createInsecure(), this.options.timeoutMs));
      this.connections.push(connections);
      this.loops.push(this.loop(client, connections));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    for (const connections of this.connections) for (const connection of connections) connection.close();
  }

  private async loop(client: number, connections: readonly EtcdConnection[]): Promise<void> {
    const { random } = this.options;
    const lastSeen = new Map<string, string | null>();
    let sequence = 0;
    while (!this.stopping) {
      const connection = connections[Math.floor(random() * connections.length)]!;
      const key = this.key(Math.floor(random() * this.options.keys));
      const roll = random();
      if (roll < 0.4) {
        const value = `${this.options.tag}-c${client}-${sequence++}`;
        const done = this.history.invoke(client, key, { kind: 'put', value });
        try {
          const response = await connection.put(key, value);
          done.ok({ revision: Number(response.header?.revision ?? 0) });
          lastSeen.set(key, value);
        } catch (error) {
          done.fail(classifyError(error));
        }
      } else if (roll < 0.7) {
        const value = `${this.options.tag}-c${client}-${sequence++}`;
        const expected = lastSeen.get(key) ?? null;
        const done = this.history.invoke(client, key, { kind: 'cas', expected, value });
        const compare =
          expected === null
            ? Compare.fromPartial({ result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VERSION, key: Buffer.from(key), targetUnion: { $case: 'version', value: '0' } })
            : Compare.fromPartial({ result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VALUE, key: Buffer.from(key), targetUnion: { $case: 'value', value: Buffer.from(expected) } });
        try {
          const response = await connection.txn({ compare: [compare], success: [{ request: { $case: 'requestPut', value: PutRequest.fromPartial({ key: Buffer.from(key), value: Buffer.from(value) }) } }] });
          done.ok({ succeeded: response.succeeded, revision: Number(response.header?.revision ?? 0) });
          if (response.succeeded) lastSeen.set(key, value);
        } catch (error) {
          done.fail(classifyError(error));
        }
      } else {
        const done = this.history.invoke(client, key, { kind: 'get' });
        try {
          const response = await connection.get(key);
          const kv = response.kvs[0];
          const value = kv === undefined ? null : Buffer.from(kv.value).toString();
          done.ok({ value });
          lastSeen.set(key, value);
        } catch (error) {
          done.fail(classifyError(error));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * this.options.thinkMs)));
    }
  }
}

/**
 * A watch on a prefix from a revision, moving to the next endpoint and
 * resuming after the last revision it saw whenever its stream ends. It
 * records events exactly as delivered (a duplicate or a gap is the server's).
 */
export class KvWatcher {
  readonly events: WatchedEvent[] = [];
  readonly problems: string[] = [];
  lastRevision: number;
  reconnects = 0;
  private stream: grpc.ClientDuplexStream<unknown, WatchResponse> | undefined;
  private connections: EtcdConnection[];
  private next: number;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    endpoints: readonly string[],
    private readonly prefix: string,
    startRevision: number,
    first = 0,
  ) {
    this.connections = endpoints.map((endpoint) => new EtcdConnection(endpoint));
    this.lastRevision = startRevision - 1;
    this.next = first;
  }

  start(): void {
    this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const connection = this.connections[this.next++ % this.connections.length]!;
    const stream = connection.watchStream();
    this.stream = stream as grpc.ClientDuplexStream<unknown, WatchResponse>;
    const again = (): void => {
      if (this.stopped || this.stream !== stream) return;
      this.stream = undefined;
      stream.cancel();
      this.reconnects++;
      this.timer = setTimeout(() => this.open(), 100);
    };
    stream.on('data', (response: WatchResponse) => {
      if (this.stopped || this.stream !== stream) return;
      if (response.compactRevision !== '' && response.compactRevision !== '0') {
        this.problems.push(`${this.name}: watch from ${this.lastRevision + 1} compacted (at ${response.compactRevision})`);
        again();
        return;
      }
      if (response.canceled) {
        again();
        return;
      }
      for (const event of response.events) {
        const kv = event.kv;
        if (kv === undefined) continue;
        const revision = Number(kv.modRevision);
        this.events.push({ key: Buffer.from(kv.key).toString(), value: event.type === 1 ? null : Buffer.from(kv.value).toString(), revision });
        this.lastRevision = Math.max(this.lastRevision, revision);
      }
    });
    stream.on('error', again);
    stream.on('end', again);
    stream.write({ requestUnion: { $case: 'createRequest', value: { key: Buffer.from(this.prefix), rangeEnd: Buffer.from(prefixEnd(Buffer.from(this.prefix))), startRevision: String(this.lastRevision + 1), progressNotify: false, filters: [], prevKv: false, watchId: '0', fragment: false } } });
  }

  /** Drop the current stream and resume on the next endpoint (one stuck on a master that is cut off). */
  nudge(): void {
    const stream = this.stream;
    if (stream === undefined) return;
    this.stream = undefined;
    stream.cancel();
    this.reconnects++;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.stream?.cancel();
    this.stream = undefined;
    for (const connection of this.connections) connection.close();
  }
}
