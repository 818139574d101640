// A small seeded PRNG (mulberry32): 32-bit integer math only, so a seed gives
// the same sequence on every machine. It also serves as the core's Rng.

import type { Rng } from '../../raft/core/index.js';

export class Prng implements Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  nextInt(maxExclusive: number): number {
    if (maxExclusive <= 1) return 0;
    return this.next32() % maxExclusive;
  }

  /** An integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.nextInt(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.next32() < probability * 0x1_0000_0000;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.nextInt(items.length)]!;
  }

  /** A new independent generator derived from this one. */
  fork(): Prng {
    return new Prng(this.next32() ^ 0x9e3779b9);
  }
}
