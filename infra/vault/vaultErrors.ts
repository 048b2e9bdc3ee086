import { DomainError, isDomainError } from '../../domain/errors';
import { VAULT_ERROR } from '../../domain/ports/secretVault';

/** HTTP status of an SDK error (RestError and friends), if it has one. */
export function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * Turns anything an SDK throws into a DomainError that keeps only the status and the service's error code.
 * SDK errors carry request and response bodies (a PUT /secrets body is the value itself), so neither their
 * message nor any other property may travel on.
 */
export function sanitized(error: unknown, operation: string): DomainError {
  if (isDomainError(error)) return error;
  const status = statusOf(error);
  const rawCode = (error as { code?: unknown } | null)?.code;
  const code = typeof rawCode === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(rawCode) ? rawCode : 'none';
  return new DomainError(
    VAULT_ERROR.UNAVAILABLE,
    `The vault could not ${operation} (status ${status ?? 'none'}, code ${code})`,
    'unavailable',
  );
}

/** Runs an SDK call and lets only sanitized errors out. */
export async function guarded<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw sanitized(error, operation);
  }
}
