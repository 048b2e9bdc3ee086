import { DomainError } from '../errors';
import { utf8Length } from '../redaction/bytes';
import { MAX_SECRET_BYTES, MIN_SECRET_BYTES, SECRET_VALUE_TOO_SHORT, assertValidSecretName } from '../secret';
import { MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, SECRET_ERROR, VAULT_ERROR } from '../catalogue';

/**
 * The write-only vault of one workspace (DESIGN.md §1 promises 1, 2, 6, 10).
 *
 * Nothing here is reachable by a caller of the HTTP API except `set`, `delete` and `list`: `resolve` and
 * `previousValues` exist for the server-side resolver and the redactor only. Every error an adapter throws is
 * a `DomainError` with one of the `VAULT_ERROR` codes (or `SECRET.*` for an invalid name or value); no error
 * message or property ever carries a secret value.
 *
 * Versions are the domain's integer versions from the `SecretSet` event (they never go back, even across
 * delete and re-create); the vault stores them with the value so a reader can tell which one it holds.
 */
export interface SecretVault {
  /**
   * Creates or overwrites `name` (rotation is the same write). Provisions the workspace's vault on the first
   * call. Refused with `VAULT.DELETED` while the vault is soft-deleted. The previous value stays available to
   * `previousValues` for the rotation window.
   */
  set(workspaceId: string, name: string, value: string, options: SecretWriteOptions): Promise<SecretMetadata>;
  /** Removes `name`; its last value stays available to `previousValues`. `VAULT.SECRET_NOT_FOUND` if absent. */
  delete(workspaceId: string, name: string): Promise<void>;
  /** Current secrets, metadata only, sorted by name. An unprovisioned vault lists nothing. */
  list(workspaceId: string): Promise<readonly SecretMetadata[]>;
  /** Server side only: the current value at the moment of use. `VAULT.SECRET_NOT_FOUND` if absent. */
  resolve(workspaceId: string, name: string): Promise<ResolvedSecret>;
  /**
   * Server side only, for the redactor: values overwritten or deleted at or after `since` (the rotation
   * window), oldest first. Current values are not included (the redactor gets those from `list` + `resolve`).
   */
  previousValues(workspaceId: string, since: Date): Promise<readonly SupersededSecret[]>;

  /** Where the workspace's vault is in its lifecycle. */
  status(workspaceId: string): Promise<VaultStatus>;
  /**
   * Soft-deletes the vault under purge protection: `set`/`resolve`/`delete` are refused with `VAULT.DELETED`
   * until `recover`. A vault that was never provisioned has nothing to delete: the call returns
   * `{ state: 'absent' }`. `retentionDays` must be 7..90 (`VAULT.INVALID_RETENTION`).
   */
  softDelete(workspaceId: string, options: { retentionDays: number; now: Date }): Promise<VaultStatus>;
  /** Brings a soft-deleted vault back with every secret. `VAULT.NOT_DELETED` if it is not deleted. */
  recover(workspaceId: string): Promise<void>;
  /**
   * Removes a soft-deleted vault for good. Refused with `VAULT.PURGE_PROTECTED` before its retention ends and
   * with `VAULT.NOT_DELETED` if it is active. Purging a vault that is gone (another purge took it, even one
   * still under way) does nothing: two sweeps may meet on one workspace.
   */
  purge(workspaceId: string, now: Date): Promise<void>;
}

export interface SecretWriteOptions {
  /** The domain version from the `SecretSet` event. */
  readonly version: number;
  readonly allowedHosts?: readonly string[];
  /** Who set it: a user id or `system:<job>`. */
  readonly actor: string;
}

export interface SecretMetadata {
  readonly name: string;
  readonly version: number;
  /** ISO-8601. */
  readonly updatedAt: string;
  readonly updatedBy: string;
  readonly allowedHosts: readonly string[];
}

export interface ResolvedSecret {
  readonly value: string;
  readonly version: number;
}

export interface SupersededSecret {
  readonly name: string;
  readonly version: number;
  readonly value: string;
  /** ISO-8601 instant the value stopped being current (overwritten or deleted). */
  readonly supersededAt: string;
}

export type VaultStatus =
  | { readonly state: 'absent' }
  | { readonly state: 'active' }
  | {
      readonly state: 'deleted';
      /** ISO-8601. */
      readonly deletedAt: string;
      /** ISO-8601: the earliest instant `purge` is allowed. */
      readonly purgeAfter: string;
    };

export { VAULT_ERROR };

export const SECRET_VALUE_ERROR = {
  TOO_SHORT: SECRET_VALUE_TOO_SHORT,
  TOO_LARGE: SECRET_ERROR.VALUE_TOO_LARGE,
} as const;

/** What every adapter checks before it stores anything; the messages name limits, never the value. */
export function assertStorableSecret(name: string, value: string, options: SecretWriteOptions): void {
  assertValidSecretName(name);
  const bytes = utf8Length(value);
  if (bytes < MIN_SECRET_BYTES)
    throw new DomainError(
      SECRET_VALUE_ERROR.TOO_SHORT,
      `Secret values must be at least ${MIN_SECRET_BYTES} bytes, so the redactor can mask them`,
      'invalid',
    );
  if (bytes > MAX_SECRET_BYTES)
    throw new DomainError(SECRET_VALUE_ERROR.TOO_LARGE, `Secret values are at most ${MAX_SECRET_BYTES} bytes`, 'too_large');
  if (!Number.isSafeInteger(options.version) || options.version < 1)
    throw new DomainError(VAULT_ERROR.INVALID_VERSION, 'A secret version is a positive integer', 'invalid');
}

export function assertRetentionDays(retentionDays: number): void {
  if (!Number.isInteger(retentionDays) || retentionDays < MIN_RETENTION_DAYS || retentionDays > MAX_RETENTION_DAYS)
    throw new DomainError(
      VAULT_ERROR.INVALID_RETENTION,
      `Retention is ${MIN_RETENTION_DAYS}-${MAX_RETENTION_DAYS} whole days`,
      'invalid',
    );
}

export function vaultDeletedError(workspaceId: string): DomainError {
  return new DomainError(VAULT_ERROR.DELETED, `The vault of workspace ${workspaceId} is deleted`, 'precondition');
}

export function secretNotFoundError(name: string): DomainError {
  return new DomainError(VAULT_ERROR.SECRET_NOT_FOUND, `No secret named ${name}`, 'not_found');
}

export function integrityError(name: string): DomainError {
  return new DomainError(
    VAULT_ERROR.INTEGRITY,
    `The stored value of ${name} failed its integrity check; it was not returned`,
    'unavailable',
  );
}

/**
 * Resolves a value at the moment of use (promise 2). The infra resolver caches briefly and uses a cached
 * value only while its version equals `CurrentSecretVersion`, so a write on another instance is seen at the
 * next operation.
 */
export interface SecretResolver {
  resolve(workspaceId: string, name: string): Promise<ResolvedSecret>;
  /** Drops cached values of a workspace (or one name), e.g. after a local write or a workspace deletion. */
  invalidate(workspaceId: string, name?: string): void;
}

/** The current domain version of a secret (one point read of the metadata projection), or undefined if none. */
export type CurrentSecretVersion = (workspaceId: string, name: string) => Promise<number | undefined>;
