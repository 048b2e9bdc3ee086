import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../../support/localHostProcess';
import { taskHubNames } from '../../../../infra/localhost/durable/taskHub';
import { startThrough, statusAt, waitAt, withEvent, withReason, type ManagementUrls } from './managementUrls';

const APP = 'test/fixtures/apps/durable-walkthrough';

/** The counter entity through the app's own entity-client routes. */
function counters(host: LocalHostProcess) {
  return {
    async signal(key: string, op: string, input?: unknown): Promise<void> {
      const response = await fetch(`${host.url}/api/counters/${key}/${op}`, { method: 'POST', ...(input !== undefined ? { body: JSON.stringify(input) } : {}) });
      expect(response.status).toBe(202);
    },
    async read(key: string): Promise<unknown> {
      return ((await (await fetch(`${host.url}/api/counters/${key}`)).json()) as { value: unknown }).value;
    },
  };
}

/** Long enough for a queued operation to have run if the lock did not hold it back. */
const settle = (ms = 1_500) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Entity critical sections (context.df.lock, durable-functions 3.5): while an orchestration holds the lock,
 * other orchestrations' calls and clients' signals to the entity wait; its own calls run; the release (or
 * its end) lets the waiting operations run in arrival order.
 */
describe('Durable entity critical sections', () => {
  let host: LocalHostProcess;
  let dir: string;
  const start = (orchestrator: string, input?: unknown) => startThrough(`${host.url}/api/walkthrough/${orchestrator}`, input);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'durable-sections-'));
    host = await startLocalHost({ app: APP, env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('lock'), DEV_ISSUER_KEY_DIR: dir } });
  });

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds others\' signals and calls back until the section releases, then runs them in arrival order', async () => {
    const entities = counters(host);
    const [from, to] = [uniqueName('from'), uniqueName('to')];
    await entities.signal(from, 'add', 100);
    await vi.waitFor(async () => expect(await entities.read(from)).toBe(100), { timeout: 10_000 });

    const { urls } = await start('transferUnderLock', { from, to, amount: 30 });
    await vi.waitFor(async () => expect((await statusAt(urls.statusQueryGetUri)).body?.customStatus).toBe('locked'), { timeout: 15_000 });

    await entities.signal(from, 'add', 1000); // a client's signal: waits
    const other = await start('tallyWithEntity', from); // another orchestration's signal and calls: wait
    await settle();
    expect(await entities.read(from)).toBe(100);
    expect((await statusAt(other.urls.statusQueryGetUri)).body?.runtimeStatus).toBe('Running');

    expect((await fetch(withEvent(urls, 'proceed'), { method: 'POST', body: 'true' })).status).toBe(202);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({
      runtimeStatus: 'Completed',
      output: { before: false, inside: true, owned: [from, to].sort(), after: false, balance: 100 },
    });
    // The transfer's own calls ran inside the section; the client's signal, then the other orchestration's
    // signal and calls, after it.
    expect(await waitAt(other.urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: { total: 100 - 30 + 1000 + 5 + 2 } });
    expect(await entities.read(to)).toBe(30);
  });

  it('serialises two sections on the same entity: the second acquires it when the first releases', async () => {
    const [a, b, c] = [uniqueName('a'), uniqueName('b'), uniqueName('c')];
    const first = await start('transferUnderLock', { from: a, to: b, amount: 1 });
    await vi.waitFor(async () => expect((await statusAt(first.urls.statusQueryGetUri)).body?.customStatus).toBe('locked'), { timeout: 15_000 });
    const second = await start('transferUnderLock', { from: c, to: a, amount: 2 });
    await settle();
    expect((await statusAt(second.urls.statusQueryGetUri)).body?.customStatus).toBeNull();
    await fetch(withEvent(first.urls, 'proceed'), { method: 'POST', body: 'true' });
    await vi.waitFor(async () => expect((await statusAt(second.urls.statusQueryGetUri)).body?.customStatus).toBe('locked'), { timeout: 15_000 });
    await fetch(withEvent(second.urls, 'proceed'), { method: 'POST', body: 'true' });
    expect(await waitAt(second.urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed' });
    const entities = counters(host);
    expect([await entities.read(a), await entities.read(b), await entities.read(c)]).toEqual([-1 + 2, 1, -2]);
  });

  it('releases the locks of an orchestration that ends inside its section (finished or terminated)', async () => {
    const entities = counters(host);
    const key = uniqueName('forgot');
    const { urls } = await start('forgetToRelease', key);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed' });
    await entities.signal(key, 'add', 10);
    await vi.waitFor(async () => expect(await entities.read(key)).toBe(11), { timeout: 10_000 });

    const [held, other] = [uniqueName('held'), uniqueName('other')];
    const section = await start('transferUnderLock', { from: held, to: other, amount: 5 });
    await vi.waitFor(async () => expect((await statusAt(section.urls.statusQueryGetUri)).body?.customStatus).toBe('locked'), { timeout: 15_000 });
    await entities.signal(held, 'add', 7);
    await settle(500);
    expect(await entities.read(held)).toBeNull();
    expect((await fetch(withReason(section.urls.terminatePostUri, 'stop'), { method: 'POST' })).status).toBe(202);
    await vi.waitFor(async () => expect(await entities.read(held)).toBe(7), { timeout: 10_000 });
  });

  it('fails an orchestration that signals an entity it holds, naming the rule, and frees the entity', async () => {
    const key = uniqueName('rule');
    const { urls } = await start('signalInsideSection', key);
    const done = await waitAt(urls.statusQueryGetUri);
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toContain('Cannot signal an entity from within a critical section');
    // Its locks went when it failed: a rewind could not give them back, so it is refused.
    expect((await fetch(withReason((urls as ManagementUrls & { rewindPostUri: string }).rewindPostUri, 'again'), { method: 'POST' })).status).toBe(501);
    const entities = counters(host);
    await entities.signal(key, 'add', 3);
    await vi.waitFor(async () => expect(await entities.read(key)).toBe(3), { timeout: 10_000 });
  });
});

describe('Durable entity critical sections across a SIGKILL', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'durable-sections-kill-'));
  const env = { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('lockkill'), DEV_ISSUER_KEY_DIR: dir };
  let host: LocalHostProcess | undefined;

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** This start's origin and key on an old URL's path (the old port and key died with the host). */
  async function onThisHost(running: LocalHostProcess, url: string): Promise<string> {
    const fresh = new URL((await startThrough(`${running.url}/api/walkthrough/chainWords`, ['x'])).urls.statusQueryGetUri);
    const old = new URL(url);
    fresh.pathname = old.pathname;
    for (const [name, value] of old.searchParams) if (name !== 'code') fresh.searchParams.set(name, value);
    return fresh.toString();
  }

  it('keeps the lock held across the kill, serves the holder after the restart, and releases it when the section ends', async () => {
    host = await startLocalHost({ app: APP, env });
    const [from, to] = [uniqueName('kfrom'), uniqueName('kto')];
    const { urls } = await start(host, { from, to, amount: 4 });
    await vi.waitFor(async () => expect((await statusAt(urls.statusQueryGetUri)).body?.customStatus).toBe('locked'), { timeout: 15_000 });
    host.child.kill('SIGKILL');
    await host.stop();

    host = await startLocalHost({ app: APP, env });
    const entities = counters(host);
    await entities.signal(from, 'add', 50); // still locked by the transfer: waits
    await settle();
    expect(await entities.read(from)).toBeNull();

    const status = await onThisHost(host, urls.statusQueryGetUri);
    const raise = await onThisHost(host, withEvent(urls as ManagementUrls, 'proceed'));
    expect((await fetch(raise, { method: 'POST', body: 'true' })).status).toBe(202);
    expect(await waitAt(status)).toMatchObject({ runtimeStatus: 'Completed', output: { balance: 0, owned: [from, to].sort() } });
    await vi.waitFor(async () => expect(await entities.read(from)).toBe(-4 + 50), { timeout: 10_000 });
    expect(await entities.read(to)).toBe(4);
  });

  it('completes, after a restart, a lock request that held one entity and waited for the next', async () => {
    await host?.stop();
    host = await startLocalHost({ app: APP, env });
    const entitiesTable = TableClient.fromConnectionString(azuriteConnectionString(), `${taskHubNames(env.DURABLE_TASK_HUB).hub}Entities`, { allowInsecureConnection: true });
    const lockOwner = async (key: string): Promise<unknown> => (await entitiesTable.getEntity<{ lockOwner?: string }>(`@counter@${key}`, 'entity').catch(() => undefined))?.lockOwner;
    const [a, b, spare] = [uniqueName('ka'), uniqueName('kb'), uniqueName('kc')];
    const holder = await start(host, { from: b, to: spare, amount: 1 }); // holds b
    await vi.waitFor(async () => expect((await statusAt(holder.urls.statusQueryGetUri)).body?.customStatus).toBe('locked'), { timeout: 15_000 });
    const waiter = await start(host, { from: a, to: b, amount: 2 }); // takes a, then waits for b
    await vi.waitFor(async () => expect(await lockOwner(a)).toBe(waiter.urls.id), { timeout: 15_000 });
    host.child.kill('SIGKILL');
    await host.stop();

    host = await startLocalHost({ app: APP, env });
    const entities = counters(host);
    await entities.signal(a, 'add', 100); // a is still the waiter's
    await settle();
    expect(await entities.read(a)).toBeNull();
    expect(await lockOwner(a)).toBe(waiter.urls.id);
    await fetch(await onThisHost(host, withEvent(holder.urls, 'proceed')), { method: 'POST', body: 'true' });
    const waiterStatus = await onThisHost(host, waiter.urls.statusQueryGetUri);
    await vi.waitFor(async () => expect((await statusAt(waiterStatus)).body?.customStatus).toBe('locked'), { timeout: 15_000 });
    await fetch(await onThisHost(host, withEvent(waiter.urls, 'proceed')), { method: 'POST', body: 'true' });
    expect(await waitAt(waiterStatus)).toMatchObject({ runtimeStatus: 'Completed', output: { balance: 0, owned: [a, b] } });
    await vi.waitFor(async () => expect(await entities.read(a)).toBe(-2 + 100), { timeout: 10_000 });
    expect(await entities.read(b)).toBe(-1 + 2);
  });

  it('releases, at start, a lock whose holder no longer holds it (it ended before the entity heard)', async () => {
    // A crash between the holder's last commit and the entity's release leaves the row locked by an
    // instance that has finished (here: one that never existed): the restart must free it.
    const key = uniqueName('orphan');
    const table = TableClient.fromConnectionString(azuriteConnectionString(), `${taskHubNames(env.DURABLE_TASK_HUB).hub}Entities`, { allowInsecureConnection: true });
    await table.createTable().catch(() => undefined);
    await table.upsertEntity({ partitionKey: `@counter@${key}`, rowKey: 'entity', exists: true, state: '5', lockOwner: 'ended-instance', lockRequestId: 'r1' }, 'Replace');

    await host?.stop();
    host = await startLocalHost({ app: APP, env });
    const entities = counters(host);
    expect(await entities.read(key)).toBe(5);
    await entities.signal(key, 'add', 9);
    await vi.waitFor(async () => expect(await entities.read(key)).toBe(14), { timeout: 10_000 });
    expect((await table.getEntity<{ lockOwner: string }>(`@counter@${key}`, 'entity')).lockOwner).toBe('');
  });

  function start(running: LocalHostProcess, input: unknown) {
    return startThrough(`${running.url}/api/walkthrough/transferUnderLock`, input);
  }
});
