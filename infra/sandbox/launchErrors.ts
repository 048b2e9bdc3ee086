import { DomainError } from '../../domain/errors';
import { describeRefusal, type GuardReason, type GuardRefusal } from '../../domain/launchGuard';

/** The guard refused a launch. Names the key (and the secret's name), never a value; nothing was spawned. */
export class LaunchRefusedError extends DomainError {
  readonly offendingKey: string;
  readonly reason: GuardReason;
  readonly secretName: string | undefined;
  constructor(refusal: GuardRefusal) {
    super('SANDBOX.LAUNCH_REFUSED', describeRefusal(refusal), 'forbidden');
    this.name = 'LaunchRefusedError';
    this.offendingKey = refusal.offendingKey;
    this.reason = refusal.reason;
    this.secretName = refusal.secretName;
  }
}

/** A delivery would override the standing env, the ticket, or another delivery: refused, nothing spawned. */
export class DeliveryConflictError extends DomainError {
  constructor(readonly key: string, problem: string) {
    super('SANDBOX.DELIVERY_CONFLICT', `delivery env var ${key} ${problem}`, 'invalid');
    this.name = 'DeliveryConflictError';
  }
}

/** A process whose stdin carries a delivery (a `stdin` lease) was also given input: refused, nothing spawned. */
export class InputConflictError extends DomainError {
  constructor() {
    super('SANDBOX.INPUT_CONFLICT', "a process whose stdin carries a lease takes no other input", 'invalid');
    this.name = 'InputConflictError';
  }
}

/** The launch was cancelled before anything was spawned. */
export class LaunchCancelledError extends DomainError {
  constructor() {
    super('SANDBOX.LAUNCH_CANCELLED', 'launch cancelled before start', 'conflict');
    this.name = 'LaunchCancelledError';
  }
}

/** The program could not be started (for example ENOENT). Names the program, never its env. */
export class LaunchFailedError extends DomainError {
  constructor(readonly program: string, readonly errno: string) {
    super('SANDBOX.LAUNCH_FAILED', `could not start ${program}: ${errno}`, 'unavailable');
    this.name = 'LaunchFailedError';
  }
}
