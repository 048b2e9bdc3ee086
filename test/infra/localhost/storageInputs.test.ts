import { BlobServiceClient } from '@azure/storage-blob';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../support/localHostProcess';

describe('storage input bindings read from Azurite (test/fixtures/apps/storage-inputs)', () => {
  let host: LocalHostProcess;
  const names = { NOTES_CONTAINER: uniqueName('innotes').toLowerCase(), NOTES_TABLE: uniqueName('innotes').replace(/[^A-Za-z0-9]/g, '') };
  const table = (): TableClient => TableClient.fromConnectionString(azuriteConnectionString(), names.NOTES_TABLE, { allowInsecureConnection: true });

  beforeAll(async () => {
    const container = BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(names.NOTES_CONTAINER);
    await container.createIfNotExists();
    await container.getBlockBlobClient('n-1.txt').uploadData(Buffer.from('remember the milk — 2 litres'));
    await table().createTable();
    for (const [pk, rk, n] of [['p', 'a', 1], ['p', 'b', 2], ['p', 'c', 3], ['p', 'd', 4], ['q', 'a', 9]] as const)
      await table().createEntity({ partitionKey: pk, rowKey: rk, n, label: `${pk}${rk}` });
    host = await startLocalHost({ app: 'test/fixtures/apps/storage-inputs', args: ['--no-extensions'], env: { AzureWebJobsStorage: azuriteConnectionString(), ...names } });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('names no binding as unsupported', () => {
    expect(host.stderr() + host.stdout()).not.toContain('not supported');
  });

  it('hands the function a blob named by a route parameter: a string with dataType string, a Buffer without', async () => {
    const response = await fetch(`${host.url}/api/notes/n-1`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ text: 'remember the milk — 2 litres', isBuffer: true, byteLength: Buffer.byteLength('remember the milk — 2 litres') });
  });

  it('leaves the input empty when the blob does not exist', async () => {
    expect((await fetch(`${host.url}/api/notes/nothing-here`)).status).toBe(404);
  });

  it('reads one table row by partition and row key, and nothing for an absent one', async () => {
    const response = await fetch(`${host.url}/api/rows/p/c`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ PartitionKey: 'p', RowKey: 'c', n: 3, label: 'pc', Timestamp: expect.any(String) });
    expect((await fetch(`${host.url}/api/rows/p/zz`)).status).toBe(404);
  });

  it('queries rows by partition, filter and take', async () => {
    const rows = (await (await fetch(`${host.url}/api/rows/p`)).json()) as { RowKey: string; n: number }[];
    expect(rows.map((r) => [r.RowKey, r.n])).toEqual([['b', 2], ['c', 3]]);
    expect(await (await fetch(`${host.url}/api/rows/none`)).json()).toEqual([]);
  });

  it('a partition key from the route cannot widen the query (a quote is escaped, not OData)', async () => {
    const rows = (await (await fetch(`${host.url}/api/rows/${encodeURIComponent("p' or PartitionKey eq 'q")}`)).json()) as unknown[];
    expect(rows).toEqual([]);
  });
});
