import type { TableClient } from '@azure/data-tables';
import type { Clock } from '../../domain/ports/clock';
import type { RunRequestClaim, RunRequestLedger } from '../../domain/ports/runRequestLedger';
import { keyPart, statusOf } from './tableKeys';

/**
 * The run-request ledger on Table storage: PartitionKey = workspace id, RowKey = `request:<request id>`, one
 * create-only row `{ runId, requestedBy, at }`. The insert is the guard: of two deliveries racing, one creates
 * the row and the other reads it back, so both ask for the same run id.
 */
export class TableRunRequestLedger implements RunRequestLedger {
  private ready: Promise<void> | undefined;

  constructor(private readonly table: TableClient, private readonly clock: Clock) {}

  async claim(workspaceId: string, requestId: string, proposal: { runId: string; requestedBy: string }): Promise<RunRequestClaim> {
    await this.ensureTable();
    const rowKey = `request:${keyPart(requestId)}`;
    try {
      await this.table.createEntity({ partitionKey: workspaceId, rowKey, ...proposal, at: this.clock.now().toISOString() });
      return { ...proposal, fresh: true };
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
    const row = await this.table.getEntity<{ runId?: unknown; requestedBy?: unknown }>(workspaceId, rowKey);
    if (typeof row.runId !== 'string' || typeof row.requestedBy !== 'string') throw new Error(`Run request ledger row ${rowKey} is malformed`);
    return { runId: row.runId, requestedBy: row.requestedBy, fresh: false };
  }

  private ensureTable(): Promise<void> {
    this.ready ??= this.table.createTable().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }
}
