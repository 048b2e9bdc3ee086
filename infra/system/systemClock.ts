import type { Clock } from '../../domain/ports/clock';

/** Wall-clock time and real timers, for production and for tests that run real components. */
export class SystemClock implements Clock {
  now(): Date {
    return new Date();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
  }
}

export const systemClock: Clock = new SystemClock();
