import { readFileSync } from 'node:fs';
import { QueueClient } from '@azure/storage-queue';
import { enqueueRunRequest, loadLocalRunProducer, localRunProducerKeyDir, signedRunRequestBody } from '../infra/messaging/runRequestProducer';
import { azuriteConnectionString } from './azuriteProcess';
import { hostSettings, isDevelopmentStorage } from './settings';

export const ENQUEUE_RUN_USAGE = 'Usage: npm run enqueue-run -- <workspaceId> <user> <spec.json | -> [requestId]';

/**
 * `npm run enqueue-run`: signs a run request with the local producer key (`.azurite/run-producer/`, which a
 * development host trusts) and puts it on the `runs` queue of the local storage. Returns the request id.
 * The spec is read from a file, or from stdin with `-`. No user token is involved or stored.
 */
export async function enqueueRunFromCli(
  args: readonly string[],
  settings: Readonly<Record<string, string>>,
  readStdin: () => string,
  queueName = 'runs',
): Promise<string> {
  const [workspaceId, requestedBy, specPath, requestId] = args;
  if (!workspaceId || !requestedBy || !specPath || args.length > 4) throw new Error(ENQUEUE_RUN_USAGE);
  const spec = JSON.parse(specPath === '-' ? readStdin() : readFileSync(specPath, 'utf8')) as unknown;
  const host = hostSettings(settings);
  const storage = host.storage && !isDevelopmentStorage(host.storage) ? host.storage : azuriteConnectionString(host.azuritePorts);
  const { producer } = await loadLocalRunProducer(localRunProducerKeyDir(settings));
  const body = await signedRunRequestBody(producer, { workspaceId, requestedBy, spec, ...(requestId ? { requestId } : {}) });
  await enqueueRunRequest(new QueueClient(storage, queueName), body);
  return body.requestId;
}
