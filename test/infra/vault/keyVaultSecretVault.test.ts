import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyVaultSecretVault } from '../../../infra/vault/keyVaultSecretVault';
import { aSecretValue, expectNoTrace, expectRefused, secretVaultContract } from '../../contracts/secretVault.contract';
import { FakeKeyVault } from '../../support/fakeKeyVault';
import { FakeTokenCredential } from '../../support/fakeKeyVaultTls';
import { ManualClock } from './manualClock';

const clock = new ManualClock();
let fake: FakeKeyVault;
let credential: FakeTokenCredential;
let vault: KeyVaultSecretVault;

function aKeyVaultVault(extra: Partial<ConstructorParameters<typeof KeyVaultSecretVault>[0]> = {}): KeyVaultSecretVault {
  return new KeyVaultSecretVault({
    ...extra,
    credential,
    subscriptionId: '00000000-0000-0000-0000-000000000001',
    tenantId: '00000000-0000-0000-0000-0000000000aa',
    resourceGroup: 'rg-workspace-vaults',
    location: 'westeurope',
    clock,
    armEndpoint: fake.armEndpoint,
    additionalPolicies: [{ policy: fake.policy, position: 'perCall' }],
  });
}

beforeAll(async () => {
  fake = await FakeKeyVault.start({ now: () => clock.now(), pageSize: 2 });
  credential = new FakeTokenCredential();
  vault = aKeyVaultVault();
});
afterAll(async () => {
  await fake.close();
});

secretVaultContract('KeyVaultSecretVault', () => ({ vault, clock, newWorkspace: () => `ws-${randomUUID()}` }));

const by = { actor: 'user:alice' };

describe('KeyVaultSecretVault against the fake Key Vault', () => {
  it('provisions one vault per workspace on the first set: soft delete, purge protection, RBAC, a derived name', async () => {
    const ws = `ws-${randomUUID()}`;
    expect(fake.vaults.has(vault.vaultName(ws))).toBe(false);
    await vault.set(ws, 'FIRST', aSecretValue(), { version: 1, ...by });
    const name = vault.vaultName(ws);
    expect(name).toMatch(/^dp-[0-9a-f]{21}$/);
    expect(aKeyVaultVault().vaultName(ws)).toBe(name);
    expect(fake.vaults.get(name)).toMatchObject({
      resourceGroup: 'rg-workspace-vaults',
      state: 'active',
      properties: { enableSoftDelete: true, enablePurgeProtection: true, enableRbacAuthorization: true, softDeleteRetentionInDays: 90 },
    });
    await vault.set(ws, 'SECOND', aSecretValue(), { version: 1, ...by });
    expect(fake.requests.filter((r) => r.startsWith(`PUT management.azure.test`) && r.endsWith(`/vaults/${name}`))).toHaveLength(1);
  });

  it('stores names with _ as - and the domain version in tags; authenticates through the bearer challenge', async () => {
    const ws = `ws-${randomUUID()}`;
    await vault.set(ws, 'MY_API_KEY', aSecretValue(), { version: 7, ...by });
    const stored = fake.vaults.get(vault.vaultName(ws))?.secrets.get('my-api-key');
    expect(stored?.name).toBe('MY-API-KEY');
    expect(stored?.versions[0]?.tags).toMatchObject({ version: '7', updatedBy: 'user:alice' });
    expect(credential.requestedScopes).toContain('https://vault.azure.test/.default');
  });

  it('setting a soft-deleted name recovers it first instead of failing with 409', async () => {
    const ws = `ws-${randomUUID()}`;
    const [first, second] = [aSecretValue('first'), aSecretValue('second')];
    await vault.set(ws, 'REUSED', first, { version: 1, ...by });
    await vault.delete(ws, 'REUSED');
    const before = fake.requests.length;
    await vault.set(ws, 'REUSED', second, { version: 2, ...by });
    const host = `${vault.vaultName(ws)}.vault.azure.test`;
    const after = fake.requests.slice(before).filter((r) => r.includes(host) && !r.startsWith('GET'));
    expect(after).toEqual([`PUT ${host} /secrets/REUSED`, `POST ${host} /deletedsecrets/REUSED/recover`, `PUT ${host} /secrets/REUSED`]);
    expect(await vault.resolve(ws, 'REUSED')).toEqual({ value: second, version: 2 });
  });

  it('lists across pages (nextLink) and keeps many allowed hosts intact in chunked tags', async () => {
    const ws = `ws-${randomUUID()}`;
    const hosts = Array.from({ length: 30 }, (_, i) => `host-${i}.internal.example.com`);
    const names = ['A_1', 'A_2', 'A_3', 'A_4', 'A_5'];
    for (const name of names) await vault.set(ws, name, aSecretValue(), { version: 1, allowedHosts: hosts, ...by });
    const listed = await vault.list(ws);
    expect(listed.map((s) => s.name)).toEqual(names);
    expect(listed[0]?.allowedHosts).toEqual(hosts);
  });

  it('a 403 from a vault whose role assignment is still propagating is retried with backoff; one that persists is refused', async () => {
    const ws = `ws-${randomUUID()}`;
    fake.forbidden.set(vault.vaultName(ws), 3);
    const value = aSecretValue();
    const before = clock.now().getTime();
    await vault.set(ws, 'FRESH_VAULT', value, { version: 1, ...by });
    expect(clock.now().getTime() - before).toBe(2_000 + 4_000 + 8_000);
    expect(fake.forbidden.get(vault.vaultName(ws))).toBe(0);
    expect(await vault.resolve(ws, 'FRESH_VAULT')).toEqual({ value, version: 1 });

    const stubborn = aKeyVaultVault({ forbiddenRetry: { attempts: 2, firstDelayMs: 10, maxDelayMs: 10 } });
    const other = `ws-${randomUUID()}`;
    fake.forbidden.set(stubborn.vaultName(other), 100);
    const refused = await stubborn.set(other, 'NEVER', aSecretValue(), { version: 1, ...by }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'VAULT.UNAVAILABLE', message: expect.stringContaining('status 403') });
    expect(fake.forbidden.get(stubborn.vaultName(other))).toBe(100 - 3);
    fake.forbidden.delete(stubborn.vaultName(other));
  });

  it('a vault soft-deleted by another instance answers VAULT.DELETED here, not a network error', async () => {
    const ws = `ws-${randomUUID()}`;
    const value = aSecretValue();
    await vault.set(ws, 'SHARED', value, { version: 1, ...by });
    await vault.resolve(ws, 'SHARED'); // this instance now has the vault's URI cached
    await aKeyVaultVault().softDelete(ws, { retentionDays: 90, now: clock.now() });
    await expectRefused(() => vault.resolve(ws, 'SHARED'), 'VAULT.DELETED', value);
    await expectRefused(() => vault.list(ws), 'VAULT.DELETED', value);
  });

  it('the fake keeps purge protection too: an early ARM purge is refused by the service itself', async () => {
    const ws = `ws-${randomUUID()}`;
    await vault.set(ws, 'P', aSecretValue(), { version: 1, ...by });
    await vault.softDelete(ws, { retentionDays: 90, now: clock.now() });
    const early = new Date(clock.now().getTime() + 100 * 86400_000); // our own check passes; the service's must not
    const service = fake.vaults.get(vault.vaultName(ws));
    expect(service?.state).toBe('deleted');
    await expectRefused(() => vault.purge(ws, early), 'VAULT.UNAVAILABLE');
    expect(fake.vaults.get(vault.vaultName(ws))?.state).toBe('deleted');
  });
});

describe('KeyVaultSecretVault logs', () => {
  it('the Azure SDK logs at verbose level never contain a value, raw or base64', async () => {
    const { AzureLogger, getLogLevel, setLogLevel } = await import('@azure/logger');
    const lines: string[] = [];
    const [originalLog, originalLevel] = [AzureLogger.log, getLogLevel()];
    AzureLogger.log = (...args: unknown[]) => lines.push(args.map(String).join(' '));
    setLogLevel('verbose');
    const ws = `ws-${randomUUID()}`;
    const [first, second] = [aSecretValue('logged'), aSecretValue('rotated')];
    try {
      await vault.set(ws, 'LOGGED', first, { version: 1, ...by });
      await vault.set(ws, 'LOGGED', second, { version: 2, ...by });
      await vault.resolve(ws, 'LOGGED');
      await vault.previousValues(ws, new Date(0));
      await expectRefused(() => vault.set(ws, 'LOGGED', first, { version: 1, ...by }), 'VAULT.STALE_VERSION', first);
    } finally {
      setLogLevel(originalLevel);
      AzureLogger.log = originalLog;
    }
    expect(lines.join('\n')).toContain('/secrets/LOGGED');
    for (const value of [first, second]) expectNoTrace(lines.join('\n'), value);
  });
});
