import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';
import { createTestIssuer } from '../support/testIssuer';

const SECRET = 'bad-input-canary-value-31337';
const ALLOWED = new Set([400, 401, 403, 404, 409, 413, 415, 422]);

let h: ApiHarness;
let owner: string;
let ws: string;
/** An enrolled host of the workspace: `HOSTID` in a fuzzed segment names it, so revoke meets a real host too. */
let hostId: string;

beforeAll(async () => {
  h = await createApiHarness();
  owner = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: owner, body: { name: 'Fuzz' } })).json as { id: string }).id;
  expect((await h.call('PUT', `/api/workspaces/${ws}/secrets/CANARY`, { token: owner, body: { value: SECRET } })).status).toBe(201);
  expect((await h.call('PUT', `/api/workspaces/${ws}/secrets/PROBE`, { token: owner, body: { value: 'probe-value-for-fuzzed-calls' } })).status).toBe(201);
  const enrolled = await h.call('POST', `/api/workspaces/${ws}/hosts`, { token: owner, body: { name: 'fuzz-box' } });
  expect(enrolled.status).toBe(201);
  hostId = (enrolled.json as { hostId: string }).hostId;
});

async function meaningfulRecords(): Promise<number> {
  const page = await h.store.readLog(ws, { limit: 10_000 });
  return page.records.filter((r) => r.type !== 'AccessDenied').length;
}

const segment = fc.oneof(
  // PROBE is a real secret the fuzz may legitimately overwrite or delete; CANARY is never named, so it must survive.
  fc.constantFrom('..', '../..', '%2e%2e', 'PROBE', 'HOSTID', 'lower', '1BAD', 'A'.repeat(200), '', ' ', 'ÿ', '😀', '%00', 'a\r\nX-Injected: 1', 'NPM-TOKEN'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);

const body = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('{', '{"value":', 'null', '[]', '"str"', '{"value":12345678}', '{"value":"short"}', '{"role":"admin"}', '{"name":""}',
    `{"value":"${'x'.repeat(30_000)}"}`, '{"value":"ok-value-123","extra":true}', '{"allowedHosts":["http://evil/"],"value":"ok-value-123"}',
    '{"subject":"s","audience":"a","uses":{"identity":"everyone"}}', '{"subject":"has space","audience":"a","uses":{"identity":"members"}}',
    '{"name":"box","token":"x"}', `{"name":"${'h'.repeat(64)}"}`, '{"name":"a\\u0000b"}', '{"name":123}',
    '\uFEFF{"value":"ok-value-123"}', '{"value":"\\ud800abcdefgh"}', '{"__proto__":{"x":1},"value":"ok-value-123"}'),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
);

const contentType = fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', '', 'application/json; charset=utf-8', 'application/merge-patch+json');
const auth = fc.constantFrom('owner', 'none', 'garbage', 'Basic abc', 'Bearer a.b.c');

const calls = fc.record({
  kind: fc.constantFrom('createWs', 'getWs', 'setMember', 'removeMember', 'setSecret', 'listSecrets', 'deleteSecret', 'defineIdentity', 'listIdentities', 'deleteIdentity', 'audit', 'verify', 'enrolHost', 'listHosts', 'revokeHost', 'openRunSsh'),
  ws: fc.oneof(fc.constant('WS'), segment),
  name: segment,
  query: fc.constantFrom('', '?after=-1', '?limit=0', '?limit=abc', '?after=1e99', '?limit=1&limit=2', '?x=1'),
  body,
  contentType,
  auth,
});

const routes: Record<string, { method: string; path: (ws: string, name: string) => string }> = {
  createWs: { method: 'POST', path: () => '/api/workspaces' },
  getWs: { method: 'GET', path: (w) => `/api/workspaces/${w}` },
  setMember: { method: 'PUT', path: (w, n) => `/api/workspaces/${w}/members/${n}` },
  removeMember: { method: 'DELETE', path: (w, n) => `/api/workspaces/${w}/members/${n}` },
  setSecret: { method: 'PUT', path: (w, n) => `/api/workspaces/${w}/secrets/${n}` },
  listSecrets: { method: 'GET', path: (w) => `/api/workspaces/${w}/secrets` },
  deleteSecret: { method: 'DELETE', path: (w, n) => `/api/workspaces/${w}/secrets/${n}` },
  defineIdentity: { method: 'PUT', path: (w, n) => `/api/workspaces/${w}/identities/${n}` },
  listIdentities: { method: 'GET', path: (w) => `/api/workspaces/${w}/identities` },
  deleteIdentity: { method: 'DELETE', path: (w, n) => `/api/workspaces/${w}/identities/${n}` },
  audit: { method: 'GET', path: (w) => `/api/workspaces/${w}/audit` },
  verify: { method: 'GET', path: (w) => `/api/workspaces/${w}/audit/verify` },
  enrolHost: { method: 'POST', path: (w) => `/api/workspaces/${w}/hosts` },
  listHosts: { method: 'GET', path: (w) => `/api/workspaces/${w}/hosts` },
  revokeHost: { method: 'DELETE', path: (w, n) => `/api/workspaces/${w}/hosts/${n}` },
  openRunSsh: { method: 'POST', path: (w, n) => `/api/workspaces/${w}/runs/${n}/ssh` },
};

describe('bad input over every route', () => {
  it('answers 4xx with a problem body, never 5xx, never echoes a value, stores nothing', async () => {
    let fuzzed = 0;
    await fc.assert(
      fc.asyncProperty(calls, async (c) => {
        const route = routes[c.kind]!;
        const wsSegment = c.ws === 'WS' ? ws : encodeURIComponent(c.ws);
        const path = route.path(wsSegment, c.name === 'HOSTID' ? hostId : encodeURIComponent(c.name)) + (c.kind === 'audit' ? c.query : '');
        const headers: Record<string, string> = {};
        if (c.contentType) headers['content-type'] = c.contentType;
        if (c.auth === 'owner') headers.authorization = `Bearer ${owner}`;
        else if (c.auth !== 'none') headers.authorization = c.auth === 'garbage' ? 'Bearer not-a-jwt' : c.auth;
        let response;
        const before = await meaningfulRecords();
        try {
          response = await h.call(route.method, path, { headers, ...(c.body !== undefined ? { rawBody: c.body } : {}) });
        } catch (error) {
          // A path the router cannot match (for example an empty segment) never reaches a handler: the host answers 404.
          expect(String(error)).toMatch(/no route/);
          return;
        }
        fuzzed++;
        expect(response.status).not.toBeGreaterThanOrEqual(500);
        expect(response.text).not.toContain(SECRET);
        expect(response.text).not.toContain('probe-value-for-fuzzed-calls');
        expect(response.text).not.toMatch(/at .+\.(ts|js):\d+/);
        if (response.status >= 400) {
          expect(ALLOWED.has(response.status), `status ${response.status}`).toBe(true);
          expect(response.headers['content-type']).toBe('application/problem+json');
          expect(response.json).toMatchObject({ status: response.status, code: expect.any(String), detail: expect.any(String), title: expect.any(String) });
          expect(await meaningfulRecords()).toBe(before);
        }
      }),
      { numRuns: 300 },
    );
    expect(fuzzed).toBeGreaterThan(200);
    expect((await h.resolver.resolve(ws, 'CANARY')).value).toBe(SECRET);
  });

  it('answers 401 with a Bearer challenge for missing, malformed, expired and foreign tokens', async () => {
    const foreign = await createTestIssuer({ issuer: 'https://other-issuer.example' });
    const cases: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer nope' },
      { authorization: `Bearer ${await h.issuer.token('alice', { expiresIn: Math.floor(Date.now() / 1000) - 120 })}` },
      { authorization: `Bearer ${await h.issuer.token('alice', { audience: 'api://someone-else' })}` },
      { authorization: `Bearer ${await foreign.token('alice')}` },
    ];
    for (const headers of cases) {
      const response = await h.call('GET', `/api/workspaces/${ws}/secrets`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('refuses values under 8 bytes (400) and over 24 KiB (413), naming the limit, not the value', async () => {
    const short = await h.call('PUT', `/api/workspaces/${ws}/secrets/SHORT`, { token: owner, body: { value: 'seven77' } });
    expect(short.status).toBe(400);
    expect(short.json).toMatchObject({ code: 'SECRET.VALUE_TOO_SHORT' });
    expect(short.text).not.toContain('seven77');
    const big = 'B'.repeat(24 * 1024 + 1);
    const large = await h.call('PUT', `/api/workspaces/${ws}/secrets/LARGE`, { token: owner, body: { value: big } });
    expect(large.status).toBe(413);
    expect(large.text).not.toContain('BBBBBBBB');
  });
});
