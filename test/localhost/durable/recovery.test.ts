import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../support/localHostProcess';
import { SampleApp } from './sampleApp';

const INSTANCES = 10;
const expectedOutput = (start: number): number => 3 * (start + 10) + 60; // four steps add 1..4, then branches add 10, 20, 30

const executionKeys = (file: string): string[] =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { key: string }).key) : [];

/** Activity keys whose completion the engine had recorded (history or inbox rows) when the host died. */
async function recordedCompletions(hub: string): Promise<{ recorded: Set<string>; statuses: string[] }> {
  const connection = azuriteConnectionString();
  const history = TableClient.fromConnectionString(connection, `${hub}History`, { allowInsecureConnection: true });
  const instances = TableClient.fromConnectionString(connection, `${hub}Instances`, { allowInsecureConnection: true });
  const scheduled = new Map<string, string>();
  const completed: string[] = [];
  for await (const row of history.listEntities<{ data: string }>()) {
    const event = JSON.parse(row.data) as { EventType: number; EventId: number; TaskScheduledId?: number; Input?: string };
    const id = (n: number | undefined): string => `${String(row.partitionKey)}/${String(n)}`;
    if (event.EventType === 4) scheduled.set(id(event.EventId), (JSON.parse(event.Input ?? '{}') as { key: string }).key);
    if (event.EventType === 5) completed.push(id(event.TaskScheduledId));
  }
  const statuses: string[] = [];
  for await (const row of instances.listEntities<{ status: string }>()) statuses.push(row.status);
  return { recorded: new Set(completed.map((c) => scheduled.get(c) ?? `unknown ${c}`)), statuses };
}

describe('Durable engine: recovery after the host is killed with SIGKILL', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'durable-recovery-'));
  const log = path.join(dir, 'executions.jsonl');
  const hub = uniqueName('crash');
  const env = { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: hub, DURABLE_SAMPLE_LOG: log, DEV_ISSUER_KEY_DIR: dir };
  let host: LocalHostProcess | undefined;

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resumes all 10 in-flight orchestrations with their outputs, never re-running a recorded activity', async () => {
    host = await startLocalHost({ app: 'test/fixtures/apps/durable-sample', env });
    const before = new SampleApp(host.url);
    const ids = await Promise.all(Array.from({ length: INSTANCES }, (_, i) => before.start('crashy', { start: i * 100, ms: 400 }, `crash-${i}`)));
    await vi.waitFor(() => expect(executionKeys(log).length).toBeGreaterThanOrEqual(15), { timeout: 30_000, interval: 20 });

    host.child.kill('SIGKILL');
    await host.stop();
    const startedBeforeKill = new Set(executionKeys(log));
    const { recorded, statuses } = await recordedCompletions(hub);
    expect(statuses).toHaveLength(INSTANCES);
    expect(statuses.every((s) => s === 'Running' || s === 'Pending')).toBe(true); // all still in flight
    expect(recorded.size).toBeGreaterThan(0);
    const interrupted = [...startedBeforeKill].filter((k) => !recorded.has(k));
    expect(interrupted.length).toBeGreaterThan(0); // some activities were mid-run when the host died

    host = await startLocalHost({ app: 'test/fixtures/apps/durable-sample', env });
    expect(host.stdout()).toContain(`${INSTANCES} in-flight orchestration(s) resumed`);
    const after = new SampleApp(host.url);
    for (const [i, id] of ids.entries()) {
      const done = await after.waitFor(id);
      expect(done).toMatchObject({ runtimeStatus: 'Completed', output: expectedOutput(i * 100) });
    }

    const counts = new Map<string, number>();
    for (const key of executionKeys(log)) counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const key of recorded) expect(counts.get(key), `${key} completed before the kill`).toBe(1);
    for (const key of interrupted) expect(counts.get(key), `${key} was interrupted by the kill`).toBe(2);
    expect(counts.size).toBe(INSTANCES * 7);
  });
});
