import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { getSandboxHost } from './composition';
import { webPubSubChannel } from './webPubSubHosts.composition';
import { serveHostRoute } from '../infra/sandbox/remote/webPubSubHostRoutes';

/**
 * The agent-facing routes when the host channel ends in Web PubSub (SANDBOX_HOST=remote in Azure): enrolment,
 * rotation, negotiation and Web PubSub's upstream event handler. Anonymous at the Functions level: each
 * authenticates its caller itself (an enrolment token, a host credential, or Web PubSub's Entra ID token).
 */
export async function hostChannelRoute(request: HttpRequest): Promise<HttpResponseInit> {
  await getSandboxHost().catch(() => undefined);
  const opened = webPubSubChannel.get();
  if (!opened) return { status: 404, headers: { 'content-type': 'application/problem+json' }, body: JSON.stringify({ status: 404, code: 'HOST.NOT_FOUND', title: 'No Web PubSub host channel here' }) };
  // Read as bytes: an IDE proxy's SSH bytes arrive as a binary user event (webPubSubSshRelay.ts).
  const bytes = request.method === 'POST' ? Buffer.from(await request.arrayBuffer()) : Buffer.alloc(0);
  const answer = await serveHostRoute(opened.channel, opened.authority, {
    method: request.method, path: new URL(request.url).pathname, body: bytes.toString('utf8'), bytes, header: (name) => request.headers.get(name) ?? undefined,
  });
  return { status: answer.status, ...(answer.headers ? { headers: answer.headers } : {}), ...(answer.body !== undefined ? { body: answer.body } : {}) };
}

app.http('hostChannel', { route: 'hosts/{action:regex(^(enrol|enrol-managed|rotate|negotiate|events)$)}', methods: ['POST', 'OPTIONS'], authLevel: 'anonymous', handler: hostChannelRoute });
