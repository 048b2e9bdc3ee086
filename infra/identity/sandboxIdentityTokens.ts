import { randomUUID } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify, type JWTHeaderParameters, type KeyLike } from 'jose';
import { DomainError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import {
  SIGNING_ERROR, type MintedSandboxToken, type SandboxIdentity, type SandboxIdentityTokens, type VerifiedSandboxToken,
} from '../../domain/ports/signingKeys';
import { parseSandboxSubject, sandboxSubject } from '../../domain/signingKeys';
import type { SigningKeys } from './signingKeys';

export interface SandboxTokenSettings {
  /** `iss`: the platform's public base URL, where `/.well-known/jwks.json` is served. */
  readonly issuer: string;
  /** `aud`: who the tokens are for (the third party that verifies them). */
  readonly audience: string;
  /** At most the key policy's `maxTokenLifetimeMs` (default 15 minutes). */
  readonly lifetimeMs?: number;
}

function invalid(reason: string): DomainError {
  return new DomainError(SIGNING_ERROR.TOKEN_INVALID, `The sandbox token does not verify: ${reason}`, 'forbidden');
}

/** jose's error classes name what failed without quoting the token; keep only that. */
function reasonOf(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `claim ${error.claim} is not acceptable`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof joseErrors.JOSEError) return error.code;
  if (error instanceof DomainError) throw error;
  return 'malformed';
}

/**
 * Short-lived sandbox identity tokens (DESIGN.md §1 promise 9): a JWT per sandbox container, `sub` =
 * `run:<runId>/container:<id>`, signed with the current platform key. A third party verifies it with any JOSE
 * library against `<issuer>/.well-known/jwks.json`; `verify` is the platform's own check and applies the same
 * rules: the key must be current or retired recently enough that this token could still be live.
 */
export class PlatformSandboxTokens implements SandboxIdentityTokens {
  private readonly lifetimeMs: number;

  constructor(private readonly keys: SigningKeys, private readonly clock: Clock, private readonly settings: SandboxTokenSettings) {
    this.lifetimeMs = settings.lifetimeMs ?? keys.policy.maxTokenLifetimeMs;
    if (!(this.lifetimeMs > 0 && this.lifetimeMs <= keys.policy.maxTokenLifetimeMs))
      throw new RangeError(`A sandbox token lives 1 ms to ${keys.policy.maxTokenLifetimeMs} ms`);
  }

  async mint(identity: SandboxIdentity): Promise<MintedSandboxToken> {
    const subject = sandboxSubject(identity.runId, identity.containerId);
    const { kid, key } = await this.keys.signingKey();
    const now = this.clock.now();
    const iat = Math.floor(now.getTime() / 1000);
    const exp = iat + Math.floor(this.lifetimeMs / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setSubject(subject)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(key);
    return { token, expiresAt: new Date(exp * 1000).toISOString(), kid };
  }

  async verify(token: string): Promise<VerifiedSandboxToken> {
    const now = this.clock.now();
    let kid = '';
    const keyFor = async (header: JWTHeaderParameters): Promise<KeyLike> => {
      if (typeof header.kid !== 'string') throw invalid('no kid');
      kid = header.kid;
      const key = await this.keys.tokenKey(header.kid, now);
      if (!key) throw invalid('unknown or retired signing key');
      return key;
    };
    let verified: Awaited<ReturnType<typeof jwtVerify>>;
    try {
      verified = await jwtVerify(token, keyFor, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: ['EdDSA'],
        typ: 'JWT',
        currentDate: now,
        clockTolerance: Math.floor(this.keys.policy.clockSkewMs / 1000),
        requiredClaims: ['iss', 'aud', 'sub', 'exp', 'iat', 'jti'],
      });
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw invalid(reasonOf(error));
    }
    const { payload } = verified;
    const identity = parseSandboxSubject(String(payload.sub));
    if (!identity) throw invalid('subject is not a sandbox');
    // Our keys' verification windows assume no token outlives the policy's lifetime; refuse any that claims to.
    if (((payload.exp ?? 0) - (payload.iat ?? 0)) * 1000 > this.keys.policy.maxTokenLifetimeMs) throw invalid('lifetime too long');
    return { ...identity, subject: String(payload.sub), audience: this.settings.audience, expiresAt: new Date((payload.exp ?? 0) * 1000).toISOString(), kid };
  }
}
