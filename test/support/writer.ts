// A client that keeps writing distinct keys through any member (moving on
// when one is down) and records exactly what was acknowledged, for the tests
// that kill masters and then look for every acknowledged write.

import { isRetriable, type EtcdClient } from '../../services/client/etcd.js';

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
