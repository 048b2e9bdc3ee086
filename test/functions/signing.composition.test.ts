import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { PLATFORM_PARTITION, signingKeysStreamId } from '../../domain/streams';
import { compose } from '../../functions/composition';
import { loadSettings } from '../../functions/settings';
import { azuriteConnectionString, uniqueName } from '../support/azurite';

describe('the composed app signs its event log', () => {
  it('every append through the composed store carries a checkpoint by the platform key, and verify checks it', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'dp-signing-composition-'));
    process.env.DEV_ISSUER_KEY_DIR = path.join(tmp, 'issuer');
    const settings = loadSettings({
      AzureWebJobsStorage: azuriteConnectionString(),
      EVENT_LOG_TABLE: uniqueName('composedlog'),
      VAULT_TABLE: uniqueName('composedvault'),
      SIGNING_KEY_TABLE: uniqueName('composedkeys'),
      // Its own archive: witnessed heads are per partition, and 'platform' is a partition of every test's log.
      BACKUP_CONTAINER: uniqueName('composedarchive'),
      VAULT_MASTER_KEY_FILE: path.join(tmp, 'master.key'),
    });
    const platform = compose(settings);
    const { deps } = await platform.services();
    const at = new Date().toISOString();
    await deps.store.append({
      workspaceId: 'ws-composed', streamId: 'workspace:ws-composed', expectedVersion: 0,
      events: [{ type: 'WorkspaceCreated', data: { name: 'Acme' }, meta: { at, actor: 'alice', correlationId: 'c1' } }],
    });
    const { kid } = await platform.signing().keys.signingKey();
    const table = TableClient.fromConnectionString(azuriteConnectionString(), settings.EVENT_LOG_TABLE, { allowInsecureConnection: true });
    const head = await table.getEntity<Record<string, unknown>>('ws-composed', 'head');
    expect(decodeProtectedHeader(String(head['signature']))).toMatchObject({ alg: 'EdDSA', kid });
    expect(await deps.store.verify('ws-composed')).toMatchObject({ ok: true, records: 1 });
    // The first key was recorded in the platform's own (signed) log.
    const rotations = await deps.store.readStream(PLATFORM_PARTITION, signingKeysStreamId());
    expect(rotations.events.map((e) => e.data)).toEqual([expect.objectContaining({ kid, generation: 1 })]);
    expect(await deps.store.verify(PLATFORM_PARTITION)).toMatchObject({ ok: true });

    // A head re-pointed without the key fails verify.
    const signature = String(head['signature']);
    const middle = signature.length - 40; // inside the signature part, where every bit counts
    const flipped = `${signature.slice(0, middle)}${signature[middle] === 'A' ? 'B' : 'A'}${signature.slice(middle + 1)}`;
    await table.updateEntity({ partitionKey: 'ws-composed', rowKey: 'head', signature: flipped }, 'Merge');
    expect(await deps.store.verify('ws-composed')).toMatchObject({ ok: false, brokenAt: 1, reason: expect.stringContaining('signature') });
  });
});
