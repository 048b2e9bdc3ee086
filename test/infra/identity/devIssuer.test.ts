import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DevIssuerRefusedError,
  devIssuerJwks,
  devIssuerSettings,
  loadOrCreateDevIssuerKey,
  mintDevToken,
} from '../../../infra/identity/devIssuer';

describe('local dev issuer', () => {
  let keyDir: string;
  const settings = () => devIssuerSettings({ DEV_ISSUER_KEY_DIR: keyDir });

  beforeEach(() => {
    keyDir = path.join(mkdtempSync(path.join(tmpdir(), 'dev-issuer-')), 'keys');
  });
  afterEach(() => rmSync(path.dirname(keyDir), { recursive: true, force: true }));

  it('mints a one-hour EdDSA token for the user that verifies against its JWKS with the configured issuer and audience', async () => {
    const s = settings();
    const token = await mintDevToken('alice', s);
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(await devIssuerJwks(s)), {
      issuer: 'http://127.0.0.1:7071/dev-issuer',
      audience: 'api://disco-parrot',
    });
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(payload.sub).toBe('alice');
    expect(payload.oid).toBe('alice');
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(3600);
  });

  it('takes issuer and audience from settings, and a token for one audience fails for another', async () => {
    const s = devIssuerSettings({ DEV_ISSUER_KEY_DIR: keyDir, AUTH_AUDIENCE: 'api://other', DEV_ISSUER_URL: 'http://127.0.0.1:9999/dev-issuer' });
    const token = await mintDevToken('bob', s);
    expect(decodeJwt(token)).toMatchObject({ aud: 'api://other', iss: 'http://127.0.0.1:9999/dev-issuer' });
    await expect(jwtVerify(token, createLocalJWKSet(await devIssuerJwks(s)), { audience: 'api://disco-parrot' })).rejects.toThrow();
  });

  it('keeps the private key in a 0600 file and never publishes private key material in the JWKS', async () => {
    const s = settings();
    const jwks = await devIssuerJwks(s);
    expect(statSync(path.join(keyDir, 'private-key.pem')).mode & 0o777).toBe(0o600);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect(Object.keys(jwks.keys[0] ?? {}).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
  });

  it('tightens a key file someone made readable by others back to 0600', async () => {
    const s = settings();
    await loadOrCreateDevIssuerKey(s);
    chmodSync(path.join(keyDir, 'private-key.pem'), 0o644);
    await loadOrCreateDevIssuerKey(s);
    expect(statSync(path.join(keyDir, 'private-key.pem')).mode & 0o777).toBe(0o600);
  });

  it('creates one key when many first uses race, and reuses it afterwards', async () => {
    const s = settings();
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateDevIssuerKey(s)));
    expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
    const token = await mintDevToken('carol', s);
    expect(decodeProtectedHeader(token).kid).toBe(keys[0]?.kid);
  });

  it('refuses user names that are empty, too long or contain whitespace or control characters', async () => {
    const s = settings();
    for (const bad of ['', ' ', 'a b', 'x\n', 'y\u0000', 'z'.repeat(257)]) await expect(mintDevToken(bad, s)).rejects.toThrow(/user name/);
  });

  it('is refused in the production configuration', () => {
    expect(() => devIssuerSettings({ DISCO_ENV: 'production', DEV_ISSUER_KEY_DIR: keyDir })).toThrow(DevIssuerRefusedError);
    expect(() => devIssuerSettings({ DISCO_ENV: 'production' })).toThrow(/production/);
  });
});
