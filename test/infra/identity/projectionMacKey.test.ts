import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProjectionSeal } from '../../../infra/identity/projectionMacKey';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { LocalFileKeyWrapper } from '../../../infra/vault/localFileKeyWrapper';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';

const dir = mkdtempSync(path.join(tmpdir(), 'dp-macKey-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const table = (name: string) => TableClient.fromConnectionString(azuriteConnectionString(), name, { allowInsecureConnection: true });
const position = { streamId: 'workspace:w', version: 3 };

describe('the projection MAC key (Azurite, wrapped by the local master key)', () => {
  it('is made once and shared: concurrent first loads and later processes get the same key, and their rows verify across stores', async () => {
    const wrapper = LocalFileKeyWrapper.open(path.join(dir, 'master.key'));
    const keys = uniqueName('signingkeys');
    const seals = await Promise.all([0, 1, 2].map(() => loadProjectionSeal(table(keys), wrapper)));
    const macs = new Set(seals.map((s) => s.mac('w', 'workspace', position, '{}')));
    expect(macs.size).toBe(1);
    // Two stores (two hosts) over one event table: what one writes, the other verifies as current.
    const events = uniqueName('events');
    const [a, b] = [seals[0]!, seals[1]!].map((seal) => new TableEventStore(table(events), { projectionSeal: seal }));
    await a!.append({
      workspaceId: 'w', streamId: 'workspace:w', expectedVersion: 0, events: [{ type: 'Noted', data: {}, meta: { at: new Date().toISOString(), actor: 't', correlationId: 'c' } }],
      projections: [{ kind: 'upsert', key: 'workspace', value: { n: 1 } }],
    });
    expect(await b!.readCheckedProjection('w', 'workspace')).toMatchObject({ check: 'verified', value: { n: 1 }, derivedFrom: { streamId: 'workspace:w', version: 1 } });
    // A store with a key of its own (no platform key) cannot vouch for them.
    expect(await new TableEventStore(table(events)).readCheckedProjection('w', 'workspace')).toMatchObject({ check: 'forged' });
  });

  it('a key row replaced by one the master key did not wrap stops the load; another master key cannot open it', async () => {
    const keys = uniqueName('signingkeys');
    await loadProjectionSeal(table(keys), LocalFileKeyWrapper.open(path.join(dir, 'master.key')));
    const other = LocalFileKeyWrapper.open(path.join(dir, 'other.key'));
    await expect(loadProjectionSeal(table(keys), other)).rejects.toThrow();
    const forged = await other.wrap(Buffer.alloc(32, 7));
    await table(keys).updateEntity({ partitionKey: 'platform', rowKey: 'projection-mac', wrappedKey: forged.wrapped, wrapKeyId: LocalFileKeyWrapper.open(path.join(dir, 'master.key')).keyId, wrapAlgorithm: forged.algorithm }, 'Merge');
    await expect(loadProjectionSeal(table(keys), LocalFileKeyWrapper.open(path.join(dir, 'master.key')))).rejects.toThrow(/integrity/);
  });
});
