import { QueueServiceClient, type DequeuedMessageItem, type QueueClient } from '@azure/storage-queue';
import type { FunctionRegistration } from './coreApi';
import type { HostLogger, RpcTypedData } from './hostExtension';
import type { QueueOptions } from './hostJson';
import type { Invoker } from './invoker';
import { LocalHostConfigError } from './problems';
import { isDevelopmentStorage, resolveSettingReferences } from './settings';

export interface QueueFunction {
  readonly functionName: string;
  readonly queueName: string;
  readonly connectionString: string;
}

/** How long a message stays hidden while its function runs (the real host uses ten minutes too). */
const IN_FLIGHT_VISIBILITY_SECONDS = 600;
const MIN_POLL_MS = 100;

export function queueFunctions(
  functions: Iterable<FunctionRegistration>,
  settings: Readonly<Record<string, string>>,
  storageConnectionString: string,
): QueueFunction[] {
  const out: QueueFunction[] = [];
  for (const fn of functions) {
    const trigger = Object.values(fn.bindings).find((b) => b.direction === 'in' && b.type.toLowerCase() === 'queuetrigger');
    if (!trigger) continue;
    if (typeof trigger.queueName !== 'string') throw new LocalHostConfigError(`Queue function ${fn.name} has no queueName.`);
    const queueName = resolveSettingReferences(trigger.queueName, settings).toLowerCase();
    const connectionName = typeof trigger.connection === 'string' && trigger.connection !== '' ? trigger.connection : 'AzureWebJobsStorage';
    const value = settings[connectionName] ?? settings[`AzureWebJobs${connectionName}`];
    if (value === undefined)
      throw new LocalHostConfigError(`Setting ${connectionName} (the connection of queue function ${fn.name}) is not set.`);
    out.push({ functionName: fn.name, queueName, connectionString: isDevelopmentStorage(value) ? storageConnectionString : value });
  }
  return out;
}

/** The message text as the function sees it: base64-decoded when the host encodes messages (the default). */
export function decodeMessage(text: string, encoding: QueueOptions['messageEncoding']): string | undefined {
  if (encoding === 'none') return text;
  const compact = text.trim();
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return undefined;
  return Buffer.from(compact, 'base64').toString('utf8');
}

export function encodeMessage(text: string, encoding: QueueOptions['messageEncoding']): string {
  return encoding === 'none' ? text : Buffer.from(text, 'utf8').toString('base64');
}

/**
 * Polls one storage queue per queue-triggered function, as the WebJobs queue listener does: receive a batch
 * hidden for the duration of the invocation, delete on success, make visible again after
 * `visibilityTimeout` on failure, and move to `<queue>-poison` once `maxDequeueCount` attempts failed.
 * Empty polls back off exponentially up to `maxPollingInterval`.
 */
export class QueuePoller {
  #stopped = false;
  readonly #loops: Promise<void>[] = [];
  readonly #wakers = new Set<() => void>();

  constructor(
    private readonly functions: readonly QueueFunction[],
    private readonly options: QueueOptions,
    private readonly invoker: Invoker,
    private readonly log: HostLogger,
  ) {}

  async start(): Promise<void> {
    for (const fn of this.functions) {
      const service = QueueServiceClient.fromConnectionString(fn.connectionString);
      const queue = service.getQueueClient(fn.queueName);
      const poison = service.getQueueClient(`${fn.queueName}-poison`);
      await queue.createIfNotExists();
      this.#loops.push(this.#loop(fn, queue, poison));
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const wake of this.#wakers) wake();
    await Promise.allSettled(this.#loops);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakers.add(done);
    });
  }

  async #loop(fn: QueueFunction, queue: QueueClient, poison: QueueClient): Promise<void> {
    let delay = MIN_POLL_MS;
    while (!this.#stopped) {
      let messages: DequeuedMessageItem[] = [];
      try {
        const received = await queue.receiveMessages({ numberOfMessages: this.options.batchSize, visibilityTimeout: IN_FLIGHT_VISIBILITY_SECONDS });
        messages = received.receivedMessageItems;
      } catch (error) {
        this.log.warn(`[${fn.functionName}] polling queue ${fn.queueName} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (messages.length === 0) {
        await this.#sleep(delay);
        delay = Math.min(delay * 2, Math.max(MIN_POLL_MS, this.options.maxPollingIntervalMs));
        continue;
      }
      delay = MIN_POLL_MS;
      await Promise.all(messages.map((m) => this.#process(fn, queue, poison, m)));
    }
  }

  async #process(fn: QueueFunction, queue: QueueClient, poison: QueueClient, message: DequeuedMessageItem): Promise<void> {
    try {
      // A message that exhausted its attempts in an earlier run of the host goes straight to poison.
      if (message.dequeueCount > this.options.maxDequeueCount) return await this.#poison(fn, queue, poison, message, 'attempts exhausted earlier');
      const text = decodeMessage(message.messageText, this.options.messageEncoding);
      if (text === undefined) return await this.#poison(fn, queue, poison, message, 'not valid base64 (host.json extensions.queues.messageEncoding is base64)');
      const metadata: Record<string, RpcTypedData> = {
        QueueTrigger: { string: text },
        DequeueCount: { int: message.dequeueCount },
        Id: { string: message.messageId },
        PopReceipt: { string: message.popReceipt },
        InsertionTime: { string: message.insertedOn.toISOString() },
        ExpirationTime: { string: message.expiresOn.toISOString() },
        NextVisibleTime: { string: message.nextVisibleOn.toISOString() },
      };
      try {
        await this.invoker.invoke(fn.functionName, { string: text }, metadata);
      } catch (error) {
        this.log.error(`[${fn.functionName}] failed on message ${message.messageId} (attempt ${message.dequeueCount} of ${this.options.maxDequeueCount}): ${error instanceof Error ? error.message : String(error)}`);
        if (message.dequeueCount >= this.options.maxDequeueCount) return await this.#poison(fn, queue, poison, message, `failed ${message.dequeueCount} times`);
        await queue.updateMessage(message.messageId, message.popReceipt, undefined, Math.round(this.options.visibilityTimeoutMs / 1000));
        return;
      }
      await queue.deleteMessage(message.messageId, message.popReceipt);
    } catch (error) {
      this.log.warn(`[${fn.functionName}] could not settle message ${message.messageId}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  async #poison(fn: QueueFunction, queue: QueueClient, poison: QueueClient, message: DequeuedMessageItem, why: string): Promise<void> {
    await poison.createIfNotExists();
    await poison.sendMessage(message.messageText);
    await queue.deleteMessage(message.messageId, message.popReceipt);
    this.log.warn(`[${fn.functionName}] moved message ${message.messageId} to ${fn.queueName}-poison: ${why}.`);
  }
}
