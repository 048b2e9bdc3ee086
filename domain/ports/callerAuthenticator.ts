/** Who is calling, from a verified bearer token. */
export interface AuthenticatedCaller {
  readonly userId: string;
}

/**
 * Verifies a caller's bearer token (Entra ID in Azure, the local dev issuer locally). A token that does
 * not verify throws `AuthenticationError`, which the edge answers with 401 and a Bearer challenge.
 */
export interface CallerAuthenticator {
  authenticate(authorizationHeader: string | null): Promise<AuthenticatedCaller>;
}

export class AuthenticationError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'AuthenticationError';
  }
}
