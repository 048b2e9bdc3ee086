import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { QueueClient } from '@azure/storage-queue';
import { afterAll, describe, expect, it } from 'vitest';
import { ENQUEUE_RUN_USAGE, enqueueRunFromCli } from '../../../localhost/enqueueRun';
import { trustedRunProducers } from '../../../infra/messaging/runRequestProducer';
import { runRequestVerifier, specDigest } from '../../../infra/messaging/runRequestToken';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';

const dir = mkdtempSync(path.join(tmpdir(), 'dp-producer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run enqueue-run (the local producer)', () => {
  it('puts a request signed with the local producer key on the queue; a development host trusts that key, a production one does not', async () => {
    const settings = { AzureWebJobsStorage: azuriteConnectionString(), RUN_PRODUCER_KEY_DIR: path.join(dir, 'key') };
    const specFile = path.join(dir, 'spec.json');
    const spec = { template: { files: {} }, turns: [{ command: ['node', '-e', '1'] }], deadlineSeconds: 30 };
    writeFileSync(specFile, JSON.stringify(spec));
    const queueName = uniqueName('runs');
    const ws = '11111111-2222-4333-8444-555555555555';
    const requestId = await enqueueRunFromCli([ws, 'bob', specFile], settings, () => '', queueName);
    const [message] = (await new QueueClient(azuriteConnectionString(), queueName).receiveMessages()).receivedMessageItems;
    const body = JSON.parse(Buffer.from(message!.messageText, 'base64').toString('utf8')) as Record<string, unknown>;
    expect(body).toMatchObject({ workspaceId: ws, requestedBy: 'bob', requestId, spec });
    expect(JSON.stringify(body)).not.toMatch(/authorization|bearer/i);
    const development = runRequestVerifier(await trustedRunProducers({ production: false, localKeyDir: settings.RUN_PRODUCER_KEY_DIR }));
    expect(await development(String(body.token))).toMatchObject({ workspaceId: ws, requestedBy: 'bob', requestId, specDigest: specDigest(spec) });
    const production = runRequestVerifier(await trustedRunProducers({ production: true, configured: JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43), kid: 'other' }] }) }));
    await expect(production(String(body.token))).rejects.toMatchObject({ code: 'RUN_REQUEST.UNTRUSTED_PRODUCER' });
    await expect(enqueueRunFromCli([ws], settings, () => '')).rejects.toThrow(ENQUEUE_RUN_USAGE);
  });
});
