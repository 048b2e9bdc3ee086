import { type TableClient, odata } from '@azure/data-tables';
import type { TableBackupKeys } from '../backup/tableBackupKeys';
import { escapeKeyPart } from '../tables/rowKeys';

/** The Durable task hub as purge needs it: remove an instance with its history, find instances by id prefix. */
export interface DurableInstances {
  /** Removes the instance and all its history; an instance already gone is not an error. */
  purge(instanceId: string): Promise<void>;
  instanceIdsStartingWith(prefix: string): Promise<readonly string[]>;
}

/** The tables purge reaches beyond the workspace's own partition (their names come from settings). */
export interface LeftoverTables {
  /** Run-request ledger: PartitionKey = workspace id. */
  readonly runRequests: TableClient;
  /** Outbox index: PartitionKey `pending`, RowKey = the escaped workspace id. */
  readonly outboxIndex: TableClient;
  /** Gateway bearers: per run `run:<ws>:<runId>` index rows pointing at `b<hh>` bearer rows. */
  readonly gatewayBearers: TableClient;
}

const statusOf = (error: unknown): number | undefined => (error as { statusCode?: number }).statusCode;
const ignoreMissing = (error: unknown): void => {
  if (statusOf(error) !== 404) throw error;
};

async function deleteRow(table: TableClient, partitionKey: string, rowKey: string): Promise<void> {
  await table.deleteEntity(partitionKey, rowKey).catch(ignoreMissing);
}

/** Every row of a partition, deleted one by one (a table or row already gone is what we want). */
async function deletePartition(table: TableClient, partitionKey: string, onRow?: (row: Record<string, unknown>) => Promise<void>): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  try {
    for await (const row of table.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`PartitionKey eq ${partitionKey}` } })) rows.push(row);
  } catch (error) {
    ignoreMissing(error);
  }
  for (const row of rows) {
    await onRow?.(row);
    await deleteRow(table, partitionKey, String(row['rowKey']));
  }
}

/**
 * Purge's reach outside the workspace's partition, blobs and vault (docs/workspace-lifecycle.md): its runs'
 * Durable instances (and the deletion orchestration's), run-request ledger rows, the outbox marker, gateway
 * bearer rows and the backup key, whose destruction leaves its immutable backups unreadable.
 */
export class WorkspaceLeftovers {
  constructor(private readonly parts: { readonly tables: LeftoverTables; readonly backupKeys: TableBackupKeys; readonly durable: DurableInstances }) {}

  async purge(workspaceId: string, runIds: readonly string[]): Promise<void> {
    const { tables, durable } = this.parts;
    const deletions = await durable.instanceIdsStartingWith(`delete-${workspaceId}-`);
    for (const instanceId of [...runIds, ...deletions]) await durable.purge(instanceId);
    await deletePartition(tables.runRequests, workspaceId);
    for (const runId of runIds) {
      await deletePartition(tables.gatewayBearers, `run:${workspaceId}:${runId}`, async (row) => {
        if (typeof row['bearerPartition'] === 'string') await deleteRow(tables.gatewayBearers, row['bearerPartition'], String(row['rowKey']));
      });
    }
    await deleteRow(tables.outboxIndex, 'pending', escapeKeyPart(workspaceId));
    await this.parts.backupKeys.destroy(workspaceId);
  }
}

/** The Durable client of a timer or HTTP trigger, as `DurableInstances` (purging a running instance is refused by the host). */
export function durableClientInstances(client: {
  purgeInstanceHistory(instanceId: string): Promise<unknown>;
  getStatusAll(): Promise<readonly { instanceId?: string }[]>;
}): DurableInstances {
  return {
    purge: async (instanceId) => {
      await client.purgeInstanceHistory(instanceId);
    },
    instanceIdsStartingWith: async (prefix) =>
      (await client.getStatusAll()).map((s) => s.instanceId ?? '').filter((id) => id.startsWith(prefix)),
  };
}
