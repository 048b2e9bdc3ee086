import { describe, expect, it } from 'vitest';
import { batteryScenario } from '../support/batteryScenario';
import { expectDefinedEnd, isFinished, startRun, waitForRun } from '../support/batteryRuns';

const SECRETS = { OPENAI_API_KEY: 'sk-flood-model-key-5f4e3d2c1b0a9988' };
/** Each secret's use, set explicitly by the owner. */
const USES = { OPENAI_API_KEY: { model: 'members' } };
const FLOOD_BYTES = 100 * 1024 * 1024;

/**
 * Prints 100 MiB to stdout: lines of filler with the model key raw and in base64 in each, written with
 * backpressure, then exits 0. A careless agent in a loop does this.
 */
const FLOOD = `
const k = process.env.OPENAI_API_KEY;
const line = 'flood '.repeat(150) + k + ' ' + Buffer.from(k).toString('base64') + '\\n';
const chunk = Buffer.from(line.repeat(Math.ceil(65536 / line.length)));
let left = ${FLOOD_BYTES};
const write = () => {
  while (left > 0) {
    const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
    left -= piece.length;
    if (!process.stdout.write(piece)) return void process.stdout.once('drain', write);
  }
};
write();
`;

const s = batteryScenario('output flood', 'flood', SECRETS, USES);

describe('a command that prints 100 MiB', () => {
  it('completes; output is redacted then truncated; the transcript stays bounded; nothing leaks', async () => {
    const runId = await startRun(s.call, s.ws, { template: { files: { 'flood.js': FLOOD } }, turns: [{ command: ['node', 'flood.js'], modelKey: 'OPENAI_API_KEY' }], deadlineSeconds: 120 });
    s.tally.faultsInjected++;
    const run = await waitForRun(s.call, s.ws, runId, isFinished, 110_000);
    expect(run.status, JSON.stringify(run.phases)).toBe('Completed');
    const transcript = await s.call('GET', `/api/workspaces/${s.ws}/runs/${runId}/transcript`);
    expect(transcript.status).toBe(200);
    // One process kept at most 1 MiB of redacted output, and the transcript chunk is cut at 256 KiB after that.
    expect(Buffer.byteLength(transcript.text)).toBeLessThan(300 * 1024);
    expect(transcript.text).toContain('[REDACTED:OPENAI_API_KEY]');
    expect(transcript.text).toMatch(/truncated/i);
    // Node exits only once every queued stdout write was taken by the pipe: exit 0 means all 100 MiB were read.
    expect(transcript.text).toContain('node flood.js (exit code 0)');
    await expectDefinedEnd(s.backend, s.call, s.ws, run, SECRETS);
    const scan = await s.scanForLeaks();
    expect(scan.sources['host-log']?.bytes ?? 0).toBeLessThan(FLOOD_BYTES / 10); // the host did not echo the flood
    s.tally.faultsSurvived++;
  }, 120_000);
});
