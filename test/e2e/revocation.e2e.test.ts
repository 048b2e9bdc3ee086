import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalHostProcess } from '../support/localHostProcess';
import { processesHolding } from '../support/processLeaks';
import { agentFixture, apiClient, backendEnv, type Call, isFinished, type RunView, startBackend, tokenFor, waitForRun } from './runHarness';

const hash = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 16);
const OLD = 'trk-e2e-revoke-compromised-0123456789';
const NEW = 'trk-e2e-revoke-replacement-9876543210';
const MODEL = 'sk-e2e-revoke-model-key-0123456789ab';

const env = backendEnv();
let host: LocalHostProcess;
let owner: Call;
let ws: string;
let gate: http.Server;
let gateUrl = '';

beforeAll(async () => {
  // Turn 1 calls the gate; the owner revokes the MCP server's key (a new value with "revoke": true) before it answers.
  gate = http.createServer((_req, res) => {
    void owner('PUT', `/api/workspaces/${ws}/secrets/TRACKER_KEY`, { value: NEW, revoke: true })
      .then((reply) => res.end(`revoked ${reply.status} ${JSON.stringify(reply.json)}`))
      .catch(() => ((res.statusCode = 500), res.end()));
  });
  await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve));
  gateUrl = `http://127.0.0.1:${(gate.address() as AddressInfo).port}/gate`;
  host = await startBackend({ ...env, SANDBOX_EGRESS_TEST_SERVERS: new URL(gateUrl).host });
  owner = apiClient(() => host.url, await tokenFor('alice', env));
  ws = ((await owner('POST', '/api/workspaces', { name: 'e2e revoke' })).json as { id: string }).id;
  expect((await owner('PUT', `/api/workspaces/${ws}/secrets/TRACKER_KEY`, { value: OLD, uses: { mcp: 'members' } })).status).toBe(201);
  expect((await owner('PUT', `/api/workspaces/${ws}/secrets/OPENAI_API_KEY`, { value: MODEL, uses: { model: 'members' } })).status).toBe(201);
}, 120_000);

afterAll(async () => {
  await host?.stop();
  await new Promise((resolve) => (gate ? gate.close(resolve) : resolve(undefined)));
});

describe('an MCP server whose key is revoked mid-run, through the Durable lifecycle on the local host', () => {
  let run: RunView;
  let transcript = '';

  beforeAll(async () => {
    const reply = await owner('POST', `/api/workspaces/${ws}/runs`, {
      template: { files: { 'agent.js': agentFixture('agent.js'), 'mcp.js': agentFixture('mcp.js') } },
      env: { GATE_URL: gateUrl },
      mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
      turns: [
        { command: ['node', 'agent.js', 'gate'], modelKey: 'OPENAI_API_KEY' },
        // Time for the restarted server to tick before teardown.
        { command: ['node', '-e', 'setTimeout(() => {}, 1500)'] },
      ],
      deadlineSeconds: 300,
    });
    expect(reply.status, reply.text).toBe(202);
    const { runId } = reply.json as { runId: string };
    run = await waitForRun(owner, ws, runId, isFinished);
    transcript = (await owner('GET', `/api/workspaces/${ws}/runs/${runId}/transcript`)).text;
  }, 150_000);

  it('the run completes; the server was stopped, recorded LeaseRevoked, and restarted with the new version', () => {
    expect(run.status, JSON.stringify(run.phases)).toBe('Completed');
    expect(transcript).toContain('agent gate 200');
    const revoked = run.events.filter((e) => e.type === 'LeaseRevoked');
    expect(revoked.map((e) => e.data)).toEqual([expect.objectContaining({ runId: run.runId, secretName: 'TRACKER_KEY', secretVersion: 1 })]);
    const tracker = run.events.filter((e) => e.type === 'LeaseGranted' && e.data.secretName === 'TRACKER_KEY').map((e) => e.data.secretVersion);
    expect(tracker).toEqual([1, 2]);
    expect(transcript).toContain(`mcp start tracker-key=${hash(OLD)}`);
    expect(transcript).toContain(`mcp start tracker-key=${hash(NEW)}`);
    // After the restart, every tick holds the new value.
    const afterRestart = transcript.slice(transcript.indexOf(`mcp start tracker-key=${hash(NEW)}`));
    expect(afterRestart).not.toContain(hash(OLD));
  });

  it('the audit trail has SecretRevoked and LeaseRevoked, and no value anywhere in it, the run or the transcript', async () => {
    const audit = await owner('GET', `/api/workspaces/${ws}/audit?limit=500`);
    const types = (audit.json as { records: { type: string }[] }).records.map((r) => r.type);
    expect(types).toContain('SecretRevoked');
    expect(types).toContain('LeaseRevoked');
    for (const text of [audit.text, JSON.stringify(run), transcript]) for (const value of [OLD, NEW, MODEL]) expect(text).not.toContain(value);
    expect(processesHolding(OLD)).toEqual([]);
    expect(processesHolding(NEW)).toEqual([]);
  });
});
