import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { z } from 'zod';
import type { TaskHubNames } from './taskHub';

/** An activity to run: enough to invoke it and to address its completion. */
export const workItemSchema = z.object({
  instanceId: z.string(),
  executionId: z.string(),
  taskId: z.number().int(),
  name: z.string(),
  input: z.string(),
});
export type WorkItem = z.infer<typeof workItemSchema>;

/** A durable timer, delivered by the control queue when its visibility delay ends. */
export const timerMessageSchema = z.object({
  instanceId: z.string(),
  executionId: z.string(),
  timerId: z.number().int(),
  fireAt: z.string(),
});
export type TimerMessage = z.infer<typeof timerMessageSchema>;

export interface Received<T> {
  readonly body: T;
  readonly messageId: string;
  readonly popReceipt: string;
}

/** Storage queues cap the visibility delay at 7 days; longer timers are re-sent when they surface. */
export const MAX_DELAY_SECONDS = 7 * 24 * 3600 - 60;

class TypedQueue<T> {
  constructor(private readonly client: QueueClient, private readonly schema: z.ZodType<T>) {}

  async create(): Promise<void> {
    await this.client.createIfNotExists();
  }

  async send(body: T, delaySeconds = 0): Promise<void> {
    const visibilityTimeout = Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.floor(delaySeconds)));
    await this.client.sendMessage(JSON.stringify(body), { visibilityTimeout, messageTimeToLive: -1 });
  }

  async receive(max: number, visibilitySeconds: number): Promise<Received<T>[]> {
    const response = await this.client.receiveMessages({ numberOfMessages: Math.min(32, Math.max(1, max)), visibilityTimeout: visibilitySeconds });
    const out: Received<T>[] = [];
    for (const m of response.receivedMessageItems) {
      let parsed: T | undefined;
      try {
        parsed = this.schema.parse(JSON.parse(m.messageText));
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined) await this.delete(m.messageId, m.popReceipt); // not ours to interpret: drop it
      else out.push({ body: parsed, messageId: m.messageId, popReceipt: m.popReceipt });
    }
    return out;
  }

  async delete(messageId: string, popReceipt: string): Promise<void> {
    await this.client.deleteMessage(messageId, popReceipt).catch(() => undefined);
  }

  async clear(): Promise<void> {
    await this.client.clearMessages();
  }
}

export class WorkQueues {
  readonly workItems: TypedQueue<WorkItem>;
  readonly control: TypedQueue<TimerMessage>;

  constructor(connectionString: string, names: TaskHubNames) {
    const service = QueueServiceClient.fromConnectionString(connectionString);
    this.workItems = new TypedQueue(service.getQueueClient(names.workItemQueue), workItemSchema);
    this.control = new TypedQueue(service.getQueueClient(names.controlQueue), timerMessageSchema);
  }

  async ensureQueues(): Promise<void> {
    await Promise.all([this.workItems.create(), this.control.create()]);
  }
}
