/** What a gateway bearer is bound to: one container of one run, until the run's deadline. */
export interface GatewayBinding {
  readonly workspaceId: string;
  readonly runId: string;
  readonly containerId: string;
  /** ISO-8601: absolute expiry, the run's deadline. */
  readonly expiresAt: string;
}

/**
 * Per-container bearers for `POST /api/gateway/operations` (DESIGN.md §1 promise 8): 32 random bytes handed to
 * the agent runtime as GATEWAY_TOKEN, stored only as a SHA-256 hash, compared as hashes in constant time,
 * bound to run and container, expiring at the deadline, dead at teardown.
 */
export interface GatewayBearers {
  /** Mints a bearer; the returned string is the only place it exists in clear. */
  mint(binding: GatewayBinding): Promise<string>;
  /** The binding of a live bearer; throws `AuthenticationError` for unknown, expired or revoked ones. */
  verify(bearer: string, now: Date): Promise<GatewayBinding>;
  /** Kills every bearer of the run (teardown). Idempotent. */
  revokeRun(workspaceId: string, runId: string): Promise<void>;
}
