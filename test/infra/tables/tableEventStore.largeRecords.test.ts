import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import type { ContainerClient } from '@azure/storage-blob';
import { describe, expect, it } from 'vitest';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { anEvent, expectedHash } from '../../contracts/eventStore.contract';

const table = uniqueName('eventloglarge');
const container = (): ContainerClient => BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(table);
const tableClient = (): TableClient => TableClient.fromConnectionString(azuriteConnectionString(), table, { allowInsecureConnection: true });

/** A RunSpec-sized event: about 1 MiB of UTF-8, more than one entity can hold even split into parts. */
const aRunSpec = (): { files: Record<string, string> } => ({ files: { 'agent.js': '// 🦜 agent\n'.repeat(80_000) } });

async function aLogWithALargeRecord(): Promise<{ store: TableEventStore; ws: string; blobRef: string }> {
  const store = TableEventStore.fromConnectionString(azuriteConnectionString(), table, { largeRecords: container() });
  const ws = `ws-${randomUUID()}`;
  await store.append({ workspaceId: ws, streamId: 'run:1', expectedVersion: 0, events: [anEvent('RunRequested', { spec: aRunSpec() })] });
  await store.append({ workspaceId: ws, streamId: 'run:1', expectedVersion: 1, events: [anEvent('PhaseStarted', { phase: 'seed' })] });
  const row = await tableClient().getEntity<Record<string, unknown>>(ws, 'e:0000000001');
  return { store, ws, blobRef: String(row['blobRef']) };
}

describe('TableEventStore records larger than one entity (Blob storage by reference)', () => {
  it('round-trips a 1 MiB event through a blob the row names, hashed over the full canonical bytes', async () => {
    const { store, ws, blobRef } = await aLogWithALargeRecord();
    const row = await tableClient().getEntity<Record<string, unknown>>(ws, 'e:0000000001');
    expect(row['record0']).toBeUndefined();
    expect(blobRef).toMatch(new RegExp(`/${String(row['hash'])}\\.json$`));
    const stream = await store.readStream(ws, 'run:1');
    expect(stream.events[0]!.data).toEqual({ spec: aRunSpec() });
    expect(stream.events[0]!.hash).toBe(expectedHash(stream.events[0]!));
    expect((await store.readLog(ws)).records).toEqual(stream.events);
    expect(await store.verify(ws)).toEqual({ ok: true, records: 2, headSequence: 2 });
  });

  it('names the record whose blob was edited or deleted', async () => {
    const edited = await aLogWithALargeRecord();
    const blob = container().getBlockBlobClient(edited.blobRef);
    const text = (await blob.downloadToBuffer()).toString('utf8').replace('agent', 'evil!');
    await blob.uploadData(Buffer.from(text, 'utf8'));
    expect(await edited.store.verify(edited.ws)).toMatchObject({ ok: false, brokenAt: 1, reason: expect.stringContaining('hash') });

    const deleted = await aLogWithALargeRecord();
    await container().getBlockBlobClient(deleted.blobRef).delete();
    expect(await deleted.store.verify(deleted.ws)).toMatchObject({ ok: false, brokenAt: 1 });
  });

  it('without a container the same record is refused as too large, and nothing is written', async () => {
    const store = TableEventStore.fromConnectionString(azuriteConnectionString(), table);
    const ws = `ws-${randomUUID()}`;
    await expect(store.append({ workspaceId: ws, streamId: 'run:1', expectedVersion: 0, events: [anEvent('RunRequested', { spec: aRunSpec() })] })).rejects.toMatchObject({
      code: 'STORE.APPEND_TOO_LARGE',
      kind: 'too_large',
    });
    expect(await store.readLog(ws)).toEqual({ records: [] });
  });
});
