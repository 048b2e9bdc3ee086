import type { PublicJwk, PublicSigningJwk, SigningKeyInfo } from '../signingKeys';
import { SIGNING_ERROR } from '../catalogue';

/** The persisted key ring: public metadata of every key ever used, and an opaque version for the rotation guard. */
export interface SigningKeyRing<J extends PublicJwk = PublicSigningJwk> {
  readonly keys: readonly SigningKeyInfo<J>[];
  /** Opaque; absent when no key was ever stored. */
  readonly version?: string;
}

export interface NewSigningKey<J extends PublicJwk = PublicSigningJwk> {
  readonly info: SigningKeyInfo<J>;
  /** The private JWK as JSON. The adapter seals it at rest and never returns it except through `privateJwk`. */
  readonly privateJwk: string;
}

/**
 * Where platform signing keys rest (DESIGN.md §1 promise 9): never in settings. Only the current key has a
 * private half; a rotation deletes the retired key's private half in the same atomic write that adds the new key,
 * and keeps its public half for good.
 */
export interface SigningKeyRepository<J extends PublicJwk = PublicSigningJwk> {
  load(): Promise<SigningKeyRing<J>>;
  /** The private JWK (JSON) of `kid`, or undefined when it has none (retired, or unknown). */
  privateJwk(kid: string): Promise<string | undefined>;
  /**
   * Atomically adds `key` as the current key and retires `retire` (dropping its private half), only if the
   * ring is still at `expected.version`. Resolves false when another writer rotated first.
   */
  rotate(expected: SigningKeyRing<J>, key: NewSigningKey<J>, retire?: { readonly kid: string; readonly at: string }): Promise<boolean>;
}

export interface SandboxIdentity {
  readonly runId: string;
  readonly containerId: string;
}

export interface MintedSandboxToken {
  readonly token: string;
  /** ISO-8601. */
  readonly expiresAt: string;
  readonly kid: string;
}

export interface VerifiedSandboxToken extends SandboxIdentity {
  readonly subject: string;
  readonly audience: string;
  /** ISO-8601. */
  readonly expiresAt: string;
  readonly kid: string;
}

/**
 * Short-lived identity tokens for sandboxes: JWTs signed with the platform key that a third party verifies
 * against the platform's JWKS. `verify` throws a `DomainError` (`SIGNING.TOKEN_INVALID`) for any token that does
 * not verify, naming the reason, never echoing the token.
 */
export interface SandboxIdentityTokens {
  mint(identity: SandboxIdentity): Promise<MintedSandboxToken>;
  verify(token: string): Promise<VerifiedSandboxToken>;
}

export { SIGNING_ERROR };
