import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startBatteryBackend, type BatteryBackend } from '../support/batteryBackend';
import { BatteryTally, type Call, expectDefinedEnd, isFinished, sandboxFile, seedWorkspace, startRun, waitForRun } from '../support/batteryRuns';

/** Unique per test file: the sandbox root is shared with every other host on the machine. */
const MARKER = `side-effect-${randomUUID()}`;
const SECRETS = { OPENAI_API_KEY: 'sk-kill-model-key-0a1b2c3d4e5f6789', STEP_KEY: 'step-kill-secret-value-77aa88bb' };

/**
 * The install step's side effect is a file in the workspace; the step then lingers a moment holding its env
 * lease, so a kill timed on the file lands after the effect and before the step's completion is recorded.
 */
const spec = {
  template: { files: { 'effect.js': `require('fs').writeFileSync('${MARKER}', 'done'); setTimeout(() => {}, 400);` } },
  install: [
    { command: ['node', 'effect.js'], secrets: [{ ref: 'STEP_KEY', use: 'env', as: 'STEP_KEY' }] },
    { command: ['node', '-e', 'console.log("second step")'] },
  ],
  turns: [{ command: ['node', '-e', 'console.log("turn")'], modelKey: 'OPENAI_API_KEY' }],
  deadlineSeconds: 120,
};

const tally = new BatteryTally();
let backend: BatteryBackend;
let call: Call;
let ws: string;

beforeAll(async () => {
  backend = await startBatteryBackend();
  await backend.startHost();
  ({ ws, call } = await seedWorkspace(backend, 'killer', SECRETS));
}, 60_000);

afterAll(async () => {
  console.log(tally.line('host SIGKILL at a side effect'));
  await backend?.close();
});

describe('the local host killed with SIGKILL between a side effect and its completion record', () => {
  it('restarts, ends Failed with a reason, tears down once, leaves no credential and leaks nothing', async () => {
    const runId = await startRun(call, ws, spec);
    await vi.waitFor(() => expect(sandboxFile(backend, MARKER)).toBeDefined(), { timeout: 30_000, interval: 5 });
    await backend.killHost();
    tally.faultsInjected++;
    await backend.startHost();
    const run = await waitForRun(call, ws, runId, isFinished, 90_000);
    expect(run.status, JSON.stringify(run.phases)).toBe('Failed');
    expect(run.failure).toMatch(/sandbox lost/);
    expect(run.phases.find((p) => p.phase === 'install')?.status).toBe('Failed');
    expect(run.phases.find((p) => p.phase === 'teardown')?.status).toBe('Completed');
    await expectDefinedEnd(backend, call, ws, run, SECRETS);
    const scan = await backend.leakScan(SECRETS);
    console.log(scan.text);
    tally.scannedBytes += scan.bytes;
    tally.leakHits += scan.hits.length;
    expect(scan.hits).toEqual([]);
    tally.faultsSurvived++;
  }, 150_000);
});
