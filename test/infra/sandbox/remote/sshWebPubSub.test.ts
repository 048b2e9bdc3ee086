import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TableEntity } from '@azure/data-tables';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessCredentialDelivery, SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../../domain/redaction';
import { onRun } from '../../../../domain/services/runStream';
import { runStreamId, sandboxHostStreamId } from '../../../../domain/streams';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { sshAccessPoint } from '../../../../infra/sandbox/remote/sshRelay';
import { SSH_TICKET_HEADER } from '../../../../infra/sandbox/remote/webPubSubSshRelay';
import { type ApiHarness, createApiHarness } from '../../../support/apiHarness';
import { spawnHostAgent } from '../../../support/remoteHostBackend';
import { type SshTicketAnswer, sshThroughProxy } from '../../../support/sshClient';
import { openWebPubSubChannel } from '../../../support/webPubSubChannel';

/**
 * IDE SSH when the host channel ends in Web PubSub: OpenSSH's `ssh` through `ssh-proxy --pubsub`, the wire-format
 * fake of Web PubSub, two app instances sharing only the table, and a real host agent process. The proxy's events
 * and the agent's frames are posted to whichever instance the test routes them to.
 */
const SECRET = 'pubsub-ssh-lease-Xr4tN8qW2mK7vB3z';
const WEB_PUBSUB_IDENTITY = '00000000-0000-4000-8000-00000000a11e';
const A = 0;
const B = 1;
const dir = mkdtempSync(path.join(tmpdir(), 'dp-ssh-wps-'));
let h: ApiHarness;
let opened: Awaited<ReturnType<typeof openWebPubSubChannel>>;
let remote: RemoteSandboxHost;
let alice: string;
let ws: string;
let hostId: string;
const children: ChildProcess[] = [];

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function ssh(ticket: SshTicketAnswer, command: string, asAnswered = false): ReturnType<typeof sshThroughProxy> {
  const session = sshThroughProxy({ ticket, command, platform: opened.platformUrl, caFile: opened.tls.certFile, dir, asAnswered });
  children.push(session.child);
  return session;
}

/** A run whose sandbox lives on the agent, recorded on its stream the way the run steps record it. */
async function liveRun(): Promise<{ runId: string; handle: SandboxHandle }> {
  const runId = randomUUID();
  const by = { actor: 'alice', correlationId: runId };
  await onRun(h.deps, ws, runId, { type: 'RequestRun', runId, workspaceId: ws, deadline: new Date(Date.now() + 600_000).toISOString(), specRef: 'spec', specDigest: 'digest' }, by);
  await onRun(h.deps, ws, runId, { type: 'StartPhase', phase: 'seed' }, by);
  const handle = await remote.create({
    runId, files: { 'hello.txt': 'hello' }, redactor: createRedactor([{ name: 'API_TOKEN', value: SECRET }]),
    guard: { secretNames: ['API_TOKEN'], managedValues: [{ name: 'API_TOKEN', value: SECRET }] }, placement: { workspaceId: ws },
  });
  await onRun(h.deps, ws, runId, { type: 'RecordSandboxLaunched', sandboxId: handle.sandboxId, isolated: true }, by);
  return { runId, handle };
}

async function ticketFor(runId: string): Promise<SshTicketAnswer> {
  const reply = await h.call('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`, { token: alice });
  expect(reply.status, reply.text).toBe(201);
  return reply.json as SshTicketAnswer;
}

async function sshEvents(runId: string): Promise<{ type: string; data: Record<string, unknown>; actor: string }[]> {
  const stream = await h.store.readStream(ws, runStreamId(runId));
  return stream.events.filter((e) => e.type.startsWith('Ssh')).map((e) => ({ type: e.type, data: e.data as Record<string, unknown>, actor: e.meta.actor }));
}

async function closed(runId: string): Promise<{ type: string; data: Record<string, unknown> }> {
  await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionClosed'), 'the close to be recorded');
  return (await sshEvents(runId)).find((e) => e.type === 'SshSessionClosed')!;
}

async function tableRows(): Promise<TableEntity[]> {
  const rows: TableEntity[] = [];
  for await (const row of opened.table.listEntities<TableEntity>()) rows.push(row);
  return rows;
}

/** An upstream event as Web PubSub would post it, with Web PubSub's own Entra ID token: what a forgery needs at least. */
async function postUpstream(headers: Record<string, string>, body: Buffer): Promise<number> {
  const token = await opened.entra.token(WEB_PUBSUB_IDENTITY);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${opened.platformUrl}/api/hosts/events`, {
      method: 'POST', ca: opened.tls.cert,
      headers: { authorization: `Bearer ${token}`, 'ce-specversion': '1.0', 'ce-hub': 'sandboxhosts', 'ce-id': randomUUID(), ...headers },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  h = await createApiHarness();
  alice = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Ssh over Web PubSub' } })).json as { id: string }).id;
  opened = await openWebPubSubChannel(h.deps, dir, { instances: 2, ssh: true });
  hostChannelControl.set(opened.instances[A]);
  remote = new RemoteSandboxHost(opened.instances[A]!);
  sshAccessPoint.set({ targets: remote, clientUrl: (ticketId) => opened.relays[A]!.clientUrl(ticketId), caFile: opened.tls.certFile });
  const enrolment = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'wps-ssh-box' } })).json as { hostId: string; enrolmentToken: string };
  hostId = enrolment.hostId;
  children.push(spawnHostAgent({
    platform: opened.platformUrl, caFile: opened.tls.certFile, token: enrolment.enrolmentToken, state: path.join(dir, 'agent.json'),
    args: ['--isolation', 'off', '--channel', 'web-pubsub'],
  }));
  await until(() => opened.instances[A]!.liveHosts(ws).length === 1, 'the agent to connect', 90_000);
}, 120_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  sshAccessPoint.set(undefined);
  hostChannelControl.set(undefined);
  await opened?.close();
});

describe('IDE SSH through Web PubSub', () => {
  it('OpenSSH runs a command in the sandbox through the proxy as answered; no stored row, frame or message holds the ticket or the value', async () => {
    const { runId, handle } = await liveRun();
    const leaked = await remote.exec(handle, {
      argv: ['sh', '-c', 'echo "$API_TOKEN" > leaked.txt'], identity: 'credential',
      credentials: async (): Promise<readonly ProcessCredentialDelivery[]> => [{ env: { API_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
    });
    expect(leaked.exitCode).toBe(0);
    const ticket = await ticketFor(runId);
    expect(ticket.pubsubUrl).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/client\/hubs\/sandboxhosts\?access_token=/);
    expect(ticket.proxyCommand).toContain('--pubsub ');
    const result = await ssh(ticket, 'cat leaked.txt; cat hello.txt', true);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^\[REDACTED:[A-Z_]+\]\nhello$/);
    expect((await closed(runId)).data.reason).toBe('the client disconnected');
    const events = await sshEvents(runId);
    expect(events.map((e) => e.type)).toEqual(['SshTicketIssued', 'SshSessionOpened', 'SshSessionClosed']);
    expect(events[1]?.actor).toBe('alice');

    const random = ticket.ticket.split('.').at(-1)!;
    const sshFrames = opened.frames().filter((f) => /"(op|kind)":"ssh/.test(f.raw));
    expect(sshFrames.length).toBeGreaterThan(4);
    for (const frame of sshFrames) expect(JSON.parse(frame.raw)).toMatchObject({ hostId, workspaceId: ws, body: { runId } });
    const carrying = opened.frames().filter((f) => f.raw.includes(SECRET) || f.raw.includes(Buffer.from(SECRET).toString('base64')));
    expect(carrying.map((f) => (JSON.parse(f.raw) as { body: { op?: string } }).body.op)).toEqual(['exec']);
    for (const where of [JSON.stringify(opened.frames()), JSON.stringify(opened.fake.wire), JSON.stringify(await tableRows()), JSON.stringify(events)]) {
      expect(where).not.toContain(random);
    }
    expect(JSON.stringify(await tableRows())).not.toContain(SECRET);
    // The tunnel's record is ended (it stays until the host session ends); the agent's last frames in flight were not taken for forgeries.
    expect((await tableRows()).filter((row) => row.partitionKey.startsWith('ssh:')).map((row) => row.closed)).toEqual(['the client disconnected']);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await h.store.readStream(ws, sandboxHostStreamId(ws, hostId))).events.filter((e) => e.type === 'HostMessageRefused')).toEqual([]);
    await remote.teardown(handle);
  }, 120_000);

  it('the proxy\'s events go to instance A and the host\'s to instance B: the session works across them', async () => {
    const { runId, handle } = await liveRun();
    const seen = { proxyAt: new Set<number>(), hostAt: new Set<number>() };
    opened.routeTo(({ path: route, header }) => {
      if (route !== '/api/hosts/events') return undefined;
      const proxy = (header('ce-userid') ?? '').startsWith('ssh:');
      (proxy ? seen.proxyAt : seen.hostAt).add(proxy ? A : B);
      return proxy ? A : B;
    });
    try {
      const result = await ssh(await ticketFor(runId), 'echo across; pwd');
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.split('\n')[0]).toBe('across');
      await closed(runId);
    } finally {
      opened.routeTo(() => undefined);
    }
    expect([...seen.proxyAt]).toEqual([A]);
    expect([...seen.hostAt]).toEqual([B]);
    // An instance that does not serve the sandbox finds its host for a ticket by asking the workspace's hosts.
    const elsewhere = new RemoteSandboxHost(opened.instances[B]!);
    expect(await elsewhere.targetOf(runId, ws)).toMatchObject({ hostId, hostKey: expect.stringMatching(/^ssh-ed25519 /) });
    expect(await elsewhere.targetOf(runId)).toBeUndefined();
    await remote.teardown(handle);
  }, 120_000);

  it('a ticket used once opens nothing again; the reuse is recorded on the run', async () => {
    const { runId, handle } = await liveRun();
    const ticket = await ticketFor(runId);
    expect((await ssh(ticket, 'true')).code).toBe(0);
    const again = await ssh(ticket, 'true');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/refused the session \(HTTP 401/);
    await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionRefused'), 'the reuse to be recorded');
    const events = await sshEvents(runId);
    expect(events.filter((e) => e.type === 'SshSessionOpened')).toHaveLength(1);
    expect(events.find((e) => e.type === 'SshSessionRefused')?.data.reason).toBe('reused');
    await remote.teardown(handle);
  }, 120_000);

  it('forged proxy events are refused and recorded; another ticket on this ticket\'s client URL opens nothing; teardown ends the session', async () => {
    const { runId, handle } = await liveRun();
    const ticket = await ticketFor(runId);
    const session = ssh(ticket, 'echo open; sleep 120');
    await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionOpened'), 'the session to open');
    await until(() => opened.frames().some((f) => f.direction === 'to-host' && f.raw.includes('"op":"sshData"') && f.raw.includes(runId)), 'the client to speak');
    const tunnelId = (await sshEvents(runId)).find((e) => e.type === 'SshTicketIssued')!.data.ticketId as string;
    const refusals = async (): Promise<{ reason: string; messageType: string }[]> =>
      (await h.store.readStream(ws, sandboxHostStreamId(ws, hostId))).events.filter((e) => e.type === 'HostMessageRefused').map((e) => e.data as { reason: string; messageType: string });
    const before = (await refusals()).length;

    // Bytes posted as this session's user from a connection that is not its proxy's: nothing reaches the host.
    const status = await postUpstream({
      'content-type': 'application/octet-stream', 'ce-type': 'azure.webpubsub.user.sshData', 'ce-userid': `ssh:${tunnelId}`, 'ce-connectionid': 'forged-connection', 'ce-eventname': 'sshData',
    }, Buffer.from('SSH-2.0-forged\r\n'));
    expect(status).toBe(204);
    await until(async () => (await refusals()).length > before, 'the forgery to be recorded');
    expect((await refusals()).slice(before)).toEqual([expect.objectContaining({ reason: 'foreign-session', messageType: 'sshData' })]);
    expect(opened.frames().filter((f) => f.direction === 'to-host' && f.raw.includes(Buffer.from('SSH-2.0-forged\r\n').toString('base64')))).toEqual([]);
    // A proxy's user cannot post a host's frame event, nor a host's user a proxy's bytes.
    const [proxyConnection] = [...opened.fake.connections.values()].filter((c) => c.userId === `ssh:${tunnelId}`);
    expect(proxyConnection).toBeDefined();
    const asProxy = { 'ce-userid': `ssh:${tunnelId}`, 'ce-connectionid': proxyConnection!.connectionId };
    expect(await postUpstream({ ...asProxy, 'content-type': 'text/plain', 'ce-type': 'azure.webpubsub.user.message', 'ce-eventname': 'message' }, Buffer.from('{}'))).toBe(400);
    expect(await postUpstream({ 'ce-userid': `${ws}:${hostId}`, 'ce-connectionid': 'c-1', 'content-type': 'application/octet-stream', 'ce-type': 'azure.webpubsub.user.sshData', 'ce-eventname': 'sshData' }, Buffer.from('x'))).toBe(400);

    // The client URL is good for a minute and could open a second connection: without its ticket it is refused, and
    // another ticket presented on it is spent, recorded and closed, never relayed.
    const upgrade = (headers: Record<string, string>): Promise<number> => new Promise((resolve) => {
      const socket = new WebSocket(ticket.pubsubUrl!, 'json.webpubsub.azure.v1', { ca: opened.tls.cert, headers });
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.on('open', () => {
        socket.close();
        resolve(101);
      });
      socket.on('error', () => resolve(0));
    });
    expect(await upgrade({})).toBe(401);
    const other = await ticketFor(runId);
    expect(await upgrade({ [SSH_TICKET_HEADER]: other.ticket })).toBe(401);
    await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionClosed'), 'the misused ticket\'s session to be closed');
    const misused = (await sshEvents(runId)).find((e) => e.type === 'SshSessionClosed');
    expect(misused?.data.reason).toMatch(/minted for another ticket/);

    // The original session still runs; teardown ends it through the agent's sshClosed.
    await remote.teardown(handle);
    const ended = await session;
    expect(ended.code).not.toBe(0);
    expect(ended.stderr).toContain('session closed: the sandbox was torn down');
    await until(async () => (await sshEvents(runId)).filter((e) => e.type === 'SshSessionClosed').length === 2, 'the session\'s close to be recorded');
    const reasons = (await sshEvents(runId)).filter((e) => e.type === 'SshSessionClosed').map((e) => e.data.reason);
    expect(reasons[1]).toMatch(/torn down/);
  }, 120_000);

  // Last: the host is gone after it.
  it('a revoked host ends the sessions opened on its channel: the proxy is closed and the close recorded', async () => {
    const { runId } = await liveRun();
    const session = ssh(await ticketFor(runId), 'echo open; sleep 120');
    await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionOpened'), 'the session to open');
    await until(() => opened.frames().some((f) => f.direction === 'from-host' && f.raw.includes('"kind":"sshData"') && f.raw.includes(runId)), 'the server to speak');
    expect((await h.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice })).status).toBe(204);
    const ended = await session;
    expect(ended.code).not.toBe(0);
    expect((await closed(runId))).toMatchObject({ actor: 'alice', data: { reason: expect.stringMatching(/revoked/) } });
    await until(async () => (await tableRows()).every((row) => !row.partitionKey.startsWith('ssh:')), 'the tunnel to be removed');
  }, 120_000);
});
