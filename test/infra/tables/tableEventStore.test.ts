import { TableClient } from '@azure/data-tables';
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
