import { describe, expect, it } from 'vitest';
import { PLATFORM_PARTITION, signingKeysStreamId } from '../../../domain/streams';
import { ensureSigningKeysAtStart } from '../../../functions/signing';
import { aPlatform } from './signingTestKit';

const quietLog = { warn: () => undefined, info: () => undefined };
const within = <T>(ms: number, promise: Promise<T>): Promise<T> =>
  Promise.race([promise, new Promise<T>((_resolve, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms: deadlock?`)), ms))]);

describe('signing keys at first start', () => {
  it('a fresh platform serves a non-empty JWKS: the first request creates and records the first key', async () => {
    const p = aPlatform();
    const jwks = await p.keys.jwks();
    expect(jwks.keys).toHaveLength(1);
    const rotations = await p.store.readStream(PLATFORM_PARTITION, signingKeysStreamId());
    expect(rotations.events.map((e) => e.data)).toEqual([expect.objectContaining({ kid: jwks.keys[0]?.kid, generation: 1 })]);
    expect(await p.store.verify(PLATFORM_PARTITION)).toMatchObject({ ok: true, records: 1 });
  });

  it('startup creates the key before any request, once, however many instances start together', async () => {
    const p = aPlatform();
    const instances = [p, p.another(), p.another()];
    await Promise.all(instances.map((i) => ensureSigningKeysAtStart(i.keys, quietLog)));
    const kids = await Promise.all(instances.map(async (i) => (await i.keys.jwks()).keys.map((k) => k.kid)));
    expect(new Set(kids.flat()).size).toBe(1);
    expect((await p.repository.load()).keys).toHaveLength(1);
  });

  it('the first append, the JWKS and a rotation racing on an empty ring all finish (no deadlock between signing and recording)', async () => {
    const p = aPlatform();
    const at = p.clock.now().toISOString();
    const append = (n: number) =>
      p.store.append({ workspaceId: 'ws-first', streamId: `run:${n}`, expectedVersion: 0, events: [{ type: 'RunRequested', data: { n }, meta: { at, actor: 'a', correlationId: 'c' } }] });
    await within(20_000, Promise.all([append(1), p.keys.jwks(), append(2), p.keys.ensureCurrentKey(), p.keys.rotate(), append(3)]));
    expect(await p.store.verify('ws-first')).toMatchObject({ ok: true, records: 3 });
    expect(await p.store.verify(PLATFORM_PARTITION)).toMatchObject({ ok: true });
    expect((await p.keys.jwks()).keys.length).toBeGreaterThanOrEqual(1);
  });

  it('a start without storage logs and goes on; the JWKS route creates the key later', async () => {
    const warnings: string[] = [];
    const broken = { ensureCurrentKey: () => Promise.reject(new Error('ECONNREFUSED')) } as unknown as Parameters<typeof ensureSigningKeysAtStart>[0];
    await ensureSigningKeysAtStart(broken, { warn: (t) => warnings.push(t), info: () => undefined });
    expect(warnings.join('\n')).toMatch(/no current key at start/);
  });
});
