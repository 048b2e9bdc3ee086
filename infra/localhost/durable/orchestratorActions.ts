import { z } from 'zod';
import { HTTP_ACTIVITY } from './durableHttp';
import { schedulerId } from './entities';

/** ActionType numbers of durable-functions' actions (lib/src/actions/ActionType). */
export const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  CallSubOrchestratorWithRetry: 3,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
  CallEntity: 7,
  CallHttp: 8,
  SignalEntity: 9,
  WhenAny: 11,
  WhenAll: 12,
  LockEntities: 13,
  ReleaseEntities: 14,
} as const;

const retryOptionsSchema = z.object({
  firstRetryIntervalInMilliseconds: z.number().positive(),
  maxNumberOfAttempts: z.number().int(),
  backoffCoefficient: z.number().positive().optional(),
  maxRetryIntervalInMilliseconds: z.number().optional(),
  retryTimeoutInMilliseconds: z.number().optional(),
}).loose();
export type RetryOptions = z.infer<typeof retryOptionsSchema>;

const lockSetSchema = z.array(z.object({ name: z.string().min(1), key: z.string() }).loose()).min(1);

const actionSchema = z.object({ actionType: z.number().int() }).loose();
type RawAction = z.infer<typeof actionSchema>;

/** What one orchestrator action asks the engine to do, after compound actions are flattened. */
export type OrchestratorAction =
  | { kind: 'activity'; name: string; input: unknown; retry?: RetryOptions }
  | { kind: 'subOrchestration'; name: string; input: unknown; instanceId?: string; retry?: RetryOptions }
  | { kind: 'timer'; fireAt: string; isCanceled: boolean }
  | { kind: 'waitForEvent'; name: string }
  | { kind: 'continueAsNew'; input: unknown }
  | { kind: 'entity'; schedulerId: string; operation: string; input: unknown; signal: boolean }
  /** `context.df.lock`: the entities' scheduler ids as the SDK sorted and de-duplicated them. */
  | { kind: 'lock'; requestId: string; schedulerIds: string[] }
  /** The lock's release: no lock set of its own, it releases the section's entities. */
  | { kind: 'release' }
  | { kind: 'unsupported'; actionType: number };

const orchestratorStateSchema = z.object({
  isDone: z.boolean(),
  actions: z.array(z.unknown()).default([]),
  output: z.unknown().optional(),
  error: z.string().optional(),
  customStatus: z.unknown().optional(),
  schemaVersion: z.number().optional(),
}).loose();
export type OrchestratorState = z.infer<typeof orchestratorStateSchema>;

export function parseOrchestratorState(value: unknown): OrchestratorState {
  const parsed = orchestratorStateSchema.safeParse(value);
  if (!parsed.success) throw new Error('The orchestrator returned something other than an OrchestratorState; is it registered with df.app.orchestration?');
  return parsed.data;
}

/** durable-functions reports an orchestrator exception as an error whose message carries the state after this label. */
const OUT_OF_PROC_LABEL = '\n\n$OutOfProcData$:';

export interface OrchestratorFailure {
  readonly message: string;
  readonly state: OrchestratorState | undefined;
}

export function parseOrchestratorFailure(error: unknown): OrchestratorFailure {
  const text = error instanceof Error ? error.message : String(error);
  const at = text.indexOf(OUT_OF_PROC_LABEL);
  if (at < 0) return { message: text, state: undefined };
  try {
    const state = parseOrchestratorState(JSON.parse(text.slice(at + OUT_OF_PROC_LABEL.length)));
    return { message: state.error ?? text.slice(0, at), state };
  } catch {
    return { message: text.slice(0, at), state: undefined };
  }
}

/** Activity and continue-as-new inputs pass through Utils.processInput, which JSON-encodes strings; undo that once. */
function decodeProcessedInput(input: unknown): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input);
  } catch {
    return input;
  }
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`An orchestrator action has no ${what}.`);
  return value;
}

function toAction(raw: RawAction): OrchestratorAction {
  const retry = () => retryOptionsSchema.parse(raw.retryOptions);
  switch (raw.actionType) {
    case ActionType.CallActivity:
      return { kind: 'activity', name: str(raw.functionName, 'function name'), input: decodeProcessedInput(raw.input) };
    case ActionType.CallActivityWithRetry:
      return { kind: 'activity', name: str(raw.functionName, 'function name'), input: decodeProcessedInput(raw.input), retry: retry() };
    case ActionType.CallSubOrchestrator:
    case ActionType.CallSubOrchestratorWithRetry: {
      const instanceId = typeof raw.instanceId === 'string' && raw.instanceId !== '' ? raw.instanceId : undefined;
      return {
        kind: 'subOrchestration',
        name: str(raw.functionName, 'function name'),
        input: raw.input,
        ...(instanceId ? { instanceId } : {}),
        ...(raw.actionType === ActionType.CallSubOrchestratorWithRetry ? { retry: retry() } : {}),
      };
    }
    case ActionType.CreateTimer:
      return { kind: 'timer', fireAt: new Date(str(raw.fireAt, 'fireAt')).toISOString(), isCanceled: raw.isCanceled === true };
    case ActionType.WaitForExternalEvent:
      return { kind: 'waitForEvent', name: str(raw.externalEventName, 'event name') };
    case ActionType.CallHttp:
      // The extension runs callHttp as its built-in HTTP activity; so does this engine (durableHttp.ts).
      return { kind: 'activity', name: HTTP_ACTIVITY, input: raw.httpRequest };
    case ActionType.CallEntity:
    case ActionType.SignalEntity:
      return { kind: 'entity', schedulerId: str(raw.instanceId, 'entity id'), operation: str(raw.operation, 'operation'), input: raw.input, signal: raw.actionType === ActionType.SignalEntity };
    case ActionType.ContinueAsNew:
      return { kind: 'continueAsNew', input: decodeProcessedInput(raw.input) };
    case ActionType.LockEntities: {
      const lockSet = lockSetSchema.parse(raw.lockSet);
      return { kind: 'lock', requestId: str(raw.lockRequestId, 'lock request id'), schedulerIds: lockSet.map((e) => schedulerId(e.name, e.key)) };
    }
    case ActionType.ReleaseEntities:
      return { kind: 'release' };
    default:
      return { kind: 'unsupported', actionType: raw.actionType };
  }
}

/**
 * The actions of a state in the order the executor numbered their tasks: nested episode arrays and
 * Task.all/Task.any compound actions flattened depth-first, as trackOpenTask walks them.
 */
export function flattenActions(actions: readonly unknown[]): OrchestratorAction[] {
  const out: OrchestratorAction[] = [];
  const walk = (item: unknown): void => {
    if (Array.isArray(item)) {
      for (const inner of item) walk(inner);
      return;
    }
    const raw = actionSchema.parse(item);
    if (raw.actionType === ActionType.WhenAll || raw.actionType === ActionType.WhenAny) {
      walk(Array.isArray(raw.compoundActions) ? raw.compoundActions : []);
      return;
    }
    out.push(toAction(raw));
  };
  walk(actions);
  return out;
}

/** The delay before retry attempt `failedAttempt + 1`, as durable-functions' RetryOptions describe it. */
export function retryDelayMs(options: RetryOptions, failedAttempt: number): number {
  const coefficient = options.backoffCoefficient ?? 1;
  const delay = options.firstRetryIntervalInMilliseconds * Math.pow(coefficient, Math.max(0, failedAttempt - 1));
  const cap = options.maxRetryIntervalInMilliseconds;
  return cap !== undefined && cap > 0 ? Math.min(delay, cap) : delay;
}
