/** A counting semaphore: bounds how many activities or episodes run at once. */
export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  get free(): number {
    return Math.max(0, this.limit - this.active);
  }

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.active--;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/** Runs functions one after another per key (orchestrator episodes are serialised per instance). */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Resolves when everything queued so far has finished. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}

/** Polls a queue: waits `min`..`max` ms between empty receives, or less when nudged. */
export class Poller {
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private delay: number;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly tick: () => Promise<number>, private readonly min = 25, private readonly max = 500, private readonly onError: (e: unknown) => void = () => undefined) {
    this.delay = min;
  }

  start(): void {
    this.loop = this.run();
  }

  nudge(): void {
    this.delay = this.min;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let handled = 0;
      try {
        handled = await this.tick();
      } catch (error) {
        this.onError(error);
      }
      if (this.stopped) break;
      this.delay = handled > 0 ? this.min : Math.min(this.max, this.delay * 2);
      if (handled > 0) continue;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.delay);
      });
      if (this.timer) clearTimeout(this.timer);
      this.wake = undefined;
    }
  }
}
