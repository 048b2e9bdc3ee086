import { RestError, TableClient, odata } from '@azure/data-tables';
import type { TableEntityResult, TransactionAction } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { DomainEvent, RecordedEvent } from '../../domain/events';
import { ConcurrencyExhaustedError, TransactionTooLargeError, VersionConflictError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import type {
  AppendRequest, AppendResult, CheckedProjection, EventStore, HeadCheckpointer, HeadWitness, LogPage, ProjectionRow, StreamRead, VerifyResult,
} from '../../domain/ports/eventStore';
import type { Hasher } from '../../domain/ports/hasher';
import type { Ids } from '../../domain/ports/ids';
import type { OutboxEntry, OutboxPendingIndex, OutboxStore } from '../../domain/ports/outbox';
import type { Random } from '../../domain/ports/random';
import { nodeHasher } from '../system/nodeHasher';
import { randomUuidIds } from '../system/randomUuidIds';
import { systemClock } from '../system/systemClock';
import { systemRandom } from '../system/systemRandom';
import { verifyChain } from './chainVerifier';
import { MAX_TRANSACTION_OPERATIONS, blobRefOf, inlineText, openProjectionRow, toChainRow, toHeadRow, toIndexRow, toProjectionValue, toRecord } from './logEntities';
import type { Redact } from './logRecord';
import { GroupCommit, failedOperationIndex, operationsOf, takeBatch } from './appendBatch';
import { buildTransaction, type HeadState, type TransactionParts } from './appendTransaction';
import type { PendingAppend } from './appendBatch';
import type { KeyRange } from './rowKeys';
import { HEAD_ROW_KEY, allStreamsRange, eventRange, outboxRowKey, prefixRange, projectionRange, projectionRowKey, streamRange, streamRowKey } from './rowKeys';
import { EmptyAppendError } from './storeErrors';
import { RecordBlobs } from './recordBlobs';
import { StreamCache } from './streamCache';
import { ProjectionSeal } from './projectionSeal';
import { tableCreatedOnce } from './tableOnce';


export interface TableEventStoreOptions {
  readonly ids?: Ids;
  readonly hasher?: Hasher;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Second line of defence: sees each event's canonical `data` text before it is hashed and stored. */
  readonly redact?: Redact;
  /** The workspace's own redactor, asked once per append; it takes precedence over `redact` (docs/redaction.md). */
  readonly redactorFor?: (workspaceId: string) => Promise<Redact | undefined>;
  /** Signs the head after every append; `verify` checks the signatures. */
  readonly checkpointer?: HeadCheckpointer;
  /**
   * Attempts at winning the head against writers of other streams before giving up with
   * `ConcurrencyExhaustedError` (default 100; backoff is capped at 50 ms, so about two seconds of losing).
   */
  readonly maxHeadAttempts?: number;
  /** UTF-16 units of stored records kept by the stream cache; 0 turns it off (default 8M). */
  readonly streamCacheUnits?: number;
  /**
   * Where records too large for one entity (over 448,000 UTF-16 units) go, by reference. Without it such
   * records are refused with `AppendTooLargeError`.
   */
  readonly largeRecords?: ContainerClient;
  /** Signed heads kept outside the table; `verify` names a log that falls short of the latest one. */
  readonly witness?: HeadWitness;
  /** Told before each append's transaction that the workspace may get outbox rows (docs/messaging.md). */
  readonly outboxIndex?: Pick<OutboxPendingIndex, 'touch'>;
  /**
   * MACs every projection row with the platform's key (`projectionMacKey.ts`). Without one the store makes a
   * key of its own: its rows then verify in this process only, and readers elsewhere refold them from the log.
   */
  readonly projectionSeal?: ProjectionSeal;
  /**
   * Group commit (default on): concurrent appends to one workspace from this instance share one transaction
   * (see `appendBatch.ts`). Off, each append is its own transaction racing the others for the head.
   */
  readonly batchAppends?: boolean;
}

type Row = TableEntityResult<Record<string, unknown>>;
const statusOf = (error: unknown): number | undefined => (error instanceof RestError ? error.statusCode : undefined);

/** Lets http only for the local emulator on loopback; anything else must be https. */
function isLoopback(connectionString: string): boolean {
  const endpoint = /TableEndpoint=([^;]+)/i.exec(connectionString)?.[1];
  return endpoint !== undefined && /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//i.test(endpoint);
}

/**
 * The hash-chained workspace log on Azure Table storage (DESIGN.md §3, docs/event-log.md): one table,
 * PartitionKey = workspace id, every append one entity-group transaction guarded by stream-index inserts
 * (stream conflicts) and the head row's ETag (the total order).
 */
export class TableEventStore implements EventStore, OutboxStore {
  private readonly ids: Ids;
  private readonly hasher: Hasher;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly cache: StreamCache;
  /** The head row as this process last wrote it, per workspace (a guess, always checked by its ETag). */
  private readonly heads = new Map<string, HeadState>();
  private readonly groupCommit = new GroupCommit((workspaceId, queue) => this.commitBatch(workspaceId, takeBatch(queue), queue));
  private readonly blobs: RecordBlobs | undefined;
  private readonly transactionParts: TransactionParts;
  private readonly ensureTable: () => Promise<void>;
  /** Seals projection rows and checks them on the way back (shared with `TableWorkspaceRecords`). */
  readonly projectionSeal: ProjectionSeal;
  /** Counters for tests, benchmarks and metrics: appends, the transactions that carried them, and contention. */
  readonly stats = { appends: 0, transactions: 0, headRetries: 0, streamConflicts: 0 };

  constructor(private readonly client: TableClient, private readonly options: TableEventStoreOptions = {}) {
    this.ensureTable = tableCreatedOnce(client);
    this.ids = options.ids ?? randomUuidIds;
    this.hasher = options.hasher ?? nodeHasher;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.cache = new StreamCache(options.streamCacheUnits ?? 8 * 1024 * 1024);
    this.blobs = options.largeRecords ? new RecordBlobs(options.largeRecords) : undefined;
    this.projectionSeal = options.projectionSeal ?? ProjectionSeal.ephemeral();
    this.transactionParts = {
      ids: this.ids, hasher: this.hasher, blobs: this.blobs, checkpointer: options.checkpointer, projectionSeal: this.projectionSeal,
      projectionExists: async (workspaceId, key) => (await this.pointRead(workspaceId, projectionRowKey(key))) !== undefined,
    };
  }

  static fromConnectionString(connectionString: string, tableName: string, options?: TableEventStoreOptions): TableEventStore {
    const client = TableClient.fromConnectionString(connectionString, tableName, { allowInsecureConnection: isLoopback(connectionString) });
    return new TableEventStore(client, options);
  }

  async append(request: AppendRequest): Promise<AppendResult> {
    const { workspaceId, streamId, expectedVersion, events } = request;
    if (events.length === 0) throw new EmptyAppendError(streamId);
    const operations = operationsOf(request) + 1;
    if (operations > MAX_TRANSACTION_OPERATIONS) throw new TransactionTooLargeError(operations, MAX_TRANSACTION_OPERATIONS);
    await this.ensureTable();
    // Inserting version n+1 proves the stream is not beyond n; this proves it reached n (rows are never removed).
    if (expectedVersion > 0 && !(await this.streamHas(workspaceId, streamId, expectedVersion)))
      throw new VersionConflictError(streamId, expectedVersion);
    await this.options.outboxIndex?.touch(workspaceId);
    const redact = (await this.options.redactorFor?.(workspaceId)) ?? this.options.redact;
    return new Promise<AppendResult>((resolve, reject) => {
      const pending: PendingAppend = { request, redact, resolve, reject };
      if (this.options.batchAppends === false) void this.commitBatch(workspaceId, [pending], undefined);
      else this.groupCommit.submit(workspaceId, pending);
    });
  }

  /**
   * Commits the appends as one entity-group transaction and settles each caller. A stream conflict (the
   * service names the operation that failed) settles that caller alone and the rest go again at once; a moved
   * head re-reads it and all go again. Never throws: every error reaches the callers it concerns.
   */
  private async commitBatch(workspaceId: string, batch: readonly PendingAppend[], queue: PendingAppend[] | undefined): Promise<void> {
    let live = [...batch];
    try {
      const attempts = this.options.maxHeadAttempts ?? 100;
      // The head this process wrote last is usually still the head: submit against its ETag, and read the
      // row only when that guess has failed once (a 412 says another writer moved it).
      let head = this.heads.get(workspaceId) ?? (await this.readHead(workspaceId));
      for (let attempt = 0; live.length > 0; attempt++) {
        if (attempt >= attempts) {
          for (const p of live) p.reject(new ConcurrencyExhaustedError(p.request.streamId, attempts));
          return;
        }
        const built = await buildTransaction(this.transactionParts, workspaceId, live, head);
        if (built.kind === 'refused') {
          live[built.index]!.reject(built.error);
          live = live.filter((_, i) => i !== built.index);
          continue;
        }
        if (built.kind === 'tooLarge') {
          // Together they exceed the 4 MiB body: the last goes back to the front of the queue for the next one.
          queue?.unshift(live.pop()!);
          continue;
        }
        const { actions, results, owners, records } = built;
        try {
          const response = await this.client.submitTransaction(actions);
          this.stats.appends += live.length;
          this.stats.transactions++;
          const headEtag = response.subResponses[records * 2]?.etag;
          if (headEtag) this.heads.set(workspaceId, { ...built.head, etag: headEtag });
          else this.heads.delete(workspaceId);
          live.forEach((p, i) => p.resolve(results[i]!));
          return;
        } catch (error) {
          this.heads.delete(workspaceId);
          // 409: a row we insert exists; 412: the head moved; 404: a projection we delete went away.
          const status = statusOf(error);
          if (status !== 409 && status !== 412 && status !== 404) {
            // Not a race: perhaps one append's rows are at fault, so each goes alone and meets its own outcome.
            if (live.length === 1) live[0]!.reject(error);
            else for (const p of live) await this.commitBatch(workspaceId, [p], undefined);
            return;
          }
          const failed = failedOperationIndex(error);
          const owner = failed === undefined ? undefined : owners[failed];
          // When the service does not say which operation failed, every append's next stream row is a suspect.
          const suspects = owner !== undefined ? [owner] : failed === undefined ? live.map((_, i) => i) : [];
          const conflicted = new Set<number>();
          for (const i of suspects) {
            const { streamId, expectedVersion } = live[i]!.request;
            const next = await this.pointRead(workspaceId, streamRowKey(streamId, expectedVersion + 1));
            if (!next) continue;
            // The SDK retries a request whose response was lost; if that earlier try committed, all of it is ours.
            if (toRecord(next, await this.storedText(next)).id === results[i]!.records[0]!.id) {
              live.forEach((p, j) => p.resolve(results[j]!));
              return;
            }
            conflicted.add(i);
          }
          if (conflicted.size > 0) {
            for (const i of conflicted) {
              this.stats.streamConflicts++;
              const { streamId, expectedVersion } = live[i]!.request;
              live[i]!.reject(new VersionConflictError(streamId, expectedVersion));
            }
            live = live.filter((_, i) => !conflicted.has(i));
            continue;
          }
          this.stats.headRetries++;
          await this.clock.sleep(Math.floor(this.random.next() * Math.min(50, 2 * 2 ** Math.min(attempt, 5))));
          head = await this.readHead(workspaceId);
        }
      }
    } catch (error) {
      for (const p of live) p.reject(error);
    }
  }

  async readStream<E extends DomainEvent = DomainEvent>(workspaceId: string, streamId: string): Promise<StreamRead<E>> {
    await this.ensureTable();
    const cached = this.cache.get(workspaceId, streamId);
    const records = [...cached.records];
    let units = cached.units;
    for await (const row of this.rows(workspaceId, streamRange(streamId, records.length))) {
      const stored = await this.storedText(row);
      const record = toRecord(row, stored);
      if (record.streamVersion !== records.length + 1 || record.streamId !== streamId)
        throw new Error(`Stream index of ${streamId} is inconsistent at version ${records.length + 1}; run verify`);
      records.push(record);
      units += stored.length;
    }
    this.cache.set(workspaceId, streamId, records, units);
    return { version: records.length, events: records as unknown as readonly RecordedEvent<E>[] };
  }

  async readLog(workspaceId: string, options: { after?: number; limit?: number } = {}): Promise<LogPage> {
    await this.ensureTable();
    const limit = Math.max(1, Math.floor(options.limit ?? 100));
    const records: RecordedEvent[] = [];
    let more = false;
    for await (const row of this.rows(workspaceId, eventRange(Math.max(0, options.after ?? 0)))) {
      if (records.length === limit) {
        more = true;
        break;
      }
      records.push(toRecord(row, await this.storedText(row)));
    }
    const last = records[records.length - 1];
    return more && last ? { records, next: last.sequence } : { records };
  }

  async readProjection(workspaceId: string, key: string): Promise<Readonly<Record<string, unknown>> | undefined> {
    await this.ensureTable();
    const row = await this.pointRead(workspaceId, projectionRowKey(key));
    return row ? toProjectionValue(row) : undefined;
  }

  async listProjections(workspaceId: string, keyPrefix: string): Promise<readonly ProjectionRow[]> {
    await this.ensureTable();
    const out: ProjectionRow[] = [];
    for await (const row of this.rows(workspaceId, projectionRange(keyPrefix)))
      out.push({ key: String(row['key']), value: toProjectionValue(row) });
    return out;
  }

  async readCheckedProjection(workspaceId: string, key: string): Promise<CheckedProjection | undefined> {
    await this.ensureTable();
    const row = await this.pointRead(workspaceId, projectionRowKey(key));
    return row ? this.checked(workspaceId, row) : undefined;
  }

  async listCheckedProjections(workspaceId: string, keyPrefix: string): Promise<readonly CheckedProjection[]> {
    await this.ensureTable();
    const rows: Row[] = [];
    for await (const row of this.rows(workspaceId, projectionRange(keyPrefix))) rows.push(row);
    return Promise.all(rows.map((row) => this.checked(workspaceId, row)));
  }

  /** MAC first, then freshness: a row whose stream has a version after the one it vouches for is stale. */
  private async checked(workspaceId: string, row: Row): Promise<CheckedProjection> {
    let opened: ReturnType<typeof openProjectionRow>;
    try {
      opened = openProjectionRow(row, workspaceId, this.projectionSeal);
    } catch {
      return { key: String(row['key'] ?? ''), value: {}, check: 'forged' };
    }
    const { key, value, derivedFrom } = opened;
    if (!derivedFrom) return { key, value, check: 'forged' };
    const moved = await this.streamHas(workspaceId, derivedFrom.streamId, derivedFrom.version + 1);
    return { key, value, derivedFrom, check: moved ? 'stale' : 'verified' };
  }

  async verify(workspaceId: string): Promise<VerifyResult> {
    await this.ensureTable();
    const [headRow, witnessed] = await Promise.all([this.pointRead(workspaceId, HEAD_ROW_KEY), this.options.witness?.latest(workspaceId)]);
    // Unreadable rows become empty text, which verify reports as broken; I/O errors still propagate.
    const lenient = (row: Row): Promise<string> => this.storedText(row, true);
    const mapRows = async function* <T>(source: AsyncIterable<Row>, map: (row: Row, stored: string) => T): AsyncGenerator<T> {
      for await (const row of source) yield map(row, await lenient(row));
    };
    return verifyChain({
      workspaceId,
      rows: mapRows(this.rows(workspaceId, eventRange(0)), toChainRow),
      index: mapRows(this.rows(workspaceId, allStreamsRange()), toIndexRow),
      head: headRow ? toHeadRow(headRow) : undefined,
      hasher: this.hasher,
      checkpointer: this.options.checkpointer,
      witnessed,
    });
  }

  /** Unsent outbox rows (`o:`) of a workspace, lowest sequence first. */
  async listOutbox(workspaceId: string, options: { limit?: number } = {}): Promise<readonly OutboxEntry[]> {
    await this.ensureTable();
    const limit = Math.max(1, Math.floor(options.limit ?? 100));
    const out: OutboxEntry[] = [];
    for await (const row of this.rows(workspaceId, prefixRange('o:'))) {
      out.push({
        workspaceId, sequence: Number(row['sequence']), eventId: String(row['eventId']), streamId: String(row['streamId']), type: String(row['type']), etag: row.etag,
      });
      if (out.length === limit) break;
    }
    return out;
  }

  /**
   * Deletes the rows in one transaction (the SDK sends a batch delete with `If-Match: *`, which equals the ETag
   * guard here because an `o:` row is never updated or re-created); a row another dispatcher already removed
   * fails the batch, and the rows are then deleted one by one with their ETags, skipping the missing ones.
   */
  async markOutboxSent(workspaceId: string, entries: readonly OutboxEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i += MAX_TRANSACTION_OPERATIONS) {
      const chunk = entries.slice(i, i + MAX_TRANSACTION_OPERATIONS);
      const key = (e: OutboxEntry) => ({ partitionKey: workspaceId, rowKey: outboxRowKey(e.sequence) });
      try {
        await this.client.submitTransaction(chunk.map((e): TransactionAction => ['delete', key(e)]));
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
        // In order, one by one, so a crash still leaves the unsent rows a suffix of the log.
        for (const e of chunk) {
          try {
            await this.client.deleteEntity(workspaceId, key(e).rowKey, { etag: e.etag });
          } catch (inner) {
            if (statusOf(inner) !== 404) throw inner;
          }
        }
      }
    }
  }

  /** The record's stored bytes, from the row's parts or from the blob it names. */
  private async storedText(row: Row, lenient = false): Promise<string> {
    const ref = blobRefOf(row);
    if (ref !== undefined) {
      if (this.blobs) return this.blobs.get(ref);
      if (lenient) return '';
      throw new Error(`Record ${row.rowKey ?? ''} is held in Blob storage but this store has no largeRecords container`);
    }
    try {
      return inlineText(row);
    } catch (error) {
      if (lenient) return '';
      throw error;
    }
  }


  /** Every row in the range, through the SDK's continuation tokens (a query page holds at most 1,000). */
  private rows(workspaceId: string, range: KeyRange): AsyncIterable<Row> {
    const filter = odata`PartitionKey eq ${workspaceId} and RowKey ge ${range.from} and RowKey lt ${range.to}`;
    return this.client.listEntities<Record<string, unknown>>({ queryOptions: { filter } });
  }

  private async pointRead(workspaceId: string, rowKey: string): Promise<Row | undefined> {
    try {
      return await this.client.getEntity<Record<string, unknown>>(workspaceId, rowKey);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  private async readHead(workspaceId: string): Promise<ReturnType<typeof toHeadRow> | undefined> {
    const row = await this.pointRead(workspaceId, HEAD_ROW_KEY);
    return row ? toHeadRow(row) : undefined;
  }

  private async streamHas(workspaceId: string, streamId: string, version: number): Promise<boolean> {
    if (this.cache.get(workspaceId, streamId).records.length >= version) return true;
    return (await this.pointRead(workspaceId, streamRowKey(streamId, version))) !== undefined;
  }
}
