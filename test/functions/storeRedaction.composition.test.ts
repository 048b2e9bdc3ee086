import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { createWorkspace } from '../../domain/services/workspaces';
import { setSecret } from '../../domain/services/secrets';
import { compose } from '../../functions/composition';
import { loadSettings } from '../../functions/settings';
import { azuriteConnectionString, uniqueName } from '../support/azurite';

/** Every stored byte of the workspace's partition, as someone reading the table would see it. */
async function partitionText(table: TableClient, ws: string): Promise<string> {
  let text = '';
  for await (const row of table.listEntities({ queryOptions: { filter: `PartitionKey eq '${ws}'` } })) text += JSON.stringify(row);
  return text;
}

describe('the composed event store redacts what it stores (second line of defence)', () => {
  it('an event carrying a managed value, raw or encoded, is stored redacted, and a rotated-away value stays masked', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'dp-store-redaction-'));
    process.env.DEV_ISSUER_KEY_DIR = path.join(tmp, 'issuer');
    const settings = loadSettings({
      AzureWebJobsStorage: azuriteConnectionString(),
      EVENT_LOG_TABLE: uniqueName('redactedlog'),
      VAULT_TABLE: uniqueName('redactedvault'),
      SIGNING_KEY_TABLE: uniqueName('redactedkeys'),
      BACKUP_CONTAINER: uniqueName('redactedarchive'),
      VAULT_MASTER_KEY_FILE: path.join(tmp, 'master.key'),
    });
    const { deps } = await compose(settings).services();
    const owner = { actor: 'alice', correlationId: 'c' };
    const { id: ws } = await createWorkspace(deps, owner, 'Acme');
    const first = 'npm_first_value_0123456789';
    const second = 'npm_second_value_9876543210';
    await setSecret(deps, owner, { workspaceId: ws, name: 'NPM_TOKEN', value: first });

    // A careless event: an error message carrying the value, raw and base64 (as an SDK error might).
    const at = new Date().toISOString();
    const careless = (message: string) => ({ type: 'RunFailed', data: { reason: message }, meta: { at, actor: 'system:test', correlationId: 'c' } });
    await deps.store.append({ workspaceId: ws, streamId: 'run:careless', expectedVersion: 0, events: [careless(`401 for token ${first} (${Buffer.from(first).toString('base64')})`)] });
    await setSecret(deps, owner, { workspaceId: ws, name: 'NPM_TOKEN', value: second });
    await deps.store.append({ workspaceId: ws, streamId: 'run:careless', expectedVersion: 1, events: [careless(`old ${first} new ${second}`)] });

    const table = TableClient.fromConnectionString(azuriteConnectionString(), settings.EVENT_LOG_TABLE, { allowInsecureConnection: true });
    const stored = await partitionText(table, ws);
    for (const value of [first, second, Buffer.from(first).toString('base64')]) expect(stored).not.toContain(value);
    const records = (await deps.store.readStream(ws, 'run:careless')).events.map((e) => (e.data as { reason: string }).reason);
    expect(records).toEqual(['401 for token [REDACTED:NPM_TOKEN] ([REDACTED:NPM_TOKEN])', 'old [REDACTED:NPM_TOKEN] new [REDACTED:NPM_TOKEN]']);
    // The chain covers the redacted bytes.
    expect(await deps.store.verify(ws)).toMatchObject({ ok: true });
  });
});
