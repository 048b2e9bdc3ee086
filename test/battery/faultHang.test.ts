import { describe, expect, it } from 'vitest';
import { batteryScenario } from '../support/batteryScenario';
import { expectDefinedEnd, isFinished, startRun, waitForRun } from '../support/batteryRuns';

const SECRETS = { OPENAI_API_KEY: 'sk-hang-model-key-a1b2c3d4e5f60718', MCP_KEY: 'mcp-hang-secret-value-5566aabb' };
/** Each secret's use, set explicitly by the owner. */
const USES = { OPENAI_API_KEY: { model: 'members' }, MCP_KEY: { mcp: 'members' } };

/** The turn ignores SIGTERM and never ends; an MCP server holds a lease meanwhile. The run's limit is 10 s. */
const HANG = "process.on('SIGTERM', () => {}); console.log('hanging ' + process.env.OPENAI_API_KEY); setInterval(() => {}, 1000);";
const MCP = "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);";

const s = batteryScenario('command hangs past its limit', 'hang', SECRETS, USES);

describe('a command that hangs past its limit', () => {
  it('is killed with its process group at the deadline; the run fails with the reason, torn down, nothing leaked', async () => {
    const runId = await startRun(s.call, s.ws, {
      template: { files: { 'hang.js': HANG, 'mcp.js': MCP } },
      mcp: [{ name: 'held', command: ['node', 'mcp.js'], secrets: [{ ref: 'MCP_KEY', use: 'env', as: 'MCP_KEY' }] }],
      turns: [{ command: ['node', 'hang.js'], modelKey: 'OPENAI_API_KEY' }],
      deadlineSeconds: 10,
    });
    s.tally.faultsInjected++;
    const run = await waitForRun(s.call, s.ws, runId, isFinished, 60_000);
    expect(run.status).toBe('Failed');
    expect(run.failure).toBe('deadline exceeded');
    expect(run.phases.find((p) => p.phase === 'turn')).toMatchObject({ status: 'Failed', reason: 'deadline exceeded' });
    const transcript = await s.call('GET', `/api/workspaces/${s.ws}/runs/${runId}/transcript`);
    expect(transcript.text).toContain('hanging [REDACTED:OPENAI_API_KEY]');
    await expectDefinedEnd(s.backend, s.call, s.ws, run, SECRETS);
    await s.scanForLeaks();
    s.tally.faultsSurvived++;
  }, 90_000);
});
