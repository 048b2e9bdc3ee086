import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBatteryBackend, type BatteryBackend } from '../support/batteryBackend';
import { BatteryTally, type Call, isFinished, type RunView, seedWorkspace, startRun } from '../support/batteryRuns';

const RUNS = 50;
const SECRETS = { OPENAI_API_KEY: 'sk-load-model-key-1029384756abcdef' };
/** Each secret's use, set explicitly by the owner. */
const USES = { OPENAI_API_KEY: { model: 'members' } };
const trivial = { template: { files: {} }, turns: [{ command: ['node', '-e', 'console.log("hi " + process.env.OPENAI_API_KEY)'], modelKey: 'OPENAI_API_KEY' }], deadlineSeconds: 900 };

const tally = new BatteryTally();
let backend: BatteryBackend;

beforeAll(async () => {
  backend = await startBatteryBackend();
  await backend.startHost();
}, 60_000);

afterAll(async () => {
  console.log(tally.line('load'));
  await backend?.close();
});

/** Polls every unfinished run in turn (not all at once: the host is busy enough) until all have ended. */
async function waitAll(runs: { call: Call; ws: string; runId: string }[], timeoutMs: number): Promise<RunView[]> {
  const done = new Map<string, RunView>();
  const until = Date.now() + timeoutMs;
  while (done.size < runs.length && Date.now() < until) {
    for (const r of runs) {
      if (done.has(r.runId)) continue;
      const reply = await r.call('GET', `/api/workspaces/${r.ws}/runs/${r.runId}`);
      if (reply.status === 200 && isFinished(reply.json as RunView)) done.set(r.runId, reply.json as RunView);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  expect(done.size, `${runs.length - done.size} runs did not end`).toBe(runs.length);
  return runs.map((r) => done.get(r.runId)!);
}

function expectGapless(run: RunView): void {
  expect(run.status, `${run.runId} ${run.failure ?? ''}`).toBe('Completed');
  expect(run.events.map((e) => e.version)).toEqual(run.events.map((_, i) => i + 1));
  expect(run.events.filter((e) => e.type === 'SandboxTornDown')).toHaveLength(1);
}

describe('load', () => {
  it(`${RUNS} concurrent runs on one workspace all end, each stream gapless, the chain verifies`, async () => {
    const { ws, call } = await seedWorkspace(backend, 'load-one', SECRETS, USES);
    const started = Date.now();
    const runIds = await Promise.all(Array.from({ length: RUNS }, () => startRun(call, ws, trivial)));
    const runs = await waitAll(runIds.map((runId) => ({ call, ws, runId })), 600_000);
    console.log(`load: ${RUNS} runs on one workspace ended in ${Date.now() - started} ms`);
    for (const run of runs) expectGapless(run);
    const verify = await call('GET', `/api/workspaces/${ws}/audit/verify`);
    expect(verify.json, verify.text).toMatchObject({ ok: true });
    tally.requests += RUNS;
  }, 700_000);

  it(`${RUNS} concurrent runs across ${RUNS} workspaces all end, each stream gapless, every chain verifies`, async () => {
    const spaces = await Promise.all(Array.from({ length: RUNS }, (_, i) => seedWorkspace(backend, `load-${i}`, SECRETS, USES)));
    const started = Date.now();
    const runs = await Promise.all(spaces.map(async ({ ws, call }) => ({ ws, call, runId: await startRun(call, ws, trivial) })));
    const views = await waitAll(runs, 600_000);
    console.log(`load: ${RUNS} runs across ${RUNS} workspaces ended in ${Date.now() - started} ms`);
    for (const run of views) expectGapless(run);
    for (const { ws, call } of spaces) {
      const verify = await call('GET', `/api/workspaces/${ws}/audit/verify`);
      expect(verify.json, verify.text).toMatchObject({ ok: true });
    }
    tally.requests += RUNS;
    const scan = await backend.leakScan(SECRETS);
    console.log(scan.text);
    tally.scannedBytes += scan.bytes;
    tally.leakHits += scan.hits.length;
    expect(scan.hits).toEqual([]);
  }, 700_000);
});
