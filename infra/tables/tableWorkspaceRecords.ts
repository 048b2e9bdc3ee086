import { type TableClient, type TransactionAction, odata } from '@azure/data-tables';
import type { ProjectionWrite } from '../../domain/ports/eventStore';
import type { WorkspaceRecords } from '../../domain/ports/workspaceRecords';
import { MAX_TRANSACTION_OPERATIONS, projectionEntity } from './logEntities';
import type { ProjectionSeal } from './projectionSeal';
import { type KeyRange, projectionRange, projectionRowKey } from './rowKeys';

/** The live-record side of a workspace partition in the event-log table (see docs/event-log.md for the layout). */
export class TableWorkspaceRecords implements WorkspaceRecords {
  /** `seal`: the event store's (`TableEventStore.projectionSeal`), so rebuilt rows verify like appended ones. */
  constructor(private readonly client: TableClient, private readonly seal?: ProjectionSeal) {}

  async deleteProjections(workspaceId: string): Promise<number> {
    return this.deleteKeys(workspaceId, await this.keysIn(workspaceId, projectionRange('')));
  }

  async writeProjections(workspaceId: string, writes: readonly ProjectionWrite[]): Promise<void> {
    const upserts: TransactionAction[] = [];
    for (const write of writes) {
      if (write.kind === 'upsert') {
        const sealing = this.seal && write.derivedFrom ? { seal: this.seal, from: write.derivedFrom } : undefined;
        upserts.push(['upsert', projectionEntity(workspaceId, write.key, write.value, sealing), 'Replace']);
      }
      else await this.deleteKeys(workspaceId, [projectionRowKey(write.key)]);
    }
    for (let i = 0; i < upserts.length; i += MAX_TRANSACTION_OPERATIONS) {
      await this.client.submitTransaction(upserts.slice(i, i + MAX_TRANSACTION_OPERATIONS));
    }
  }

  async purgePartition(workspaceId: string): Promise<number> {
    return this.deleteKeys(workspaceId, await this.keysIn(workspaceId));
  }

  private async keysIn(workspaceId: string, range?: KeyRange): Promise<string[]> {
    const filter = range
      ? odata`PartitionKey eq ${workspaceId} and RowKey ge ${range.from} and RowKey lt ${range.to}`
      : odata`PartitionKey eq ${workspaceId}`;
    const keys: string[] = [];
    for await (const row of this.client.listEntities({ queryOptions: { filter, select: ['RowKey'] } })) keys.push(row.rowKey ?? '');
    return keys.filter((k) => k !== '');
  }

  private async deleteKeys(workspaceId: string, keys: readonly string[]): Promise<number> {
    for (let i = 0; i < keys.length; i += MAX_TRANSACTION_OPERATIONS) {
      const batch: TransactionAction[] = keys.slice(i, i + MAX_TRANSACTION_OPERATIONS).map((rowKey) => ['delete', { partitionKey: workspaceId, rowKey }]);
      try {
        await this.client.submitTransaction(batch);
      } catch (error) {
        // A row deleted meanwhile (a concurrent sweep) fails the batch with 404: delete one by one, ignoring those.
        if ((error as { statusCode?: number }).statusCode !== 404) throw error;
        for (const [, entity] of batch) {
          await this.client.deleteEntity(workspaceId, entity.rowKey ?? '').catch((e: { statusCode?: number }) => {
            if (e.statusCode !== 404) throw e;
          });
        }
      }
    }
    return keys.length;
  }
}
