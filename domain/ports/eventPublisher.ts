import type { RecordedEvent } from '../events';

/**
 * Publishes recorded events to a broker (a Service Bus topic in Azure, a storage queue locally). The body of
 * each message is the record exactly as the log stored it (already value-free); the message id is the event
 * id, and the events of one workspace are handed over in sequence order.
 */
export interface EventPublisher {
  /** A short name for logs: `servicebus:events`, `storagequeue:events`. */
  readonly name: string;
  /** Resolves once the broker accepted every record, in the order given; rejects if any was not accepted. */
  publish(records: readonly RecordedEvent[]): Promise<void>;
  close(): Promise<void>;
}
