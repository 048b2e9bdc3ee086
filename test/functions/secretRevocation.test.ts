import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../domain/run';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { requestRun } from '../../domain/services/runs';
import type { RunStores } from '../../domain/services/runPorts';
import { loadSecretMaterial } from '../../domain/services/runSecrets';
import { resolveUnrevoked, revokeSecret } from '../../domain/services/secretRevocation';
import { projectionKeys, runStreamId } from '../../domain/streams';
import type { TableGatewayBearers } from '../../infra/gateway/tableGatewayBearers';
import { leftoverRemover } from '../../infra/runs/leftoverSandboxes';
import type { LiveLeases } from '../../infra/runs/liveLeases';
import type { RunRuntime } from '../../domain/services/runContext';
import { aRunRuntime, runStoresOnAzurite } from '../support/runRuntime';
import { install, mcp, seed as seedStep, turn } from '../../domain/services/runSteps';
import { teardown } from '../../domain/services/runTeardown';
import { projectionRowKey } from '../../infra/tables/rowKeys';
import { LocalProcessSandboxHost } from '../../infra/sandbox/localProcessSandboxHost';
import { systemClock } from '../../infra/system/systemClock';
import { CachingSecretResolver } from '../../infra/vault/secretResolver';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';
import { azuriteConnectionString } from '../support/azurite';
import { LeakScanner } from '../support/leakScan';
import { processesHolding } from '../support/processLeaks';

/** A runtime whose live leases the test inspects and stops. */
type TestRuntime = RunRuntime & { leases: LiveLeases };

/** The timer each instance re-checks its live leases with here; the bound a test waits is a few of these. */
const CHECK_MS = 150;
const BOUND_MS = 3_000;
const USES = { mcp: 'members', model: 'members', command: 'members' };
const dirs: string[] = [];
const runtimes: TestRuntime[] = [];
const started: { runtime: RunRuntime; runId: string }[] = [];
const everyValue: Record<string, string> = {};
let h: ApiHarness;
let stores: RunStores;
let bearers: TableGatewayBearers;
let ws: string;
let owner: string;
let member: string;

const valueOf = (label: string): string => {
  const value = `rv-${label}-${createHash('sha256').update(`${label}${Date.now()}`).digest('hex').slice(0, 24)}`;
  everyValue[label] = value;
  return value;
};
const digest = (value: string): string => createHash('sha256').update(value).digest('hex').slice(0, 16);

async function aRuntime(deps: ServiceDependencies = h.deps, checkMs = CHECK_MS): Promise<TestRuntime> {
  const sandboxRoot = mkdtempSync(path.join(tmpdir(), 'dp-revoke-'));
  const credentialRoot = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'dp-revoke-cred-'));
  dirs.push(sandboxRoot, credentialRoot);
  const host = await LocalProcessSandboxHost.open({ root: sandboxRoot, credentialRoot, warn: () => undefined });
  const runtime = aRunRuntime({ deps, stores, host, bearers, removeLeftovers: leftoverRemover({ sandboxRoot, credentialRoot }), leaseCheckMs: checkMs });
  runtimes.push(runtime);
  return runtime;
}

const setSecret = (name: string, value: string, extra: Record<string, unknown> = {}, token = owner) =>
  h.call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { token, body: { value, uses: USES, ...extra } });

/** A run whose MCP server holds `name` for its lifetime and whose turn prints a digest of the value it was given. */
async function aRun(name: string, spec: Record<string, unknown> = {}): Promise<string> {
  const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, { actor: 'alice', correlationId: 'revoke-test' }, {
    workspaceId: ws,
    spec: {
      template: { files: { 'mcp.js': 'setInterval(() => {}, 1000);' } },
      mcp: [{ name: 'tracker', command: ['node', 'mcp.js'], secrets: [{ ref: name, use: 'env', as: 'HELD' }] }],
      turns: [{ command: ['node', '-e', `process.stdout.write('digest=' + require('crypto').createHash('sha256').update(process.env.${name}).digest('hex').slice(0, 16))`], modelKey: name }],
      deadlineSeconds: 120,
      ...spec,
    },
  });
  return runId;
}

async function eventsOf(runId: string): Promise<readonly RunEvent[]> {
  return (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
}

async function until(condition: () => boolean | Promise<boolean>, ms = BOUND_MS): Promise<number> {
  const from = Date.now();
  while (!(await condition())) {
    if (Date.now() - from > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Date.now() - from;
}

async function seed(runtime: RunRuntime, workspaceId: string, runId: string): ReturnType<typeof seedStep> {
  started.push({ runtime, runId });
  return seedStep(runtime, workspaceId, runId);
}

const holders = (value: string): number[] => [...new Set(processesHolding(value).map((p) => p.pid))].sort((a, b) => a - b);
/** Whether the MCP server itself (`node mcp.js`, past its launch wrappers) holds `value`. */
const serverHolds = (value: string): boolean => processesHolding(value).some((p) => /(^|\/)node$/.test(p.program));

beforeAll(async () => {
  h = await createApiHarness();
  ({ stores, bearers } = await runStoresOnAzurite());
  owner = await h.issuer.token('alice');
  member = await h.issuer.token('bob');
  ws = ((await h.call('POST', '/api/workspaces', { token: owner, body: { name: 'Revoke' } })).json as { id: string }).id;
  expect((await h.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: owner, body: { role: 'member' } })).status).toBeLessThan(300);
});

afterAll(async () => {
  // A test that failed half-way leaves its sandbox: its processes go here.
  for (const { runtime, runId } of started) await teardown(runtime, ws, runId).catch(() => undefined);
  for (const runtime of runtimes) runtime.leases.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('rotate vs revoke on a real sandbox host', () => {
  it('a plain rotation leaves a running MCP server alone with the old value; the next process gets the new one', async () => {
    const oldValue = valueOf('rot-old');
    const newValue = valueOf('rot-new');
    expect((await setSecret('ROT_KEY', oldValue)).status).toBe(201);
    const runtime = await aRuntime();
    const runId = await aRun('ROT_KEY');
    expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true });
    expect(await install(runtime, ws, runId)).toEqual({ ok: true });
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    // The launch chain (nsenter forks, then setpriv and bash exec into node) is still settling when mcp()
    // returns: under load the first look sees only nsenter. Compare against the settled chain, node included.
    await until(() => serverHolds(oldValue), 10_000);
    const holding = holders(oldValue);

    const rotated = await setSecret('ROT_KEY', newValue);
    expect(rotated.status).toBe(200);
    expect(rotated.json).not.toHaveProperty('leasesRevoked');
    await new Promise((resolve) => setTimeout(resolve, 5 * CHECK_MS));
    expect(holders(oldValue)).toEqual(holding); // still running, still with what it started with
    expect(serverHolds(oldValue)).toBe(true);
    expect(holders(newValue)).toEqual([]);
    expect(runtime.leases.size).toBe(1);

    expect(await turn(runtime, ws, runId, 1)).toEqual({ ok: true });
    expect(await stores.transcripts.read(ws, runId)).toContain(`digest=${digest(newValue)}`);
    const events = await eventsOf(runId);
    expect(events.some((e) => e.type === 'LeaseRevoked')).toBe(false);
    expect(events.flatMap((e) => (e.type === 'LeaseGranted' ? [e.data.secretVersion] : []))).toEqual([1, 2]);
    await teardown(runtime, ws, runId);
    expect(holders(oldValue)).toEqual([]);
  });

  it('PUT with revoke stops the MCP server holding the old value within the bound, records LeaseRevoked, restarts it with the new one; the turn gets the new value', async () => {
    const oldValue = valueOf('rev-old');
    const newValue = valueOf('rev-new');
    await setSecret('REV_KEY', oldValue);
    // The API's dependencies carry no notice for this runtime: only the holder's own check of the log stops it.
    const runtime = await aRuntime();
    const runId = await aRun('REV_KEY');
    await seed(runtime, ws, runId);
    await install(runtime, ws, runId);
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    const server = runtime.live.get(runId)?.servers[0];
    await until(() => serverHolds(oldValue), 10_000); // past the launch chain, as in the test above

    const revoked = await setSecret('REV_KEY', newValue, { revoke: true });
    expect(revoked.status).toBe(200);
    expect(revoked.json).toMatchObject({ name: 'REV_KEY', version: 2, leasesRevoked: 1 });
    const stoppedIn = await until(() => holders(oldValue).length === 0);
    expect(stoppedIn).toBeLessThan(BOUND_MS);
    await server?.done;
    // Restarted with the new version under a new lease.
    await until(() => holders(newValue).length > 0);
    expect(runtime.live.get(runId)?.servers).toHaveLength(1);
    expect(runtime.live.get(runId)?.servers[0]).not.toBe(server);

    const events = await eventsOf(runId);
    const grant = events.find((e) => e.type === 'LeaseGranted');
    const revocations = events.filter((e) => e.type === 'LeaseRevoked');
    expect(revocations).toEqual([expect.objectContaining({ data: { leaseId: grant?.type === 'LeaseGranted' ? grant.data.leaseId : '', runId, secretName: 'REV_KEY', secretVersion: 1 } })]);
    expect(events.some((e) => e.type === 'LeaseReleased')).toBe(false); // revoked, not released
    expect(events.flatMap((e) => (e.type === 'LeaseGranted' ? [`${e.data.operation}@${e.data.secretVersion}`] : []))).toEqual(['mcp:tracker@1', 'mcp:tracker@2']);
    const secretLog = (await h.store.readStream(ws, `secret:${ws}:REV_KEY`)).events.map((e) => e.type);
    expect(secretLog).toEqual(['SecretSet', 'SecretRevoked', 'SecretSet']);

    expect(await turn(runtime, ws, runId, 1)).toEqual({ ok: true });
    const transcript = await stores.transcripts.read(ws, runId);
    expect(transcript).toContain(`digest=${digest(newValue)}`);
    expect(transcript).not.toContain(digest(oldValue));
    // Gone from the vault: nothing resolves it; the redactor still masks it.
    expect((await h.deps.resolver.resolve(ws, 'REV_KEY')).value).toBe(newValue);
    expect((await loadSecretMaterial(h.deps, ws)).redactor.redact(`leaked ${oldValue}!`)).not.toContain(oldValue);

    // Revoked again with no value left: the restarted server stops and stays stopped, and says why.
    const restarted = runtime.live.get(runId)?.servers[0];
    expect((await h.call('POST', `/api/workspaces/${ws}/secrets/REV_KEY/revoke`, { token: owner })).json).toEqual({ name: 'REV_KEY', revokedThrough: 2, leasesRevoked: 1 });
    await until(() => holders(newValue).length === 0);
    await restarted?.done;
    expect(runtime.live.get(runId)?.servers[0]).toBe(restarted);
    expect(await stores.transcripts.read(ws, runId)).toMatch(/mcp:tracker: not restarted after a revocation: .*REV_KEY/);
    await teardown(runtime, ws, runId);
  });

  it('revoke without a value stops a command holding it at once (the notice) and fails its phase with that reason', async () => {
    const oldValue = valueOf('cmd-old');
    await setSecret('CMD_KEY', oldValue);
    // A long timer: what stops the command here is the revocation's notice to this instance.
    const runtime = await aRuntime(h.deps, 60_000);
    const deps: ServiceDependencies = { ...h.deps, revocations: runtime.leases };
    const runId = await aRun('CMD_KEY', { install: [{ command: ['node', '-e', 'setInterval(() => {}, 1000)'], secrets: [{ ref: 'CMD_KEY', use: 'env', as: 'HELD' }] }], mcp: [] });
    await seed(runtime, ws, runId);
    const installing = install(runtime, ws, runId);
    await until(() => holders(oldValue).length > 0, 10_000);
    const revokedAt = Date.now();
    expect(await revokeSecret(deps, { actor: 'alice', correlationId: 'revoke-cmd' }, { workspaceId: ws, name: 'CMD_KEY' })).toEqual({ revokedThrough: 1, leasesRevoked: 1 });
    expect(await installing).toEqual({ ok: false, reason: 'install[0]: CMD_KEY version 1 was revoked' });
    expect(Date.now() - revokedAt).toBeLessThan(BOUND_MS);
    expect(holders(oldValue)).toEqual([]);
    expect((await eventsOf(runId)).filter((e) => e.type === 'LeaseRevoked')).toHaveLength(1);
    await expect(h.deps.resolver.resolve(ws, 'CMD_KEY')).rejects.toMatchObject({ code: 'VAULT.SECRET_NOT_FOUND' });
    expect((await h.call('GET', `/api/workspaces/${ws}/secrets`, { token: owner })).json).not.toContainEqual(expect.objectContaining({ name: 'CMD_KEY' }));
    await teardown(runtime, ws, runId);
  });

  it('DELETE revokes too: the MCP server holding the deleted value stops within the bound and stays stopped, LeaseRevoked is recorded', async () => {
    const value = valueOf('del');
    await setSecret('DEL_KEY', value);
    // No notice for this runtime: the holder's own check of the log stops it, as on another instance.
    const runtime = await aRuntime();
    const runId = await aRun('DEL_KEY');
    await seed(runtime, ws, runId);
    await install(runtime, ws, runId);
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    const server = runtime.live.get(runId)?.servers[0];
    await until(() => serverHolds(value), 10_000);

    const deleted = await h.call('DELETE', `/api/workspaces/${ws}/secrets/DEL_KEY`, { token: owner });
    expect(deleted.status).toBe(204);
    expect(await until(() => holders(value).length === 0)).toBeLessThan(BOUND_MS);
    await server?.done;
    expect(runtime.live.get(runId)?.servers[0]).toBe(server); // nothing to restart it with
    expect(await stores.transcripts.read(ws, runId)).toMatch(/mcp:tracker: not restarted after a revocation: .*DEL_KEY/);

    const events = await eventsOf(runId);
    const grant = events.find((e) => e.type === 'LeaseGranted');
    expect(events.filter((e) => e.type === 'LeaseRevoked')).toEqual([
      expect.objectContaining({ data: { leaseId: grant?.type === 'LeaseGranted' ? grant.data.leaseId : '', runId, secretName: 'DEL_KEY', secretVersion: 1 } }),
    ]);
    expect((await h.store.readStream(ws, `secret:${ws}:DEL_KEY`)).events.map((e) => e.type)).toEqual(['SecretSet', 'SecretRevoked', 'SecretDeleted']);
    await expect(h.deps.resolver.resolve(ws, 'DEL_KEY')).rejects.toMatchObject({ code: 'VAULT.SECRET_NOT_FOUND' });
    expect((await h.call('DELETE', `/api/workspaces/${ws}/secrets/DEL_KEY`, { token: owner })).status).toBe(404);
    // Set again: a new version the delete never revoked, handed out as usual.
    const again = valueOf('del-again');
    expect((await setSecret('DEL_KEY', again)).status).toBe(201);
    expect((await resolveUnrevoked(h.deps, ws, 'DEL_KEY')).value).toBe(again);
    await teardown(runtime, ws, runId);
  });

  it('after a revoke no resolve or lease hands out the old value, even from a stale cache with the metadata row edited back', async () => {
    const oldValue = valueOf('stale-old');
    const newValue = valueOf('stale-new');
    await setSecret('STALE_KEY', oldValue);
    // Another instance's resolver whose freshness check reads the row as stored (the weakest it could be).
    const stale = new CachingSecretResolver({ vault: h.vault, clock: systemClock, ttlMs: 3_600_000, currentVersion: async (w, n) => Number((await h.store.readProjection(w, projectionKeys.secret(n)))?.version) || undefined });
    expect((await stale.resolve(ws, 'STALE_KEY')).value).toBe(oldValue);
    await setSecret('STALE_KEY', newValue, { revoke: true });
    // The attacker with the account key edits the metadata row back to version 1.
    const row = await h.eventTable.getEntity<Record<string, unknown>>(ws, projectionRowKey(projectionKeys.secret('STALE_KEY')));
    const value = JSON.parse(String(row['value0'])) as Record<string, unknown>;
    const { etag: _etag, timestamp: _ts, partitionKey, rowKey, ...columns } = row as typeof row & { timestamp?: string };
    await h.eventTable.upsertEntity({ partitionKey: String(partitionKey), rowKey: String(rowKey), ...columns, value0: JSON.stringify({ ...value, version: 1 }) }, 'Replace');
    // The attack is real: the cache alone would hand the old value out.
    expect((await stale.resolve(ws, 'STALE_KEY')).value).toBe(oldValue);
    stale.invalidate(ws);
    await stale.resolve(ws, 'STALE_KEY');
    (stale as unknown as { cache: Map<string, unknown> }).cache.set(`${ws}\u0000STALE_KEY`, { secret: { value: oldValue, version: 1 }, fetchedAt: Date.now() });

    const checked = await resolveUnrevoked({ store: h.store, resolver: stale }, ws, 'STALE_KEY');
    expect(checked).toEqual({ value: newValue, version: 2 });

    // A lease through that resolver: the MCP server gets the new value, never the old one.
    (stale as unknown as { cache: Map<string, unknown> }).cache.set(`${ws}\u0000STALE_KEY`, { secret: { value: oldValue, version: 1 }, fetchedAt: Date.now() });
    const runtime = await aRuntime({ ...h.deps, resolver: stale });
    const runId = await aRun('STALE_KEY');
    await seed(runtime, ws, runId);
    await install(runtime, ws, runId);
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    expect(holders(oldValue)).toEqual([]);
    await until(() => serverHolds(newValue), 10_000);
    expect((await eventsOf(runId)).flatMap((e) => (e.type === 'LeaseGranted' ? [e.data.secretVersion] : []))).toEqual([2]);
    await teardown(runtime, ws, runId);

    // Revoked with no value left: the stale cache's old value is refused outright.
    await revokeSecret(h.deps, { actor: 'alice', correlationId: 'stale' }, { workspaceId: ws, name: 'STALE_KEY' });
    const onlyOld = new CachingSecretResolver({ vault: h.vault, clock: systemClock, ttlMs: 3_600_000, currentVersion: async () => 1 });
    (onlyOld as unknown as { cache: Map<string, unknown> }).cache.set(`${ws}\u0000STALE_KEY`, { secret: { value: oldValue, version: 1 }, fetchedAt: Date.now() });
    await expect(resolveUnrevoked({ store: h.store, resolver: onlyOld }, ws, 'STALE_KEY')).rejects.toMatchObject({ code: expect.stringMatching(/^(SECRET\.VERSION_REVOKED|VAULT\.SECRET_NOT_FOUND)$/) });
  });

  it('a member cannot revoke: 403 problem+json for PUT revoke and POST revoke, and nothing is recorded', async () => {
    const value = valueOf('member');
    await setSecret('MEMBER_KEY', value);
    const before = (await h.store.readStream(ws, `secret:${ws}:MEMBER_KEY`)).events.length;
    for (const response of [
      await setSecret('MEMBER_KEY', valueOf('member-new'), { revoke: true }, member),
      await h.call('POST', `/api/workspaces/${ws}/secrets/MEMBER_KEY/revoke`, { token: member }),
    ]) {
      expect(response.status).toBe(403);
      expect(response.headers['content-type']).toBe('application/problem+json');
    }
    expect((await h.store.readStream(ws, `secret:${ws}:MEMBER_KEY`)).events.length).toBe(before);
    expect((await h.deps.resolver.resolve(ws, 'MEMBER_KEY')).value).toBe(value);
    const repeated = await h.call('POST', `/api/workspaces/${ws}/secrets/MEMBER_KEY/revoke`, { token: owner });
    expect(repeated.json).toEqual({ name: 'MEMBER_KEY', revokedThrough: 1, leasesRevoked: 0 });
    expect((await h.call('POST', `/api/workspaces/${ws}/secrets/NEVER_SET/revoke`, { token: owner })).status).toBe(404);
  });

  it('no value, old or new, appears in any event, row, blob, log or response', async () => {
    const scanner = new LeakScanner(everyValue);
    await scanner.tables(azuriteConnectionString());
    await scanner.blobs(azuriteConnectionString());
    for (const [i, line] of h.logs.entries()) scanner.scan('log', String(i), line);
    for (const [i, response] of h.responses.entries()) scanner.scan('response', String(i), JSON.stringify(response));
    // The vault table holds sealed values only; any hit anywhere names the place.
    expect(scanner.report.hits).toEqual([]);
    expect(Object.keys(everyValue).length).toBeGreaterThanOrEqual(8);
  });
});
