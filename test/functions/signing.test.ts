import { InvocationContext } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ROTATION_SCHEDULE, JWKS_ROUTE, jwksResponse, rotateSigningKeysNow } from '../../functions/signing';
import { loadSettings } from '../../functions/settings';
import { compileRoute, matchRoute } from '../../localhost/routes';
import { DAY, aPlatform } from '../infra/identity/signingTestKit';

const PUBLIC_MEMBERS = ['alg', 'crv', 'kid', 'kty', 'use', 'x'];
/** Every private or symmetric member a JWK can carry (RFC 7518 §6), none of which may ever be published. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

function aContext(logs: string[]): InvocationContext {
  return new InvocationContext({ functionName: 'test', logHandler: (level, ...args) => logs.push(`${level} ${args.map(String).join(' ')}`) });
}

describe('GET /.well-known/jwks.json', () => {
  it('publishes the current and previous public keys, public members only, with no private member', async () => {
    const p = aPlatform();
    const first = await p.keys.signingKey();
    const privateD = (JSON.parse((await p.repository.privateJwk(first.kid))!) as { d: string }).d;
    p.clock.advance(7 * DAY);
    await p.keys.rotate();
    const response = await jwksResponse(p.keys, aContext([]));
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({ 'content-type': 'application/jwk-set+json' });
    const body = JSON.parse(JSON.stringify(response.jsonBody)) as { keys: Record<string, unknown>[] };
    expect(body.keys).toHaveLength(2);
    expect(body.keys[1]!.kid).toBe(first.kid);
    for (const key of body.keys) {
      expect(Object.keys(key).sort()).toEqual(PUBLIC_MEMBERS);
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
      for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member);
    }
    expect(JSON.stringify(response.jsonBody)).not.toContain(privateD);
  });

  it('answers 503 problem+json, without details, when the keys cannot be loaded', async () => {
    const p = aPlatform();
    const logs: string[] = [];
    const broken = Object.assign(Object.create(p.keys) as typeof p.keys, { jwks: async () => Promise.reject(new Error('table down: secret-ish detail')) });
    const response = await jwksResponse(broken, aContext(logs));
    expect(response.status).toBe(503);
    expect(JSON.parse(String(response.body))).toMatchObject({ code: 'SIGNING.KEYS_UNAVAILABLE' });
    expect(String(response.body)).not.toContain('secret-ish');
    expect(logs.join('\n')).toContain('jwks failed');
  });

  it('is served at the root of the route prefix by the local host router (/api/.well-known/jwks.json)', () => {
    expect(matchRoute(compileRoute(JWKS_ROUTE), ['.well-known', 'jwks.json'])).toEqual({});
    expect(matchRoute(compileRoute(JWKS_ROUTE), ['well-known', 'jwks.json'])).toBeUndefined();
  });
});

describe('the rotateSigningKeys timer', () => {
  it('rotates once when two instances fire together, and logs kids but no key material', async () => {
    const a = aPlatform();
    const b = a.another();
    const first = await a.keys.signingKey();
    a.clock.advance(7 * DAY);
    const logs: string[] = [];
    await Promise.all([rotateSigningKeysNow(a.keys, aContext(logs)), rotateSigningKeysNow(b.keys, aContext(logs))]);
    const ring = await a.keys.ring();
    expect(ring.map((k) => k.generation)).toEqual([2, 1]);
    expect(logs.filter((l) => l.includes('is current'))).toHaveLength(1);
    expect(logs.filter((l) => l.includes('skipped'))).toHaveLength(1);
    const d = (JSON.parse((await a.repository.privateJwk(ring[0]!.kid))!) as { d: string }).d;
    expect(logs.join('\n')).not.toContain(d);
    expect(logs.join('\n')).toContain(first.kid);

    // Firing again the same day is a no-op.
    a.clock.advance(2 * 60_000);
    await rotateSigningKeysNow(a.keys, aContext(logs));
    expect((await a.keys.ring()).map((k) => k.generation)).toEqual([2, 1]);
  });

  it('reads its schedule from settings, weekly by default, and production refuses an http token issuer', () => {
    const base = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };
    expect(loadSettings(base).SIGNING_KEY_ROTATION_SCHEDULE).toBe(DEFAULT_ROTATION_SCHEDULE);
    expect(() => loadSettings({ ...base, SIGNING_KEY_ROTATION_SCHEDULE: '0 3 * * 0' })).toThrow(/SIGNING_KEY_ROTATION_SCHEDULE/);
    expect(() => loadSettings({ ...base, SANDBOX_TOKEN_MINUTES: '61' })).toThrow(/SANDBOX_TOKEN_MINUTES/);
    const production = { DISCO_ENV: 'production', AzureWebJobsStorage__accountName: 'discoparrot', AUTH_MODE: 'entra', AUTH_ISSUER: 'https://login.example/', AUTH_JWKS_URL: 'https://login.example/keys', VAULT_MASTER_KEY_ID: 'https://kv.example/keys/master', VAULT_SINGLE_TENANT: 'true' };
    expect(() => loadSettings(production)).toThrow(/PLATFORM_ISSUER/);
    expect(loadSettings({ ...production, PLATFORM_ISSUER: 'https://platform.example' }).PLATFORM_ISSUER).toBe('https://platform.example');
  });
});
