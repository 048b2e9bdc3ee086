import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import type { SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { readSandboxHost } from '../../../../domain/services/sandboxHosts';
import { PLATFORM_PARTITION } from '../../../../domain/streams';
import { LocalProcessSandboxHost } from '../../../../infra/sandbox/localProcessSandboxHost';
import { HostAgent } from '../../../../infra/sandbox/remote/hostAgent';
import { entraPoolIdentityVerifier } from '../../../../infra/sandbox/remote/managedPoolIdentity';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { WebPubSubClientSocket } from '../../../../infra/sandbox/remote/webPubSubClientSocket';
import { serveHostRoute } from '../../../../infra/sandbox/remote/webPubSubHostRoutes';
import { type ApiHarness, createApiHarness } from '../../../support/apiHarness';
import { type TestIssuer, createTestIssuer } from '../../../support/testIssuer';
import { openWebPubSubChannel } from '../../../support/webPubSubChannel';

const POOL_MACHINE = '7d3f2c1a-0000-4000-8000-0000000000b1';
const NOT_POOL = '7d3f2c1a-0000-4000-8000-0000000000c2';

let h: ApiHarness;
let entra: TestIssuer;
let opened: Awaited<ReturnType<typeof openWebPubSubChannel>>;
let ws: string;
const dir = mkdtempSync(path.join(tmpdir(), 'dp-pool-enrol-'));

const enrolManaged = (bearer: string | undefined) =>
  serveHostRoute(opened.channel, opened.authority, { method: 'POST', path: '/api/hosts/enrol-managed', body: '{}', header: (name) => (name === 'authorization' && bearer ? `Bearer ${bearer}` : undefined) });

async function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  h = await createApiHarness();
  const alice = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Acme' } })).json as { id: string }).id;
  entra = await createTestIssuer({ issuer: 'https://login.test/tenant/v2.0', audience: 'api://disco-parrot-app' });
  opened = await openWebPubSubChannel(h.deps, dir, {
    entra, poolIdentity: entraPoolIdentityVerifier({ issuer: entra.issuer, audience: entra.audience, jwks: entra.jwks, principalIds: [POOL_MACHINE] }),
  });
}, 60_000);

afterAll(async () => {
  await opened?.close();
});

describe('managed-pool machines enrol by managed identity', () => {
  it('refuses a token that does not prove a listed pool identity of the tenant, for the app', async () => {
    const stranger = await createTestIssuer({ issuer: entra.issuer, audience: entra.audience });
    const attempts: [string, string | undefined][] = [
      ['no token', undefined],
      ['not a JWT', 'dpe_platform.host.random'],
      ['an identity that is not the pool\'s', await entra.token(NOT_POOL)],
      ['another audience', await entra.token(POOL_MACHINE, { audience: 'https://management.azure.com' })],
      ['another issuer', await entra.token(POOL_MACHINE, { issuer: 'https://login.test/other-tenant/v2.0' })],
      ['a key outside the JWKS', await stranger.token(POOL_MACHINE)],
      ['expired', await entra.token(POOL_MACHINE, { expiresIn: Math.floor(Date.now() / 1000) - 60 })],
    ];
    for (const [what, bearer] of attempts) {
      const answer = await enrolManaged(bearer);
      expect(answer.status, what).toBe(403);
      expect(JSON.parse(answer.body ?? '{}'), what).toMatchObject({ code: 'HOST.IDENTITY_REFUSED' });
    }
    // The defence is what refused them: the pool machine's own token enrols it.
    const enrolled = await enrolManaged(await entra.token(POOL_MACHINE));
    expect(enrolled.status).toBe(200);
    const host = JSON.parse(enrolled.body ?? '{}') as { workspaceId: string; hostId: string; credential: string };
    expect(host.workspaceId).toBe(PLATFORM_PARTITION);
    expect(host.credential).toMatch(/^dph_platform\./);
    const state = await readSandboxHost(h.store, host);
    expect(state).toMatchObject({ status: 'Enrolled', name: expect.stringMatching(/^pool-/) });
  });

  it('a pool agent enrolled by its identity serves runs placed on the managed pool, and only those', async () => {
    const agent = new HostAgent({
      platform: opened.platformUrl, ca: opened.tls.cert, stateFile: path.join(dir, 'pool-agent.json'),
      inner: await LocalProcessSandboxHost.open({ isolation: 'off' }),
      identityToken: () => entra.token(POOL_MACHINE),
      dial: (credential) => new WebPubSubClientSocket(opened.platformUrl, credential, opened.tls.cert),
      log: () => undefined,
    });
    const running = agent.run();
    try {
      await until(() => opened.channel.liveHosts(PLATFORM_PARTITION).length === 1, 'the pool agent to connect');
      const remote = new RemoteSandboxHost(opened.channel);
      const request = (pool: 'managed' | 'workspace', runId: string): SandboxRequest => ({
        runId, files: {}, redactor: createRedactor([]), guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws, pool },
      });
      const handle = await remote.create(request('managed', 'run-on-pool'));
      expect((await remote.exec(handle, { argv: ['echo', 'from the pool'], identity: 'agent' })).stdout.trim()).toBe('from the pool');
      await remote.teardown(handle);
      // A pool host belongs to no workspace: a run kept to the workspace's own hosts never lands on it.
      await expect(remote.create(request('workspace', 'run-own-only'))).rejects.toMatchObject({ code: 'HOST.NONE_LIVE' });
      expect(opened.channel.liveHosts(ws)).toEqual([]);
    } finally {
      await agent.stop();
      await running;
    }
  }, 60_000);
});
