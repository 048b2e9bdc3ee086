import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { TransactionTooLargeError, VersionConflictError, isDomainError } from '../../domain/errors';
import type { EventEnvelope, RecordedEvent } from '../../domain/events';
import type { EventStore, HeadCheckpointer } from '../../domain/ports/eventStore';

export interface ContractStoreOptions {
  redact?: (text: string) => string;
  checkpointer?: HeadCheckpointer;
}
export type MakeStore = (options?: ContractStoreOptions) => EventStore | Promise<EventStore>;

const ZEROS = '0'.repeat(64);
const at = '2025-01-02T03:04:05.000Z';

export function anEvent(type = 'CounterIncremented', data: unknown = { by: 1 }, actor = 'user-1'): EventEnvelope {
  return { type, data, meta: { at, actor, correlationId: 'corr-1' } };
}
const events = (n: number, type = 'CounterIncremented'): EventEnvelope[] => Array.from({ length: n }, (_, i) => anEvent(type, { i }));
const ws = (): string => `ws-${randomUUID()}`;

/** What the log promises, computed here without any of the store's code. */
export function expectedHash(record: RecordedEvent): string {
  const { id, workspaceId, streamId, streamVersion, sequence, type, data, meta } = record;
  const stored = canonicalize({ id, workspaceId, streamId, streamVersion, sequence, type, data, meta });
  return createHash('sha256').update(record.prevHash + stored, 'utf8').digest('hex');
}

export function expectChained(records: readonly RecordedEvent[]): void {
  records.forEach((record, i) => {
    expect(record.sequence).toBe(i + 1);
    expect(record.prevHash).toBe(i === 0 ? ZEROS : records[i - 1]!.hash);
    expect(record.hash).toBe(expectedHash(record));
  });
}

/** A checkpointer with a shared HMAC key: enough to show the hook is called and checked. */
export function hmacCheckpointer(key: string): HeadCheckpointer & { signed: number } {
  const mac = (h: { workspaceId: string; sequence: number; hash: string }): Buffer =>
    createHmac('sha256', key).update(`${h.workspaceId}|${h.sequence}|${h.hash}`).digest();
  const checkpointer = {
    signed: 0,
    async sign(head: { workspaceId: string; sequence: number; hash: string }): Promise<string> {
      checkpointer.signed++;
      return mac(head).toString('base64url');
    },
    async verify(head: { workspaceId: string; sequence: number; hash: string }, signature: string): Promise<boolean> {
      const given = Buffer.from(signature, 'base64url');
      const wanted = mac(head);
      return given.length === wanted.length && timingSafeEqual(given, wanted);
    },
  };
  return checkpointer;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

async function readAll(store: EventStore, workspaceId: string): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let after: number | undefined = 0;
  while (after !== undefined) {
    const page = await store.readLog(workspaceId, { after, limit: 1000 });
    out.push(...page.records);
    after = page.next;
  }
  return out;
}

export function describeEventStoreContract(name: string, makeStore: MakeStore): void {
  describe(`${name} (EventStore contract)`, () => {
    it('appends to a new stream at expected version 0 and reads back chained, canonical records', async () => {
      const store = await makeStore();
      const w = ws();
      const result = await store.append({ workspaceId: w, streamId: 'run:1', expectedVersion: 0, events: events(3) });
      expect(result.version).toBe(3);
      expect(result.records.map((r) => r.streamVersion)).toEqual([1, 2, 3]);
      const read = await store.readStream(w, 'run:1');
      expect(read.version).toBe(3);
      expect(read.events).toEqual(result.records);
      expect(read.events[2]).toMatchObject({ workspaceId: w, streamId: 'run:1', type: 'CounterIncremented', data: { i: 2 }, meta: { at, actor: 'user-1' } });
      expectChained(read.events);
      const more = await store.append({ workspaceId: w, streamId: 'run:1', expectedVersion: 3, events: events(1) });
      expect(more.records[0]).toMatchObject({ streamVersion: 4, sequence: 4, prevHash: read.events[2]!.hash });
      expect(await store.verify(w)).toEqual({ ok: true, records: 4, headSequence: 4 });
    });

    it('reads an unknown stream as version 0 and an empty workspace as an empty, valid log', async () => {
      const store = await makeStore();
      const w = ws();
      expect(await store.readStream(w, 'run:nope')).toEqual({ version: 0, events: [] });
      expect(await store.readLog(w)).toEqual({ records: [] });
      expect(await store.verify(w)).toEqual({ ok: true, records: 0, headSequence: 0 });
    });

    it('refuses stale, premature and re-creating appends with VersionConflictError and writes nothing', async () => {
      const store = await makeStore();
      const w = ws();
      await store.append({ workspaceId: w, streamId: 's:a', expectedVersion: 0, events: events(2), projections: [{ kind: 'upsert', key: 'k', value: { v: 1 } }] });
      for (const expectedVersion of [0, 1, 3, 7]) {
        const error = await rejection(
          store.append({ workspaceId: w, streamId: 's:a', expectedVersion, events: events(1), projections: [{ kind: 'upsert', key: 'k', value: { v: 2 } }] }),
        );
        expect(error).toBeInstanceOf(VersionConflictError);
        expect(error).toMatchObject({ code: 'STORE.VERSION_CONFLICT', streamId: 's:a', expectedVersion });
      }
      expect((await store.readStream(w, 's:a')).version).toBe(2);
      expect(await readAll(store, w)).toHaveLength(2);
      expect(await store.readProjection(w, 'k')).toEqual({ v: 1 });
      expect((await store.verify(w)).ok).toBe(true);
    });

    it('lets concurrent writers of different streams all succeed, each with its own sequence', async () => {
      const store = await makeStore();
      const w = ws();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.append({ workspaceId: w, streamId: `run:${i}`, expectedVersion: 0, events: events(2) })),
      );
      expect(results.every((r) => r.version === 2)).toBe(true);
      const log = await readAll(store, w);
      expect(log.map((r) => r.sequence)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expectChained(log);
      expect((await store.verify(w)).ok).toBe(true);
    });

    it('settles each of many concurrent appends on its own: one winner per stream and version, the losers typed conflicts', async () => {
      const store = await makeStore();
      const w = ws();
      await store.append({ workspaceId: w, streamId: 'run:old', expectedVersion: 0, events: events(2) });
      // Three writers per stream race at the same expected version; a stale writer joins them; all at once.
      const attempts = [
        ...Array.from({ length: 12 }, (_, i) => ({ streamId: `run:${i % 4}`, expectedVersion: 0, writer: i })),
        { streamId: 'run:old', expectedVersion: 1, writer: 12 },
        { streamId: 'run:old', expectedVersion: 2, writer: 13 },
      ];
      const outcomes = await Promise.allSettled(
        attempts.map((a) =>
          store.append({
            workspaceId: w, streamId: a.streamId, expectedVersion: a.expectedVersion, events: [anEvent('CounterIncremented', { writer: a.writer })],
            projections: [{ kind: 'upsert', key: `last:${a.streamId}`, value: { writer: a.writer } }],
          }),
        ),
      );
      const winners = new Map<string, number>();
      outcomes.forEach((o, i) => {
        const a = attempts[i]!;
        if (o.status === 'fulfilled') {
          expect(winners.has(a.streamId)).toBe(false);
          winners.set(a.streamId, a.writer);
          expect(o.value.version).toBe(a.expectedVersion + 1);
        } else {
          expect(o.reason).toBeInstanceOf(VersionConflictError);
          expect(o.reason).toMatchObject({ streamId: a.streamId, expectedVersion: a.expectedVersion });
        }
      });
      expect([...winners.keys()].sort()).toEqual(['run:0', 'run:1', 'run:2', 'run:3', 'run:old']);
      expect(winners.get('run:old')).toBe(13);
      const log = await readAll(store, w);
      expect(log).toHaveLength(2 + 5);
      expectChained(log);
      for (const [streamId, writer] of winners) {
        const read = await store.readStream(w, streamId);
        expect(read.events[read.version - 1]!.data).toEqual({ writer });
        expect(await store.readProjection(w, `last:${streamId}`)).toEqual({ writer });
      }
      expect(await store.verify(w)).toEqual({ ok: true, records: 7, headSequence: 7 });
    });

    it('keeps workspaces apart: each has its own log starting at 1', async () => {
      const store = await makeStore();
      const [a, b] = [ws(), ws()];
      await store.append({ workspaceId: a, streamId: 'x', expectedVersion: 0, events: events(2) });
      await store.append({ workspaceId: b, streamId: 'x', expectedVersion: 0, events: events(1) });
      expect((await store.readStream(b, 'x')).events.map((e) => [e.workspaceId, e.sequence])).toEqual([[b, 1]]);
      expect((await store.readLog(a)).records.map((r) => r.sequence)).toEqual([1, 2]);
      expect(await store.verify(b)).toEqual({ ok: true, records: 1, headSequence: 1 });
    });

    it('keeps stream ids with separators and odd characters apart', async () => {
      const store = await makeStore();
      const w = ws();
      const ids = ['secret:w:A', 'secret:w:A:0000000001', 'run:a/b#c?d\\e', 'run:ü 🦜'];
      for (const id of ids) await store.append({ workspaceId: w, streamId: id, expectedVersion: 0, events: events(1) });
      for (const id of ids) expect((await store.readStream(w, id)).events.map((e) => e.streamId)).toEqual([id]);
      expect((await store.verify(w)).ok).toBe(true);
    });

    it('writes, lists and deletes projections in the same append as the events', async () => {
      const store = await makeStore();
      const w = ws();
      await store.append({
        workspaceId: w, streamId: 'secret:w:A', expectedVersion: 0, events: events(1),
        projections: [
          { kind: 'upsert', key: 'secret:B', value: { name: 'B', version: 1 } },
          { kind: 'upsert', key: 'secret:A', value: { name: 'A', version: 1, hosts: ['api.example.com'] } },
          { kind: 'upsert', key: 'run:1', value: { status: 'Pending' } },
          { kind: 'delete', key: 'secret:never-existed' },
        ],
      });
      expect(await store.readProjection(w, 'secret:A')).toEqual({ name: 'A', version: 1, hosts: ['api.example.com'] });
      expect(await store.readProjection(w, 'secret:Z')).toBeUndefined();
      expect((await store.listProjections(w, 'secret:')).map((p) => p.key)).toEqual(['secret:A', 'secret:B']);
      expect((await store.listProjections(w, '')).map((p) => p.key)).toEqual(['run:1', 'secret:A', 'secret:B']);
      expect(await store.listProjections(ws(), 'secret:')).toEqual([]);
      await store.append({
        workspaceId: w, streamId: 'secret:w:A', expectedVersion: 1, events: events(1),
        projections: [{ kind: 'delete', key: 'secret:A' }, { kind: 'upsert', key: 'secret:B', value: { name: 'B', version: 2 } }],
      });
      expect(await store.readProjection(w, 'secret:A')).toBeUndefined();
      expect(await store.listProjections(w, 'secret:')).toEqual([{ key: 'secret:B', value: { name: 'B', version: 2 } }]);
    });

    it('pages the log oldest first past the 1,000-row query page', async () => {
      const store = await makeStore();
      const w = ws();
      for (let v = 0; v < 33 * 32; v += 32) await store.append({ workspaceId: w, streamId: 'bulk', expectedVersion: v, events: events(32) });
      await store.append({ workspaceId: w, streamId: 'other', expectedVersion: 0, events: events(1) });
      const total = 33 * 32 + 1;
      const all = await store.readLog(w, { limit: 5000 });
      expect(all.next).toBeUndefined();
      expect(all.records.map((r) => r.sequence)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expectChained(all.records);
      const first = await store.readLog(w, { limit: 1001 });
      expect(first.records).toHaveLength(1001);
      expect(first.next).toBe(1001);
      const rest = await store.readLog(w, { after: first.next!, limit: 1001 });
      expect(rest.records.map((r) => r.sequence)).toEqual(Array.from({ length: total - 1001 }, (_, i) => 1002 + i));
      expect(rest.next).toBeUndefined();
      expect((await store.readLog(w, { after: total })).records).toEqual([]);
      expect((await store.readStream(w, 'bulk')).version).toBe(33 * 32);
      expect(await store.verify(w)).toEqual({ ok: true, records: total, headSequence: total });
    });

    it('refuses an append needing more than 100 operations, writing nothing', async () => {
      const store = await makeStore();
      const w = ws();
      // Each event costs three rows (event, stream index, outbox) plus one head row: 34 events need 103.
      const error = await rejection(store.append({ workspaceId: w, streamId: 'big', expectedVersion: 0, events: events(34) }));
      expect(error).toBeInstanceOf(TransactionTooLargeError);
      expect(error).toMatchObject({ operations: 103, limit: 100 });
      const projections = Array.from({ length: 2 }, (_, i) => ({ kind: 'upsert' as const, key: `p${i}`, value: {} }));
      expect(await rejection(store.append({ workspaceId: w, streamId: 'big', expectedVersion: 0, events: events(33), projections }))).toBeInstanceOf(
        TransactionTooLargeError,
      );
      expect((await store.readStream(w, 'big')).version).toBe(0);
      expect(await store.readLog(w)).toEqual({ records: [] });
      const fits = await store.append({ workspaceId: w, streamId: 'big', expectedVersion: 0, events: events(33) });
      expect(fits.version).toBe(33);
    });

    it('round-trips a 200 KiB event, surrogate pairs included, and still verifies', async () => {
      const store = await makeStore();
      const w = ws();
      const blob = '🦜 parrot ü '.repeat(17_000); // ~200 KiB in UTF-8, 204,000 UTF-16 units
      const big = anEvent('RunRequested', { spec: blob, n: 1 });
      const { records } = await store.append({ workspaceId: w, streamId: 'run:big', expectedVersion: 0, events: [anEvent(), big] });
      const read = await store.readStream(w, 'run:big');
      expect((read.events[1]!.data as { spec: string }).spec).toBe(blob);
      expect(read.events).toEqual(records);
      expect((await store.readLog(w)).records[1]).toEqual(records[1]);
      expect(records[1]!.hash).toBe(expectedHash(records[1]!));
      expect(await store.verify(w)).toEqual({ ok: true, records: 2, headSequence: 2 });
    });

    it('refuses a record too large for one entity with a typed too_large error', async () => {
      const store = await makeStore();
      const w = ws();
      const error = await rejection(store.append({ workspaceId: w, streamId: 'run:huge', expectedVersion: 0, events: [anEvent('X', { s: 'x'.repeat(600_000) })] }));
      expect(isDomainError(error) && error.kind).toBe('too_large');
      expect((await store.readStream(w, 'run:huge')).version).toBe(0);
    });

    it('applies the redactor to each record’s data before hashing and storing it', async () => {
      const store = await makeStore({ redact: (text) => text.replaceAll('hunter2hunter2', '[REDACTED:PASSWORD]') });
      const w = ws();
      const { records } = await store.append({ workspaceId: w, streamId: 'run:r', expectedVersion: 0, events: [anEvent('CommandFailed', { stderr: 'bad token hunter2hunter2!' })] });
      expect(records[0]!.data).toEqual({ stderr: 'bad token [REDACTED:PASSWORD]!' });
      const read = await store.readStream(w, 'run:r');
      expect(JSON.stringify(read)).not.toContain('hunter2');
      expect(read.events[0]!.hash).toBe(expectedHash(read.events[0]!));
      expect((await store.verify(w)).ok).toBe(true);
    });

    it('signs the head on every append and checks the signatures in verify', async () => {
      const checkpointer = hmacCheckpointer('k1');
      const store = await makeStore({ checkpointer });
      const w = ws();
      await store.append({ workspaceId: w, streamId: 'a', expectedVersion: 0, events: events(2) });
      await store.append({ workspaceId: w, streamId: 'b', expectedVersion: 0, events: events(1) });
      expect(checkpointer.signed).toBeGreaterThanOrEqual(2);
      expect(await store.verify(w)).toEqual({ ok: true, records: 3, headSequence: 3 });
    });
  });
}
