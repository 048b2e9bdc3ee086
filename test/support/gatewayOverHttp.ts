import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpRequest, InvocationContext } from '@azure/functions';
import type { Gateway } from '../../domain/services/gateway';
import { handleGatewayOperation } from '../../functions/gateway.http';

export interface GatewayReply {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

/** One call of the gateway's route handler, as the Functions host makes it. */
export async function callGateway(gateway: Gateway, bearer: string, body: unknown): Promise<GatewayReply> {
  const request = new HttpRequest({
    method: 'POST',
    url: 'http://127.0.0.1:7071/api/gateway/operations',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: { string: JSON.stringify(body) },
  });
  const response = await handleGatewayOperation(gateway, request, new InvocationContext({ functionName: 'gatewayOperations' }));
  const text = response.jsonBody !== undefined ? JSON.stringify(response.jsonBody) : typeof response.body === 'string' ? response.body : '';
  return { status: response.status ?? 200, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/**
 * The gateway's route of one instance on a loopback port, for an agent in a sandbox that another instance holds:
 * its GATEWAY_URL (and the sandbox's gateway door) lead here.
 */
export async function serveGateway(gateway: Gateway): Promise<{ readonly url: string; readonly served: number[]; close(): Promise<void> }> {
  const served: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v]] : [])));
      const request = new HttpRequest({ method: 'POST', url: `http://127.0.0.1${req.url ?? '/'}`, headers, body: { string: Buffer.concat(chunks).toString('utf8') } });
      void handleGatewayOperation(gateway, request, new InvocationContext({ functionName: 'gatewayOperations' })).then((response) => {
        served.push(response.status ?? 200);
        res.writeHead(response.status ?? 200, { 'content-type': 'application/json' });
        res.end(response.jsonBody !== undefined ? JSON.stringify(response.jsonBody) : typeof response.body === 'string' ? response.body : '');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/api/gateway/operations`, served, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
