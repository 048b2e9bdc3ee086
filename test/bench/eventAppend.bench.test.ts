import { randomUUID } from 'node:crypto';
import type * as Tables from '@azure/data-tables';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EventEnvelope } from '../../domain/events';
import type { ProjectionWrite } from '../../domain/ports/eventStore';
import type * as StoreModule from '../../infra/tables/tableEventStore';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { fromDist, packageForDist } from './support/dist';
import { FigureSink } from './support/figures';
import { collectGarbage, quantile, throughput } from './support/timing';

const { TableEventStore } = fromDist<typeof StoreModule>('infra/tables/tableEventStore.js');
const { TableClient } = packageForDist<typeof Tables>('@azure/data-tables');
type Entity = Tables.TableEntity<Record<string, unknown>>;

/** Seconds per measurement and alternating rounds per side: hundreds of appends each, within the 10-minute budget. */
const SECONDS = 1.5;
const ROUNDS = 4;
const sink = new FigureSink('eventAppend');

/** The rows one append writes (stream index, event, head, projection, outbox), as the raw baseline's template. */
const template: Entity[] = [];

/**
 * Every measurement gets a table of its own, deleted afterwards: Azurite keeps tables in memory, and reads
 * slow down as they fill, so a shared table would favour whichever side ran first.
 */
interface Fresh {
  readonly table: Tables.TableClient;
  readonly store: StoreModule.TableEventStore;
}

/** `batchAppends: false` is the store before group commit: every append its own transaction, racing for the head. */
async function fresh(batchAppends = true): Promise<Fresh> {
  const name = uniqueName('benchlog');
  const table = TableClient.fromConnectionString(azuriteConnectionString(), name, { allowInsecureConnection: true });
  await table.createTable();
  return { table, store: TableEventStore.fromConnectionString(azuriteConnectionString(), name, { batchAppends }) };
}

interface Measured {
  readonly perSecond: number;
  readonly count: number;
  readonly latenciesMs: number[];
  /** Milliseconds of this process's CPU per operation: near the wall time per op, the client is the limit. */
  readonly cpuMsPerOp: number;
}

async function measured(writers: number, op: (writer: number, n: number) => Promise<void>): Promise<Measured> {
  collectGarbage();
  const cpu = process.cpuUsage();
  const result = await throughput(writers, SECONDS, op);
  const used = process.cpuUsage(cpu);
  return { ...result, cpuMsPerOp: (used.user + used.system) / 1000 / result.count };
}

const better = (a: Measured | undefined, b: Measured): Measured => (a && a.perSecond >= b.perSecond ? a : b);

/** One `RunRequested` and the run's status projection: what `POST .../runs` appends. */
function runRequested(workspaceId: string): { streamId: string; events: EventEnvelope[]; projections: ProjectionWrite[] } {
  const runId = randomUUID();
  const deadline = new Date(Date.now() + 600_000).toISOString();
  return {
    streamId: `run:${runId}`,
    events: [
      {
        type: 'RunRequested',
        data: { runId, workspaceId, deadline, specRef: `specs/${workspaceId}/${runId}.json` },
        meta: { at: new Date().toISOString(), actor: 'user:bench', correlationId: randomUUID() },
      },
    ],
    projections: [{ kind: 'upsert', key: `run:${runId}`, value: { runId, status: 'Pending', deadline, phases: [], tornDown: false } }],
  };
}

async function appendNewRun(store: StoreModule.TableEventStore, workspaceId: string): Promise<void> {
  const { streamId, events, projections } = runRequested(workspaceId);
  await store.append({ workspaceId, streamId, expectedVersion: 0, events, projections });
}

/** The same five operations with entities of the same size, unconditional, with no reads before them. */
async function rawTransaction(table: Tables.TableClient, partition: string, writer: number, n: number): Promise<void> {
  const suffix = `${writer}-${n}-${randomUUID().slice(0, 8)}`;
  const actions: Tables.TransactionAction[] = template.map((row) =>
    row.rowKey === 'head'
      ? ['upsert', { ...row, partitionKey: partition }, 'Replace']
      : ['create', { ...row, partitionKey: partition, rowKey: `${row.rowKey}-${suffix}` }],
  );
  await table.submitTransaction(actions);
}

/** The raw transaction after one point read of the partition's head row, as an optimistic append needs. */
async function rawReadThenTransaction(table: Tables.TableClient, partition: string, writer: number, n: number): Promise<void> {
  await table.getEntity(partition, 'head').catch((error: { statusCode?: number }) => {
    if (error.statusCode !== 404) throw error;
  });
  await rawTransaction(table, partition, writer, n);
}

function latencyNote(m: Measured): string {
  const l = m.latenciesMs;
  return `p50 ${quantile(l, 0.5).toFixed(1)} ms, p99 ${quantile(l, 0.99).toFixed(1)} ms, client CPU ${m.cpuMsPerOp.toFixed(2)} ms per op`;
}

/** Runs `body` on a fresh table (warmed by one call per writer), then drops the table. */
async function onFreshTable<T>(writers: number, warm: (f: Fresh, w: number) => Promise<void>, body: (f: Fresh) => Promise<T>, batchAppends = true): Promise<T> {
  const f = await fresh(batchAppends);
  try {
    await Promise.all(Array.from({ length: writers }, (_, w) => warm(f, w)));
    return await body(f);
  } finally {
    await f.table.deleteTable().catch(() => undefined);
  }
}

beforeAll(async () => {
  await onFreshTable(0, async () => undefined, async ({ table, store }) => {
    const ws = `tmpl-${randomUUID()}`;
    await appendNewRun(store, ws);
    for await (const row of table.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${ws}'` } })) {
      const { etag: _etag, timestamp: _ts, ...entity } = row as Record<string, unknown>;
      template.push(entity as Entity);
    }
  });
});

describe('event append overhead', () => {
  it('writes five rows per append, the shape the raw baseline copies', () => {
    expect(template.map((r) => String(r.rowKey).slice(0, 2)).sort()).toEqual(['e:', 'he', 'o:', 'p:', 's:']);
  });

  const configs: Array<{ writers: number; shared: boolean }> = [
    { writers: 1, shared: false },
    { writers: 8, shared: false },
    { writers: 32, shared: false },
    { writers: 8, shared: true },
    { writers: 32, shared: true },
  ];
  for (const { writers, shared } of configs) {
    const label = writers === 1 ? 'c1' : shared ? `oneWorkspace.c${writers}` : `workspaces.c${writers}`;
    // One writer is one workspace and many at once: `c1` is the 1-writer point of both the spread and the same-workspace series.
    it(`${label}: appends through TableEventStore vs raw submitTransaction`, async () => {
      const partitionOf = (prefix: string, w: number): string => (shared ? prefix : `${prefix}-${w}`);
      const rawSide = (op: typeof rawTransaction): Promise<Measured> =>
        onFreshTable(
          writers,
          ({ table }, w) => op(table, partitionOf('raw', w), w, -1),
          ({ table }) => measured(writers, (w, n) => op(table, partitionOf('raw', w), w, n)),
        );
      const stats = { batched: { headRetries: 0, appends: 0, transactions: 0 }, unbatched: { headRetries: 0, appends: 0, transactions: 0 } };
      let verifiedAll = true;
      const storeSide = (batchAppends: boolean): Promise<Measured> =>
        onFreshTable(
          writers,
          ({ store }, w) => appendNewRun(store, partitionOf('ws', w)),
          async ({ store }) => {
            const perWriter = new Array<number>(writers).fill(1);
            const before = { ...store.stats };
            const result = await measured(writers, async (w) => {
              await appendNewRun(store, partitionOf('ws', w));
              perWriter[w]!++;
            });
            const into = batchAppends ? stats.batched : stats.unbatched;
            into.headRetries += store.stats.headRetries - before.headRetries;
            into.appends += store.stats.appends - before.appends;
            into.transactions += store.stats.transactions - before.transactions;
            // Every append landed in the chain, in order, whatever the contention.
            const verified = await store.verify(partitionOf('ws', 0));
            const expected = shared ? perWriter.reduce((a, b) => a + b, 0) : perWriter[0]!;
            verifiedAll &&= verified.ok && verified.records === expected;
            return result;
          },
          batchAppends,
        );

      // Alternating rounds, best of each side, so a burst of load from elsewhere on the machine hits all of them.
      let raw: Measured | undefined;
      let rawRead: Measured | undefined;
      let appended: Measured | undefined;
      let unbatched: Measured | undefined;
      for (let round = 0; round < ROUNDS; round++) {
        raw = better(raw, await rawSide(rawTransaction));
        rawRead = better(rawRead, await rawSide(rawReadThenTransaction));
        appended = better(appended, await storeSide(true));
        if (shared) unbatched = better(unbatched, await storeSide(false));
      }
      if (!raw || !rawRead || !appended) throw new Error('no rounds ran');
      expect(verifiedAll).toBe(true);

      const rawName = `events.rawTransaction.${label}.perSec`;
      sink.add({ name: rawName, value: raw.perSecond, unit: 'tx/s', note: `5 operations per transaction; ${latencyNote(raw)}` });
      const rawReadName = `events.rawReadThenTransaction.${label}.perSec`;
      sink.add({
        name: rawReadName, value: rawRead.perSecond, unit: 'tx/s', baseline: { name: rawName, value: raw.perSecond },
        note: `a point read of the head row, then the same transaction: the least an ETag-guarded append can do; ${latencyNote(rawRead)}`,
      });
      const perTransaction = (s: { appends: number; transactions: number }): string => (s.transactions ? (s.appends / s.transactions).toFixed(1) : 'n/a');
      // Issue 18's targets for one workspace: >= 0.8x raw at 8 writers, >= 0.6x at 32.
      const sharedTarget = writers >= 32 ? 0.6 : 0.8;
      sink.add({
        name: `events.append.${label}.appendsPerSec`,
        value: appended.perSecond,
        unit: 'appends/s',
        baseline: { name: rawName, value: raw.perSecond },
        targets: [{ on: 'ratio' as const, min: shared ? sharedTarget : 0.8 }],
        note: `${latencyNote(appended)}; ${stats.batched.headRetries} head retries in ${ROUNDS} rounds; ${perTransaction(stats.batched)} appends per transaction${shared ? ' (one workspace: group commit)' : ''}; ${((100 * appended.perSecond) / rawRead.perSecond).toFixed(0)}% of read-then-transaction`,
      });
      if (unbatched)
        sink.add({
          name: `events.appendUnbatched.${label}.appendsPerSec`,
          value: unbatched.perSecond,
          unit: 'appends/s',
          baseline: { name: rawName, value: raw.perSecond },
          note: `batchAppends: false, the store before group commit (every append its own transaction, racing for the head ETag); ${latencyNote(unbatched)}; ${stats.unbatched.headRetries} head retries in ${ROUNDS} rounds`,
        });
    });
  }

  it('c1 on an existing stream: appends with a version check', async () => {
    const appended = await onFreshTable(0, async () => undefined, async ({ store }) => {
      const ws = 'existing';
      const { streamId, events } = runRequested(ws);
      await store.append({ workspaceId: ws, streamId, expectedVersion: 0, events });
      let version = 1;
      const result = await measured(1, async () => {
        const event: EventEnvelope = {
          type: 'OperationCompleted',
          data: { operationId: randomUUID(), exitCode: 0 },
          meta: { at: new Date().toISOString(), actor: 'system:bench', correlationId: randomUUID() },
        };
        const projections: ProjectionWrite[] = [{ kind: 'upsert', key: `op:${version}`, value: { exitCode: 0 } }];
        version = (await store.append({ workspaceId: ws, streamId, expectedVersion: version, events: [event], projections })).version;
      });
      expect((await store.readStream(ws, streamId)).version).toBe(result.count + 1);
      return result;
    });
    const rawName = 'events.rawTransaction.c1.perSec';
    const raw = sink.all().find((f) => f.name === rawName)?.value ?? null;
    sink.add({
      name: 'events.append.existingStream.c1.appendsPerSec',
      value: appended.perSecond,
      unit: 'appends/s',
      ...(raw ? { baseline: { name: rawName, value: raw } } : {}),
      note: `${latencyNote(appended)}; store.append alone reads the stream row at the expected version first (handleCommand's readStream makes that a cache hit)`,
    });
  });
});
