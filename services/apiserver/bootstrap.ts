// What every cluster has from the start: the default namespaces and the
// bootstrap RBAC policy (and where the master's own events go). Each master tries at startup; creating is
// idempotent (AlreadyExists is success), and a master without a leader yet
// retries until it has one or stops.

import { StoreError } from '../store/index.js';
import { ApiError, type Registry } from './registry.js';
import type { EventObject, EventSink } from '../client/events.js';

/** Create each object unless it exists (an existing one is left as it is: the cluster's admins may have changed it). */
export function ensureCreated(registry: Registry, objects: ReadonlyArray<{ readonly kind: string; readonly metadata: { readonly name: string } }>, warn: (message: string) => void, retryMs = 500): void {
  const attempt = async (object: (typeof objects)[number]): Promise<void> => {
    for (;;) {
      try {
        await registry.create(object.kind, structuredClone(object));
        return;
      } catch (error) {
        if (error instanceof ApiError && error.reason === 'AlreadyExists') return;
        if (error instanceof StoreError && error.code === 'stopped') return;
        if (!(error instanceof StoreError)) {
          warn(`creating ${object.kind} ${object.metadata.name} failed: ${error instanceof Error ? error.message : String(error)}`);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, retryMs));
      }
    }
  };
  for (const object of objects) void attempt(object);
}

export function ensureNamespaces(registry: Registry, names: readonly string[], warn: (message: string) => void, retryMs = 500): void {
  ensureCreated(registry, names.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })), warn, retryMs);
}

/** Events recorded by the master itself go straight to its registry. */
export function registryEventSink(registry: Registry): EventSink {
  return {
    create: (event) => registry.create('Event', event),
    update: (event) => registry.update('Event', event),
    get: async (namespace, name) => (await registry.get('Event', namespace, name)) as unknown as EventObject,
  };
}
