import { type TableClient, odata } from '@azure/data-tables';
import type { ActiveRun, ActiveRuns } from '../../domain/ports/activeRuns';
import { isUnfinishedRun } from '../../domain/run';
import { projectionKeys } from '../../domain/streams';
import { projectionRange } from './rowKeys';
import { fromParts } from './textParts';

/**
 * Run status projections across all workspace partitions (a RowKey-range scan: Table storage has no secondary
 * index). Fine for a sweep that runs every minute; a busy deployment would keep a dedicated index instead.
 */
export class TableActiveRuns implements ActiveRuns {
  constructor(private readonly client: TableClient) {}

  async list(): Promise<readonly ActiveRun[]> {
    const range = projectionRange(projectionKeys.runPrefix);
    const runs: ActiveRun[] = [];
    for await (const row of this.client.listEntities({ queryOptions: { filter: odata`RowKey ge ${range.from} and RowKey lt ${range.to}` } })) {
      const value = JSON.parse(fromParts('value', row as Record<string, unknown>)) as Record<string, unknown>;
      if (!isUnfinishedRun(value.status)) continue;
      const leases = Array.isArray(value.activeLeases) ? (value.activeLeases as Array<Record<string, unknown>>) : [];
      runs.push({
        workspaceId: row.partitionKey ?? '',
        runId: String(value.runId),
        status: String(value.status),
        deadline: String(value.deadline),
        leaseExpiries: leases.map((l) => ({ leaseId: String(l.leaseId), expiresAt: String(l.expiresAt) })),
      });
    }
    return runs;
  }
}
