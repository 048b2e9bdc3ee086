import { RestError, TableClient } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { anEvent, describeEventStoreContract } from '../../contracts/eventStore.contract';

const table = uniqueName('eventlog');

describeEventStoreContract('TableEventStore on Azurite', (options) =>
  TableEventStore.fromConnectionString(azuriteConnectionString(), table, options ?? {}),
);

describe('TableEventStore table layout', () => {
  it('writes event, stream-index, head, projection and outbox rows with padded keys in one partition', async () => {
    const store = TableEventStore.fromConnectionString(azuriteConnectionString(), table);
    const client = TableClient.fromConnectionString(azuriteConnectionString(), table, { allowInsecureConnection: true });
    const w = `ws-layout-${uniqueName('w')}`;
    await store.append({ workspaceId: w, streamId: 'run:r1', expectedVersion: 0, events: [anEvent(), anEvent()], projections: [{ kind: 'upsert', key: 'run:r1', value: { status: 'Pending' } }] });
    const keys: string[] = [];
    for await (const row of client.listEntities({ queryOptions: { filter: `PartitionKey eq '${w}'` } })) keys.push(row.rowKey ?? '');
    expect(keys).toEqual([
      'e:0000000001', 'e:0000000002', 'head', 'o:0000000001', 'o:0000000002', 'p:run~003ar1',
      's:run~003ar1:0000000001', 's:run~003ar1:0000000002',
    ]);
    const head = await client.getEntity(w, 'head');
    const second = await client.getEntity(w, 'e:0000000002');
    expect(head['hash']).toBe(second['hash']);
    expect(head['sequence']).toBe(2);
  });
});

describe('TableEventStore when a committed append loses its response', () => {
  it('recognises its own rows on the SDK’s retry and reports success, not a conflict', async () => {
    const client = TableClient.fromConnectionString(azuriteConnectionString(), table, { allowInsecureConnection: true });
    let dropped = 0;
    // After the service has committed the first batch, the connection "resets": the SDK's retry policy resends it.
    client.pipeline.addPolicy(
      {
        name: 'dropFirstBatchResponse',
        async sendRequest(request, next) {
          const response = await next(request);
          if (request.url.endsWith('$batch') && dropped++ === 0) throw new RestError('socket hang up', { code: 'ECONNRESET', request });
          return response;
        },
      },
      { afterPhase: 'Retry' },
    );
    const store = new TableEventStore(client);
    const w = `ws-lost-${uniqueName('w')}`;
    const result = await store.append({ workspaceId: w, streamId: 'run:r1', expectedVersion: 0, events: [anEvent()] });
    expect(dropped).toBe(2);
    expect(result.version).toBe(1);
    const stream = await store.readStream(w, 'run:r1');
    expect(stream.events.map((e) => e.id)).toEqual([result.records[0]!.id]);
    expect(await store.verify(w)).toEqual({ ok: true, records: 1, headSequence: 1 });
  });
});
