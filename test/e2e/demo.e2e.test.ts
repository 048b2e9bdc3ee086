import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../localhost/demo';
import type { LocalHostProcess } from '../support/localHostProcess';
import { backendEnv, startBackend, tokenFor } from './runHarness';

const env = backendEnv();
let host: LocalHostProcess;

beforeAll(async () => {
  host = await startBackend(env);
}, 120_000);

afterAll(async () => {
  await host?.stop();
});

describe('npm run demo against the running backend', () => {
  it('clones and pushes through the gateway, shows a redacted transcript, a verified audit and a refusal naming the key', async () => {
    const lines: string[] = [];
    const outcome = await runDemo({ baseUrl: host.url, token: await tokenFor('demo-user', env), log: (line) => lines.push(line) });
    const printed = lines.join('\n');
    expect(outcome.runStatus).toBe('Completed');
    expect(outcome.pushedCommit).toBeDefined();
    expect(outcome.pushedCommit).not.toBe(outcome.seedCommit);
    expect(outcome.transcript).toContain('[REDACTED:OPENAI_API_KEY]');
    expect(outcome.transcript).toContain('GIT_TOKEN in my env? no');
    expect(outcome.transcript).toMatch(/push .*-> HTTP 403/);
    expect(outcome.audit.ok).toBe(true);
    expect(outcome.refusal).toMatchObject({ status: 422, code: 'RUN.LAUNCH_REFUSED' });
    expect(outcome.refusal.detail).toContain('DEPLOY_URL');
    expect(outcome.useRefusal).toMatchObject({ status: 422, code: 'SECRET.USE_NOT_ALLOWED' });
    expect(outcome.useRefusal.detail).toMatch(/GIT_TOKEN.*"command"/);
    // What the demo shows a person carries no value, and neither does anything the backend answered.
    for (const value of [outcome.modelKey, outcome.gitToken]) {
      expect(printed).not.toContain(value);
      expect(outcome.refusal.detail).not.toContain(value);
      expect(outcome.useRefusal.detail).not.toContain(value);
    }
    expect(printed).toMatch(/seed: Completed[\s\S]*teardown: Completed/);
  }, 180_000);
});
