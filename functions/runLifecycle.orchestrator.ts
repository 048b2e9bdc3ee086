import * as df from 'durable-functions';
import type { OrchestrationContext, Task, TimerTask } from 'durable-functions';
import { CANCEL_EVENT, RUN_ACTIVITY, RUN_LIFECYCLE } from './runLifecycle.names';

/**
 * The run lifecycle (DESIGN.md §4): seed → install → mcp → turn 1..n, then teardown whatever happened, then
 * finish. Deterministic: it only yields durable tasks (no I/O, clock, random or env; a test reads this file).
 * Its input is the run id and workspace id; activities read the spec and resolve credentials themselves, so
 * no value ever enters Durable history.
 */
export interface RunLifecycleInput {
  readonly workspaceId: string;
  readonly runId: string;
}

type Interruption = 'cancelled' | 'deadline exceeded';

interface StepOutcome {
  readonly ok: boolean;
  readonly deadline?: string;
  readonly turns?: number;
}

interface Raced {
  readonly outcome?: StepOutcome;
  readonly interrupted?: Interruption;
}

/** Only steps that are safe to repeat are retried: interrupting, tearing down and finishing. */
const idempotentRetry = new df.RetryOptions(1000, 3);

/**
 * Races one step against a `cancel` event and the deadline timer. Each race waits on a fresh event task:
 * durable-functions hands a raised event to the most recent waiter, which is this step's.
 */
function* raced(context: OrchestrationContext, step: Task, deadline: Date | undefined): Generator<Task, Raced, unknown> {
  const cancel = context.df.waitForExternalEvent(CANCEL_EVENT);
  const timer: TimerTask | undefined = deadline ? context.df.createTimer(deadline) : undefined;
  const winner = yield context.df.Task.any(timer ? [step, cancel, timer] : [step, cancel]);
  if (winner === step) {
    timer?.cancel();
    return { outcome: step.isFaulted ? { ok: false } : (step.result as StepOutcome) };
  }
  if (winner === cancel) {
    timer?.cancel();
    return { interrupted: 'cancelled' };
  }
  return { interrupted: 'deadline exceeded' };
}

function* phases(context: OrchestrationContext, input: RunLifecycleInput): Generator<Task, Interruption | undefined, unknown> {
  const seeded = yield* raced(context, context.df.callActivity(RUN_ACTIVITY.seed, input), undefined);
  if (seeded.interrupted !== undefined || seeded.outcome?.ok !== true || seeded.outcome.deadline === undefined) return seeded.interrupted;
  const deadline = new Date(seeded.outcome.deadline);
  const steps: { name: string; input: RunLifecycleInput & { turn?: number } }[] = [
    { name: RUN_ACTIVITY.install, input },
    { name: RUN_ACTIVITY.mcp, input },
  ];
  for (let turn = 1; turn <= (seeded.outcome.turns ?? 0); turn++) steps.push({ name: RUN_ACTIVITY.turn, input: { ...input, turn } });
  for (const step of steps) {
    const result = yield* raced(context, context.df.callActivity(step.name, step.input), deadline);
    if (result.interrupted !== undefined || result.outcome?.ok !== true) return result.interrupted;
  }
  return undefined;
}

export function* runLifecycle(context: OrchestrationContext): Generator<Task, unknown, unknown> {
  const input = context.df.getInput() as RunLifecycleInput;
  let interrupted: Interruption | undefined;
  try {
    interrupted = yield* phases(context, input);
  } catch {
    // An activity failed outright (after its own handling): teardown fails the phase it left running.
  } finally {
    if (interrupted !== undefined) yield context.df.callActivityWithRetry(RUN_ACTIVITY.interrupt, idempotentRetry, { ...input, reason: interrupted });
    yield context.df.callActivityWithRetry(RUN_ACTIVITY.teardown, idempotentRetry, input);
  }
  return yield context.df.callActivityWithRetry(RUN_ACTIVITY.finish, idempotentRetry, input);
}

df.app.orchestration(RUN_LIFECYCLE, runLifecycle);
