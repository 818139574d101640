// What the controllers' loops (not their pure plans) share: error
// reporting, requeue limits, and listing straight from the API server.

import type * as grpc from '@grpc/grpc-js';
import { LIST_PAGE_SIZE } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';

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
