/**
 * History events in the wire form durable-functions' replay reads (TaskOrchestrationExecutor): PascalCase
 * fields, `EventType` numbers from HistoryEventType, completions matched by `TaskScheduledId`/`TimerId`,
 * external events by `Name`, and `Result`/`Input` carried as JSON text.
 */
export const EventType = {
  ExecutionStarted: 0,
  ExecutionCompleted: 1,
  ExecutionFailed: 2,
  ExecutionTerminated: 3,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  SubOrchestrationInstanceCreated: 7,
  SubOrchestrationInstanceCompleted: 8,
  SubOrchestrationInstanceFailed: 9,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventSent: 14,
  EventRaised: 15,
  ContinueAsNew: 16,
  /** Carries nothing durable-functions reads; the engine's rewind records one to start the replay. */
  GenericEvent: 17,
  ExecutionSuspended: 19,
  ExecutionResumed: 20,
} as const;
export type EventTypeNumber = (typeof EventType)[keyof typeof EventType];

export interface HistoryEvent {
  readonly EventType: EventTypeNumber;
  readonly EventId: number;
  readonly Timestamp: string;
  readonly IsPlayed?: boolean;
  readonly Name?: string;
  readonly Input?: string;
  readonly Result?: string;
  readonly Reason?: string;
  readonly Details?: string;
  readonly TaskScheduledId?: number;
  readonly TimerId?: number;
  readonly FireAt?: string;
  readonly InstanceId?: string;
  readonly Version?: string;
  /** How durable-functions reads a failed task: TaskFailedError(`${ErrorType}: ${ErrorMessage}`). */
  readonly FailureDetails?: { readonly ErrorType: string; readonly ErrorMessage: string; readonly StackTrace?: string };
}

/** A history event as stored: the event plus the inbox key that produced it, so a re-read inbox row is not applied twice. */
export interface StoredEvent {
  readonly event: HistoryEvent;
  readonly key?: string;
}

export const eventTypeName = (type: number): string =>
  Object.entries(EventType).find(([, value]) => value === type)?.[0] ?? `Event${type}`;

/** JSON text of a value as history carries it; `undefined` has no JSON form, so it becomes null. */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

export function parseJsonText(text: string | undefined): unknown {
  if (text === undefined || text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** What a failure event carries, as the Durable extension writes it, so every durable-functions 3.x reads it. */
export interface FailureFields {
  readonly Reason: string;
  readonly Details: string;
  readonly FailureDetails?: HistoryEvent['FailureDetails'];
}

/**
 * `Reason` is the extension's one-line summary and `Details` its serialised exception (the worker's
 * RpcException as Newtonsoft.Json writes it); durable-functions before 3.5 reads only these two (as
 * `new Error(`${Reason} \n ${Details}`)`) and fails the orchestration when either is missing. 3.5 and
 * later prefer `FailureDetails` and throw a TaskFailedError from it.
 */
export function activityFailure(functionName: string, error: Error): FailureFields {
  const type = error.name || 'Error';
  return {
    Reason: `Activity function '${functionName}' failed: ${error.message}`,
    Details: serialisedException(`Result: Failure\nException: ${type}: ${error.message}${error.stack ? `\nStack: ${error.stack}` : ''}`, error.stack),
    FailureDetails: { ErrorType: type, ErrorMessage: error.message, ...(error.stack ? { StackTrace: error.stack } : {}) },
  };
}

/** A sub-orchestration's failure: the child's own failure reason, as the parent's task sees it. */
export function subOrchestrationFailure(reason: string): FailureFields {
  return { Reason: reason, Details: serialisedException(reason, undefined) };
}

function serialisedException(message: string, stack: string | undefined): string {
  return JSON.stringify({
    $type: 'Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, Microsoft.Azure.WebJobs.Script',
    ClassName: 'Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException',
    Message: message,
    InnerException: null,
    StackTraceString: stack ?? null,
  });
}
