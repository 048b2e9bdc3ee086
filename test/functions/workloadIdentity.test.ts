import { systemRandom } from '../../infra/system/systemRandom';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvocationContext } from '@azure/functions';
import { SignJWT, createRemoteJWKSet, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_PARTITION, workloadIdentityKeysStreamId } from '../../domain/streams';
import type { PublicRsaSigningJwk } from '../../domain/signingKeys';
import { WORKLOAD_TOKEN_MAX_MS } from '../../domain/workloadIdentity';
import { defaultSigningKeyPolicy } from '../../domain/signingKeys';
import { identityIssuerOf, loadSettings } from '../../functions/settings';
import { IDENTITY_JWKS_ROUTE, OPENID_CONFIGURATION_ROUTE, ensureSigningKeysAtStart, jwksResponse, openidConfigurationResponse } from '../../functions/signing';
import { Gateway } from '../../infra/gateway/gatewayService';
import { rs256Keys } from '../../infra/identity/keyAlgorithms';
import { SigningKeys, platformLogRecorder } from '../../infra/identity/signingKeys';
import { TableSigningKeyRepository, WORKLOAD_IDENTITY_RING } from '../../infra/identity/signingKeysTable';
import { RsaWorkloadIdentityTokens } from '../../infra/identity/workloadIdentityTokens';
import { PlatformSandboxTokens } from '../../infra/identity/sandboxIdentityTokens';
import { aPlatform } from '../infra/identity/signingTestKit';
import { randomUuidIds } from '../../infra/system/randomUuidIds';
import { systemClock } from '../../infra/system/systemClock';
import { LocalFileKeyWrapper } from '../../infra/vault/localFileKeyWrapper';
import { createGatewayHarness, type GatewayHarness, type LaunchedRun } from '../infra/gateway/gatewayHarness';
import { scanTexts, tableTexts } from '../support/leakScan';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { TableClient } from '@azure/data-tables';

const AUDIENCE = 'api://AzureADTokenExchange';
const context = (logs: string[]) => new InvocationContext({ functionName: 'test', logHandler: (level, ...args) => logs.push(`${level} ${args.map(String).join(' ')}`) });

let h: GatewayHarness;
let keys: SigningKeys<PublicRsaSigningJwk>;
let tokens: RsaWorkloadIdentityTokens;
let gateway: Gateway;
let server: http.Server;
let issuer: string;
let ws: string;
let alicesRun: LaunchedRun;
let bobsRun: LaunchedRun;
let member: string;
const logs: string[] = [];
const startLogs: string[] = [];

/** The discovery and JWKS route handlers behind a real HTTP listener, as a cloud's token exchange reaches them. */
async function serveIssuer(): Promise<void> {
  server = http.createServer((req, res) => {
    void (async () => {
      const pathname = new URL(req.url ?? '/', 'http://x').pathname;
      const response = pathname === `/api/${OPENID_CONFIGURATION_ROUTE}`
        ? openidConfigurationResponse(issuer)
        : pathname === `/api/${IDENTITY_JWKS_ROUTE}` ? await jwksResponse(keys, context(logs)) : { status: 404, jsonBody: {} };
      res.writeHead(response.status ?? 200, { 'content-type': 'application/json', ...(response.headers as Record<string, string> | undefined) });
      res.end(JSON.stringify(response.jsonBody));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
}

async function discover(): Promise<{ issuer: string; jwks_uri: string; id_token_signing_alg_values_supported: string[] }> {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  expect(response.status).toBe(200);
  return (await response.json()) as { issuer: string; jwks_uri: string; id_token_signing_alg_values_supported: string[] };
}

/** What a cloud does with a token: discovery from `iss`, then the JWKS it names, RS256 only, its own audience. */
async function verifyAsACloud(token: string) {
  const metadata = await discover();
  return jwtVerify(token, createRemoteJWKSet(new URL(metadata.jwks_uri)), { issuer: metadata.issuer, audience: AUDIENCE, algorithms: ['RS256'] });
}

beforeAll(async () => {
  h = await createGatewayHarness();
  const table = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('identitykeys'), { allowInsecureConnection: true });
  const masterKey = path.join(mkdtempSync(path.join(tmpdir(), 'dp-identity-')), 'master.key');
  const repository = new TableSigningKeyRepository(table, LocalFileKeyWrapper.open(masterKey), { algorithm: rs256Keys, place: WORKLOAD_IDENTITY_RING });
  keys = new SigningKeys({
    repository, clock: systemClock, algorithm: rs256Keys, policy: { ...defaultSigningKeyPolicy, maxTokenLifetimeMs: WORKLOAD_TOKEN_MAX_MS },
    recorder: platformLogRecorder(() => ({ store: h.api.store, clock: systemClock, random: systemRandom }), randomUuidIds, workloadIdentityKeysStreamId()),
  });
  await serveIssuer();
  tokens = new RsaWorkloadIdentityTokens(keys, systemClock, issuer);
  gateway = new Gateway({ deps: h.api.deps, bearers: h.bearers, sandboxes: h.sandboxes, host: h.host, identityTokens: tokens });
  // What the app does at start (functions/signing.ts appStart), before any token exists.
  await ensureSigningKeysAtStart(keys, { info: (t) => startLogs.push(t), warn: (t) => startLogs.push(t) }, 'workload identity');
  ws = await h.workspace('Identities', []);
  member = await h.api.issuer.token('bob');
  expect((await h.api.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: h.owner, body: { role: 'member' } })).status).toBe(200);
  alicesRun = await h.launch(ws, []);
  bobsRun = await h.launch(ws, [], {}, 'bob');
});

afterAll(async () => {
  await h?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

const ask = (run: LaunchedRun, identity: string) => h.operate(run.bearer, { kind: 'identity-token', identity }, {}, gateway);

describe('the workload identity issuer', () => {
  it('serves discovery naming its issuer and a JWKS with an RS256 key from the first start, public members only', async () => {
    expect(startLogs.join('\n')).toMatch(/workload identity: current key \S+/);
    const metadata = await discover();
    expect(metadata).toMatchObject({ issuer, jwks_uri: `${issuer}/.well-known/identity-jwks.json`, id_token_signing_alg_values_supported: ['RS256'] });
    const jwks = (await (await fetch(metadata.jwks_uri)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(Object.keys(jwks.keys[0]!).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig', kid: (await keys.ring())[0]!.kid });
    // The first key is recorded in the platform log like any rotation.
    const recorded = await h.api.store.readStream(PLATFORM_PARTITION, workloadIdentityKeysStreamId());
    expect(recorded.events.map((e) => e.type)).toEqual(['SigningKeyRotated']);
  });
});

describe('workspace identities over the API', () => {
  it('owners define (201, then 200), members list with the subject tokens carry, members may not define or delete (403)', async () => {
    const body = { subject: 'deploy:prod', audience: AUDIENCE, uses: { identity: 'owners' } };
    const created = await h.api.call('PUT', `/api/workspaces/${ws}/identities/deployer`, { token: h.owner, body });
    expect(created.status, created.text).toBe(201);
    expect((await h.api.call('PUT', `/api/workspaces/${ws}/identities/deployer`, { token: h.owner, body })).status).toBe(200);
    expect((await h.api.call('PUT', `/api/workspaces/${ws}/identities/everyone`, { token: h.owner, body: { ...body, subject: 'ci', uses: { identity: 'members' } } })).status).toBe(201);
    const listed = await h.api.call('GET', `/api/workspaces/${ws}/identities`, { token: member });
    expect(listed.status).toBe(200);
    expect(listed.json).toMatchObject([
      { name: 'deployer', subject: 'deploy:prod', tokenSubject: `workspace:${ws}:deploy:prod`, audience: AUDIENCE, uses: { identity: 'owners' }, updatedBy: 'alice' },
      { name: 'everyone', subject: 'ci', uses: { identity: 'members' } },
    ]);
    const denied = await h.api.call('PUT', `/api/workspaces/${ws}/identities/deployer`, { token: member, body: { ...body, uses: { identity: 'members' } } });
    expect(denied.status).toBe(403);
    expect(denied.headers['content-type']).toBe('application/problem+json');
    expect((await h.api.call('DELETE', `/api/workspaces/${ws}/identities/deployer`, { token: member })).status).toBe(403);
    for (const bad of [{ subject: 'x', audience: AUDIENCE }, { ...body, subject: 'has space' }, { ...body, uses: { identity: 'everybody' } }, { ...body, extra: 1 }])
      expect((await h.api.call('PUT', `/api/workspaces/${ws}/identities/deployer`, { token: h.owner, body: bad })).status).toBe(400);
    expect((await h.api.call('PUT', `/api/workspaces/${ws}/identities/Not_A_Name`, { token: h.owner, body })).status).toBe(400);
  });
});

describe('a run asks the gateway for a token', () => {
  let issued: string[] = [];

  it('gets an RS256 JWT a cloud verifies against the served discovery document and JWKS', async () => {
    const reply = await ask(alicesRun, 'deployer');
    expect(reply.status, reply.text).toBe(200);
    const token = String(reply.json.token);
    issued.push(token);
    const { payload, protectedHeader } = await verifyAsACloud(token);
    expect(protectedHeader).toMatchObject({ alg: 'RS256', typ: 'JWT', kid: (await keys.ring())[0]!.kid });
    expect(payload).toMatchObject({ iss: issuer, aud: AUDIENCE, sub: `workspace:${ws}:deploy:prod`, run_id: alicesRun.runId, workspace_id: ws, identity: 'deployer' });
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(600);
    expect(payload.exp! * 1000).toBeLessThanOrEqual(Date.parse(alicesRun.deadline));
    expect(reply.json).toMatchObject({ ok: true, identity: 'deployer', issuer, subject: payload.sub, audience: AUDIENCE, expiresAt: new Date(payload.exp! * 1000).toISOString() });
  });

  it('records one IdentityTokenIssued per token, with its claims and never the token', async () => {
    const second = await ask(alicesRun, 'deployer');
    expect(second.status).toBe(200);
    issued.push(String(second.json.token));
    const events = (await h.runEvents(alicesRun)).filter((e) => e.type === 'IdentityTokenIssued');
    expect(events).toHaveLength(2);
    const jtis = await Promise.all(issued.map(async (t) => (await verifyAsACloud(t)).payload.jti));
    expect(events.map((e) => e.type === 'IdentityTokenIssued' && e.data.jti)).toEqual(jtis);
    for (const event of events) {
      expect(event.meta.actor).toBe('system:gateway');
      expect(event.data).toMatchObject({ identity: 'deployer', subject: `workspace:${ws}:deploy:prod`, audience: AUDIENCE, kid: decodeProtectedHeader(issued[0]!).kid });
    }
    // Not in any event, row, log line or key-table row (the token, or its signature alone).
    const texts = [...(await tableTexts(h.api.eventTable)), ...logs.map((text, i) => ({ where: `log#${i}`, text })), ...h.logs.map((text, i) => ({ where: `gateway log#${i}`, text }))];
    const values = Object.fromEntries(issued.flatMap((t, i) => [[`TOKEN_${i}`, t], [`SIGNATURE_${i}`, t.split('.')[2]!]]));
    expect(scanTexts(texts, values)).toEqual([]);
  });

  it('refuses a member the identity use excludes (403), recorded as OperationRefused; the use admitting members lets them', async () => {
    const refused = await ask(bobsRun, 'deployer');
    expect(refused.status).toBe(403);
    expect(refused.json).toMatchObject({ code: 'IDENTITY.USE_EXCLUDES_CALLER' });
    expect(refused.text).not.toMatch(/eyJ/);
    const events = await h.runEvents(bobsRun);
    expect(events.filter((e) => e.type === 'IdentityTokenIssued')).toEqual([]);
    expect(events.find((e) => e.type === 'OperationRefused')?.data).toMatchObject({ kind: 'identity-token', target: 'identity:deployer' });
    expect((await ask(bobsRun, 'everyone')).status).toBe(200);
  });

  it('refuses a deleted identity, and one never defined (404)', async () => {
    expect((await h.api.call('DELETE', `/api/workspaces/${ws}/identities/deployer`, { token: h.owner })).status).toBe(204);
    const refused = await ask(alicesRun, 'deployer');
    expect(refused.status).toBe(404);
    expect(refused.json).toMatchObject({ code: 'IDENTITY.NOT_FOUND' });
    expect((await ask(alicesRun, 'nobody')).status).toBe(404);
    expect((await h.api.call('GET', `/api/workspaces/${ws}/identities`, { token: member })).json).toMatchObject([{ name: 'everyone' }]);
    // Tokens issued before the deletion live on until they expire: the README says so.
    await expect(verifyAsACloud(issued[0]!)).resolves.toBeDefined();
  });

  it('refuses a malformed request (400), recorded as a refusal on the run', async () => {
    for (const body of [{ kind: 'identity-token', identity: 'Not A Name' }, { kind: 'identity-token' }, { kind: 'identity-token', identity: 'everyone', audience: 'elsewhere' }]) {
      const reply = await h.operate(alicesRun.bearer, body, {}, gateway);
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(reply.text).not.toMatch(/eyJ/);
    }
    const refusals = (await h.runEvents(alicesRun)).filter((e) => e.type === 'OperationRefused' && e.data.kind === 'unparsed');
    expect(refusals).toHaveLength(3);
  });

  it('answers a foreign bearer 401, a torn-down run 401 and a run whose sandbox is gone 410, issuing nothing', async () => {
    expect((await h.operate('not-a-bearer', { kind: 'identity-token', identity: 'everyone' }, {}, gateway)).status).toBe(401);
    const doomed = await h.launch(ws, []);
    await h.teardown(doomed);
    expect((await h.operate(doomed.bearer, { kind: 'identity-token', identity: 'everyone' }, {}, gateway)).status).toBe(401);
    const orphan = await h.launch(ws, []);
    h.sandboxes.remove(orphan.runId);
    const gone = await h.operate(orphan.bearer, { kind: 'identity-token', identity: 'everyone' }, {}, gateway);
    expect(gone.status).toBe(410);
    for (const run of [doomed, orphan]) expect((await h.runEvents(run)).filter((e) => e.type === 'IdentityTokenIssued')).toEqual([]);
  });
});

describe('the issuer setting', () => {
  it('defaults to PLATFORM_ISSUER under /api; production refuses an http IDENTITY_ISSUER', () => {
    const base = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };
    expect(identityIssuerOf(loadSettings(base))).toBe('http://127.0.0.1:7071/api');
    expect(identityIssuerOf(loadSettings({ ...base, PLATFORM_ISSUER: 'https://platform.example/' }))).toBe('https://platform.example/api');
    expect(() => loadSettings({ ...base, IDENTITY_ISSUER: 'https://platform.example/api/' })).toThrow(/IDENTITY_ISSUER/);
    const production = {
      DISCO_ENV: 'production', AzureWebJobsStorage__accountName: 'discoparrot', AUTH_MODE: 'entra', AUTH_ISSUER: 'https://login.example/',
      AUTH_JWKS_URL: 'https://login.example/keys', VAULT_MASTER_KEY_ID: 'https://kv.example/keys/master', VAULT_SINGLE_TENANT: 'true', PLATFORM_ISSUER: 'https://platform.example',
    };
    expect(() => loadSettings({ ...production, IDENTITY_ISSUER: 'http://platform.example/api' })).toThrow(/IDENTITY_ISSUER/);
    expect(identityIssuerOf(loadSettings({ ...production, IDENTITY_ISSUER: 'https://id.platform.example/api' }))).toBe('https://id.platform.example/api');
  });
});

describe('what a cloud refuses', () => {
  it('a token signed by another key, even one claiming the platform kid, or by the platform\'s Ed25519 ring', async () => {
    const kid = (await keys.ring())[0]!.kid;
    const attacker = await generateKeyPair('RS256');
    const claims = { run_id: alicesRun.runId, workspace_id: ws, identity: 'deployer' };
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).setIssuer(issuer).setAudience(AUDIENCE)
      .setSubject(`workspace:${ws}:deploy:prod`).setIssuedAt().setExpirationTime('5m').setJti('x').sign(attacker.privateKey);
    await expect(verifyAsACloud(forged)).rejects.toThrow();
    // A real token of the platform's Ed25519 ring (the checkpoint key), with this issuer and audience: not in this JWKS.
    const platform = aPlatform();
    const sandboxToken = await new PlatformSandboxTokens(platform.keys, systemClock, { issuer, audience: AUDIENCE }).mint({ runId: alicesRun.runId, containerId: 'c1' });
    await expect(verifyAsACloud(sandboxToken.token)).rejects.toThrow();
  });

  it('never gets a token that outlives 10 minutes or the run', async () => {
    const notAfter = new Date(Date.now() + 90_000).toISOString();
    const near = await tokens.issue({ workspaceId: ws, runId: alicesRun.runId, identity: 'everyone', subject: 's', audience: AUDIENCE, notAfter });
    const { payload } = await verifyAsACloud(near.token);
    expect(payload.exp! * 1000).toBeLessThanOrEqual(Date.parse(notAfter));
    const far = await tokens.issue({ workspaceId: ws, runId: alicesRun.runId, identity: 'everyone', subject: 's', audience: AUDIENCE, notAfter: new Date(Date.now() + 3_600_000).toISOString() });
    const farPayload = (await verifyAsACloud(far.token)).payload;
    expect(farPayload.exp! - farPayload.iat!).toBe(600);
    expect(() => new RsaWorkloadIdentityTokens(keys, systemClock, issuer, WORKLOAD_TOKEN_MAX_MS + 1000)).toThrow(RangeError);
  });
});
