import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBatteryBackend, type BatteryBackend } from '../support/batteryBackend';
import { BatteryTally } from '../support/batteryRuns';
import { EventType } from '../../localhost/durable/historyEvents';
import { SampleApp } from '../localhost/durable/sampleApp';

/**
 * The run lifecycle retries only its idempotent activities (interrupt, teardown, finish) and nothing in it can be
 * made to throw on demand from outside, so this fault uses the durable-sample fixture app on the same engine: its
 * `flaky` activity throws on its first two executions, under a retry policy of three attempts.
 */
const tally = new BatteryTally();
let backend: BatteryBackend;
let log: string;

beforeAll(async () => {
  backend = await startBatteryBackend({ app: 'test/fixtures/apps/durable-sample' });
  log = path.join(backend.dir, 'executions.log');
  await backend.startHost({ DURABLE_SAMPLE_LOG: log });
}, 60_000);

afterAll(async () => {
  console.log(tally.line('activity throws twice'));
  await backend?.close();
});

describe('an activity that throws on its first two attempts', () => {
  it('is retried and completes on the third; the history records two failures and one completion, in order', async () => {
    const app = new SampleApp(backend.url());
    const key = 'battery-flaky';
    const id = await app.start('retrying', key);
    tally.faultsInjected += 2;
    const done = await app.waitFor(id, ['Completed', 'Failed', 'Terminated'], 60_000);
    expect(done).toMatchObject({ runtimeStatus: 'Completed', output: { key, attempt: 3 } });
    const executions = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind: string; key: string });
    expect(executions.filter((e) => e.kind === 'flaky' && e.key === key)).toHaveLength(3);

    // The engine's history rows (h-<execution>-<index>, event JSON in `data`, small enough for one chunk here).
    const history = TableClient.fromConnectionString(backend.azurite.connectionString, 'batteryHistory', { allowInsecureConnection: true });
    const rows: { rowKey: string; type: number }[] = [];
    for await (const row of history.listEntities<{ data?: string }>({ queryOptions: { filter: `PartitionKey eq '${id}'` } })) {
      if (String(row.rowKey).startsWith('h-')) rows.push({ rowKey: String(row.rowKey), type: (JSON.parse(String(row.data)) as { EventType: number }).EventType });
    }
    rows.sort((a, b) => a.rowKey.localeCompare(b.rowKey));
    const types = rows.map((r) => r.type);
    expect(types.filter((t) => t === EventType.TaskFailed)).toHaveLength(2);
    expect(types.filter((t) => t === EventType.TaskCompleted)).toHaveLength(1);
    expect(types.filter((t) => t === EventType.ExecutionCompleted)).toHaveLength(1);
    expect(types.indexOf(EventType.TaskCompleted)).toBeGreaterThan(types.lastIndexOf(EventType.TaskFailed));
    // History indexes 0..n-1: no gap, no duplicate.
    expect(rows.map((r) => Number(r.rowKey.slice(r.rowKey.lastIndexOf('-') + 1)))).toEqual(rows.map((_, i) => i));
    tally.faultsSurvived += 2;
  }, 90_000);
});
