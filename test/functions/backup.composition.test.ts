import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { createWorkspace, setMember } from '../../domain/services/workspaces';
import { backupChangedLogs, witnessChangedHeads } from '../../infra/backup/logBackup';
import { compose } from '../../functions/composition';
import { runRestore } from '../../functions/restoreCommand';
import { loadSettings } from '../../functions/settings';
import { azuriteConnectionString, uniqueName } from '../support/azurite';

describe('backups as the app composes them, and `npm run restore`', () => {
  it('the backup timer archives the composed log; restore rebuilds it into an empty table and refuses a non-empty one', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'dp-backup-composition-'));
    process.env.DEV_ISSUER_KEY_DIR = path.join(tmp, 'issuer');
    const env = {
      AzureWebJobsStorage: azuriteConnectionString(),
      EVENT_LOG_TABLE: uniqueName('backuplog'),
      VAULT_TABLE: uniqueName('backupvault'),
      SIGNING_KEY_TABLE: uniqueName('backupsigning'),
      BACKUP_KEY_TABLE: uniqueName('backupkeys'),
      BACKUP_CONTAINER: uniqueName('archive'),
      VAULT_MASTER_KEY_FILE: path.join(tmp, 'master.key'),
    };
    const settings = loadSettings(env);
    const platform = compose(settings);
    const { deps } = await platform.services();
    const caller = { actor: 'alice', correlationId: 'c' };
    const { id: ws } = await createWorkspace(deps, caller, 'Acme');
    await setMember(deps, caller, ws, 'bob', 'member');

    const report = await backupChangedLogs(platform.logBackup());
    // The workspace and the platform's own log (its SigningKeyRotated records).
    expect(report).toMatchObject({ backedUp: 2 });
    expect(await deps.store.verify(ws)).toMatchObject({ ok: true, records: 2 });

    const lines: string[] = [];
    const target = uniqueName('restoredlog');
    expect(await runRestore(['--workspace', ws, '--from', 'latest', '--table', target], env, (l) => lines.push(l))).toBe(0);
    expect(lines.at(-1)).toMatch(/^restored 2 records of .* chain and signatures verify/);
    const restored = TableClient.fromConnectionString(azuriteConnectionString(), target, { allowInsecureConnection: true });
    expect((await restored.getEntity(ws, 'head'))['sequence']).toBe(2);

    // An older backup than the latest witnessed head: restored, and the loss is said.
    await setMember(deps, caller, ws, 'carol', 'member');
    await witnessChangedHeads(platform.logBackup());
    const behind = uniqueName('behindlog');
    expect(await runRestore(['--workspace', ws, '--from', 'latest', '--table', behind], env, (l) => lines.push(l))).toBe(0);
    expect(lines.at(-1)).toBe('warning: the archive witnessed the log at 3; records 3..3 are lost, and verify names the gap');

    expect(await runRestore(['--workspace', ws, '--from', 'latest'], env, (l) => lines.push(l))).toBe(1);
    expect(lines.at(-1)).toMatch(/^restore refused: .*empty partition/);
    expect(await runRestore(['--workspace', ws], env, (l) => lines.push(l))).toBe(2);
    // The signing-key table lost as well: the backup's own keys still verify it.
    const noRing = { ...env, SIGNING_KEY_TABLE: uniqueName('lostkeys') };
    expect(await runRestore(['--workspace', ws, '--from', 'latest', '--table', uniqueName('disaster'), '--backup-keys-only'], noRing, (l) => lines.push(l))).toBe(0);
  });
});
