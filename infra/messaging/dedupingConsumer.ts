import type { TableClient } from '@azure/data-tables';
import { messageText } from './runRequestMessage';
import { type PublishedEvent, publishedEventSchema } from './outboundMessage';
import { keyPart, statusOf } from './tableKeys';
import { tableCreatedOnce } from '../tables/tableOnce';

/** The event arrived before an earlier one of its workspace; thrown so the broker redelivers it later. */
export class EventOutOfOrderError extends Error {
  constructor(readonly workspaceId: string, readonly sequence: number, readonly expected: number) {
    super(`Event ${sequence} of workspace ${workspaceId} arrived before ${expected}; retry later`);
    this.name = 'EventOutOfOrderError';
  }
}

export type ConsumeOutcome = 'processed' | 'duplicate';

/**
 * A consumer's memory of what it has processed, per workspace: a high-water mark row
 * (PartitionKey = consumer name, RowKey = workspace id, `sequence`) in a table, moved forward with its ETag.
 * Because the outbox publishes each workspace in sequence order, one number per workspace is enough:
 * a sequence at or below the mark is a duplicate (a re-publish after a crash, a broker redelivery) and is
 * acknowledged without running the handler; the next sequence runs it and then moves the mark; a later one
 * means an earlier event is still in flight (storage queues do not promise order), so it is refused with
 * `EventOutOfOrderError` and retried. The handler runs at most once per event for one consumer instance per
 * workspace; two instances racing on the same event may both run it (the mark's ETag makes one of them lose
 * the write, not the work), so give each workspace one receiver (Service Bus sessions) or keep the handler
 * idempotent.
 */
export class DedupingConsumer {
  private readonly ensureTable: () => Promise<void>;

  constructor(
    private readonly table: TableClient,
    private readonly consumer: string,
    private readonly options: { startAfter?: number } = {},
  ) {
    this.ensureTable = tableCreatedOnce(table);
  }

  /** Parses a delivery from either broker (the record as JSON, text or bytes) and handles it once. */
  async consume(raw: unknown, handler: (event: PublishedEvent) => Promise<void>): Promise<ConsumeOutcome> {
    const received = messageText(raw);
    if ('error' in received) throw new Error(`Not an event: ${received.error}`);
    const event = publishedEventSchema.parse(received.json);
    await this.ensureTable();
    const mark = await this.readMark(event.workspaceId);
    if (event.sequence <= mark.sequence) return 'duplicate';
    if (event.sequence !== mark.sequence + 1) throw new EventOutOfOrderError(event.workspaceId, event.sequence, mark.sequence + 1);
    await handler(event);
    const row = { partitionKey: keyPart(this.consumer), rowKey: keyPart(event.workspaceId), sequence: event.sequence, eventId: event.id };
    try {
      if (mark.etag === undefined) await this.table.createEntity(row);
      else await this.table.updateEntity(row, 'Replace', { etag: mark.etag });
    } catch (error) {
      // Another instance moved the mark while this one ran the handler: the event was processed either way.
      if (statusOf(error) !== 409 && statusOf(error) !== 412) throw error;
    }
    return 'processed';
  }

  /** The highest sequence processed for a workspace (the start point when nothing was yet). */
  async highWater(workspaceId: string): Promise<number> {
    await this.ensureTable();
    return (await this.readMark(workspaceId)).sequence;
  }

  private async readMark(workspaceId: string): Promise<{ sequence: number; etag?: string }> {
    try {
      const row = await this.table.getEntity<{ sequence?: unknown }>(keyPart(this.consumer), keyPart(workspaceId));
      return { sequence: Number(row.sequence), etag: row.etag };
    } catch (error) {
      if (statusOf(error) === 404) return { sequence: this.options.startAfter ?? 0 };
      throw error;
    }
  }

}
