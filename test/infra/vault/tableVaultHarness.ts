import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { EncryptedTableVault } from '../../../infra/vault/encryptedTableVault';
import { LocalFileKeyWrapper } from '../../../infra/vault/localFileKeyWrapper';
import type { KeyWrapper } from '../../../infra/vault/keyWrapper';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { ManualClock } from './manualClock';

export interface TableVaultSetup {
  readonly vault: EncryptedTableVault;
  readonly table: TableClient;
  readonly clock: ManualClock;
  readonly keyDir: string;
}

/** An encrypted Table vault on the test run's Azurite, in its own table, with a master key in a temp dir. */
export async function aTableVault(options: { keyWrapper?: KeyWrapper; clock?: ManualClock } = {}): Promise<TableVaultSetup> {
  const table = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('vault'), { allowInsecureConnection: true });
  const keyDir = mkdtempSync(path.join(tmpdir(), 'vault-key-'));
  const clock = options.clock ?? new ManualClock();
  const keyWrapper = options.keyWrapper ?? LocalFileKeyWrapper.open(path.join(keyDir, 'master.key'));
  const vault = new EncryptedTableVault({ table, keyWrapper, clock });
  await vault.ensureTable();
  return { vault, table, clock, keyDir };
}

/** Every row of the table, every property as text: what someone who can read the storage account sees. */
export async function allStoredText(table: TableClient): Promise<string> {
  const rows: unknown[] = [];
  for await (const row of table.listEntities()) rows.push(row);
  return JSON.stringify(rows);
}
