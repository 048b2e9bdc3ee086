/** What a workload identity token says (docs/identity.md); the issuer adds `iss`, `iat`, `nbf`, `jti` and its key. */
export interface WorkloadTokenClaims {
  readonly workspaceId: string;
  readonly runId: string;
  readonly identity: string;
  /** The token's `sub`: `tokenSubject(workspaceId, the owner's subject)`. */
  readonly subject: string;
  readonly audience: string;
  /** ISO-8601: the token expires at this instant or earlier (the run's deadline). */
  readonly notAfter: string;
}

export interface IssuedWorkloadToken {
  /** The JWT itself: handed to the agent, never recorded or logged. */
  readonly token: string;
  readonly jti: string;
  readonly kid: string;
  readonly issuer: string;
  /** ISO-8601. */
  readonly expiresAt: string;
}

/**
 * Signs workload identity tokens: RS256 JWTs under the platform's issuer URL, verifiable against its OpenID
 * discovery document and JWKS by a cloud's token exchange.
 */
export interface WorkloadIdentityTokens {
  readonly issuer: string;
  issue(claims: WorkloadTokenClaims): Promise<IssuedWorkloadToken>;
}
