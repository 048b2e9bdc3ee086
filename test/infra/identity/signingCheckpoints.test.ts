import { randomUUID } from 'node:crypto';
import type { TableEntityResult } from '@azure/data-tables';
import { CompactSign, compactVerify, decodeProtectedHeader, generateKeyPair, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_TYP } from '../../../infra/identity/headCheckpointer';
import { PlatformSandboxTokens } from '../../../infra/identity/sandboxIdentityTokens';
import { nodeHasher } from '../../../infra/system/nodeHasher';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { anEvent } from '../../contracts/eventStore.contract';
import { DAY, aPlatform, tableClient, type Platform } from './signingTestKit';

type Row = TableEntityResult<Record<string, unknown>>;
const key = (n: number): string => `e:${String(n).padStart(10, '0')}`;

function contentOf(row: Row): Record<string, unknown> {
  const { partitionKey: _p, rowKey: _r, etag: _e, timestamp: _t, ...content } = row;
  return content;
}

/** Appends records `from..to` of a workspace log over three streams, one append (and checkpoint) each. */
async function appendRecords(store: TableEventStore, ws: string, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) {
    const streamId = `run:${i % 3}`;
    const { version } = await store.readStream(ws, streamId);
    await store.append({ workspaceId: ws, streamId, expectedVersion: version, events: [anEvent('CounterIncremented', { i })] });
  }
}

async function aSignedLog(p: Platform, records = 10): Promise<string> {
  const ws = `ws-${randomUUID()}`;
  await appendRecords(p.store, ws, 1, records);
  expect(await p.store.verify(ws)).toMatchObject({ ok: true, records });
  return ws;
}

/** Rewrites record 5's data directly in Azurite and recomputes every later hash, the index copies and the head. */
async function rewriteFrom5(p: Platform, ws: string, last = 10): Promise<void> {
  const client = tableClient(p.eventTable);
  let prev = String((await client.getEntity<Record<string, unknown>>(ws, key(4)))['hash']);
  for (let n = 5; n <= last; n++) {
    const row = await client.getEntity<Record<string, unknown>>(ws, key(n));
    const record0 = n === 5 ? String(row['record0']).replace('"i":5', '"i":500') : String(row['record0']);
    const hash = nodeHasher.sha256Hex(prev + record0);
    await client.updateEntity({ partitionKey: ws, rowKey: key(n), ...contentOf(row), record0, prevHash: prev, hash }, 'Replace');
    const indexKey = `s:run~003a${n % 3}:${String(Number(row['streamVersion'])).padStart(10, '0')}`;
    await client.updateEntity({ partitionKey: ws, rowKey: indexKey, record0, prevHash: prev, hash }, 'Merge');
    prev = hash;
  }
  await client.updateEntity({ partitionKey: ws, rowKey: 'head', hash: prev }, 'Merge');
}

const checkpointOf = async (p: Platform, ws: string, n: number): Promise<string> =>
  String((await tableClient(p.eventTable).getEntity<Record<string, unknown>>(ws, key(n)))['checkpoint']);

describe('head checkpoints signed with the platform key (edits made directly in Azurite)', () => {
  it('every append carries an EdDSA checkpoint naming the key', async () => {
    const p = aPlatform();
    const ws = await aSignedLog(p, 3);
    const { kid } = await p.keys.signingKey();
    for (const n of [1, 2, 3]) expect(decodeProtectedHeader(await checkpointOf(p, ws, n))).toEqual({ alg: 'EdDSA', kid, typ: CHECKPOINT_TYP });
    const head = await tableClient(p.eventTable).getEntity<Record<string, unknown>>(ws, 'head');
    expect(head['signature']).toBe(await checkpointOf(p, ws, 3));
  });

  it('a log rewritten with recomputed hashes fails verify on the signature of the first rewritten record', async () => {
    const p = aPlatform();
    const ws = await aSignedLog(p);
    await rewriteFrom5(p, ws);
    expect(await p.store.verify(ws)).toMatchObject({ ok: false, brokenAt: 5, records: 4, reason: expect.stringContaining('checkpoint') });
  });

  it('stripping the checkpoints of the rewritten records still fails on the head signature', async () => {
    const p = aPlatform();
    const ws = await aSignedLog(p);
    await rewriteFrom5(p, ws);
    const client = tableClient(p.eventTable);
    for (let n = 5; n <= 10; n++) {
      const { checkpoint: _c, ...rest } = contentOf(await client.getEntity<Record<string, unknown>>(ws, key(n)));
      await client.updateEntity({ partitionKey: ws, rowKey: key(n), ...rest }, 'Replace');
    }
    expect(await p.store.verify(ws)).toMatchObject({ ok: false, brokenAt: 10, reason: expect.stringContaining('head signature') });
  });

  it('checkpoints re-signed by an attacker key that claims the platform kid do not verify', async () => {
    const p = aPlatform();
    const ws = await aSignedLog(p);
    await rewriteFrom5(p, ws);
    const { kid } = await p.keys.signingKey();
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const client = tableClient(p.eventTable);
    const forge = async (n: number, hash: string): Promise<string> =>
      new CompactSign(new TextEncoder().encode(JSON.stringify({ checkpoint: 1, hash, sequence: n, workspaceId: ws })))
        .setProtectedHeader({ alg: 'EdDSA', kid, typ: CHECKPOINT_TYP })
        .sign(attacker.privateKey);
    for (let n = 5; n <= 10; n++) {
      const row = await client.getEntity<Record<string, unknown>>(ws, key(n));
      const checkpoint = await forge(n, String(row['hash']));
      await client.updateEntity({ partitionKey: ws, rowKey: key(n), checkpoint }, 'Merge');
      if (n === 10) await client.updateEntity({ partitionKey: ws, rowKey: 'head', signature: checkpoint }, 'Merge');
    }
    expect(await p.store.verify(ws)).toMatchObject({ ok: false, brokenAt: 5, reason: expect.stringContaining('checkpoint') });
  });

  it('a checkpoint moved to another record, or a sandbox token passed off as one, does not verify', async () => {
    const p = aPlatform();
    const ws = await aSignedLog(p, 4);
    const client = tableClient(p.eventTable);
    await client.updateEntity({ partitionKey: ws, rowKey: key(3), checkpoint: await checkpointOf(p, ws, 2) }, 'Merge');
    expect(await p.store.verify(ws)).toMatchObject({ ok: false, brokenAt: 3 });

    const other = await aSignedLog(p, 2);
    const tokens = new PlatformSandboxTokens(p.keys, p.clock, { issuer: 'https://platform.test', audience: 'third-party' });
    const { token } = await tokens.mint({ runId: 'r1', containerId: 'c1' });
    await client.updateEntity({ partitionKey: other, rowKey: 'head', signature: token }, 'Merge');
    expect(await p.store.verify(other)).toMatchObject({ ok: false, brokenAt: 2, reason: expect.stringContaining('head signature') });
    expect(await p.checkpointer.verify({ workspaceId: other, sequence: 2, hash: 'x'.repeat(64) }, 'not a jws')).toBe(false);
  });

  it('checkpoints signed before rotations keep verifying, on this instance and on a fresh one, after the old private key is gone', async () => {
    const p = aPlatform();
    const ws = `ws-${randomUUID()}`;
    await appendRecords(p.store, ws, 1, 4);
    const first = (await p.keys.signingKey()).kid;
    p.clock.advance(7 * DAY);
    const second = await p.keys.rotate();
    await appendRecords(p.store, ws, 5, 8);
    p.clock.advance(400 * DAY);
    const third = await p.keys.rotate();
    await appendRecords(p.store, ws, 9, 10);
    expect(await p.repository.privateJwk(first)).toBeUndefined();
    expect(await p.repository.privateJwk(second.kid)).toBeUndefined();
    expect(decodeProtectedHeader(await checkpointOf(p, ws, 2)).kid).toBe(first);
    expect(decodeProtectedHeader(await checkpointOf(p, ws, 6)).kid).toBe(second.kid);
    expect(decodeProtectedHeader(await checkpointOf(p, ws, 10)).kid).toBe(third.kid);
    // The first key is long past any token window and gone from the JWKS (the second was retired just now and
    // still verifies tokens), yet the first key's checkpoints are evidence for good.
    expect((await p.keys.jwks()).keys.map((k) => k.kid)).toEqual([third.kid, second.kid]);
    expect(await p.store.verify(ws)).toMatchObject({ ok: true, records: 10 });
    const fresh = p.another();
    expect(await fresh.store.verify(ws)).toMatchObject({ ok: true, records: 10 });

    // And a rewrite across the rotation is still caught at the first rewritten record (signed by the retired key).
    await rewriteFrom5(p, ws);
    expect(await fresh.store.verify(ws)).toMatchObject({ ok: false, brokenAt: 5, reason: expect.stringContaining('checkpoint') });
  });

  it('another platform (its own keys) does not accept these checkpoints', async () => {
    const p = aPlatform();
    const ws = await aSignedLog(p, 3);
    const stranger = aPlatform({ eventTable: p.eventTable });
    expect(await stranger.store.verify(ws)).toMatchObject({ ok: false, brokenAt: 1, reason: expect.stringContaining('checkpoint') });
  });

  it('the public key in the JWKS verifies a checkpoint with any JOSE implementation', async () => {
    const p = aPlatform();
    const ws = await aSignedLog(p, 1);
    const jwk = (await p.keys.jwks()).keys[0]!;
    const { payload } = await compactVerify(await checkpointOf(p, ws, 1), await importJWK({ ...jwk }, 'EdDSA'));
    const head = await tableClient(p.eventTable).getEntity<Record<string, unknown>>(ws, 'head');
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ checkpoint: 1, hash: head['hash'], sequence: 1, workspaceId: ws });
  });
});
