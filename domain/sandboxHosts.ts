import { DomainError, assertNever } from './errors';
import type { DomainEvent } from './events';
import { HOST_ENROLMENT_MINUTES, HOST_ERROR } from './catalogue';

/**
 * A sandbox host a workspace enrols (a bring-your-own machine running the host agent), one stream per host in
 * the workspace's partition, so every step is in the workspace's hash-chained log. Tokens and credentials are
 * random values the platform hands out once; only their SHA-256 (hex) is ever recorded, computed by the caller.
 */
export type SandboxHostEvent =
  | DomainEvent<'HostEnrolmentOffered', { hostId: string; name: string; tokenHash: string; expiresAt: string }>
  | DomainEvent<'HostEnrolled', { hostId: string; credentialHash: string }>
  | DomainEvent<'HostCredentialRotated', { hostId: string; credentialHash: string }>
  | DomainEvent<'HostRevoked', { hostId: string; reason: string }>
  /** The agent opened its channel (meta.at is the host's last connection). */
  | DomainEvent<'HostConnected', { hostId: string }>
  /** A channel message was refused: replayed, out of order, for another host, workspace, session or run. */
  | DomainEvent<'HostMessageRefused', { hostId: string; reason: HostMessageRefusal; messageType: string; runId?: string }>;

export type HostMessageRefusal = 'malformed' | 'replayed' | 'out-of-order' | 'foreign-host' | 'foreign-workspace' | 'foreign-session' | 'foreign-run' | 'foreign-sandbox' | 'unexpected';

export type SandboxHostStatus = 'None' | 'Offered' | 'Enrolled' | 'Revoked';

export interface SandboxHostState {
  readonly status: SandboxHostStatus;
  readonly hostId: string;
  readonly name: string;
  readonly tokenHash?: string;
  readonly expiresAt?: string;
  readonly credentialHash?: string;
  readonly revokedReason?: string;
  readonly enrolledAt?: string;
  readonly lastConnectedAt?: string;
  /** Refusals recorded since the host last connected: past `MAX_REFUSALS_PER_CONNECTION` they are answered, not appended. */
  readonly refusalsSinceConnected?: number;
}

/**
 * A hostile agent can send malformed frames as fast as it likes: each connection may add this many refusal records
 * to its workspace's log and no more (connecting again is itself a recorded, credentialed event).
 */
export const MAX_REFUSALS_PER_CONNECTION = 50;

export type SandboxHostCommand =
  | { type: 'OfferEnrolment'; hostId: string; name: string; tokenHash: string; now: string }
  | { type: 'Enrol'; tokenHash: string; credentialHash: string; now: string }
  | { type: 'RotateCredential'; presentedHash: string; credentialHash: string }
  | { type: 'RevokeHost'; reason: string }
  | { type: 'RecordConnected'; presentedHash: string }
  | { type: 'RecordMessageRefused'; reason: HostMessageRefusal; messageType: string; runId?: string };

export const HOST_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export function initialSandboxHostState(): SandboxHostState {
  return { status: 'None', hostId: '', name: '' };
}

export function evolveSandboxHost(state: SandboxHostState, event: SandboxHostEvent & { meta?: { at: string } }): SandboxHostState {
  switch (event.type) {
    case 'HostEnrolmentOffered':
      return { status: 'Offered', hostId: event.data.hostId, name: event.data.name, tokenHash: event.data.tokenHash, expiresAt: event.data.expiresAt };
    case 'HostEnrolled': {
      const { tokenHash: _spent, expiresAt: _done, ...rest } = state;
      return { ...rest, status: 'Enrolled', credentialHash: event.data.credentialHash, ...(event.meta ? { enrolledAt: event.meta.at } : {}) };
    }
    case 'HostCredentialRotated':
      return { ...state, credentialHash: event.data.credentialHash };
    case 'HostRevoked': {
      const { credentialHash: _gone, tokenHash: _spent, ...rest } = state;
      return { ...rest, status: 'Revoked', revokedReason: event.data.reason };
    }
    case 'HostConnected':
      return { ...state, refusalsSinceConnected: 0, ...(event.meta ? { lastConnectedAt: event.meta.at } : {}) };
    case 'HostMessageRefused':
      return { ...state, refusalsSinceConnected: (state.refusalsSinceConnected ?? 0) + 1 };
    default:
      return assertNever(event, 'sandbox host event');
  }
}

/** Whether a presented credential (its hash) is this host's current one; a revoked or unenrolled host has none. */
export function credentialAccepted(state: SandboxHostState, presentedHash: string): boolean {
  return state.status === 'Enrolled' && state.credentialHash !== undefined && state.credentialHash === presentedHash;
}

function requireCredential(state: SandboxHostState, presentedHash: string): void {
  if (state.status === 'None') throw new DomainError(HOST_ERROR.NOT_FOUND, 'No such host', 'not_found');
  if (state.status === 'Revoked') throw new DomainError(HOST_ERROR.REVOKED, `The host was revoked: ${state.revokedReason ?? ''}`, 'forbidden');
  if (!credentialAccepted(state, presentedHash)) throw new DomainError(HOST_ERROR.CREDENTIAL_INVALID, 'The host credential is not valid', 'forbidden');
}

export function decideSandboxHost(command: SandboxHostCommand, state: SandboxHostState): SandboxHostEvent[] {
  switch (command.type) {
    case 'OfferEnrolment': {
      if (state.status !== 'None') throw new DomainError(HOST_ERROR.ALREADY_ENROLLED, 'A host with this id exists', 'conflict');
      if (!HOST_NAME_PATTERN.test(command.name))
        throw new DomainError(HOST_ERROR.INVALID_NAME, 'Host names are 1-63 characters of letters, digits, ".", "_" and "-"', 'invalid');
      const expiresAt = new Date(Date.parse(command.now) + HOST_ENROLMENT_MINUTES * 60_000).toISOString();
      return [{ type: 'HostEnrolmentOffered', data: { hostId: command.hostId, name: command.name, tokenHash: command.tokenHash, expiresAt } }];
    }
    case 'Enrol':
      // One answer for every refusal, so a guesser learns nothing about which hosts exist.
      if (state.status !== 'Offered' || state.tokenHash !== command.tokenHash)
        throw new DomainError(HOST_ERROR.ENROLMENT_INVALID, 'The enrolment token is not valid (used, unknown or revoked)', 'forbidden');
      if (state.expiresAt === undefined || Date.parse(command.now) >= Date.parse(state.expiresAt))
        throw new DomainError(HOST_ERROR.ENROLMENT_EXPIRED, 'The enrolment token has expired', 'forbidden');
      return [{ type: 'HostEnrolled', data: { hostId: state.hostId, credentialHash: command.credentialHash } }];
    case 'RotateCredential':
      requireCredential(state, command.presentedHash);
      return [{ type: 'HostCredentialRotated', data: { hostId: state.hostId, credentialHash: command.credentialHash } }];
    case 'RevokeHost':
      if (state.status === 'None') throw new DomainError(HOST_ERROR.NOT_FOUND, 'No such host', 'not_found');
      if (state.status === 'Revoked') return [];
      return [{ type: 'HostRevoked', data: { hostId: state.hostId, reason: command.reason } }];
    case 'RecordConnected':
      requireCredential(state, command.presentedHash);
      return [{ type: 'HostConnected', data: { hostId: state.hostId } }];
    case 'RecordMessageRefused':
      if (state.status === 'None') throw new DomainError(HOST_ERROR.NOT_FOUND, 'No such host', 'not_found');
      if ((state.refusalsSinceConnected ?? 0) >= MAX_REFUSALS_PER_CONNECTION) return [];
      return [{ type: 'HostMessageRefused', data: { hostId: state.hostId, reason: command.reason, messageType: command.messageType, ...(command.runId ? { runId: command.runId } : {}) } }];
    default:
      return assertNever(command, 'sandbox host command');
  }
}

export const sandboxHostDecider = { initialState: initialSandboxHostState, evolve: evolveSandboxHost, decide: decideSandboxHost };

/** What the host routes list: never a hash. */
export interface SandboxHostView {
  readonly hostId: string;
  readonly name: string;
  readonly status: SandboxHostStatus;
  readonly enrolledAt?: string;
  readonly lastSeenAt?: string;
  readonly revokedReason?: string;
}

export function sandboxHostView(state: SandboxHostState, lastSeenAt?: string): SandboxHostView {
  const seen = [lastSeenAt, state.lastConnectedAt].filter((t): t is string => t !== undefined).sort().at(-1);
  return {
    hostId: state.hostId,
    name: state.name,
    status: state.status,
    ...(state.enrolledAt ? { enrolledAt: state.enrolledAt } : {}),
    ...(seen ? { lastSeenAt: seen } : {}),
    ...(state.revokedReason ? { revokedReason: state.revokedReason } : {}),
  };
}
