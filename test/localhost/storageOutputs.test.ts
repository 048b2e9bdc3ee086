import { BlobServiceClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../support/localHostProcess';

describe('storage output bindings write to Azurite (test/fixtures/apps/storage-outputs)', () => {
  let host: LocalHostProcess;
  const names = { NOTES_CONTAINER: uniqueName('notes').toLowerCase(), NOTES_QUEUE: uniqueName('notes').toLowerCase(), NOTES_TABLE: uniqueName('notes').replace(/[^A-Za-z0-9]/g, '') };
  const queue = (): QueueClient => new QueueClient(azuriteConnectionString(), names.NOTES_QUEUE);
  const received = async (): Promise<string[]> =>
    (await queue().receiveMessages({ numberOfMessages: 32 })).receivedMessageItems.map((m) => Buffer.from(m.messageText, 'base64').toString('utf8'));

  beforeAll(async () => {
    host = await startLocalHost({ app: 'test/fixtures/apps/storage-outputs', args: ['--no-extensions'], env: { AzureWebJobsStorage: azuriteConnectionString(), ...names } });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('names no binding as unsupported', () => {
    expect(host.stderr()).not.toContain('not supported');
  });

  it('a blob, two queue messages and a table row exist once the HTTP response has arrived', async () => {
    const response = await fetch(`${host.url}/api/notes/n-1`, { method: 'PUT', body: 'remember the milk' });
    expect(response.status).toBe(201);
    const blob = BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(names.NOTES_CONTAINER).getBlobClient('n-1.txt');
    expect((await blob.downloadToBuffer()).toString('utf8')).toBe('remember the milk');
    expect((await received()).sort()).toEqual([JSON.stringify({ id: 'n-1', length: 17 }), 'saved n-1'].sort());
    const table = TableClient.fromConnectionString(azuriteConnectionString(), names.NOTES_TABLE, { allowInsecureConnection: true });
    expect(await table.getEntity('notes', 'n-1')).toMatchObject({ text: 'remember the milk' });
  });

  it('a table row that exists already fails the invocation, as the Table output binding inserts', async () => {
    expect((await fetch(`${host.url}/api/notes/n-2`, { method: 'PUT', body: 'first' })).status).toBe(201);
    expect((await fetch(`${host.url}/api/notes/n-2`, { method: 'PUT', body: 'second' })).status).toBe(500);
  });

  it('a return value bound to a queue becomes the message', async () => {
    await queue().clearMessages();
    expect((await fetch(`${host.url}/api/echo`, { method: 'POST', body: 'hello' })).status).toBe(204);
    expect(await received()).toEqual(['echo hello']);
  });
});
