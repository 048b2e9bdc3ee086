import fc from 'fast-check';
import { QueueClient } from '@azure/storage-queue';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeMessage } from '../../localhost/queueTrigger';
import { BODY_CANARY, type FuzzTarget, meaningfulRecords } from '../support/batteryFuzz';
import { startFuzzTarget } from '../support/batteryFuzzSetup';
import { BatteryTally } from '../support/batteryRuns';
import { LeakScanner } from '../support/leakScan';

const MESSAGES = 120;
const tally = new BatteryTally();
let t: FuzzTarget;

beforeAll(async () => {
  t = await startFuzzTarget();
}, 90_000);

afterAll(async () => {
  console.log(tally.line('queue bad input'));
  await t?.backend.close();
});

const validSpec = { template: { files: {} }, turns: [{ command: ['node', '-e', '1'] }], deadlineSeconds: 30 };

/** Messages the `runs` queue may receive that must never start a run: malformed, mistyped, hostile or unauthorised. */
const message = (ws: string): fc.Arbitrary<{ text: string; raw: boolean }> =>
  fc.oneof(
    fc.constantFrom('', '{', 'null', '[]', '"x"', '12', '{"workspaceId":', '\u0000\uFEFF{}', '{"a":'.repeat(500) + '1' + '}'.repeat(500)).map((text) => ({ text, raw: false })),
    fc.json({ maxDepth: 3 }).map((text) => ({ text, raw: false })),
    fc.string({ maxLength: 300 }).map((text) => ({ text, raw: false })),
    fc.string({ maxLength: 60 }).map((text) => ({ text: `${text}%%not base64%%`, raw: true })),
    fc.record({
      workspaceId: fc.constantFrom(ws, '../../etc', `${ws}/../x`, '', 'ws\r\nX-Injected: 1', 42, null),
      requestedBy: fc.constantFrom('mallory', 'alice\u0000', '../alice', '', 'a'.repeat(300), ['alice'], 'bob\r\nalice'),
      requestId: fc.constantFrom('req-0001-abcd', 'short', '../../../../x', 'r'.repeat(200), '\u202e\u202erequest', 7),
      spec: fc.constantFrom(validSpec, { ...validSpec, deadlineSeconds: '30' }, { ...validSpec, env: { X: BODY_CANARY }, extra: 1 }, { ...validSpec, template: { files: { '../x': '' } } },
        { ...validSpec, turns: [{ command: 'sh -c id' }] }, { ...validSpec, value: BODY_CANARY }),
      extra: fc.option(fc.constantFrom({ value: BODY_CANARY }, { __proto__: { admin: true } }), { nil: undefined }),
    }).map(({ extra, ...m }) => ({ text: JSON.stringify(extra ? { ...m, ...extra } : m), raw: false })),
    fc.constant({ text: JSON.stringify({ workspaceId: ws, requestedBy: 'alice', requestId: 'huge-0001', spec: { ...validSpec, pad: 'p'.repeat(40_000), value: BODY_CANARY } }), raw: false }),
  );

describe('bad run requests on the `runs` queue', () => {
  it(`sends ${MESSAGES} hostile messages: every one ends in runs-poison with a reason, none starts a run or stores a record`, async () => {
    const cs = t.backend.azurite.connectionString;
    const runs = new QueueClient(cs, 'runs');
    const poison = new QueueClient(cs, 'runs-poison');
    await runs.createIfNotExists();
    await poison.createIfNotExists();
    const poisonedBefore = (await poison.getProperties()).approximateMessagesCount ?? 0;
    const before = await meaningfulRecords(t);
    const sample = fc.sample(message(t.ws), { numRuns: MESSAGES, seed: 10 });
    for (const m of sample) await runs.sendMessage(m.raw ? m.text : encodeMessage(m.text, 'base64'));
    tally.requests += sample.length;
    const rawTexts = new Set(sample.filter((m) => m.raw).map((m) => m.text));
    await vi.waitFor(async () => {
      expect((await runs.getProperties()).approximateMessagesCount).toBe(0);
      expect((await poison.getProperties()).approximateMessagesCount).toBe(poisonedBefore + sample.length);
    }, { timeout: 90_000, interval: 500 });
    expect(await meaningfulRecords(t)).toBe(before);

    // Every poison entry names a reason and carries no value (received, read and put back invisible only briefly).
    const scanner = new LeakScanner({ ...t.secrets, BODY_CANARY });
    let read = 0;
    for (;;) {
      const batch = await poison.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 120 });
      if (batch.receivedMessageItems.length === 0) break;
      for (const item of batch.receivedMessageItems) {
        read++;
        scanner.scan('poison', item.messageId, item.messageText);
        // A message the host cannot decode is moved as it came, as Azure Functions does (its reason is logged).
        if (rawTexts.has(item.messageText)) continue;
        const text = Buffer.from(item.messageText, 'base64').toString('utf8');
        scanner.scan('poison', item.messageId, text);
        const entry = JSON.parse(text) as { reason?: string; code?: string };
        expect(typeof entry.reason, text.slice(0, 200)).toBe('string');
        expect(typeof entry.code, text.slice(0, 200)).toBe('string');
      }
    }
    expect(read).toBe(poisonedBefore + sample.length);
    expect(scanner.report.hits).toEqual([]);
    const scan = await t.backend.leakScan(t.secrets);
    console.log(scan.text);
    tally.scannedBytes += scan.bytes + scanner.report.bytes;
    tally.leakHits += scan.hits.length + scanner.report.hits.length;
    expect(scan.hits).toEqual([]);
  }, 120_000);
});
