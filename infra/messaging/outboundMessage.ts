import { z } from 'zod';
import type { RecordedEvent } from '../../domain/events';

/**
 * One published event, independent of the broker. The body is the record as the log stored it (parsed from
 * its canonical bytes, already value-free): nothing is added to it, nothing taken away.
 */
export interface OutboundMessage {
  /** The event id: the broker's duplicate detection and every consumer de-duplicate on it. */
  readonly messageId: string;
  /** The workspace: Service Bus sessions deliver one session's messages in order. */
  readonly sessionId: string;
  /** The event type, so subscriptions can filter without reading the body. */
  readonly subject: string;
  readonly contentType: 'application/json';
  readonly applicationProperties: { readonly workspaceId: string; readonly sequence: number; readonly streamId: string; readonly type: string };
  readonly body: RecordedEvent;
}

export function toOutboundMessage(record: RecordedEvent): OutboundMessage {
  return {
    messageId: record.id,
    sessionId: record.workspaceId,
    subject: record.type,
    contentType: 'application/json',
    applicationProperties: { workspaceId: record.workspaceId, sequence: record.sequence, streamId: record.streamId, type: record.type },
    body: record,
  };
}

/** What a consumer reads back from either broker: the recorded event. */
export const publishedEventSchema = z.object({
  id: z.string().min(1),
  workspaceId: z.string().min(1),
  streamId: z.string().min(1),
  streamVersion: z.number().int().positive(),
  sequence: z.number().int().positive(),
  type: z.string().min(1),
  data: z.unknown(),
  meta: z.object({ at: z.string(), actor: z.string(), correlationId: z.string() }),
  prevHash: z.string(),
  hash: z.string(),
});

export type PublishedEvent = z.infer<typeof publishedEventSchema>;
