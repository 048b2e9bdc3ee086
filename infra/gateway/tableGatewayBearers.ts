import type { TableClient } from '@azure/data-tables';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthenticationError } from '../../domain/ports/callerAuthenticator';
import type { GatewayBearers, GatewayBinding } from '../../domain/ports/gatewayBearers';

/**
 * Gateway bearers on Table storage (DESIGN.md §1 promise 8). The bearer is 32 random bytes, base64url; the
 * table holds only its SHA-256. A lookup uses the first half of the hash as the key (a selector) and then
 * compares the full hash in constant time, so how long a lookup takes says nothing about the rest of it.
 *
 * Rows:
 * - `b<hh>` / `<selector>`: one bearer: hash, workspaceId, runId, containerId, expiresAt, revoked.
 * - `run:<ws>:<runId>` / `<selector>`: the run's index, so teardown finds every bearer of the run.
 * - `run:<ws>:<runId>` / `~revoked`: the run's tombstone. Verify reads it too, so a bearer minted while
 *   teardown was marking rows (and so missed by it) is dead all the same, and mint refuses after it.
 */

export const BEARER_BYTES = 32;
const BEARER_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const TOMBSTONE = '~revoked';
const KEY_UNSAFE = /[/\\#?\u0000-\u001f\u007f-\u009f]/;

interface BearerRow {
  readonly partitionKey: string;
  readonly rowKey: string;
  readonly hash: string;
  readonly workspaceId: string;
  readonly runId: string;
  readonly containerId: string;
  readonly expiresAt: string;
  readonly revoked: boolean;
}

function sha256(bearer: string): Buffer {
  return createHash('sha256').update(bearer, 'utf8').digest();
}

function locate(hash: Buffer): { partitionKey: string; rowKey: string } {
  const hex = hash.toString('hex');
  return { partitionKey: `b${hex.slice(0, 2)}`, rowKey: hex.slice(0, 32) };
}

function runPartition(workspaceId: string, runId: string): string {
  if (KEY_UNSAFE.test(workspaceId) || KEY_UNSAFE.test(runId)) throw new Error('workspace or run id not usable as a table key');
  return `run:${workspaceId}:${runId}`;
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

async function pointRead<T extends object>(table: TableClient, partitionKey: string, rowKey: string): Promise<T | undefined> {
  try {
    return await table.getEntity<T>(partitionKey, rowKey);
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

const refused = (code: string, message: string): AuthenticationError => new AuthenticationError(code, message);

export class TableGatewayBearers implements GatewayBearers {
  constructor(private readonly table: TableClient) {}

  async mint(binding: GatewayBinding): Promise<string> {
    const partition = runPartition(binding.workspaceId, binding.runId);
    if (!Number.isFinite(Date.parse(binding.expiresAt))) throw new Error('expiresAt must be an ISO-8601 instant');
    if (await pointRead(this.table, partition, TOMBSTONE)) throw new Error(`run ${binding.runId} is torn down; no bearer can be minted for it`);
    for (let attempt = 0; attempt < 3; attempt++) {
      const bearer = randomBytes(BEARER_BYTES).toString('base64url');
      const hash = sha256(bearer);
      const key = locate(hash);
      const row = { ...key, hash: hash.toString('hex'), ...bindingFields(binding), revoked: false };
      // The index row first: a bearer that exists is always reachable by teardown.
      await this.table.upsertEntity({ partitionKey: partition, rowKey: key.rowKey, bearerPartition: key.partitionKey }, 'Replace');
      try {
        await this.table.createEntity(row);
        return bearer;
      } catch (error) {
        // A 128-bit selector collision is not expected to happen; if it does, draw again rather than overwrite.
        if (statusOf(error) !== 409) throw error;
      }
    }
    throw new Error('could not mint a unique gateway bearer');
  }

  async verify(bearer: string, now: Date): Promise<GatewayBinding> {
    if (!BEARER_PATTERN.test(bearer)) throw refused('GATEWAY.BEARER_INVALID', 'The gateway bearer is not valid');
    const hash = sha256(bearer);
    const key = locate(hash);
    const row = await pointRead<BearerRow>(this.table, key.partitionKey, key.rowKey);
    const stored = row ? Buffer.from(row.hash, 'hex') : Buffer.alloc(hash.length);
    const same = stored.length === hash.length && timingSafeEqual(stored, hash);
    if (!row || !same) throw refused('GATEWAY.BEARER_INVALID', 'The gateway bearer is not valid');
    if (row.revoked) throw refused('GATEWAY.BEARER_REVOKED', 'The gateway bearer was revoked: its run is torn down');
    const expiresAt = Date.parse(row.expiresAt);
    if (!(now.getTime() < expiresAt)) throw refused('GATEWAY.BEARER_EXPIRED', 'The gateway bearer has expired with its run');
    if (await pointRead(this.table, runPartition(row.workspaceId, row.runId), TOMBSTONE))
      throw refused('GATEWAY.BEARER_REVOKED', 'The gateway bearer was revoked: its run is torn down');
    return { workspaceId: row.workspaceId, runId: row.runId, containerId: row.containerId, expiresAt: row.expiresAt };
  }

  async revokeRun(workspaceId: string, runId: string): Promise<void> {
    const partition = runPartition(workspaceId, runId);
    await this.table.upsertEntity({ partitionKey: partition, rowKey: TOMBSTONE, revoked: true }, 'Replace');
    const index = this.table.listEntities<{ bearerPartition: string }>({
      queryOptions: { filter: `PartitionKey eq '${partition.replaceAll("'", "''")}'` },
    });
    for await (const entry of index) {
      if (entry.rowKey === TOMBSTONE || entry.rowKey === undefined) continue;
      try {
        await this.table.updateEntity({ partitionKey: entry.bearerPartition, rowKey: entry.rowKey, revoked: true }, 'Merge');
      } catch (error) {
        // Indexed but not yet created (a mint in flight): the tombstone already kills it.
        if (statusOf(error) !== 404) throw error;
      }
    }
  }
}

function bindingFields(binding: GatewayBinding): Omit<GatewayBinding, never> {
  return { workspaceId: binding.workspaceId, runId: binding.runId, containerId: binding.containerId, expiresAt: binding.expiresAt };
}
