// Resource amounts as the scheduler counts them: cpu in integer millicores,
// everything else in integer base units (bytes for memory), read exactly by
// services/client/quantity.ts. Pure: this folder is inside the lint's
// determinism boundary.

import { parseQuantity, type QuantityScale } from '../../client/quantity.js';

const CACHE_LIMIT = 4096;
const cache = new Map<string, number | null>();

/**
 * The amount of one resource as the scheduler counts it: cpu in millicores,
 * anything else in base units. Memoised (the same few strings recur across
 * thousands of pods): a deterministic cache, emptied when it grows past
 * CACHE_LIMIT entries.
 */
export function resourceAmount(resource: string, text: string | number): number | undefined {
  const scale: QuantityScale = resource === 'cpu' ? 'milli' : 'unit';
  const key = `${scale}:${String(text)}`;
  const known = cache.get(key);
  if (known !== undefined) return known ?? undefined;
  const value = parseQuantity(text, scale);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value ?? null);
  return value;
}
