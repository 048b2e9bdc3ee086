import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logVaultDirectory } from '../../../domain/services/vaultDirectory';
import { onWorkspace, readWorkspace } from '../../../domain/services/workspaceStream';
import type { VaultDirectory } from '../../../domain/ports/vaultDirectory';
import { systemRandom } from '../../../infra/system/systemRandom';
import { KeyVaultSecretVault } from '../../../infra/vault/keyVaultSecretVault';
import { InMemoryEventStore } from '../../support/inMemoryEventStore';
import { workspaceStreamId } from '../../../domain/streams';
import { aSecretValue, expectNoTrace, expectRefused, secretVaultContract } from '../../contracts/secretVault.contract';
import { FakeKeyVault } from '../../support/fakeKeyVault';
import { FakeTokenCredential } from '../../support/fakeKeyVaultTls';
import { ManualClock } from './manualClock';
import { problemFromError } from '../../../functions/http/problem';

const clock = new ManualClock();
let fake: FakeKeyVault;
let credential: FakeTokenCredential;
let vault: KeyVaultSecretVault;
const store = new InMemoryEventStore();
const log = { store, clock, random: systemRandom };
const fromLog = logVaultDirectory(log);
/** A workspace the contract names on the fly is created in the log first, with the default retention. */
async function created(ws: string, retentionDays?: number): Promise<void> {
  if ((await readWorkspace(store, ws)).status !== 'None') return;
  await onWorkspace(log, ws, { type: 'CreateWorkspace', workspaceId: ws, name: ws, owner: 'alice', ...(retentionDays ? { retentionDays } : {}) }, { actor: 'alice', correlationId: 't' });
}
const directory: VaultDirectory = {
  read: (ws) => fromLog.read(ws),
  claim: async (ws, proposed) => (await created(ws), fromLog.claim(ws, proposed)),
  replace: (ws, taken, proposed) => fromLog.replace(ws, taken, proposed),
};
/** The vault name a workspace's first `set` will use, recorded ahead of it (so a test can arrange the fake for it). */
async function recordedAhead(v: KeyVaultSecretVault, ws: string): Promise<string> {
  await created(ws);
  await fromLog.claim(ws, { vault: `dp-${randomUUID().replace(/-/g, '').slice(0, 21)}` });
  return String(await v.vaultName(ws));
}

function aKeyVaultVault(extra: Partial<ConstructorParameters<typeof KeyVaultSecretVault>[0]> = {}): KeyVaultSecretVault {
  return new KeyVaultSecretVault({
    ...extra,
    credential,
    subscriptionId: '00000000-0000-0000-0000-000000000001',
    tenantId: '00000000-0000-0000-0000-0000000000aa',
    resourceGroup: 'rg-workspace-vaults',
    location: 'westeurope',
    clock,
    directory,
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
  it('provisions one vault per workspace on the first set: soft delete, purge protection, RBAC, a random name recorded in VaultProvisioned', async () => {
    const ws = `ws-${randomUUID()}`;
    await created(ws);
    expect(await vault.vaultName(ws)).toBeUndefined();
    expect(await vault.status(ws)).toEqual({ state: 'absent' });
    await vault.set(ws, 'FIRST', aSecretValue(), { version: 1, ...by });
    const name = String(await vault.vaultName(ws));
    expect(name).toMatch(/^dp-[0-9a-f]{21}$/);
    // Read back from the log: another instance finds the same vault; the name says nothing of the workspace id.
    const recorded = (await store.readStream(ws, workspaceStreamId(ws))).events.filter((e) => e.type === 'VaultProvisioned');
    expect(recorded).toEqual([expect.objectContaining({ data: { vault: name, resourceGroup: 'rg-workspace-vaults' } })]);
    expect(await aKeyVaultVault().vaultName(ws)).toBe(name);
    expect(name).not.toContain(ws.slice(3, 11));
    expect(fake.vaults.get(name)).toMatchObject({
      resourceGroup: 'rg-workspace-vaults',
      state: 'active',
      properties: { enableSoftDelete: true, enablePurgeProtection: true, enableRbacAuthorization: true, softDeleteRetentionInDays: 90 },
    });
    await vault.set(ws, 'SECOND', aSecretValue(), { version: 1, ...by });
    expect(fake.requests.filter((r) => r.startsWith(`PUT management.azure.test`) && r.endsWith(`/vaults/${name}`))).toHaveLength(1);
  });

  it('creates the vault with the retention the workspace chose when it was created; another workspace gets the default', async () => {
    const chosen = `ws-${randomUUID()}`;
    await created(chosen, 14);
    await vault.set(chosen, 'K', aSecretValue(), { version: 1, ...by });
    expect(fake.vaults.get(String(await vault.vaultName(chosen)))?.properties).toMatchObject({ softDeleteRetentionInDays: 14 });
    const other = `ws-${randomUUID()}`;
    await vault.set(other, 'K', aSecretValue(), { version: 1, ...by });
    expect(fake.vaults.get(String(await vault.vaultName(other)))?.properties).toMatchObject({ softDeleteRetentionInDays: 90 });
  });

  it('two instances provisioning one workspace at once agree on the first name the log took: one vault', async () => {
    const ws = `ws-${randomUUID()}`;
    await created(ws);
    await Promise.all([vault.set(ws, 'A', aSecretValue(), { version: 1, ...by }), aKeyVaultVault().set(ws, 'B', aSecretValue(), { version: 1, ...by })]);
    const name = String(await vault.vaultName(ws));
    expect((await store.readStream(ws, workspaceStreamId(ws))).events.filter((e) => e.type === 'VaultProvisioned')).toHaveLength(1);
    expect([...fake.vaults.values()].filter((v) => v.tags.workspaceId === ws)).toHaveLength(1);
    expect((await vault.list(ws)).map((s) => s.name)).toEqual(['A', 'B']);
    expect(name).toMatch(/^dp-/);
  });

  it('stores names with _ as - and the domain version in tags; authenticates through the bearer challenge', async () => {
    const ws = `ws-${randomUUID()}`;
    await vault.set(ws, 'MY_API_KEY', aSecretValue(), { version: 7, ...by });
    const stored = fake.vaults.get(String(await vault.vaultName(ws)))?.secrets.get('my-api-key');
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
    const host = `${String(await vault.vaultName(ws))}.vault.azure.test`;
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
    const name = await recordedAhead(vault, ws);
    fake.forbidden.set(name, 3);
    const value = aSecretValue();
    const before = clock.now().getTime();
    await vault.set(ws, 'FRESH_VAULT', value, { version: 1, ...by });
    expect(clock.now().getTime() - before).toBe(2_000 + 4_000 + 8_000);
    expect(fake.forbidden.get(name)).toBe(0);
    expect(await vault.resolve(ws, 'FRESH_VAULT')).toEqual({ value, version: 1 });

    const stubborn = aKeyVaultVault({ forbiddenRetry: { attempts: 2, firstDelayMs: 10, maxDelayMs: 10 } });
    const other = `ws-${randomUUID()}`;
    const otherName = await recordedAhead(stubborn, other);
    fake.forbidden.set(otherName, 100);
    const refused = await stubborn.set(other, 'NEVER', aSecretValue(), { version: 1, ...by }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'VAULT.UNAVAILABLE', message: expect.stringContaining('status 403') });
    expect(fake.forbidden.get(otherName)).toBe(100 - 3);
    fake.forbidden.delete(otherName);
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
    const service = fake.vaults.get(String(await vault.vaultName(ws)));
    expect(service?.state).toBe('deleted');
    await expectRefused(() => vault.purge(ws, early), 'VAULT.UNAVAILABLE');
    expect(fake.vaults.get(String(await vault.vaultName(ws)))?.state).toBe('deleted');
  });
});

describe('KeyVaultSecretVault vault resource groups (sharding)', () => {
  /** Group names no other test uses: the fake is shared, and the count is ARM's, per group. */
  const freshGroups = (n: number): string[] => Array.from({ length: n }, (_, i) => `rg-shard-${randomUUID().slice(0, 8)}-${i}`);
  const events = async (ws: string) => (await store.readStream(ws, workspaceStreamId(ws))).events.filter((e) => e.type === 'VaultProvisioned').map((e) => e.data);

  it('with N vaults per group, vault N+1 goes to the next group, recorded with its name; a soft-deleted vault frees its place', async () => {
    const groups = freshGroups(2);
    const sharded = aKeyVaultVault({ resourceGroups: groups, vaultsPerGroup: 2 });
    const placedIn = async (ws: string): Promise<string | undefined> => {
      await sharded.set(ws, 'K', aSecretValue(), { version: 1, ...by });
      const at = await sharded.vaultLocation(ws);
      expect(fake.vaults.get(String(at?.vault))?.resourceGroup).toBe(at?.resourceGroup);
      expect(await events(ws)).toEqual([{ vault: at?.vault, resourceGroup: at?.resourceGroup }]);
      return at?.resourceGroup;
    };
    const ws = Array.from({ length: 5 }, () => `ws-${randomUUID()}`);
    expect(await placedIn(ws[0] as string)).toBe(groups[0]);
    expect(await placedIn(ws[1] as string)).toBe(groups[0]);
    expect(await placedIn(ws[2] as string)).toBe(groups[1]);
    // Another instance finds each vault in its own group from the log alone, and serves it.
    expect((await aKeyVaultVault({ resourceGroups: groups }).list(ws[2] as string)).map((s) => s.name)).toEqual(['K']);
    // Counted by ARM: a soft-deleted vault is no longer in its group, so the first group has room again.
    await sharded.softDelete(ws[0] as string, { retentionDays: 90, now: clock.now() });
    expect(await placedIn(ws[3] as string)).toBe(groups[0]);
    expect(await placedIn(ws[4] as string)).toBe(groups[1]);
    // The soft-deleted one recovers into its recorded group.
    await sharded.recover(ws[0] as string);
    expect(fake.vaults.get(String((await sharded.vaultLocation(ws[0] as string))?.vault))).toMatchObject({ resourceGroup: groups[0], state: 'active' });
    // Paged: the counts crossed the fake's 2-item pages.
    expect(fake.requests.some((r) => r.startsWith(`GET management.azure.test /subscriptions/`) && r.endsWith(`/resourceGroups/${groups[0]}/providers/Microsoft.KeyVault/vaults`))).toBe(true);
  });

  it('a full set of groups refuses a new vault with VAULT.NO_CAPACITY (a 503 problem, no stack), records nothing and creates nothing', async () => {
    const groups = freshGroups(2);
    const sharded = aKeyVaultVault({ resourceGroups: groups, vaultsPerGroup: 1 });
    for (const _ of groups) await sharded.set(`ws-${randomUUID()}`, 'K', aSecretValue(), { version: 1, ...by });
    const ws = `ws-${randomUUID()}`;
    const value = aSecretValue();
    const vaultsBefore = fake.vaults.size;
    const refused = await sharded.set(ws, 'K', value, { version: 1, ...by }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'VAULT.NO_CAPACITY', kind: 'unavailable' });
    expectNoTrace(String((refused as Error).message), value);
    const { response, expected } = problemFromError(refused);
    expect([response.status, expected]).toEqual([503, true]);
    const body = String(response.body);
    expect(body).toContain('VAULT.NO_CAPACITY');
    expect(body).not.toMatch(/\bat .*\.ts:\d+|keyVaultSecretVault/);
    expectNoTrace(body, value);
    expect(await events(ws)).toEqual([]);
    expect(fake.vaults.size).toBe(vaultsBefore);
    // Reads of a workspace without a vault stay quiet: nothing is provisioned, nothing is refused.
    expect(await sharded.list(ws)).toEqual([]);
  });

  it('a record older than sharding (no group) means the default group: replay stays compatible', async () => {
    const ws = `ws-${randomUUID()}`;
    const name = await recordedAhead(vault, ws); // VaultProvisioned { vault } without a group, as before sharding
    expect(await events(ws)).toEqual([{ vault: name }]);
    const value = aSecretValue();
    await vault.set(ws, 'OLD', value, { version: 1, ...by });
    expect(fake.vaults.get(name)?.resourceGroup).toBe('rg-workspace-vaults');
    const sharded = aKeyVaultVault({ resourceGroups: [...freshGroups(1), 'rg-workspace-vaults'], vaultsPerGroup: 1 });
    expect(await sharded.vaultLocation(ws)).toEqual({ vault: name, resourceGroup: 'rg-workspace-vaults' });
    expect(await sharded.resolve(ws, 'OLD')).toEqual({ value, version: 1 });
    expect(await sharded.status(ws)).toEqual({ state: 'active' });
  });
});

describe('KeyVaultSecretVault: a vault name taken elsewhere in Azure (409 VaultAlreadyExists)', () => {
  it('records a fresh random name in place of the taken one, creates the vault under it, and leaves the stranger alone', async () => {
    const ws = `ws-${randomUUID()}`;
    const taken = await recordedAhead(vault, ws);
    fake.takenElsewhere.add(taken);
    const value = aSecretValue();
    await vault.set(ws, 'K', value, { version: 1, ...by });
    const fresh = String(await vault.vaultName(ws));
    expect(fresh).not.toBe(taken);
    expect(fresh).toMatch(/^dp-[0-9a-f]{21}$/);
    const recorded = (await store.readStream(ws, workspaceStreamId(ws))).events.filter((e) => e.type === 'VaultProvisioned').map((e) => e.data);
    expect(recorded).toEqual([{ vault: taken }, { vault: fresh, resourceGroup: 'rg-workspace-vaults', replaces: taken }]);
    expect(fake.vaults.get(taken)).toBeUndefined();
    expect(fake.vaults.get(fresh)?.tags.workspaceId).toBe(ws);
    expect(await aKeyVaultVault().resolve(ws, 'K')).toEqual({ value, version: 1 });
    expect(fake.requests.filter((r) => r.startsWith('PUT management.azure.test') && r.endsWith(`/vaults/${taken}`))).toHaveLength(1);
  });

  it('two instances refused the same name at once agree on one replacement: one vault, one replacement record', async () => {
    const ws = `ws-${randomUUID()}`;
    const taken = await recordedAhead(vault, ws);
    fake.takenElsewhere.add(taken);
    await Promise.all([vault.set(ws, 'A', aSecretValue(), { version: 1, ...by }), aKeyVaultVault().set(ws, 'B', aSecretValue(), { version: 1, ...by })]);
    const recorded = (await store.readStream(ws, workspaceStreamId(ws))).events.filter((e) => e.type === 'VaultProvisioned');
    expect(recorded).toHaveLength(2);
    expect([...fake.vaults.values()].filter((v) => v.tags.workspaceId === ws)).toHaveLength(1);
    expect((await vault.list(ws)).map((s) => s.name)).toEqual(['A', 'B']);
  });

  it('gives up after a bounded number of names with VAULT.NAME_UNAVAILABLE (503), no value in the error', async () => {
    const unlucky = aKeyVaultVault({ namePrefix: 'taken', nameAttempts: 3 });
    fake.takenElsewherePattern = /^taken-/;
    const ws = `ws-${randomUUID()}`;
    const value = aSecretValue();
    try {
      const refused = await unlucky.set(ws, 'K', value, { version: 1, ...by }).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'VAULT.NAME_UNAVAILABLE', kind: 'unavailable' });
      expectNoTrace(String((refused as Error).message), value);
      expect(problemFromError(refused).response.status).toBe(503);
    } finally {
      fake.takenElsewherePattern = undefined;
    }
    const recorded = (await store.readStream(ws, workspaceStreamId(ws))).events.filter((e) => e.type === 'VaultProvisioned');
    expect(recorded).toHaveLength(3);
    expect([...fake.vaults.values()].filter((v) => v.tags.workspaceId === ws)).toHaveLength(0);
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
