import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EncryptedTableVault } from '../../../infra/vault/encryptedTableVault';
import { LocalFileKeyWrapper } from '../../../infra/vault/localFileKeyWrapper';
import { aSecretValue, expectNoTrace, expectRefused, secretVaultContract } from '../../contracts/secretVault.contract';
import { aTableVault, allStoredText, type TableVaultSetup } from './tableVaultHarness';

let setup: TableVaultSetup;
beforeAll(async () => {
  setup = await aTableVault();
});

secretVaultContract('EncryptedTableVault', () => ({
  vault: setup.vault,
  clock: setup.clock,
  newWorkspace: () => `ws-${randomUUID()}`,
}));

const by = { actor: 'user:alice' };

/** Rewrites one property of one stored row, as someone with write access to the storage account could. */
async function tamper(rowKey: string, ws: string, change: (row: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  const row = await setup.table.getEntity<Record<string, unknown>>(ws, rowKey);
  const { etag: _etag, timestamp: _timestamp, ...rest } = row as Record<string, unknown>;
  await setup.table.upsertEntity({ ...(change(rest) as { partitionKey: string; rowKey: string }) }, 'Replace');
}

describe('EncryptedTableVault at rest', () => {
  it('stores no value in any row, raw or base64, and keeps the master key file at mode 0600', async () => {
    const ws = `ws-${randomUUID()}`;
    const values = [aSecretValue('a'), aSecretValue('b'), aSecretValue('c')];
    await setup.vault.set(ws, 'A', values[0] ?? '', { version: 1, ...by });
    await setup.vault.set(ws, 'A', values[1] ?? '', { version: 2, ...by });
    await setup.vault.set(ws, 'B', values[2] ?? '', { version: 1, ...by });
    await setup.vault.delete(ws, 'B');
    const stored = await allStoredText(setup.table);
    expect(stored).toContain(ws);
    for (const value of values) expectNoTrace(stored, value);
    expect(statSync(path.join(setup.keyDir, 'master.key')).mode & 0o777).toBe(0o600);
  });

  it('two writes of the same value give different ciphertexts (a fresh IV per write)', async () => {
    const ws = `ws-${randomUUID()}`;
    const value = aSecretValue();
    await setup.vault.set(ws, 'SAME', value, { version: 1, ...by });
    const first = (await setup.table.getEntity<{ sealed: string }>(ws, 'cur:SAME')).sealed;
    await setup.vault.set(ws, 'SAME', value, { version: 2, ...by });
    const second = (await setup.table.getEntity<{ sealed: string }>(ws, 'cur:SAME')).sealed;
    expect(second).not.toBe(first);
    expect(Buffer.from(first, 'base64').subarray(0, 12)).not.toEqual(Buffer.from(second, 'base64').subarray(0, 12));
  });

  it('a flipped ciphertext bit fails to decrypt with an error that carries no value', async () => {
    const ws = `ws-${randomUUID()}`;
    const value = aSecretValue();
    await setup.vault.set(ws, 'TAMPERED', value, { version: 1, ...by });
    await tamper('cur:TAMPERED', ws, (row) => {
      const bytes = Buffer.from(row.sealed as string, 'base64');
      bytes[20] = (bytes[20] ?? 0) ^ 0x01;
      return { ...row, sealed: bytes.toString('base64') };
    });
    await expectRefused(() => setup.vault.resolve(ws, 'TAMPERED'), 'VAULT.INTEGRITY', value);
  });

  it('a ciphertext moved to another name, version or workspace fails to decrypt', async () => {
    const [ws, other] = [`ws-${randomUUID()}`, `ws-${randomUUID()}`];
    const [a, b, c] = [aSecretValue('a'), aSecretValue('b'), aSecretValue('c')];
    await setup.vault.set(ws, 'SOURCE', a, { version: 1, ...by });
    await setup.vault.set(ws, 'TARGET', b, { version: 1, ...by });
    const sealed = (await setup.table.getEntity<{ sealed: string }>(ws, 'cur:SOURCE')).sealed;

    // Another row (another name) of the same workspace.
    await tamper('cur:TARGET', ws, (row) => ({ ...row, sealed }));
    await expectRefused(() => setup.vault.resolve(ws, 'TARGET'), 'VAULT.INTEGRITY', a);

    // The same row claiming another version.
    await tamper('cur:SOURCE', ws, (row) => ({ ...row, version: 2 }));
    await expectRefused(() => setup.vault.resolve(ws, 'SOURCE'), 'VAULT.INTEGRITY', a);

    // The same row and data key copied into another workspace's partition.
    await setup.vault.set(other, 'OTHER', c, { version: 1, ...by });
    for (const rowKey of ['vault', 'cur:SOURCE'])
      await tamper(rowKey, ws, (row) => ({ ...row, partitionKey: other, ...(rowKey === 'cur:SOURCE' ? { version: 1 } : {}) }));
    await expectRefused(() => setup.vault.resolve(other, 'SOURCE'), 'VAULT.INTEGRITY', a);
  });

  it('a superseded value moved back into the current row fails to decrypt (no silent rollback)', async () => {
    const ws = `ws-${randomUUID()}`;
    const [old, fresh] = [aSecretValue('old'), aSecretValue('new')];
    await setup.vault.set(ws, 'ROLLED', old, { version: 1, ...by });
    await setup.vault.set(ws, 'ROLLED', fresh, { version: 2, ...by });
    const previous = await setup.table.getEntity<{ sealed: string }>(ws, 'ver:ROLLED:0000000001');
    await tamper('cur:ROLLED', ws, (row) => ({ ...row, sealed: previous.sealed }));
    await expectRefused(() => setup.vault.resolve(ws, 'ROLLED'), 'VAULT.INTEGRITY', old);
  });

  it('a vault row re-wrapped under another master key is refused, not decrypted', async () => {
    const other = await aTableVault({ keyWrapper: LocalFileKeyWrapper.open(path.join(setup.keyDir, 'other.key')) });
    const ws = `ws-${randomUUID()}`;
    const value = aSecretValue();
    await setup.vault.set(ws, 'KEY', value, { version: 1, ...by });
    for (const rowKey of ['vault', 'cur:KEY']) {
      const row = await setup.table.getEntity<Record<string, unknown>>(ws, rowKey);
      const { etag: _e, timestamp: _t, ...rest } = row as Record<string, unknown>;
      await other.table.upsertEntity(rest as { partitionKey: string; rowKey: string }, 'Replace');
    }
    await expectRefused(() => other.vault.resolve(ws, 'KEY'), 'VAULT.MASTER_KEY_MISMATCH', value);
  });

  it('the master key file survives a restart: a new vault instance on the same file reads old values', async () => {
    const ws = `ws-${randomUUID()}`;
    const value = aSecretValue();
    await setup.vault.set(ws, 'DURABLE', value, { version: 1, ...by });
    const restarted = new EncryptedTableVault({
      table: setup.table,
      keyWrapper: LocalFileKeyWrapper.open(path.join(setup.keyDir, 'master.key')),
      clock: setup.clock,
    });
    expect(await restarted.resolve(ws, 'DURABLE')).toEqual({ value, version: 1 });
  });

  it('concurrent writers of one workspace all land (the vault-row guard retries, it does not lose writes)', async () => {
    const ws = `ws-${randomUUID()}`;
    const names = Array.from({ length: 8 }, (_, i) => `CONCURRENT_${i}`);
    await Promise.all(names.map((name) => setup.vault.set(ws, name, aSecretValue(), { version: 1, ...by })));
    expect((await setup.vault.list(ws)).map((s) => s.name)).toEqual(names);
  });
});
