// A client that keeps writing distinct keys through any member (moving on
// when one is down) and records exactly what was acknowledged, for the tests
// that kill masters and then look for every acknowledged write.

import { isRetriable, type EtcdClient, type EtcdConnection } from '../../services/client/etcd.js';
import { waitFor } from '../../services/launcher/local-cluster.js';

export interface AckedWriter {
  /** Acknowledged writes so far (key → value); complete once `stop` resolves. */
  readonly acked: ReadonlyMap<string, string>;
  stop(): Promise<ReadonlyMap<string, string>>;
}

export function startAckedWriter(client: EtcdClient, prefix: string): AckedWriter {
  const acked = new Map<string, string>();
  let running = true;
  let sequence = 0;
  const loop = (async () => {
    while (running) {
      const key = `${prefix}/${String(sequence).padStart(7, '0')}`;
      const value = `v${sequence++}`;
      try {
        await client.withFailover((connection) => connection.put(key, value), Date.now() + 30_000);
        acked.set(key, value);
      } catch (error) {
        if (!isRetriable(error)) throw error;
      }
    }
  })();
  return {
    acked,
    async stop() {
      running = false;
      await loop;
      return acked;
    },
  };
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString();

/** The acknowledged writes under `prefix` that this member does not hold (read locally, serializable). */
export async function missingWrites(connection: EtcdConnection, prefix: string, acked: ReadonlyMap<string, string>): Promise<string[]> {
  const response = await connection.range({ key: `${prefix}/`, rangeEnd: Buffer.from(`${prefix}0`), serializable: true });
  const found = new Map(response.kvs.map((kv) => [text(kv.key), text(kv.value)]));
  return [...acked].filter(([key, value]) => found.get(key) !== value).map(([key]) => key);
}

/** What the member still misses after it had `timeoutMs` to catch up (empty once it holds everything). */
export async function missingAfterCatchUp(connection: EtcdConnection, prefix: string, acked: ReadonlyMap<string, string>, timeoutMs = 60_000): Promise<string[]> {
  try {
    await waitFor(`${connection.endpoint} to hold every acknowledged write`, async () => ((await missingWrites(connection, prefix, acked)).length === 0 ? true : undefined), timeoutMs, 200);
    return [];
  } catch {
    return missingWrites(connection, prefix, acked);
  }
}
