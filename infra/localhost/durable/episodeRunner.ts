import { randomUUID } from 'node:crypto';
import type { ExtensionContext } from '../hostExtension';
import { EventType, parseJsonText, toJsonText, type HistoryEvent, type StoredEvent } from './historyEvents';
import { isControl, parseEntityMessage, planActions, selectBatch, type InboxItem, type ReplayCounters } from './episodePlanner';
import { flattenActions, parseOrchestratorFailure, parseOrchestratorState, type OrchestratorState } from './orchestratorActions';
import type { InstanceRecord, RuntimeStatus } from './instanceStore';

/** An instance as its serialised actor holds it: the committed record and history, and the inbox not yet applied. */
export interface LoadedInstance {
  record: InstanceRecord;
  history: StoredEvent[];
  appliedKeys: Set<string>;
  pending: Map<string, InboxItem>;
}

/** What one episode decided, not yet written: the commit appends `events` and saves `record`. */
export interface EpisodePlan {
  readonly events: StoredEvent[];
  readonly record: InstanceRecord;
  readonly consumedKeys: string[];
  /** Set when the orchestrator called continueAsNew: the instance restarts with this input (JSON text). */
  readonly restartWith?: string;
}

const NO_EVENT = -1;
/**
 * Replay schema V4 (cumulative actions in one array; V4 is what `context.df.lock` requires). V3 and later
 * split timers beyond `maximumShortTimerDuration` into a chain the engine would have to number; the timer
 * pump already re-sends a far timer past the queue's 7-day maximum, so every timer is declared short.
 * V3's callHttp polling in the SDK never sees a 202: the engine's HTTP activity polls (durableHttp.ts).
 */
const UPPER_SCHEMA_VERSION = 3;
const MAXIMUM_SHORT_TIMER = '3650000.00:00:00';

const cloneCounters = (c: ReplayCounters): ReplayCounters => JSON.parse(JSON.stringify(c)) as ReplayCounters;

export function newExecutionId(): string {
  return randomUUID().replace(/-/g, '');
}

/**
 * Decides one episode for an instance: applies terminate/suspend/resume, picks the inbound events to
 * replay, runs the orchestrator through the host with the full history, and turns its actions into new
 * history. Returns undefined when there is nothing to do.
 */
export async function planEpisode(loaded: LoadedInstance, invoke: ExtensionContext['invoke'], now: Date): Promise<EpisodePlan | undefined> {
  const record: InstanceRecord = { ...loaded.record, counters: cloneCounters(loaded.record.counters) };
  const at = now.toISOString();
  const events: StoredEvent[] = [];
  const consumedKeys: string[] = [];
  const pending = [...loaded.pending.values()].sort((a, b) => a.order - b.order);

  for (const item of pending.filter((p) => isControl(p.event))) {
    consumedKeys.push(item.key);
    const type = item.event.EventType;
    if (type === EventType.ExecutionTerminated) {
      events.push({ event: { ...item.event, EventId: NO_EVENT, Timestamp: at }, key: item.key });
      record.status = 'Terminated';
      record.output = toJsonText(parseJsonText(item.event.Input) ?? null);
      return { events, record: touch(record, at), consumedKeys: pending.map((p) => p.key) };
    }
    const suspend = type === EventType.ExecutionSuspended;
    if (suspend === (record.status === 'Suspended')) continue; // already in that state
    events.push({ event: { ...item.event, EventId: NO_EVENT, Timestamp: at }, key: item.key });
    record.status = suspend ? 'Suspended' : record.historyCount === 0 ? 'Pending' : 'Running';
  }
  if (record.status === 'Suspended') return events.length > 0 ? { events, record: touch(record, at), consumedKeys } : undefined;

  const first = loaded.history.length === 0;
  const batch = selectBatch(record.counters, pending.filter((p) => !isControl(p.event)), now, record.instanceId);
  if (!first && batch.items.length === 0)
    return events.length > 0 ? { events, record: touch(record, at), consumedKeys } : undefined;

  const fresh: StoredEvent[] = [{ event: { EventType: EventType.OrchestratorStarted, EventId: NO_EVENT, Timestamp: at } }];
  if (first)
    fresh.push({ event: { EventType: EventType.ExecutionStarted, EventId: NO_EVENT, Timestamp: at, Name: record.name, Input: record.input ?? 'null' } });
  for (const item of batch.items) {
    fresh.push({ event: { ...item.event, EventId: NO_EVENT, Timestamp: at }, key: item.key });
    consumedKeys.push(item.key);
  }

  const history = [...loaded.history.map((s) => ({ ...s.event, IsPlayed: true })), ...fresh.map((s) => ({ ...s.event, IsPlayed: false }))];
  let state: OrchestratorState | undefined;
  let failure: string | undefined;
  try {
    const outcome = await invoke(record.name, { json: JSON.stringify(bindingPayload(record, history, !first)) });
    state = parseOrchestratorState(outcome.returnValue);
  } catch (error) {
    const parsed = parseOrchestratorFailure(error);
    state = parsed.state;
    failure = parsed.message;
  }

  if (state?.customStatus !== undefined) record.customStatus = toJsonText(state.customStatus);
  const scheduled: HistoryEvent[] = [...batch.scheduled];
  let status: RuntimeStatus = 'Running';
  let restartWith: string | undefined;
  if (failure === undefined && state) {
    const plan = planActions(record.counters, flattenActions(state.actions), now, record.instanceId);
    if (plan.unsupported !== undefined) failure = `The local Durable engine does not support action type ${plan.unsupported}.`;
    else if (plan.failure !== undefined) failure = plan.failure;
    else if (plan.continueAsNew) restartWith = toJsonText(plan.continueAsNew.input);
    else if (state.isDone) {
      status = 'Completed';
      record.output = toJsonText(state.output ?? null);
      // Signals are fire-and-forget: an orchestration may signal an entity and return in the same episode.
      // A lock request nobody waits for is not sent; a section left open is released by the engine.
      scheduled.push(...plan.scheduled.filter((e) => e.EventType === EventType.EventSent && parseEntityMessage(e)?.lockset === undefined));
    } else scheduled.push(...plan.scheduled);
  }
  if (failure !== undefined) {
    status = 'Failed';
    record.output = toJsonText(`Orchestrator function '${record.name}' failed: ${failure}`);
  }

  const closing: StoredEvent[] = [{ event: { EventType: EventType.OrchestratorCompleted, EventId: NO_EVENT, Timestamp: at } }];
  if (status === 'Completed') closing.push({ event: { EventType: EventType.ExecutionCompleted, EventId: NO_EVENT, Timestamp: at, Result: record.output ?? 'null' } });
  if (status === 'Failed') closing.push({ event: { EventType: EventType.ExecutionFailed, EventId: NO_EVENT, Timestamp: at, Reason: failure ?? '' } });
  if (restartWith !== undefined) closing.push({ event: { EventType: EventType.ContinueAsNew, EventId: NO_EVENT, Timestamp: at, Input: restartWith } });
  record.status = status;
  return {
    events: [...events, ...fresh, ...scheduled.map((event) => ({ event })), ...closing],
    record: touch(record, at),
    consumedKeys,
    ...(restartWith !== undefined ? { restartWith } : {}),
  };
}

function touch(record: InstanceRecord, at: string): InstanceRecord {
  record.lastUpdatedTime = at;
  return record;
}

/** The orchestrationTrigger value the Durable extension sends (DurableOrchestrationBindingInfo). */
function bindingPayload(record: InstanceRecord, history: HistoryEvent[], isReplaying: boolean): Record<string, unknown> {
  return {
    history,
    input: parseJsonText(record.input),
    instanceId: record.instanceId,
    isReplaying,
    parentInstanceId: record.parentInstanceId ?? '',
    upperSchemaVersion: UPPER_SCHEMA_VERSION,
    upperSchemaVersionNew: UPPER_SCHEMA_VERSION,
    maximumShortTimerDuration: MAXIMUM_SHORT_TIMER,
    longRunningTimerIntervalDuration: '3.00:00:00',
    defaultHttpAsyncRequestSleepTimeMillseconds: 30_000,
  };
}
