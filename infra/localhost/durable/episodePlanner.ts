import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { EventType, toJsonText, type HistoryEvent } from './historyEvents';
import { retryDelayMs, type OrchestratorAction, type RetryOptions } from './orchestratorActions';

/**
 * The engine's side of the replay contract. durable-functions numbers every scheduled task, timer and
 * sub-orchestration with a sequence counter as its executor replays; the engine must hand out the same
 * numbers so completions match. Retries are the subtle part: the executor's RetryableTask allocates a
 * number for the retry timer when it *replays* the failure and another for the next attempt when the
 * timer fires, so such events must be replayed before any event that can resume user code in the same
 * episode (which could yield, and number, new tasks first). `selectBatch` enforces that ordering.
 */

export interface RetryGroup {
  readonly kind: 'activity' | 'subOrchestration';
  readonly name: string;
  readonly input: unknown;
  readonly instanceId?: string;
  readonly options: RetryOptions;
  /** The executor's attemptNumber: incremented when an attempt fails. */
  attempt: number;
  taskId: number;
  timerId?: number;
  done: boolean;
}

export interface ReplayCounters {
  nextSequence: number;
  /** How many flattened actions earlier episodes returned; the rest of the cumulative list is new. */
  actionCount: number;
  retries: RetryGroup[];
  /** The critical section the orchestration is in (or acquiring): what its release action releases. */
  lock?: SectionLock;
}

export interface SectionLock {
  readonly requestId: string;
  readonly schedulerIds: string[];
}

export interface InboxItem {
  readonly key: string;
  readonly order: number;
  readonly event: HistoryEvent;
}

export const isControl = (e: HistoryEvent): boolean =>
  e.EventType === EventType.ExecutionTerminated || e.EventType === EventType.ExecutionSuspended || e.EventType === EventType.ExecutionResumed;

function groupForTask(counters: ReplayCounters, taskId: number | undefined): RetryGroup | undefined {
  return counters.retries.find((g) => !g.done && g.taskId === taskId && g.timerId === undefined);
}
function groupForTimer(counters: ReplayCounters, timerId: number | undefined): RetryGroup | undefined {
  return counters.retries.find((g) => !g.done && g.timerId !== undefined && g.timerId === timerId);
}

const FAILED = new Set<number>([EventType.TaskFailed, EventType.SubOrchestrationInstanceFailed]);
const SUCCEEDED = new Set<number>([EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted]);

/** True when replaying the event makes the executor allocate a sequence number without resuming user code. */
function allocates(counters: ReplayCounters, e: HistoryEvent): boolean {
  if (FAILED.has(e.EventType)) return groupForTask(counters, e.TaskScheduledId) !== undefined;
  if (e.EventType === EventType.TimerFired) {
    const group = groupForTimer(counters, e.TimerId);
    return group !== undefined && group.attempt <= group.options.maxNumberOfAttempts;
  }
  return false;
}

function scheduleEvent(group: Pick<RetryGroup, 'kind' | 'name' | 'input' | 'instanceId'>, id: number, at: string, attempt: number, parentInstanceId: string): HistoryEvent {
  if (group.kind === 'activity')
    return { EventType: EventType.TaskScheduled, EventId: id, Timestamp: at, Name: group.name, Input: toJsonText(group.input) };
  const base = group.instanceId ?? `${parentInstanceId}:${String(id).padStart(4, '0')}`;
  return {
    EventType: EventType.SubOrchestrationInstanceCreated, EventId: id, Timestamp: at, Name: group.name,
    Input: toJsonText(group.input), InstanceId: attempt > 1 && group.instanceId ? `${base}:${attempt}` : base,
  };
}

export interface Batch {
  readonly items: InboxItem[];
  /** TimerCreated / TaskScheduled / SubOrchestrationInstanceCreated events the retries in the batch cause. */
  readonly scheduled: HistoryEvent[];
}

/**
 * Picks the inbound events for one episode: leading allocating events, then any run of non-allocating
 * ones, and applies the retry bookkeeping they cause to `counters`.
 */
export function selectBatch(counters: ReplayCounters, pending: readonly InboxItem[], now: Date, instanceId: string): Batch {
  const items: InboxItem[] = [];
  const scheduled: HistoryEvent[] = [];
  let sawResuming = false;
  const at = now.toISOString();
  for (const item of [...pending].sort((a, b) => a.order - b.order)) {
    const e = item.event;
    if (allocates(counters, e)) {
      if (sawResuming) break;
      if (FAILED.has(e.EventType)) {
        const group = groupForTask(counters, e.TaskScheduledId)!;
        const fireAt = new Date(now.getTime() + retryDelayMs(group.options, group.attempt)).toISOString();
        group.attempt += 1;
        group.timerId = counters.nextSequence++;
        scheduled.push({ EventType: EventType.TimerCreated, EventId: group.timerId, Timestamp: at, FireAt: fireAt });
      } else {
        const group = groupForTimer(counters, e.TimerId)!;
        group.timerId = undefined;
        group.taskId = counters.nextSequence++;
        scheduled.push(scheduleEvent(group, group.taskId, at, group.attempt, instanceId));
      }
    } else {
      sawResuming = true;
      if (SUCCEEDED.has(e.EventType)) {
        const group = groupForTask(counters, e.TaskScheduledId);
        if (group) group.done = true;
      } else if (e.EventType === EventType.TimerFired) {
        const group = groupForTimer(counters, e.TimerId);
        if (group) group.done = true; // attempts exhausted: the executor fails the task itself
      }
    }
    items.push(item);
  }
  return { items, scheduled };
}

export interface ActionPlan {
  readonly scheduled: HistoryEvent[];
  readonly failure?: string;
  readonly continueAsNew?: { input: unknown };
  readonly unsupported?: number;
}

/** Numbers and records the actions that are new in this episode's cumulative list. */
export function planActions(counters: ReplayCounters, actions: readonly OrchestratorAction[], now: Date, instanceId: string): ActionPlan {
  const scheduled: HistoryEvent[] = [];
  const at = now.toISOString();
  const fresh = actions.slice(counters.actionCount);
  counters.actionCount = Math.max(counters.actionCount, actions.length);
  for (const action of fresh) {
    switch (action.kind) {
      case 'waitForEvent':
        break; // matched by name, never numbered
      case 'continueAsNew':
        return { scheduled, continueAsNew: { input: action.input } };
      case 'unsupported':
        return { scheduled, unsupported: action.actionType };
      case 'entity': {
        // Numbered like an activity (callEntity) or a fire-and-forget action (signalEntity); the executor
        // re-keys a call's task by the request id it reads from this EventSent, and the response arrives
        // as an EventRaised named by that id.
        const id = counters.nextSequence++;
        const request = { id: randomUUID(), op: action.operation, signal: action.signal, input: action.input === undefined ? undefined : JSON.stringify(action.input), parent: instanceId };
        scheduled.push({ EventType: EventType.EventSent, EventId: id, Timestamp: at, Name: action.operation, InstanceId: action.schedulerId, Input: JSON.stringify(request) });
        break;
      }
      case 'lock': {
        // Numbered like a call: the executor re-keys the LockTask by the request id, and the grant arrives as
        // an EventRaised named by it. The request goes to the first entity; the engine locks them in order.
        const id = counters.nextSequence++;
        counters.lock = { requestId: action.requestId, schedulerIds: action.schedulerIds };
        const request: EntityMessage = { id: action.requestId, lockset: action.schedulerIds, parent: instanceId };
        scheduled.push({ EventType: EventType.EventSent, EventId: id, Timestamp: at, Name: 'op', InstanceId: action.schedulerIds[0], Input: JSON.stringify(request) });
        break;
      }
      case 'release': {
        // The executor advances its counter by the lock set's size: one release message per entity.
        const lock = counters.lock;
        if (!lock) return { scheduled, failure: 'released a lock it does not hold' };
        counters.lock = undefined;
        for (const entity of lock.schedulerIds) {
          const request: EntityMessage = { id: lock.requestId, release: true, parent: instanceId };
          scheduled.push({ EventType: EventType.EventSent, EventId: counters.nextSequence++, Timestamp: at, Name: 'release', InstanceId: entity, Input: JSON.stringify(request) });
        }
        break;
      }
      case 'timer': {
        const id = counters.nextSequence++;
        scheduled.push({ EventType: EventType.TimerCreated, EventId: id, Timestamp: at, FireAt: action.fireAt });
        break;
      }
      case 'activity':
      case 'subOrchestration': {
        const id = counters.nextSequence++;
        const target = { kind: action.kind, name: action.name, input: action.input, ...(action.kind === 'subOrchestration' && action.instanceId ? { instanceId: action.instanceId } : {}) };
        scheduled.push(scheduleEvent(target, id, at, 1, instanceId));
        if (action.retry) counters.retries.push({ ...target, options: action.retry, attempt: 1, taskId: id, done: false });
        break;
      }
      default: {
        const _exhaustive: never = action;
        throw new Error(`Unknown action ${JSON.stringify(_exhaustive)}`);
      }
    }
  }
  return { scheduled };
}

export interface OpenWork {
  readonly activities: HistoryEvent[];
  readonly timers: HistoryEvent[];
  readonly subOrchestrations: HistoryEvent[];
  /** callEntity and lock requests (EventSent, not signals or releases) whose response is neither in history nor the inbox. */
  readonly entityCalls: HistoryEvent[];
}

/** What an EventSent to an entity carries: an operation (call or signal), a lock request or a release. */
export interface EntityMessage {
  readonly id: string;
  readonly parent?: string;
  readonly op?: string;
  readonly signal?: boolean;
  readonly input?: string;
  /** A lock request: the scheduler ids to lock, in order. */
  readonly lockset?: string[];
  readonly release?: boolean;
}

const entityMessageSchema = z.object({
  id: z.string(),
  parent: z.string().optional(),
  op: z.string().optional(),
  signal: z.boolean().optional(),
  input: z.string().optional(),
  lockset: z.array(z.string()).optional(),
  release: z.boolean().optional(),
}).loose();

export function parseEntityMessage(e: HistoryEvent): EntityMessage | undefined {
  try {
    const parsed = entityMessageSchema.safeParse(JSON.parse(e.Input ?? ''));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A call or a lock request: the orchestration waits for a response EventRaised named by its id. */
export const awaitsResponse = (message: EntityMessage | undefined): message is EntityMessage =>
  message !== undefined && message.release !== true && message.signal !== true;

/** Work history scheduled whose completion neither history nor the inbox holds yet: what recovery re-dispatches. */
export function openWork(history: readonly HistoryEvent[], inbox: readonly HistoryEvent[]): OpenWork {
  const all = [...history, ...inbox];
  const completedTasks = new Set(all.filter((e) => SUCCEEDED.has(e.EventType) || FAILED.has(e.EventType)).map((e) => e.TaskScheduledId));
  const firedTimers = new Set(all.filter((e) => e.EventType === EventType.TimerFired).map((e) => e.TimerId));
  const raisedNames = new Set<unknown>(all.filter((e) => e.EventType === EventType.EventRaised).map((e) => e.Name));
  return {
    activities: history.filter((e) => e.EventType === EventType.TaskScheduled && !completedTasks.has(e.EventId)),
    timers: history.filter((e) => e.EventType === EventType.TimerCreated && !firedTimers.has(e.EventId)),
    subOrchestrations: history.filter((e) => e.EventType === EventType.SubOrchestrationInstanceCreated && !completedTasks.has(e.EventId)),
    entityCalls: history.filter((e) => {
      if (e.EventType !== EventType.EventSent) return false;
      const request = parseEntityMessage(e);
      return awaitsResponse(request) && !raisedNames.has(request.id);
    }),
  };
}
