import { DomainError } from '../../../domain/errors';
import { isReservedEnvName } from '../../../domain/launchGuard';
import type { CredentialDelivery, CredentialRequest, DeliveryTarget } from '../credentialDelivery';

/**
 * A channel turns one resolved credential into the delivery for one process. It never spawns anything:
 * the guarded launcher applies the delivery after the launch guard and calls `cleanup` when the process exits.
 */
export type ChannelPreparer = (request: CredentialRequest, target: DeliveryTarget) => Promise<CredentialDelivery>;

/** A request this channel cannot deliver safely. The message names the secret and the problem, never the value. */
export class ChannelRequestError extends DomainError {
  constructor(
    readonly secretName: string,
    problem: string,
  ) {
    super('CHANNEL.INVALID_REQUEST', `Cannot deliver ${secretName}: ${problem}`, 'invalid');
    this.name = 'ChannelRequestError';
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** The env var name a `env` or `file` delivery uses, checked. */
export function envNameFor(request: CredentialRequest): string {
  const name = request.as;
  if (name === undefined || name === '') throw new ChannelRequestError(request.secretName, 'the request names no env var (`as`)');
  if (!ENV_NAME.test(name)) throw new ChannelRequestError(request.secretName, `"${name}" is not a valid env var name`);
  // The same reserved names as the standing env: a credential has no business changing how a process loads code.
  if (isReservedEnvName(name)) throw new ChannelRequestError(request.secretName, `"${name}" is reserved and cannot carry a credential`);
  return name;
}

/** Line-based formats (git's credential protocol, npm's ini) would let a newline inject extra entries. */
export function assertSingleLine(request: CredentialRequest): void {
  if (/[\r\n\0]/.test(request.value))
    throw new ChannelRequestError(request.secretName, 'the value contains a line break or NUL, which this channel cannot carry');
}
