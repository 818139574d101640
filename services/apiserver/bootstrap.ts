// What every cluster has from the start: the default namespaces. Each master
// tries at startup; creating is idempotent (AlreadyExists is success), and a
// master without a leader yet retries until it has one or stops.

import { StoreError } from '../store/index.js';
import { ApiError, type Registry } from './registry.js';

export function ensureNamespaces(registry: Registry, names: readonly string[], warn: (message: string) => void, retryMs = 500): void {
  const attempt = async (name: string): Promise<void> => {
    for (;;) {
      try {
        await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
        return;
      } catch (error) {
        if (error instanceof ApiError && error.reason === 'AlreadyExists') return;
        if (error instanceof StoreError && error.code === 'stopped') return;
        if (!(error instanceof StoreError)) {
          warn(`creating namespace ${name} failed: ${error instanceof Error ? error.message : String(error)}`);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, retryMs));
      }
    }
  };
  for (const name of names) void attempt(name);
}
