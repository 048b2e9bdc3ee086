import { type TableClient, odata } from '@azure/data-tables';
import type { ActiveRun, ActiveRuns } from '../../domain/ports/activeRuns';
import { isUnfinishedRun, runStatusFromRow } from '../../domain/run';
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
      const view = runStatusFromRow(JSON.parse(fromParts('value', row as Record<string, unknown>)) as Record<string, unknown>);
      if (!view || !isUnfinishedRun(view.status)) continue;
      runs.push({
        workspaceId: row.partitionKey ?? '',
        runId: view.runId,
        status: view.status,
        deadline: view.deadline,
        leaseExpiries: view.activeLeases.map(({ leaseId, expiresAt }) => ({ leaseId, expiresAt })),
      });
    }
    return runs;
  }
}
