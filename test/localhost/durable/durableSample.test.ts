import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../support/localHostProcess';
import { SampleApp } from './sampleApp';

const executions = (file: string, kind: string, key: string): number =>
  readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind: string; key: string }).filter((e) => e.kind === kind && e.key === key).length;

describe('Durable engine: the durable-sample app through the local host (child process, HTTP only)', () => {
  let host: LocalHostProcess;
  let app: SampleApp;
  let dir: string;
  let log: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'durable-sample-'));
    log = path.join(dir, 'executions.jsonl');
    host = await startLocalHost({
      app: 'test/fixtures/apps/durable-sample',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('sample'), DURABLE_SAMPLE_LOG: log, DEV_ISSUER_KEY_DIR: dir },
    });
    app = new SampleApp(host.url);
  });

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('chains activities, each output feeding the next', async () => {
    const done = await app.waitFor(await app.start('chain', 'tokyo'));
    expect(done).toMatchObject({ runtimeStatus: 'Completed', input: 'tokyo', output: ['TOKYO', 'OYKOT', 'OYKOT!'] });
  });

  it('fans out to 50 activities and fans in their results', async () => {
    const done = await app.waitFor(await app.start('fanOut', { count: 50 }));
    expect(done.output).toEqual({ count: 50, sum: (50 * 51 * 101) / 6 });
  });

  it('races an external event against a durable timer: the event wins when raised, the timer when not', async () => {
    const [raced, unattended] = await Promise.all([app.start('approval', { timeoutMs: 120_000 }), app.start('approval', { timeoutMs: 1_000 })]);
    await app.waitFor(raced, ['Running']);
    expect((await app.status(raced)).body?.customStatus).toBe('waiting for approval');
    expect(await app.post(raced, 'events/approve', { by: 'ana' })).toBe(202);
    expect(await app.waitFor(raced)).toMatchObject({ runtimeStatus: 'Completed', output: { outcome: 'approved', by: 'ana' }, customStatus: 'approved' });
    expect(await app.waitFor(unattended)).toMatchObject({ runtimeStatus: 'Completed', output: { outcome: 'timed out' }, customStatus: 'timed out' });
  });

  it('resumes after a short durable timer no earlier than its fire time', async () => {
    const done = await app.waitFor(await app.start('shortTimer', { ms: 1_000 }));
    const output = done.output as { fireAt: string; resumedAt: string };
    expect(Date.parse(output.resumedAt)).toBeGreaterThanOrEqual(Date.parse(output.fireAt));
  });

  it('runs sub-orchestrations and returns their outputs to the parent', async () => {
    const done = await app.waitFor(await app.start('parent', 'child'));
    expect(done.output).toEqual({ child: ['CHILD', 'DLIHC', 'DLIHC!'], squares: { count: 3, sum: 14 } });
  });

  it('retries an activity that fails twice, then succeeds, under a retry policy', async () => {
    const key = uniqueName('flaky');
    const done = await app.waitFor(await app.start('retrying', key));
    expect(done).toMatchObject({ runtimeStatus: 'Completed', output: { key, attempt: 3 } });
    expect(executions(log, 'flaky', key)).toBe(3);
  });

  it('surfaces the last failure to the orchestrator once the attempts are exhausted', async () => {
    const key = uniqueName('exhausted');
    const done = await app.waitFor(await app.start('retryExhausted', key));
    expect(done.output).toEqual({ caught: true });
    expect(executions(log, 'flaky', key)).toBe(2);
  });

  it('terminates a waiting orchestration, then purges its instance and history', async () => {
    const id = await app.start('waitForever');
    await app.waitFor(id, ['Running']);
    expect(await app.post(id, 'terminate?reason=no%20longer%20needed')).toBe(202);
    expect(await app.waitFor(id)).toMatchObject({ runtimeStatus: 'Terminated', output: 'no longer needed', customStatus: { stage: 'waiting' } });
    expect((await app.list('Terminated')).map((s) => s.instanceId)).toContain(id);
    expect(await app.purge(id)).toBe(1);
    expect((await app.status(id)).httpStatus).toBe(404);
    expect(await app.purge(id)).toBe(0);
  });

  it('holds events while suspended and applies them on resume', async () => {
    const id = await app.start('waitForever');
    await app.waitFor(id, ['Running']);
    expect(await app.post(id, 'suspend')).toBe(202);
    await app.waitFor(id, ['Suspended']);
    expect(await app.post(id, 'events/never', 1)).toBe(202);
    expect(await app.post(id, 'resume')).toBe(202);
    expect(await app.waitFor(id)).toMatchObject({ runtimeStatus: 'Completed', output: 'unreachable' });
  });

  it('keeps other orchestrations moving while a slow activity runs', async () => {
    const slow = await app.start('crashy', { start: 0, ms: 20_000 }, uniqueName('slow'));
    await vi.waitFor(() => expect(executions(log, 'slowAdd', `${slow}:step1`)).toBe(1), { timeout: 15_000, interval: 50 });
    expect(await app.waitFor(await app.start('chain', 'quick'))).toMatchObject({ runtimeStatus: 'Completed' });
    expect((await app.status(slow)).body?.runtimeStatus).toBe('Running');
    expect(await app.post(slow, 'terminate')).toBe(202);
    await app.waitFor(slow, ['Terminated']);
  });

  it('serves the durable client API on the host\'s port only to callers holding this start\'s key', async () => {
    const base = `${host.url}/runtime/webhooks/durabletask`;
    const statusOf = async (url: string, init: RequestInit = {}): Promise<number> => (await fetch(url, init)).status;
    expect(await statusOf(`${base}/instances/`)).toBe(401);
    expect(await statusOf(`${base}/instances/?code=guess`)).toBe(401);
    expect(await statusOf(`${base}/rpc/guess/instances/`)).toBe(401);
    expect(await statusOf(`${base}/orchestrators/chain?code=`, { method: 'POST', body: '"x"' })).toBe(401);
    expect(host.stdout()).not.toMatch(/code=|durabletask\/rpc\/[A-Za-z0-9_-]{20,}/);
  });
});
