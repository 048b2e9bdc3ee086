import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../../domain/events';
import type { EventPublisher } from '../../../domain/ports/eventPublisher';
import { InMemoryEventStore } from '../../support/inMemoryEventStore';

/** What the broker holds after publishing, read back as a consumer would: message id (if any) and body. */
export interface Delivered {
  readonly messageId?: string;
  readonly body: Record<string, unknown>;
}

export interface PublisherFixture {
  readonly publisher: EventPublisher;
  /** Everything delivered so far, in the order the broker accepted it. */
  delivered(): Promise<readonly Delivered[]>;
  /** Whether the broker carries our message id (Service Bus does; a storage queue assigns its own). */
  readonly carriesMessageId: boolean;
}

async function someRecords(workspaceId: string, count: number, dataBytes = 10): Promise<readonly RecordedEvent[]> {
  const store = new InMemoryEventStore();
  for (let i = 0; i < count; i++)
    await store.append({
      workspaceId, streamId: `run:r${i % 3}`, expectedVersion: Math.floor(i / 3),
      events: [{ type: 'Pinged', data: { n: i, pad: 'x'.repeat(dataBytes) }, meta: { at: '2025-01-01T00:00:00.000Z', actor: 'system:test', correlationId: `c${i}` } }],
    });
  return (await store.readLog(workspaceId, { limit: 1000 })).records;
}

/** The contract every EventPublisher meets: bodies are the records unchanged, in order, ids = event ids. */
export function eventPublisherContract(name: string, fixture: () => Promise<PublisherFixture>): void {
  describe(`EventPublisher contract: ${name}`, () => {
    it('delivers each record unchanged, in the order given', async () => {
      const f = await fixture();
      const records = await someRecords('ws-1', 12);
      await f.publisher.publish(records.slice(0, 5));
      await f.publisher.publish(records.slice(5));
      const delivered = await f.delivered();
      expect(delivered.map((d) => d.body)).toEqual(records.map((r) => JSON.parse(JSON.stringify(r)) as unknown));
      if (f.carriesMessageId) expect(delivered.map((d) => d.messageId)).toEqual(records.map((r) => r.id));
    });

    it('publishing nothing delivers nothing', async () => {
      const f = await fixture();
      await f.publisher.publish([]);
      expect(await f.delivered()).toEqual([]);
    });

    it('a record too large for one message is delivered without its data, flagged, never dropped', async () => {
      const f = await fixture();
      const [big] = await someRecords('ws-2', 1, 300 * 1024);
      await f.publisher.publish([big!]);
      const [delivered] = await f.delivered();
      expect(delivered!.body).toMatchObject({ id: big!.id, sequence: 1, type: 'Pinged', data: null, dataOmitted: true, hash: big!.hash });
    });
  });
}
