import { beforeAll, describe, expect, it } from 'vitest';
import { apiRoutes, runRoutes } from '../../functions/apiRoutes';
import { sshRoutes } from '../../functions/ssh.routes';
import { projectionKeys, workspaceStreamId } from '../../domain/streams';
import { systemClock } from '../../infra/system/systemClock';
import { CachingSecretResolver } from '../../infra/vault/secretResolver';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';
import { scanTexts, tableTexts } from '../support/leakScan';

const VALUES = {
  NPM_TOKEN: 'npm_live_9f8e7d6c5b4a39281706',
  TRACKER_KEY: 'trk-Ω-ünïcødé-key-0042',
  OPENAI_API_KEY: 'sk-proj-AbCdEfGhIjKlMnOpQrStUvWx',
  ROTATED_NEW: 'sk-proj-rotated-value-ZZZZ-1111',
};

let h: ApiHarness;
let tokens: { owner: string; member: string; outsider: string };
let ws: string;

beforeAll(async () => {
  h = await createApiHarness();
  tokens = { owner: await h.issuer.token('alice'), member: await h.issuer.token('bob'), outsider: await h.issuer.token('mallory') };
  const created = await h.call('POST', '/api/workspaces', { token: tokens.owner, body: { name: 'Acme' } });
  expect(created.status).toBe(201);
  ws = (created.json as { id: string }).id;
  expect((await h.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: tokens.owner, body: { role: 'member' } })).status).toBe(200);
  for (const [name, value] of Object.entries(VALUES).filter(([n]) => n !== 'ROTATED_NEW')) {
    const set = await h.call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { token: tokens.owner, body: { value, allowedHosts: ['registry.npmjs.org'] } });
    expect(set.status).toBe(201);
  }
  const rotated = await h.call('PUT', `/api/workspaces/${ws}/secrets/OPENAI_API_KEY`, { token: tokens.owner, body: { value: VALUES.ROTATED_NEW } });
  expect(rotated.status).toBe(200);
  expect(rotated.json).toMatchObject({ name: 'OPENAI_API_KEY', version: 2, updatedBy: 'alice', allowedHosts: ['registry.npmjs.org'] });
});

/** Every route, with a path and body that would succeed for an owner. */
function everyRouteCall(workspaceId: string): Array<{ method: string; path: string; body?: unknown; ownerOnly: boolean; ownerStatus?: number }> {
  return [
    { method: 'GET', path: `/api/workspaces/${workspaceId}`, ownerOnly: false },
    { method: 'PUT', path: `/api/workspaces/${workspaceId}/members/carol`, body: { role: 'member' }, ownerOnly: true },
    { method: 'DELETE', path: `/api/workspaces/${workspaceId}/members/carol`, ownerOnly: true },
    { method: 'PUT', path: `/api/workspaces/${workspaceId}/secrets/TEMP_SECRET`, body: { value: 'temporary-value-123' }, ownerOnly: true },
    { method: 'GET', path: `/api/workspaces/${workspaceId}/secrets`, ownerOnly: false },
    { method: 'DELETE', path: `/api/workspaces/${workspaceId}/secrets/TEMP_SECRET`, ownerOnly: true },
    // After the delete: a deleted version can still be revoked (a live process may hold it); again, it is a no-op.
    { method: 'POST', path: `/api/workspaces/${workspaceId}/secrets/TEMP_SECRET/revoke`, ownerOnly: true },
    { method: 'PUT', path: `/api/workspaces/${workspaceId}/identities/deployer`, body: { subject: 'deploy:prod', audience: 'api://AzureADTokenExchange', uses: { identity: 'owners' } }, ownerOnly: true },
    { method: 'GET', path: `/api/workspaces/${workspaceId}/identities`, ownerOnly: false },
    { method: 'DELETE', path: `/api/workspaces/${workspaceId}/identities/deployer`, ownerOnly: true },
    { method: 'POST', path: `/api/workspaces/${workspaceId}/hosts`, body: { name: 'build-box' }, ownerOnly: true },
    { method: 'GET', path: `/api/workspaces/${workspaceId}/hosts`, ownerOnly: false },
    { method: 'DELETE', path: `/api/workspaces/${workspaceId}/hosts/00000000-0000-4000-8000-00000000beef`, ownerOnly: true, ownerStatus: 404 },
    { method: 'GET', path: `/api/workspaces/${workspaceId}/audit?limit=50`, ownerOnly: false },
    { method: 'GET', path: `/api/workspaces/${workspaceId}/audit/verify`, ownerOnly: false },
    { method: 'PUT', path: `/api/workspaces/${workspaceId}/egress`, body: { allowedHosts: ['registry.npmjs.org'] }, ownerOnly: true },
    { method: 'GET', path: `/api/workspaces/${workspaceId}/egress`, ownerOnly: false },
    // Recovering a live workspace is a conflict; deleting it is covered end to end in workspaceLifecycle tests.
    { method: 'POST', path: `/api/workspaces/${workspaceId}/recover`, ownerOnly: true, ownerStatus: 409 },
    { method: 'DELETE', path: `/api/workspaces/${workspaceId}?retentionDays=3`, ownerOnly: true, ownerStatus: 400 },
  ];
}

describe('the workspace, member, secret and audit API', () => {
  it('covers every registered workspace route in the route-by-route calls', () => {
    const called = new Set(everyRouteCall('x').map((c) => `${c.method} ${c.path.split('?')[0]!.replace('/x', '/{ws}').replace(/members\/carol$/, 'members/{user}').replace(/secrets\/TEMP_SECRET(\/revoke)?$/, 'secrets/{name}$1').replace(/identities\/deployer$/, 'identities/{name}').replace(/hosts\/[0-9a-f-]+$/, 'hosts/{id}').replace(/^(DELETE \/api\/workspaces)\/x$/, '$1/{ws}').replace(/\/x\/recover$/, '/{ws}/recover')}`));
    // Run routes have their own route-by-route access test (runs.api.test.ts); SSH into a live run its own (runSsh.e2e.test.ts).
    const registered = apiRoutes.filter((r) => r.route.startsWith('workspaces/{ws}') && !runRoutes.includes(r) && !sshRoutes.includes(r)).map((r) => `${r.method} /api/${r.route}`);
    expect(registered.filter((r) => !called.has(r))).toEqual([]);
  });

  it('has no route that reads a secret value back', async () => {
    const reads = apiRoutes.filter((r) => r.method === 'GET' && /secrets\/\{name\}/.test(r.route));
    expect(reads).toEqual([]);
    await expect(h.call("GET", `/api/workspaces/${ws}/secrets/NPM_TOKEN`, { token: tokens.owner })).rejects.toThrow(/no route/);
  });

  it('owners may do everything; members get 403 on owner routes; outsiders get 404 everywhere', async () => {
    for (const call of everyRouteCall(ws)) {
      const asOutsider = await h.call(call.method, call.path, { token: tokens.outsider, body: call.body });
      expect(asOutsider.status, `${call.method} ${call.path} as outsider`).toBe(404);
      expect(asOutsider.headers['content-type']).toBe('application/problem+json');
      const asMember = await h.call(call.method, call.path, { token: tokens.member, body: call.body });
      expect(asMember.status, `${call.method} ${call.path} as member`).toBe(call.ownerOnly ? 403 : 200);
      const asOwner = await h.call(call.method, call.path, { token: tokens.owner, body: call.body });
      if (call.ownerStatus) expect(asOwner.status, `${call.method} ${call.path} as owner`).toBe(call.ownerStatus);
      else expect(asOwner.status, `${call.method} ${call.path} as owner`).toBeLessThan(300);
    }
  });

  it('a workspace that does not exist is 404 for everyone, like one the caller cannot see', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    for (const call of everyRouteCall(missing)) {
      expect((await h.call(call.method, call.path, { token: tokens.owner, body: call.body })).status).toBe(404);
    }
  });

  it('records denied requests of authenticated callers as AccessDenied', async () => {
    const audit = await h.call('GET', `/api/workspaces/${ws}/audit?limit=500`, { token: tokens.owner });
    const denials = (audit.json as { records: Array<{ type: string; data: { actor: string } }> }).records.filter((r) => r.type === 'AccessDenied');
    expect(denials.some((d) => d.data.actor === 'mallory')).toBe(true);
    expect(denials.some((d) => d.data.actor === 'bob')).toBe(true);
  });

  it('a flood of denials leaves the workspace stream alone: each is a stream of its own, so no workspace command folds them', async () => {
    const workspaceStream = async () => (await h.store.readStream(ws, workspaceStreamId(ws))).version;
    const before = await workspaceStream();
    for (let i = 0; i < 25; i++) expect((await h.call('GET', `/api/workspaces/${ws}`, { token: tokens.outsider })).status).toBe(404);
    expect(await workspaceStream()).toBe(before);
    const audit = await h.call('GET', `/api/workspaces/${ws}/audit?limit=500`, { token: tokens.owner });
    const records = (audit.json as { records: Array<{ type: string; streamId: string; data: { actor: string } }> }).records;
    const flood = records.filter((r) => r.type === 'AccessDenied' && r.data.actor === 'mallory');
    expect(flood.length).toBeGreaterThanOrEqual(25);
    expect(new Set(flood.map((r) => r.streamId)).size).toBe(flood.length);
  });

  it('lists names and metadata only', async () => {
    const list = await h.call('GET', `/api/workspaces/${ws}/secrets`, { token: tokens.member });
    expect(list.status).toBe(200);
    const items = list.json as Array<Record<string, unknown>>;
    expect(items.map((i) => i.name)).toEqual(['NPM_TOKEN', 'OPENAI_API_KEY', 'TRACKER_KEY']);
    for (const item of items) expect(Object.keys(item).sort()).toEqual(['allowedHosts', 'name', 'updatedAt', 'updatedBy', 'uses', 'version']);
    expect(items[0]?.uses).toEqual({ git: 'members', npm: 'members', http: 'members' });
  });

  it('rotation: the next resolve returns the new value, also from a second resolver with a warm cache', async () => {
    expect((await h.resolver.resolve(ws, 'TRACKER_KEY')).value).toBe(VALUES.TRACKER_KEY);
    const second = new CachingSecretResolver({
      vault: h.vault,
      clock: systemClock,
      ttlMs: 60_000,
      currentVersion: async (w: string, n: string) => {
        const row = await h.store.readProjection(w, projectionKeys.secret(n));
        return row && row.exists === true ? Number(row.version) : undefined;
      },
    });
    expect((await second.resolve(ws, 'TRACKER_KEY')).value).toBe(VALUES.TRACKER_KEY);
    const rotated = 'trk-rotated-after-warm-cache-7';
    expect((await h.call('PUT', `/api/workspaces/${ws}/secrets/TRACKER_KEY`, { token: tokens.owner, body: { value: rotated } })).status).toBe(200);
    expect((await h.resolver.resolve(ws, 'TRACKER_KEY')).value).toBe(rotated);
    expect((await second.resolve(ws, 'TRACKER_KEY')).value).toBe(rotated);
    (VALUES as Record<string, string>).TRACKER_ROTATED = rotated;
  });

  it('the audit chain verifies', async () => {
    const verify = await h.call('GET', `/api/workspaces/${ws}/audit/verify`, { token: tokens.member });
    expect(verify.json).toMatchObject({ ok: true });
  });

  it('no response, log line or stored row carries a value (raw or encoded)', async () => {
    const texts = [
      ...h.responses.map((r, i) => ({ where: `response#${i}`, text: `${JSON.stringify(r.headers)}${r.text}` })),
      ...h.logs.map((l, i) => ({ where: `log#${i}`, text: l })),
      ...(await tableTexts(h.eventTable)),
    ];
    expect(texts.length).toBeGreaterThan(50);
    expect(scanTexts(texts, VALUES)).toEqual([]);
    // The vault table holds ciphertexts only.
    expect(scanTexts(await tableTexts(h.vaultTable), VALUES)).toEqual([]);
  });
});
