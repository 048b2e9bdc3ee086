import { describe, expect, it } from 'vitest';
import { PLATFORM_PARTITION, signingKeysStreamId } from '../../../domain/streams';
import { DAY, MINUTE, aPlatform, tableClient } from './signingTestKit';

/** Every property value of every row of a table, as text, as someone with read access to storage sees it. */
async function tableText(name: string): Promise<string> {
  const out: string[] = [];
  for await (const row of tableClient(name).listEntities()) out.push(JSON.stringify(row));
  return out.join('\n');
}

describe('platform signing keys at rest', () => {
  it('creates the first key on first use, sealed at rest, and records it in the platform log without key material', async () => {
    const p = aPlatform();
    const { kid } = await p.keys.signingKey();
    const jwk = JSON.parse((await p.repository.privateJwk(kid)) ?? '{}') as { d?: string; x?: string; kty?: string; crv?: string };
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid });
    expect(jwk.d).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = await tableText(p.keyTable);
    expect(stored).toContain(kid);
    expect(stored).toContain(jwk.x);
    // The private half never rests in plain text, in any encoding a reader might try.
    for (const form of [jwk.d!, Buffer.from(jwk.d!, 'base64url').toString('hex'), Buffer.from(jwk.d!, 'base64url').toString('base64')])
      expect(stored).not.toContain(form);

    const log = await p.store.readStream(PLATFORM_PARTITION, signingKeysStreamId());
    expect(log.events.map((e) => ({ type: e.type, data: e.data }))).toEqual([{ type: 'SigningKeyRotated', data: { kid, generation: 1, activatedAt: p.clock.now().toISOString() } }]);
    const logText = await tableText(p.eventTable);
    expect(logText).not.toContain(jwk.d);
    expect(logText).not.toContain(jwk.x);
    expect(await p.store.verify(PLATFORM_PARTITION)).toMatchObject({ ok: true, records: 1 });
  });

  it('a sealed private key does not open under another master key', async () => {
    const p = aPlatform();
    const { kid } = await p.keys.signingKey();
    const stranger = aPlatform({ keyTable: p.keyTable });
    await expect(stranger.repository.privateJwk(kid)).rejects.toMatchObject({ code: expect.stringMatching(/^VAULT\./) });
  });

  it('rotates once the current key is old enough, strips the retired private half and keeps its public half', async () => {
    const p = aPlatform();
    const first = await p.keys.signingKey();
    const firstX = (JSON.parse((await p.repository.privateJwk(first.kid))!) as { x: string }).x;
    p.clock.advance(10 * MINUTE);
    expect(await p.keys.rotate()).toMatchObject({ rotated: false, kid: first.kid, reason: expect.stringContaining('younger') });

    p.clock.advance(7 * DAY);
    const outcome = await p.keys.rotate();
    expect(outcome).toMatchObject({ rotated: true, generation: 2, previousKid: first.kid, recorded: true });
    expect(outcome.kid).not.toBe(first.kid);
    expect((await p.keys.signingKey()).kid).toBe(outcome.kid);
    expect(await p.repository.privateJwk(first.kid)).toBeUndefined();
    const retiredRow = [...(await tableText(p.keyTable)).split('\n')].find((r) => r.includes(`"kid":"${first.kid}"`))!;
    expect(retiredRow).not.toMatch(/sealed|wrappedKey/);
    const ring = await p.keys.ring();
    expect(ring.map((k) => [k.generation, k.kid, k.retiredAt !== undefined])).toEqual([[2, outcome.kid, false], [1, first.kid, true]]);
    expect(ring[1]!.publicJwk.x).toBe(firstX);

    const events = (await p.store.readStream(PLATFORM_PARTITION, signingKeysStreamId())).events;
    expect(events.map((e) => e.data)).toEqual([
      expect.objectContaining({ kid: first.kid, generation: 1 }),
      expect.objectContaining({ kid: outcome.kid, generation: 2, previousKid: first.kid }),
    ]);
  });

  it('two instances rotating at the same moment rotate once', async () => {
    const a = aPlatform();
    const b = a.another();
    const first = await a.keys.signingKey();
    a.clock.advance(7 * DAY);
    const outcomes = await Promise.all([a.keys.rotate(), b.keys.rotate(), a.another().keys.rotate()]);
    expect(outcomes.filter((o) => o.rotated)).toHaveLength(1);
    const winner = outcomes.find((o) => o.rotated)!;
    expect(outcomes.map((o) => o.kid)).toEqual([winner.kid, winner.kid, winner.kid]);
    expect((await a.keys.ring()).map((k) => k.generation)).toEqual([2, 1]);
    expect(winner.previousKid).toBe(first.kid);
    const events = (await a.store.readStream(PLATFORM_PARTITION, signingKeysStreamId())).events;
    expect(events.map((e) => (e.data as { generation: number }).generation)).toEqual([1, 2]);
  });

  it('an instance whose cached key was retired elsewhere signs with it only until its cache expires', async () => {
    const a = aPlatform();
    const b = a.another();
    const first = await a.keys.signingKey();
    a.clock.advance(7 * DAY);
    expect((await a.keys.signingKey()).kid).toBe(first.kid);
    const rotated = await b.keys.rotate();
    expect(rotated.rotated).toBe(true);
    a.clock.advance(a.policy.cacheTtlMs - 1);
    expect((await a.keys.signingKey()).kid).toBe(first.kid);
    a.clock.advance(1);
    a.clock.advance(a.policy.cacheTtlMs);
    expect((await a.keys.signingKey()).kid).toBe(rotated.kid);
  });

  it('catches up a rotation whose event could not be recorded at the time', async () => {
    let logAvailable = true;
    const p = aPlatform({
      recorder: (record) => async (keys) => {
        if (!logAvailable) throw new Error('log unavailable');
        await record(keys);
      },
    });
    const first = await p.keys.signingKey();
    logAvailable = false;
    p.clock.advance(7 * DAY);
    const outcome = await p.keys.rotate();
    expect(outcome).toMatchObject({ rotated: true, recorded: false });
    const again = p.another();
    expect(await again.keys.rotate()).toMatchObject({ rotated: false, recorded: true });
    const events = (await p.store.readStream(PLATFORM_PARTITION, signingKeysStreamId())).events;
    expect(events.map((e) => e.data)).toEqual([
      expect.objectContaining({ kid: first.kid, generation: 1 }),
      expect.objectContaining({ kid: outcome.kid, generation: 2, previousKid: first.kid }),
    ]);
  });
});
