import type { QueueClient } from '@azure/storage-queue';
import type { RecordedEvent } from '../../domain/events';
import type { EventPublisher } from '../../domain/ports/eventPublisher';
import { toOutboundMessage } from './outboundMessage';

/** A storage queue message holds 64 KiB of base64, so 48 KiB of JSON. */
export const MAX_QUEUE_JSON_BYTES = 48 * 1024;

/**
 * The local publisher: one storage-queue message per event, sent one after another so the queue receives a
 * workspace's events in sequence order. The text is base64 of the record's JSON, the encoding the Functions
 * host expects, so a queue-triggered consumer reads the record as its trigger input. A storage queue carries
 * no message id of ours, so the event id inside the body is what consumers de-duplicate on.
 */
export class StorageQueuePublisher implements EventPublisher {
  readonly name: string;
  private ready: Promise<unknown> | undefined;

  constructor(private readonly queue: QueueClient) {
    this.name = `storagequeue:${queue.name}`;
  }

  async publish(records: readonly RecordedEvent[]): Promise<void> {
    await (this.ready ??= this.queue.createIfNotExists().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    }));
    for (const record of records) await this.queue.sendMessage(encodeQueueBody(record));
  }

  async close(): Promise<void> {}
}

/** Base64 of the record's JSON; a record too large for a queue message is sent without `data`, flagged. */
export function encodeQueueBody(record: RecordedEvent): string {
  const body = toOutboundMessage(record).body;
  let json = JSON.stringify(body);
  if (Buffer.byteLength(json) > MAX_QUEUE_JSON_BYTES) json = JSON.stringify({ ...body, data: null, dataOmitted: true });
  return Buffer.from(json, 'utf8').toString('base64');
}
