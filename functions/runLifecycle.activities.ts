import * as df from 'durable-functions';
import { z } from 'zod';
import type { RunRuntime } from '../domain/services/runContext';
import { install, mcp, seed, turn } from '../domain/services/runSteps';
import { finish, interrupt, teardown } from '../domain/services/runTeardown';
import { getRunRuntime } from './composition';
import { RUN_ACTIVITY } from './runLifecycle.names';

const runInput = z.object({ workspaceId: z.uuid(), runId: z.uuid() });
const turnInput = runInput.extend({ turn: z.number().int().min(1) });
const interruptInput = runInput.extend({ reason: z.enum(['cancelled', 'deadline exceeded']) });

/**
 * Activities return names, ids, counts and redacted reasons only. An unexpected error is rethrown as its
 * class and code, never its message: an SDK error's message may quote a request body, and so a value.
 */
export function activityHandler<I, O>(
  name: string,
  schema: z.ZodType<I>,
  body: (runtime: RunRuntime, input: I) => Promise<O>,
  runtime: () => Promise<RunRuntime> = getRunRuntime,
): (raw: unknown) => Promise<O> {
  return async (raw) => {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new Error(`${name}: invalid input`);
    try {
      return await body(await runtime(), parsed.data);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new Error(`${name} failed: ${error instanceof Error && /^[A-Za-z]{1,40}$/.test(error.name) ? error.name : 'Error'}${typeof code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? ` (${code})` : ''}`);
    }
  };
}

function activity<I, O>(name: string, schema: z.ZodType<I>, body: (runtime: RunRuntime, input: I) => Promise<O>): void {
  df.app.activity(name, { handler: activityHandler(name, schema, body) });
}

activity(RUN_ACTIVITY.seed, runInput, (runtime, i) => seed(runtime, i.workspaceId, i.runId));
activity(RUN_ACTIVITY.install, runInput, (runtime, i) => install(runtime, i.workspaceId, i.runId));
activity(RUN_ACTIVITY.mcp, runInput, (runtime, i) => mcp(runtime, i.workspaceId, i.runId));
activity(RUN_ACTIVITY.turn, turnInput, (runtime, i) => turn(runtime, i.workspaceId, i.runId, i.turn));
activity(RUN_ACTIVITY.interrupt, interruptInput, (runtime, i) => interrupt(runtime, i.workspaceId, i.runId, i.reason));
activity(RUN_ACTIVITY.teardown, runInput, (runtime, i) => teardown(runtime, i.workspaceId, i.runId));
activity(RUN_ACTIVITY.finish, runInput, (runtime, i) => finish(runtime, i.workspaceId, i.runId));
