import { generateKeyPairSync } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { type JWK, UnsecuredJWT, exportJWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunOrchestrations, RunStores } from '../../domain/services/runPorts';
import type { RunRequester } from '../../domain/services/runPorts';
import { runStreamId } from '../../domain/streams';
import { decodeMessage, encodeMessage } from '../../localhost/queueTrigger';
import { runApiRequester } from '../../functions/runApiRequester';
import { handleRunRequestMessage, type RunRequestHandlerOptions } from '../../functions/runRequestHandler';
import { runRequestMessageSchema } from '../../infra/messaging/runRequestMessage';
import { signedRunRequestBody } from '../../infra/messaging/runRequestProducer';
import { type ProducerKey, RUN_REQUEST_AUDIENCE, RUN_REQUEST_TYPE, runIdForRequest, runRequestVerifier } from '../../infra/messaging/runRequestToken';
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

async function anEd25519Producer(kid: string): Promise<{ producer: ProducerKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { producer: { privateKey, kid }, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' } };
}

let h: ApiHarness;
let ws: string;
let otherWs: string;
let runs: QueueClient;
let poison: QueueClient;
let ledgerTable: TableClient;
let started: Array<{ workspaceId: string; runId: string }>;
let options: RunRequestHandlerOptions;
let registered: ProducerKey;
let foreign: ProducerKey;

/** A message as the registered producer signs it. */
const signed = (request: { requestId: string; requestedBy?: string; workspaceId?: string; spec?: unknown; ttlSeconds?: number; now?: Date }) =>
  signedRunRequestBody(registered, { workspaceId: ws, requestedBy: 'bob', spec: aSpec(), ...request });

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

/** Sends, delivers, and checks that nothing started and the poison entry names the code. */
async function expectPoisoned(body: unknown, code: string, reason: RegExp): Promise<void> {
  const before = started.length;
  await send(body);
  const result = await deliverNext();
  expect(result).toMatchObject({ outcome: 'poisoned', code, reason: expect.stringMatching(reason) });
  expect(started.length).toBe(before);
  const entries = await poisonEntries();
  expect(entries.some((e) => e.code === code && typeof e.reason === 'string')).toBe(true);
}

beforeAll(async () => {
  h = await createApiHarness();
  const owner = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: owner, body: { name: 'Queued' } })).json as { id: string }).id;
  otherWs = ((await h.call('POST', '/api/workspaces', { token: await h.issuer.token('carol'), body: { name: 'Carol only' } })).json as { id: string }).id;
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
  ledgerTable = TableClient.fromConnectionString(connection, uniqueName('ledger'), { allowInsecureConnection: true });
  const producer = await anEd25519Producer('producer-1');
  registered = producer.producer;
  foreign = (await anEd25519Producer('producer-1')).producer; // same kid, a key the platform never registered
  options = {
    deps: h.deps,
    ports: { ledger: new TableRunRequestLedger(ledgerTable, systemClock), requester: runApiRequester(h.deps, stores, orchestrations) },
    schema: runRequestMessageSchema({ spec: runSpecSchema, workspaceId: workspaceIdSchema }),
    verify: runRequestVerifier({ keys: [producer.publicJwk] }),
    poison: new StorageQueuePoisonSink(poison),
    log: { info: () => {}, warn: () => {} },
  };
});

describe('queued run requests (storage queue on Azurite, the real run API)', () => {
  it('a message signed by a registered producer for a member starts a run: RunRequested under the requester, the orchestration started once', async () => {
    await send(await signed({ requestId: 'req-0001-start' }));
    const result = await deliverNext();
    expect(result).toMatchObject({ outcome: 'started', runId: runIdForRequest(ws, 'req-0001-start') });
    const runId = (result as { runId: string }).runId;
    const stream = await h.store.readStream(ws, runStreamId(runId));
    expect(stream.events.map((e) => e.type)).toEqual(['RunRequested']);
    expect(stream.events[0]!.meta).toMatchObject({ actor: 'bob', correlationId: 'req-0001-start' });
    expect(stream.events[0]!.data).toMatchObject({ specDigest: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(started).toEqual([{ workspaceId: ws, runId }]);
    expect(await h.store.readProjection(ws, `run:${runId}`)).toMatchObject({ status: 'Pending' });
  });

  it('a replayed message starts nothing and lands in runs-poison — sequential, concurrent, and with its ledger row removed', async () => {
    const body = await signed({ requestId: 'req-0002-replay' });
    await send(body);
    expect((await deliverNext()).outcome).toBe('started');
    await expectPoisoned(body, 'RUN_REQUEST.REPLAYED', /^replayed: .*run /);
    // Three concurrent deliveries of a fresh id: exactly one run, the others poisoned as replays.
    const twin = await signed({ requestId: 'req-0003-twins' });
    const before = started.length;
    const results = await Promise.all([0, 1, 2].map(() => handleRunRequestMessage(twin, options)));
    expect(results.filter((r) => r.outcome === 'started')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'poisoned' && r.code === 'RUN_REQUEST.REPLAYED')).toHaveLength(2);
    expect(started.length - before).toBe(1);
    // Code that can write storage removes the ledger row and replays: the derived run id already has a stream.
    await ledgerTable.deleteEntity(ws, 'request:req-0002-replay');
    await expectPoisoned(body, 'RUN_REQUEST.REPLAYED', /replayed/);
    expect((await h.store.listProjections(ws, 'run:')).map((p) => p.key)).toHaveLength(3); // 0001, 0002, 0003: one run each
  });

  it('an unsigned message, an alg:none token and a user bearer token start nothing and are poisoned as unsigned or untrusted', async () => {
    const { token: _dropped, ...unsigned } = await signed({ requestId: 'req-0010-unsigned' });
    await expectPoisoned(unsigned, 'RUN_REQUEST.UNSIGNED', /^unsigned: /);
    const none = new UnsecuredJWT({ ws, spec_sha256: 'x' }).setAudience(RUN_REQUEST_AUDIENCE).setSubject('bob').setJti('req-0011-none').setIssuedAt().setExpirationTime('5m').encode();
    await expectPoisoned({ ...unsigned, requestId: 'req-0011-none', token: none }, 'RUN_REQUEST.UNSIGNED', /not a compact JWS|EdDSA/);
    // A user's API bearer is no run request: another issuer's key, another audience and type.
    await expectPoisoned({ ...unsigned, token: await h.issuer.token('bob') }, 'RUN_REQUEST.UNTRUSTED_PRODUCER', /registered producer/);
  });

  it('a message signed by an unregistered key, or altered after signing, starts nothing', async () => {
    const body = await signedRunRequestBody(foreign, { workspaceId: ws, requestedBy: 'bob', requestId: 'req-0020-foreign', spec: aSpec() });
    await expectPoisoned(body, 'RUN_REQUEST.UNTRUSTED_PRODUCER', /not signed by a registered producer/);
    const good = await signed({ requestId: 'req-0021-altered' });
    await expectPoisoned({ ...good, spec: aSpec({ turns: [{ command: ['node', '-e', 'evil()'] }] }) }, 'RUN_REQUEST.MISMATCH', /spec differ/);
    await expectPoisoned({ ...good, requestedBy: 'alice' }, 'RUN_REQUEST.MISMATCH', /requestedBy differ/);
    await expectPoisoned({ ...good, workspaceId: otherWs }, 'RUN_REQUEST.MISMATCH', /workspaceId differ/);
    const reordered = { ...good, spec: { deadlineSeconds: 60, turns: aSpec().turns, template: aSpec().template } };
    expect((await handleRunRequestMessage(reordered, options)).outcome).toBe('started'); // the digest is over canonical JSON
  });

  it('an expired message, or one signed to live too long, starts nothing', async () => {
    const expired = await signed({ requestId: 'req-0030-expired', ttlSeconds: 60, now: new Date(Date.now() - 10 * 60_000) });
    await expectPoisoned(expired, 'RUN_REQUEST.EXPIRED', /expired/);
    const forever = await signed({ requestId: 'req-0031-forever', ttlSeconds: 30 * 24 * 3600 });
    await expectPoisoned(forever, 'RUN_REQUEST.EXPIRED', /longer than/);
  });

  it('a signed request for a workspace the user is not in (or for a non-member) is poisoned and audited like HTTP; the run API is never called', async () => {
    const calls: unknown[] = [];
    const spy: RunRequester = { requestRun: async (...args) => { calls.push(args); return { runId: 'never' }; } };
    const guarded = { ...options, ports: { ...options.ports, requester: spy } };
    const foreignWs = await signed({ requestId: 'req-0040-otherws', workspaceId: otherWs });
    expect(await handleRunRequestMessage(foreignWs, guarded)).toMatchObject({ outcome: 'poisoned', code: 'WORKSPACE.NOT_FOUND', reason: expect.stringMatching(/unauthorised/) });
    const outsider = await signed({ requestId: 'req-0041-outsider', requestedBy: 'mallory' });
    expect(await handleRunRequestMessage(outsider, guarded)).toMatchObject({ outcome: 'poisoned', code: 'WORKSPACE.NOT_FOUND' });
    const unknown = await signed({ requestId: 'req-0042-nows', workspaceId: '00000000-0000-4000-8000-000000000000' });
    expect(await handleRunRequestMessage(unknown, guarded)).toMatchObject({ outcome: 'poisoned', code: 'WORKSPACE.NOT_FOUND' });
    expect(calls).toEqual([]);
    const otherLog = await h.store.readLog(otherWs, { limit: 1000 });
    expect(otherLog.records.some((r) => r.type === 'AccessDenied' && r.meta.actor === 'bob')).toBe(true);
    const log = await h.store.readLog(ws, { limit: 1000 });
    expect(log.records.some((r) => r.type === 'AccessDenied' && r.meta.actor === 'mallory')).toBe(true);
  });

  it('malformed, refused and reused-id requests are poisoned with reasons and without the spec or any value', async () => {
    await expectPoisoned('this is not json', 'RUN_REQUEST.MALFORMED', /not JSON/);
    const badSpec = await signed({ requestId: 'req-0050-badspec', spec: { turns: [] } });
    await expectPoisoned(badSpec, 'RUN_REQUEST.MALFORMED', /spec/);
    await expectPoisoned({ ...(await signed({ requestId: 'req-0051-extra' })), extra: true }, 'RUN_REQUEST.MALFORMED', /schema/);
    // The guard refuses a workspace secret's value as standing env; the poison entry names the key, never the value.
    await expectPoisoned(await signed({ requestId: 'req-0052-refused', spec: aSpec({ env: { LEAK: SECRET_VALUE } }) }), 'RUN.LAUNCH_REFUSED', /LEAK/);
    // The producer signed the same request id for another user of the workspace.
    await expectPoisoned(await signed({ requestId: 'req-0001-start', requestedBy: 'alice' }), 'RUN_REQUEST.ID_REUSED', /another user/);
    const entries = await poisonEntries();
    for (const entry of entries) {
      expect(entry).toMatchObject({ poisonedBy: 'runQueue', reason: expect.any(String), original: { bytes: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
      expect(entry).not.toHaveProperty('spec');
      expect(entry).not.toHaveProperty('token');
    }
    expect(JSON.stringify(entries)).not.toContain(SECRET_VALUE);
    expect(await runs.peekMessages()).toMatchObject({ peekedMessageItems: [] });
  });

  it('a transient failure is thrown for redelivery, the redelivery starts the run once, a later one is a replay', async () => {
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
    const body = await signed({ requestId: 'req-0060-transient' });
    await expect(handleRunRequestMessage(body, flakyOptions)).rejects.toThrow('storage is down');
    const retried = await handleRunRequestMessage(body, flakyOptions);
    expect(retried.outcome).toBe('started');
    expect(await handleRunRequestMessage(body, flakyOptions)).toMatchObject({ outcome: 'poisoned', code: 'RUN_REQUEST.REPLAYED' });
  });

  it('the producer token format is what the docs say: EdDSA, its own typ and audience, the claims bound', async () => {
    const body = await signed({ requestId: 'req-0070-format' });
    const [header, payload] = body.token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>);
    expect(header).toEqual({ alg: 'EdDSA', kid: 'producer-1', typ: RUN_REQUEST_TYPE });
    expect(payload).toMatchObject({ aud: RUN_REQUEST_AUDIENCE, ws, sub: 'bob', jti: 'req-0070-format', spec_sha256: expect.any(String), iat: expect.any(Number), exp: expect.any(Number) });
  });
});
