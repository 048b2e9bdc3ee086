import { expect } from 'vitest';
import { startBatteryBackend } from './batteryBackend';
import type { FuzzTarget } from './batteryFuzz';
import { isFinished, seedWorkspace, startRun, waitForRun } from './batteryRuns';

export const FUZZ_SECRETS = { CANARY: 'fuzz-workspace-canary-31337abc', OPENAI_API_KEY: 'sk-fuzz-model-key-deadbeef0042' };

/** A backend of its own with a workspace (alice owner, bob member), two secrets and one finished run. */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const backend = await startBatteryBackend();
  await backend.startHost();
  const { ws, call, token: owner } = await seedWorkspace(backend, 'alice', FUZZ_SECRETS, { OPENAI_API_KEY: { model: 'members' } });
  expect((await call('PUT', `/api/workspaces/${ws}/members/bob`, { role: 'member' })).status).toBe(200);
  const runId = await startRun(call, ws, { template: { files: {} }, turns: [{ command: ['node', '-e', 'console.log(process.env.OPENAI_API_KEY)'], modelKey: 'OPENAI_API_KEY' }], deadlineSeconds: 60 });
  expect((await waitForRun(call, ws, runId, isFinished)).status).toBe('Completed');
  return { backend, ws, runId, owner, member: await backend.token('bob'), secrets: FUZZ_SECRETS };
}
