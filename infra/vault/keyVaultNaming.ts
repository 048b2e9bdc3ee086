import { randomBytes } from 'node:crypto';
import { DomainError } from '../../domain/errors';

/**
 * Key Vault names are 3-24 characters (letters, digits, single hyphens, starting with a letter) and globally
 * unique across Azure. A workspace's vault name is random, `{prefix}-{hex}` filling 24 characters (84 random
 * bits with the default prefix `dp`), and recorded in `VaultProvisioned` on the workspace's log before the
 * vault is created: nothing about the workspace id can be read from it, and nobody can pre-register the name
 * a workspace's vault will get (a derived name could be squatted by a stranger's vault).
 */
export function randomVaultName(prefix = 'dp'): string {
  if (!/^[a-z][a-z0-9]{0,9}$/.test(prefix))
    throw new DomainError('VAULT.INVALID_PREFIX', 'A vault name prefix is 1-10 lower-case letters or digits, starting with a letter', 'invalid');
  return `${prefix}-${randomBytes(12).toString('hex')}`.slice(0, 24);
}

/** `_` → `-`: reversible because our names never contain `-` (DESIGN.md §5). */
export function toKeyVaultName(name: string): string {
  return name.replace(/_/g, '-');
}

export function secretNameOf(keyVaultName: string): string {
  return keyVaultName.replace(/-/g, '_').toUpperCase();
}

export interface SecretTags {
  readonly version: number;
  readonly updatedBy: string;
  readonly updatedAt: string;
  readonly allowedHosts: readonly string[];
}

/** Key Vault allows 15 tags of at most 256 characters each; allowed hosts are spread over `hosts0..hosts9`. */
const TAG_VALUE_MAX = 256;
const HOST_TAGS = 10;

export function toTags(tags: SecretTags): Record<string, string> {
  const hosts = JSON.stringify(tags.allowedHosts);
  const chunks = Math.ceil(hosts.length / TAG_VALUE_MAX);
  if (chunks > HOST_TAGS)
    throw new DomainError('VAULT.ALLOWED_HOSTS_TOO_LONG', `Allowed hosts must fit ${HOST_TAGS * TAG_VALUE_MAX} characters of JSON`, 'too_large');
  const out: Record<string, string> = {
    version: String(tags.version),
    updatedBy: tags.updatedBy.slice(0, TAG_VALUE_MAX),
    updatedAt: tags.updatedAt,
  };
  for (let i = 0; i < chunks; i++) out[`hosts${i}`] = hosts.slice(i * TAG_VALUE_MAX, (i + 1) * TAG_VALUE_MAX);
  return out;
}

export function fromTags(tags: Record<string, string> | undefined): SecretTags {
  const t = tags ?? {};
  let hosts = '';
  for (let i = 0; i < HOST_TAGS && t[`hosts${i}`] !== undefined; i++) hosts += t[`hosts${i}`];
  let allowedHosts: string[] = [];
  try {
    allowedHosts = hosts ? (JSON.parse(hosts) as string[]) : [];
  } catch {
    allowedHosts = [];
  }
  return { version: Number(t.version ?? 0), updatedBy: t.updatedBy ?? '', updatedAt: t.updatedAt ?? '', allowedHosts };
}
