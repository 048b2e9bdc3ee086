import { Agent, type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WebSocket } from 'ws';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { selfSignedCertificate } from '../../localhost/selfSignedCertificate';
import { webPubSubHostAuthority } from '../../functions/webPubSubHosts.composition';
import type { PoolIdentityVerifier } from '../../infra/sandbox/remote/managedPoolIdentity';
import { WEB_PUBSUB_SUBPROTOCOL, WebPubSubHostChannel, azureWebPubSubDataPlane } from '../../infra/sandbox/remote/webPubSubHostChannel';
import { serveHostRoute } from '../../infra/sandbox/remote/webPubSubHostRoutes';
import { entraUpstreamVerifier } from '../../infra/sandbox/remote/webPubSubUpstreamAuth';
import { FakeWebPubSub } from './fakeWebPubSub';
import { FakeTokenCredential, agentPolicy } from './fakeKeyVaultTls';
import { type TestIssuer, createTestIssuer } from './testIssuer';

const HUB = 'sandboxhosts';
const WEB_PUBSUB_IDENTITY = '00000000-0000-4000-8000-00000000a11e';
const APP_SCOPE_TOKEN = 'fake-token:https://webpubsub.azure.com/.default';

/** The platform's side as the Functions app serves it: the agent-facing routes over HTTPS, the channel behind them. */
export async function openWebPubSubChannel(deps: ServiceDependencies, dir: string, options: { entra?: TestIssuer; poolIdentity?: PoolIdentityVerifier } = {}) {
  const tls = selfSignedCertificate(path.join(dir, 'tls'));
  const entra = options.entra ?? (await createTestIssuer({ audience: 'api://disco-parrot-app' }));
  const frames: { direction: 'to-host' | 'from-host'; raw: string }[] = [];
  let platformUrl = '';
  const fake = await FakeWebPubSub.start({
    hub: HUB, tls, upstreamUrl: () => `${platformUrl}/api/hosts/events`,
    upstreamToken: () => entra.token(WEB_PUBSUB_IDENTITY),
    acceptBearer: async (token) => token === APP_SCOPE_TOKEN,
  });
  const authority = webPubSubHostAuthority(deps, options.poolIdentity);
  const makeChannel = (): WebPubSubHostChannel => new WebPubSubHostChannel({
    plane: azureWebPubSubDataPlane({
      endpoint: fake.endpoint, hub: HUB, credential: new FakeTokenCredential(),
      additionalPolicies: [{ policy: agentPolicy(new Agent({ ca: tls.cert, keepAlive: true })), position: 'perCall' }],
    }),
    authority, endpoint: fake.endpoint, hub: HUB,
    verifyUpstream: entraUpstreamVerifier({ issuer: entra.issuer, audience: entra.audience, jwks: entra.jwks, principalId: WEB_PUBSUB_IDENTITY }),
    tap: (direction, raw) => frames.push({ direction, raw }),
  });
  let channel = makeChannel();
  const platform: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += String(chunk)));
    req.on('end', () => {
      void serveHostRoute(channel, authority, {
        method: req.method ?? 'GET', path: new URL(req.url ?? '/', 'https://x').pathname, body,
        header: (name) => { const value = req.headers[name.toLowerCase()]; return Array.isArray(value) ? value[0] : value; },
      }).then((answer) => res.writeHead(answer.status, answer.headers ?? {}).end(answer.body ?? ''), () => res.writeHead(500).end());
    });
  });
  await new Promise<void>((resolve) => platform.listen(0, '127.0.0.1', () => resolve()));
  platformUrl = `https://127.0.0.1:${(platform.address() as AddressInfo).port}`;
  return {
    fake, tls, entra, platformUrl, authority,
    get channel(): WebPubSubHostChannel {
      return channel;
    },
    get directory(): WebPubSubHostChannel {
      return channel;
    },
    /** A new Functions instance takes over (the old one scaled to zero): it holds no session of the live connections. */
    replaceInstance(): WebPubSubHostChannel {
      channel = makeChannel();
      return channel;
    },
    agentArgs: ['--platform', platformUrl, '--ca', tls.certFile, '--channel', 'web-pubsub'],
    frames: () => frames,
    openRaw: async (credential: string) => {
      const { url } = await channel.negotiate(credential);
      const socket = new WebSocket(url, WEB_PUBSUB_SUBPROTOCOL, { ca: tls.cert });
      const session = await new Promise<string>((resolve) => socket.on('message', (d) => {
        const message = JSON.parse(String(d)) as { type: string; data?: string };
        if (message.type === 'message' && typeof message.data === 'string') resolve((JSON.parse(message.data) as { session: string }).session);
      }));
      return { session, send: (raw: string) => socket.send(JSON.stringify({ type: 'event', event: 'message', dataType: 'text', data: raw })), close: () => socket.close() };
    },
    close: async () => {
      await channel.close();
      await fake.close();
      platform.closeAllConnections();
      await new Promise<void>((resolve) => platform.close(() => resolve()));
    },
  };
}

