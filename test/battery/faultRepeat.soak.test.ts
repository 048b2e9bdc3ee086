import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startBatteryBackend, type BatteryBackend } from '../support/batteryBackend';
import { BatteryTally, type Call, expectDefinedEnd, isFinished, type RunView, sandboxFile, seedWorkspace, startRun, waitForRun } from '../support/batteryRuns';

const SECRETS = { OPENAI_API_KEY: 'sk-repeat-model-key-77665544aabb', STEP_KEY: 'step-repeat-secret-value-1357', MCP_KEY: 'mcp-repeat-secret-value-2468' };
/** Each secret's use, set explicitly by the owner. */
const USES = { OPENAI_API_KEY: { model: 'members' }, STEP_KEY: { command: 'members' }, MCP_KEY: { mcp: 'members' } };

/** Install with a side effect and a lease, an MCP server with a lease, two turns: every phase has something to lose. */
const spec = (marker: string): Record<string, unknown> => ({
  template: { files: { 'effect.js': `require('fs').writeFileSync('${marker}', 'x'); setTimeout(() => {}, 300);`, 'mcp.js': 'setInterval(() => {}, 1000);', 'turn.js': "setTimeout(() => console.log('turn ' + process.env.OPENAI_API_KEY), 1500);" } },
  install: [{ command: ['node', 'effect.js'], secrets: [{ ref: 'STEP_KEY', use: 'env', as: 'STEP_KEY' }] }],
  mcp: [{ name: 'held', command: ['node', 'mcp.js'], secrets: [{ ref: 'MCP_KEY', use: 'env', as: 'MCP_KEY' }] }],
  turns: [{ command: ['node', 'turn.js'], modelKey: 'OPENAI_API_KEY' }, { command: ['node', 'turn.js'], modelKey: 'OPENAI_API_KEY' }],
  deadlineSeconds: 300,
});

const turnRunning = (run: RunView): boolean => run.phases.some((p) => p.phase === 'turn' && p.status === 'Running');

type Fault = 'kill at once' | 'kill at side effect' | 'kill in a turn' | 'storage outage in install' | 'storage outage in a turn';
const FAULTS: Fault[] = ['kill at once', 'kill at side effect', 'kill in a turn', 'storage outage in install', 'storage outage in a turn'];

const tally = new BatteryTally();
let backend: BatteryBackend;
let call: Call;
let ws: string;
const outcomes: string[] = [];

beforeAll(async () => {
  backend = await startBatteryBackend();
  await backend.startHost();
  ({ ws, call } = await seedWorkspace(backend, 'repeat', SECRETS, USES));
}, 60_000);

afterAll(async () => {
  console.log(`faults: ${outcomes.join('; ')}`);
  console.log(tally.line('repeated faults (soak)'));
  await backend?.close();
});

async function inject(fault: Fault, runId: string, marker: string): Promise<void> {
  if (fault === 'kill at side effect') await vi.waitFor(() => expect(sandboxFile(backend, marker)).toBeDefined(), { timeout: 60_000, interval: 5 });
  if (fault === 'kill in a turn' || fault === 'storage outage in a turn') await waitForRun(call, ws, runId, turnRunning, 60_000);
  if (fault === 'storage outage in install') await vi.waitFor(() => expect(sandboxFile(backend, marker)).toBeDefined(), { timeout: 60_000, interval: 5 });
  if (fault.startsWith('kill')) {
    await backend.killHost();
    await backend.startHost();
  } else {
    await backend.stopAzurite();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await backend.startAzurite();
  }
}

describe('faults injected again and again on one backend', () => {
  it.each(FAULTS.flatMap((f) => [f, f]).map((f, i) => [i + 1, f] as const))('%i: %s — the run ends in a defined state, torn down once, nothing left, nothing leaked', async (i, fault) => {
    const marker = `side-effect-${process.pid}-${i}`;
    const runId = await startRun(call, ws, spec(marker));
    await inject(fault, runId, marker);
    tally.faultsInjected++;
    const run = await waitForRun(call, ws, runId, isFinished, 180_000);
    outcomes.push(`${fault} → ${run.status}${run.failure ? ` (${run.failure})` : ''}`);
    if (run.status === 'Failed') expect(run.failure).toBeTruthy();
    await expectDefinedEnd(backend, call, ws, run, SECRETS);
    const scan = await backend.leakScan(SECRETS);
    tally.scannedBytes += scan.bytes;
    tally.leakHits += scan.hits.length;
    expect(scan.hits, scan.text).toEqual([]);
    tally.faultsSurvived++;
  }, 240_000);
});
