import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import type { SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { sandboxHostStreamId } from '../../../../domain/streams';
import { webPubSubHostAuthority } from '../../../../functions/webPubSubHosts.composition';
import { LocalProcessSandboxHost } from '../../../../infra/sandbox/localProcessSandboxHost';
import { HostAgent } from '../../../../infra/sandbox/remote/hostAgent';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { WebPubSubClientSocket } from '../../../../infra/sandbox/remote/webPubSubClientSocket';
import { DepositTooLargeError, MAX_DEPOSIT_BYTES } from '../../../../infra/tables/tableHostSessions';
import { hostChannelContract } from '../../../contracts/hostChannel.contract';
import { type ApiHarness, createApiHarness } from '../../../support/apiHarness';
import { openWebPubSubChannel } from '../../../support/webPubSubChannel';

// Under a loaded machine the contract's first case over three instances was seen at 53-68 s (never failing, cause
// not found: see docs/sandbox-hosts.md); the file's bound is raised so CI's load cannot turn that into a timeout.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

/** The whole contract with three instances taking Web PubSub's upstream posts in turn; the test's host is on the first. */
hostChannelContract('Web PubSub, three app instances sharing the session table', (deps, dir) => openWebPubSubChannel(deps, dir, { instances: 3 }));

const WEB_PUBSUB_IDENTITY = '00000000-0000-4000-8000-00000000a11e';
const SECRET = 'deploy-token-Qv7mX2pL9sK4wR8t';
const A = 0;
const B = 1;

describe('several app instances serve one host connection', () => {
  let h: ApiHarness;
  let opened: Awaited<ReturnType<typeof openWebPubSubChannel>>;
  let alice: string;
  let ws: string;
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-wps-shared-'));
  const agents: { agent: HostAgent; running: Promise<'revoked' | 'stopped'>; said: string[] }[] = [];

  const enrolled = async (label: string): Promise<{ hostId: string; credential: string }> => {
    const offer = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: label } })).json as { hostId: string; enrolmentToken: string };
    const { credential } = await webPubSubHostAuthority(h.deps).enrol(offer.enrolmentToken);
    return { hostId: offer.hostId, credential };
  };
  const startAgent = async (label: string): Promise<{ hostId: string; said: string[]; running: Promise<'revoked' | 'stopped'> }> => {
    const { hostId, credential } = await enrolled(label);
    const state = path.join(dir, `${label}.json`);
    writeFileSync(state, JSON.stringify({ credential }), { mode: 0o600 });
    const said: string[] = [];
    const agent = new HostAgent({
      platform: opened.platformUrl, ca: opened.tls.cert, stateFile: state, inner: await LocalProcessSandboxHost.open({ isolation: 'off' }),
      dial: (current) => new WebPubSubClientSocket(opened.platformUrl, current, opened.tls.cert), log: (line) => said.push(line),
    });
    const running = agent.run();
    agents.push({ agent, running, said });
    await until(() => opened.instances[A]!.liveHosts(ws).some((c) => c.hostId === hostId), `${label} to be live`);
    return { hostId, said, running };
  };
  const request = (runId: string): SandboxRequest => ({ runId, files: {}, redactor: createRedactor([]), guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws } });
  const refusalsOf = async (hostId: string): Promise<string[]> =>
    (await h.store.readStream(ws, sandboxHostStreamId(ws, hostId))).events.filter((e) => e.type === 'HostMessageRefused').map((e) => (e.data as { reason: string }).reason);
  const kindOf = (body: string): string | undefined => {
    try {
      return (JSON.parse(body) as { body?: { kind?: string } }).body?.kind;
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    h = await createApiHarness();
    alice = await h.issuer.token('alice');
    ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Acme' } })).json as { id: string }).id;
    opened = await openWebPubSubChannel(h.deps, dir, { instances: 3 });
    hostChannelControl.set(opened.instances[A]);
  }, 60_000);

  afterEach(async () => {
    opened.routeTo(() => undefined);
    for (const { agent, running } of agents.splice(0)) {
      await agent.stop();
      await running;
    }
    // The next test's placement must not pick a host of this one whose disconnect is still on its way.
    await until(async () => {
      await opened.instances[A]!.refresh();
      return opened.instances[A]!.liveHosts(ws).length === 0;
    }, 'the hosts of the test to be gone');
  }, 60_000);

  afterAll(async () => {
    hostChannelControl.set(undefined);
    await opened?.close();
  });

  it('a command sent from instance A whose result Web PubSub posts to instance B completes on A; no delivered value is kept in the table', async () => {
    const { hostId } = await startAgent('answers-elsewhere');
    const answeredOn: number[] = [];
    // Every agent frame goes to B; A only sends. What A waits on can reach it only through the shared session.
    opened.routeTo(({ path: route, header, body }) => {
      if (route !== '/api/hosts/events' || header('ce-type') !== 'azure.webpubsub.user.message') return undefined;
      if (kindOf(body) === 'exited' || kindOf(body) === 'created') answeredOn.push(B);
      return B;
    });
    // What the instances keep in the table for each other: never a delivered value (the agent redacts its output).
    const deposited: string[] = [];
    const update = opened.store.update.bind(opened.store);
    opened.store.update = async (head, change, deposit) => {
      if (deposit) deposited.push(deposit.body);
      return update(head, change, deposit);
    };
    try {
      const remote = new RemoteSandboxHost(opened.instances[A]!);
      const handle = await remote.create(request('run-across'));
      const streamed: string[] = [];
      const result = await remote.exec(handle, { argv: ['sh', '-c', 'echo first; sleep 0.3; echo second'], identity: 'agent', onOutput: (_stream, text) => streamed.push(text) });
      expect(result).toMatchObject({ exitCode: 0, stdout: 'first\nsecond\n' });
      expect(streamed.join('')).toContain('first');
      const leased = await remote.exec(handle, {
        argv: ['sh', '-c', 'echo "$DEPLOY_TOKEN"'], identity: 'credential',
        credentials: async () => [{ env: { DEPLOY_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
      });
      expect(leased.exitCode).toBe(0);
      expect(leased.stdout).not.toContain(SECRET);
      await remote.teardown(handle);
    } finally {
      opened.store.update = update;
    }
    expect(deposited.some((body) => body.includes('"kind":"exited"'))).toBe(true);
    expect(deposited.filter((body) => body.includes(SECRET))).toEqual([]);
    expect(answeredOn.length).toBeGreaterThanOrEqual(2);
    expect(await refusalsOf(hostId)).toEqual([]);
    // Consumed answers leave nothing behind but the head.
    await until(async () => (await rowsOf(ws, hostId)).every((key) => key === 'head'), 'the consumed frames to be removed');
  }, 90_000);

  it('commands sent from two instances at once reach the agent in order (one send at a time per connection)', async () => {
    const { hostId, said } = await startAgent('two-senders');
    const onA = new RemoteSandboxHost(opened.instances[A]!);
    const onB = new RemoteSandboxHost(opened.instances[B]!);
    const [handleA, handleB] = await Promise.all([onA.create(request('run-a')), onB.create(request('run-b'))]);
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? onA.exec(handleA, { argv: ['echo', `a${i}`], identity: 'agent' }) : onB.exec(handleB, { argv: ['echo', `b${i}`], identity: 'agent' }))));
    expect(results.map((r) => r.stdout.trim())).toEqual(['a0', 'b1', 'a2', 'b3', 'a4', 'b5']);
    await Promise.all([onA.teardown(handleA), onB.teardown(handleB)]);
    expect(said.filter((line) => line.includes('refused'))).toEqual([]);
    expect(await refusalsOf(hostId)).toEqual([]);
  }, 90_000);

  it('a frame admitted on A and replayed to B is refused there and recorded once', async () => {
    const { hostId, credential } = await enrolled('replayer');
    const raw = await opened.openRaw(credential);
    const frame = (seq: number, body: unknown): string => JSON.stringify({ v: 1, hostId, workspaceId: ws, session: raw.session, seq, body });
    const ready = frame(1, { kind: 'ready', capabilities: { isolated: true } });
    let sends = 0;
    opened.routeTo(({ header }) => (header('ce-type') === 'azure.webpubsub.user.message' ? (sends++ === 0 ? A : B) : undefined));
    try {
      raw.send(ready);
      raw.send(ready);
      raw.send(frame(2, { kind: 'heartbeat' }));
      await until(async () => (await opened.store.head({ workspaceId: ws, hostId }))?.nextInbound === 3, 'the heartbeat after the replay to be admitted');
      await until(async () => (await refusalsOf(hostId)).length >= 1, 'the refusal to be recorded');
      expect(await refusalsOf(hostId)).toEqual(['replayed']);
    } finally {
      raw.close();
    }
  }, 60_000);

  it('the same frame racing on two instances is admitted once; the sequence holds across instances', async () => {
    const { hostId, credential } = await enrolled('racer');
    const raw = await opened.openRaw(credential);
    const connectionId = [...opened.fake.connections.values()].find((c) => c.userId === `${ws}:${hostId}`)!.connectionId;
    const frame = (seq: number, body: unknown): string => JSON.stringify({ v: 1, hostId, workspaceId: ws, session: raw.session, seq, body });
    const token = await opened.entra.token(WEB_PUBSUB_IDENTITY);
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`, 'ce-type': 'azure.webpubsub.user.message', 'ce-hub': 'sandboxhosts', 'ce-connectionid': connectionId, 'ce-userid': `${ws}:${hostId}`,
    };
    try {
      const post = (instance: number, body: string) => opened.instances[instance]!.handleUpstream({ method: 'POST', body, header: (name) => headers[name.toLowerCase()] });
      const frames = [frame(1, { kind: 'ready', capabilities: { isolated: true } }), ...Array.from({ length: 12 }, (_, i) => frame(i + 2, { kind: 'heartbeat' }))];
      for (const body of frames) await Promise.all([post(A, body), post(B, body), post(2, body)]);
      expect((await opened.store.head({ workspaceId: ws, hostId }))?.nextInbound).toBe(frames.length + 1);
      await until(async () => (await refusalsOf(hostId)).length >= frames.length * 2, 'the refusals to be recorded').catch(async (error: unknown) => {
        throw new Error(`${(error as Error).message}: ${JSON.stringify(await refusalsOf(hostId))}`);
      });
      const refusals = await refusalsOf(hostId);
      // Each frame was admitted by exactly one instance; the two copies were refused as replays (never out of order).
      expect(refusals).toEqual(Array.from({ length: frames.length * 2 }, () => 'replayed'));
    } finally {
      raw.close();
    }
  }, 60_000);

  it('revoking on A cuts off at once a command waiting on B, and the agent stops', async () => {
    const { hostId, running } = await startAgent('revoked-elsewhere');
    const onB = new RemoteSandboxHost(opened.instances[B]!);
    const handle = await onB.create(request('run-revoked'));
    const sleeping = onB.exec(handle, { argv: ['sleep', '30'], identity: 'agent' });
    sleeping.catch(() => undefined);
    // A holds the host routes' channel control (hostChannelControl); B holds the waiting command.
    expect((await h.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice })).status).toBe(204);
    await expect(sleeping).rejects.toMatchObject({ code: 'HOST.GONE', message: /revoked by alice/ });
    expect(await running).toBe('revoked');
    await until(() => opened.instances.every((instance) => !instance.liveHosts(ws).some((c) => c.hostId === hostId)), 'every instance to drop the host');
    expect((await opened.store.head({ workspaceId: ws, hostId }))?.closed).toMatch(/revoked by alice/);
    await expect(onB.create(request('run-after-revoke'))).rejects.toMatchObject({ code: 'HOST.NONE_LIVE' });
  }, 60_000);

  it('a frame the platform cannot keep (storage failing) ends the session; the agent reconnects and is served again', async () => {
    const { hostId } = await startAgent('storage-hiccup');
    const remote = new RemoteSandboxHost(opened.instances[A]!);
    const update = opened.store.update.bind(opened.store);
    let failed = 0;
    // Answers go to B, so the answer to create is deposited, and that write is the one that fails.
    opened.routeTo(({ header }) => (header('ce-type') === 'azure.webpubsub.user.message' ? B : undefined));
    opened.store.update = async (head, change, deposit) => {
      if (deposit?.body.includes('"kind":"created"') && head.hostId === hostId && failed === 0) {
        failed += 1;
        throw new Error('the table is unavailable');
      }
      return update(head, change, deposit);
    };
    try {
      // Left unadmitted, that frame would block every later one: the session ends instead.
      await expect(remote.create(request('run-hiccup'))).rejects.toMatchObject({ code: 'HOST.GONE' });
    } finally {
      opened.store.update = update;
    }
    expect(failed).toBe(1);
    await until(async () => {
      await opened.instances[A]!.refresh();
      return opened.instances[A]!.liveHosts(ws).some((c) => c.hostId === hostId);
    }, 'the agent to reconnect');
    const handle = await remote.create(request('run-after-hiccup'));
    expect((await remote.exec(handle, { argv: ['echo', 'again'], identity: 'agent' })).stdout.trim()).toBe('again');
    await remote.teardown(handle);
  }, 90_000);

  it('an answer too large for the session to keep fails its command with HOST.FRAME_TOO_LARGE; the session goes on', async () => {
    await startAgent('too-large');
    opened.routeTo(({ header }) => (header('ce-type') === 'azure.webpubsub.user.message' ? B : undefined));
    const remote = new RemoteSandboxHost(opened.instances[A]!);
    const handle = await remote.create(request('run-too-large'));
    const update = opened.store.update.bind(opened.store);
    // Stands in for an exit over the deposit limit (Azurite takes what Azure would refuse): the adapter's own refusal.
    opened.store.update = async (head, change, deposit) => {
      if (deposit?.body.includes('"kind":"exited"') && deposit.body.includes('huge')) throw new DepositTooLargeError(MAX_DEPOSIT_BYTES + 1);
      return update(head, change, deposit);
    };
    try {
      await expect(remote.exec(handle, { argv: ['echo', 'huge'], identity: 'agent' })).rejects.toMatchObject({ code: 'HOST.FRAME_TOO_LARGE' });
    } finally {
      opened.store.update = update;
    }
    expect((await remote.exec(handle, { argv: ['echo', 'fine'], identity: 'agent' })).stdout.trim()).toBe('fine');
    await remote.teardown(handle);
  }, 90_000);

  const rowsOf = async (workspaceId: string, hostId: string): Promise<string[]> => {
    const keys: string[] = [];
    for await (const row of opened.table.listEntities({ queryOptions: { filter: `PartitionKey eq '${workspaceId}:${hostId}'` } })) keys.push(row.rowKey ?? '');
    return keys;
  };
});

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
