/**
 * Platform signing keys (DESIGN.md §1 promise 9): which key signs now, which keys still verify what, and when a
 * rotation is due. Pure decisions over the key ring; the infra key store persists the ring and holds the keys.
 *
 * Lifetimes differ by what was signed:
 * - sandbox identity tokens are short-lived, so a retired key verifies tokens only until the last token it
 *   could have signed has expired;
 * - head checkpoints are permanent audit evidence, so every public key ever used verifies checkpoints forever
 *   (public keys are not secret; only the current key keeps a private half).
 */

/** The public half as published in the JWKS; the only shape a key leaves the store in. */
export interface PublicSigningJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly kid: string;
  readonly alg: 'EdDSA';
  readonly use: 'sig';
}

/**
 * The public half of an RS256 key, for workload identity tokens (docs/identity.md): cloud token exchanges such as
 * Entra ID's federated credentials verify RS256, not EdDSA, so those tokens have a ring of their own.
 */
export interface PublicRsaSigningJwk {
  readonly kty: 'RSA';
  readonly n: string;
  readonly e: string;
  readonly kid: string;
  readonly alg: 'RS256';
  readonly use: 'sig';
}

/** Any published public key; a ring holds keys of one kind. */
export type PublicJwk = PublicSigningJwk | PublicRsaSigningJwk;

export interface SigningKeyInfo<J extends PublicJwk = PublicSigningJwk> {
  /** RFC 7638 thumbprint of the public key. */
  readonly kid: string;
  /** 1 for the first key, +1 per rotation. */
  readonly generation: number;
  /** ISO-8601: when it became current. */
  readonly createdAt: string;
  /** ISO-8601: when a newer key replaced it; absent for the current key. */
  readonly retiredAt?: string;
  readonly publicJwk: J;
}

/** What the ring decisions read of a key, whatever its algorithm. */
type RingKey = SigningKeyInfo<PublicJwk>;

export interface SigningKeyPolicy {
  /** A rotation is skipped while the current key is younger than this (two timers firing rotate once). */
  readonly minKeyAgeMs: number;
  /** The longest a sandbox token may live. */
  readonly maxTokenLifetimeMs: number;
  /** Allowed disagreement between the platform's clock and a verifier's. */
  readonly clockSkewMs: number;
  /** How long an instance may keep signing with a key it loaded before it looks for a newer one. */
  readonly cacheTtlMs: number;
}

const MINUTE = 60_000;

export const defaultSigningKeyPolicy: SigningKeyPolicy = {
  minKeyAgeMs: 60 * MINUTE,
  maxTokenLifetimeMs: 15 * MINUTE,
  clockSkewMs: 1 * MINUTE,
  cacheTtlMs: 1 * MINUTE,
};

/** The key that signs now: the newest one not retired. */
export function currentKey<K extends RingKey>(keys: readonly K[]): K | undefined {
  let current: K | undefined;
  for (const key of keys) if (key.retiredAt === undefined && (!current || key.generation > current.generation)) current = key;
  return current;
}

export type RotationDecision<K extends RingKey = SigningKeyInfo> =
  | { readonly kind: 'skip'; readonly reason: string; readonly current: K }
  | { readonly kind: 'rotate'; readonly generation: number; readonly retire?: K };

/**
 * Whether `rotate(now)` makes a new key. The version guard of the store makes concurrent rotations yield one
 * winner; this makes a second, later firing of the same schedule (another instance, a retry) a no-op.
 */
export function decideRotation<K extends RingKey>(
  keys: readonly K[],
  now: Date,
  policy: SigningKeyPolicy,
  options: { readonly force?: boolean } = {},
): RotationDecision<K> {
  const current = currentKey(keys);
  const generation = keys.reduce((max, key) => Math.max(max, key.generation), 0) + 1;
  if (!current) return { kind: 'rotate', generation };
  const age = now.getTime() - Date.parse(current.createdAt);
  if (!options.force && age < policy.minKeyAgeMs)
    return { kind: 'skip', reason: `key ${current.kid} is ${Math.max(0, Math.floor(age / 1000))} s old, younger than the minimum age`, current };
  return { kind: 'rotate', generation, retire: current };
}

/**
 * The last instant a token signed by `key` can still be valid: tokens are minted with the key an instance holds,
 * which may be a retired one for up to the cache TTL after retirement, and live at most the token lifetime.
 * Undefined for the current key (it verifies as long as it is current).
 */
export function tokenVerificationDeadline(key: RingKey, policy: SigningKeyPolicy): Date | undefined {
  if (key.retiredAt === undefined) return undefined;
  return new Date(Date.parse(key.retiredAt) + policy.cacheTtlMs + policy.maxTokenLifetimeMs + policy.clockSkewMs);
}

/** Keys that may verify a sandbox token at `now`: the current one and retired ones still inside their window. */
export function tokenVerificationKeys<K extends RingKey>(keys: readonly K[], now: Date, policy: SigningKeyPolicy): K[] {
  return keys
    .filter((key) => {
      const deadline = tokenVerificationDeadline(key, policy);
      return deadline === undefined || now.getTime() < deadline.getTime();
    })
    .sort((a, b) => b.generation - a.generation);
}

/** Keys that verify a head checkpoint: every key ever used, because checkpoints are kept for good. */
export function checkpointVerificationKeys<K extends RingKey>(keys: readonly K[]): K[] {
  return [...keys].sort((a, b) => b.generation - a.generation);
}

/** The subject of a sandbox identity token; run and container ids may not contain the separators. */
export function sandboxSubject(runId: string, containerId: string): string {
  for (const [what, id] of [['run', runId], ['container', containerId]] as const)
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) throw new RangeError(`A ${what} id in a sandbox token is 1-128 of [A-Za-z0-9._-]`);
  return `run:${runId}/container:${containerId}`;
}

/** The inverse of `sandboxSubject`, or undefined when `sub` is not one. */
export function parseSandboxSubject(sub: string): { runId: string; containerId: string } | undefined {
  const match = /^run:([A-Za-z0-9._-]{1,128})\/container:([A-Za-z0-9._-]{1,128})$/.exec(sub);
  return match ? { runId: match[1]!, containerId: match[2]! } : undefined;
}
