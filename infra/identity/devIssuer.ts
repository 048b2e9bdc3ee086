import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT, calculateJwkThumbprint, type JSONWebKeySet, type JWK } from 'jose';
import { findProjectRoot } from '../system/projectRoot';

/**
 * The local development token issuer: an Ed25519 key generated on first use under `.azurite/dev-issuer/`
 * (private key mode 0600), tokens for any user name, and the public JWKS the API verifies them with.
 * It exists only for local development; the production configuration refuses it.
 */

export const DEFAULT_DEV_ISSUER = 'http://127.0.0.1:7071/dev-issuer';
export const DEFAULT_AUDIENCE = 'api://disco-parrot';
const KEY_FILE = 'private-key.pem';
const TOKEN_LIFETIME_SECONDS = 3600;

export class DevIssuerRefusedError extends Error {
  override readonly name = 'DevIssuerRefusedError';
  readonly code = 'AUTH.DEV_ISSUER_REFUSED';
}

export interface DevIssuerSettings {
  readonly issuer: string;
  readonly audience: string;
  readonly keyDir: string;
}

/**
 * Issuer, audience and key folder from settings: `DEV_ISSUER_URL`, `AUTH_AUDIENCE`, `DEV_ISSUER_KEY_DIR`.
 * Throws DevIssuerRefusedError when `DISCO_ENV=production`.
 */
export function devIssuerSettings(env: Readonly<Record<string, string | undefined>> = process.env): DevIssuerSettings {
  if (env.DISCO_ENV === 'production')
    throw new DevIssuerRefusedError('The local dev issuer is refused in the production configuration (DISCO_ENV=production); use Entra ID.');
  return {
    issuer: env.DEV_ISSUER_URL ?? DEFAULT_DEV_ISSUER,
    audience: env.AUTH_AUDIENCE ?? DEFAULT_AUDIENCE,
    keyDir: path.resolve(env.DEV_ISSUER_KEY_DIR ?? path.join(findProjectRoot(), '.azurite', 'dev-issuer')),
  };
}

export interface DevIssuerKey {
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
  readonly kid: string;
}

/** Loads the issuer's key, creating it on first use. Concurrent first uses agree on one key. */
export async function loadOrCreateDevIssuerKey(settings: DevIssuerSettings = devIssuerSettings()): Promise<DevIssuerKey> {
  return loadOrCreateLocalEd25519Key(settings.keyDir);
}

/**
 * A local Ed25519 key in `keyDir/private-key.pem` (0600, folder 0700), made on first use; concurrent first
 * uses agree on one key. The dev issuer and the local run-request producer each keep one.
 */
export async function loadOrCreateLocalEd25519Key(keyDir: string): Promise<DevIssuerKey> {
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  const file = path.join(keyDir, KEY_FILE);
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
    // Written whole to a private temp file, then linked into place: a reader never sees half a key, and
    // a concurrent creator's link fails with EEXIST so both end up with the first key.
    const temp = path.join(keyDir, `.${KEY_FILE}.${randomBytes(6).toString('hex')}`);
    writeFileSync(temp, pem, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(temp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(temp);
    }
  }
  // A key someone else can read is no longer private to this user; tighten it rather than use it loosely.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const privateKey = createPrivateKey(readFileSync(file, 'utf8'));
  const exported = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(exported);
  return { privateKey, kid, publicJwk: { ...exported, kid, alg: 'EdDSA', use: 'sig' } };
}

/** The public key set the API verifies dev tokens with (`createLocalJWKSet(await devIssuerJwks())`). */
export async function devIssuerJwks(settings: DevIssuerSettings = devIssuerSettings()): Promise<JSONWebKeySet> {
  const key = await loadOrCreateDevIssuerKey(settings);
  return { keys: [key.publicJwk] };
}

const USER = /^[^\s\p{Cc}]{1,256}$/u;

/** A bearer JWT for `user` (its `sub` and `oid`), valid for one hour. */
export async function mintDevToken(user: string, settings: DevIssuerSettings = devIssuerSettings(), now: Date = new Date()): Promise<string> {
  if (!USER.test(user)) throw new Error('A dev token needs a user name: 1 to 256 characters, no spaces or control characters.');
  const key = await loadOrCreateDevIssuerKey(settings);
  const issuedAt = Math.floor(now.getTime() / 1000);
  return new SignJWT({ oid: user, name: user, preferred_username: user })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setSubject(user)
    .setIssuedAt(issuedAt)
    .setNotBefore(issuedAt)
    .setExpirationTime(issuedAt + TOKEN_LIFETIME_SECONDS)
    .setJti(randomBytes(12).toString('base64url'))
    .sign(key.privateKey);
}
