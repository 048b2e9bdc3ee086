import { type JSONWebKeySet, createLocalJWKSet, createRemoteJWKSet, jwtVerify } from 'jose';
import { DomainError } from '../../../domain/errors';

/** Checks a pool machine's Entra ID token and answers the managed identity it proves, or refuses. */
export type PoolIdentityVerifier = (bearer: string) => Promise<{ principalId: string }>;

/**
 * A managed-pool machine proves itself with an Entra ID token of its managed identity for the app's audience
 * (from the machine's identity endpoint), instead of a one-time enrolment token. Accepted only from the tenant's
 * issuer, signed by a key of its JWKS, for the audience, and for an identity the operator lists as the pool's.
 */
export function entraPoolIdentityVerifier(options: { issuer: string; audience: string; jwks: string | JSONWebKeySet; principalIds: readonly string[] }): PoolIdentityVerifier {
  const keys = typeof options.jwks === 'string' ? createRemoteJWKSet(new URL(options.jwks)) : createLocalJWKSet(options.jwks);
  const allowed = new Set(options.principalIds.map((id) => id.toLowerCase()));
  const refused = (): DomainError => new DomainError('HOST.IDENTITY_REFUSED', 'The token does not prove a managed-pool identity', 'forbidden');
  return async (bearer) => {
    let payload;
    try {
      ({ payload } = await jwtVerify(bearer, keys, { issuer: options.issuer, audience: options.audience }));
    } catch {
      throw refused();
    }
    // Managed identity tokens name the identity's object id in `oid` (and as `sub`).
    const principalId = typeof payload.oid === 'string' ? payload.oid : payload.sub;
    if (typeof principalId !== 'string' || !allowed.has(principalId.toLowerCase())) throw refused();
    return { principalId: principalId.toLowerCase() };
  };
}
