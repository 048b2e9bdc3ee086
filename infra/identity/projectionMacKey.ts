import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { ProjectionSeal } from '../tables/projectionSeal';
import type { KeyWrapper } from '../vault/keyWrapper';
import { statusOf } from '../vault/vaultErrors';

const PARTITION = 'platform';
const ROW = 'projection-mac';

interface MacKeyRow {
  wrappedKey?: unknown;
  wrapKeyId?: unknown;
  wrapAlgorithm?: unknown;
}

/**
 * The platform's projection MAC key (docs/event-log.md, "Verified projections"): 32 random bytes made once,
 * kept only wrapped by the vault master key (a Key Vault key in Azure, the local key file under `.azurite/`),
 * in the signing-key table's platform partition, like the signing keys. Whoever can write that table can
 * replace or delete the row, but cannot make a wrapped key that unwraps: a replaced row stops this process
 * from starting (loudly), a deleted one makes a new key, under which every older row fails its MAC and is
 * refolded from the log and reported.
 */
export async function loadProjectionSeal(table: TableClient, keyWrapper: KeyWrapper): Promise<ProjectionSeal> {
  await table.createTable().catch((error: unknown) => {
    if (statusOf(error) !== 409) throw error;
  });
  const existing = await readRow(table);
  if (existing) return ProjectionSeal.fromKey(await unwrap(existing, keyWrapper));
  const key = randomBytes(32);
  const wrapped = await keyWrapper.wrap(key);
  try {
    await table.createEntity({ partitionKey: PARTITION, rowKey: ROW, wrappedKey: wrapped.wrapped, wrapKeyId: wrapped.keyId, wrapAlgorithm: wrapped.algorithm, createdAt: new Date().toISOString() });
    return ProjectionSeal.fromKey(key);
  } catch (error) {
    // Another process made the key first: use that one.
    if (statusOf(error) !== 409) throw error;
    const winner = await readRow(table);
    if (!winner) throw error;
    return ProjectionSeal.fromKey(await unwrap(winner, keyWrapper));
  } finally {
    key.fill(0);
  }
}

async function readRow(table: TableClient): Promise<MacKeyRow | undefined> {
  try {
    return await table.getEntity<MacKeyRow>(PARTITION, ROW);
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

async function unwrap(row: MacKeyRow, keyWrapper: KeyWrapper): Promise<Uint8Array> {
  if (typeof row.wrappedKey !== 'string' || typeof row.wrapKeyId !== 'string' || typeof row.wrapAlgorithm !== 'string')
    throw new Error('The projection MAC key row is malformed; it was not written by the platform');
  return keyWrapper.unwrap({ wrapped: row.wrappedKey, keyId: row.wrapKeyId, algorithm: row.wrapAlgorithm });
}
