import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { batteryScenario } from '../support/batteryScenario';
import { expectDefinedEnd, isFinished, sandboxFile, startRun, waitForRun } from '../support/batteryRuns';

/** Unique per test file: the sandbox root is shared with every other host on the machine. */
const MARKER = `side-effect-${randomUUID()}`;
const SECRETS = { OPENAI_API_KEY: 'sk-kill-model-key-0a1b2c3d4e5f6789', STEP_KEY: 'step-kill-secret-value-77aa88bb' };
/** Each secret's use, set explicitly by the owner. */
const USES = { OPENAI_API_KEY: { model: 'members' }, STEP_KEY: { command: 'members' } };

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

const s = batteryScenario('host SIGKILL at a side effect', 'killer', SECRETS, USES);

describe('the local host killed with SIGKILL between a side effect and its completion record', () => {
  it('restarts, ends Failed with a reason, tears down once, leaves no credential and leaks nothing', async () => {
    const runId = await startRun(s.call, s.ws, spec);
    await vi.waitFor(() => expect(sandboxFile(s.backend, MARKER)).toBeDefined(), { timeout: 30_000, interval: 5 });
    await s.backend.killHost();
    s.tally.faultsInjected++;
    await s.backend.startHost();
    const run = await waitForRun(s.call, s.ws, runId, isFinished, 90_000);
    expect(run.status, JSON.stringify(run.phases)).toBe('Failed');
    expect(run.failure).toMatch(/sandbox lost/);
    expect(run.phases.find((p) => p.phase === 'install')?.status).toBe('Failed');
    expect(run.phases.find((p) => p.phase === 'teardown')?.status).toBe('Completed');
    await expectDefinedEnd(s.backend, s.call, s.ws, run, SECRETS);
    await s.scanForLeaks();
    s.tally.faultsSurvived++;
  }, 150_000);
});
