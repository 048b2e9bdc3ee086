import { eventTypeName, parseJsonText, type StoredEvent } from './historyEvents';
import type { InstanceRecord, RuntimeStatus } from './instanceStore';

/** The status JSON of the Durable HTTP API, in the shape DurableOrchestrationStatus is built from. */
export interface StatusView {
  name: string;
  instanceId: string;
  runtimeStatus: RuntimeStatus;
  input: unknown;
  output: unknown;
  customStatus: unknown;
  createdTime: string;
  lastUpdatedTime: string;
  historyEvents?: unknown[];
  history?: unknown[];
}

export interface StatusOptions {
  readonly showInput?: boolean;
  readonly history?: readonly StoredEvent[];
  readonly showHistoryOutput?: boolean;
}

export function statusView(record: InstanceRecord, options: StatusOptions = {}): StatusView {
  const view: StatusView = {
    name: record.name,
    instanceId: record.instanceId,
    runtimeStatus: record.status,
    input: options.showInput === false ? null : (parseJsonText(record.input) ?? null),
    output: parseJsonText(record.output) ?? null,
    customStatus: parseJsonText(record.customStatus) ?? null,
    createdTime: record.createdTime,
    lastUpdatedTime: record.lastUpdatedTime,
  };
  if (options.history) {
    const events = options.history.map(({ event }) => {
      const { EventType: type, Timestamp, Name, FireAt, Reason, Result, TaskScheduledId, TimerId } = event;
      return {
        EventType: eventTypeName(type), Timestamp,
        ...(Name !== undefined ? { Name } : {}), ...(FireAt !== undefined ? { FireAt } : {}), ...(Reason !== undefined ? { Reason } : {}),
        ...(TaskScheduledId !== undefined ? { TaskScheduledId } : {}), ...(TimerId !== undefined ? { TimerId } : {}),
        ...(options.showHistoryOutput && Result !== undefined ? { Result: parseJsonText(Result) } : {}),
      };
    });
    view.historyEvents = events; // the extension's name for it
    view.history = events; // the name durable-functions' DurableOrchestrationStatus reads
  }
  return view;
}

export interface StatusFilter {
  readonly runtimeStatus?: readonly string[];
  readonly createdTimeFrom?: Date;
  readonly createdTimeTo?: Date;
  readonly instanceIdPrefix?: string;
}

export function matchesFilter(record: InstanceRecord, filter: StatusFilter): boolean {
  const created = Date.parse(record.createdTime);
  if (filter.runtimeStatus && filter.runtimeStatus.length > 0 && !filter.runtimeStatus.includes(record.status)) return false;
  if (filter.createdTimeFrom && created < filter.createdTimeFrom.getTime()) return false;
  if (filter.createdTimeTo && created > filter.createdTimeTo.getTime()) return false;
  if (filter.instanceIdPrefix && !record.instanceId.startsWith(filter.instanceIdPrefix)) return false;
  return true;
}

export function filterFromQuery(query: URLSearchParams): StatusFilter {
  const date = (name: string): Date | undefined => {
    const raw = query.get(name);
    const parsed = raw ? new Date(raw) : undefined;
    return parsed && !Number.isNaN(parsed.getTime()) ? parsed : undefined;
  };
  const statuses = query.get('runtimeStatus');
  const from = date('createdTimeFrom');
  const to = date('createdTimeTo');
  const prefix = query.get('instanceIdPrefix');
  return {
    ...(statuses ? { runtimeStatus: statuses.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    ...(from ? { createdTimeFrom: from } : {}),
    ...(to ? { createdTimeTo: to } : {}),
    ...(prefix ? { instanceIdPrefix: prefix } : {}),
  };
}
