import { app } from '@azure/functions';
import type { EventPublisher } from '../domain/ports/eventPublisher';
import { isOutboxStore } from '../domain/ports/outbox';
import { describeUnexpected } from '../infra/http/problem';
import { OutboxDispatcher } from '../infra/messaging/outboxDispatcher';
import { ServiceBusPublisher } from '../infra/messaging/serviceBusPublisher';
import { StorageQueuePublisher } from '../infra/messaging/storageQueuePublisher';
import { TableOutboxIndex } from '../infra/messaging/tableOutboxIndex';
import { queueClientFor, tableClientFor, type StorageLocation } from '../infra/storage/storageClients';
import { systemClock } from '../infra/system/systemClock';
import { getServices } from './composition';
import { type Settings, loadSettings } from './settings';

export const OUTBOX_TIMER = 'outboxDispatch';
/** Every five seconds by default; `OUTBOX_SCHEDULE` (six-field NCRONTAB) overrides it. */
export const DEFAULT_OUTBOX_SCHEDULE = '*/5 * * * * *';

export function storageLocation(settings: Settings): StorageLocation {
  return { connectionString: settings.AzureWebJobsStorage, accountName: settings.AzureWebJobsStorage__accountName, allowInsecure: settings.DISCO_ENV !== 'production' };
}

/** The index the event store touches before each append (composition.ts passes the same table to the store). */
export function outboxIndex(settings: Settings): TableOutboxIndex {
  return new TableOutboxIndex(tableClientFor(storageLocation(settings), settings.OUTBOX_INDEX_TABLE), systemClock, { graceMs: settings.OUTBOX_MARKER_GRACE_SECONDS * 1000 });
}

/** Service Bus topic `events` when its namespace is configured (Azure), else the storage queue `events`. */
function publisher(settings: Settings): EventPublisher {
  const namespace = settings.ServiceBusConnection__fullyQualifiedNamespace;
  if (namespace) return ServiceBusPublisher.fromNamespace(namespace, settings.EVENTS_TOPIC).publisher;
  return new StorageQueuePublisher(queueClientFor(storageLocation(settings), settings.EVENTS_TOPIC));
}

let dispatcher: Promise<OutboxDispatcher> | undefined;

/** This process's dispatcher: the timer runs it, and the run starter nudges it after an append. */
export function getOutboxDispatcher(): Promise<OutboxDispatcher> {
  dispatcher ??= (async () => {
    const settings = loadSettings();
    const { deps } = await getServices();
    if (!isOutboxStore(deps.store)) throw new Error('The event store does not expose its outbox');
    return new OutboxDispatcher({ store: deps.store, index: outboxIndex(settings), publisher: publisher(settings), log: { warn: (t) => console.warn(t) } });
  })().catch((error: unknown) => {
    dispatcher = undefined;
    throw error;
  });
  return dispatcher;
}

app.timer(OUTBOX_TIMER, {
  schedule: process.env.OUTBOX_SCHEDULE ?? DEFAULT_OUTBOX_SCHEDULE,
  handler: async (_timer, context) => {
    try {
      const report = await (await getOutboxDispatcher()).dispatchAll();
      if (report.published > 0 || report.failed.length > 0)
        context.log(`outbox: ${report.published} events published from ${report.workspaces} workspaces; failed: ${report.failed.join(', ') || 'none'}`);
    } catch (error) {
      context.error(`outbox: dispatch failed: ${describeUnexpected(error)}`);
      throw error;
    }
  },
});
