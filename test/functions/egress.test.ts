import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_EGRESS_REFUSALS_RECORDED_PER_STEP, type RunEvent, runStatus } from '../../domain/run';
import { requestRun } from '../../domain/services/runs';
import type { RunStores } from '../../domain/services/runPorts';
import { readRunStream } from '../../domain/services/runStream';
import { projectionKeys, runStreamId } from '../../domain/streams';
import { projectionRowKey } from '../../infra/tables/rowKeys';
import type { RunSpec } from '../../domain/runSpec';
import { platformHostsOf } from '../../functions/composition';
import { loadSettings } from '../../functions/settings';
import type { TableGatewayBearers } from '../../infra/gateway/tableGatewayBearers';
import { leftoverRemover } from '../../infra/runs/leftoverSandboxes';
import type { RunRuntime } from '../../domain/services/runContext';
import { aRunRuntime, runStoresOnAzurite } from '../support/runRuntime';
import { install, mcp, seed, turn } from '../../domain/services/runSteps';
import { finish, teardown } from '../../domain/services/runTeardown';
import { LocalProcessSandboxHost } from '../../infra/sandbox/localProcessSandboxHost';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';

/**
 * The owner's egress allow-list, a RunSpec's per-phase narrowing and the run's record of every connection,
 * against Azurite and the real sandbox host (as root: its own network namespace, the real egress proxy).
 */

const isRoot = process.getuid?.() === 0;
const MARKER = `reached-${Date.now()}`;
const dirs: string[] = [];
let h: ApiHarness;
let tokens: { owner: string; member: string; outsider: string };
let ws: string;
let stores: RunStores;
let bearers: TableGatewayBearers;
let target: net.Server;
let port = 0;

/** Test-only names for the one loopback test server: the proxy resolves them from this table. */
const NAMES: Record<string, string[]> = { 'tools.dp-test.example': ['127.0.0.1'], 'registry.dp-test.example': ['127.0.0.1'] };
const resolve = async (name: string): Promise<string[]> => {
  const found = NAMES[name];
  if (!found) throw new Error('ENOTFOUND');
  return found;
};

/** Connects through the sandbox's proxy (HTTPS_PROXY) to each `host:port` argument and prints what came back. */
const PROBE = `const http=require('http');const proxy=new URL(process.env.HTTPS_PROXY||'http://127.0.0.1:3128');
const one=(t)=>new Promise((done)=>{const req=http.request({host:proxy.hostname,port:Number(proxy.port),method:'CONNECT',path:t});
req.on('connect',(res,sock,head)=>{let b=head.toString();sock.on('data',(d)=>b+=d);sock.on('close',()=>done(res.statusCode+' '+b.trim()));sock.on('error',()=>done('socket error'));});
req.on('response',(res)=>done(String(res.statusCode)));req.on('error',(e)=>done('error '+e.code));req.end();});
(async()=>{for(const t of process.argv.slice(2))console.log('PROBE '+t+' => '+(await one(t)));})();`;

async function aRuntime(): Promise<RunRuntime & { host: LocalProcessSandboxHost }> {
  const sandboxRoot = mkdtempSync(path.join(tmpdir(), 'dp-egress-'));
  const credentialRoot = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'dp-egress-cred-'));
  dirs.push(sandboxRoot, credentialRoot);
  const host = await LocalProcessSandboxHost.open({
    root: sandboxRoot, credentialRoot, warn: () => undefined,
    egress: { testServers: () => [`127.0.0.1:${port}`], resolve },
  });
  return aRunRuntime({ deps: h.deps, stores, host, bearers, removeLeftovers: leftoverRemover({ sandboxRoot, credentialRoot }) });
}

function aSpec(overrides: Partial<RunSpec> = {}): RunSpec {
  return { template: { files: { 'probe.js': PROBE } }, turns: [{ command: ['true'] }], deadlineSeconds: 120, ...overrides };
}

beforeAll(async () => {
  h = await createApiHarness();
  tokens = { owner: await h.issuer.token('alice'), member: await h.issuer.token('bob'), outsider: await h.issuer.token('mallory') };
  ws = ((await h.call('POST', '/api/workspaces', { token: tokens.owner, body: { name: 'Egress' } })).json as { id: string }).id;
  await h.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: tokens.owner, body: { role: 'member' } });
  ({ stores, bearers } = await runStoresOnAzurite());
  target = net.createServer((s) => s.end(MARKER));
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  port = (target.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => target?.close(r));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("the workspace's egress allow-list", () => {
  it('is empty for a new workspace; the owner sets it (an event on the workspace log), members read it, a member cannot set it and an outsider sees nothing', async () => {
    expect((await h.call('GET', `/api/workspaces/${ws}/egress`, { token: tokens.member })).json).toEqual({ allowedHosts: [] });
    const set = await h.call('PUT', `/api/workspaces/${ws}/egress`, {
      token: tokens.owner,
      body: { allowedHosts: [`Tools.DP-Test.Example:${port}`, `registry.dp-test.example:${port}`, 'api.openai.com:443', '*.githubusercontent.com', 'api.openai.com'] },
    });
    expect(set.status).toBe(200);
    const list = ['*.githubusercontent.com', 'api.openai.com', `registry.dp-test.example:${port}`, `tools.dp-test.example:${port}`];
    expect(set.json).toEqual({ allowedHosts: list });
    expect((await h.call('GET', `/api/workspaces/${ws}/egress`, { token: tokens.member })).json).toEqual({ allowedHosts: list });
    expect((await h.call('GET', `/api/workspaces/${ws}`, { token: tokens.member })).json).toMatchObject({ egress: { allowedHosts: list } });

    const byMember = await h.call('PUT', `/api/workspaces/${ws}/egress`, { token: tokens.member, body: { allowedHosts: ['evil.example'] } });
    expect(byMember.status).toBe(403);
    expect(byMember.headers['content-type']).toBe('application/problem+json');
    expect((byMember.json as { code: string }).code).toBe('WORKSPACE.OWNER_REQUIRED');
    for (const [method, body] of [['GET', undefined], ['PUT', { allowedHosts: ['evil.example'] }]] as const) {
      const byOutsider = await h.call(method, `/api/workspaces/${ws}/egress`, { token: tokens.outsider, body });
      expect(byOutsider.status, method).toBe(404);
      expect(byOutsider.headers['content-type']).toBe('application/problem+json');
    }
    for (const bad of ['10.0.0.1', '127.1', 'https://example.com', 'example.com/path', '*.com', '*', 'a..b', 'example.com:0', 'example.com:70000', 'exa mple.com']) {
      const refused = await h.call('PUT', `/api/workspaces/${ws}/egress`, { token: tokens.owner, body: { allowedHosts: [bad] } });
      expect(refused.status, bad).toBe(400);
      expect(refused.headers['content-type']).toBe('application/problem+json');
    }
    expect((await h.call('PUT', `/api/workspaces/${ws}/egress`, { token: tokens.owner, body: { hosts: [] } })).status).toBe(400);

    const audit = (await h.call('GET', `/api/workspaces/${ws}/audit?limit=500`, { token: tokens.owner })).json as { records: { type: string; data: unknown; meta: { actor: string } }[] };
    const sets = audit.records.filter((r) => r.type === 'EgressAllowListSet');
    expect(sets).toHaveLength(1); // the member's attempt and the invalid lists recorded nothing of the kind
    expect(sets[0]).toMatchObject({ data: { allowedHosts: list }, meta: { actor: 'alice' } });
    expect(audit.records.some((r) => r.type === 'AccessDenied' && r.meta.actor === 'bob')).toBe(true);
    expect((await h.call('GET', `/api/workspaces/${ws}/audit/verify`, { token: tokens.owner })).json).toMatchObject({ ok: true });
  });

  it('comes from verified state: a summary row edited in storage to widen it changes no decision and is reported', async () => {
    const row = await h.eventTable.getEntity<Record<string, unknown>>(ws, projectionRowKey(projectionKeys.workspace));
    const summary = JSON.parse(String(row['value0'])) as { egress: { allowedHosts: string[] } };
    summary.egress.allowedHosts.push('evil.example');
    const { etag: _etag, timestamp: _ts, partitionKey, rowKey, ...columns } = row as typeof row & { timestamp?: string };
    await h.eventTable.upsertEntity({ partitionKey: String(partitionKey), rowKey: String(rowKey), ...columns, value0: JSON.stringify(summary) }, 'Replace');

    const refused = await h.call('POST', `/api/workspaces/${ws}/runs`, { token: tokens.member, body: aSpec({ egress: { turns: ['evil.example'] } }) });
    expect(refused.status).toBe(422);
    expect((refused.json as { code: string }).code).toBe('EGRESS.NOT_IN_WORKSPACE_LIST');
    expect(((await h.call('GET', `/api/workspaces/${ws}/egress`, { token: tokens.member })).json as { allowedHosts: string[] }).allowedHosts).not.toContain('evil.example');
    const log = await h.store.readLog(ws, { limit: 1000 });
    expect(log.records.some((r) => r.type === 'ProjectionMismatchDetected' && (r.data as { projection: string }).projection === projectionKeys.workspace)).toBe(true);
  });

  it('a RunSpec that widens the list is 422 naming the host, before any run exists; narrowing is accepted', async () => {
    const starts: string[] = [];
    for (const [egress, host] of [
      [{ turns: ['evil.example'] }, 'evil.example'],
      [{ install: [`tools.dp-test.example:${port + 1}`] }, `tools.dp-test.example:${port + 1}`], // another port is another destination
      [{ mcp: ['*.dp-test.example'] }, '*.dp-test.example'], // a wildcard wider than the exact names listed
      [{ turns: ['githubusercontent.com'] }, 'githubusercontent.com'], // `*.x` does not cover x itself
    ] as const) {
      const refused = await h.call('POST', `/api/workspaces/${ws}/runs`, { token: tokens.member, body: aSpec({ egress }) });
      expect(refused.status, host).toBe(422);
      expect(refused.headers['content-type']).toBe('application/problem+json');
      const problem = refused.json as { code: string; detail: string };
      expect(problem.code).toBe('EGRESS.NOT_IN_WORKSPACE_LIST');
      expect(problem.detail).toContain(host);
    }
    const accepted = await requestRun(h.deps, stores, { start: async (_w, runId) => void starts.push(runId), raiseCancel: async () => undefined }, { actor: 'bob', correlationId: 'narrow' }, {
      workspaceId: ws,
      spec: aSpec({ egress: { turns: [`tools.dp-test.example:${port}`, 'raw.githubusercontent.com', '*.a.githubusercontent.com'], install: [] } }),
    });
    expect(starts).toEqual([accepted.runId]); // only the narrowing spec reached the orchestration
  });
});

describe("a run's egress through the real proxy", () => {
  it('each phase gets its allowance: a host outside it is refused and recorded as OperationRefused with counts; a host inside is reached', async () => {
    const runtime = await aRuntime();
    const inWorkspace = `registry.dp-test.example:${port}`;
    const inTurns = `tools.dp-test.example:${port}`;
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, { actor: 'bob', correlationId: 'egress-run' }, {
      workspaceId: ws,
      spec: aSpec({
        // Install keeps the whole workspace list; turns are narrowed to the tools host alone.
        install: [{ command: ['node', 'probe.js', inWorkspace] }],
        turns: [{ command: ['node', 'probe.js', inTurns, inWorkspace, 'evil.example:443', `127.0.0.1:${port + 1}`] }],
        egress: { turns: [inTurns] },
      }),
    });
    expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true });
    const sandbox = runtime.sandboxes.get(runId)!;
    expect(sandbox.handle.isolated).toBe(isRoot);
    expect(await install(runtime, ws, runId)).toEqual({ ok: true });
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    expect(await turn(runtime, ws, runId, 1)).toEqual({ ok: true });
    const transcript = await stores.transcripts.read(ws, runId);
    expect(await teardown(runtime, ws, runId)).toEqual({ ok: true });
    expect(await finish(runtime, ws, runId)).toEqual({ status: 'Completed' });
    if (!isRoot) return; // no network namespace, no proxy: the run says IsolationDegraded (runs.steps tests)

    const probes = Object.fromEntries([...transcript.matchAll(/PROBE (\S+) => (.*)/g)].map((m) => [m[1], m[2]]));
    expect(transcript.match(/PROBE /g)).toHaveLength(5);
    expect(transcript).toContain(`PROBE ${inWorkspace} => 200 ${MARKER}`); // install: the workspace list
    expect(probes[inTurns]).toBe(`200 ${MARKER}`); // turn: inside the narrowed list
    const turnLines = transcript.slice(transcript.indexOf('turn[1]'));
    expect(turnLines).toContain(`PROBE ${inWorkspace} => 403`); // on the workspace list, not the turn's
    expect(turnLines).toContain('PROBE evil.example:443 => 403');
    expect(turnLines).toContain(`PROBE 127.0.0.1:${port + 1} => 403`);

    const events = (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
    const recorded = events.filter((e) => e.type === 'EgressRecorded').map((e) => e.data);
    expect(recorded).toEqual([
      { phase: 'install', allowed: 1, refused: 0, refusalsNotRecorded: 0 },
      { phase: 'turn', turn: 1, allowed: 1, refused: 3, refusalsNotRecorded: 0 },
    ]);
    const refusals = events.filter((e) => e.type === 'OperationRefused' && e.data.kind === 'egress').map((e) => e.data);
    expect(refusals).toEqual([
      { operationId: 'egress:turn[1]:1', kind: 'egress', target: inWorkspace, reason: 'not on the egress allow-list' },
      { operationId: 'egress:turn[1]:2', kind: 'egress', target: 'evil.example:443', reason: 'not on the egress allow-list' },
      { operationId: 'egress:turn[1]:3', kind: 'egress', target: `127.0.0.1:${port + 1}`, reason: 'not on the egress allow-list' },
    ]);
    const { state } = await readRunStream(h.deps.store, ws, runId);
    expect(runStatus(state)).toMatchObject({ egress: { allowed: 2, refused: 3 } });
    const view = await h.call('GET', `/api/workspaces/${ws}/runs/${runId}`, { token: tokens.member });
    expect(view.json).toMatchObject({ egress: { allowed: 2, refused: 3 } });
  });

  it('an owner who empties the list mid-run closes the next phase; a flood of refusals is one bounded append', async () => {
    const runtime = await aRuntime();
    const flood = Array.from({ length: 60 }, (_, i) => `flood-${i}.example:443`);
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, { actor: 'bob', correlationId: 'egress-flood' }, {
      workspaceId: ws,
      spec: aSpec({ turns: [{ command: ['node', 'probe.js', `tools.dp-test.example:${port}`, ...flood] }] }),
    });
    expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true });
    expect(await install(runtime, ws, runId)).toEqual({ ok: true });
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    const before = (await h.store.readStream(ws, runStreamId(runId))).version;
    const emptied = await h.call('PUT', `/api/workspaces/${ws}/egress`, { token: tokens.owner, body: { allowedHosts: [] } });
    expect(emptied.status).toBe(200);
    expect(await turn(runtime, ws, runId, 1)).toEqual({ ok: true });
    await teardown(runtime, ws, runId);
    await finish(runtime, ws, runId);
    if (!isRoot) return;
    const transcript = await stores.transcripts.read(ws, runId);
    expect(transcript).toContain(`PROBE tools.dp-test.example:${port} => 403`);
    const events = (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events.filter((e) => e.streamVersion > before);
    const recorded = events.filter((e) => e.type === 'EgressRecorded').map((e) => e.data);
    expect(recorded).toEqual([{ phase: 'turn', turn: 1, allowed: 0, refused: 61, refusalsNotRecorded: 61 - MAX_EGRESS_REFUSALS_RECORDED_PER_STEP }]);
    expect(events.filter((e) => e.type === 'OperationRefused')).toHaveLength(MAX_EGRESS_REFUSALS_RECORDED_PER_STEP);
  });
});

describe("the platform's own hosts", () => {
  it('come from the settings, so the proxy refuses them whatever a list says', () => {
    const settings = loadSettings({
      DISCO_ENV: 'production',
      AzureWebJobsStorage__accountName: 'dpstore01',
      AUTH_MODE: 'entra',
      AUTH_ISSUER: 'https://login.microsoftonline.com/t/v2.0',
      AUTH_JWKS_URL: 'https://login.microsoftonline.com/t/discovery/v2.0/keys',
      PLATFORM_ISSUER: 'https://dp-func.azurewebsites.net',
      VAULT_MASTER_KEY_ID: 'https://dp-platform-kv.vault.azure.net/keys/master/1',
      VAULT_KIND: 'keyvault',
      WORKSPACE_VAULTS_SUBSCRIPTION_ID: '00000000-0000-4000-8000-000000000001',
      WORKSPACE_VAULTS_RESOURCE_GROUP: 'dp-vaults',
      WORKSPACE_VAULTS_LOCATION: 'westeurope',
      AZURE_TENANT_ID: '00000000-0000-4000-8000-000000000002',
      ServiceBusConnection__fullyQualifiedNamespace: 'dp-bus.servicebus.windows.net',
      GATEWAY_URL: 'https://dp-gateway.example.net/api/gateway/operations',
    });
    const hosts = platformHostsOf(settings, { WEBSITE_HOSTNAME: 'dp-func.azurewebsites.net' });
    for (const expected of [
      'dpstore01.blob.core.windows.net', 'dpstore01.queue.core.windows.net', 'dpstore01.table.core.windows.net',
      'dp-platform-kv.vault.azure.net', 'vault.azure.net', 'dp-bus.servicebus.windows.net', 'dp-func.azurewebsites.net', 'dp-gateway.example.net',
    ])
      expect(hosts, expected).toContain(expected);
    expect(hosts).not.toContain('login.microsoftonline.com'); // the identity provider is not the platform's own
    const local = platformHostsOf(loadSettings({ AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=devacct;AccountKey=eA==;EndpointSuffix=core.windows.net' }), {});
    expect(local).toContain('devacct.blob.core.windows.net');
  });
});
