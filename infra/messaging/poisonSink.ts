import type { QueueClient } from '@azure/storage-queue';

/** What a poison entry says: why, which message (by fingerprint), and whose request, never the spec. */
export interface PoisonEntry {
  readonly reason: string;
  readonly code: string;
  readonly messageId?: string;
  readonly workspaceId?: string;
  readonly requestedBy?: string;
  readonly requestId?: string;
  readonly issues?: readonly string[];
  readonly original: { readonly bytes: number; readonly sha256: string };
}

export interface PoisonSink {
  poison(entry: PoisonEntry): Promise<void>;
}

/**
 * Permanently bad run requests go to the storage queue `runs-poison` (the queue the local host also moves a
 * message to after `maxDequeueCount` failed attempts), as JSON `{ poisonedBy, at, ...entry }`, base64-encoded
 * like every message the Functions host writes. Service Bus requests land here too, so both have one place.
 */
export class StorageQueuePoisonSink implements PoisonSink {
  private ready: Promise<unknown> | undefined;

  constructor(private readonly queue: QueueClient, private readonly now: () => Date = () => new Date()) {}

  async poison(entry: PoisonEntry): Promise<void> {
    await (this.ready ??= this.queue.createIfNotExists().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    }));
    const body = JSON.stringify({ poisonedBy: 'runQueue', at: this.now().toISOString(), ...entry });
    // -1: a poison entry waits for a person, not for the queue's default seven-day expiry.
    await this.queue.sendMessage(Buffer.from(body, 'utf8').toString('base64'), { messageTimeToLive: -1 });
  }
}
