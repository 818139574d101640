// Time for the pod worker and its probes, injected so tests drive it by hand
// (a fake clock fires timers when the test advances it; nothing really waits).

export interface WorkerClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Run callback once after delayMs; answers a function that cancels it. */
  setTimer(callback: () => void, delayMs: number): () => void;
}

export const systemClock: WorkerClock = {
  now: () => Date.now(),
  setTimer: (callback, delayMs) => {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    // A pending re-sync or probe never keeps the process alive by itself.
    timer.unref();
    return () => clearTimeout(timer);
  },
};
