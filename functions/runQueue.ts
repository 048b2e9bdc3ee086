import { app, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { describeUnexpected } from './http/problem';
import { runApiRequester } from './runApiRequester';
import { handleRunRequestMessage, type RunRequestHandlerOptions } from './runRequestHandler';
import { runRequestMessageSchema } from '../infra/messaging/runRequestMessage';
import { StorageQueuePoisonSink } from '../infra/messaging/poisonSink';
import { TableRunRequestLedger } from '../infra/messaging/tableRunRequestLedger';
import { queueClientFor, tableClientFor } from '../infra/storage/storageClients';
import { systemClock } from '../infra/system/systemClock';
import { appComposition, getServices, storageLocation } from './composition';
import { once } from './once';
import { workspaceIdSchema } from './http/schemas';
import { getOutboxDispatcher } from './outbox';
import { durableRunOrchestrations, runSpecSchema } from './runs.routes';
import { registrationSettings } from './settings';
import { localRunProducerKeyDir, trustedRunProducers } from '../infra/messaging/runRequestProducer';
import { type RunRequestClaims, runRequestVerifier } from '../infra/messaging/runRequestToken';

export const RUNS_QUEUE = 'runs';
export const RUNS_POISON_QUEUE = 'runs-poison';
export const RUN_QUEUE_FUNCTION = 'runQueue';
export const RUN_SERVICE_BUS_FUNCTION = 'runQueueServiceBus';

const schema = runRequestMessageSchema({ spec: runSpecSchema, workspaceId: workspaceIdSchema });

/** The registered producers' keys, read once per process from settings (never from storage a sandbox could write). */
const producerVerifier = once((): Promise<(token: string) => Promise<RunRequestClaims>> => {
  const { settings } = appComposition();
  return trustedRunProducers({
    ...(settings.RUN_PRODUCER_KEYS ? { configured: settings.RUN_PRODUCER_KEYS } : {}),
    production: settings.DISCO_ENV === 'production',
    localKeyDir: localRunProducerKeyDir({ RUN_PRODUCER_KEY_DIR: settings.RUN_PRODUCER_KEY_DIR }),
  }).then((keys) => runRequestVerifier(keys));
});

/** The queue's ledger and poison sink, one per process. */
const queueAdapters = once(() => {
  const { settings } = appComposition();
  const location = storageLocation(settings);
  return {
    ledger: new TableRunRequestLedger(tableClientFor(location, settings.RUN_REQUEST_TABLE), systemClock),
    poison: new StorageQueuePoisonSink(queueClientFor(location, RUNS_POISON_QUEUE)),
  };
});

async function handlerOptions(context: InvocationContext): Promise<RunRequestHandlerOptions> {
  const [{ deps }, verify] = await Promise.all([getServices(), producerVerifier()]);
  const { ledger, poison } = queueAdapters();
  return {
    deps,
    ports: { ledger, requester: runApiRequester(deps, appComposition().runStores(), durableRunOrchestrations(context)) },
    schema,
    verify,
    poison,
    log: { info: (t) => context.log(t), warn: (t) => context.warn(t) },
  };
}

/**
 * The one handler of both triggers. It returns (the message completes) when the run started, was a duplicate,
 * or the message was written to `runs-poison` with its reason; it throws only for transient failures, which
 * the trigger retries up to its maximum (host.json maxDequeueCount 5 / the queue's maxDeliveryCount 5).
 */
export async function runQueueHandler(message: unknown, context: InvocationContext): Promise<void> {
  const id = context.triggerMetadata?.messageId ?? context.triggerMetadata?.id;
  try {
    const result = await handleRunRequestMessage(message, await handlerOptions(context), typeof id === 'string' ? id : undefined);
    if (result.outcome === 'started') (await getOutboxDispatcher()).nudge(result.workspaceId);
  } catch (error) {
    context.error(`${context.functionName}: ${describeUnexpected(error)}; the message will be retried`);
    throw error;
  }
}

const durableClient = df.input.durableClient();

// The local host implements storage queues but not Service Bus: the Service Bus trigger is registered only
// where its identity-based connection is configured (Azure), and then the storage-queue starter is not.
if (registrationSettings().serviceBus) {
  app.serviceBusQueue(RUN_SERVICE_BUS_FUNCTION, { queueName: RUNS_QUEUE, connection: 'ServiceBusConnection', extraInputs: [durableClient], handler: runQueueHandler });
} else {
  app.storageQueue(RUN_QUEUE_FUNCTION, { queueName: RUNS_QUEUE, connection: 'AzureWebJobsStorage', extraInputs: [durableClient], handler: runQueueHandler });
}
