import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { scanTexts } from '../support/leakScan';
import type { LocalHostProcess } from '../support/localHostProcess';
import { processesHolding } from '../support/processLeaks';
import { agentFixture, apiClient, backendEnv, type Call, durableTexts, isFinished, type RunView, startBackend, tokenFor, waitForRun } from './runHarness';

const VALUES = {
  OPENAI_API_KEY: 'sk-crash-model-key-0123456789abcdef',
  TRACKER_KEY: 'trk-crash-tracker-key-9f8e7d6c5b4a',
  FILE_KEY: 'file-crash-secret-value-55aa55aa',
};
/** Each secret's use, set explicitly by the owner. */
const USES: Record<string, Record<string, string>> = { OPENAI_API_KEY: { model: 'members' }, TRACKER_KEY: { mcp: 'members' }, FILE_KEY: { command: 'members' } };

const env = backendEnv();
let host: LocalHostProcess;
let call: Call;
let ws: string;

/** MCP server holding an env lease, an install step with a file lease, then a turn that stays open. */
const longSpec = {
  template: { files: { 'agent.js': agentFixture('agent.js'), 'mcp.js': agentFixture('mcp.js'), 'check.js': agentFixture('check.js') } },
  install: [{ command: ['node', 'check.js', 'file', 'FILE_KEY_PATH'], secrets: [{ ref: 'FILE_KEY', use: 'file', as: 'FILE_KEY_PATH' }] }],
  mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
  turns: [{ command: ['node', 'agent.js', 'sleep'], modelKey: 'OPENAI_API_KEY' }],
  deadlineSeconds: 600,
};

const turnRunning = (run: RunView): boolean => run.phases.some((p) => p.phase === 'turn' && p.status === 'Running');

function sandboxIdOf(run: RunView): string {
  return String(run.events.find((e) => e.type === 'SandboxLaunched')?.data.sandboxId);
}

/** What every run must satisfy at its end, however it ended. */
async function expectCleanEnd(run: RunView): Promise<void> {
  expect(run.events.filter((e) => e.type === 'SandboxTornDown')).toHaveLength(1);
  expect(run.events.filter((e) => e.type === 'PhaseStarted' && e.data.phase === 'teardown')).toHaveLength(1);
  expect(run.events.map((e) => e.version)).toEqual(run.events.map((_, i) => i + 1));
  const granted = run.events.filter((e) => e.type === 'LeaseGranted').map((e) => e.data.leaseId);
  const ended = new Set(run.events.filter((e) => e.type === 'LeaseReleased' || e.type === 'LeaseExpired').map((e) => e.data.leaseId));
  expect(granted.length).toBeGreaterThan(0);
  for (const leaseId of granted) expect(ended.has(leaseId)).toBe(true);
  const sandboxId = sandboxIdOf(run);
  expect(existsSync(path.join('/dev/shm/dp-credentials', sandboxId))).toBe(false);
  expect(existsSync(path.join(tmpdir(), 'dp-sandboxes', 'sandboxes', sandboxId))).toBe(false);
  for (const value of Object.values(VALUES)) expect(processesHolding(value)).toEqual([]);
  const transcript = (await call('GET', `/api/workspaces/${ws}/runs/${run.runId}/transcript`)).text;
  const audit = (await call('GET', `/api/workspaces/${ws}/audit?limit=500`)).text;
  expect(scanTexts([{ where: 'run', text: JSON.stringify(run) }, { where: 'transcript', text: transcript }, { where: 'audit', text: audit }, ...(await durableTexts(env.DURABLE_TASK_HUB))], VALUES)).toEqual([]);
  expect((await call('GET', `/api/workspaces/${ws}/audit/verify`)).json).toMatchObject({ ok: true });
}

beforeAll(async () => {
  host = await startBackend(env);
  call = apiClient(() => host.url, await tokenFor('alice', env));
  const created = await call('POST', '/api/workspaces', { name: 'crash' });
  ws = (created.json as { id: string }).id;
  expect(created.status, host.stderr()).toBe(201);
  for (const [name, value] of Object.entries(VALUES)) {
    const set = await call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { value, uses: USES[name] });
    expect(set.status, set.text).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  await host?.stop();
});

describe('cancellation', () => {
  it('kills the running turn, tears down once and ends Cancelled', async () => {
    const { runId } = (await call('POST', `/api/workspaces/${ws}/runs`, longSpec)).json as { runId: string };
    await waitForRun(call, ws, runId, turnRunning);
    expect((await call('POST', `/api/workspaces/${ws}/runs/${runId}/cancel`)).status).toBe(202);
    const run = await waitForRun(call, ws, runId, isFinished);
    expect(run.status).toBe('Cancelled');
    expect(run.phases.find((p) => p.phase === 'turn')).toMatchObject({ status: 'Failed', reason: 'cancelled' });
    expect(run.events.some((e) => e.type === 'RunCancellationRequested')).toBe(true);
    await expectCleanEnd(run);
    expect((await call('POST', `/api/workspaces/${ws}/runs/${runId}/cancel`)).status).toBe(409);
  }, 60_000);
});

describe('the deadline', () => {
  it('ends a run whose turn outlives its deadline: the turn is killed, teardown runs, the run fails with the reason', async () => {
    const { runId } = (await call('POST', `/api/workspaces/${ws}/runs`, { ...longSpec, deadlineSeconds: 10 })).json as { runId: string };
    const run = await waitForRun(call, ws, runId, isFinished, 60_000);
    expect(run.status).toBe('Failed');
    expect(run.failure).toBe('deadline exceeded');
    expect(run.phases.find((p) => p.phase === 'turn')).toMatchObject({ status: 'Failed', reason: 'deadline exceeded' });
    await expectCleanEnd(run);
  }, 60_000);
});

describe('the host killed with SIGKILL in the middle of a run', () => {
  it('resumes after a restart and ends Failed with a reason, torn down once, nothing left behind', async () => {
    const { runId } = (await call('POST', `/api/workspaces/${ws}/runs`, longSpec)).json as { runId: string };
    const before = await waitForRun(call, ws, runId, turnRunning);
    host.child.kill('SIGKILL');
    await host.stop();
    // The sandbox dies with its host (its namespace init is tied to the host by PDEATHSIG): soon nothing holds a value.
    await vi.waitFor(() => {
      for (const value of Object.values(VALUES)) expect(processesHolding(value)).toEqual([]);
    }, { timeout: 10_000, interval: 100 });
    const sandboxId = sandboxIdOf(before);
    expect(existsSync(path.join('/dev/shm/dp-credentials', sandboxId))).toBe(true); // leftovers until teardown

    host = await startBackend(env);
    const run = await waitForRun(call, ws, runId, isFinished);
    expect(run.status).toBe('Failed');
    expect(run.failure).toMatch(/sandbox lost/);
    expect(run.phases.map((p) => `${p.phase}:${p.status}`)).toEqual(['seed:Completed', 'install:Completed', 'mcp:Completed', 'turn:Failed', 'teardown:Completed']);
    await expectCleanEnd(run);
  }, 120_000);
});
