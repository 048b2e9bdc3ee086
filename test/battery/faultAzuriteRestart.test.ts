import { describe, expect, it } from 'vitest';
import { batteryScenario } from '../support/batteryScenario';
import { expectDefinedEnd, isFinished, type RunView, startRun, waitForRun } from '../support/batteryRuns';

const SECRETS = { OPENAI_API_KEY: 'sk-azurite-model-key-13579bdf2468', STEP_KEY: 'step-azurite-secret-99887766' };
/** Each secret's use, set explicitly by the owner. */
const USES = { OPENAI_API_KEY: { model: 'members' }, STEP_KEY: { command: 'members' } };

/** A turn that runs for a few seconds: Azurite goes away and comes back while it does. */
const spec = {
  template: { files: { 'slow.js': "console.log('start'); setTimeout(() => console.log('end ' + (process.env.OPENAI_API_KEY ?? '')), 5000);" } },
  install: [{ command: ['node', '-e', 'console.log(process.env.STEP_KEY.length)'], secrets: [{ ref: 'STEP_KEY', use: 'env', as: 'STEP_KEY' }] }],
  turns: [{ command: ['node', 'slow.js'], modelKey: 'OPENAI_API_KEY' }, { command: ['node', '-e', 'console.log("after")'] }],
  deadlineSeconds: 180,
};

const turnRunning = (run: RunView): boolean => run.phases.some((p) => p.phase === 'turn' && p.status === 'Running');

const s = batteryScenario('Azurite stopped and restarted', 'storage', SECRETS, USES);

describe('Azurite stopped gracefully and restarted on the same ports during a run', () => {
  it('keeps its data; the run ends in a defined state with a gapless stream, torn down, nothing leaked', async () => {
    const runId = await startRun(s.call, s.ws, spec);
    await waitForRun(s.call, s.ws, runId, turnRunning, 60_000);
    await s.backend.stopAzurite();
    s.tally.faultsInjected++;
    // The host keeps running without storage for a while: its queue polls and the turn's writes fail meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await s.backend.startAzurite();
    const run = await waitForRun(s.call, s.ws, runId, isFinished, 120_000);
    console.log(`Azurite restart: run ended ${run.status} ${run.failure ?? ''}; phases ${run.phases.map((p) => `${p.phase}${p.turn ?? ''}:${p.status}`).join(' ')}`);
    expect(['Completed', 'Failed']).toContain(run.status);
    if (run.status === 'Failed') expect(run.failure).toBeTruthy();
    expect(run.phases.find((p) => p.phase === 'teardown')?.status).toBe('Completed');
    // Data written before the outage survived it.
    expect(run.events[0]?.type).toBe('RunRequested');
    expect((await s.call('GET', `/api/workspaces/${s.ws}/secrets`)).json).toHaveLength(2);
    await expectDefinedEnd(s.backend, s.call, s.ws, run, SECRETS);
    await s.scanForLeaks();
    s.tally.faultsSurvived++;
  }, 200_000);
});
