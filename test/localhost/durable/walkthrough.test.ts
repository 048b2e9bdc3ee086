import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../../support/localHostProcess';
import { rawRequest, startThrough, statusAt, waitAt, withCode, withEvent, withReason } from './managementUrls';

/**
 * A Durable app of our own (test/fixtures/apps/durable-walkthrough) driven over HTTP only through the URLs
 * createCheckStatusResponse returns, on the current durable-functions and on 3.1.0 (which reads a failed
 * task's Reason and Details, not FailureDetails).
 */
describe.each([['durable-functions'], ['durable-functions-3-1']])('Durable walkthrough on %s, through the returned URLs', (durableModule) => {
  let host: LocalHostProcess;
  let dir: string;
  const start = (orchestrator: string, input?: unknown) => startThrough(`${host.url}/api/walkthrough/${orchestrator}`, input);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'durable-walkthrough-'));
    host = await startLocalHost({
      app: 'test/fixtures/apps/durable-walkthrough',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('walk'), DURABLE_FUNCTIONS_MODULE: durableModule, DEV_ISSUER_KEY_DIR: dir },
    });
  });

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('chains activities; the status URL and Location header point at the host\'s own port', async () => {
    const { urls, location } = await start('chainWords', ['one', 'two', 'three']);
    expect(new URL(urls.statusQueryGetUri).origin).toBe(host.url);
    expect(location).toBe(urls.statusQueryGetUri);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: 'ONE! TWO! THREE!' });
  });

  it('fans out to 20 activities and fans their results in', async () => {
    const { urls } = await start('sumOfCubes', 20);
    expect((await waitAt(urls.statusQueryGetUri)).output).toEqual({ n: 20, sum: (20 * 21 / 2) ** 2 });
  });

  it('retries a failing activity until its third attempt succeeds', async () => {
    const key = uniqueName('retry');
    const { urls } = await start('retryUntilThird', key);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: { key, attempt: 3 } });
  });

  it('hands an activity\'s failure to the orchestrator with its message', async () => {
    const { urls } = await start('catchFailure', 'no reason');
    const done = await waitAt(urls.statusQueryGetUri);
    expect(done.output).toMatchObject({ caught: true, message: expect.stringContaining('refused: no reason') });
  });

  it('hands a sub-orchestration\'s failure to the parent with the child\'s message', async () => {
    const { urls } = await start('catchChildFailure', 'child said no');
    const done = await waitAt(urls.statusQueryGetUri);
    expect(done.output).toMatchObject({ caught: true, message: expect.stringContaining('refused: child said no') });
  });

  it('fails an orchestration whose activity failure is not caught, naming the failure', async () => {
    const { urls } = await start('failUncaught', 'uncaught');
    const done = await waitAt(urls.statusQueryGetUri);
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toContain('refused: uncaught');
  });

  it('human interaction: the event raised through sendEventPostUri wins; unattended, the timer does', async () => {
    const [attended, unattended] = await Promise.all([start('awaitApproval', { seconds: 120 }), start('awaitApproval', { seconds: 1 })]);
    expect(await waitAt(attended.urls.statusQueryGetUri, ['Running'])).toMatchObject({ customStatus: 'awaiting approval' });
    const raised = await fetch(withEvent(attended.urls, 'Approval'), { method: 'POST', body: JSON.stringify({ by: 'ines' }), headers: { 'content-type': 'application/json' } });
    expect(raised.status).toBe(202);
    expect(await waitAt(attended.urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: { outcome: 'approved', by: 'ines' } });
    expect(await waitAt(unattended.urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: { outcome: 'expired' } });
  });

  it('monitor: checks on a durable-timer interval until the job is ready', async () => {
    const { urls } = await start('monitorJob', { key: uniqueName('job'), intervalSeconds: 1, expiresInSeconds: 60 });
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: { ready: true, checks: 3 }, customStatus: { checks: 3 } });
  });

  it('continues as new until done, keeping one instance id', async () => {
    const { urls } = await start('countDown', { left: 4, total: 0 });
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ instanceId: urls.id, runtimeStatus: 'Completed', output: { total: 64 + 27 + 8 + 1 } });
  });

  it('callHttp: posts to a local server and polls its 202 Location until the job is done', async () => {
    const jobs = await startJobServer();
    try {
      const { urls } = await start('startRemoteJob', { url: `${jobs.url}/jobs`, job: { size: 3 } });
      expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Completed', output: { statusCode: 200, content: { done: true, size: 3 } } });
      expect(jobs.requests).toEqual(['POST /jobs {"size":3}', 'GET /jobs/1 ', 'GET /jobs/1 ']);
    } finally {
      await jobs.close();
    }
  });

  it('entities: an orchestration signals and calls a counter, which keeps order and throws for a failed operation', async () => {
    const key = uniqueName('tally');
    const { urls } = await start('tallyWithEntity', key);
    const done = await waitAt(urls.statusQueryGetUri);
    // durable-functions serialises an entity's error with JSON.stringify, which keeps no message: the caller
    // gets an Error all the same, and the entity's state is left as it was.
    expect(done).toMatchObject({ runtimeStatus: 'Completed', output: { total: 7, failure: expect.any(String) } });
    expect(await (await fetch(`${host.url}/api/counters/${key}`)).json()).toEqual({ exists: true, value: 7 });
  });

  it('entities: the client signals a counter and reads its state', async () => {
    const key = uniqueName('client');
    const read = async () => (await (await fetch(`${host.url}/api/counters/${key}`)).json()) as { exists: boolean; value: unknown };
    expect(await read()).toEqual({ exists: false, value: null });
    for (const n of [1, 2, 3]) expect((await fetch(`${host.url}/api/counters/${key}/add`, { method: 'POST', body: String(n) })).status).toBe(202);
    await vi.waitFor(async () => expect(await read()).toEqual({ exists: true, value: 6 }), { timeout: 10_000, interval: 100 });
  });

  it('terminates and purges through the returned URLs', async () => {
    const { urls } = await start('awaitApproval', { seconds: 300 });
    await waitAt(urls.statusQueryGetUri, ['Running']);
    expect((await fetch(withReason(urls.terminatePostUri, 'withdrawn'), { method: 'POST' })).status).toBe(202);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Terminated', output: 'withdrawn' });
    expect((await fetch(urls.purgeHistoryDeleteUri, { method: 'DELETE' })).status).toBe(200);
    expect((await statusAt(urls.statusQueryGetUri)).httpStatus).toBe(404);
  });
});

describe('Durable management URLs refuse callers without this start\'s key', () => {
  let host: LocalHostProcess;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'durable-keys-'));
    host = await startLocalHost({
      app: 'test/fixtures/apps/durable-walkthrough',
      env: { AzureWebJobsStorage: azuriteConnectionString(), DURABLE_TASK_HUB: uniqueName('keys'), DEV_ISSUER_KEY_DIR: dir },
    });
  });

  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 401 to start, raise, terminate, suspend and purge without the key or with a wrong one, and none of them acts', async () => {
    const { urls } = await start();
    await waitAt(urls.statusQueryGetUri, ['Running']);
    const listUrl = urls.statusQueryGetUri.replace(`/instances/${urls.id}`, '/instances/');
    const instancesBefore = ((await (await fetch(listUrl)).json()) as unknown[]).length;
    const createUrl = `${host.url}/runtime/webhooks/durabletask/orchestrators/chainWords`;
    for (const code of [undefined, '', 'guess', new URL(urls.statusQueryGetUri).searchParams.get('code')!.slice(1)]) {
      const attempts: [string, string, string?][] = [
        [withCode(createUrl, code), 'POST', '["x"]'],
        [withCode(withEvent(urls, 'Approval'), code), 'POST', '{"by":"mallory"}'],
        [withCode(withReason(urls.terminatePostUri, 'hijacked'), code), 'POST'],
        [withCode(withReason(urls.suspendPostUri, 'hijacked'), code), 'POST'],
        [withCode(urls.purgeHistoryDeleteUri, code), 'DELETE'],
        [withCode(urls.statusQueryGetUri, code), 'GET'],
        [withCode(listUrl, code), 'DELETE'],
        [withCode(`${host.url}/runtime/webhooks/durabletask/entities/counter/mallory?op=add`, code), 'POST', '1000'],
        [withCode(`${host.url}/runtime/webhooks/durabletask/entities/counter/mallory`, code), 'GET'],
      ];
      for (const [url, method, body] of attempts) expect((await fetch(url, { method, ...(body ? { body } : {}) })).status, `${method} ${url}`).toBe(401);
    }
    // The key as a path segment (the client library's rpcBaseUrl form) is checked likewise.
    expect((await fetch(`${host.url}/runtime/webhooks/durabletask/rpc/guess/instances/${urls.id}/terminate`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${host.url}/runtime/webhooks/durabletask/rpc/instances/${urls.id}/terminate`, { method: 'POST' })).status).toBe(401);
    // With the key but a Host name other than loopback (DNS rebinding from a browser): 403.
    expect(await rawRequest(withReason(urls.terminatePostUri, 'rebound'), 'POST', `attacker.example:${host.port}`)).toBe(403);

    expect(await statusAt(urls.statusQueryGetUri)).toMatchObject({ httpStatus: 202, body: { runtimeStatus: 'Running', customStatus: 'awaiting approval' } });
    expect(((await (await fetch(listUrl)).json()) as unknown[]).length).toBe(instancesBefore);
    expect(host.stdout() + host.stderr()).not.toContain(new URL(urls.statusQueryGetUri).searchParams.get('code')!);
  });

  it('answers with the key: the same terminate URL works as returned', async () => {
    const { urls } = await start();
    await waitAt(urls.statusQueryGetUri, ['Running']);
    expect((await fetch(withReason(urls.terminatePostUri, 'owner'), { method: 'POST' })).status).toBe(202);
    expect(await waitAt(urls.statusQueryGetUri)).toMatchObject({ runtimeStatus: 'Terminated' });
  });

  function start() {
    return startThrough(`${host.url}/api/walkthrough/awaitApproval`, { seconds: 300 });
  }
});

/** A server with the asynchronous 202 pattern: POST /jobs starts a job, GET /jobs/1 answers 202 once, then 200. */
async function startJobServer(): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  let size = 0;
  let polls = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url} ${body}`);
      if (req.method === 'POST' && req.url === '/jobs') {
        size = (JSON.parse(body) as { size: number }).size;
        res.writeHead(202, { location: '/jobs/1', 'retry-after': '0' }).end();
      } else if (req.method === 'GET' && req.url === '/jobs/1' && ++polls < 2) res.writeHead(202, { location: '/jobs/1', 'retry-after': '1' }).end();
      else if (req.method === 'GET' && req.url === '/jobs/1') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ done: true, size }));
      else res.writeHead(404).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
