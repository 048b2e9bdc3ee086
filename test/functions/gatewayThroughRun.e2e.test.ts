import { TableClient } from '@azure/data-tables';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, backendEnv, type Call, isFinished, type RunView, startBackend, tokenFor, waitForRun } from '../e2e/runHarness';
import { azuriteConnectionString } from '../support/azurite';
import { scanTexts, tableTexts } from '../support/leakScan';
import type { LocalHostProcess } from '../support/localHostProcess';

/**
 * The whole loop through the Functions app on the local host: a real run's agent, inside its sandbox, calls
 * GATEWAY_URL with its GATEWAY_TOKEN; the gateway finds the sandbox the run lifecycle registered, injects the
 * secret into a request to a local API, and the agent reads back a redacted answer. Then teardown kills the bearer.
 */

const API_TOKEN = 'api-e2e-gateway-token-5d4c3b2a1f0e';

/** The agent: two gateway calls (allowed, then to a host the secret may not go to), results on stdout. */
const AGENT = `
const call = async (body) => {
  const res = await fetch(process.env.GATEWAY_URL, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + process.env.GATEWAY_TOKEN, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
};
(async () => {
  const ok = await call({ kind: 'http', url: process.env.ECHO_URL + '/whoami', secret: 'API_TOKEN' });
  console.log('allowed gateway=' + ok.status + ' upstream=' + ok.json.status + ' body=' + ok.json.body);
  const refused = await call({ kind: 'http', url: process.env.OTHER_URL + '/collect', secret: 'API_TOKEN' });
  console.log('refused gateway=' + refused.status + ' code=' + refused.json.code);
  console.log('token-in-env=' + Object.values(process.env).some((v) => v && v.includes(${JSON.stringify(API_TOKEN.slice(0, 12))})));
})().catch((e) => { console.log('agent failed ' + e.name); process.exit(1); });
`;

const env = backendEnv();
let host: LocalHostProcess;
let owner: Call;
let echo: http.Server;
let other: http.Server;
const seen: { echo: string[]; other: number } = { echo: [], other: 0 };
let run: RunView;
let transcript = '';
let ws = '';

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  echo = http.createServer((req, res) => {
    seen.echo.push(req.headers.authorization ?? '');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`you sent ${req.headers.authorization ?? 'nothing'}`);
  });
  other = http.createServer((_req, res) => {
    seen.other++;
    res.end('collected');
  });
  const [echoUrl, otherUrl] = await Promise.all([listen(echo), listen(other)]);
  host = await startBackend(env);
  owner = apiClient(() => host.url, await tokenFor('alice', env));
  const created = await owner('POST', '/api/workspaces', { name: 'Gateway e2e' });
  expect(created.status).toBe(201);
  ws = (created.json as { id: string }).id;
  expect((await owner('PUT', `/api/workspaces/${ws}/secrets/API_TOKEN`, { value: API_TOKEN, allowedHosts: [new URL(echoUrl).host] })).status).toBe(201);
  const started = await owner('POST', `/api/workspaces/${ws}/runs`, {
    template: { files: { 'agent.js': AGENT } },
    env: { ECHO_URL: echoUrl, OTHER_URL: otherUrl },
    turns: [{ command: ['node', 'agent.js'] }],
    deadlineSeconds: 120,
  });
  expect(started.status, started.text).toBe(202);
  const runId = (started.json as { runId: string }).runId;
  run = await waitForRun(owner, ws, runId, isFinished);
  transcript = (await owner('GET', `/api/workspaces/${ws}/runs/${runId}/transcript`)).text;
}, 120_000);

afterAll(async () => {
  await host?.stop();
  await Promise.all([echo, other].map((s) => new Promise((resolve) => s?.close(resolve))));
});

describe('the gateway inside a real run', () => {
  it('the agent got a redacted answer; the API got the credential in the header; the other host got nothing', () => {
    expect(run.status, JSON.stringify(run)).toBe('Completed');
    expect(transcript).toContain('allowed gateway=200 upstream=200 body=you sent Bearer [REDACTED:API_TOKEN]');
    expect(transcript).toContain('refused gateway=403 code=GATEWAY.HOST_NOT_ALLOWED');
    expect(transcript).toContain('token-in-env=false');
    expect(transcript).not.toContain(API_TOKEN);
    expect(seen.echo).toEqual([`Bearer ${API_TOKEN}`]);
    expect(seen.other).toBe(0);
  });

  it('over HTTP, a caller without a gateway bearer (even with a user JWT) gets 401 with a Bearer challenge', async () => {
    const url = `${host.url}/api/gateway/operations`;
    const body = JSON.stringify({ kind: 'http', url: 'http://127.0.0.1:1/', secret: 'API_TOKEN' });
    for (const authorization of [undefined, `Bearer ${await tokenFor('alice', env)}`]) {
      const reply = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body });
      expect(reply.status).toBe(401);
      expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer realm="disco-parrot-gateway"/);
      expect(reply.headers.get('content-type')).toBe('application/problem+json');
    }
  });

  it('the run stream records the operation, its lease and the refusal', () => {
    const types = run.events.map((e) => e.type);
    expect(types).toContain('OperationRequested');
    expect(types).toContain('OperationRefused');
    const grant = run.events.find((e) => e.type === 'LeaseGranted' && e.data.channel === 'gateway-header');
    expect(grant?.data).toMatchObject({ secretName: 'API_TOKEN', operation: 'gateway:http:GET' });
    expect(run.events.some((e) => e.type === 'LeaseReleased' && e.data.leaseId === grant?.data.leaseId)).toBe(true);
  });

  it('after teardown the run is revoked in the bearer table, which holds no bearer and no value', async () => {
    const table = TableClient.fromConnectionString(azuriteConnectionString(), env.GATEWAY_BEARER_TABLE ?? '', { allowInsecureConnection: true });
    const rows = await tableTexts(table);
    expect(rows.some((r) => r.where.endsWith(`:${run.runId}/~revoked`))).toBe(true);
    expect(rows.filter((r) => r.text.includes(`"runId":"${run.runId}"`)).every((r) => r.text.includes('"revoked":true'))).toBe(true);
    expect(scanTexts(rows, { API_TOKEN })).toEqual([]);
  });
});
