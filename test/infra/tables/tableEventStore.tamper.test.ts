import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import type { TableEntityResult } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import type { HeadCheckpointer } from '../../../domain/ports/eventStore';
import { nodeHasher } from '../../../infra/system/nodeHasher';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { anEvent, hmacCheckpointer } from '../../contracts/eventStore.contract';

const table = uniqueName('eventlogtamper');
const client = (): TableClient => TableClient.fromConnectionString(azuriteConnectionString(), table, { allowInsecureConnection: true });
type Row = TableEntityResult<Record<string, unknown>>;
const key = (n: number): string => `e:${String(n).padStart(10, '0')}`;

/** Ten records over three streams, one append per record, so every record carries its own checkpoint. */
async function aLog(checkpointer?: HeadCheckpointer): Promise<{ store: TableEventStore; ws: string }> {
  const store = TableEventStore.fromConnectionString(azuriteConnectionString(), table, checkpointer ? { checkpointer } : {});
  const ws = `ws-${randomUUID()}`;
  const versions = new Map<string, number>();
  for (let i = 1; i <= 10; i++) {
    const streamId = `run:${i % 3}`;
    const expectedVersion = versions.get(streamId) ?? 0;
    await store.append({ workspaceId: ws, streamId, expectedVersion, events: [anEvent('CounterIncremented', { i })] });
    versions.set(streamId, expectedVersion + 1);
  }
  expect((await store.verify(ws)).ok).toBe(true);
  return { store, ws };
}

/** Every property but the keys and the service's own metadata, as an attacker would copy them. */
function contentOf(row: Row): Record<string, unknown> {
  const { partitionKey: _p, rowKey: _r, etag: _e, timestamp: _t, ...content } = row;
  return content;
}

describe('TableEventStore tamper evidence (edits made directly in Azurite)', () => {
  it('names the record whose data was edited', async () => {
    const { store, ws } = await aLog();
    const row = await client().getEntity<Record<string, unknown>>(ws, key(4));
    const edited = String(row['record0']).replace('"i":4', '"i":400');
    expect(edited).not.toBe(row['record0']);
    await client().updateEntity({ partitionKey: ws, rowKey: key(4), ...contentOf(row), record0: edited }, 'Replace');
    expect(await store.verify(ws)).toMatchObject({ ok: false, brokenAt: 4, records: 3, reason: expect.stringContaining('hash') });
  });

  it('names the record that was deleted', async () => {
    const { store, ws } = await aLog();
    await client().deleteEntity(ws, key(6));
    expect(await store.verify(ws)).toMatchObject({ ok: false, brokenAt: 6, reason: expect.stringContaining('missing') });
  });

  it('names the first missing record when the tail is cut but the head left alone', async () => {
    const { store, ws } = await aLog();
    await client().deleteEntity(ws, key(10));
    await client().deleteEntity(ws, key(9));
    expect(await store.verify(ws)).toMatchObject({ ok: false, brokenAt: 9, records: 8 });
  });

  it('names the first of two records whose contents were swapped', async () => {
    const { store, ws } = await aLog();
    const [three, seven] = [await client().getEntity<Record<string, unknown>>(ws, key(3)), await client().getEntity<Record<string, unknown>>(ws, key(7))];
    await client().updateEntity({ partitionKey: ws, rowKey: key(3), ...contentOf(seven) }, 'Replace');
    await client().updateEntity({ partitionKey: ws, rowKey: key(7), ...contentOf(three) }, 'Replace');
    expect(await store.verify(ws)).toMatchObject({ ok: false, brokenAt: 3 });
  });

  it('names the record whose stream-index copy was edited', async () => {
    const { store, ws } = await aLog();
    // Record 5 is version 2 of run:2 (records 2, 5, 8).
    const rowKey = `s:run~003a2:${String(2).padStart(10, '0')}`;
    const row = await client().getEntity<Record<string, unknown>>(ws, rowKey);
    expect(row['sequence']).toBe(5);
    await client().updateEntity({ partitionKey: ws, rowKey, ...contentOf(row), record0: String(row['record0']).replace('"i":5', '"i":6') }, 'Replace');
    expect(await store.verify(ws)).toMatchObject({ ok: false, brokenAt: 5, reason: expect.stringContaining('stream index') });
  });

  it('catches a rewrite that re-chains every later hash only when the head is signed', async () => {
    const rechain = async (ws: string): Promise<void> => {
      let prev = String((await client().getEntity<Record<string, unknown>>(ws, key(4)))['hash']);
      for (let n = 5; n <= 10; n++) {
        const row = await client().getEntity<Record<string, unknown>>(ws, key(n));
        const record0 = n === 5 ? String(row['record0']).replace('"i":5', '"i":500') : String(row['record0']);
        const hash = nodeHasher.sha256Hex(prev + record0);
        await client().updateEntity({ partitionKey: ws, rowKey: key(n), ...contentOf(row), record0, prevHash: prev, hash }, 'Replace');
        const indexKey = `s:run~003a${n % 3}:${String(Number(row['streamVersion'])).padStart(10, '0')}`;
        await client().updateEntity({ partitionKey: ws, rowKey: indexKey, record0, prevHash: prev, hash }, 'Merge');
        prev = hash;
      }
      await client().updateEntity({ partitionKey: ws, rowKey: 'head', hash: prev }, 'Merge');
    };
    const unsigned = await aLog();
    await rechain(unsigned.ws);
    // Without a key, whoever can write the table can rewrite history consistently: this is why heads are signed.
    expect((await unsigned.store.verify(unsigned.ws)).ok).toBe(true);

    const signed = await aLog(hmacCheckpointer('platform-key'));
    await rechain(signed.ws);
    expect(await signed.store.verify(signed.ws)).toMatchObject({ ok: false, brokenAt: 5, reason: expect.stringContaining('checkpoint') });
  });

  it('a store holding a different key does not accept the checkpoints', async () => {
    const { ws } = await aLog(hmacCheckpointer('platform-key'));
    const other = TableEventStore.fromConnectionString(azuriteConnectionString(), table, { checkpointer: hmacCheckpointer('other-key') });
    expect(await other.verify(ws)).toMatchObject({ ok: false, brokenAt: 1 });
  });
});
