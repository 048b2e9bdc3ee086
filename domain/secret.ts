import { DomainError, assertNever } from './errors';
import type { DomainEvent } from './events';
import { DEFAULT_SECRET_USES, SECRET_USE_KINDS, type SecretUses } from './secretPolicy';
import { SECRET_ERROR } from './catalogue';

/** Secret names as Key Vault can hold them once `_` becomes `-` (reversible: `-` is not allowed here). */
export const SECRET_NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,126}$/;
export const MIN_SECRET_BYTES = 8;
/** The one code for a value below MIN_SECRET_BYTES, whoever refuses it (the vault, the redactor). */
export const SECRET_VALUE_TOO_SHORT = SECRET_ERROR.VALUE_TOO_SHORT;
/** Key Vault caps a value at 25 KB; we stop a little below. */
export const MAX_SECRET_BYTES = 24 * 1024;

export type SecretEvent =
  /** `uses` is absent from events recorded before uses existed; they fold to DEFAULT_SECRET_USES. */
  | DomainEvent<'SecretSet', { name: string; version: number; allowedHosts: readonly string[]; uses?: SecretUses }>
  | DomainEvent<'SecretDeleted', { name: string; version: number }>
  /**
   * The owner declared every version up to `revokedThrough` compromised: no lease, resolve or gateway operation
   * may hand one out again, and live leases of them end at once (LeaseRevoked on each run). Never a value.
   */
  | DomainEvent<'SecretRevoked', { name: string; revokedThrough: number }>;

export interface SecretState {
  readonly exists: boolean;
  readonly name: string;
  /** Increases with every set, and never goes back, even across delete and re-create. */
  readonly version: number;
  readonly allowedHosts: readonly string[];
  /** What the owner lets this secret be used for, and by whom. */
  readonly uses: SecretUses;
  readonly updatedAt?: string;
  readonly updatedBy?: string;
  /** Every version at or below this one is revoked (0: none). Folded from the log only, never from a row. */
  readonly revokedThrough: number;
}

export type SecretCommand =
  /**
   * Owners only (the use case authorises): the uses are part of the same write as the value. `revoke`: the
   * value being replaced is compromised, so the write also revokes every earlier version.
   */
  | { type: 'SetSecret'; name: string; allowedHosts?: readonly string[]; uses?: SecretUses; revoke?: boolean }
  | { type: 'DeleteSecret'; name: string }
  /** Revoke without a new value: the current value (if any) is deleted and every version so far revoked. */
  | { type: 'RevokeSecret'; name: string };

export function initialSecretState(): SecretState {
  return { exists: false, name: '', version: 0, allowedHosts: [], uses: DEFAULT_SECRET_USES, revokedThrough: 0 };
}

/** `updatedAt`/`updatedBy` come from the envelope's meta, so `evolve` takes the recorded event when it has one. */
export function evolveSecret(
  state: SecretState,
  event: SecretEvent & { meta?: { at: string; actor: string } },
): SecretState {
  switch (event.type) {
    case 'SecretSet':
      return {
        exists: true,
        name: event.data.name,
        version: event.data.version,
        allowedHosts: event.data.allowedHosts,
        uses: event.data.uses ?? DEFAULT_SECRET_USES,
        ...(event.meta ? { updatedAt: event.meta.at, updatedBy: event.meta.actor } : {}),
        revokedThrough: state.revokedThrough,
      };
    case 'SecretDeleted':
      return { ...state, exists: false, version: event.data.version };
    case 'SecretRevoked':
      return { ...state, name: event.data.name, revokedThrough: Math.max(state.revokedThrough, event.data.revokedThrough) };
    default:
      return assertNever(event, 'secret event');
  }
}

export function assertValidSecretName(name: string): void {
  if (!SECRET_NAME_PATTERN.test(name))
    throw new DomainError(
      SECRET_ERROR.INVALID_NAME,
      'Secret names are 1-127 characters of A-Z, 0-9 and _, not starting with a digit',
      'invalid',
    );
}

/** Uses named as the policy knows them, each with an audience; an empty list of names would allow nobody, so say so. */
export function assertValidUses(uses: SecretUses): void {
  for (const [use, audience] of Object.entries(uses)) {
    if (!(SECRET_USE_KINDS as readonly string[]).includes(use))
      throw new DomainError(SECRET_ERROR.INVALID_USES, `"${use}" is not a use (${SECRET_USE_KINDS.join(', ')})`, 'invalid');
    const valid = audience === 'members' || audience === 'owners' || (Array.isArray(audience) && audience.length > 0 && audience.every((u) => typeof u === 'string' && u.length > 0));
    if (!valid) throw new DomainError(SECRET_ERROR.INVALID_USES, `use "${use}" must be allowed to "members", "owners" or a non-empty list of user ids`, 'invalid');
  }
}

export function decideSecret(command: SecretCommand, state: SecretState): SecretEvent[] {
  assertValidSecretName(command.name);
  switch (command.type) {
    case 'SetSecret': {
      const allowedHosts = command.allowedHosts ?? (state.exists ? state.allowedHosts : []);
      if (command.uses) assertValidUses(command.uses);
      const uses = command.uses ?? (state.exists ? state.uses : DEFAULT_SECRET_USES);
      const set: SecretEvent = { type: 'SecretSet', data: { name: command.name, version: state.version + 1, allowedHosts, uses } };
      // Revoked before the new version exists in the log: a reader between the two can never see the new one unrevoked old.
      return command.revoke === true && hasUnrevoked(state) ? [revoked(state, command.name), set] : [set];
    }
    case 'DeleteSecret':
      if (!state.exists) throw new DomainError(SECRET_ERROR.NOT_FOUND, `No secret named ${command.name}`, 'not_found');
      return [{ type: 'SecretDeleted', data: { name: command.name, version: state.version } }];
    case 'RevokeSecret':
      if (state.version === 0) throw new DomainError(SECRET_ERROR.NOT_FOUND, `No secret named ${command.name}`, 'not_found');
      // A version deleted earlier may still be held by a live process, so it can be revoked after its delete.
      if (!hasUnrevoked(state)) return [];
      return [revoked(state, command.name), ...(state.exists ? [{ type: 'SecretDeleted' as const, data: { name: command.name, version: state.version } }] : [])];
    default:
      return assertNever(command, 'secret command');
  }
}

const hasUnrevoked = (state: SecretState): boolean => state.version > state.revokedThrough;
const revoked = (state: SecretState, name: string): SecretEvent => ({ type: 'SecretRevoked', data: { name, revokedThrough: state.version } });

/** Whether `version` of this secret was revoked: what every lease, resolve and gateway operation checks last. */
export function isRevokedVersion(state: SecretState, version: number): boolean {
  return version <= state.revokedThrough;
}

/** Refuses a resolved value whose version the log says is revoked; names the secret and version, never the value. */
export function assertNotRevoked(state: SecretState, name: string, version: number): void {
  if (isRevokedVersion(state, version))
    throw new DomainError(SECRET_ERROR.VERSION_REVOKED, `Version ${version} of ${name} was revoked; it is never handed out again`, 'conflict');
}

export const secretDecider = {
  initialState: initialSecretState,
  evolve: evolveSecret,
  decide: decideSecret,
};

/** The secret metadata projection: one row per name, what listing and decisions read. Never a value. */
export interface SecretMetadataView {
  readonly name: string;
  readonly version: number;
  readonly exists: boolean;
  readonly allowedHosts: readonly string[];
  readonly uses: SecretUses;
  readonly updatedAt: string | null;
  readonly updatedBy: string | null;
}

export function secretMetadata(state: SecretState): SecretMetadataView {
  return {
    name: state.name,
    version: state.version,
    exists: state.exists,
    allowedHosts: [...state.allowedHosts],
    uses: state.uses,
    updatedAt: state.updatedAt ?? null,
    updatedBy: state.updatedBy ?? null,
  };
}

/** A stored metadata row as its view. A row written before uses existed shows what its secret folds to. */
export function secretMetadataFromRow(row: Readonly<Record<string, unknown>>): SecretMetadataView {
  return {
    name: String(row.name),
    version: Number(row.version),
    exists: row.exists === true,
    allowedHosts: Array.isArray(row.allowedHosts) ? row.allowedHosts.map(String) : [],
    uses: row.uses !== null && typeof row.uses === 'object' && !Array.isArray(row.uses) ? (row.uses as SecretUses) : DEFAULT_SECRET_USES,
    updatedAt: typeof row.updatedAt === 'string' ? row.updatedAt : null,
    updatedBy: typeof row.updatedBy === 'string' ? row.updatedBy : null,
  };
}
