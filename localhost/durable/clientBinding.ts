/**
 * The durableClient input binding value, in the shape the Durable extension hands to the Node worker and
 * durable-functions' getClient reads (OrchestrationClientInputData). Every URL points at the host's own
 * port under `/runtime/webhooks/durabletask`, as `func start` serves them, so the URLs
 * `createCheckStatusResponse` returns work as returned. The management URL templates carry the per-start key
 * as `code`, as in Azure; the client library calls `rpcBaseUrl` when present and never adds query
 * parameters to it, so there the key is a path segment (`.../durabletask/rpc/<key>/`).
 */
export interface DurableClientBinding {
  taskHubName: string;
  creationUrls: Record<string, string>;
  managementUrls: Record<string, string>;
  baseUrl: string;
  requiredQueryStringParameters: string;
  rpcBaseUrl: string;
  httpBaseUrl: string;
  maxGrpcMessageSizeInBytes: number;
  grpcHttpClientTimeout: string;
}

export const WEBHOOK_PREFIX = '/runtime/webhooks/durabletask';
export const RPC_PREFIX = `${WEBHOOK_PREFIX}/rpc`;

export function clientBinding(hub: string, port: number, key: string): DurableClientBinding {
  const origin = hostOrigin(port);
  const base = `${origin}${WEBHOOK_PREFIX}`;
  const code = `code=${encodeURIComponent(key)}`;
  const q = `taskHub=${hub}&connection=Storage&${code}`;
  const instance = `${base}/instances/INSTANCEID`;
  return {
    taskHubName: hub,
    creationUrls: {
      createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?${code}`,
      createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${code}`,
    },
    managementUrls: {
      id: 'INSTANCEID',
      statusQueryGetUri: `${instance}?${q}`,
      sendEventPostUri: `${instance}/raiseEvent/{eventName}?${q}`,
      terminatePostUri: `${instance}/terminate?reason={text}&${q}`,
      rewindPostUri: `${instance}/rewind?reason={text}&${q}`,
      purgeHistoryDeleteUri: `${instance}?${q}`,
      restartPostUri: `${instance}/restart?${q}`,
      suspendPostUri: `${instance}/suspend?reason={text}&${q}`,
      resumePostUri: `${instance}/resume?reason={text}&${q}`,
    },
    baseUrl: base,
    requiredQueryStringParameters: code,
    rpcBaseUrl: `${origin}${RPC_PREFIX}/${encodeURIComponent(key)}/`,
    httpBaseUrl: base,
    maxGrpcMessageSizeInBytes: 0,
    grpcHttpClientTimeout: '00:01:40',
  };
}

/** The origin the client URLs use: the host's port on loopback, the only names its Host check admits. */
export const hostOrigin = (port: number): string => `http://127.0.0.1:${port}`;
