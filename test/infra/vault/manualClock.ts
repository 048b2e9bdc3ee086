import type { Clock } from '../../../domain/ports/clock';

/** A clock the test moves; shared by an adapter and the fake service behind it, so both agree on "now". */
export class ManualClock implements Clock {
  private current: number;

  constructor(start = new Date('2030-01-01T00:00:00.000Z')) {
    this.current = start.getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  advance(ms: number): void {
    this.current += ms;
  }

  async sleep(ms: number): Promise<void> {
    // Real waiting is never needed in these tests; yielding keeps retry loops fair.
    this.current += ms;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export const DAY_MS = 24 * 60 * 60 * 1000;
