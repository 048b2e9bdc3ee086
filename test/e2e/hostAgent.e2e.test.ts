import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalHostProcess } from '../support/localHostProcess';
import { enrolAndConnect, remoteHostSettings, spawnHostAgent } from '../support/remoteHostBackend';
import { agentFixture, apiClient, backendEnv, type Call, isFinished, startBackend, tokenFor, waitForRun } from './runHarness';

const hash = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 16);
const ENV_KEY = 'env-remote-secret-value-42aa42aa';
const FILE_KEY = 'file-remote-secret-value-17bb17bb';
const dir = mkdtempSync(path.join(tmpdir(), 'dp-hostagent-e2e-'));
const env = backendEnv();
let host: LocalHostProcess;
let owner: Call;
let agent: ChildProcess | undefined;
let remote: Awaited<ReturnType<typeof remoteHostSettings>>;

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
  remote = await remoteHostSettings(dir);
  Object.assign(env, remote.env);
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
    ({ agent } = await enrolAndConnect(owner, ws, (token) => spawnHostAgent({ platform: remote.platform, caFile: remote.caFile, token, state: path.join(dir, 'agent.json') })));

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
