import { SignJWT, createLocalJWKSet, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { PlatformSandboxTokens } from '../../../infra/identity/sandboxIdentityTokens';
import { DAY, MINUTE, aPlatform, type Platform } from './signingTestKit';

const ISSUER = 'https://platform.disco-parrot.test';
const AUDIENCE = 'https://tracker.example';
const tokensOf = (p: Platform) => new PlatformSandboxTokens(p.keys, p.clock, { issuer: ISSUER, audience: AUDIENCE });

/** What a third party does: fetch the JWKS (here handed over as JSON) and verify with an off-the-shelf library. */
async function thirdPartyVerifies(p: Platform, token: string, jwks: unknown): Promise<boolean> {
  try {
    await jwtVerify(token, createLocalJWKSet(JSON.parse(JSON.stringify(jwks)) as Parameters<typeof createLocalJWKSet>[0]), {
      issuer: ISSUER, audience: AUDIENCE, algorithms: ['EdDSA'], currentDate: p.clock.now(),
    });
    return true;
  } catch {
    return false;
  }
}

describe('sandbox identity tokens', () => {
  it('mints a 15-minute EdDSA JWT for one container that a third party verifies against the JWKS', async () => {
    const p = aPlatform();
    const tokens = tokensOf(p);
    const minted = await tokens.mint({ runId: 'run-1', containerId: 'agent-0' });
    expect(decodeProtectedHeader(minted.token)).toEqual({ alg: 'EdDSA', kid: minted.kid, typ: 'JWT' });
    expect(minted.expiresAt).toBe(new Date(p.clock.now().getTime() + 15 * MINUTE).toISOString());
    expect(await tokens.verify(minted.token)).toEqual({
      runId: 'run-1', containerId: 'agent-0', subject: 'run:run-1/container:agent-0', audience: AUDIENCE, expiresAt: minted.expiresAt, kid: minted.kid,
    });
    expect(await thirdPartyVerifies(p, minted.token, await p.keys.jwks())).toBe(true);
  });

  it('after a rotation, tokens of the previous key verify until they expire, and new tokens use the new key', async () => {
    const p = aPlatform();
    const tokens = tokensOf(p);
    p.clock.advance(7 * DAY);
    const old = await tokens.mint({ runId: 'r', containerId: 'c' });
    p.clock.advance(5 * MINUTE);
    const rotation = await p.keys.rotate({ force: true });
    expect(rotation).toMatchObject({ rotated: true, previousKid: old.kid });
    const fresh = await tokens.mint({ runId: 'r', containerId: 'c2' });
    expect(fresh.kid).toBe(rotation.kid);

    p.clock.advance(9 * MINUTE); // the old token is 14 minutes old
    const jwks = await p.keys.jwks();
    expect(jwks.keys.map((k) => k.kid)).toEqual([rotation.kid, old.kid]);
    await expect(tokens.verify(old.token)).resolves.toMatchObject({ kid: old.kid, containerId: 'c' });
    expect(await thirdPartyVerifies(p, old.token, jwks)).toBe(true);

    p.clock.advance(2 * MINUTE + 1000); // 16 minutes: past exp and past the clock-skew tolerance
    await expect(tokens.verify(old.token)).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID', message: expect.stringContaining('expired') });
    await expect(tokens.verify(fresh.token)).resolves.toMatchObject({ kid: rotation.kid });
  });

  it('an expired token of a rotated-out key does not verify, and the key leaves the JWKS when no token of it can be live', async () => {
    const p = aPlatform();
    const tokens = tokensOf(p);
    await p.keys.signingKey();
    p.clock.advance(7 * DAY);
    const old = await tokens.mint({ runId: 'r', containerId: 'c' });
    expect(await p.keys.rotate()).toMatchObject({ rotated: true, previousKid: old.kid });
    p.clock.advance(p.policy.cacheTtlMs + p.policy.maxTokenLifetimeMs + p.policy.clockSkewMs);
    expect((await p.keys.jwks()).keys.map((k) => k.kid)).not.toContain(old.kid);
    await expect(tokens.verify(old.token)).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID' });
    expect(await thirdPartyVerifies(p, old.token, await p.keys.jwks())).toBe(false);
  });

  it('a token signed by an unknown key never verifies, whatever kid it claims', async () => {
    const p = aPlatform();
    const tokens = tokensOf(p);
    const { kid } = await p.keys.signingKey();
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const now = Math.floor(p.clock.now().getTime() / 1000);
    const forge = (claimedKid: string | undefined, alg = 'EdDSA') =>
      new SignJWT({})
        .setProtectedHeader({ alg, typ: 'JWT', ...(claimedKid ? { kid: claimedKid } : {}) })
        .setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('run:r/container:c').setIssuedAt(now).setExpirationTime(now + 600).setJti('j')
        .sign(attacker.privateKey);
    for (const token of [await forge(kid), await forge('someone-elses-key'), await forge(undefined)]) {
      await expect(tokens.verify(token)).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID' });
      expect(await thirdPartyVerifies(p, token, await p.keys.jwks())).toBe(false);
    }
    // Even after the ring changes, an unknown kid stays unknown.
    p.clock.advance(7 * DAY);
    await p.keys.rotate();
    await expect(tokens.verify(await forge('someone-elses-key'))).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID' });
  });

  it('refuses a token for another audience, from another issuer, tampered, or of the wrong type', async () => {
    const p = aPlatform();
    const minted = await tokensOf(p).mint({ runId: 'r', containerId: 'c' });
    const other = new PlatformSandboxTokens(p.keys, p.clock, { issuer: ISSUER, audience: 'https://someone-else.example' });
    await expect(other.verify(minted.token)).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID', message: expect.stringContaining('aud') });
    const otherIssuer = new PlatformSandboxTokens(p.keys, p.clock, { issuer: 'https://evil.example', audience: AUDIENCE });
    await expect(otherIssuer.verify(minted.token)).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID' });

    const [h, body, sig] = minted.token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'run:r/container:other' })).toString('base64url')}.${sig}`;
    await expect(tokensOf(p).verify(tampered)).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID' });

    // A checkpoint is signed by the same key but is not a token.
    const checkpoint = await p.checkpointer.sign({ workspaceId: 'ws', sequence: 1, hash: 'a'.repeat(64) });
    await expect(tokensOf(p).verify(checkpoint)).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID' });
    await expect(tokensOf(p).verify('garbage')).rejects.toMatchObject({ code: 'SIGNING.TOKEN_INVALID' });
    // The error names a reason, never the token.
    await tokensOf(p).verify(tampered).catch((error: Error) => expect(error.message).not.toContain(sig));
  });

  it('refuses identities that would make the subject ambiguous, and lifetimes past the policy', async () => {
    const p = aPlatform();
    await expect(tokensOf(p).mint({ runId: 'r/container:x', containerId: 'c' })).rejects.toThrow(RangeError);
    await expect(tokensOf(p).mint({ runId: 'r', containerId: '' })).rejects.toThrow(RangeError);
    expect(() => new PlatformSandboxTokens(p.keys, p.clock, { issuer: ISSUER, audience: AUDIENCE, lifetimeMs: 16 * MINUTE })).toThrow(RangeError);
  });
});
