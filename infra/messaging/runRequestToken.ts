import { createHash, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import { SignJWT, createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';

/**
 * A queued run request proves who asked (docs/messaging.md): its `token` is a compact JWS (EdDSA) by a
 * registered producer — a key the platform's configuration names, never one read from storage — binding the
 * workspace, the requesting user, a single-use request id, the spec's digest and a short expiry. It is not a
 * user's bearer token and opens no API route (its audience and type are its own).
 */
export const RUN_REQUEST_AUDIENCE = 'disco-parrot:runs';
export const RUN_REQUEST_TYPE = 'run-request+jwt';
/** A request older than this, or signed to live longer, is refused: a captured message is soon worthless. */
export const MAX_RUN_REQUEST_LIFETIME_SECONDS = 3600;
/** Producer and platform clocks may differ by this much. */
const CLOCK_TOLERANCE_SECONDS = 30;

export const RUN_REQUEST_REFUSAL = {
  UNSIGNED: 'RUN_REQUEST.UNSIGNED',
  UNTRUSTED_PRODUCER: 'RUN_REQUEST.UNTRUSTED_PRODUCER',
  EXPIRED: 'RUN_REQUEST.EXPIRED',
  BAD_CLAIMS: 'RUN_REQUEST.BAD_CLAIMS',
  MISMATCH: 'RUN_REQUEST.MISMATCH',
} as const;

export class RunRequestRefused extends Error {
  override readonly name = 'RunRequestRefused';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface RunRequestClaims {
  readonly workspaceId: string;
  readonly requestedBy: string;
  readonly requestId: string;
  /** `specDigest(spec)` of the spec the message carries. */
  readonly specDigest: string;
  readonly expiresAt: Date;
}

/** SHA-256 (base64url) of the spec's canonical JSON (RFC 8785), so key order and spacing do not matter. */
export function specDigest(spec: unknown): string {
  return createHash('sha256').update(canonicalize(spec) ?? 'null', 'utf8').digest('base64url');
}

/**
 * The run id a request id maps to: derived, not minted, so a replay whose ledger row was removed still lands on
 * the run stream that exists (its first insert refuses a second start). RFC 9562 version 8 (custom) layout.
 */
export function runIdForRequest(workspaceId: string, requestId: string): string {
  const bytes = createHash('sha256').update(`disco-parrot/run-request\0${workspaceId}\0${requestId}`, 'utf8').digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface ProducerKey {
  readonly privateKey: KeyObject;
  readonly kid: string;
}

/** A producer's signature over one request (the producer helper and tests use it; the platform only verifies). */
export async function signRunRequest(
  producer: ProducerKey,
  request: { workspaceId: string; requestedBy: string; requestId: string; spec: unknown; ttlSeconds?: number; now?: Date },
): Promise<string> {
  const issuedAt = Math.floor((request.now ?? new Date()).getTime() / 1000);
  return new SignJWT({ ws: request.workspaceId, spec_sha256: specDigest(request.spec) })
    .setProtectedHeader({ alg: 'EdDSA', kid: producer.kid, typ: RUN_REQUEST_TYPE })
    .setAudience(RUN_REQUEST_AUDIENCE)
    .setSubject(request.requestedBy)
    .setJti(request.requestId)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + (request.ttlSeconds ?? 600))
    .sign(producer.privateKey);
}

/** Verifies tokens against the registered producers' public keys; refusals say why, never quoting the token. */
export function runRequestVerifier(producers: JSONWebKeySet, now: () => Date = () => new Date()): (token: string) => Promise<RunRequestClaims> {
  const keys = createLocalJWKSet(producers);
  return async (token) => {
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token))
      throw new RunRequestRefused(RUN_REQUEST_REFUSAL.UNSIGNED, 'the token is not a compact JWS');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: ['EdDSA'],
        audience: RUN_REQUEST_AUDIENCE,
        typ: RUN_REQUEST_TYPE,
        requiredClaims: ['sub', 'jti', 'iat', 'exp'],
        maxTokenAge: MAX_RUN_REQUEST_LIFETIME_SECONDS,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: now(),
      }));
    } catch (error) {
      throw refusalOf(error);
    }
    const { ws, sub, jti, spec_sha256: digest, iat, exp } = payload;
    if (typeof ws !== 'string' || typeof sub !== 'string' || typeof jti !== 'string' || typeof digest !== 'string')
      throw new RunRequestRefused(RUN_REQUEST_REFUSAL.BAD_CLAIMS, 'the token lacks ws, sub, jti or spec_sha256');
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > MAX_RUN_REQUEST_LIFETIME_SECONDS)
      throw new RunRequestRefused(RUN_REQUEST_REFUSAL.EXPIRED, `the token is signed to live longer than ${MAX_RUN_REQUEST_LIFETIME_SECONDS} s`);
    return { workspaceId: ws, requestedBy: sub, requestId: jti, specDigest: digest, expiresAt: new Date(exp * 1000) };
  };
}

function refusalOf(error: unknown): RunRequestRefused {
  if (error instanceof joseErrors.JWTExpired) return new RunRequestRefused(RUN_REQUEST_REFUSAL.EXPIRED, 'the token has expired (or was issued too long ago)');
  if (error instanceof joseErrors.JOSEAlgNotAllowed || error instanceof joseErrors.JOSENotSupported)
    return new RunRequestRefused(RUN_REQUEST_REFUSAL.UNSIGNED, 'the token is not signed with EdDSA');
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys || error instanceof joseErrors.JWSSignatureVerificationFailed)
    return new RunRequestRefused(RUN_REQUEST_REFUSAL.UNTRUSTED_PRODUCER, 'the token is not signed by a registered producer');
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return new RunRequestRefused(RUN_REQUEST_REFUSAL.BAD_CLAIMS, `the token's ${error.claim} claim is not acceptable`);
  if (error instanceof joseErrors.JOSEError) return new RunRequestRefused(RUN_REQUEST_REFUSAL.UNSIGNED, `the token does not verify (${error.code})`);
  return new RunRequestRefused(RUN_REQUEST_REFUSAL.UNSIGNED, 'the token does not verify');
}
