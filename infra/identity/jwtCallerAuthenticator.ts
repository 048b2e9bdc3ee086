import { type JWTVerifyGetKey, createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import { type AuthenticatedCaller, AuthenticationError, type CallerAuthenticator } from '../../domain/ports/callerAuthenticator';

export interface JwtAuthenticatorOptions {
  readonly issuer: string | readonly string[];
  readonly audience: string | readonly string[];
  /** A JWKS URL (Entra ID's discovery keys) or a key set held locally (the dev issuer, tests). */
  readonly jwks: URL | JSONWebKeySet;
  /** The claim naming the user: Entra ID's stable `oid`, else `sub`. */
  readonly userClaim?: string;
  readonly algorithms?: readonly string[];
  readonly clockToleranceSeconds?: number;
}

const BEARER = /^Bearer ([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+)$/;

/** Verifies signature, issuer, audience and expiry with `jose`; the token itself is never logged or echoed. */
export class JwtCallerAuthenticator implements CallerAuthenticator {
  private readonly keys: JWTVerifyGetKey;

  constructor(private readonly options: JwtAuthenticatorOptions) {
    this.keys = options.jwks instanceof URL ? createRemoteJWKSet(options.jwks) : createLocalJWKSet(options.jwks);
  }

  async authenticate(header: string | null): Promise<AuthenticatedCaller> {
    if (!header) throw new AuthenticationError('AUTH.MISSING_TOKEN', 'Send a bearer token in the Authorization header');
    const match = BEARER.exec(header.trim());
    if (!match?.[1]) throw new AuthenticationError('AUTH.MALFORMED_TOKEN', 'The Authorization header is not a bearer JWT');
    try {
      const { payload } = await jwtVerify(match[1], this.keys, {
        issuer: this.options.issuer as string | string[],
        audience: this.options.audience as string | string[],
        algorithms: (this.options.algorithms ?? ['EdDSA', 'ES256', 'RS256']) as string[],
        clockTolerance: this.options.clockToleranceSeconds ?? 30,
        requiredClaims: ['exp'],
      });
      const claim = this.options.userClaim ?? 'sub';
      const user = payload[claim] ?? payload.sub;
      if (typeof user !== 'string' || user.length === 0 || user.length > 256)
        throw new AuthenticationError('AUTH.NO_SUBJECT', 'The token names no user');
      return { userId: user };
    } catch (error) {
      if (error instanceof AuthenticationError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError('AUTH.TOKEN_EXPIRED', 'The token has expired');
      if (error instanceof joseErrors.JWTClaimValidationFailed)
        throw new AuthenticationError('AUTH.CLAIM_INVALID', `The token's ${error.claim} claim is not accepted`);
      throw new AuthenticationError('AUTH.INVALID_TOKEN', 'The token could not be verified');
    }
  }
}
