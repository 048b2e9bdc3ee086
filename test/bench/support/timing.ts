import { performance } from 'node:perf_hooks';

const gc = (globalThis as { gc?: () => void }).gc;

/** A full collection between measurements, when `npm run bench` exposed it, so one run's garbage is not the next one's pause. */
export function collectGarbage(): void {
  gc?.();
}

export interface Timed<T> {
  /** Wall-clock seconds of the fastest run. */
  readonly seconds: number;
  /** CPU seconds (user + system, all threads) of that run. */
  readonly cpuSeconds: number;
  readonly result: T;
}

/**
 * Best of `runs` (the machine is shared, so the fastest run is the one least disturbed by others). Wall
 * clock, since that is what a caller waits for; CPU time is kept beside it.
 */
export function bestOf<T>(runs: number, fn: () => T): Timed<T> {
  let best: Timed<T> | undefined;
  for (let i = 0; i < runs; i++) {
    collectGarbage();
    const cpu = process.cpuUsage();
    const start = performance.now();
    const result = fn();
    const seconds = (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpu);
    if (!best || seconds < best.seconds) best = { seconds, cpuSeconds: (used.user + used.system) / 1e6, result };
  }
  return best!;
}

/** The q-quantile (0..1) of samples, nearest rank. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export async function timeMs<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const start = performance.now();
  const result = await fn();
  return { ms: performance.now() - start, result };
}

/**
 * `writers` loops call `op` until `seconds` have passed; returns completed operations per second. Each
 * writer gets its index, so it can pick its own workspace or stream.
 */
export async function throughput(
  writers: number,
  seconds: number,
  op: (writer: number, n: number) => Promise<void>,
): Promise<{ perSecond: number; count: number; latenciesMs: number[] }> {
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const latenciesMs: number[] = [];
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let n = 0; performance.now() < deadline; n++) {
        const t = performance.now();
        await op(w, n);
        latenciesMs.push(performance.now() - t);
      }
    }),
  );
  return { perSecond: latenciesMs.length / ((performance.now() - start) / 1000), count: latenciesMs.length, latenciesMs };
}
