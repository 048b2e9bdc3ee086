import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../support/localHostProcess';
import { startThrough, waitAt } from './managementUrls';

const started = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

describe('Durable entities: a callEntity interrupted by SIGKILL runs again after a restart', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'entity-recovery-'));
  const log = path.join(dir, 'entity.log');
  const env = { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('entcrash'), ENTITY_LOG: log, DEV_ISSUER_KEY_DIR: dir };
  let host: LocalHostProcess | undefined;

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('completes the orchestration with the operation applied once the host is back', async () => {
    host = await startLocalHost({ app: 'test/fixtures/apps/durable-walkthrough', env });
    const key = uniqueName('slow');
    const { urls } = await startThrough(`${host.url}/api/walkthrough/slowTally`, { key, ms: 3_000 });
    await vi.waitFor(() => expect(started(log)).toEqual([key]), { timeout: 15_000, interval: 20 });
    host.child.kill('SIGKILL');
    await host.stop();

    host = await startLocalHost({ app: 'test/fixtures/apps/durable-walkthrough', env });
    // The old URLs name the first start's port and key, which died with it: this start's origin and key.
    const fresh = new URL((await startThrough(`${host.url}/api/walkthrough/chainWords`, ['x'])).urls.statusQueryGetUri);
    const status = new URL(fresh.toString().replace(fresh.pathname, new URL(urls.statusQueryGetUri).pathname));
    expect(await waitAt(status.toString())).toMatchObject({ runtimeStatus: 'Completed', output: 3 });
    expect(started(log)).toEqual([key, key]);
  });
});
