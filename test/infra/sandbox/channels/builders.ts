import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CredentialRequest, DeliveryTarget } from '../../../../infra/sandbox/credentialDelivery';

/** A token no other process on the machine could hold by chance. */
export function aToken(): string {
  return `dp-tok-${randomBytes(18).toString('hex')}`;
}

export function aCredentialRequest(overrides: Partial<CredentialRequest> = {}): CredentialRequest {
  return { secretName: 'TRACKER_KEY', value: aToken(), use: 'env', as: 'TRACKER_KEY', ...overrides };
}

/** A scratch area per test: a 0700 credential dir (as the host makes one) and a workspace beside it. */
export function aScratch(): { root: string; target: DeliveryTarget; workspace: string; dispose(): void } {
  const root = mkdtempSync(path.join(tmpdir(), 'dp-channels-'));
  const credentialDir = mkdtempSync(path.join(root, 'cred-'));
  const workspace = mkdtempSync(path.join(root, 'ws-'));
  return { root, target: { credentialDir }, workspace, dispose: () => rmSync(root, { recursive: true, force: true }) };
}

/** Every file under `dir` whose bytes contain `needle`, skipping nothing: .git, node_modules, caches. */
export function filesContaining(dir: string, needle: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d)) {
      const full = path.join(d, entry);
      const stat = statSync(full, { throwIfNoEntry: false });
      if (stat === undefined) continue;
      if (stat.isDirectory()) walk(full);
      else if (stat.isFile() && readFileSync(full).includes(Buffer.from(needle))) found.push(full);
    }
  };
  walk(dir);
  return found;
}

/** The env a sandboxed command starts from in these tests: no inherited secrets, a private HOME. */
export function baseEnv(home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home };
}
