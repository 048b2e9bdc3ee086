import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { KeyWrapper } from '../vault/keyWrapper';
import { tableCreatedOnce } from '../tables/tableOnce';

const KEY_ROW = 'backup-key';

/**
 * One AES-256 key per workspace that encrypts its backups, wrapped by the vault master key (a Key Vault key in
 * Azure) in its own table. Backups sit in immutable storage and cannot be deleted before their retention ends;
 * destroying this key at purge is what makes them unreadable (crypto-shredding), so a purged workspace cannot
 * be restored from an old backup.
 */
export class TableBackupKeys {
  private readonly ensureTable: () => Promise<void>;

  constructor(private readonly table: TableClient, private readonly wrapper: KeyWrapper) {
    this.ensureTable = tableCreatedOnce(table);
  }

  /** The workspace's key, created on first use (two racing creators: the first insert wins, both use it). */
  async keyFor(workspaceId: string): Promise<Uint8Array> {
    const existing = await this.existing(workspaceId);
    if (existing) return existing;
    const wrapped = await this.wrapper.wrap(randomBytes(32));
    try {
      await this.table.createEntity({ partitionKey: workspaceId, rowKey: KEY_ROW, keyId: wrapped.keyId, algorithm: wrapped.algorithm, wrapped: wrapped.wrapped });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 409) throw error;
    }
    const created = await this.existing(workspaceId);
    if (!created) throw new Error(`The backup key of ${workspaceId} vanished while it was being created`);
    return created;
  }

  /** The key, or undefined when the workspace never had one or it was destroyed by purge. */
  async existing(workspaceId: string): Promise<Uint8Array | undefined> {
    await this.ensureTable();
    try {
      const row = await this.table.getEntity<{ keyId: string; algorithm: string; wrapped: string }>(workspaceId, KEY_ROW);
      return await this.wrapper.unwrap({ keyId: row.keyId, algorithm: row.algorithm, wrapped: row.wrapped });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  }

  /** Purge: the key goes, and with it every backup of the workspace. Idempotent. */
  async destroy(workspaceId: string): Promise<void> {
    await this.ensureTable();
    await this.table.deleteEntity(workspaceId, KEY_ROW).catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404) throw error;
    });
  }
}
