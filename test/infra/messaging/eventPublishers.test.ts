import { QueueClient } from '@azure/storage-queue';
import type { ServiceBusMessage, ServiceBusMessageBatch } from '@azure/service-bus';
import { describe, expect, it } from 'vitest';
import { InMemoryEventStore } from '../../support/inMemoryEventStore';
import { ServiceBusPublisher, toServiceBusMessage, type EventSender } from '../../../infra/messaging/serviceBusPublisher';
import { StorageQueuePublisher } from '../../../infra/messaging/storageQueuePublisher';
import { decodeMessage } from '../../../localhost/queueTrigger';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { eventPublisherContract, type Delivered } from './eventPublisher.contract';

eventPublisherContract('StorageQueuePublisher (Azurite)', async () => {
  const queue = new QueueClient(azuriteConnectionString(), uniqueName('events'));
  return {
    publisher: new StorageQueuePublisher(queue),
    carriesMessageId: false,
    delivered: async () => {
      if (!(await queue.exists())) return [];
      const out: Delivered[] = [];
      for (;;) {
        const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32 });
        if (receivedMessageItems.length === 0) return out;
        for (const m of receivedMessageItems) {
          out.push({ body: JSON.parse(decodeMessage(m.messageText, 'base64') ?? 'null') as Record<string, unknown> });
          await queue.deleteMessage(m.messageId, m.popReceipt);
        }
      }
    },
  };
});

/**
 * There is no Service Bus broker here, so the sender is a recording one with the SDK's batch semantics: a
 * batch refuses a message that would pass its size limit (256 KB on Standard), and a sent batch is accepted
 * whole and in order. Sizes are estimated from the JSON body plus headers, like the AMQP encoding's order of
 * magnitude; the SDK's own encoding is not exercised.
 */
function recordingSender(maxSizeInBytes = 256 * 1024): EventSender & { accepted: ServiceBusMessage[]; sends: number } {
  const accepted: ServiceBusMessage[] = [];
  const sizeOf = (m: ServiceBusMessage): number => Buffer.byteLength(JSON.stringify(m.body)) + Buffer.byteLength(JSON.stringify(m.applicationProperties ?? {})) + 200;
  const sender = {
    accepted,
    sends: 0,
    createMessageBatch: async () => {
      const messages: ServiceBusMessage[] = [];
      let size = 0;
      const batch = {
        get count() { return messages.length; },
        get sizeInBytes() { return size; },
        maxSizeInBytes,
        tryAddMessage: (m: ServiceBusMessage) => {
          if (size + sizeOf(m) > maxSizeInBytes) return false;
          messages.push(structuredClone(m));
          size += sizeOf(m);
          return true;
        },
        messages,
      };
      return batch as unknown as ServiceBusMessageBatch;
    },
    sendMessages: async (batch: unknown) => {
      sender.sends++;
      accepted.push(...(batch as { messages: ServiceBusMessage[] }).messages);
    },
    close: async () => {},
  };
  return sender as unknown as EventSender & { accepted: ServiceBusMessage[]; sends: number };
}

eventPublisherContract('ServiceBusPublisher (recording sender)', async () => {
  const sender = recordingSender();
  return {
    publisher: new ServiceBusPublisher(sender, 'events'),
    carriesMessageId: true,
    delivered: async () => sender.accepted.map((m) => ({ messageId: String(m.messageId), body: m.body as Record<string, unknown> })),
  };
});

describe('Service Bus message mapping', () => {
  it('message id = event id, session = workspace, subject = type, properties for filters, body = the record', async () => {
    const store = new InMemoryEventStore();
    const [record] = (await store.append({
      workspaceId: 'ws-9', streamId: 'run:r1', expectedVersion: 0,
      events: [{ type: 'RunRequested', data: { runId: 'r1' }, meta: { at: '2025-01-01T00:00:00.000Z', actor: 'bob', correlationId: 'req-1' } }],
    })).records;
    expect(toServiceBusMessage(record!)).toEqual({
      messageId: record!.id,
      sessionId: 'ws-9',
      subject: 'RunRequested',
      contentType: 'application/json',
      correlationId: 'req-1',
      applicationProperties: { workspaceId: 'ws-9', sequence: 1, streamId: 'run:r1', type: 'RunRequested' },
      body: record,
    });
  });

  it('splits a long run of events over several batches, each sent before the next, order kept', async () => {
    const store = new InMemoryEventStore();
    for (let i = 0; i < 30; i++)
      await store.append({ workspaceId: 'ws-8', streamId: 's', expectedVersion: i, events: [{ type: 'Pinged', data: { pad: 'y'.repeat(2000) }, meta: { at: 'x', actor: 'a', correlationId: 'c' } }] });
    const records = (await store.readLog('ws-8')).records;
    const sender = recordingSender(16 * 1024);
    await new ServiceBusPublisher(sender).publish(records);
    expect(sender.sends).toBeGreaterThan(3);
    expect(sender.accepted.map((m) => m.messageId)).toEqual(records.map((r) => r.id));
  });
});
