import { DomainError, assertNever } from './errors';
import type { DomainEvent } from './events';

/** Secret names as Key Vault can hold them once `_` becomes `-` (reversible: `-` is not allowed here). */
export const SECRET_NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,126}$/;
export const MIN_SECRET_BYTES = 8;
/** The one code for a value below MIN_SECRET_BYTES, whoever refuses it (the vault, the redactor). */
export const SECRET_VALUE_TOO_SHORT = 'SECRET.VALUE_TOO_SHORT';
/** Key Vault caps a value at 25 KB; we stop a little below. */
export const MAX_SECRET_BYTES = 24 * 1024;

export type SecretEvent =
  | DomainEvent<'SecretSet', { name: string; version: number; allowedHosts: readonly string[] }>
  | DomainEvent<'SecretDeleted', { name: string; version: number }>;

export interface SecretState {
  readonly exists: boolean;
  readonly name: string;
  /** Increases with every set, and never goes back, even across delete and re-create. */
  readonly version: number;
  readonly allowedHosts: readonly string[];
  readonly updatedAt?: string;
  readonly updatedBy?: string;
}

export type SecretCommand =
  | { type: 'SetSecret'; name: string; allowedHosts?: readonly string[] }
  | { type: 'DeleteSecret'; name: string };

export function initialSecretState(): SecretState {
  return { exists: false, name: '', version: 0, allowedHosts: [] };
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
        ...(event.meta ? { updatedAt: event.meta.at, updatedBy: event.meta.actor } : {}),
      };
    case 'SecretDeleted':
      return { ...state, exists: false, version: event.data.version };
    default:
      return assertNever(event, 'secret event');
  }
}

export function assertValidSecretName(name: string): void {
  if (!SECRET_NAME_PATTERN.test(name))
    throw new DomainError(
      'SECRET.INVALID_NAME',
      'Secret names are 1-127 characters of A-Z, 0-9 and _, not starting with a digit',
      'invalid',
    );
}

export function decideSecret(command: SecretCommand, state: SecretState): SecretEvent[] {
  assertValidSecretName(command.name);
  switch (command.type) {
    case 'SetSecret': {
      const allowedHosts = command.allowedHosts ?? (state.exists ? state.allowedHosts : []);
      return [{ type: 'SecretSet', data: { name: command.name, version: state.version + 1, allowedHosts } }];
    }
    case 'DeleteSecret':
      if (!state.exists) throw new DomainError('SECRET.NOT_FOUND', `No secret named ${command.name}`, 'not_found');
      return [{ type: 'SecretDeleted', data: { name: command.name, version: state.version } }];
    default:
      return assertNever(command, 'secret command');
  }
}

export const secretDecider = {
  initialState: initialSecretState,
  evolve: evolveSecret,
  decide: decideSecret,
};

/** The secret metadata projection: one row per name, what listing shows. Never a value. */
export function secretMetadata(state: SecretState): Record<string, unknown> {
  return {
    name: state.name,
    version: state.version,
    exists: state.exists,
    allowedHosts: [...state.allowedHosts],
    updatedAt: state.updatedAt ?? null,
    updatedBy: state.updatedBy ?? null,
  };
}
