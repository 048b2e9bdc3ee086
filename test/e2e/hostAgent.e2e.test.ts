import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalHostProcess } from '../support/localHostProcess';
import { agentFixture, apiClient, backendEnv, type Call, isFinished, startBackend, tokenFor, waitForRun } from './runHarness';

const hash = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 16);
const ENV_KEY = 'env-remote-secret-value-42aa42aa';
const FILE_KEY = 'file-remote-secret-value-17bb17bb';
const dir = mkdtempSync(path.join(tmpdir(), 'dp-hostagent-e2e-'));
const env = backendEnv();
let host: LocalHostProcess;
let owner: Call;
let agent: ChildProcess | undefined;
let channelPort = 0;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const spec = {
  template: { files: { 'check.js': agentFixture('check.js') } },
  install: [
    { command: ['node', 'check.js', 'env', 'ENV_KEY'], secrets: [{ ref: 'ENV_KEY', use: 'env', as: 'ENV_KEY' }] },
    { command: ['node', 'check.js', 'file', 'FILE_KEY_PATH'], secrets: [{ ref: 'FILE_KEY', use: 'file', as: 'FILE_KEY_PATH' }] },
  ],
  turns: [{ command: ['node', '-e', 'console.log("turn ran on the remote host")'] }],
  deadlineSeconds: 120,
};

beforeAll(async () => {
  channelPort = await freePort();
  Object.assign(env, { SANDBOX_HOST: 'remote', HOST_CHANNEL_PORT: String(channelPort), HOST_CHANNEL_TLS_DIR: path.join(dir, 'tls') });
  host = await startBackend(env);
  owner = apiClient(() => host.url, await tokenFor('alice', env));
}, 120_000);

afterAll(async () => {
  if (agent?.exitCode === null) agent.kill('SIGTERM');
  await host?.stop();
});

describe('a run through the real local host and a host agent over wss://', () => {
  it('enrols an agent, runs every phase on it with env and file leases, and fails a run of a workspace with no live host', async () => {
    const ws = ((await owner('POST', '/api/workspaces', { name: 'Remote' })).json as { id: string }).id;
    for (const [name, value] of [['ENV_KEY', ENV_KEY], ['FILE_KEY', FILE_KEY]] as const)
      expect((await owner('PUT', `/api/workspaces/${ws}/secrets/${name}`, { value, uses: { command: 'members' } })).status).toBe(201);
    const enrolment = (await owner('POST', `/api/workspaces/${ws}/hosts`, { name: 'e2e-box' })).json as { enrolmentToken: string; hostId: string };
    agent = spawn(process.execPath, [
      path.join(__dirname, '..', '..', 'scripts', 'hostAgent.js'), '--platform', `https://127.0.0.1:${channelPort}`, '--ca', path.join(dir, 'tls', 'cert.pem'),
      '--token', enrolment.enrolmentToken, '--state', path.join(dir, 'agent.json'), '--isolation', 'off',
    ], { stdio: 'ignore' });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const hosts = (await owner('GET', `/api/workspaces/${ws}/hosts`)).json as { lastSeenAt?: string }[];
      if (hosts[0]?.lastSeenAt) break;
      if (Date.now() > deadline) throw new Error('the agent never connected');
      await new Promise((r) => setTimeout(r, 200));
    }

    const { runId } = (await owner('POST', `/api/workspaces/${ws}/runs`, spec)).json as { runId: string };
    const run = await waitForRun(owner, ws, runId, isFinished);
    expect(run.status, JSON.stringify(run.phases)).toBe('Completed');
    const transcript = (await owner('GET', `/api/workspaces/${ws}/runs/${runId}/transcript`)).text;
    expect(transcript).toContain(`check env ENV_KEY=${hash(ENV_KEY)}`);
    expect(transcript).toContain(`value=${hash(FILE_KEY)}`);
    expect(transcript).toContain('turn ran on the remote host');
    expect(transcript).not.toContain(ENV_KEY);

    const lonely = ((await owner('POST', '/api/workspaces', { name: 'No hosts' })).json as { id: string }).id;
    const refused = (await owner('POST', `/api/workspaces/${lonely}/runs`, { ...spec, install: [] })).json as { runId: string };
    const failed = await waitForRun(owner, lonely, refused.runId, isFinished);
    expect(failed.status).toBe('Failed');
    expect(JSON.stringify(failed)).toMatch(/no live sandbox host/);
  }, 180_000);
});
