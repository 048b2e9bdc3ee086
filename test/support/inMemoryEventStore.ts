import type { DomainEvent, RecordedEvent } from '../../domain/events';
import { TransactionTooLargeError, VersionConflictError } from '../../domain/errors';
import type {
  AppendRequest, AppendResult, CheckedProjection, EventStore, HeadCheckpointer, LogPage, ProjectionRow, StreamPosition, StreamRead, VerifyResult,
} from '../../domain/ports/eventStore';
import type { Hasher } from '../../domain/ports/hasher';
import type { Ids } from '../../domain/ports/ids';
import type { OutboxEntry, OutboxPendingIndex, OutboxStore } from '../../domain/ports/outbox';
import { nodeHasher } from '../../infra/system/nodeHasher';
import { randomUuidIds } from '../../infra/system/randomUuidIds';
import type { ChainRow, HeadRow, IndexRow } from '../../infra/tables/chainVerifier';
import { verifyChain } from '../../infra/tables/chainVerifier';
import {
  MAX_TRANSACTION_OPERATIONS, assertBodyFits, eventEntity, outboxEntity, projectionEntity, streamIndexEntity,
} from '../../infra/tables/logEntities';
import { GENESIS_HASH, parseRecord, sealRecords } from '../../infra/tables/logRecord';
import type { Redact } from '../../infra/tables/logRecord';
import { EmptyAppendError } from '../../infra/tables/storeErrors';

export interface InMemoryEventStoreOptions {
  readonly ids?: Ids;
  readonly hasher?: Hasher;
  readonly redact?: Redact;
  readonly checkpointer?: HeadCheckpointer;
  readonly outboxIndex?: Pick<OutboxPendingIndex, 'touch'>;
}

interface Partition {
  readonly rows: ChainRow[];
  readonly streams: Map<string, IndexRow[]>;
  head: HeadRow | undefined;
  readonly projections: Map<string, string>;
  /** The stream position each projection row was written at (memory cannot be edited from outside). */
  readonly projectedFrom: Map<string, StreamPosition>;
  readonly outbox: { sequence: number; eventId: string; streamId: string; type: string }[];
  /** Appends of one workspace run one after another, as the head ETag makes them do in the table. */
  tail: Promise<unknown>;
}

/**
 * The same log as `TableEventStore`, same canonical bytes, hashes, limits and errors, kept in memory: for
 * unit tests of code that needs an `EventStore`. Rows are stored as text and parsed on every read, so
 * callers never share objects with the store.
 */
export class InMemoryEventStore implements EventStore, OutboxStore {
  private readonly partitions = new Map<string, Partition>();
  private readonly ids: Ids;
  private readonly hasher: Hasher;

  constructor(private readonly options: InMemoryEventStoreOptions = {}) {
    this.ids = options.ids ?? randomUuidIds;
    this.hasher = options.hasher ?? nodeHasher;
  }

  append(request: AppendRequest): Promise<AppendResult> {
    const partition = this.partition(request.workspaceId);
    const result = partition.tail.then(() => this.appendNow(partition, request));
    partition.tail = result.catch(() => undefined);
    return result;
  }

  private async appendNow(partition: Partition, request: AppendRequest): Promise<AppendResult> {
    const { workspaceId, streamId, expectedVersion, events } = request;
    if (events.length === 0) throw new EmptyAppendError(streamId);
    const projections = request.projections ?? [];
    const operations = events.length * 3 + 1 + projections.length;
    if (operations > MAX_TRANSACTION_OPERATIONS) throw new TransactionTooLargeError(operations, MAX_TRANSACTION_OPERATIONS);
    const stream = partition.streams.get(streamId) ?? [];
    if (stream.length !== expectedVersion) throw new VersionConflictError(streamId, expectedVersion);
    await this.options.outboxIndex?.touch(workspaceId);
    const sealed = sealRecords({
      workspaceId, streamId, expectedVersion, events, head: partition.head ?? { sequence: 0, hash: GENESIS_HASH },
      ids: this.ids, hasher: this.hasher, redact: this.options.redact,
    });
    const last = sealed[sealed.length - 1]!.record;
    const signature = await this.options.checkpointer?.sign({ workspaceId, sequence: last.sequence, hash: last.hash });
    assertBodyFits([
      ...sealed.flatMap((s) => [eventEntity(s, signature), streamIndexEntity(s), outboxEntity(s.record)]),
      ...projections.map((p) => (p.kind === 'upsert' ? projectionEntity(workspaceId, p.key, p.value) : { partitionKey: workspaceId, rowKey: p.key })),
    ]);
    for (const { record, stored } of sealed) {
      const row = { sequence: record.sequence, stored, prevHash: record.prevHash, hash: record.hash };
      partition.rows.push({ ...row, checkpoint: record === last ? signature : undefined });
      stream.push({ ...row, streamId, streamVersion: record.streamVersion });
      partition.outbox.push({ sequence: record.sequence, eventId: record.id, streamId, type: record.type });
    }
    partition.streams.set(streamId, stream);
    partition.head = { sequence: last.sequence, hash: last.hash, signature };
    for (const write of projections) {
      if (write.kind === 'upsert') {
        partition.projections.set(write.key, JSON.stringify(write.value));
        partition.projectedFrom.set(write.key, write.derivedFrom ?? { streamId, version: expectedVersion + events.length });
      } else {
        partition.projections.delete(write.key);
        partition.projectedFrom.delete(write.key);
      }
    }
    return { records: sealed.map((s) => s.record), version: expectedVersion + events.length };
  }

  async readStream<E extends DomainEvent = DomainEvent>(workspaceId: string, streamId: string): Promise<StreamRead<E>> {
    const rows = this.partitions.get(workspaceId)?.streams.get(streamId) ?? [];
    const events = rows.map((row) => parseRecord(row.stored, row.prevHash, row.hash));
    return { version: rows.length, events: events as unknown as readonly RecordedEvent<E>[] };
  }

  async readLog(workspaceId: string, options: { after?: number; limit?: number } = {}): Promise<LogPage> {
    const rows = this.partitions.get(workspaceId)?.rows ?? [];
    const limit = Math.max(1, Math.floor(options.limit ?? 100));
    const from = Math.max(0, options.after ?? 0);
    const page = rows.slice(from, from + limit).map((row) => parseRecord(row.stored, row.prevHash, row.hash));
    const last = page[page.length - 1];
    return from + limit < rows.length && last ? { records: page, next: last.sequence } : { records: page };
  }

  async readProjection(workspaceId: string, key: string): Promise<Readonly<Record<string, unknown>> | undefined> {
    const text = this.partitions.get(workspaceId)?.projections.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
  }

  async listProjections(workspaceId: string, keyPrefix: string): Promise<readonly ProjectionRow[]> {
    const entries = [...(this.partitions.get(workspaceId)?.projections ?? [])];
    return entries
      .filter(([key]) => key.startsWith(keyPrefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, text]) => ({ key, value: JSON.parse(text) as Record<string, unknown> }));
  }

  async readCheckedProjection(workspaceId: string, key: string): Promise<CheckedProjection | undefined> {
    const value = await this.readProjection(workspaceId, key);
    return value === undefined ? undefined : this.checked(workspaceId, key, value);
  }

  async listCheckedProjections(workspaceId: string, keyPrefix: string): Promise<readonly CheckedProjection[]> {
    return (await this.listProjections(workspaceId, keyPrefix)).map((row) => this.checked(workspaceId, row.key, row.value));
  }

  private checked(workspaceId: string, key: string, value: Readonly<Record<string, unknown>>): CheckedProjection {
    const partition = this.partitions.get(workspaceId);
    const from = partition?.projectedFrom.get(key);
    if (!from) return { key, value, check: 'forged' };
    const version = partition?.streams.get(from.streamId)?.length ?? 0;
    return { key, value, derivedFrom: from, check: version > from.version ? 'stale' : 'verified' };
  }

  /** The outbox rows the table store writes as `o:` rows, for tests of code that dispatches them. */
  outbox(workspaceId: string): readonly { sequence: number; eventId: string; streamId: string; type: string }[] {
    return [...(this.partitions.get(workspaceId)?.outbox ?? [])];
  }

  async listOutbox(workspaceId: string, options: { limit?: number } = {}): Promise<readonly OutboxEntry[]> {
    const limit = Math.max(1, Math.floor(options.limit ?? 100));
    return this.outbox(workspaceId).slice(0, limit).map((row) => ({ ...row, workspaceId, etag: `seq-${row.sequence}` }));
  }

  async markOutboxSent(workspaceId: string, entries: readonly OutboxEntry[]): Promise<void> {
    const partition = this.partitions.get(workspaceId);
    if (!partition) return;
    const sent = new Set(entries.map((e) => e.sequence));
    const kept = partition.outbox.filter((row) => !sent.has(row.sequence));
    partition.outbox.splice(0, partition.outbox.length, ...kept);
  }

  async verify(workspaceId: string): Promise<VerifyResult> {
    const partition = this.partitions.get(workspaceId);
    return verifyChain({
      workspaceId,
      rows: partition?.rows ?? [],
      index: [...(partition?.streams.values() ?? [])].flat(),
      head: partition?.head,
      hasher: this.hasher,
      checkpointer: this.options.checkpointer,
    });
  }

  private partition(workspaceId: string): Partition {
    let partition = this.partitions.get(workspaceId);
    if (!partition) {
      partition = { rows: [], streams: new Map(), head: undefined, projections: new Map(), projectedFrom: new Map(), outbox: [], tail: Promise.resolve() };
      this.partitions.set(workspaceId, partition);
    }
    return partition;
  }
}
