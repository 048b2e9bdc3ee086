import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachingSecretResolver } from '../../../infra/vault/secretResolver';
import { aSecretValue, expectRefused } from '../../contracts/secretVault.contract';
import { aTableVault, type TableVaultSetup } from './tableVaultHarness';

let setup: TableVaultSetup;
beforeAll(async () => {
  setup = await aTableVault();
});

/** Stands in for the secret metadata projection: what the event log says the current version is. */
class Versions {
  private readonly versions = new Map<string, number>();
  set(ws: string, name: string, version: number | undefined): void {
    if (version === undefined) this.versions.delete(`${ws}/${name}`);
    else this.versions.set(`${ws}/${name}`, version);
  }
  readonly current = async (ws: string, name: string): Promise<number | undefined> => this.versions.get(`${ws}/${name}`);
}

function aResolver(versions: Versions, ttlMs = 60_000): CachingSecretResolver {
  return new CachingSecretResolver({ vault: setup.vault, clock: setup.clock, ttlMs, currentVersion: versions.current });
}

async function write(versions: Versions, ws: string, name: string, value: string, version: number): Promise<void> {
  await setup.vault.set(ws, name, value, { version, actor: 'user:alice' });
  versions.set(ws, name, version);
}

describe('CachingSecretResolver', () => {
  it('serves a repeat resolve from memory while the version is unchanged', async () => {
    const [versions, ws, value] = [new Versions(), `ws-${randomUUID()}`, aSecretValue()];
    await write(versions, ws, 'API_KEY', value, 1);
    const resolver = aResolver(versions);
    expect(await resolver.resolve(ws, 'API_KEY')).toEqual({ value, version: 1 });
    expect(await resolver.resolve(ws, 'API_KEY')).toEqual({ value, version: 1 });
    expect(resolver.stats()).toEqual({ vaultCalls: 1, cacheHits: 1, resolves: 2 });
  });

  it('after a rotation the next resolve returns the new value, on this and on a second warm instance', async () => {
    const [versions, ws] = [new Versions(), `ws-${randomUUID()}`];
    const [old, fresh] = [aSecretValue('old'), aSecretValue('new')];
    await write(versions, ws, 'TOKEN', old, 1);
    const [here, elsewhere] = [aResolver(versions), aResolver(versions)];
    expect((await here.resolve(ws, 'TOKEN')).value).toBe(old);
    expect((await elsewhere.resolve(ws, 'TOKEN')).value).toBe(old);

    // The write happens through neither resolver (another instance); only the projection's version moves.
    await write(versions, ws, 'TOKEN', fresh, 2);
    expect(await here.resolve(ws, 'TOKEN')).toEqual({ value: fresh, version: 2 });
    expect(await elsewhere.resolve(ws, 'TOKEN')).toEqual({ value: fresh, version: 2 });
    expect(elsewhere.stats().vaultCalls).toBe(2);
  });

  it('a deleted secret is not served from a warm cache', async () => {
    const [versions, ws] = [new Versions(), `ws-${randomUUID()}`];
    const value = aSecretValue();
    await write(versions, ws, 'GONE', value, 1);
    const resolver = aResolver(versions);
    await resolver.resolve(ws, 'GONE');
    await setup.vault.delete(ws, 'GONE');
    versions.set(ws, 'GONE', undefined);
    await expectRefused(() => resolver.resolve(ws, 'GONE'), 'VAULT.SECRET_NOT_FOUND', value);
  });

  it('goes back to the vault once the TTL has passed, and never caches with a TTL of 0', async () => {
    const [versions, ws] = [new Versions(), `ws-${randomUUID()}`];
    await write(versions, ws, 'TTL', aSecretValue(), 1);
    const resolver = aResolver(versions, 5_000);
    await resolver.resolve(ws, 'TTL');
    setup.clock.advance(5_001);
    await resolver.resolve(ws, 'TTL');
    expect(resolver.stats().vaultCalls).toBe(2);

    const uncached = aResolver(versions, 0);
    await uncached.resolve(ws, 'TTL');
    await uncached.resolve(ws, 'TTL');
    expect(uncached.stats()).toMatchObject({ vaultCalls: 2, cacheHits: 0 });
  });

  it('does not cache a value whose version disagrees with the projection (a write in progress)', async () => {
    const [versions, ws] = [new Versions(), `ws-${randomUUID()}`];
    await write(versions, ws, 'RACE', aSecretValue(), 1);
    versions.set(ws, 'RACE', 2); // the event is appended; the vault write has not landed yet
    const resolver = aResolver(versions);
    expect((await resolver.resolve(ws, 'RACE')).version).toBe(1);
    expect((await resolver.resolve(ws, 'RACE')).version).toBe(1);
    expect(resolver.stats()).toMatchObject({ vaultCalls: 2, cacheHits: 0 });
  });

  it('shares one vault call between concurrent resolves, and invalidate drops the cache', async () => {
    const [versions, ws] = [new Versions(), `ws-${randomUUID()}`];
    await write(versions, ws, 'HOT', aSecretValue(), 1);
    const resolver = aResolver(versions);
    await Promise.all(Array.from({ length: 10 }, () => resolver.resolve(ws, 'HOT')));
    expect(resolver.stats().vaultCalls).toBe(1);
    resolver.invalidate(ws);
    await resolver.resolve(ws, 'HOT');
    expect(resolver.stats().vaultCalls).toBe(2);
  });
});
