import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SshTunnelRecord } from '../../../domain/ports/sshTunnels';
import { TableHostSessions } from '../../../infra/tables/tableHostSessions';
import { TableSshTunnels } from '../../../infra/tables/tableSshTunnels';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';

const aTunnel = (parts: Partial<SshTunnelRecord> = {}): Omit<SshTunnelRecord, 'closed'> => ({
  tunnelId: randomUUID(), connectionId: `conn-${randomUUID()}`, workspaceId: 'ws-1', runId: 'run-1', sessionId: randomUUID(), actor: 'alice',
  host: { workspaceId: 'ws-1', hostId: 'host-1' }, hostSession: 'session-1', sandboxId: 'sb-1', ...parts,
});

describe('TableSshTunnels', () => {
  let table: TableClient;
  let tunnels: TableSshTunnels;

  beforeAll(async () => {
    table = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('hostsessions'), { allowInsecureConnection: true });
    tunnels = new TableSshTunnels(table, { createTable: true });
  });

  it('keeps a tunnel once; of two instances ending it at once, one does; the ended row stays until removed', async () => {
    const tunnel = aTunnel();
    await tunnels.open(tunnel);
    await expect(tunnels.open({ ...tunnel, connectionId: 'another' })).rejects.toBeDefined();
    expect(await tunnels.get(tunnel.tunnelId)).toEqual({ ...tunnel, closed: '' });
    const outcomes = await Promise.all([tunnels.close(tunnel.tunnelId, 'the client disconnected'), tunnels.close(tunnel.tunnelId, 'the sandbox was torn down')]);
    expect(outcomes.filter(Boolean)).toHaveLength(1);
    expect((await tunnels.get(tunnel.tunnelId))?.closed).toMatch(/^(the client disconnected|the sandbox was torn down)$/);
    expect(await tunnels.close(tunnel.tunnelId, 'again')).toBe(false);
    await tunnels.remove(tunnel.tunnelId);
    await tunnels.remove(tunnel.tunnelId);
    expect(await tunnels.get(tunnel.tunnelId)).toBeUndefined();
    expect(await tunnels.close(tunnel.tunnelId, 'gone')).toBe(false);
  });

  it("lists a host's tunnels only, and never shows up as a host session's head in the shared table", async () => {
    const mine = [aTunnel({ host: { workspaceId: 'ws-2', hostId: 'host-2' } }), aTunnel({ host: { workspaceId: 'ws-2', hostId: 'host-2' } })];
    await Promise.all([...mine, aTunnel({ host: { workspaceId: 'ws-2', hostId: 'host-3' } }), aTunnel({ host: { workspaceId: 'ws-3', hostId: 'host-2' } })].map((t) => tunnels.open(t)));
    expect((await tunnels.onHost({ workspaceId: 'ws-2', hostId: 'host-2' })).map((t) => t.tunnelId).sort()).toEqual(mine.map((t) => t.tunnelId).sort());
    expect(await new TableHostSessions(table).heads()).toEqual([]);
  });
});
