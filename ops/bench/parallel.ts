// A bounded fan-out the benchmarks share for setting up their objects.

/** run(0) .. run(count - 1), at most `concurrency` at a time. */
export async function inParallel(count: number, concurrency: number, run: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let index = next++; index < count; index = next++) await run(index);
    }),
  );
}
