import { INTERNAL_ERROR, STORE_ERROR } from './catalogue';

/**
 * How the edge should treat a domain error. The HTTP layer maps kinds to statuses; the stable `code`
 * (for example `RUN.ALREADY_TORN_DOWN`) is what clients and tests match on.
 */
export type DomainErrorKind =
  | 'invalid'
  | 'not_found'
  | 'forbidden'
  | 'conflict'
  | 'precondition'
  | 'too_large'
  | 'unavailable'
  /** What the request needed is gone for good (a run's sandbox after teardown). */
  | 'gone'
  /** Something the platform called on the caller's behalf failed (a gateway operation's process). */
  | 'upstream';

export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly kind: DomainErrorKind,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}

/** The stream changed between read and append; the command handler re-reads and retries. */
export class VersionConflictError extends DomainError {
  constructor(
    readonly streamId: string,
    readonly expectedVersion: number,
  ) {
    super(STORE_ERROR.VERSION_CONFLICT, `Stream ${streamId} is no longer at version ${expectedVersion}`, 'conflict');
    this.name = 'VersionConflictError';
  }
}

/** Retries ran out while other writers kept winning. */
export class ConcurrencyExhaustedError extends DomainError {
  constructor(
    readonly streamId: string,
    readonly attempts: number,
  ) {
    super(STORE_ERROR.CONCURRENCY_EXHAUSTED, `Gave up on ${streamId} after ${attempts} conflicting attempts`, 'conflict');
    this.name = 'ConcurrencyExhaustedError';
  }
}

/** An append would need more operations than one entity-group transaction allows. */
export class TransactionTooLargeError extends DomainError {
  constructor(readonly operations: number, readonly limit: number) {
    super(
      STORE_ERROR.TRANSACTION_TOO_LARGE,
      `An append needs ${operations} operations; one transaction allows at most ${limit}`,
      'too_large',
    );
    this.name = 'TransactionTooLargeError';
  }
}

export function assertNever(value: never, what = 'value'): never {
  throw new DomainError(INTERNAL_ERROR.UNEXPECTED, `Unexpected ${what}: ${JSON.stringify(value)}`, 'invalid');
}
