import { odata, RestError, TableClient, type TableEntityResult, type TransactionAction } from '@azure/data-tables';
import type { HistoryEvent, StoredEvent } from './historyEvents';
import type { InboxItem, ReplayCounters } from './episodePlanner';
import type { TaskHubNames } from './taskHub';

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated' | 'Suspended';
export const isTerminal = (s: RuntimeStatus): boolean => s === 'Completed' || s === 'Failed' || s === 'Terminated';

export interface InstanceRecord {
  readonly instanceId: string;
  name: string;
  executionId: string;
  status: RuntimeStatus;
  /** JSON text, as the client sent it or the orchestrator returned it. */
  input?: string;
  output?: string;
  customStatus?: string;
  createdTime: string;
  lastUpdatedTime: string;
  parentInstanceId?: string;
  parentExecutionId?: string;
  parentTaskId?: number;
  /** Committed history length of this execution: rows beyond it are leftovers of an interrupted commit. */
  historyCount: number;
  counters: ReplayCounters;
  etag?: string;
}

export class InstanceExistsError extends Error {
  readonly code = 'DURABLE.INSTANCE_EXISTS';
}

const INSTANCE_ROW = 'instance';
/** Table string properties hold 64 KiB (32K UTF-16 units); larger JSON is split across numbered properties. */
const CHUNK = 30_000;
const MAX_CHUNKS = 30;

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

function putText(entity: Entity, prop: string, text: string | undefined): void {
  if (text === undefined) return;
  const chunks = Math.ceil(text.length / CHUNK) || 1;
  if (chunks > MAX_CHUNKS) throw new Error(`A durable payload of ${text.length} characters exceeds the local engine's ${CHUNK * MAX_CHUNKS}-character limit.`);
  entity[`${prop}Chunks`] = chunks;
  for (let i = 0; i < chunks; i++) entity[i === 0 ? prop : `${prop}_${i}`] = text.slice(i * CHUNK, (i + 1) * CHUNK);
}

function getText(entity: Record<string, unknown>, prop: string): string | undefined {
  const chunks = entity[`${prop}Chunks`];
  if (typeof chunks !== 'number') return undefined;
  let text = '';
  for (let i = 0; i < chunks; i++) text += String(entity[i === 0 ? prop : `${prop}_${i}`] ?? '');
  return text;
}

const pad = (n: number): string => String(n).padStart(8, '0');
const historyPrefix = (executionId: string): string => `h-${executionId}-`;

/** Instance rows, history rows and inbox rows of one task hub in Azure Table storage (Azurite locally). */
export class InstanceStore {
  private readonly instances: TableClient;
  private readonly history: TableClient;

  constructor(connectionString: string, names: TaskHubNames) {
    const options = { allowInsecureConnection: true };
    this.instances = TableClient.fromConnectionString(connectionString, names.instancesTable, options);
    this.history = TableClient.fromConnectionString(connectionString, names.historyTable, options);
  }

  async ensureTables(): Promise<void> {
    await Promise.all([this.instances.createTable(), this.history.createTable()]);
  }

  async getInstance(instanceId: string): Promise<InstanceRecord | undefined> {
    try {
      return toRecord(await this.instances.getEntity<Record<string, unknown>>(instanceId, INSTANCE_ROW));
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  async listInstances(): Promise<InstanceRecord[]> {
    const out: InstanceRecord[] = [];
    for await (const entity of this.instances.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`RowKey eq ${INSTANCE_ROW}` } }))
      out.push(toRecord(entity));
    return out;
  }

  /** Inserts a new instance row; `InstanceExistsError` when one exists. */
  async createInstance(record: InstanceRecord): Promise<void> {
    try {
      const result = await this.instances.createEntity(toEntity(record));
      record.etag = result.etag;
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 409) throw new InstanceExistsError(`Instance ${record.instanceId} exists.`);
      throw error;
    }
  }

  /** The commit point of an episode: replaces the row, guarded by the ETag it was read with. */
  async saveInstance(record: InstanceRecord): Promise<void> {
    const entity = toEntity(record);
    const result = record.etag
      ? await this.instances.updateEntity(entity, 'Replace', { etag: record.etag })
      : await this.instances.upsertEntity(entity, 'Replace');
    record.etag = result.etag;
  }

  async readHistory(instanceId: string, executionId: string, count: number): Promise<StoredEvent[]> {
    const prefix = historyPrefix(executionId);
    const rows: { index: number; stored: StoredEvent }[] = [];
    const filter = odata`PartitionKey eq ${instanceId} and RowKey ge ${prefix} and RowKey lt ${`${prefix}~`}`;
    for await (const entity of this.history.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
      const index = Number((entity.rowKey ?? '').slice(prefix.length));
      if (index >= count) continue;
      const key = typeof entity.key === 'string' && entity.key !== '' ? entity.key : undefined;
      rows.push({ index, stored: { event: JSON.parse(getText(entity, 'data') ?? 'null') as HistoryEvent, ...(key ? { key } : {}) } });
    }
    rows.sort((a, b) => a.index - b.index);
    if (rows.length !== count) throw new Error(`History of ${instanceId} has ${rows.length} of ${count} committed events.`);
    return rows.map((r) => r.stored);
  }

  /** Writes history rows from `startIndex` on; upserts, so replaying an interrupted commit is harmless. */
  async appendHistory(instanceId: string, executionId: string, startIndex: number, events: readonly StoredEvent[]): Promise<void> {
    const actions: TransactionAction[] = events.map((stored, i) => {
      const entity: Entity = { partitionKey: instanceId, rowKey: `${historyPrefix(executionId)}${pad(startIndex + i)}`, key: stored.key ?? '' };
      putText(entity, 'data', JSON.stringify(stored.event));
      return ['upsert', entity, 'Replace'];
    });
    for (let i = 0; i < actions.length; i += 100) await this.history.submitTransaction(actions.slice(i, i + 100));
  }

  async readInbox(instanceId: string): Promise<(InboxItem & { executionId: string })[]> {
    const out: (InboxItem & { executionId: string })[] = [];
    const filter = odata`PartitionKey eq ${instanceId} and RowKey ge ${'i-'} and RowKey lt ${'i-~'}`;
    for await (const entity of this.history.listEntities<Record<string, unknown>>({ queryOptions: { filter } }))
      out.push({
        key: (entity.rowKey ?? '').slice(2),
        order: Number(entity.order),
        executionId: String(entity.executionId ?? ''),
        event: JSON.parse(getText(entity, 'data') ?? 'null') as HistoryEvent,
      });
    return out;
  }

  /** Records an inbound event durably; false when an event with this key was already recorded. */
  async insertInbox(instanceId: string, executionId: string, item: InboxItem): Promise<boolean> {
    const entity: Entity = { partitionKey: instanceId, rowKey: `i-${item.key}`, order: item.order, executionId };
    putText(entity, 'data', JSON.stringify(item.event));
    try {
      await this.history.createEntity(entity);
      return true;
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 409) return false;
      throw error;
    }
  }

  async hasInbox(instanceId: string, key: string): Promise<boolean> {
    try {
      await this.history.getEntity(instanceId, `i-${key}`, { queryOptions: { select: ['order'] } });
      return true;
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return false;
      throw error;
    }
  }

  async deleteInbox(instanceId: string, keys: readonly string[]): Promise<void> {
    await this.deleteRows(instanceId, keys.map((k) => `i-${k}`));
  }

  /** Deletes every row of the instance: history of all executions, inbox, and the instance row. */
  async purge(instanceId: string): Promise<void> {
    const rowKeys: string[] = [];
    for await (const entity of this.history.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${instanceId}`, select: ['RowKey'] } }))
      rowKeys.push(String(entity.rowKey));
    await this.deleteRows(instanceId, rowKeys);
    await this.instances.deleteEntity(instanceId, INSTANCE_ROW).catch((error: unknown) => {
      if (!(error instanceof RestError && error.statusCode === 404)) throw error;
    });
  }

  private async deleteRows(partitionKey: string, rowKeys: readonly string[]): Promise<void> {
    for (let i = 0; i < rowKeys.length; i += 100) {
      const slice = rowKeys.slice(i, i + 100);
      try {
        await this.history.submitTransaction(slice.map((rowKey) => ['delete', { partitionKey, rowKey }] as TransactionAction));
      } catch {
        // A transaction fails whole when one row is already gone; delete one by one, ignoring 404s.
        for (const rowKey of slice)
          await this.history.deleteEntity(partitionKey, rowKey).catch((error: unknown) => {
            if (!(error instanceof RestError && error.statusCode === 404)) throw error;
          });
      }
    }
  }
}

function toEntity(r: InstanceRecord): Entity {
  const entity: Entity = {
    partitionKey: r.instanceId, rowKey: INSTANCE_ROW, name: r.name, executionId: r.executionId, status: r.status,
    createdTime: r.createdTime, lastUpdatedTime: r.lastUpdatedTime, historyCount: r.historyCount,
    parentInstanceId: r.parentInstanceId ?? '', parentExecutionId: r.parentExecutionId ?? '', parentTaskId: r.parentTaskId ?? -1,
  };
  putText(entity, 'input', r.input);
  putText(entity, 'output', r.output);
  putText(entity, 'customStatus', r.customStatus);
  putText(entity, 'counters', JSON.stringify(r.counters));
  return entity;
}

function toRecord(e: TableEntityResult<Record<string, unknown>>): InstanceRecord {
  const text = (k: string): string | undefined => getText(e, k);
  const parentInstanceId = typeof e.parentInstanceId === 'string' && e.parentInstanceId !== '' ? e.parentInstanceId : undefined;
  const input = text('input');
  const output = text('output');
  const customStatus = text('customStatus');
  return {
    instanceId: e.partitionKey ?? '',
    name: String(e.name),
    executionId: String(e.executionId),
    status: String(e.status) as RuntimeStatus,
    createdTime: String(e.createdTime),
    lastUpdatedTime: String(e.lastUpdatedTime),
    historyCount: Number(e.historyCount),
    counters: JSON.parse(text('counters') ?? '{"nextSequence":0,"actionCount":0,"retries":[]}') as ReplayCounters,
    ...(input !== undefined ? { input } : {}),
    ...(output !== undefined ? { output } : {}),
    ...(customStatus !== undefined ? { customStatus } : {}),
    ...(parentInstanceId
      ? { parentInstanceId, parentExecutionId: String(e.parentExecutionId), parentTaskId: Number(e.parentTaskId) }
      : {}),
    ...(e.etag ? { etag: e.etag } : {}),
  };
}
