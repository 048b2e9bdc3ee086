import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { beforeEach, describe, expect, it } from 'vitest';
import type { OutboxStore } from '../../domain/ports/outbox';
import { DedupingConsumer, EventOutOfOrderError } from '../../infra/messaging/dedupingConsumer';
import { OutboxDispatcher } from '../../infra/messaging/outboxDispatcher';
import type { PublishedEvent } from '../../infra/messaging/outboundMessage';
import { StorageQueuePublisher } from '../../infra/messaging/storageQueuePublisher';
import { TableOutboxIndex } from '../../infra/messaging/tableOutboxIndex';
import { decodeMessage } from '../../localhost/queueTrigger';
import { systemClock } from '../../infra/system/systemClock';
import { TableEventStore } from '../../infra/tables/tableEventStore';
import { azuriteConnectionString, uniqueName } from '../support/azurite';

const table = (name: string) => TableClient.fromConnectionString(azuriteConnectionString(), uniqueName(name), { allowInsecureConnection: true });

let store: TableEventStore;
let index: TableOutboxIndex;
let queue: QueueClient;
let eventsTable: TableClient;

async function appendPings(workspaceId: string, stream: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const version = (await store.readStream(workspaceId, stream)).version;
    await store.append({
      workspaceId, streamId: stream, expectedVersion: version,
      events: [{ type: 'Pinged', data: { n: version + 1 }, meta: { at: new Date().toISOString(), actor: 'system:test', correlationId: 'c' } }],
    });
  }
}

/** Reads the queue to the end, as a queue-triggered consumer would receive it. */
async function drainQueue(): Promise<string[]> {
  const texts: string[] = [];
  for (;;) {
    const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32 });
    if (receivedMessageItems.length === 0) return texts;
    for (const m of receivedMessageItems) {
      texts.push(decodeMessage(m.messageText, 'base64') ?? '');
      await queue.deleteMessage(m.messageId, m.popReceipt);
    }
  }
}

beforeEach(async () => {
  eventsTable = table('outboxlog');
  index = new TableOutboxIndex(table('outboxidx'), systemClock, { graceMs: 0 });
  store = new TableEventStore(eventsTable, { outboxIndex: index });
  queue = new QueueClient(azuriteConnectionString(), uniqueName('events'));
});

describe('outbox dispatcher (Table store + storage queue on Azurite)', () => {
  it('a crash between publish and mark re-publishes; the consumer de-duplicates and sees each workspace in order', async () => {
    await appendPings('ws-a', 'run:a1', 3);
    await appendPings('ws-b', 'run:b1', 2);
    await appendPings('ws-a', 'run:a2', 2);
    expect([...(await index.pending())].sort()).toEqual(['ws-a', 'ws-b']);

    // Dispatcher 1 publishes, then "dies" before marking anything sent.
    const dying: TableEventStore & OutboxStore = Object.create(store, {
      markOutboxSent: { value: async () => { throw new Error('process died'); } },
    }) as TableEventStore;
    const first = new OutboxDispatcher({ store: dying, index, publisher: new StorageQueuePublisher(queue) });
    const crashed = await first.dispatchAll();
    expect(crashed).toMatchObject({ published: 0, failed: expect.arrayContaining(['ws-a', 'ws-b']) });
    expect(await store.listOutbox('ws-a')).toHaveLength(5);

    // Dispatcher 2 (a fresh process) finds the same rows and publishes them again, then marks them.
    await appendPings('ws-b', 'run:b2', 1);
    const second = new OutboxDispatcher({ store, index, publisher: new StorageQueuePublisher(queue) });
    expect(await second.dispatchAll()).toEqual({ workspaces: 2, published: 8, failed: [] });
    expect(await store.listOutbox('ws-a')).toEqual([]);
    expect(await store.listOutbox('ws-b')).toEqual([]);
    // Idle and empty: the markers go (grace 0 here), and a third round publishes nothing.
    expect(await index.pending()).toEqual([]);
    expect((await second.dispatchAll()).published).toBe(0);

    const texts = await drainQueue();
    expect(texts).toHaveLength(5 + 2 + 8); // 7 from the dying round, 8 from the second
    const consumer = new DedupingConsumer(table('consumer'), 'audit-mirror');
    const seen: PublishedEvent[] = [];
    const outcomes = [];
    for (const text of texts) outcomes.push(await consumer.consume(text, async (event) => void seen.push(event)));
    expect(outcomes.filter((o) => o === 'duplicate')).toHaveLength(7);
    const sequences = (ws: string) => seen.filter((e) => e.workspaceId === ws).map((e) => e.sequence);
    expect(sequences('ws-a')).toEqual([1, 2, 3, 4, 5]);
    expect(sequences('ws-b')).toEqual([1, 2, 3]);
    // The published body is the stored record, byte for byte what the log returns.
    const log = await store.readLog('ws-a');
    expect(seen.filter((e) => e.workspaceId === 'ws-a')).toEqual(log.records);
    expect(await consumer.highWater('ws-a')).toBe(5);
  });

  it('a later event waits for an earlier one at the consumer, and a redelivery is a duplicate', async () => {
    await appendPings('ws-c', 'run:c1', 3);
    const records = (await store.readLog('ws-c')).records;
    const consumer = new DedupingConsumer(table('consumer'), 'ordered');
    const handled: number[] = [];
    const handle = async (e: PublishedEvent) => void handled.push(e.sequence);
    await expect(consumer.consume(JSON.stringify(records[1]), handle)).rejects.toBeInstanceOf(EventOutOfOrderError);
    expect(await consumer.consume(JSON.stringify(records[0]), handle)).toBe('processed');
    expect(await consumer.consume(Buffer.from(JSON.stringify(records[1])), handle)).toBe('processed');
    expect(await consumer.consume(records[0], handle)).toBe('duplicate');
    expect(await consumer.consume(JSON.stringify(records[2]), handle)).toBe('processed');
    expect(handled).toEqual([1, 2, 3]);
  });

  it('a handler that fails leaves the mark where it was, so the redelivery runs it again', async () => {
    await appendPings('ws-d', 'run:d1', 1);
    const [record] = (await store.readLog('ws-d')).records;
    const consumer = new DedupingConsumer(table('consumer'), 'flaky');
    await expect(consumer.consume(record, async () => { throw new Error('downstream down'); })).rejects.toThrow('downstream down');
    expect(await consumer.highWater('ws-d')).toBe(0);
    expect(await consumer.consume(record, async () => {})).toBe('processed');
  });

  it('a call during a round joins it, and events appended during the round are published by it, in order', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const inner = new StorageQueuePublisher(queue);
    const gated = { name: 'gated', close: async () => {}, publish: async (records: Parameters<StorageQueuePublisher['publish']>[0]) => { await gate; await inner.publish(records); } };
    const dispatcher = new OutboxDispatcher({ store, index, publisher: gated, batchSize: 2 });
    await appendPings('ws-e', 'run:e1', 3);
    const round = dispatcher.dispatchWorkspace('ws-e');
    await appendPings('ws-e', 'run:e2', 2);
    const joined = dispatcher.dispatchWorkspace('ws-e');
    expect(joined).toBe(round);
    release();
    expect(await round).toBe(5);
    expect(await store.listOutbox('ws-e')).toEqual([]);
    const seqs = (await drainQueue()).map((t) => (JSON.parse(t) as PublishedEvent).sequence);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
  });

  it('a marker younger than the grace period stays even when the outbox is empty', async () => {
    const patient = new TableOutboxIndex(table('outboxidx'), systemClock, { graceMs: 60_000 });
    const patientStore = new TableEventStore(table('outboxlog'), { outboxIndex: patient });
    await patientStore.append({ workspaceId: 'ws-f', streamId: 's', expectedVersion: 0, events: [{ type: 'Pinged', data: {}, meta: { at: 'x', actor: 'a', correlationId: 'c' } }] });
    const dispatcher = new OutboxDispatcher({ store: patientStore, index: patient, publisher: new StorageQueuePublisher(queue) });
    expect((await dispatcher.dispatchAll()).published).toBe(1);
    expect(await patient.pending()).toEqual(['ws-f']);
  });
});
