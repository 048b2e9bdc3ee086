import { TableClient } from '@azure/data-tables';
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
import { TableHostSessions } from '../../infra/tables/tableHostSessions';
import { TableSshTunnels } from '../../infra/tables/tableSshTunnels';
import { WebPubSubSshRelay } from '../../infra/sandbox/remote/webPubSubSshRelay';
import { webPubSubSshAuthority } from '../../functions/sshWebPubSub.wiring';
import { azuriteConnectionString, uniqueName } from './azurite';
import { FakeWebPubSub } from './fakeWebPubSub';
import { FakeTokenCredential, agentPolicy } from './fakeKeyVaultTls';
import { type TestIssuer, createTestIssuer } from './testIssuer';

const HUB = 'sandboxhosts';
const WEB_PUBSUB_IDENTITY = '00000000-0000-4000-8000-00000000a11e';
const APP_SCOPE_TOKEN = 'fake-token:https://webpubsub.azure.com/.default';

/**
 * The platform's side as the Functions app serves it: the agent-facing routes over HTTPS, with several app
 * instances behind them sharing one session table (Azurite). Requests go to the instances in turn, as a load
 * balancer would spread Web PubSub's upstream posts, unless a test routes them itself (`routeTo`). The first
 * instance is the directory a test's `RemoteSandboxHost` uses.
 */
export async function openWebPubSubChannel(deps: ServiceDependencies, dir: string, options: { entra?: TestIssuer; poolIdentity?: PoolIdentityVerifier; instances?: number; ssh?: boolean } = {}) {
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
  const table = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('hostsessions'), { allowInsecureConnection: true });
  await table.createTable();
  const store = new TableHostSessions(table);
  const tunnels = new TableSshTunnels(table);
  const log = process.env.DP_CHANNEL_LOG ? { log: (line: string) => console.log(`[${new Date().toISOString()}] ${line}`) } : {};
  const relays: WebPubSubSshRelay[] = [];
  const makeChannel = (): WebPubSubHostChannel => {
    const plane = azureWebPubSubDataPlane({
      endpoint: fake.endpoint, hub: HUB, credential: new FakeTokenCredential(),
      additionalPolicies: [{ policy: agentPolicy(new Agent({ ca: tls.cert, keepAlive: true })), position: 'perCall' }],
    });
    const channel = new WebPubSubHostChannel({
      store, refreshMs: 250, ...log, plane,
      authority, endpoint: fake.endpoint, hub: HUB,
      verifyUpstream: entraUpstreamVerifier({ issuer: entra.issuer, audience: entra.audience, jwks: entra.jwks, principalId: WEB_PUBSUB_IDENTITY }),
      tap: (direction, raw) => frames.push({ direction, raw }),
    });
    if (options.ssh) {
      // Each instance its own relay (nothing in memory shared): only the table is common.
      const relay = new WebPubSubSshRelay({ authority: webPubSubSshAuthority(deps), tunnels, plane, ...log });
      channel.serveSsh(relay);
      relays.push(relay);
    }
    return channel;
  };
  const instances = Array.from({ length: options.instances ?? 2 }, makeChannel);
  // Each instance's view of live hosts is read in the background once it is in use; here from the start.
  await Promise.all(instances.map((instance) => instance.refresh()));
  let turn = 0;
  let route: (request: { path: string; header(name: string): string | undefined; body: string }) => number | undefined = () => undefined;
  const platform: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const body = bytes.toString('utf8');
      const header = (name: string): string | undefined => { const value = req.headers[name.toLowerCase()]; return Array.isArray(value) ? value[0] : value; };
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      const chosen = route({ path, header, body }) ?? turn++ % instances.length;
      void serveHostRoute(instances[chosen]!, authority, {
        method: req.method ?? 'GET', path, body, bytes, header,
      }).then((answer) => res.writeHead(answer.status, answer.headers ?? {}).end(answer.body ?? ''), () => res.writeHead(500).end());
    });
  });
  await new Promise<void>((resolve) => platform.listen(0, '127.0.0.1', () => resolve()));
  platformUrl = `https://127.0.0.1:${(platform.address() as AddressInfo).port}`;
  return {
    fake, tls, entra, platformUrl, authority, store, table, tunnels,
    /** Each instance's IDE SSH relay (with `ssh: true`), in the order of `instances`. */
    relays,
    /** The app instances, each with its own memory; only the session table is shared. */
    instances,
    get channel(): WebPubSubHostChannel {
      return instances[0]!;
    },
    get directory(): WebPubSubHostChannel {
      return instances[0]!;
    },
    /** Sends each request to the instance `choose` names (undefined: the next in turn). */
    routeTo(choose: typeof route): void {
      route = choose;
    },
    /** Every instance stops (scaled to zero) and a new one takes all the traffic: it starts with nothing in memory. */
    async replaceInstances(): Promise<WebPubSubHostChannel> {
      for (const old of instances.splice(0)) await old.close();
      instances.push(makeChannel());
      await instances[0]!.refresh();
      return instances[0]!;
    },
    agentArgs: ['--platform', platformUrl, '--ca', tls.certFile, '--channel', 'web-pubsub'],
    frames: () => frames,
    openRaw: async (credential: string) => {
      const { url } = await instances[0]!.negotiate(credential);
      const socket = new WebSocket(url, WEB_PUBSUB_SUBPROTOCOL, { ca: tls.cert });
      const session = await new Promise<string>((resolve) => socket.on('message', (d) => {
        const message = JSON.parse(String(d)) as { type: string; data?: string };
        if (message.type === 'message' && typeof message.data === 'string') resolve((JSON.parse(message.data) as { session: string }).session);
      }));
      return { session, send: (raw: string) => socket.send(JSON.stringify({ type: 'event', event: 'message', dataType: 'text', data: raw })), close: () => socket.close() };
    },
    close: async () => {
      for (const instance of instances) await instance.close();
      await fake.close();
      platform.closeAllConnections();
      await new Promise<void>((resolve) => platform.close(() => resolve()));
    },
  };
}

