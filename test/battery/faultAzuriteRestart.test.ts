import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBatteryBackend, type BatteryBackend } from '../support/batteryBackend';
import { BatteryTally, type Call, expectDefinedEnd, isFinished, type RunView, seedWorkspace, startRun, waitForRun } from '../support/batteryRuns';

const SECRETS = { OPENAI_API_KEY: 'sk-azurite-model-key-13579bdf2468', STEP_KEY: 'step-azurite-secret-99887766' };

/** A turn that runs for a few seconds: Azurite goes away and comes back while it does. */
const spec = {
  template: { files: { 'slow.js': "console.log('start'); setTimeout(() => console.log('end ' + (process.env.OPENAI_API_KEY ?? '')), 5000);" } },
  install: [{ command: ['node', '-e', 'console.log(process.env.STEP_KEY.length)'], secrets: [{ ref: 'STEP_KEY', use: 'env', as: 'STEP_KEY' }] }],
  turns: [{ command: ['node', 'slow.js'], modelKey: 'OPENAI_API_KEY' }, { command: ['node', '-e', 'console.log("after")'] }],
  deadlineSeconds: 180,
};

const turnRunning = (run: RunView): boolean => run.phases.some((p) => p.phase === 'turn' && p.status === 'Running');

const tally = new BatteryTally();
let backend: BatteryBackend;
let call: Call;
let ws: string;

beforeAll(async () => {
  backend = await startBatteryBackend();
  await backend.startHost();
  ({ ws, call } = await seedWorkspace(backend, 'storage', SECRETS));
}, 60_000);

afterAll(async () => {
  console.log(tally.line('Azurite stopped and restarted'));
  await backend?.close();
});

describe('Azurite stopped gracefully and restarted on the same ports during a run', () => {
  it('keeps its data; the run ends in a defined state with a gapless stream, torn down, nothing leaked', async () => {
    const runId = await startRun(call, ws, spec);
    await waitForRun(call, ws, runId, turnRunning, 60_000);
    await backend.stopAzurite();
    tally.faultsInjected++;
    // The host keeps running without storage for a while: its queue polls and the turn's writes fail meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await backend.startAzurite();
    const run = await waitForRun(call, ws, runId, isFinished, 120_000);
    console.log(`Azurite restart: run ended ${run.status} ${run.failure ?? ''}; phases ${run.phases.map((p) => `${p.phase}${p.turn ?? ''}:${p.status}`).join(' ')}`);
    expect(['Completed', 'Failed']).toContain(run.status);
    if (run.status === 'Failed') expect(run.failure).toBeTruthy();
    expect(run.phases.find((p) => p.phase === 'teardown')?.status).toBe('Completed');
    // Data written before the outage survived it.
    expect(run.events[0]?.type).toBe('RunRequested');
    expect((await call('GET', `/api/workspaces/${ws}/secrets`)).json).toHaveLength(2);
    await expectDefinedEnd(backend, call, ws, run, SECRETS);
    const scan = await backend.leakScan(SECRETS);
    console.log(scan.text);
    tally.scannedBytes += scan.bytes;
    tally.leakHits += scan.hits.length;
    expect(scan.hits).toEqual([]);
    tally.faultsSurvived++;
  }, 200_000);
});
