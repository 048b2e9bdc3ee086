import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../../support/localHostProcess';
import { startThrough, waitAt, withCode, withReason, type ManagementUrls } from './managementUrls';

type WithRewind = ManagementUrls & { readonly rewindPostUri: string };

/**
 * Rewind (the client's `rewind` and the rewindPostUri of createCheckStatusResponse): a failed instance's
 * failed activities and sub-orchestrations run again, completed activities keep their results.
 */
describe.each([['durable-functions'], ['durable-functions-3-1']])('Durable rewind on %s', (durableModule) => {
  let host: LocalHostProcess;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'durable-rewind-'));
    host = await startLocalHost({
      app: 'test/fixtures/apps/durable-walkthrough',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('rewind'), DURABLE_FUNCTIONS_MODULE: durableModule, DEV_ISSUER_KEY_DIR: dir },
    });
  });

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-runs the failed activity, then (recursively) the failed sub-orchestration, keeping completed results', async () => {
    const key = uniqueName('rw');
    const { urls } = await startThrough(`${host.url}/api/walkthrough/rewindable`, key);
    const rewindUrl = (urls as WithRewind).rewindPostUri;
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Failed', output: expect.stringContaining(`first try for ${key} fails`) });

    // Without the key: 401, and nothing happens.
    expect((await fetch(withCode(withReason(rewindUrl, 'x'), undefined), { method: 'POST' })).status).toBe(401);
    expect((await fetch(withReason(rewindUrl, 'first'), { method: 'POST' })).status).toBe(202);
    // The activity ran again; the child then failed in its own first try: the parent fails again, on it.
    expect(await waitAt(urls.statusQueryGetUri, ['Failed'], 30_000)).toMatchObject({ output: expect.stringContaining(`first try for ${key}-child fails`) });

    expect((await fetch(`${host.url}/api/rewind/${urls.id}`, { method: 'POST' })).status).toBe(202);
    expect(await waitAt(urls.statusQueryGetUri, ['Completed'])).toMatchObject({
      output: { ticks: 1, second: `ok:${key}`, child: { ticks: 1, result: `ok:${key}-child` } },
    });
  });

  it('answers 501 for an instance with a retried task, and leaves it failed', async () => {
    const { urls } = await startThrough(`${host.url}/api/walkthrough/rewindRetried`, uniqueName('rr'));
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Failed' });
    expect((await fetch(withReason((urls as WithRewind).rewindPostUri, 'no'), { method: 'POST' })).status).toBe(501);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Failed' });
  });

  it('refuses to rewind an instance that has not failed (412) or does not exist (404)', async () => {
    const { urls } = await startThrough(`${host.url}/api/walkthrough/chainWords`, ['a']);
    await waitAt(urls.statusQueryGetUri, ['Completed']);
    expect((await fetch(withReason((urls as WithRewind).rewindPostUri, 'no'), { method: 'POST' })).status).toBe(412);
    const client = await fetch(`${host.url}/api/rewind/${urls.id}`, { method: 'POST' });
    expect(await client.json()).toMatchObject({ message: expect.stringContaining('only supported on failed') });
    expect((await fetch(withReason((urls as WithRewind).rewindPostUri.replace(urls.id, 'nobody'), 'no'), { method: 'POST' })).status).toBe(404);
  });

  it('restarts an instance (the binding\'s restartPostUri) under a new id, or its own once finished', async () => {
    const { urls } = await startThrough(`${host.url}/api/walkthrough/chainWords`, ['re', 'start']);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: 'RE! START!' });
    const restartUrl = (extra = ''): string => {
      const url = new URL(urls.statusQueryGetUri);
      url.pathname += '/restart';
      return `${url.toString()}${extra}`;
    };
    expect((await fetch(withCode(restartUrl(), undefined), { method: 'POST' })).status).toBe(401);
    const fresh = await fetch(restartUrl(), { method: 'POST' });
    expect(fresh.status).toBe(202);
    const { id } = (await fresh.json()) as { id: string };
    expect(id).not.toBe(urls.id);
    expect(await waitAt(urls.statusQueryGetUri.replace(urls.id, id))).toMatchObject({ runtimeStatus: 'Completed', input: ['re', 'start'], output: 'RE! START!' });

    const same = await fetch(restartUrl('&restartWithNewInstanceId=false'), { method: 'POST' });
    expect(await same.json()).toEqual({ id: urls.id });
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: 'RE! START!' });

    const running = await startThrough(`${host.url}/api/walkthrough/awaitApproval`, { seconds: 300 });
    await waitAt(running.urls.statusQueryGetUri, ['Running']);
    const url = new URL(running.urls.statusQueryGetUri);
    url.pathname += '/restart';
    expect((await fetch(`${url.toString()}&restartWithNewInstanceId=false`, { method: 'POST' })).status).toBe(409);
    await fetch(withReason(running.urls.terminatePostUri, 'done'), { method: 'POST' });
  });
});
