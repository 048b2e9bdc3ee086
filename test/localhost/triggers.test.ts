import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../support/localHostProcess';

interface FixtureState {
  ticks: { isPastDue: boolean; scheduleStatus: { last: string; next: string; lastUpdated: string } }[];
  startupRuns: number;
  queue: Record<string, { attempts: number[]; message: unknown }>;
}

const base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('local host: timer and storage-queue triggers (child process, fixture app)', () => {
  let host: LocalHostProcess;
  let keyDir: string;
  let queue: QueueClient;
  let poison: QueueClient;

  const state = async (): Promise<FixtureState> => (await (await fetch(`${host.url}/api/state`)).json()) as FixtureState;

  beforeAll(async () => {
    keyDir = mkdtempSync(path.join(tmpdir(), 'dev-issuer-'));
    const queueName = uniqueName('work');
    const service = QueueServiceClient.fromConnectionString(azuriteConnectionString());
    queue = service.getQueueClient(queueName);
    poison = service.getQueueClient(`${queueName}-poison`);
    host = await startLocalHost({
      app: 'test/fixtures/apps/basic',
      env: { AzureWebJobsStorage: azuriteConnectionString(), FIXTURE_QUEUE: queueName, DEV_ISSUER_KEY_DIR: keyDir },
      args: ['--no-extensions'],
    });
  });

  afterAll(async () => {
    await host?.stop();
    await queue?.deleteIfExists();
    await poison?.deleteIfExists();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('fires a six-field NCRONTAB timer on its schedule with the timer object the library expects', async () => {
    await vi.waitFor(async () => expect((await state()).ticks.length).toBeGreaterThanOrEqual(3), { timeout: 15_000, interval: 250 });
    const { ticks } = await state();
    for (const tick of ticks) {
      expect(typeof tick.isPastDue).toBe('boolean');
      const next = Date.parse(tick.scheduleStatus.next);
      // Every occurrence of `*/1 * * * * *` is a whole UTC second, after the moment the status was written.
      expect(next % 1000).toBe(0);
      expect(next).toBeGreaterThan(Date.parse(tick.scheduleStatus.lastUpdated));
      expect(Date.parse(tick.scheduleStatus.last)).toBeLessThan(next);
    }
    const nexts = ticks.map((t) => t.scheduleStatus.next);
    expect(new Set(nexts).size).toBe(nexts.length);
  });

  it('runs a runOnStartup timer once at start even though its schedule is a year away', async () => {
    expect((await state()).startupRuns).toBe(1);
  });

  it('delivers a base64-encoded queue message once, decoded and JSON-parsed, with its dequeue count', async () => {
    await queue.sendMessage(base64(JSON.stringify({ id: 'ok-1', payload: 'héllo' })));
    await vi.waitFor(async () => expect((await state()).queue['ok-1']).toBeDefined(), { timeout: 15_000, interval: 200 });
    // Deleted after success: the queue drains and the function is not called again.
    await vi.waitFor(async () => expect((await queue.getProperties()).approximateMessagesCount).toBe(0), { timeout: 15_000, interval: 200 });
    const entry = (await state()).queue['ok-1'];
    expect(entry).toEqual({ attempts: [1], message: { id: 'ok-1', payload: 'héllo' } });
  });

  it('retries a failing message up to maxDequeueCount (2 in host.json), then moves it to <queue>-poison', async () => {
    const text = JSON.stringify({ id: 'bad-1', fail: true });
    await queue.sendMessage(base64(text));
    await vi.waitFor(
      async () => {
        expect(await poison.exists()).toBe(true);
        const peeked = await poison.peekMessages({ numberOfMessages: 32 });
        expect(peeked.peekedMessageItems.map((m) => Buffer.from(m.messageText, 'base64').toString('utf8'))).toContain(text);
      },
      { timeout: 20_000, interval: 250 },
    );
    expect((await state()).queue['bad-1']?.attempts).toEqual([1, 2]);
    expect((await queue.peekMessages()).peekedMessageItems).toHaveLength(0);
  });

  it('moves a message that is not valid base64 to the poison queue without invoking the function', async () => {
    await queue.sendMessage('not base64 at all!');
    await vi.waitFor(
      async () => {
        const peeked = await poison.peekMessages({ numberOfMessages: 32 });
        expect(peeked.peekedMessageItems.map((m) => m.messageText)).toContain('not base64 at all!');
      },
      { timeout: 20_000, interval: 250 },
    );
    expect(Object.keys((await state()).queue)).not.toContain('not base64 at all!');
  });
});
