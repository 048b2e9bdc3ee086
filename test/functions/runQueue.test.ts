import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunOrchestrations, RunStores } from '../../domain/services/runPorts';
import type { RunRequester } from '../../domain/services/runStarter';
import { runStreamId } from '../../domain/streams';
import { decodeMessage, encodeMessage } from '../../infra/localhost/queueTrigger';
import { runApiRequester } from '../../infra/messaging/runApiRequester';
import { handleRunRequestMessage, type RunRequestHandlerOptions } from '../../infra/messaging/runRequestHandler';
import { runRequestMessageSchema } from '../../infra/messaging/runRequestMessage';
import { StorageQueuePoisonSink } from '../../infra/messaging/poisonSink';
import { TableRunRequestLedger } from '../../infra/messaging/tableRunRequestLedger';
import { BlobRunSpecStore, BlobTranscriptStore } from '../../infra/runs/blobRunStores';
import { systemClock } from '../../infra/system/systemClock';
import { workspaceIdSchema } from '../../functions/http/schemas';
import { runSpecSchema } from '../../functions/runs.routes';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';

const SECRET_VALUE = 'npm_live_queue_9f8e7d6c5b4a3928';

const aSpec = (overrides: Record<string, unknown> = {}) => ({
  template: { files: { 'agent.js': 'console.log("hi")' } },
  turns: [{ command: ['node', 'agent.js'] }],
  deadlineSeconds: 60,
  ...overrides,
});

let h: ApiHarness;
let ws: string;
let runs: QueueClient;
let poison: QueueClient;
let started: Array<{ workspaceId: string; runId: string }>;
let options: RunRequestHandlerOptions;

/** The storage-queue trigger's path: a client sends base64 JSON to `runs`; the host decodes it and hands it over. */
async function deliverNext(): Promise<Awaited<ReturnType<typeof handleRunRequestMessage>>> {
  const [message] = (await runs.receiveMessages({ numberOfMessages: 1 })).receivedMessageItems;
  if (!message) throw new Error('no message');
  const text = decodeMessage(message.messageText, 'base64');
  if (text === undefined) throw new Error('not base64');
  let input: unknown = text;
  try {
    input = JSON.parse(text); // the library hands JSON over parsed
  } catch {
    /* text stays text */
  }
  const result = await handleRunRequestMessage(input, options, message.messageId);
  await runs.deleteMessage(message.messageId, message.popReceipt); // completed: the handler returned
  return result;
}

async function send(body: unknown): Promise<void> {
  await runs.sendMessage(encodeMessage(typeof body === 'string' ? body : JSON.stringify(body), 'base64'));
}

async function poisonEntries(): Promise<Array<Record<string, unknown>>> {
  const peeked = await poison.peekMessages({ numberOfMessages: 32 });
  return peeked.peekedMessageItems.map((m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as Record<string, unknown>);
}

beforeAll(async () => {
  h = await createApiHarness();
  const owner = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: owner, body: { name: 'Queued' } })).json as { id: string }).id;
  expect((await h.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: owner, body: { role: 'member' } })).status).toBe(200);
  expect((await h.call('PUT', `/api/workspaces/${ws}/secrets/NPM_TOKEN`, { token: owner, body: { value: SECRET_VALUE } })).status).toBe(201);
  const connection = azuriteConnectionString();
  const prefix = uniqueName('runs');
  runs = new QueueClient(connection, prefix);
  poison = new QueueClient(connection, `${prefix}-poison`);
  await runs.create();
  const blobs = BlobServiceClient.fromConnectionString(connection);
  const stores: RunStores = {
    specs: new BlobRunSpecStore(blobs.getContainerClient(uniqueName('specs'))),
    transcripts: new BlobTranscriptStore(blobs.getContainerClient(uniqueName('transcripts'))),
  };
  started = [];
  // Durable Functions cannot run in this test; the orchestration start is recorded at the port the run API uses.
  const orchestrations: RunOrchestrations = { start: async (workspaceId, runId) => void started.push({ workspaceId, runId }), raiseCancel: async () => {} };
  const ledgerTable = TableClient.fromConnectionString(connection, uniqueName('ledger'), { allowInsecureConnection: true });
  options = {
    deps: h.deps,
    ports: { ledger: new TableRunRequestLedger(ledgerTable, systemClock), requester: runApiRequester(h.deps, stores, orchestrations) },
    schema: runRequestMessageSchema({ spec: runSpecSchema, workspaceId: workspaceIdSchema }),
    poison: new StorageQueuePoisonSink(poison),
    log: { info: () => {}, warn: () => {} },
  };
});

describe('queued run requests (storage queue on Azurite, the real run API)', () => {
  it('a message from a member starts a run: RunRequested is in the log under the requester, the orchestration is started once', async () => {
    await send({ workspaceId: ws, requestedBy: 'bob', requestId: 'req-0001-start', spec: aSpec() });
    const result = await deliverNext();
    expect(result.outcome).toBe('started');
    const runId = (result as { runId: string }).runId;
    const stream = await h.store.readStream(ws, runStreamId(runId));
    expect(stream.events.map((e) => e.type)).toEqual(['RunRequested']);
    expect(stream.events[0]!.meta).toMatchObject({ actor: 'bob', correlationId: 'req-0001-start' });
    expect(started).toContainEqual({ workspaceId: ws, runId });
    expect(await h.store.readProjection(ws, `run:${runId}`)).toMatchObject({ status: 'Pending' });
  });

  it('a duplicate request id starts no second run, whether sequential or concurrent', async () => {
    const body = { workspaceId: ws, requestedBy: 'bob', requestId: 'req-0002-dupe', spec: aSpec() };
    await send(body);
    const first = await deliverNext();
    await send(body);
    const second = await deliverNext();
    expect(first.outcome).toBe('started');
    expect(second).toMatchObject({ outcome: 'duplicate', runId: (first as { runId: string }).runId });
    // Three concurrent deliveries of a fresh id: exactly one run.
    const twin = { ...body, requestId: 'req-0003-twins' };
    const before = started.length;
    const results = await Promise.all([0, 1, 2].map(() => handleRunRequestMessage(twin, options)));
    expect(results.filter((r) => r.outcome === 'started')).toHaveLength(1);
    expect(new Set(results.map((r) => (r as { runId: string }).runId)).size).toBe(1);
    expect(started.length - before).toBe(1);
    const runIds = (await h.store.listProjections(ws, 'run:')).map((p) => p.key);
    expect(runIds).toHaveLength(3);
  });

  it('a request id reused by another user of the workspace is poisoned, not started', async () => {
    await send({ workspaceId: ws, requestedBy: 'alice', requestId: 'req-0002-dupe', spec: aSpec() });
    expect(await deliverNext()).toMatchObject({ outcome: 'poisoned', code: 'RUN_REQUEST.ID_REUSED' });
  });

  it('malformed messages go to runs-poison at once, with a reason and without the spec', async () => {
    await send('this is not json');
    expect(await deliverNext()).toMatchObject({ outcome: 'poisoned', code: 'RUN_REQUEST.MALFORMED' });
    await send({ workspaceId: ws, requestedBy: 'bob', requestId: 'short', spec: { turns: [] } });
    const bad = await deliverNext();
    expect(bad).toMatchObject({ outcome: 'poisoned', code: 'RUN_REQUEST.MALFORMED' });
    expect((bad as { reason: string }).reason).toMatch(/requestId/);
    expect((bad as { reason: string }).reason).toMatch(/spec/);
    await send({ workspaceId: ws, requestedBy: 'bob', requestId: 'req-0004-extra', spec: aSpec(), extra: true });
    expect(await deliverNext()).toMatchObject({ outcome: 'poisoned', code: 'RUN_REQUEST.MALFORMED' });
    const entries = await poisonEntries();
    const malformed = entries.filter((e) => e.code === 'RUN_REQUEST.MALFORMED');
    expect(malformed).toHaveLength(3);
    for (const entry of malformed) {
      expect(entry).toMatchObject({ poisonedBy: 'runQueue', reason: expect.any(String), original: { bytes: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
      expect(entry).not.toHaveProperty('spec');
    }
    expect(await runs.peekMessages()).toMatchObject({ peekedMessageItems: [] });
  });

  it('an outsider, an unknown workspace and a refused spec are poisoned with reasons; the outsider is audited and never reaches the run API', async () => {
    const calls: unknown[] = [];
    const spy: RunRequester = { requestRun: async (...args) => { calls.push(args); return { runId: 'never' }; } };
    const guarded = { ...options, ports: { ...options.ports, requester: spy } };
    const outsider = await handleRunRequestMessage({ workspaceId: ws, requestedBy: 'mallory', requestId: 'req-0005-outsider', spec: aSpec() }, guarded);
    expect(outsider).toMatchObject({ outcome: 'poisoned', code: 'WORKSPACE.NOT_FOUND', reason: expect.stringMatching(/unauthorised/) });
    const unknown = await handleRunRequestMessage({ workspaceId: '00000000-0000-4000-8000-000000000000', requestedBy: 'bob', requestId: 'req-0006-nows', spec: aSpec() }, guarded);
    expect(unknown).toMatchObject({ outcome: 'poisoned', code: 'WORKSPACE.NOT_FOUND' });
    expect(calls).toEqual([]);
    const log = await h.store.readLog(ws, { limit: 1000 });
    expect(log.records.some((r) => r.type === 'AccessDenied' && r.meta.actor === 'mallory')).toBe(true);
    // The guard refuses a workspace secret's value as standing env; the poison entry names the key, never the value.
    const refused = await handleRunRequestMessage({ workspaceId: ws, requestedBy: 'bob', requestId: 'req-0007-refused', spec: aSpec({ env: { LEAK: SECRET_VALUE } }) }, options);
    expect(refused).toMatchObject({ outcome: 'poisoned', code: 'RUN.LAUNCH_REFUSED' });
    expect((refused as { reason: string }).reason).toMatch(/LEAK/);
    const entries = await poisonEntries();
    expect(entries.map((e) => e.code)).toEqual(expect.arrayContaining(['WORKSPACE.NOT_FOUND', 'RUN.LAUNCH_REFUSED', 'RUN_REQUEST.ID_REUSED']));
    expect(JSON.stringify(entries)).not.toContain(SECRET_VALUE);
  });

  it('a transient failure is thrown for redelivery, and the redelivery starts the same run once', async () => {
    let failOnce = true;
    const flaky: RunRequester = {
      requestRun: async (caller, request) => {
        if (failOnce) {
          failOnce = false;
          throw Object.assign(new Error('storage is down'), { statusCode: 503 });
        }
        return options.ports.requester.requestRun(caller, request);
      },
    };
    const flakyOptions = { ...options, ports: { ...options.ports, requester: flaky } };
    const body = { workspaceId: ws, requestedBy: 'bob', requestId: 'req-0008-transient', spec: aSpec() };
    await expect(handleRunRequestMessage(body, flakyOptions)).rejects.toThrow('storage is down');
    const retried = await handleRunRequestMessage(body, flakyOptions);
    expect(retried.outcome).toBe('started');
    expect(await handleRunRequestMessage(body, flakyOptions)).toMatchObject({ outcome: 'duplicate', runId: (retried as { runId: string }).runId });
  });
});
