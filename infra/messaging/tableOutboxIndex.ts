import type { TableClient } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { Clock } from '../../domain/ports/clock';
import type { OutboxPendingIndex } from '../../domain/ports/outbox';
import { keyPart, statusOf } from './tableKeys';
import { tableCreatedOnce } from '../tables/tableOnce';

const PARTITION = 'pending';

export interface TableOutboxIndexOptions {
  /** A marker idle this long, over an empty outbox, is removed (default ten minutes). */
  readonly graceMs?: number;
}

/**
 * Which workspaces may have unsent outbox rows: one marker row per workspace in a small table
 * (PartitionKey `pending`, RowKey = workspace id, `touchedAt`). The store touches the marker *before* each
 * append's transaction, and skips the write when this process touched it less than grace/2 ago, so a busy
 * workspace costs one extra write per five minutes, not one per append. The dispatcher removes a marker only
 * when it is older than the grace period AND the outbox is empty when read after the marker, with the
 * marker's ETag, so an append that touched it meanwhile keeps it. A committed outbox row therefore always
 * has a marker, as long as an append takes less than grace/2 from its touch to its commit and clocks agree
 * within that margin (docs/messaging.md).
 */
export class TableOutboxIndex implements OutboxPendingIndex {
  private readonly graceMs: number;
  private readonly touched = new Map<string, number>();
  private readonly ensureTable: () => Promise<void>;

  constructor(private readonly table: TableClient, private readonly clock: Clock, options: TableOutboxIndexOptions = {}) {
    this.ensureTable = tableCreatedOnce(table);
    this.graceMs = options.graceMs ?? 10 * 60_000;
  }

  async touch(workspaceId: string): Promise<void> {
    const now = this.clock.now().getTime();
    const last = this.touched.get(workspaceId);
    if (last !== undefined && now - last < this.graceMs / 2) return;
    await this.ensureTable();
    await this.table.upsertEntity({ partitionKey: PARTITION, rowKey: keyPart(workspaceId), workspaceId, touchedAt: new Date(now).toISOString() }, 'Replace');
    if (this.touched.size > 100_000) this.touched.clear();
    this.touched.set(workspaceId, now);
  }

  async pending(): Promise<readonly string[]> {
    await this.ensureTable();
    const out: string[] = [];
    const rows = this.table.listEntities<{ workspaceId?: unknown }>({ queryOptions: { filter: odata`PartitionKey eq ${PARTITION}`, select: ['workspaceId'] } });
    for await (const row of rows) if (typeof row.workspaceId === 'string') out.push(row.workspaceId);
    return out;
  }

  async settle(workspaceId: string, isEmpty: () => Promise<boolean>): Promise<boolean> {
    await this.ensureTable();
    let row;
    try {
      row = await this.table.getEntity<{ touchedAt?: unknown }>(PARTITION, keyPart(workspaceId));
    } catch (error) {
      if (statusOf(error) === 404) return true;
      throw error;
    }
    const touchedAt = typeof row.touchedAt === 'string' ? Date.parse(row.touchedAt) : Number.NaN;
    if (!(this.clock.now().getTime() - touchedAt >= this.graceMs)) return false;
    if (!(await isEmpty())) return false;
    try {
      await this.table.deleteEntity(PARTITION, keyPart(workspaceId), { etag: row.etag });
      this.touched.delete(workspaceId);
      return true;
    } catch (error) {
      // 412: an append touched it after we read it; 404: another dispatcher removed it.
      if (statusOf(error) === 412) return false;
      if (statusOf(error) === 404) return true;
      throw error;
    }
  }

}
