import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devIssuerSettings, mintDevToken } from '../../infra/identity/devIssuer';
import { startBatteryBackend, type BatteryBackend } from '../support/batteryBackend';
import { rawRequest } from '../support/batteryHttp';
import { BatteryTally, type Call, isFinished, seedWorkspace, startRun, waitForRun } from '../support/batteryRuns';

const SECRETS = { CANARY: 'access-canary-secret-value-4242', OPENAI_API_KEY: 'sk-access-model-key-0f0e0d0c0b0a' };
const validSpec = { template: { files: {} }, turns: [{ command: ['node', '-e', '1'] }], deadlineSeconds: 30 };

/** Every route with a body that would change something if access control let it through. */
const ROUTES = (ws: string, run: string): { method: string; path: string; body?: unknown; owner?: boolean }[] => [
  { method: 'GET', path: `/api/workspaces/${ws}` },
  { method: 'DELETE', path: `/api/workspaces/${ws}?retentionDays=7`, owner: true },
  { method: 'POST', path: `/api/workspaces/${ws}/recover`, owner: true },
  { method: 'PUT', path: `/api/workspaces/${ws}/members/mallory`, body: { role: 'owner' }, owner: true },
  { method: 'DELETE', path: `/api/workspaces/${ws}/members/alice`, owner: true },
  { method: 'PUT', path: `/api/workspaces/${ws}/secrets/CANARY`, body: { value: 'overwritten-by-attacker-1' }, owner: true },
  { method: 'GET', path: `/api/workspaces/${ws}/secrets` },
  { method: 'DELETE', path: `/api/workspaces/${ws}/secrets/CANARY`, owner: true },
  { method: 'PUT', path: `/api/workspaces/${ws}/secrets/CANARY`, body: { value: 'revoked-by-attacker-1', revoke: true }, owner: true },
  { method: 'POST', path: `/api/workspaces/${ws}/secrets/CANARY/revoke`, owner: true },
  { method: 'PUT', path: `/api/workspaces/${ws}/identities/deployer`, body: { subject: 'attacker', audience: 'api://AzureADTokenExchange', uses: { identity: 'members' } }, owner: true },
  { method: 'GET', path: `/api/workspaces/${ws}/identities` },
  { method: 'DELETE', path: `/api/workspaces/${ws}/identities/deployer`, owner: true },
  { method: 'POST', path: `/api/workspaces/${ws}/runs`, body: validSpec },
  { method: 'GET', path: `/api/workspaces/${ws}/runs/${run}` },
  { method: 'GET', path: `/api/workspaces/${ws}/runs/${run}/transcript` },
  { method: 'POST', path: `/api/workspaces/${ws}/runs/${run}/cancel` },
  { method: 'GET', path: `/api/workspaces/${ws}/audit` },
  { method: 'GET', path: `/api/workspaces/${ws}/audit/verify` },
];

const tally = new BatteryTally();
let backend: BatteryBackend;
let call: Call;
let ws: string;
let runId: string;
let capture: http.Server;
let bearer = '';
let release: () => void = () => undefined;
const released = new Promise<void>((resolve) => (release = resolve));
const tokens: Record<string, string> = {};

async function send(method: string, route: string, token: string | undefined, body?: unknown): Promise<{ status: number; head: string; body: string }> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  tally.requests++;
  return rawRequest(backend.host!.port, method, route, headers, body === undefined ? undefined : JSON.stringify(body));
}

/** The workspace's log without the held run's own stream, which moves on by itself meanwhile. */
async function records(): Promise<{ type: string; streamId: string }[]> {
  const out: { type: string; streamId: string }[] = [];
  let after = 0;
  for (;;) {
    const page = (await call('GET', `/api/workspaces/${ws}/audit?after=${after}&limit=500`)).json as { records: { type: string; streamId: string }[]; next?: number };
    out.push(...page.records);
    if (page.next === undefined) return out.filter((r) => r.streamId !== `run:${runId}` || r.type === 'AccessDenied');
    after = page.next;
  }
}

beforeAll(async () => {
  backend = await startBatteryBackend();
  // The turn hands its gateway bearer to this server and waits to be released.
  capture = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      if (req.url === '/bearer') bearer = text;
      if (req.url === '/wait') return void released.then(() => res.end('go'));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(capture.address() as AddressInfo).port}`;
  // The sandbox has its own network: the capture server is a declared test server, the only loopback it reaches.
  await backend.startHost({ SANDBOX_EGRESS_TEST_SERVERS: new URL(origin).host });
  ({ ws, call } = await seedWorkspace(backend, 'alice', SECRETS, { OPENAI_API_KEY: { model: 'members' } }));
  expect((await call('PUT', `/api/workspaces/${ws}/members/bob`, { role: 'member' })).status).toBe(200);
  const other = await seedWorkspace(backend, 'carol', {});
  expect(other.ws).not.toBe(ws);
  const turn = `fetch('${origin}/bearer', { method: 'POST', body: process.env.GATEWAY_TOKEN }).then(() => fetch('${origin}/wait')).then((r) => r.text()).then(console.log);`;
  runId = await startRun(call, ws, { template: { files: { 'turn.js': turn } }, turns: [{ command: ['node', 'turn.js'] }], deadlineSeconds: 60 });
  const alt = path.join(backend.dir, 'rotated-issuer');
  const hourAgo = new Date(Date.now() - 2 * 3600_000);
  tokens.member = await backend.token('bob');
  tokens.outsider = await backend.token('carol');
  tokens.expired = await mintDevToken('alice', devIssuerSettings({ DEV_ISSUER_KEY_DIR: backend.env.DEV_ISSUER_KEY_DIR }), hourAgo);
  tokens.otherIssuer = await mintDevToken('alice', devIssuerSettings({ DEV_ISSUER_KEY_DIR: alt, DEV_ISSUER_URL: 'http://127.0.0.1:9/evil-issuer' }));
  tokens.rotatedKeyExpired = await mintDevToken('alice', devIssuerSettings({ DEV_ISSUER_KEY_DIR: alt }), hourAgo);
  tokens.rotatedKey = await mintDevToken('alice', devIssuerSettings({ DEV_ISSUER_KEY_DIR: alt }));
  tokens.otherAudience = await mintDevToken('alice', devIssuerSettings({ DEV_ISSUER_KEY_DIR: backend.env.DEV_ISSUER_KEY_DIR, AUTH_AUDIENCE: 'api://someone-else' }));
  const [h, p, s] = (await backend.token('alice')).split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  tokens.forgedClaims = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'carol', oid: 'carol' })).toString('base64url')}.${s}`;
  tokens.algNone = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
}, 90_000);

afterAll(async () => {
  release();
  console.log(tally.line('access'));
  capture?.close();
  await backend?.close();
});

describe('access to every route', () => {
  it('refuses callers without a valid token with 401 and a Bearer challenge, and changes nothing', async () => {
    const before = await records();
    for (const kind of [undefined, 'expired', 'otherIssuer', 'rotatedKeyExpired', 'rotatedKey', 'otherAudience', 'forgedClaims', 'algNone'] as const) {
      for (const route of [{ method: 'POST', path: '/api/workspaces', body: { name: 'x' } }, ...ROUTES(ws, runId)]) {
        const reply = await send(route.method, route.path, kind === undefined ? undefined : tokens[kind], route.body);
        expect(reply.status, `${kind ?? 'no token'} ${route.method} ${route.path}: ${reply.body}`).toBe(401);
        expect(reply.head.toLowerCase(), route.path).toMatch(/www-authenticate: bearer/);
        expect(reply.body).not.toContain(SECRETS.CANARY);
      }
    }
    expect(await records()).toEqual(before);
  });

  it('answers a member of another workspace 404 everywhere and a member 403 on owner routes, recording each as AccessDenied', async () => {
    const before = await records();
    let denials = 0;
    const unrecorded: string[] = [];
    for (const route of ROUTES(ws, runId)) {
      const n0 = (await records()).length;
      const outsider = await send(route.method, route.path, tokens.outsider, route.body);
      if ((await records()).length === n0) unrecorded.push(`outsider ${route.method} ${route.path}`);
      expect(outsider.status, `outsider ${route.method} ${route.path}: ${outsider.body}`).toBe(404);
      expect(outsider.body).not.toContain(ws);
      denials++;
      if (route.owner) {
        const n1 = (await records()).length;
        const member = await send(route.method, route.path, tokens.member, route.body);
        if ((await records()).length === n1) unrecorded.push(`member ${route.method} ${route.path}`);
        expect(member.status, `member ${route.method} ${route.path}: ${member.body}`).toBe(403);
        denials++;
      }
    }
    const after = await records();
    expect(after.slice(0, before.length)).toEqual(before);
    const added = after.slice(before.length).map((r) => r.type);
    expect(unrecorded).toEqual([]);
    expect(added).toEqual(Array(denials).fill('AccessDenied'));
    // Nothing the refused requests asked for happened.
    const secrets = (await call('GET', `/api/workspaces/${ws}/secrets`)).json as { name: string; version: number }[];
    expect(secrets.find((s) => s.name === 'CANARY')).toMatchObject({ version: 1 });
    const workspace = (await call('GET', `/api/workspaces/${ws}`)).json as { members: { userId: string; role: string }[] };
    expect(workspace.members.map((m) => `${m.userId}:${m.role}`).sort()).toEqual(['alice:owner', 'bob:member']);
  });
});

describe('user ids that name Object.prototype members', () => {
  it('are outsiders like any other: 404 on every route, and no such member can be removed', async () => {
    for (const user of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
      const token = await backend.token(user);
      for (const route of ROUTES(ws, runId)) {
        const reply = await send(route.method, route.path, token, route.body);
        expect(reply.status, `${user} ${route.method} ${route.path}: ${reply.body.slice(0, 200)}`).toBe(404);
      }
    }
    for (const name of ['__proto__', 'constructor', 'toString']) {
      const removed = await call('DELETE', `/api/workspaces/${ws}/members/${name}`);
      expect(removed.status, `${name}: ${removed.text}`).toBe(404);
    }
  });
});

describe('gateway bearers', () => {
  const op = (): { kind: string; url: string; secret: string } => ({ kind: 'http', url: 'http://127.0.0.1:9/x', secret: 'CANARY' });

  it('refuses forged bearers during the run and the real one after teardown; only the real one is heard while the run lives', async () => {
    await waitForRun(call, ws, runId, (r) => r.phases.some((p) => p.phase === 'turn' && p.status === 'Running'));
    const until = Date.now() + 30_000;
    while (bearer === '' && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(bearer).not.toBe('');
    // Positive control: the live bearer gets past authentication (the host is not in allowedHosts: 403).
    const live = await send('POST', '/api/gateway/operations', bearer, op());
    expect(live.status, live.body).toBe(403);
    const before = await records();
    const flipped = bearer.slice(0, -1) + (bearer.endsWith('A') ? 'B' : 'A');
    for (const forged of ['', 'x', 'a'.repeat(64), flipped, `${bearer}x`, bearer.toUpperCase(), tokens.member ?? '', `${bearer} ${bearer}`]) {
      const reply = await send('POST', '/api/gateway/operations', forged, op());
      expect([401, 403, 404], `forged ${forged.length}: ${reply.body}`).toContain(reply.status);
      expect(reply.status).not.toBe(403);
    }
    expect((await records()).length).toBe(before.length);
    release();
    const run = await waitForRun(call, ws, runId, isFinished);
    expect(run.status).toBe('Completed');
    for (const attempt of [1, 2]) {
      const reused = await send('POST', '/api/gateway/operations', bearer, op());
      expect([401, 404, 410], `post-teardown attempt ${attempt}: ${reused.body}`).toContain(reused.status);
    }
    const scan = await backend.leakScan({ ...SECRETS, GATEWAY_BEARER: bearer });
    console.log(scan.text);
    tally.scannedBytes += scan.bytes;
    tally.leakHits += scan.hits.length;
    expect(scan.hits).toEqual([]);
  }, 90_000);
});
