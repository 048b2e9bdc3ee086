import { DefaultAzureCredential } from '@azure/identity';
import { ServiceBusClient, type ServiceBusMessage, type ServiceBusSender } from '@azure/service-bus';
import type { RecordedEvent } from '../../domain/events';
import type { EventPublisher } from '../../domain/ports/eventPublisher';
import { toOutboundMessage } from './outboundMessage';

/** The part of the SDK's sender the publisher uses (the tests hand in a recording one; there is no broker here). */
export type EventSender = Pick<ServiceBusSender, 'createMessageBatch' | 'sendMessages' | 'close'>;

/** The Service Bus message for one event: message id = event id, session = workspace, subject = type. */
export function toServiceBusMessage(record: RecordedEvent): ServiceBusMessage {
  const message = toOutboundMessage(record);
  return {
    messageId: message.messageId,
    sessionId: message.sessionId,
    subject: message.subject,
    contentType: message.contentType,
    correlationId: record.meta.correlationId,
    applicationProperties: { ...message.applicationProperties },
    body: message.body,
  };
}

/** Sent instead when one event alone exceeds the broker's message size: the same headers, `data` left out. */
function withoutData(record: RecordedEvent): ServiceBusMessage {
  const message = toServiceBusMessage(record);
  return { ...message, body: { ...record, data: null, dataOmitted: true } };
}

/**
 * Publishes to the Service Bus topic `events` in Azure. Records go in SDK batches, each sent and awaited
 * before the next, so the broker accepts a workspace's events in order; with sessions on the subscription
 * (session id = workspace id) they are also delivered in order. Duplicate detection on the topic (message id
 * = event id, 10-minute window) absorbs the re-publish after a crash between publish and mark.
 */
export class ServiceBusPublisher implements EventPublisher {
  readonly name: string;

  constructor(private readonly sender: EventSender, topic = 'events') {
    this.name = `servicebus:${topic}`;
  }

  /** Identity-based: the namespace from `ServiceBusConnection__fullyQualifiedNamespace`, no key. */
  static fromNamespace(fullyQualifiedNamespace: string, topic: string): { publisher: ServiceBusPublisher; client: ServiceBusClient } {
    const client = new ServiceBusClient(fullyQualifiedNamespace, new DefaultAzureCredential());
    return { publisher: new ServiceBusPublisher(client.createSender(topic), topic), client };
  }

  async publish(records: readonly RecordedEvent[]): Promise<void> {
    let batch = await this.sender.createMessageBatch();
    for (const record of records) {
      if (batch.tryAddMessage(toServiceBusMessage(record))) continue;
      if (batch.count > 0) {
        await this.sender.sendMessages(batch);
        batch = await this.sender.createMessageBatch();
        if (batch.tryAddMessage(toServiceBusMessage(record))) continue;
      }
      if (!batch.tryAddMessage(withoutData(record))) throw new Error(`Event ${record.id} does not fit a Service Bus message even without its data`);
    }
    if (batch.count > 0) await this.sender.sendMessages(batch);
  }

  async close(): Promise<void> {
    await this.sender.close();
  }
}
