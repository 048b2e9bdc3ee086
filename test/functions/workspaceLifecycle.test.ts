import { beforeAll, describe, expect, it } from 'vitest';
import { BlobServiceClient } from '@azure/storage-blob';
import type { Clock } from '../../domain/ports/clock';
import {
  purgeDueWorkspaces,
  purgeWorkspaceIfDue,
  recoverWorkspace,
  removeLiveRecordsAndSeal,
  requestWorkspaceDeletion,
  softDeleteWorkspaceVault,
  type WorkspaceLifecycleDependencies,
} from '../../domain/services/workspaceLifecycle';
import { PLATFORM_PARTITION, projectionKeys } from '../../domain/streams';
import { deleteBlobsUnder } from '../../infra/storage/storageClients';
import { TableWorkspaceRecords } from '../../infra/tables/tableWorkspaceRecords';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';
import { azuriteConnectionString, uniqueName } from '../support/azurite';

let h: ApiHarness;
let owner: string;
let member: string;
const container = BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(uniqueName('transcripts'));

function lifecycle(clock: Clock = h.deps.clock): WorkspaceLifecycleDependencies {
  return { ...h.deps, clock, records: new TableWorkspaceRecords(h.eventTable, h.store.projectionSeal), removeBlobs: (ws) => deleteBlobsUnder(container, `${ws}/`) };
}

const later = (days: number): Clock => ({ now: () => new Date(Date.now() + days * 86_400_000), sleep: async () => undefined });

async function rowsOf(ws: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const row of h.eventTable.listEntities({ queryOptions: { filter: `PartitionKey eq '${ws}'` } })) keys.push(row.rowKey ?? '');
  return keys;
}

async function setUpWorkspace(): Promise<string> {
  const ws = ((await h.call('POST', '/api/workspaces', { token: owner, body: { name: 'Doomed' } })).json as { id: string }).id;
  await h.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: owner, body: { role: 'member' } });
  expect((await h.call('PUT', `/api/workspaces/${ws}/secrets/DEPLOY_KEY`, { token: owner, body: { value: 'deploy-key-value-0001', allowedHosts: ['example.com'] } })).status).toBe(201);
  await container.createIfNotExists();
  await container.getBlockBlobClient(`${ws}/run1/00000001`).upload('redacted output', 15);
  return ws;
}

async function deleteFully(ws: string, retentionDays: number): Promise<void> {
  const caller = { actor: 'alice', correlationId: 'test' };
  await requestWorkspaceDeletion(h.deps, caller, ws, retentionDays);
  await softDeleteWorkspaceVault(h.deps, ws, 'test');
  await removeLiveRecordsAndSeal(lifecycle(), ws, 'test');
}

beforeAll(async () => {
  h = await createApiHarness();
  owner = await h.issuer.token('alice');
  member = await h.issuer.token('bob');
});

describe('deleting and recovering a workspace', () => {
  it('only an owner may delete', async () => {
    const ws = await setUpWorkspace();
    await expect(requestWorkspaceDeletion(h.deps, { actor: 'bob', correlationId: 't' }, ws, 7)).rejects.toMatchObject({ code: 'WORKSPACE.OWNER_REQUIRED' });
    await expect(requestWorkspaceDeletion(h.deps, { actor: 'mallory', correlationId: 't' }, ws, 7)).rejects.toMatchObject({ code: 'WORKSPACE.NOT_FOUND' });
  });

  it('afterwards no live row remains, the vault is soft-deleted, and every route answers 404', async () => {
    const ws = await setUpWorkspace();
    await deleteFully(ws, 7);
    const rows = await rowsOf(ws);
    expect(rows.filter((k) => k.startsWith('p:'))).toEqual([]);
    expect(rows.some((k) => k.startsWith('e:'))).toBe(true); // the sealed log stays for the retention period
    const blobs: string[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: `${ws}/` })) blobs.push(blob.name);
    expect(blobs).toEqual([]);
    expect(await h.vault.status(ws)).toMatchObject({ state: 'deleted' });
    await expect(h.vault.resolve(ws, 'DEPLOY_KEY')).rejects.toMatchObject({ code: 'VAULT.DELETED' });
    for (const token of [owner, member]) {
      expect((await h.call('GET', `/api/workspaces/${ws}`, { token })).status).toBe(404);
      expect((await h.call('GET', `/api/workspaces/${ws}/secrets`, { token })).status).toBe(404);
      expect((await h.call('PUT', `/api/workspaces/${ws}/secrets/X_KEY`, { token, body: { value: 'another-value-1' } })).status).toBe(404);
    }
  });

  it('purge before the retention ends is refused; the log and vault stay', async () => {
    const ws = await setUpWorkspace();
    await deleteFully(ws, 7);
    expect(await purgeWorkspaceIfDue(lifecycle(later(6)), ws)).toBe(false);
    await expect(h.vault.purge(ws, new Date())).rejects.toMatchObject({ code: 'VAULT.PURGE_PROTECTED' });
    expect((await rowsOf(ws)).length).toBeGreaterThan(0);
  });

  it('recover within retention restores workspace, members and secret metadata, and secrets resolve again', async () => {
    const ws = await setUpWorkspace();
    const before = (await h.call('GET', `/api/workspaces/${ws}/secrets`, { token: owner })).json;
    await deleteFully(ws, 30);
    await expect(recoverWorkspace(lifecycle(), { actor: 'bob', correlationId: 't' }, ws)).rejects.toMatchObject({ code: 'WORKSPACE.OWNER_REQUIRED' });
    await expect(recoverWorkspace(lifecycle(), { actor: 'mallory', correlationId: 't' }, ws)).rejects.toMatchObject({ code: 'WORKSPACE.NOT_FOUND' });
    await recoverWorkspace(lifecycle(), { actor: 'alice', correlationId: 't' }, ws);
    const summary = await h.call('GET', `/api/workspaces/${ws}`, { token: member });
    expect(summary.status).toBe(200);
    expect(summary.json).toMatchObject({ name: 'Doomed', members: expect.arrayContaining([{ userId: 'alice', role: 'owner' }, { userId: 'bob', role: 'member' }]) });
    expect((await h.call('GET', `/api/workspaces/${ws}/secrets`, { token: owner })).json).toEqual(before);
    h.resolver.invalidate(ws);
    expect((await h.resolver.resolve(ws, 'DEPLOY_KEY')).value).toBe('deploy-key-value-0001');
    expect((await h.call('GET', `/api/workspaces/${ws}/audit/verify`, { token: owner })).json).toMatchObject({ ok: true });
  });

  it('recover after the retention has ended is refused', async () => {
    const ws = await setUpWorkspace();
    await deleteFully(ws, 7);
    await expect(recoverWorkspace(lifecycle(later(8)), { actor: 'alice', correlationId: 't' }, ws)).rejects.toMatchObject({ code: 'WORKSPACE.RETENTION_ENDED' });
  });

  it('purge after retention removes the log, the vault and every blob for good', async () => {
    const ws = await setUpWorkspace();
    await deleteFully(ws, 7);
    expect(await purgeWorkspaceIfDue(lifecycle(later(8)), ws)).toBe(true);
    expect(await rowsOf(ws)).toEqual([]);
    expect(await h.vault.status(ws)).toMatchObject({ state: 'absent' });
    expect(await purgeWorkspaceIfDue(lifecycle(later(8)), ws)).toBe(false);
  });

  it('the sweep purges exactly the workspaces whose retention has ended, and two sweeps at once do no harm', async () => {
    const due = await setUpWorkspace();
    const notDue = await setUpWorkspace();
    await deleteFully(due, 7);
    await deleteFully(notDue, 30);
    const results = await Promise.all([purgeDueWorkspaces(lifecycle(later(10))), purgeDueWorkspaces(lifecycle(later(10)))]);
    expect(results.reduce((n, r) => n + r.purged, 0)).toBeGreaterThanOrEqual(1);
    expect(await rowsOf(due)).toEqual([]);
    expect((await rowsOf(notDue)).length).toBeGreaterThan(0);
    expect(await h.vault.status(notDue)).toMatchObject({ state: 'deleted' });
    const index = await h.store.listProjections(PLATFORM_PARTITION, projectionKeys.deletedWorkspacePrefix);
    expect(index.map((r) => r.value.workspaceId)).toContain(notDue);
    expect(index.map((r) => r.value.workspaceId)).not.toContain(due);
  });
});
