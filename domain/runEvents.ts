import type { DomainEvent } from './events';

export const PHASES = ['seed', 'install', 'mcp', 'turn', 'teardown'] as const;
export type Phase = (typeof PHASES)[number];

export type Channel =
  | 'refused'
  | 'process-env'
  | 'temp-file'
  | 'stdin'
  | 'git-credential-helper'
  | 'package-manager-config'
  /** The gateway's http operation: the platform process puts the credential in one request's header; it never enters the sandbox. */
  | 'gateway-header';

/** Why a presented SSH ticket opened nothing. */
export type SshRefusal = 'unknown-ticket' | 'reused' | 'expired' | 'run-not-live';

export type RunOutcome = 'Completed' | 'Failed' | 'Cancelled';
/** What the API shows. */
export type RunStatus = 'Pending' | 'Running' | RunOutcome;

export type RunEvent =
  /** `specDigest`: SHA-256 of the stored spec's bytes; every read of the spec is checked against it. */
  | DomainEvent<'RunRequested', { runId: string; workspaceId: string; deadline: string; specRef: string; specDigest: string }>
  | DomainEvent<'PhaseStarted', { phase: Phase; turn?: number }>
  | DomainEvent<'PhaseCompleted', { phase: Phase; turn?: number }>
  | DomainEvent<'PhaseFailed', { phase: Phase; turn?: number; reason: string }>
  /**
   * `hostId`: the host agent the platform placed it on (remote hosts only; a platform-side fact, never a host's
   * claim). Another instance asks only that host for it. Events written before it have none.
   */
  | DomainEvent<'SandboxLaunched', { sandboxId: string; isolated: boolean; hostId?: string }>
  | DomainEvent<'SandboxLaunchRefused', { offendingKey: string; reason: string }>
  | DomainEvent<'IsolationDegraded', { reason: string }>
  | DomainEvent<
      'LeaseGranted',
      { leaseId: string; secretName: string; secretVersion: number; operation: string; channel: Channel; expiresAt: string }
    >
  | DomainEvent<'LeaseReleased', { leaseId: string }>
  | DomainEvent<'LeaseExpired', { leaseId: string }>
  /** The owner revoked the secret version this lease holds: the holding process is stopped (never the value). */
  | DomainEvent<'LeaseRevoked', { leaseId: string; runId: string; secretName: string; secretVersion: number }>
  | DomainEvent<'OperationRequested', { operationId: string; kind: string; target: string }>
  | DomainEvent<'OperationRefused', { operationId: string; kind: string; target: string; reason: string }>
  | DomainEvent<'OperationCompleted', { operationId: string; exitCode: number }>
  /** What the sandbox's egress proxy decided during one step (`refusalsNotRecorded`: refused beyond the events). */
  | DomainEvent<'EgressRecorded', { phase: Phase; turn?: number; allowed: number; refused: number; refusalsNotRecorded: number }>
  /** The gateway handed the agent a workload identity token (docs/identity.md). Its claims, never the token. */
  | DomainEvent<'IdentityTokenIssued', { identity: string; subject: string; audience: string; jti: string; kid: string; expiresAt: string }>
  /** A member asked for an IDE SSH session (docs/sandbox-hosts.md): the ticket's SHA-256 only, never the ticket. */
  | DomainEvent<'SshTicketIssued', { ticketId: string; ticketHash: string; hostId: string; expiresAt: string }>
  /** The ticket was redeemed (once) and its session relayed to the run's host; the actor is the ticket's holder. */
  | DomainEvent<'SshSessionOpened', { sessionId: string; ticketId: string }>
  | DomainEvent<'SshSessionRefused', { reason: SshRefusal; ticketId?: string }>
  | DomainEvent<'SshSessionClosed', { sessionId: string; reason: string }>
  | DomainEvent<'RunCancellationRequested', { reason: string }>
  | DomainEvent<'SandboxTornDown', { sandboxId: string }>
  | DomainEvent<'RunCompleted', Record<string, never>>
  | DomainEvent<'RunFailed', { reason: string }>
  | DomainEvent<'RunCancelled', { reason: string }>;
