import { randomBytes } from 'node:crypto';
import { odata, type TableClient, type TableEntityResult, type TransactionAction } from '@azure/data-tables';
import { DomainError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import {
  VAULT_ERROR,
  assertRetentionDays,
  assertStorableSecret,
  secretNotFoundError,
  vaultDeletedError,
  type ResolvedSecret,
  type SecretMetadata,
  type SecretVault,
  type SecretWriteOptions,
  type SupersededSecret,
  type VaultStatus,
} from '../../domain/ports/secretVault';
import { assertValidSecretName } from '../../domain/secret';
import type { KeyWrapper } from './keyWrapper';
import { SEAL_ALGORITHM, openValue, sealValue } from './sealedValue';
import { guarded, statusOf } from './vaultErrors';

const VAULT_ROW = 'vault';
const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_ATTEMPTS = 10;
const currentKey = (name: string): string => `cur:${name}`;
const previousKey = (name: string, version: number): string => `ver:${name}:${String(version).padStart(10, '0')}`;

interface VaultRow {
  state: 'active' | 'deleted';
  createdAt: string;
  keyId: string;
  keyAlgorithm: string;
  wrappedKey: string;
  deletedAt?: string;
  purgeAfter?: string;
}

/** `cur:{name}` holds the current value; `ver:{name}:{version}` one superseded value each. */
interface ValueRow {
  name: string;
  version: number;
  sealed: string;
  algorithm: string;
  updatedAt: string;
  updatedBy: string;
  allowedHosts: string;
  supersededAt?: string;
}

export interface EncryptedTableVaultOptions {
  readonly table: TableClient;
  readonly keyWrapper: KeyWrapper;
  readonly clock: Clock;
  /** How long a superseded value is kept for the redactor's rotation window; older ones are pruned at `set`. */
  readonly keepSupersededMs?: number;
}

/**
 * The local default vault (and the fallback where no dedicated vault exists): secrets rest in Table storage,
 * AES-256-GCM encrypted under a random data key per workspace, which is wrapped by a master key through a
 * `KeyWrapper`. Each ciphertext is bound to its workspace, name and version as AAD. The `vault` row carries the
 * lifecycle, and every write includes it ETag-guarded, so no write lands in a vault deleted concurrently.
 */
export class EncryptedTableVault implements SecretVault {
  private readonly table: TableClient;
  private readonly keyWrapper: KeyWrapper;
  private readonly clock: Clock;
  private readonly keepSupersededMs: number;
  /** Unwrapped data keys, keyed by workspace and the wrapped form, so a re-keyed row is never served stale. */
  private readonly dataKeys = new Map<string, { wrapped: string; key: Uint8Array }>();

  constructor(options: EncryptedTableVaultOptions) {
    this.table = options.table;
    this.keyWrapper = options.keyWrapper;
    this.clock = options.clock;
    this.keepSupersededMs = options.keepSupersededMs ?? 30 * DAY_MS;
  }

  async ensureTable(): Promise<void> {
    try {
      await this.table.createTable();
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
  }

  async set(workspaceId: string, name: string, value: string, options: SecretWriteOptions): Promise<SecretMetadata> {
    assertStorableSecret(name, value, options);
    for (let attempt = 1; ; attempt++) {
      const vault = await this.activeVault(workspaceId, true);
      const current = await this.readRow<ValueRow>(workspaceId, currentKey(name));
      if (current && current.version > options.version)
        throw new DomainError(VAULT_ERROR.STALE_VERSION, `${name} is already at version ${current.version}`, 'conflict');
      const now = this.clock.now().toISOString();
      const key = await this.dataKey(workspaceId, vault);
      const row: ValueRow = {
        name,
        version: options.version,
        sealed: sealValue(key, value, { workspaceId, name, version: options.version }),
        algorithm: SEAL_ALGORITHM,
        updatedAt: now,
        updatedBy: options.actor,
        allowedHosts: JSON.stringify(options.allowedHosts ?? []),
      };
      const actions: TransactionAction[] = [this.guard(workspaceId, vault)];
      if (current) {
        actions.push(['update', { partitionKey: workspaceId, rowKey: currentKey(name), ...row }, 'Replace', { etag: current.etag }]);
        if (current.version !== options.version)
          actions.push(['upsert', { ...this.plain(current), rowKey: previousKey(name, current.version), supersededAt: now }, 'Replace']);
      } else {
        actions.push(['create', { partitionKey: workspaceId, rowKey: currentKey(name), ...row }]);
      }
      actions.push(...(await this.expiredPrevious(workspaceId, name)));
      if (await this.commit(actions, attempt))
        return { name, version: options.version, updatedAt: now, updatedBy: options.actor, allowedHosts: [...(options.allowedHosts ?? [])] };
    }
  }

  async delete(workspaceId: string, name: string): Promise<void> {
    assertValidSecretName(name);
    for (let attempt = 1; ; attempt++) {
      const vault = await this.activeVault(workspaceId, false);
      const current = vault && (await this.readRow<ValueRow>(workspaceId, currentKey(name)));
      if (!vault || !current) throw secretNotFoundError(name);
      const supersededAt = this.clock.now().toISOString();
      const actions: TransactionAction[] = [
        this.guard(workspaceId, vault),
        // The guard on the vault row already fails this transaction if anything else was written meanwhile.
        ['delete', { partitionKey: workspaceId, rowKey: currentKey(name) }],
        ['upsert', { ...this.plain(current), rowKey: previousKey(name, current.version), supersededAt }, 'Replace'],
      ];
      if (await this.commit(actions, attempt)) return;
    }
  }

  async list(workspaceId: string): Promise<readonly SecretMetadata[]> {
    if (!(await this.activeVault(workspaceId, false))) return [];
    const rows = await this.query<ValueRow>(workspaceId, 'cur:', 'cur;');
    return rows
      .map((row) => ({
        name: row.name,
        version: row.version,
        updatedAt: row.updatedAt,
        updatedBy: row.updatedBy,
        allowedHosts: JSON.parse(row.allowedHosts) as string[],
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async resolve(workspaceId: string, name: string): Promise<ResolvedSecret> {
    assertValidSecretName(name);
    const [vault, current] = await Promise.all([
      this.readRow<VaultRow>(workspaceId, VAULT_ROW),
      this.readRow<ValueRow>(workspaceId, currentKey(name)),
    ]);
    if (vault?.state === 'deleted') throw vaultDeletedError(workspaceId);
    if (!vault || !current) throw secretNotFoundError(name);
    const key = await this.dataKey(workspaceId, vault);
    return { value: openValue(key, current.sealed, { workspaceId, name, version: current.version }), version: current.version };
  }

  async previousValues(workspaceId: string, since: Date): Promise<readonly SupersededSecret[]> {
    const vault = await this.activeVault(workspaceId, false);
    if (!vault) return [];
    const key = await this.dataKey(workspaceId, vault);
    const cutoff = since.toISOString();
    return (await this.query<ValueRow>(workspaceId, 'ver:', 'ver;'))
      .filter((row) => (row.supersededAt ?? '') >= cutoff)
      .map((row) => ({
        name: row.name,
        version: row.version,
        value: openValue(key, row.sealed, { workspaceId, name: row.name, version: row.version }),
        supersededAt: row.supersededAt ?? cutoff,
      }))
      .sort((a, b) => (a.supersededAt < b.supersededAt ? -1 : a.supersededAt > b.supersededAt ? 1 : 0));
  }

  async status(workspaceId: string): Promise<VaultStatus> {
    const vault = await this.readRow<VaultRow>(workspaceId, VAULT_ROW);
    if (!vault) return { state: 'absent' };
    if (vault.state === 'active') return { state: 'active' };
    return { state: 'deleted', deletedAt: vault.deletedAt ?? '', purgeAfter: vault.purgeAfter ?? '' };
  }

  async softDelete(workspaceId: string, options: { retentionDays: number; now: Date }): Promise<VaultStatus> {
    assertRetentionDays(options.retentionDays);
    const vault = await this.readRow<VaultRow>(workspaceId, VAULT_ROW);
    if (!vault) return { state: 'absent' };
    if (vault.state === 'deleted') return this.status(workspaceId);
    const deletedAt = options.now.toISOString();
    const purgeAfter = new Date(options.now.getTime() + options.retentionDays * DAY_MS).toISOString();
    await guarded('soft-delete the vault', () =>
      this.table.updateEntity(
        { partitionKey: workspaceId, rowKey: VAULT_ROW, state: 'deleted', deletedAt, purgeAfter },
        'Merge',
        { etag: vault.etag },
      ),
    );
    this.dataKeys.delete(workspaceId);
    return { state: 'deleted', deletedAt, purgeAfter };
  }

  async recover(workspaceId: string): Promise<void> {
    const vault = await this.readRow<VaultRow>(workspaceId, VAULT_ROW);
    if (vault?.state !== 'deleted')
      throw new DomainError(VAULT_ERROR.NOT_DELETED, `The vault of workspace ${workspaceId} is not deleted`, 'precondition');
    if (this.clock.now().toISOString() >= (vault.purgeAfter ?? ''))
      throw new DomainError(VAULT_ERROR.RETENTION_ENDED, `The retention of workspace ${workspaceId}'s vault has ended`, 'precondition');
    await guarded('recover the vault', () =>
      this.table.updateEntity({ partitionKey: workspaceId, rowKey: VAULT_ROW, state: 'active', deletedAt: '', purgeAfter: '' }, 'Merge', {
        etag: vault.etag,
      }),
    );
  }

  async purge(workspaceId: string, now: Date): Promise<void> {
    const vault = await this.readRow<VaultRow>(workspaceId, VAULT_ROW);
    if (vault === undefined) return;
    if (vault.state !== 'deleted')
      throw new DomainError(VAULT_ERROR.NOT_DELETED, `The vault of workspace ${workspaceId} is not deleted`, 'precondition');
    if (now.toISOString() < (vault.purgeAfter ?? ''))
      throw new DomainError(
        VAULT_ERROR.PURGE_PROTECTED,
        `The vault of workspace ${workspaceId} is purge-protected until ${vault.purgeAfter}`,
        'precondition',
      );
    // Two purges may run at once (two sweeps): a batch that meets a row the other already deleted fails whole
    // with 404, so read what is left and go on until nothing is; gone is what both wanted.
    for (;;) {
      const rows = (await this.query<object>(workspaceId, '', '\uffff')).filter((row) => row.rowKey !== VAULT_ROW);
      if (rows.length === 0) break;
      for (let i = 0; i < rows.length; i += 99) {
        const batch: TransactionAction[] = rows
          .slice(i, i + 99)
          .map((row): TransactionAction => ['delete', { partitionKey: workspaceId, rowKey: row.rowKey ?? '' }]);
        await guarded('purge the vault', () => ignoringNotFound(this.table.submitTransaction(batch)));
      }
    }
    // The vault row goes last, so a purge interrupted half way is still a deleted vault that purge can finish.
    await guarded('purge the vault', () => ignoringNotFound(this.table.deleteEntity(workspaceId, VAULT_ROW)));
    this.dataKeys.delete(workspaceId);
  }

  /** The active vault row; provisions it (with a fresh wrapped data key) when `provision` and absent. */
  private async activeVault(workspaceId: string, provision: true): Promise<TableEntityResult<VaultRow>>;
  private async activeVault(workspaceId: string, provision: false): Promise<TableEntityResult<VaultRow> | undefined>;
  private async activeVault(workspaceId: string, provision: boolean): Promise<TableEntityResult<VaultRow> | undefined> {
    const existing = await this.readRow<VaultRow>(workspaceId, VAULT_ROW);
    if (existing?.state === 'deleted') throw vaultDeletedError(workspaceId);
    if (existing || !provision) return existing;
    const wrapped = await this.keyWrapper.wrap(randomBytes(32));
    const row: VaultRow = {
      state: 'active',
      createdAt: this.clock.now().toISOString(),
      keyId: wrapped.keyId,
      keyAlgorithm: wrapped.algorithm,
      wrappedKey: wrapped.wrapped,
    };
    try {
      await this.table.createEntity({ partitionKey: workspaceId, rowKey: VAULT_ROW, ...row });
    } catch (error) {
      // Another instance provisioned it first: use theirs.
      if (statusOf(error) !== 409) throw error;
    }
    return this.activeVault(workspaceId, true);
  }

  private async dataKey(workspaceId: string, vault: VaultRow): Promise<Uint8Array> {
    const cached = this.dataKeys.get(workspaceId);
    if (cached?.wrapped === vault.wrappedKey) return cached.key;
    const key = await this.keyWrapper.unwrap({ keyId: vault.keyId, algorithm: vault.keyAlgorithm, wrapped: vault.wrappedKey });
    this.dataKeys.set(workspaceId, { wrapped: vault.wrappedKey, key });
    return key;
  }

  /** A no-op update of the vault row under its ETag: the transaction fails if the vault changed meanwhile. */
  private guard(workspaceId: string, vault: TableEntityResult<VaultRow>): TransactionAction {
    return ['update', { partitionKey: workspaceId, rowKey: VAULT_ROW }, 'Merge', { etag: vault.etag }];
  }

  private async expiredPrevious(workspaceId: string, name: string): Promise<TransactionAction[]> {
    const cutoff = new Date(this.clock.now().getTime() - this.keepSupersededMs).toISOString();
    const rows = await this.query<ValueRow>(workspaceId, `ver:${name}:`, `ver:${name};`);
    return rows
      .filter((row) => (row.supersededAt ?? '') < cutoff)
      .slice(0, 90)
      .map((row): TransactionAction => ['delete', { partitionKey: workspaceId, rowKey: row.rowKey ?? '' }]);
  }

  /** True when committed; false on a lost race (the caller re-reads and tries again, a bounded number of times). */
  private async commit(actions: TransactionAction[], attempt: number): Promise<boolean> {
    try {
      await this.table.submitTransaction(actions);
      return true;
    } catch (error) {
      const status = statusOf(error);
      if ((status === 409 || status === 412) && attempt < MAX_ATTEMPTS) {
        // Every write touches the vault row, so writers of one workspace take turns; jitter spreads them out.
        await this.clock.sleep(Math.floor(Math.random() * 10 * attempt));
        return false;
      }
      throw new DomainError(VAULT_ERROR.UNAVAILABLE, `The vault write did not commit (status ${status ?? 'none'})`, status === 409 || status === 412 ? 'conflict' : 'unavailable');
    }
  }

  /** The stored properties of a row, without the service's bookkeeping, to copy it under another RowKey. */
  private plain(row: TableEntityResult<ValueRow>): ValueRow & { partitionKey: string } {
    return {
      partitionKey: row.partitionKey ?? '',
      name: row.name,
      version: row.version,
      sealed: row.sealed,
      algorithm: row.algorithm,
      updatedAt: row.updatedAt,
      updatedBy: row.updatedBy,
      allowedHosts: row.allowedHosts,
    };
  }

  private async readRow<T extends object>(workspaceId: string, rowKey: string): Promise<TableEntityResult<T> | undefined> {
    try {
      return await this.table.getEntity<T>(workspaceId, rowKey);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw new DomainError(VAULT_ERROR.UNAVAILABLE, `The vault could not be read (status ${statusOf(error) ?? 'none'})`, 'unavailable');
    }
  }

  private async query<T extends object>(workspaceId: string, from: string, to: string): Promise<TableEntityResult<T>[]> {
    return guarded('list the vault', async () => {
      const out: TableEntityResult<T>[] = [];
      const filter = odata`PartitionKey eq ${workspaceId} and RowKey ge ${from} and RowKey lt ${to}`;
      for await (const row of this.table.listEntities<T>({ queryOptions: { filter } })) out.push(row);
      return out;
    });
  }
}

/** A delete that found its row gone already (another purge took it) did what it was for. */
async function ignoringNotFound(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (statusOf(error) !== 404) throw error;
  }
}
