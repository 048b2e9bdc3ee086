import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createRedactor } from '../../../../domain/redaction';
import { sandboxHostStreamId } from '../../../../domain/streams';
import { LocalProcessSandboxHost } from '../../../../infra/sandbox/localProcessSandboxHost';
import { HostAgent } from '../../../../infra/sandbox/remote/hostAgent';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { WebPubSubClientSocket } from '../../../../infra/sandbox/remote/webPubSubClientSocket';
import { type ApiHarness, createApiHarness } from '../../../support/apiHarness';
import { webPubSubHostAuthority } from '../../../../functions/webPubSubHosts.composition';
import { WEB_PUBSUB_SUBPROTOCOL } from '../../../../infra/sandbox/remote/webPubSubHostChannel';
import { serveHostRoute } from '../../../../infra/sandbox/remote/webPubSubHostRoutes';
import { hostChannelContract } from '../../../contracts/hostChannel.contract';
import { openWebPubSubChannel } from '../../../support/webPubSubChannel';
import { createTestIssuer } from '../../../support/testIssuer';

hostChannelContract('Web PubSub (wire-format fake, @azure/web-pubsub REST, CloudEvents upstream)', openWebPubSubChannel);

describe('the Web PubSub channel admits only its own service and current hosts', () => {
  let h: ApiHarness;
  let opened: Awaited<ReturnType<typeof openWebPubSubChannel>>;
  let alice: string;
  let ws: string;
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-wps-attacks-'));

  const enrolled = async (label: string): Promise<{ hostId: string; credential: string }> => {
    const offer = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: label } })).json as { hostId: string; enrolmentToken: string };
    const { credential } = await webPubSubHostAuthority(h.deps).enrol(offer.enrolmentToken);
    return { hostId: offer.hostId, credential };
  };
  const upstream = (headers: Record<string, string>, body = '', method = 'POST') => opened.channel.handleUpstream({ method, body, header: (name) => headers[name.toLowerCase()] });

  beforeAll(async () => {
    h = await createApiHarness();
    alice = await h.issuer.token('alice');
    ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Acme' } })).json as { id: string }).id;
    opened = await openWebPubSubChannel(h.deps, dir);
    hostChannelControl.set(opened.channel);
  }, 60_000);

  afterAll(async () => {
    hostChannelControl.set(undefined);
    await opened?.close();
  });

  it('the abuse-protection handshake allows only our Web PubSub origin', async () => {
    const ours = new URL(opened.fake.endpoint).host;
    expect(await upstream({ 'webhook-request-origin': 'evil.webpubsub.azure.com' }, '', 'OPTIONS')).toMatchObject({ status: 400 });
    expect(await upstream({ 'webhook-request-origin': ours }, '', 'OPTIONS')).toEqual({ status: 200, headers: { 'webhook-allowed-origin': ours } });
  });

  it('an upstream frame without Web PubSub\'s own Entra ID token is refused; the same frame with it is admitted', async () => {
    const { hostId, credential } = await enrolled('box');
    const raw = await opened.openRaw(credential);
    const connectionId = [...opened.fake.connections.values()].find((c) => c.userId === `${ws}:${hostId}`)!.connectionId;
    const ready = JSON.stringify({ v: 1, hostId, workspaceId: ws, session: raw.session, seq: 1, body: { kind: 'ready', capabilities: { isolated: true } } });
    const headers = (authorization?: string): Record<string, string> => ({
      ...(authorization ? { authorization } : {}), 'ce-type': 'azure.webpubsub.user.message', 'ce-hub': 'sandboxhosts', 'ce-connectionid': connectionId, 'ce-userid': `${ws}:${hostId}`, 'content-type': 'text/plain',
    });
    const stranger = await createTestIssuer({ issuer: opened.entra.issuer, audience: opened.entra.audience });
    for (const authorization of [
      undefined,
      'Bearer not-a-jwt',
      `Bearer ${await opened.entra.token('00000000-0000-4000-8000-00000000bad0')}`, // another identity of the tenant
      `Bearer ${await opened.entra.token('00000000-0000-4000-8000-00000000a11e', { audience: 'api://another-app' })}`,
      `Bearer ${await stranger.token('00000000-0000-4000-8000-00000000a11e')}`, // right claims, key not in the tenant's JWKS
      // Web PubSub's id, but a person acting through an app (delegated) or a user token: never the service itself.
      `Bearer ${await opened.entra.token('00000000-0000-4000-8000-00000000a11e', { claims: { scp: 'user_impersonation' } })}`,
      `Bearer ${await opened.entra.token('00000000-0000-4000-8000-00000000a11e', { claims: { idtyp: 'user' } })}`,
      // A user whose token names Web PubSub's id only in `sub`: `oid` is the caller.
      `Bearer ${await opened.entra.token('00000000-0000-4000-8000-00000000a11e', { claims: { oid: '00000000-0000-4000-8000-0000000a11ce' } })}`,
    ]) expect((await upstream(headers(authorization), ready)).status, authorization ?? 'none').toBe(401);
    expect(opened.channel.liveHosts(ws)).toEqual([]);
    // The defence is what kept it out: the same frame with Web PubSub's token is admitted.
    expect((await upstream(headers(`Bearer ${await opened.entra.token('00000000-0000-4000-8000-00000000a11e')}`), ready)).status).toBe(204);
    expect(opened.channel.liveHosts(ws)).toHaveLength(1);
    raw.close();
    await until(() => opened.channel.liveHosts(ws).length === 0, 'the raw client to go');
  }, 30_000);

  it('negotiation needs a current host credential, and a client token minted before a revocation no longer connects', async () => {
    const { hostId, credential } = await enrolled('soon-revoked');
    const negotiate = (bearer: string) => serveHostRoute(opened.channel, webPubSubHostAuthority(h.deps), { method: 'POST', path: '/api/hosts/negotiate', body: '{}', header: (name) => (name === 'authorization' ? `Bearer ${bearer}` : undefined) });
    expect(JSON.parse((await negotiate(`${credential.slice(0, -4)}AAAA`)).body ?? '{}')).toMatchObject({ status: 403, code: 'HOST.CREDENTIAL_INVALID' });
    const answer = await negotiate(credential);
    expect(answer.status).toBe(200);
    const { url } = JSON.parse(answer.body ?? '{}') as { url: string };
    expect(url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/client\/hubs\/sandboxhosts\?access_token=/);
    expect((await h.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice })).status).toBe(204);
    expect(JSON.parse((await negotiate(credential)).body ?? '{}')).toMatchObject({ code: 'HOST.REVOKED' });
    // The token itself is still unexpired: Web PubSub asks the platform at connect, and the platform says no.
    const socket = new WebSocket(url, WEB_PUBSUB_SUBPROTOCOL, { ca: opened.tls.cert });
    const outcome = await new Promise<string>((resolve) => {
      socket.on('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode ?? 0}`));
      socket.on('open', () => resolve('opened'));
      socket.on('error', () => resolve('error'));
    });
    expect(outcome).toBe('refused 401');
  }, 30_000);

  it('a `connected` event for a host revoked after its `connect` opens no session', async () => {
    const { hostId } = await enrolled('revoked-between');
    expect((await h.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice })).status).toBe(204);
    const wps = `Bearer ${await opened.entra.token('00000000-0000-4000-8000-00000000a11e')}`;
    const connected = await upstream({
      authorization: wps, 'ce-type': 'azure.webpubsub.sys.connected', 'ce-hub': 'sandboxhosts', 'ce-connectionid': 'conn-after-revocation', 'ce-userid': `${ws}:${hostId}`,
    });
    expect(connected.status).toBe(204);
    // No session frame went out and no head names the host: nothing could ever be sent to that connection.
    expect(opened.channel.liveHosts(ws).some((c) => c.hostId === hostId)).toBe(false);
    const calls = opened.fake.restCalls.filter((c) => c.includes('conn-after-revocation'));
    expect(calls).toEqual(['DELETE connections/conn-after-revocation']);
  }, 30_000);

  it('a new instance that holds nothing in memory serves a live connection from the shared session: no reconnect, no refusal', async () => {
    const { hostId, credential } = await enrolled('survivor');
    const state = path.join(dir, 'survivor.json');
    writeFileSync(state, JSON.stringify({ credential }), { mode: 0o600 });
    const agent = new HostAgent({
      platform: opened.platformUrl, ca: opened.tls.cert, stateFile: state, inner: await LocalProcessSandboxHost.open({ isolation: 'off' }),
      dial: (current) => new WebPubSubClientSocket(opened.platformUrl, current, opened.tls.cert), log: () => undefined,
    });
    const running = agent.run();
    const connectionsOf = (): string[] => [...opened.fake.connections.values()].filter((c) => c.userId === `${ws}:${hostId}`).map((c) => c.connectionId);
    try {
      await until(() => opened.channel.liveHosts(ws).some((c) => c.hostId === hostId), 'the agent on the first instances');
      const before = connectionsOf();
      expect(before).toHaveLength(1);
      const next = await opened.replaceInstances();
      hostChannelControl.set(next);
      const remote = new RemoteSandboxHost(next);
      // Placement reads the shared sessions first: the new instance knows the host without having heard from it.
      const handle = await remote.create({ runId: 'run-after-scale', files: {}, redactor: createRedactor([]), guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws } });
      expect((await remote.exec(handle, { argv: ['echo', 'still here'], identity: 'agent' })).stdout.trim()).toBe('still here');
      await remote.teardown(handle);
      expect(connectionsOf()).toEqual(before);
      const refusals = (await h.store.readStream(ws, sandboxHostStreamId(ws, hostId))).events.filter((e) => e.type === 'HostMessageRefused');
      expect(refusals).toEqual([]);
    } finally {
      await agent.stop();
      await running;
    }
  }, 90_000);
});

async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
