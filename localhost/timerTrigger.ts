import { CronExpressionParser } from 'cron-parser';
import type { FunctionRegistration } from './coreApi';
import type { HostLogger } from './hostExtension';
import { parseTimeSpan } from './hostJson';
import type { Invoker } from './invoker';
import { LocalHostConfigError } from './problems';
import { resolveSettingReferences } from './settings';

/** Next occurrence strictly after `after`; NCRONTAB (six fields, seconds first) in UTC, or a TimeSpan interval. */
export type Schedule = (after: Date) => Date;

export function parseSchedule(expression: string): Schedule {
  const interval = parseTimeSpan(expression);
  if (interval !== undefined) {
    if (interval <= 0) throw new LocalHostConfigError(`Timer schedule "${expression}" must be a positive interval.`);
    return (after) => new Date(after.getTime() + interval);
  }
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 6)
    throw new LocalHostConfigError(`Timer schedule "${expression}" must be an NCRONTAB expression with six fields ({second} {minute} {hour} {day} {month} {day-of-week}).`);
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
  } catch (error) {
    throw new LocalHostConfigError(`Timer schedule "${expression}" is invalid: ${error instanceof Error ? error.message : String(error)}.`);
  }
  return (after) => CronExpressionParser.parse(expression, { tz: 'UTC', currentDate: after }).next().toDate();
}

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface TimerFunction {
  readonly functionName: string;
  readonly expression: string;
  readonly schedule: Schedule;
  readonly runOnStartup: boolean;
}

export function timerFunctions(functions: Iterable<FunctionRegistration>, settings: Readonly<Record<string, string>>): TimerFunction[] {
  const out: TimerFunction[] = [];
  for (const fn of functions) {
    const trigger = Object.values(fn.bindings).find((b) => b.direction === 'in' && b.type.toLowerCase() === 'timertrigger');
    if (!trigger) continue;
    if (typeof trigger.schedule !== 'string') throw new LocalHostConfigError(`Timer function ${fn.name} has no schedule.`);
    const expression = resolveSettingReferences(trigger.schedule, settings);
    out.push({ functionName: fn.name, expression, schedule: parseSchedule(expression), runOnStartup: trigger.runOnStartup === true });
  }
  return out;
}

/**
 * Fires each timer function at its occurrences. Like the real host, one timer function never overlaps
 * itself: an occurrence that passes while an invocation still runs is skipped, and the next invocation
 * says it is past due.
 */
export class TimerScheduler {
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;
  readonly #running = new Set<Promise<void>>();

  constructor(
    private readonly functions: readonly TimerFunction[],
    private readonly invoker: Invoker,
    private readonly log: HostLogger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  start(): void {
    for (const timer of this.functions) {
      let last: Date | undefined;
      const fire = async (scheduledFor: Date): Promise<void> => {
        const firedAt = this.now();
        // The occurrence after this one, even when the timer fired a millisecond before it was due.
        const next = timer.schedule(firedAt > scheduledFor ? firedAt : scheduledFor);
        const status = {
          Schedule: { AdjustForDST: false },
          ScheduleStatus: {
            Last: (last ?? scheduledFor).toISOString(),
            Next: next.toISOString(),
            LastUpdated: firedAt.toISOString(),
          },
          // Past due when this occurrence was missed by more than the schedule's own granularity allows.
          IsPastDue: firedAt.getTime() - scheduledFor.getTime() > 1000,
        };
        last = scheduledFor;
        try {
          await this.invoker.invoke(timer.functionName, { json: JSON.stringify(status) });
        } catch (error) {
          this.log.error(`[${timer.functionName}] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        }
      };
      const arm = (): void => {
        if (this.#stopped) return;
        // A timer may fire a millisecond early; never schedule the same occurrence twice.
        const now = this.now();
        const due = timer.schedule(last && last > now ? last : now);
        this.#at(due, () => {
          this.#track(fire(due)).finally(arm);
        });
      };
      if (timer.runOnStartup) this.#track(fire(this.now())).finally(arm);
      else arm();
    }
  }

  /** setTimeout caps delays at about 24.8 days; a yearly schedule waits in steps. */
  #at(due: Date, action: () => void): void {
    if (this.#stopped) return;
    const wait = due.getTime() - this.now().getTime();
    const handle = setTimeout(() => {
      this.#timers.delete(handle);
      if (wait > MAX_TIMEOUT_MS) this.#at(due, action);
      else action();
    }, Math.max(0, Math.min(wait, MAX_TIMEOUT_MS)));
    this.#timers.add(handle);
  }

  #track(p: Promise<void>): Promise<void> {
    this.#running.add(p);
    return p.finally(() => this.#running.delete(p));
  }

  /** Stops scheduling and waits for invocations in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#running]);
  }
}
