import { type TableClient, type TableEntity, odata } from '@azure/data-tables';
import { tableCreatedOnce } from './tableOnce';
import type { HostSessionAddress } from '../../domain/ports/hostSessions';
import type { SshTunnelRecord, SshTunnelStore } from '../../domain/ports/sshTunnels';

const PREFIX = 'ssh:';
const ROW = 'tunnel';

/**
 * IDE SSH tunnels through Web PubSub in Table storage, beside the host sessions (the same table: partitions
 * `ssh:<tunnelId>`, row `tunnel`, which the sessions' `head` rows never collide with).
 */
export class TableSshTunnels implements SshTunnelStore {
  private readonly ready: () => Promise<void>;

  constructor(private readonly table: TableClient, options: { createTable?: boolean } = {}) {
    this.ready = options.createTable ? tableCreatedOnce(table) : () => Promise.resolve();
  }

  async open(record: Omit<SshTunnelRecord, 'closed'>): Promise<void> {
    await this.ready();
    await this.table.createEntity({
      partitionKey: `${PREFIX}${record.tunnelId}`, rowKey: ROW, connectionId: record.connectionId, workspaceId: record.workspaceId, runId: record.runId,
      sessionId: record.sessionId, actor: record.actor, hostWorkspaceId: record.host.workspaceId, hostId: record.host.hostId, hostSession: record.hostSession, sandboxId: record.sandboxId, closed: '',
    });
  }

  async get(tunnelId: string): Promise<SshTunnelRecord | undefined> {
    await this.ready();
    try {
      return recordOf(await this.table.getEntity<TableEntity>(`${PREFIX}${tunnelId}`, ROW));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async onHost(address: HostSessionAddress): Promise<readonly SshTunnelRecord[]> {
    await this.ready();
    const found: SshTunnelRecord[] = [];
    const filter = odata`PartitionKey ge ${PREFIX} and PartitionKey lt ${'ssh;'} and RowKey eq ${ROW} and hostWorkspaceId eq ${address.workspaceId} and hostId eq ${address.hostId}`;
    for await (const row of this.table.listEntities<TableEntity>({ queryOptions: { filter } })) found.push(recordOf(row));
    return found;
  }

  async close(tunnelId: string, reason: string): Promise<boolean> {
    await this.ready();
    for (;;) {
      let row: TableEntity;
      try {
        row = await this.table.getEntity<TableEntity>(`${PREFIX}${tunnelId}`, ROW);
      } catch (error) {
        if (statusOf(error) === 404) return false;
        throw error;
      }
      if (typeof row.closed === 'string' && row.closed !== '') return false;
      try {
        // Only against the version read: two instances ending the tunnel at once, one of them ends it.
        await this.table.updateEntity({ partitionKey: row.partitionKey, rowKey: ROW, closed: reason || 'ended' }, 'Merge', { etag: String(row.etag) });
        return true;
      } catch (error) {
        const status = statusOf(error);
        if (status === 404) return false;
        if (status !== 412) throw error;
      }
    }
  }

  async remove(tunnelId: string): Promise<void> {
    await this.ready();
    await this.table.deleteEntity(`${PREFIX}${tunnelId}`, ROW).catch((error: unknown) => {
      if (statusOf(error) !== 404) throw error;
    });
  }
}

function recordOf(row: TableEntity): SshTunnelRecord {
  const text = (name: string): string => (typeof row[name] === 'string' ? (row[name] as string) : '');
  return {
    tunnelId: row.partitionKey.slice(PREFIX.length), connectionId: text('connectionId'), workspaceId: text('workspaceId'), runId: text('runId'),
    sessionId: text('sessionId'), actor: text('actor'), host: { workspaceId: text('hostWorkspaceId'), hostId: text('hostId') },
    hostSession: text('hostSession'), sandboxId: text('sandboxId'), closed: text('closed'),
  };
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}
