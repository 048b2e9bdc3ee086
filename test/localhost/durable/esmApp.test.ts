import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../support/localHostProcess';
import { startThrough, waitAt } from './managementUrls';

describe('an ES module app with top-level await (test/fixtures/apps/durable-esm)', () => {
  let host: LocalHostProcess;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'durable-esm-'));
    host = await startLocalHost({
      app: 'test/fixtures/apps/durable-esm',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('esm'), DEV_ISSUER_KEY_DIR: dir },
    });
  });

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers what it declares after its top-level await, before Ready.', () => {
    const ready = host.stdout().indexOf('Ready.');
    for (const name of ['startGreeting', 'greetAll', 'greet']) expect(host.stdout().slice(0, ready)).toContain(`${name}:`);
  });

  it('runs its orchestration through the URLs createCheckStatusResponse returns', async () => {
    const { urls } = await startThrough(`${host.url}/api/greetings`, ['ana', 'bo']);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: ['hola, ana', 'hola, bo'] });
  });
});
