import { type TableClient, type TransactionAction, odata } from '@azure/data-tables';
import type { TableEntityResult } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { ChainRow, HeadRow } from './chainVerifier';
import { MAX_TRANSACTION_OPERATIONS, blobRefOf, eventEntity, headEntity, inlineText, streamIndexEntity, toChainRow, toHeadRow } from './logEntities';
import { parseRecord } from './logRecord';
import { RecordBlobs } from './recordBlobs';
import { HEAD_ROW_KEY, eventRange } from './rowKeys';
import { MAX_TEXT_UNITS } from './textParts';

type Row = TableEntityResult<Record<string, unknown>>;

/** A workspace's log as the chain covers it: every record's stored bytes with its hashes and checkpoint, and the head. */
export interface LogSnapshot {
  readonly workspaceId: string;
  readonly head: HeadRow;
  readonly records: readonly ChainRow[];
}

/** A workspace's head row as a cross-partition scan finds it. */
export interface PartitionHead extends HeadRow {
  readonly workspaceId: string;
}

/**
 * Reads whole workspace logs out of the event-log table and writes them back into an empty one: what backup
 * and restore move (docs/backup.md). Stream-index rows are derived from the records on the way in; projections
 * are rebuilt by replay, outbox rows are not restored (their events were published when first written).
 */
export class TableLogTransfer {
  private readonly blobs: RecordBlobs | undefined;

  constructor(private readonly client: TableClient, largeRecords?: ContainerClient) {
    this.blobs = largeRecords ? new RecordBlobs(largeRecords) : undefined;
  }

  /** Every partition's head row: one scan of the table (RowKey only), the list of logs a backup may need to copy. */
  async *heads(): AsyncIterable<PartitionHead> {
    const filter = odata`RowKey eq ${HEAD_ROW_KEY}`;
    for await (const row of this.client.listEntities<Record<string, unknown>>({ queryOptions: { filter } }))
      yield { workspaceId: row.partitionKey ?? '', ...withoutEtag(toHeadRow(row)) };
  }

  /** The workspace's head and every record up to it (rows appended meanwhile are left for the next copy). */
  async export(workspaceId: string): Promise<LogSnapshot | undefined> {
    const headRow = await this.pointRead(workspaceId, HEAD_ROW_KEY);
    if (!headRow) return undefined;
    const head = withoutEtag(toHeadRow(headRow));
    const records: ChainRow[] = [];
    const range = eventRange(0);
    const filter = odata`PartitionKey eq ${workspaceId} and RowKey ge ${range.from} and RowKey lt ${range.to}`;
    for await (const row of this.client.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
      const record = toChainRow(row, await this.storedText(row));
      if (record.sequence > head.sequence) break;
      records.push(record);
    }
    return { workspaceId, head, records };
  }

  /** True when the workspace's partition holds no row at all: the only place a restore writes. */
  async isEmpty(workspaceId: string): Promise<boolean> {
    const filter = odata`PartitionKey eq ${workspaceId}`;
    try {
      for await (const _row of this.client.listEntities({ queryOptions: { filter, select: ['RowKey'] } })) return false;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
    return true;
  }

  /**
   * Writes the records, their stream-index rows and the head with inserts only, so a row already there fails the
   * restore instead of being overwritten. The head goes last: until it is written the log reads as unfinished.
   */
  async import(snapshot: LogSnapshot): Promise<void> {
    const { workspaceId } = snapshot;
    await this.client.createTable().catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 409) throw error;
    });
    const actions: TransactionAction[] = [];
    for (const row of snapshot.records) {
      const sealed = { record: parseRecord(row.stored, row.prevHash, row.hash), stored: row.stored };
      if (sealed.record.workspaceId !== workspaceId) throw new Error(`Record ${row.sequence} belongs to another workspace`);
      const blobRef = row.stored.length > MAX_TEXT_UNITS ? await this.requireBlobs().put(workspaceId, row.hash, row.stored) : undefined;
      actions.push(['create', eventEntity(sealed, row.checkpoint, blobRef)], ['create', streamIndexEntity(sealed, blobRef)]);
    }
    // Half a transaction per batch each: an event row and its index row always land together.
    for (let i = 0; i < actions.length; i += MAX_TRANSACTION_OPERATIONS) await this.client.submitTransaction(actions.slice(i, i + MAX_TRANSACTION_OPERATIONS));
    await this.client.createEntity(headEntity(workspaceId, snapshot.head));
  }

  private requireBlobs(): RecordBlobs {
    if (!this.blobs) throw new Error('A record too large for one entity needs the largeRecords container to be restored');
    return this.blobs;
  }

  private async storedText(row: Row): Promise<string> {
    const ref = blobRefOf(row);
    if (ref === undefined) return inlineText(row);
    if (!this.blobs) throw new Error(`Record ${row.rowKey ?? ''} is held in Blob storage but no largeRecords container was given`);
    return this.blobs.get(ref);
  }

  private async pointRead(workspaceId: string, rowKey: string): Promise<Row | undefined> {
    try {
      return await this.client.getEntity<Record<string, unknown>>(workspaceId, rowKey);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  }
}

function withoutEtag(head: HeadRow & { etag: string }): HeadRow {
  return { sequence: head.sequence, hash: head.hash, ...(head.signature === undefined ? {} : { signature: head.signature }) };
}
