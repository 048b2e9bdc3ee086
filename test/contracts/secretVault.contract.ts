import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isDomainError } from '../../domain/errors';
import type { SecretVault } from '../../domain/ports/secretVault';
import { DAY_MS, type ManualClock } from '../infra/vault/manualClock';

export interface SecretVaultHarness {
  readonly vault: SecretVault;
  /** Drives the adapter and whatever service sits behind it. */
  readonly clock: ManualClock;
  /** A fresh workspace id no other test uses. */
  newWorkspace(): string;
}

/** A value no test shares, long enough for the redactor, recognisable in a scan. */
export function aSecretValue(label = 'v'): string {
  return `${label}-${randomBytes(12).toString('hex')}`;
}

/** Runs `call`, expects a DomainError with `code`, and checks that nothing about it mentions `value`. */
export async function expectRefused(call: () => Promise<unknown>, code: string, value?: string): Promise<void> {
  let caught: unknown;
  try {
    await call();
  } catch (error) {
    caught = error;
  }
  expect(isDomainError(caught), `expected a DomainError ${code}, got ${String(caught)}`).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
  if (value !== undefined) expectNoTrace(caught, value);
}

/** The value appears nowhere in the thing, raw or base64 (JSON of own properties, message and stack). */
export function expectNoTrace(thing: unknown, value: string): void {
  const error = thing as { message?: string; stack?: string } | undefined;
  const text = `${JSON.stringify(thing, Object.getOwnPropertyNames(thing ?? {}))} ${error?.message ?? ''} ${error?.stack ?? ''} ${JSON.stringify(thing)}`;
  for (const form of [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('base64url')])
    expect(text.includes(form), 'a secret value leaked').toBe(false);
}

const by = { actor: 'user:alice' };

/** One behaviour, every adapter: DESIGN.md §1 promises 1, 2, 6 and 10 as the vault sees them. */
export function secretVaultContract(adapter: string, harness: () => SecretVaultHarness): void {
  describe(`SecretVault contract: ${adapter}`, () => {
    it('an unprovisioned vault lists nothing, resolves nothing and reports absent', async () => {
      const { vault, newWorkspace } = harness();
      const ws = newWorkspace();
      expect(await vault.list(ws)).toEqual([]);
      expect(await vault.status(ws)).toEqual({ state: 'absent' });
      await expectRefused(() => vault.resolve(ws, 'API_KEY'), 'VAULT.SECRET_NOT_FOUND');
      expect(await vault.previousValues(ws, new Date(0))).toEqual([]);
    });

    it('set provisions the vault; resolve returns the value and version; list shows metadata only', async () => {
      const { vault, clock, newWorkspace } = harness();
      const ws = newWorkspace();
      const value = aSecretValue('first');
      const written = await vault.set(ws, 'API_KEY', value, { version: 1, allowedHosts: ['api.example.com'], ...by });
      expect(written).toMatchObject({ name: 'API_KEY', version: 1, updatedBy: 'user:alice', updatedAt: clock.now().toISOString() });
      expect(await vault.status(ws)).toEqual({ state: 'active' });
      expect(await vault.resolve(ws, 'API_KEY')).toEqual({ value, version: 1 });
      const listed = await vault.list(ws);
      expect(listed).toEqual([
        { name: 'API_KEY', version: 1, updatedAt: clock.now().toISOString(), updatedBy: 'user:alice', allowedHosts: ['api.example.com'] },
      ]);
      expectNoTrace(listed, value);
    });

    it('names with underscores, multi-line and non-ASCII values round-trip exactly', async () => {
      const { vault, newWorkspace } = harness();
      const ws = newWorkspace();
      const value = `-----BEGIN KEY-----\nline ${aSecretValue()}\nnäïve ✓ 🦜\n-----END KEY-----\n`;
      await vault.set(ws, '_MY__KEY_2', value, { version: 3, ...by });
      expect(await vault.resolve(ws, '_MY__KEY_2')).toEqual({ value, version: 3 });
      expect((await vault.list(ws)).map((s) => s.name)).toEqual(['_MY__KEY_2']);
    });

    it('rotation is one write: the next resolve returns the new value; the old one is a previous value', async () => {
      const { vault, clock, newWorkspace } = harness();
      const ws = newWorkspace();
      const [old, fresh] = [aSecretValue('old'), aSecretValue('new')];
      await vault.set(ws, 'TOKEN', old, { version: 1, ...by });
      clock.advance(60_000);
      const rotatedAt = clock.now();
      await vault.set(ws, 'TOKEN', fresh, { version: 2, actor: 'user:bob' });
      expect(await vault.resolve(ws, 'TOKEN')).toEqual({ value: fresh, version: 2 });
      expect(await vault.list(ws)).toMatchObject([{ name: 'TOKEN', version: 2, updatedBy: 'user:bob' }]);
      const previous = await vault.previousValues(ws, new Date(rotatedAt.getTime() - 1000));
      expect(previous).toEqual([{ name: 'TOKEN', version: 1, value: old, supersededAt: rotatedAt.toISOString() }]);
      // Outside the rotation window it is no longer offered.
      expect(await vault.previousValues(ws, new Date(rotatedAt.getTime() + 1000))).toEqual([]);
    });

    it('a late write with an older version does not overwrite a newer one', async () => {
      const { vault, newWorkspace } = harness();
      const ws = newWorkspace();
      const [newer, older] = [aSecretValue('newer'), aSecretValue('older')];
      await vault.set(ws, 'TOKEN', newer, { version: 5, ...by });
      await expectRefused(() => vault.set(ws, 'TOKEN', older, { version: 4, ...by }), 'VAULT.STALE_VERSION', older);
      expect(await vault.resolve(ws, 'TOKEN')).toEqual({ value: newer, version: 5 });
    });

    it('delete removes it from list and resolve; its last value stays a previous value; it can be set again', async () => {
      const { vault, clock, newWorkspace } = harness();
      const ws = newWorkspace();
      const [first, again] = [aSecretValue('first'), aSecretValue('again')];
      await vault.set(ws, 'NPM_TOKEN', first, { version: 1, ...by });
      await vault.set(ws, 'OTHER', aSecretValue(), { version: 1, ...by });
      clock.advance(1000);
      const deletedAt = clock.now();
      await vault.delete(ws, 'NPM_TOKEN');
      await expectRefused(() => vault.resolve(ws, 'NPM_TOKEN'), 'VAULT.SECRET_NOT_FOUND');
      await expectRefused(() => vault.delete(ws, 'NPM_TOKEN'), 'VAULT.SECRET_NOT_FOUND');
      expect((await vault.list(ws)).map((s) => s.name)).toEqual(['OTHER']);
      expect(await vault.previousValues(ws, deletedAt)).toEqual([
        { name: 'NPM_TOKEN', version: 1, value: first, supersededAt: deletedAt.toISOString() },
      ]);
      clock.advance(1000);
      await vault.set(ws, 'NPM_TOKEN', again, { version: 2, ...by });
      expect(await vault.resolve(ws, 'NPM_TOKEN')).toEqual({ value: again, version: 2 });
    });

    it('refuses invalid names, too-short and too-large values without echoing the value', async () => {
      const { vault, newWorkspace } = harness();
      const ws = newWorkspace();
      await expectRefused(() => vault.set(ws, 'lower-case', aSecretValue(), { version: 1, ...by }), 'SECRET.INVALID_NAME');
      await expectRefused(() => vault.set(ws, 'SHORT', 'seven77', { version: 1, ...by }), 'SECRET.VALUE_TOO_SHORT', 'seven77');
      const huge = aSecretValue('huge').repeat(2000);
      await expectRefused(() => vault.set(ws, 'HUGE', huge, { version: 1, ...by }), 'SECRET.VALUE_TOO_LARGE', huge);
      await expectRefused(() => vault.set(ws, 'ZERO', aSecretValue(), { version: 0, ...by }), 'VAULT.INVALID_VERSION');
      expect(await vault.list(ws)).toEqual([]);
    });

    it('workspaces are isolated from each other', async () => {
      const { vault, newWorkspace } = harness();
      const [a, b] = [newWorkspace(), newWorkspace()];
      await vault.set(a, 'SHARED_NAME', aSecretValue(), { version: 1, ...by });
      await expectRefused(() => vault.resolve(b, 'SHARED_NAME'), 'VAULT.SECRET_NOT_FOUND');
      expect(await vault.list(b)).toEqual([]);
    });

    it('soft delete refuses every secret operation; purge is refused before retention ends; recover restores all', async () => {
      const { vault, clock, newWorkspace } = harness();
      const ws = newWorkspace();
      const value = aSecretValue('kept');
      await vault.set(ws, 'KEPT', value, { version: 1, ...by });
      await expectRefused(() => vault.softDelete(ws, { retentionDays: 3, now: clock.now() }), 'VAULT.INVALID_RETENTION');
      await expectRefused(() => vault.recover(ws), 'VAULT.NOT_DELETED');
      await expectRefused(() => vault.purge(ws, clock.now()), 'VAULT.NOT_DELETED');

      const deletedAt = clock.now();
      const status = await vault.softDelete(ws, { retentionDays: 90, now: deletedAt });
      expect(status).toMatchObject({ state: 'deleted' });
      const purgeAfter = new Date(status.state === 'deleted' ? status.purgeAfter : 0);
      expect(purgeAfter.getTime()).toBeGreaterThanOrEqual(deletedAt.getTime() + 90 * DAY_MS);
      expect(await vault.status(ws)).toMatchObject({ state: 'deleted' });

      await expectRefused(() => vault.resolve(ws, 'KEPT'), 'VAULT.DELETED');
      await expectRefused(() => vault.set(ws, 'KEPT', aSecretValue(), { version: 2, ...by }), 'VAULT.DELETED');
      await expectRefused(() => vault.set(ws, 'NEW_ONE', aSecretValue(), { version: 1, ...by }), 'VAULT.DELETED');
      await expectRefused(() => vault.delete(ws, 'KEPT'), 'VAULT.DELETED');

      clock.advance(30 * DAY_MS);
      await expectRefused(() => vault.purge(ws, clock.now()), 'VAULT.PURGE_PROTECTED');
      await expectRefused(() => vault.purge(ws, new Date(purgeAfter.getTime() - 1000)), 'VAULT.PURGE_PROTECTED');

      await vault.recover(ws);
      expect(await vault.status(ws)).toEqual({ state: 'active' });
      expect(await vault.resolve(ws, 'KEPT')).toEqual({ value, version: 1 });
      await vault.set(ws, 'KEPT', aSecretValue(), { version: 2, ...by });
      expect((await vault.resolve(ws, 'KEPT')).version).toBe(2);
    });

    it('purge after retention removes the vault for good; recover after retention is refused', async () => {
      const { vault, clock, newWorkspace } = harness();
      const ws = newWorkspace();
      await vault.set(ws, 'GONE', aSecretValue(), { version: 1, ...by });
      await vault.softDelete(ws, { retentionDays: 90, now: clock.now() });
      clock.advance(91 * DAY_MS);
      await expectRefused(() => vault.recover(ws), 'VAULT.RETENTION_ENDED');
      await vault.purge(ws, clock.now());
      expect(await vault.status(ws)).toEqual({ state: 'absent' });
      expect(await vault.list(ws)).toEqual([]);
      await expectRefused(() => vault.resolve(ws, 'GONE'), 'VAULT.SECRET_NOT_FOUND');
      await expectRefused(() => vault.recover(ws), 'VAULT.NOT_DELETED');
    });

    it('two purges at once (two sweeps) both finish and leave nothing', async () => {
      const { vault, clock, newWorkspace } = harness();
      const ws = newWorkspace();
      for (let i = 0; i < 12; i++) await vault.set(ws, `S${i}`, aSecretValue(), { version: 1, ...by });
      await vault.softDelete(ws, { retentionDays: 90, now: clock.now() });
      clock.advance(91 * DAY_MS);
      await Promise.all([vault.purge(ws, clock.now()), vault.purge(ws, clock.now())]);
      expect(await vault.status(ws)).toEqual({ state: 'absent' });
      expect(await vault.list(ws)).toEqual([]);
      await vault.purge(ws, clock.now());
    });

    it('soft delete of a vault that was never provisioned is a no-op', async () => {
      const { vault, clock, newWorkspace } = harness();
      const ws = newWorkspace();
      expect(await vault.softDelete(ws, { retentionDays: 7, now: clock.now() })).toEqual({ state: 'absent' });
    });
  });
}
