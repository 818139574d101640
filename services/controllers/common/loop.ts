// What the controllers' loops (not their pure plans) share: error
// reporting, requeue limits, and listing straight from the API server.

import type * as grpc from '@grpc/grpc-js';
import { LIST_PAGE_SIZE } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import type { InformerView } from '../../client/shared-informers.js';
import { runWorkers, type WorkQueue } from '../../client/workqueue.js';

/** A far deadline is waited for in steps: timers overflow past 2^31 ms. */
export const MAX_REQUEUE_DELAY_MS = 24 * 60 * 60_000;

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whether a call failed with this gRPC status. */
export function isCode(error: unknown, code: grpc.status): boolean {
  return statusCodeOf(error) === code;
}

/** Every object of `kind` in `namespace`, straight from the API server, page by page (as the informers list). */
export async function listAll(client: ResourceClient, kind: string, namespace: string): Promise<KubeObject[]> {
  const objects: KubeObject[] = [];
  let continueToken = '';
  do {
    const page = await client.list(kind, { namespace, limit: LIST_PAGE_SIZE, continue: continueToken });
    objects.push(...page.items);
    continueToken = page.continue;
  } while (continueToken !== '');
  return objects;
}

/** What a controller's loop runs on: its own informers, the shared ones it also waits for, its queue and its sync. */
export interface LoopParts {
  readonly signal: AbortSignal;
  readonly queue: WorkQueue<string>;
  /** The controller's own informers (or views): started here, stopped when the signal aborts. */
  readonly own: readonly InformerView[];
  /** Informers started by someone else that must have synced before the first sync (the shared pod informer). */
  readonly shared?: readonly InformerView[];
  readonly workers: number;
  /** "Deployment", ...: prefixes sync errors in the log. */
  readonly name: string;
  readonly sync: (key: string) => Promise<void>;
  readonly log?: (line: string) => void;
}

/**
 * The tail of every controller's run(), after its event handlers are
 * registered: start its informers, stop them and the queue when the
 * leadership ends, wait for every cache, then run the workers until then.
 */
export async function runLoop(parts: LoopParts): Promise<void> {
  for (const informer of parts.own) informer.start();
  parts.signal.addEventListener('abort', () => {
    parts.queue.shutDown();
    for (const informer of parts.own) informer.stop();
  }, { once: true });
  await Promise.all([...parts.own, ...(parts.shared ?? [])].map((informer) => informer.waitForSync()));
  await runWorkers(parts.queue, parts.workers, parts.sync, (key, error) => parts.log?.(`${parts.name} ${key}: ${messageOf(error)}`));
}
