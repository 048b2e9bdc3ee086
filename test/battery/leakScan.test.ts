import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type RunningAzurite } from '../../localhost/azuriteProcess';
import { allLeakForms, LeakScanner } from '../support/leakScan';
import { projectRoot } from '../support/localHostProcess';

const VALUE = 'planted-secret&value<0123456789';
const bytes = Buffer.from(VALUE);

/** The encodings a careless component might write, each computed here with Node's own codecs. */
const encoded = {
  raw: VALUE,
  base64: bytes.toString('base64'),
  base64Shift1: Buffer.concat([Buffer.from('x'), bytes]).toString('base64'),
  base64Shift2: Buffer.concat([Buffer.from('xy'), bytes]).toString('base64'),
  base64url: Buffer.concat([Buffer.from('?'), bytes]).toString('base64url'),
  hex: bytes.toString('hex'),
  HEX: bytes.toString('hex').toUpperCase(),
  uri: encodeURIComponent(`k=${VALUE}&`),
  json: JSON.stringify({ v: `"${VALUE}"` }),
  xml: `<v>${VALUE.replace('&', '&amp;').replace('<', '&lt;')}</v>`,
} satisfies Record<string, string>;

let azurite: RunningAzurite;
let dir: string;

beforeAll(async () => {
  azurite = await startAzurite({ projectRoot });
  dir = mkdtempSync(path.join(tmpdir(), 'dp-leakscan-'));
}, 60_000);

afterAll(async () => {
  await azurite?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the leak scanner finds what it is meant to find', () => {
  it.each(Object.entries(encoded))('finds the value written as %s inside other text', (_form, text) => {
    const scanner = new LeakScanner({ PLANTED: VALUE });
    scanner.scan('log', 'line', `prefix ${text} suffix`);
    expect(scanner.report.hits.length, text).toBeGreaterThan(0);
    expect(scanner.report.hits[0]).toMatchObject({ where: 'log:line', secret: 'PLANTED' });
  });

  it('finds nothing in text without the value, and counts the bytes it read', () => {
    const scanner = new LeakScanner({ PLANTED: VALUE });
    scanner.scan('log', 'line', 'planted-secret&value<012345678 (one character short)');
    expect(scanner.report.hits).toEqual([]);
    expect(scanner.report.bytes).toBe(52);
    expect(allLeakForms(VALUE).every((f) => f.length >= 8)).toBe(true);
  });

  it('reads every table row, blob, queue message and file of an Azurite and a folder', async () => {
    const cs = azurite.connectionString;
    const table = TableClient.fromConnectionString(cs, 'leaky', { allowInsecureConnection: true });
    await table.createTable();
    await table.createEntity({ partitionKey: 'p', rowKey: 'r', data: encoded.base64Shift2 });
    const container = BlobServiceClient.fromConnectionString(cs).getContainerClient('leaky');
    await container.create();
    await container.getBlockBlobClient('deep/blob.bin').uploadData(Buffer.concat([Buffer.alloc(10), Buffer.from(encoded.hex)]));
    const queue = QueueServiceClient.fromConnectionString(cs).getQueueClient('leaky');
    await queue.create();
    await queue.sendMessage(encoded.json);
    writeFileSync(path.join(dir, 'file.txt'), encoded.uri);

    const scanner = new LeakScanner({ PLANTED: VALUE });
    await scanner.tables(cs);
    await scanner.blobs(cs);
    await scanner.queues(cs);
    scanner.files('files', dir);
    expect(scanner.report.hits.map((h) => h.where.split(':')[0]).sort()).toEqual(expect.arrayContaining(['blob', 'files', 'queue', 'table']));
    expect(scanner.report.hits.find((h) => h.where === 'table:leaky/p/r')).toBeDefined();
    // The queue message was peeked, not taken.
    expect((await queue.peekMessages()).peekedMessageItems).toHaveLength(1);
  });
});
