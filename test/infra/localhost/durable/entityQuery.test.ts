import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../../support/localHostProcess';
import { startThrough, withCode } from './managementUrls';

/** The extension's entity query (`GET …/runtime/webhooks/durabletask/entities/<name>`), behind the same key. */
describe('Durable entity query over the management API', () => {
  let host: LocalHostProcess;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'durable-entity-query-'));
    host = await startLocalHost({
      app: 'test/fixtures/apps/durable-walkthrough',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('entq'), DEV_ISSUER_KEY_DIR: dir },
    });
  });

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the counters that exist, with their state on request, and refuses without the key', async () => {
    const keys = [uniqueName('q1'), uniqueName('q2')];
    for (const [i, key] of keys.entries()) await fetch(`${host.url}/api/counters/${key}/add`, { method: 'POST', body: String(i + 1) });
    await vi.waitFor(async () => expect(((await (await fetch(`${host.url}/api/counters/${keys[1]}`)).json()) as { value: unknown }).value).toBe(2), { timeout: 10_000 });

    // The key as the management URLs carry it: from a status URL of this start.
    const { urls } = await startThrough(`${host.url}/api/walkthrough/chainWords`, ['x']);
    const status = new URL(urls.statusQueryGetUri);
    const query = (params: string): string => `${host.url}/runtime/webhooks/durabletask/entities/Counter?${status.searchParams.toString()}${params}`;

    const listed = (await (await fetch(query('&fetchState=true'))).json()) as { entityId: { name: string; key: string }; lastOperationTime: string; state: unknown }[];
    expect(listed.map((e) => [e.entityId, e.state]).sort()).toEqual([[{ name: 'counter', key: keys[0] }, 1], [{ name: 'counter', key: keys[1] }, 2]].sort());
    expect(Date.parse(listed[0]!.lastOperationTime)).toBeGreaterThan(Date.now() - 60_000);
    const plain = (await (await fetch(query('&top=1'))).json()) as object[];
    expect(plain).toHaveLength(1);
    expect(plain[0]).not.toHaveProperty('state');
    expect(await (await fetch(query(`&lastOperationTimeFrom=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`))).json()).toEqual([]);
    expect((await fetch(withCode(query(''), undefined))).status).toBe(401);
    expect((await fetch(withCode(query(''), 'guess'))).status).toBe(401);
  });
});
