import { describe, expect, it } from 'vitest';
import {
  checkpointVerificationKeys, currentKey, decideRotation, defaultSigningKeyPolicy, parseSandboxSubject, sandboxSubject,
  tokenVerificationDeadline, tokenVerificationKeys, type SigningKeyInfo,
} from '../../domain/signingKeys';

const policy = defaultSigningKeyPolicy;
const T0 = Date.parse('2030-01-06T03:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

function aKey(generation: number, createdMs: number, retiredMs?: number): SigningKeyInfo {
  const kid = `kid-${generation}`;
  return {
    kid, generation, createdAt: at(createdMs), ...(retiredMs !== undefined ? { retiredAt: at(retiredMs) } : {}),
    publicJwk: { kty: 'OKP', crv: 'Ed25519', x: `x${generation}`, kid, alg: 'EdDSA', use: 'sig' },
  };
}
const ring = [aKey(1, 0, 7 * DAY), aKey(2, 7 * DAY, 14 * DAY), aKey(3, 14 * DAY)];

describe('signing key rotation decisions', () => {
  it('the current key is the newest unretired one', () => {
    expect(currentKey(ring)?.kid).toBe('kid-3');
    expect(currentKey([])).toBeUndefined();
  });

  it('an empty ring rotates to generation 1 without retiring anything', () => {
    expect(decideRotation([], new Date(T0), policy)).toEqual({ kind: 'rotate', generation: 1 });
  });

  it('skips while the current key is younger than the minimum age, unless forced', () => {
    const soon = new Date(T0 + 14 * DAY + policy.minKeyAgeMs - 1);
    expect(decideRotation(ring, soon, policy)).toMatchObject({ kind: 'skip', current: { kid: 'kid-3' } });
    expect(decideRotation(ring, soon, policy, { force: true })).toMatchObject({ kind: 'rotate', generation: 4, retire: { kid: 'kid-3' } });
    expect(decideRotation(ring, new Date(T0 + 14 * DAY + policy.minKeyAgeMs), policy)).toMatchObject({ kind: 'rotate', generation: 4 });
  });

  it('a retired key verifies tokens until the last token it could have signed has expired, checkpoints for good', () => {
    const deadline = tokenVerificationDeadline(ring[1]!, policy)!;
    expect(deadline.getTime()).toBe(T0 + 14 * DAY + policy.cacheTtlMs + policy.maxTokenLifetimeMs + policy.clockSkewMs);
    expect(tokenVerificationDeadline(ring[2]!, policy)).toBeUndefined();
    expect(tokenVerificationKeys(ring, new Date(deadline.getTime() - 1), policy).map((k) => k.kid)).toEqual(['kid-3', 'kid-2']);
    expect(tokenVerificationKeys(ring, deadline, policy).map((k) => k.kid)).toEqual(['kid-3']);
    expect(checkpointVerificationKeys(ring).map((k) => k.kid)).toEqual(['kid-3', 'kid-2', 'kid-1']);
  });

  it('sandbox subjects round-trip and refuse ids that would make them ambiguous', () => {
    expect(parseSandboxSubject(sandboxSubject('run-1', 'agent.0'))).toEqual({ runId: 'run-1', containerId: 'agent.0' });
    for (const [run, container] of [['a/b', 'c'], ['a', 'c/container:d'], ['', 'c'], ['a', 'x'.repeat(129)]])
      expect(() => sandboxSubject(run!, container!)).toThrow(RangeError);
    expect(parseSandboxSubject('run:a/container:b/container:c')).toBeUndefined();
  });
});
