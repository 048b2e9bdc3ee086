import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet } from 'jose';
import { JwtCallerAuthenticator } from '../../infra/identity/jwtCallerAuthenticator';

export const TEST_ISSUER = 'https://test-issuer.disco-parrot.local';
export const TEST_AUDIENCE = 'api://disco-parrot-test';

/** An issuer for tests: mints tokens for any user and hands out an authenticator that trusts only it. */
export async function createTestIssuer(options: { issuer?: string; audience?: string } = {}) {
  const issuer = options.issuer ?? TEST_ISSUER;
  const audience = options.audience ?? TEST_AUDIENCE;
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const kid = `test-${Math.random().toString(36).slice(2, 10)}`;
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' }] };
  return {
    issuer,
    audience,
    jwks,
    authenticator: new JwtCallerAuthenticator({ issuer, audience, jwks }),
    async token(user: string, overrides: { expiresIn?: string | number; issuer?: string; audience?: string; claims?: Record<string, unknown> } = {}): Promise<string> {
      return new SignJWT({ ...overrides.claims })
        .setProtectedHeader({ alg: 'EdDSA', kid })
        .setSubject(user)
        .setIssuer(overrides.issuer ?? issuer)
        .setAudience(overrides.audience ?? audience)
        .setIssuedAt()
        .setExpirationTime(overrides.expiresIn ?? '10m')
        .sign(privateKey);
    },
  };
}

export type TestIssuer = Awaited<ReturnType<typeof createTestIssuer>>;
