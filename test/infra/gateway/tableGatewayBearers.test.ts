import { TableClient } from '@azure/data-tables';
import { createHash, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError } from '../../../domain/ports/callerAuthenticator';
import type { GatewayBinding } from '../../../domain/ports/gatewayBearers';
import { TableGatewayBearers } from '../../../infra/gateway/tableGatewayBearers';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';

let table: TableClient;
let bearers: TableGatewayBearers;
const now = new Date('2026-01-01T10:00:00.000Z');

function aBinding(overrides: Partial<GatewayBinding> = {}): GatewayBinding {
  return {
    workspaceId: 'ws-1',
    runId: `run-${randomBytes(4).toString('hex')}`,
    containerId: `sandbox-${randomBytes(4).toString('hex')}`,
    expiresAt: '2026-01-01T10:10:00.000Z',
    ...overrides,
  };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AuthenticationError);
    return (error as AuthenticationError).code;
  }
  throw new Error('expected the bearer to be refused');
}

async function allRows(): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = [];
  for await (const row of table.listEntities<Record<string, unknown>>()) rows.push(row);
  return rows;
}

beforeAll(async () => {
  table = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('gatewaybearers'), { allowInsecureConnection: true });
  await table.createTable();
  bearers = new TableGatewayBearers(table);
});

describe('TableGatewayBearers', () => {
  it('mints 32 random bytes as base64url and verifies to its binding', async () => {
    const binding = aBinding();
    const bearer = await bearers.mint(binding);
    expect(bearer).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(bearer, 'base64url')).toHaveLength(32);
    expect(await bearers.verify(bearer, now)).toEqual(binding);
    expect(await bearers.mint(binding)).not.toBe(bearer);
  });

  it('refuses forged bearers: random, malformed, and one differing in the last character', async () => {
    const bearer = await bearers.mint(aBinding());
    expect(await refusal(bearers.verify(randomBytes(32).toString('base64url'), now))).toBe('GATEWAY.BEARER_INVALID');
    expect(await refusal(bearers.verify('', now))).toBe('GATEWAY.BEARER_INVALID');
    expect(await refusal(bearers.verify(`${bearer}=`, now))).toBe('GATEWAY.BEARER_INVALID');
    const last = bearer.at(-1) === 'A' ? 'B' : 'A';
    expect(await refusal(bearers.verify(bearer.slice(0, -1) + last, now))).toBe('GATEWAY.BEARER_INVALID');
    // The stored hash itself, presented as a bearer, is not a bearer.
    const hash = createHash('sha256').update(bearer).digest('base64url');
    expect(await refusal(bearers.verify(hash, now))).toBe('GATEWAY.BEARER_INVALID');
  });

  it('expires absolutely at the run deadline', async () => {
    const binding = aBinding({ expiresAt: '2026-01-01T10:05:00.000Z' });
    const bearer = await bearers.mint(binding);
    expect((await bearers.verify(bearer, new Date('2026-01-01T10:04:59.999Z'))).runId).toBe(binding.runId);
    expect(await refusal(bearers.verify(bearer, new Date('2026-01-01T10:05:00.000Z')))).toBe('GATEWAY.BEARER_EXPIRED');
    expect(await refusal(bearers.verify(bearer, new Date('2027-01-01T00:00:00.000Z')))).toBe('GATEWAY.BEARER_EXPIRED');
  });

  it('revokeRun kills every bearer of that run and no other, idempotently, and refuses new mints for it', async () => {
    const run = aBinding();
    const sameRunOtherContainer = { ...run, containerId: 'sandbox-second' };
    const otherRun = aBinding();
    const [a, b, c] = await Promise.all([bearers.mint(run), bearers.mint(sameRunOtherContainer), bearers.mint(otherRun)]);
    await bearers.revokeRun(run.workspaceId, run.runId);
    await bearers.revokeRun(run.workspaceId, run.runId);
    expect(await refusal(bearers.verify(a ?? '', now))).toBe('GATEWAY.BEARER_REVOKED');
    expect(await refusal(bearers.verify(b ?? '', now))).toBe('GATEWAY.BEARER_REVOKED');
    expect((await bearers.verify(c ?? '', now)).runId).toBe(otherRun.runId);
    await expect(bearers.mint(run)).rejects.toThrow(/torn down/);
  });

  it('a bearer whose row missed the revocation sweep is still dead (the run tombstone)', async () => {
    const run = aBinding();
    const bearer = await bearers.mint(run);
    await bearers.revokeRun(run.workspaceId, run.runId);
    // Undo the per-bearer mark, as if the mint had landed after teardown listed the index.
    for (const row of await allRows())
      if (row.runId === run.runId) await table.updateEntity({ partitionKey: String(row.partitionKey), rowKey: String(row.rowKey), revoked: false }, 'Merge');
    expect(await refusal(bearers.verify(bearer, now))).toBe('GATEWAY.BEARER_REVOKED');
  });

  it("another run's bearer verifies to that run only: the binding, not the caller, names the run", async () => {
    const mine = aBinding({ workspaceId: 'ws-a' });
    const theirs = aBinding({ workspaceId: 'ws-b' });
    const theirBearer = await bearers.mint(theirs);
    await bearers.mint(mine);
    const binding = await bearers.verify(theirBearer, now);
    expect(binding).toEqual(theirs);
    expect(binding.runId).not.toBe(mine.runId);
  });

  it('the table never holds a bearer in clear, in any encoding', async () => {
    const minted = await Promise.all([1, 2, 3].map(() => bearers.mint(aBinding())));
    const stored = JSON.stringify(await allRows());
    for (const bearer of minted) {
      const raw = Buffer.from(bearer, 'base64url');
      for (const form of [bearer, raw.toString('hex'), raw.toString('base64'), raw.toString('base64').replace(/=+$/, '')])
        expect(stored).not.toContain(form);
      expect(stored).toContain(createHash('sha256').update(bearer).digest('hex'));
    }
  });
});
