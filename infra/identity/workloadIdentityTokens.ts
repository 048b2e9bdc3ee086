import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { DomainError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import type { IssuedWorkloadToken, WorkloadIdentityTokens, WorkloadTokenClaims } from '../../domain/ports/workloadIdentityTokens';
import type { PublicRsaSigningJwk } from '../../domain/signingKeys';
import { WORKLOAD_TOKEN_MAX_MS } from '../../domain/workloadIdentity';
import type { SigningKeys } from './signingKeys';

/** The claims beyond the registered ones, named as other CI issuers name theirs (`run_id`). */
export const WORKLOAD_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'run_id', 'workspace_id', 'identity'] as const;

/**
 * Workload identity tokens (docs/identity.md), signed with the RS256 ring: a key of its own, so the Ed25519 key
 * that signs the audit checkpoints never signs anything a cloud accepts, and the other way round.
 */
export class RsaWorkloadIdentityTokens implements WorkloadIdentityTokens {
  private readonly lifetimeMs: number;

  constructor(
    private readonly keys: SigningKeys<PublicRsaSigningJwk>,
    private readonly clock: Clock,
    readonly issuer: string,
    lifetimeMs: number = WORKLOAD_TOKEN_MAX_MS,
  ) {
    if (keys.algorithm.alg !== 'RS256') throw new RangeError('Workload identity tokens are signed by the RS256 ring');
    if (!(lifetimeMs >= 1000 && lifetimeMs <= WORKLOAD_TOKEN_MAX_MS)) throw new RangeError(`A workload identity token lives 1 s to ${WORKLOAD_TOKEN_MAX_MS} ms`);
    if (lifetimeMs > keys.policy.maxTokenLifetimeMs) throw new RangeError("The RS256 ring's policy must cover the token lifetime (its JWKS window)");
    this.lifetimeMs = lifetimeMs;
  }

  async issue(claims: WorkloadTokenClaims): Promise<IssuedWorkloadToken> {
    const { kid, key } = await this.keys.signingKey();
    const iat = Math.floor(this.clock.now().getTime() / 1000);
    const exp = Math.min(iat + Math.floor(this.lifetimeMs / 1000), Math.floor(Date.parse(claims.notAfter) / 1000));
    if (!(exp > iat)) throw new DomainError('IDENTITY.RUN_ENDING', 'The run is at its deadline; no identity token is issued', 'conflict');
    const jti = randomUUID();
    const token = await new SignJWT({ run_id: claims.runId, workspace_id: claims.workspaceId, identity: claims.identity })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(claims.subject)
      .setAudience(claims.audience)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(key);
    return { token, jti, kid, issuer: this.issuer, expiresAt: new Date(exp * 1000).toISOString() };
  }
}
