import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { runLocalHostToExit, startLocalHost } from '../support/localHostProcess';

/** A start-up refusal is one line naming the problem, with no stack trace and no "Ready.". */
function expectOneLine(result: { code: number | null; stdout: string; stderr: string }, ...fragments: string[]): void {
  expect(result.code).toBe(1);
  expect(result.stdout).not.toContain('Ready.');
  const lines = result.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('npm warn'));
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^npm start: /);
  for (const f of fragments) expect(lines[0]).toContain(f);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

describe('the app\'s settings are checked at start', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'app-start-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('this project\'s app stops with one line naming a malformed setting, never printing Ready.', async () => {
    const result = await runLocalHostToExit({ env: { AzureWebJobsStorage: azuriteConnectionString(), DEV_ISSUER_KEY_DIR: dir, RESOLVER_CACHE_SECONDS: 'forever' } });
    expectOneLine(result, 'disco-parrot-backend refused to start', 'RESOLVER_CACHE_SECONDS');
  });

  it('a malformed Durable engine setting stops the start in one line naming it', async () => {
    const result = await runLocalHostToExit({
      app: 'test/fixtures/apps/durable-walkthrough',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('bad'), DURABLE_MAX_CONCURRENT_ACTIVITIES: 'lots' },
    });
    expectOneLine(result, 'DURABLE_MAX_CONCURRENT_ACTIVITIES');
  });
});

describe('another app started with --app', () => {
  it('is greeted by its own name, with no project banner and no dev token unless it uses the dev issuer', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'foreign-app-'));
    const host = await startLocalHost({
      app: 'test/fixtures/apps/durable-walkthrough',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('foreign'), DEV_ISSUER_KEY_DIR: dir, AUTH_MODE: undefined },
    });
    try {
      expect(host.stdout()).toContain('durable-walkthrough on the local Functions host');
      expect(host.stdout()).not.toMatch(/Disco Parrot|Dev token|Dev issuer/);
      expect((await fetch(`${host.url}/dev-issuer/.well-known/jwks.json`)).status).toBe(404);
    } finally {
      await host.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names every binding the host cannot serve before Ready.', async () => {
    const result = await runLocalHostToExitAfterReady('test/fixtures/apps/unserved-bindings');
    const beforeReady = result.output.slice(0, result.output.indexOf('Ready.'));
    expect(result.output).toContain('Ready.');
    expect(beforeReady).toMatch(/placeOrder: output binding "[^"]+" \(serviceBus\) is not supported/);
    expect(beforeReady).toMatch(/placeOrder: input binding "[^"]+" \(cosmosDB\) is not supported/);
    expect(beforeReady).not.toMatch(/\$return/);
  });
});

/** Starts the host, waits for Ready., stops it; stdout and stderr interleaved as they arrived. */
async function runLocalHostToExitAfterReady(app: string): Promise<{ output: string }> {
  const host = await startLocalHost({ app, args: ['--no-extensions'], env: { AzureWebJobsStorage: azuriteConnectionString() } });
  await host.stop();
  // Warnings go to stderr before the banner goes to stdout; a process writes them in that order.
  return { output: host.stderr() + host.stdout() };
}
