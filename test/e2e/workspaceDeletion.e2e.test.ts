import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableEventStore } from '../../infra/tables/tableEventStore';
import { azuriteConnectionString } from '../support/azurite';
import type { LocalHostProcess } from '../support/localHostProcess';
import { apiClient, backendEnv, type Call, startBackend, tokenFor, waitForRun } from './runHarness';

const env = backendEnv();
const eventLogTable = env.EVENT_LOG_TABLE ?? 'eventlog';
let host: LocalHostProcess;
let owner: Call;
let member: Call;

async function logTypes(ws: string): Promise<Array<{ type: string; streamId: string }>> {
  const table = TableClient.fromConnectionString(azuriteConnectionString(), eventLogTable, { allowInsecureConnection: true });
  const page = await new TableEventStore(table).readLog(ws, { limit: 1000 });
  return page.records.map((r) => ({ type: r.type, streamId: r.streamId }));
}

async function liveRowKeys(ws: string): Promise<string[]> {
  const table = TableClient.fromConnectionString(azuriteConnectionString(), eventLogTable, { allowInsecureConnection: true });
  const keys: string[] = [];
  for await (const row of table.listEntities({ queryOptions: { filter: `PartitionKey eq '${ws}'` } })) keys.push(row.rowKey ?? '');
  return keys.filter((k) => k.startsWith('p:'));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  host = await startBackend(env);
  owner = apiClient(() => host.url, await tokenFor('olivia', env));
  member = apiClient(() => host.url, await tokenFor('max', env));
}, 120_000);

afterAll(async () => {
  await host?.stop();
});

describe('deleting a workspace through the local host', () => {
  it('cancels its running run, soft-deletes the vault, removes live records; recover brings it back', async () => {
    const ws = ((await owner('POST', '/api/workspaces', { name: 'Short-lived' })).json as { id: string }).id;
    expect((await owner('PUT', `/api/workspaces/${ws}/members/max`, { role: 'member' })).status).toBe(200);
    expect((await owner('PUT', `/api/workspaces/${ws}/secrets/MODEL_KEY`, { value: 'model-key-for-deletion-1', uses: { model: 'members' } })).status).toBe(201);
    const started = await owner('POST', `/api/workspaces/${ws}/runs`, {
      template: { files: { 'wait.js': 'setTimeout(() => {}, 120000);\n' } },
      turns: [{ command: ['node', 'wait.js'], modelKey: 'MODEL_KEY' }],
      deadlineSeconds: 600,
    });
    expect(started.status).toBe(202);
    const runId = (started.json as { runId: string }).runId;
    await waitForRun(owner, ws, runId, (run) => run.phases.some((p) => p.phase === 'turn'));

    expect((await member('DELETE', `/api/workspaces/${ws}`)).status).toBe(403);
    const deletion = await owner('DELETE', `/api/workspaces/${ws}?retentionDays=7`);
    expect(deletion.status).toBe(202);
    expect(deletion.text).not.toMatch(/runtime\/webhooks|statusQueryGetUri|code=/);
    expect((await owner('GET', `/api/workspaces/${ws}`)).status).toBe(404);

    const types = await until('the workspace to be sealed', async () => {
      const log = await logTypes(ws);
      return log.some((e) => e.type === 'WorkspaceDeleted') ? log : undefined;
    }, 90_000);
    const order = types.filter((e) => e.streamId === `workspace:${ws}`).map((e) => e.type);
    expect(order.slice(-3)).toEqual(['WorkspaceDeletionRequested', 'VaultSoftDeleted', 'WorkspaceDeleted']);
    const runEvents = types.filter((e) => e.streamId === `run:${runId}`).map((e) => e.type);
    expect(runEvents).toContain('RunCancellationRequested');
    expect(runEvents).toContain('SandboxTornDown');
    expect(runEvents.at(-1)).toBe('RunCancelled');
    // The seal comes first, then the live records go (blobs, then projections): wait for the last of them.
    await until('the live records to be removed', async () => ((await liveRowKeys(ws)).length === 0 ? true : undefined), 30_000);
    expect(await liveRowKeys(ws)).toEqual([]);
    expect((await owner('GET', `/api/workspaces/${ws}/secrets`)).status).toBe(404);

    expect((await member('POST', `/api/workspaces/${ws}/recover`)).status).toBe(403);
    expect((await owner('POST', `/api/workspaces/${ws}/recover`)).status).toBe(202);
    const summary = await owner('GET', `/api/workspaces/${ws}`);
    expect(summary.status).toBe(200);
    expect(summary.json).toMatchObject({ name: 'Short-lived' });
    expect(((await member('GET', `/api/workspaces/${ws}/secrets`)).json as Array<{ name: string }>).map((s) => s.name)).toEqual(['MODEL_KEY']);
    expect(((await owner('GET', `/api/workspaces/${ws}/runs/${runId}`)).json as { status: string }).status).toBe('Cancelled');
    expect((await owner('GET', `/api/workspaces/${ws}/audit/verify`)).json).toMatchObject({ ok: true });
  }, 180_000);
});
