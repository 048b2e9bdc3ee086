import { DomainError } from '../../domain/errors';

/** One record (or one append) is larger than an entity or one transaction can carry. */
export class AppendTooLargeError extends DomainError {
  constructor(readonly what: string, readonly size: number, readonly limit: number) {
    super('STORE.APPEND_TOO_LARGE', `${what} is ${size} units; the store allows at most ${limit}`, 'too_large');
    this.name = 'AppendTooLargeError';
  }
}

/** An append with no events has nothing to chain; it is a caller bug, not a conflict. */
export class EmptyAppendError extends DomainError {
  constructor(readonly streamId: string) {
    super('STORE.EMPTY_APPEND', `An append to ${streamId} carried no events`, 'invalid');
    this.name = 'EmptyAppendError';
  }
}
