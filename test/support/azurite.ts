import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

/** Connection string of the Azurite the test run started (see azuriteGlobalSetup.ts). */
export function azuriteConnectionString(): string {
  return inject('azuriteConnectionString');
}

/** A table/queue/container name no other test file uses, so files run in parallel on one Azurite. */
export function uniqueName(prefix: string): string {
  const clean = prefix.replace(/[^a-zA-Z0-9]/g, '').toLowerCase() || 't';
  return `${clean}${randomBytes(5).toString('hex')}`.slice(0, 40);
}
