// A one-member replicated store in this process, on a temporary directory:
// real Raft, real LevelDB with fsync, no network peers. For tests of what
// sits on the store (the API server).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ReplicatedStore, parseInitialCluster } from '../../services/store/index.js';
import { waitFor } from '../../services/launcher/local-cluster.js';

export async function openSingleStore(): Promise<{ store: ReplicatedStore; close: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mast-single-store-'));
  const peerUrl = 'http://127.0.0.1:1';
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const store = await ReplicatedStore.open({
    name: 'solo',
    dataDir,
    peerUrls: [peerUrl],
    clientUrls: [],
    initialCluster: parseInitialCluster(`solo=${peerUrl}`, 'test'),
    initialClusterState: 'new',
    clusterToken: 'test',
    heartbeatIntervalMs: 20,
    electionTimeoutMs: 100,
    snapshotCount: 10_000,
    snapshotCatchUpEntries: 1000,
    requestTimeoutMs: 5000,
    maxRequestBytes: 1.5 * 1024 * 1024,
    peerCredentials: grpc.credentials.createInsecure(),
    logger: quiet,
    onFatal: (error) => {
      throw error;
    },
  });
  store.start();
  await waitFor('the single member to lead', async () => (store.raftStatus().role === 'leader' ? true : undefined), 10_000, 10);
  return {
    store,
    close: async () => {
      await store.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
