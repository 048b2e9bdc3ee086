import { randomUUID } from 'node:crypto';
import { RestError, TableClient } from '@azure/data-tables';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VersionConflictError, isDomainError } from '../../../domain/errors';
import type { AppendResult, ProjectionWrite } from '../../../domain/ports/eventStore';
import { nodeHasher } from '../../../infra/system/nodeHasher';
import { ProjectionSeal } from '../../../infra/tables/projectionSeal';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { anEvent, expectChained, hmacCheckpointer } from '../../contracts/eventStore.contract';

const table = uniqueName('eventlogbatch');
const client = (): TableClient => TableClient.fromConnectionString(azuriteConnectionString(), table, { allowInsecureConnection: true });
const aStore = (options: ConstructorParameters<typeof TableEventStore>[1] = {}): TableEventStore => new TableEventStore(client(), options);
const ws = (): string => `ws-${randomUUID()}`;
const eventKey = (n: number): string => `e:${String(n).padStart(10, '0')}`;

/** One append a writer makes: its stream, how far behind its idea of the stream is, its events and projections. */
interface Step {
  readonly stream: number;
  /** 0: the version the writer last saw (right unless another writer of the stream won first); 1: one behind. */
  readonly lag: 0 | 1;
  readonly events: number;
  readonly projection: { kind: 'upsert' | 'delete'; key: number } | undefined;
  readonly instance: number;
}

const step: fc.Arbitrary<Step> = fc.record({
  stream: fc.integer({ min: 0, max: 3 }),
  lag: fc.constantFrom<0 | 1>(0, 0, 0, 1),
  events: fc.integer({ min: 1, max: 3 }),
  projection: fc.option(fc.record({ kind: fc.constantFrom<'upsert' | 'delete'>('upsert', 'upsert', 'delete'), key: fc.integer({ min: 0, max: 2 }) }), { nil: undefined }),
  instance: fc.integer({ min: 0, max: 1 }),
});

interface Outcome {
  readonly step: Step;
  readonly expectedVersion: number;
  readonly projections: readonly ProjectionWrite[];
  readonly result?: AppendResult;
  readonly error?: unknown;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('TableEventStore group commit: concurrent appends of one workspace share transactions (Azurite)', () => {
  it('property: waves of concurrent appends from two instances, every accepted event exactly once, per stream in order, projections as a sequential run leaves them', async () => {
    let appends = 0;
    let transactions = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(step, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 3 }), async (waves) => {
        // Two instances of one platform: they share the projection key, as hosts do.
        const projectionSeal = ProjectionSeal.ephemeral();
        const stores = [aStore({ projectionSeal }), aStore({ projectionSeal })];
        const w = ws();
        const seen = new Map<number, number>();
        const outcomes: Outcome[] = [];
        for (const wave of waves) {
          const settled = await Promise.all(
            wave.map(async (s, n): Promise<Outcome> => {
              const expectedVersion = Math.max(0, (seen.get(s.stream) ?? 0) - s.lag);
              const projections: ProjectionWrite[] = s.projection
                ? [s.projection.kind === 'upsert' ? { kind: 'upsert', key: `p:${s.projection.key}`, value: { wave: outcomes.length, n } } : { kind: 'delete', key: `p:${s.projection.key}` }]
                : [];
              const events = Array.from({ length: s.events }, (_, i) => anEvent('CounterIncremented', { n, i }));
              try {
                const result = await stores[s.instance]!.append({ workspaceId: w, streamId: `run:${s.stream}`, expectedVersion, events, projections });
                return { step: s, expectedVersion, projections, result };
              } catch (error) {
                return { step: s, expectedVersion, projections, error };
              }
            }),
          );
          outcomes.push(...settled);
          for (const o of settled) if (o.result) seen.set(o.step.stream, Math.max(seen.get(o.step.stream) ?? 0, o.result.version));
        }

        // Only the optimistic check may refuse an append, and only its own.
        for (const o of outcomes.filter((x) => x.error !== undefined)) {
          expect(o.error).toBeInstanceOf(VersionConflictError);
          expect(o.error).toMatchObject({ streamId: `run:${o.step.stream}`, expectedVersion: o.expectedVersion });
        }
        const accepted = outcomes.filter((o): o is Outcome & { result: AppendResult } => o.result !== undefined);

        // Every accepted event is in the log exactly once, the log is gapless and chained, and nothing else is in it.
        const log = (await stores[0]!.readLog(w, { limit: 5000 })).records;
        const acceptedIds = accepted.flatMap((o) => o.result.records.map((r) => r.id));
        expect(new Set(acceptedIds).size).toBe(acceptedIds.length);
        expect(log.map((r) => r.id).sort()).toEqual([...acceptedIds].sort());
        expectChained(log);
        for (const o of accepted) for (const r of o.result.records) expect(log[r.sequence - 1]).toEqual(r);
        expect(await stores[1]!.verify(w)).toEqual({ ok: true, records: log.length, headSequence: log.length });

        // Per stream: each accepted append holds exactly the versions after the one it expected, in order.
        for (let stream = 0; stream < 4; stream++) {
          const read = await aStore().readStream(w, `run:${stream}`);
          expect(read.events.map((e) => e.streamVersion)).toEqual(read.events.map((_, i) => i + 1));
          const mine = accepted.filter((o) => o.step.stream === stream);
          expect(mine.reduce((sum, o) => sum + o.step.events, 0)).toBe(read.version);
          for (const o of mine) {
            expect(o.result.version).toBe(o.expectedVersion + o.step.events);
            expect(read.events.slice(o.expectedVersion, o.result.version)).toEqual(o.result.records);
          }
        }

        // Projections: the last accepted write of each key, in log order, as appends one at a time would leave it.
        for (let key = 0; key < 3; key++) {
          const writers = accepted
            .filter((o) => o.projections.some((p) => p.key === `p:${key}`))
            .sort((a, b) => a.result.records[0]!.sequence - b.result.records[0]!.sequence);
          const last = writers[writers.length - 1];
          const row = await stores[0]!.readCheckedProjection(w, `p:${key}`);
          const write = last?.projections[0];
          if (!write || write.kind === 'delete') expect(row).toBeUndefined();
          else {
            expect(row?.value).toEqual(write.value);
            expect(row?.check).not.toBe('forged');
            expect(row?.derivedFrom).toEqual({ streamId: `run:${last.step.stream}`, version: last.result.version });
          }
        }
        for (const s of stores) {
          appends += s.stats.appends;
          transactions += s.stats.transactions;
        }
      }),
      { numRuns: 12 },
    );
    // Concurrent appends of one instance did share transactions.
    expect(transactions).toBeLessThan(appends);
  }, 600_000);

  it('a stale writer among ten concurrent ones is refused alone; the other nine commit together', async () => {
    const store = aStore();
    const w = ws();
    await store.append({ workspaceId: w, streamId: 'run:stale', expectedVersion: 0, events: [anEvent()] });
    await store.append({ workspaceId: w, streamId: 'run:gate', expectedVersion: 0, events: [anEvent()] });
    const before = { ...store.stats };
    // One append in flight first, so the ten queue behind it and go in the next transaction together.
    const gate = store.append({ workspaceId: w, streamId: 'run:gate', expectedVersion: 1, events: [anEvent()] });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        store.append({ workspaceId: w, streamId: i === 4 ? 'run:stale' : `run:${i}`, expectedVersion: 0, events: [anEvent('CounterIncremented', { i })] }),
      ),
    );
    await gate;
    expect(outcomes.map((o) => o.status)).toEqual(Array.from({ length: 10 }, (_, i) => (i === 4 ? 'rejected' : 'fulfilled')));
    expect((outcomes[4] as PromiseRejectedResult).reason).toMatchObject({ code: 'STORE.VERSION_CONFLICT', streamId: 'run:stale', expectedVersion: 0 });
    expect(store.stats.appends - before.appends).toBe(10);
    expect(store.stats.transactions - before.transactions).toBeLessThanOrEqual(3);
    expect(store.stats.streamConflicts - before.streamConflicts).toBe(1);
    expect(await store.verify(w)).toEqual({ ok: true, records: 12, headSequence: 12 });
  }, 120_000);

  it('a record too large for an entity is refused to its caller alone', async () => {
    const store = aStore();
    const w = ws();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => store.append({ workspaceId: w, streamId: `run:${i}`, expectedVersion: 0, events: [anEvent('X', { s: i === 2 ? 'x'.repeat(600_000) : 'small' })] })),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const refused = (outcomes[2] as PromiseRejectedResult).reason;
    expect(isDomainError(refused) && refused.kind).toBe('too_large');
    expect(await store.verify(w)).toEqual({ ok: true, records: 4, headSequence: 4 });
  }, 120_000);

  it('appends that together exceed the 4 MiB body are split over several transactions, all committed', async () => {
    const store = aStore();
    const w = ws();
    // Each record is stored twice (event and stream-index rows): about 0.6 MB an append, 4.8 MB for eight.
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.append({ workspaceId: w, streamId: `run:${i}`, expectedVersion: 0, events: [anEvent('X', { s: String(i).repeat(300_000) })] })),
    );
    expect(results.map((r) => r.version)).toEqual(Array(8).fill(1));
    expect(store.stats.transactions).toBeGreaterThanOrEqual(3);
    expect(await store.verify(w)).toEqual({ ok: true, records: 8, headSequence: 8 });
  }, 120_000);

  it('recognises a batch whose response was lost and settles every caller with success', async () => {
    const lossy = client();
    let batches = 0;
    let dropped = 0;
    lossy.pipeline.addPolicy(
      {
        name: 'dropSecondBatchResponse',
        async sendRequest(request, next) {
          const response = await next(request);
          if (request.url.endsWith('$batch') && batches++ === 1) {
            dropped++;
            throw new RestError('socket hang up', { code: 'ECONNRESET', request });
          }
          return response;
        },
      },
      { afterPhase: 'Retry' },
    );
    const store = new TableEventStore(lossy);
    const w = ws();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => store.append({ workspaceId: w, streamId: `run:${i}`, expectedVersion: 0, events: [anEvent()] })));
    expect(dropped).toBe(1);
    expect(results.map((r) => r.version)).toEqual([1, 1, 1, 1, 1]);
    const log = (await store.readLog(w)).records;
    expect(log.map((r) => r.id).sort()).toEqual(results.map((r) => r.records[0]!.id).sort());
    expect(await store.verify(w)).toEqual({ ok: true, records: 5, headSequence: 5 });
  }, 120_000);

  it('a batched log keeps its tamper evidence: an edited record is named, a signed re-chained history is refused', async () => {
    const checkpointer = hmacCheckpointer('platform-key');
    const store = aStore({ checkpointer });
    const w = ws();
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.append({ workspaceId: w, streamId: `run:${i}`, expectedVersion: 0, events: [anEvent('CounterIncremented', { i })] })));
    expect(store.stats.transactions).toBeLessThan(10);
    expect(await store.verify(w)).toEqual({ ok: true, records: 10, headSequence: 10 });

    const row = await client().getEntity<Record<string, unknown>>(w, eventKey(4));
    const { partitionKey: _p, rowKey: _r, etag: _e, timestamp: _t, ...content } = row;
    const edited = String(row['record0']).replace(/"i":\d+/, '"i":400');
    await client().updateEntity({ partitionKey: w, rowKey: eventKey(4), ...content, record0: edited }, 'Replace');
    expect(await store.verify(w)).toMatchObject({ ok: false, brokenAt: 4, reason: expect.stringContaining('hash') });

    // Re-chain every later record, its stream-index copy and the head consistently: only the signatures can tell.
    let prev = String((await client().getEntity<Record<string, unknown>>(w, eventKey(3)))['hash']);
    for (let n = 4; n <= 10; n++) {
      const current = await client().getEntity<Record<string, unknown>>(w, eventKey(n));
      const record0 = String(current['record0']);
      const hash = nodeHasher.sha256Hex(prev + record0);
      await client().updateEntity({ partitionKey: w, rowKey: eventKey(n), prevHash: prev, hash }, 'Merge');
      const indexKey = `s:${String(current['streamId']).replace(':', '~003a')}:${String(1).padStart(10, '0')}`;
      await client().updateEntity({ partitionKey: w, rowKey: indexKey, record0, prevHash: prev, hash }, 'Merge');
      prev = hash;
    }
    await client().updateEntity({ partitionKey: w, rowKey: 'head', hash: prev }, 'Merge');
    const verdict = await store.verify(w);
    expect(verdict).toMatchObject({ ok: false, reason: expect.stringContaining('checkpoint') });
    expect((verdict as { brokenAt: number }).brokenAt).toBeGreaterThanOrEqual(4);
  }, 120_000);

  it('with batching off, each append is its own transaction', async () => {
    const store = aStore({ batchAppends: false });
    const w = ws();
    await Promise.all(Array.from({ length: 6 }, (_, i) => store.append({ workspaceId: w, streamId: `run:${i}`, expectedVersion: 0, events: [anEvent()] })));
    expect(store.stats).toMatchObject({ appends: 6, transactions: 6 });
    expect(await store.verify(w)).toEqual({ ok: true, records: 6, headSequence: 6 });
    expect(await rejection(store.append({ workspaceId: w, streamId: 'run:0', expectedVersion: 0, events: [anEvent()] }))).toBeInstanceOf(VersionConflictError);
  }, 120_000);
});
