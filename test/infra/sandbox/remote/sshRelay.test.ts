import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../../../domain/ports/clock';
import type { ProcessCredentialDelivery, SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../../domain/redaction';
import { issueSshTicket, redeemSshTicket } from '../../../../domain/services/runSsh';
import { onRun } from '../../../../domain/services/runStream';
import { runStreamId } from '../../../../domain/streams';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { serveSshOverChannel } from '../../../../functions/sshAccess.wiring';
import { HostChannelServer, HostConnection, type ChannelSocket } from '../../../../infra/sandbox/remote/hostChannelServer';
import { hostChannelControl, randomHostCredentials } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { sshAccessPoint } from '../../../../infra/sandbox/remote/sshRelay';
import { createApiHarness, type ApiHarness } from '../../../support/apiHarness';
import { spawnHostAgent } from '../../../support/remoteHostBackend';
import { type SshTicketAnswer, sshThroughProxy } from '../../../support/sshClient';

/**
 * The SSH relay on the platform's channel endpoint with a real agent process and OpenSSH's `ssh`, every frame
 * captured: the platform's clock is moved to expire a ticket, and the frames are searched for the sandbox's secret.
 */
const SECRET = 'ssh-relay-lease-Hq7wP3zK9xV2bN6m';
const dir = mkdtempSync(path.join(tmpdir(), 'dp-ssh-relay-'));
let h: ApiHarness;
let channel: HostChannelServer;
let remote: RemoteSandboxHost;
let tls: ReturnType<typeof selfSignedCertificate>;
let alice: string;
let ws: string;
let hostId: string;
let skewMs = 0;
const clock: Clock = { now: () => new Date(Date.now() + skewMs), sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };
const frames: { direction: string; raw: string }[] = [];
const children: ChildProcess[] = [];

type Ticket = SshTicketAnswer;

function ssh(ticket: Ticket, command: string, asAnswered = false, sshOptions: readonly string[] = []): ReturnType<typeof sshThroughProxy> {
  const session = sshThroughProxy({ ticket, command, platform: channel.url, caFile: tls.certFile, dir, asAnswered, sshOptions });
  children.push(session.child);
  return session;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
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

async function ticketFor(runId: string): Promise<Ticket> {
  const reply = await h.call('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`, { token: alice });
  expect(reply.status, reply.text).toBe(201);
  return reply.json as Ticket;
}

async function sshEvents(runId: string): Promise<{ type: string; data: Record<string, unknown>; actor: string }[]> {
  const stream = await h.store.readStream(ws, runStreamId(runId));
  return stream.events.filter((e) => e.type.startsWith('Ssh')).map((e) => ({ type: e.type, data: e.data as Record<string, unknown>, actor: e.meta.actor }));
}

beforeAll(async () => {
  h = await createApiHarness();
  alice = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Ssh relay' } })).json as { id: string }).id;
  tls = selfSignedCertificate(path.join(dir, 'tls'));
  channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(h.deps), tap: (direction, raw) => frames.push({ direction, raw }) });
  hostChannelControl.set(channel);
  remote = new RemoteSandboxHost(channel);
  serveSshOverChannel({ ...h.deps, clock }, channel, remote, tls.certFile);
  const enrolment = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'ssh-box' } })).json as { hostId: string; enrolmentToken: string };
  hostId = enrolment.hostId;
  children.push(spawnHostAgent({ platform: channel.url, caFile: tls.certFile, token: enrolment.enrolmentToken, state: path.join(dir, 'agent.json') }));
  await until(() => channel.liveHosts(ws).length === 1, 'the agent to connect', 90_000);
}, 120_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  sshAccessPoint.set(undefined);
  hostChannelControl.set(undefined);
  await channel?.close();
});

describe('the SSH relay over a real host agent', () => {
  it('relays a session whose output the agent redacted; no frame carries the value outside its exec delivery', async () => {
    const { runId, handle } = await liveRun();
    // A credential process leaves its value in the workspace; the agent's redactor knows it from the delivery.
    const leaked = await remote.exec(handle, {
      argv: ['sh', '-c', 'echo "$API_TOKEN" > leaked.txt'], identity: 'credential',
      credentials: async (): Promise<readonly ProcessCredentialDelivery[]> => [{ env: { API_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
    });
    expect(leaked.exitCode).toBe(0);
    const result = await ssh(await ticketFor(runId), 'cat leaked.txt; cat hello.txt', true);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^\[REDACTED:[A-Z_]+\]\nhello$/);

    const sshFrames = frames.filter((f) => /"(op|kind)":"ssh/.test(f.raw));
    expect(sshFrames.length).toBeGreaterThan(2);
    for (const frame of sshFrames) expect(JSON.parse(frame.raw)).toMatchObject({ hostId, workspaceId: ws, body: { runId } });
    const carrying = frames.filter((f) => f.raw.includes(SECRET) || f.raw.includes(Buffer.from(SECRET).toString('base64')));
    expect(carrying.map((f) => (JSON.parse(f.raw) as { body: { op?: string } }).body.op)).toEqual(['exec']);
    await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionClosed'), 'the close to be recorded');

    // The client's own environment never enters the sandbox (OpenSSH's SetEnv/SendEnv are refused).
    const withEnv = await ssh(await ticketFor(runId), 'echo "probe=${DP_PROBE:-unset}"', false, ['-o', 'SetEnv=DP_PROBE=from-the-client']);
    expect(withEnv.stdout.trim()).toBe('probe=unset');
    await remote.teardown(handle);
  }, 60_000);

  it('two presentations of one ticket at once open one session; the other is recorded as reused', async () => {
    const { runId, handle } = await liveRun();
    const caller = { actor: 'alice', correlationId: runId };
    const { ticket } = await issueSshTicket(h.deps, randomHostCredentials, remote, caller, { workspaceId: ws, runId });
    const outcomes = await Promise.allSettled([redeemSshTicket(h.deps, randomHostCredentials, ticket), redeemSshTicket(h.deps, randomHostCredentials, ticket)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({ reason: { code: 'SSH.TICKET_USED' } });
    const events = await sshEvents(runId);
    expect(events.map((e) => e.type).sort()).toEqual(['SshSessionOpened', 'SshSessionRefused', 'SshTicketIssued']);
    await remote.teardown(handle);
  }, 60_000);

  it('an expired ticket and a ticket moved to another workspace open nothing; the expiry is recorded on the run', async () => {
    const { runId, handle } = await liveRun();
    const ticket = await ticketFor(runId);
    skewMs = 61_000;
    try {
      const expired = await ssh(ticket, 'true');
      expect(expired.code).not.toBe(0);
      expect(expired.stderr).toMatch(/SSH\.TICKET_EXPIRED/);
    } finally {
      skewMs = 0;
    }
    // Expired is final: the same ticket is not good again once the clock is back.
    const other = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Other' } })).json as { id: string }).id;
    expect((await ssh({ ...ticket, ticket: ticket.ticket.replace(ws, other) }, 'true')).stderr).toMatch(/SSH\.TICKET_INVALID/);
    const events = await sshEvents(runId);
    expect(events.map((e) => e.type)).toEqual(['SshTicketIssued', 'SshSessionRefused']);
    expect(events[1]?.data.reason).toBe('expired');
    expect(JSON.stringify(events)).not.toContain(ticket.ticket.split('.').at(-1));
    await remote.teardown(handle);
  }, 60_000);

  it('a revoked host ends its open sessions; the close is recorded with the reason', async () => {
    const { runId } = await liveRun();
    const session = ssh(await ticketFor(runId), 'echo open; sleep 120');
    await until(() => frames.some((f) => f.direction === 'from-host' && f.raw.includes('"kind":"sshData"') && f.raw.includes(runId)), 'the session to open');
    await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionOpened'), 'the session to be recorded');
    expect((await h.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice })).status).toBe(204);
    const ended = await session;
    expect(ended.code).not.toBe(0);
    await until(async () => (await sshEvents(runId)).some((e) => e.type === 'SshSessionClosed'), 'the close to be recorded');
    const closed = (await sshEvents(runId)).find((e) => e.type === 'SshSessionClosed');
    expect(closed).toMatchObject({ actor: 'alice', data: { reason: expect.stringMatching(/revoked/) } });
  }, 60_000);
});

describe('SSH frames on a host connection', () => {
  it('an agent frame for a tunnel the platform never opened is refused as foreign-run', () => {
    const refusals: string[] = [];
    const sent: string[] = [];
    let deliver: (data: unknown) => void = () => undefined;
    const socket: ChannelSocket = { on: (_event, listener) => (deliver = listener), send: (raw) => sent.push(raw), close: () => undefined, terminate: () => undefined };
    const connection = new HostConnection('ws-1', 'host-1', socket, (refusal) => refusals.push(`${refusal.messageType}:${refusal.reason}`));
    const session = (JSON.parse(sent[0] ?? '{}') as { session: string }).session;
    const frame = (seq: number, body: unknown): string => JSON.stringify({ v: 1, hostId: 'host-1', workspaceId: 'ws-1', session, seq, body });
    deliver(frame(1, { kind: 'ready', capabilities: { isolated: true } }));
    void connection.request({ op: 'create', requestId: 'r1', runId: 'run-1', sandboxId: 'sb-1', files: {} }).catch(() => undefined);
    const heard: Buffer[] = [];
    connection.openSshTunnel('run-1', 'sb-1', { data: (bytes) => heard.push(bytes), closed: () => undefined });
    const tunnelId = (JSON.parse(sent.at(-1) ?? '{}') as { body: { tunnelId: string } }).body.tunnelId;
    deliver(frame(2, { kind: 'sshData', runId: 'run-1', tunnelId: 'not-a-tunnel', data: 'AAAA' }));
    deliver(frame(3, { kind: 'sshData', runId: 'run-2', tunnelId, data: 'AAAA' }));
    deliver(frame(4, { kind: 'sshData', runId: 'run-1', tunnelId, data: Buffer.from('SSH-2.0-x').toString('base64') }));
    deliver(frame(5, { kind: 'sshData', runId: 'run-1', tunnelId, data: 'A'.repeat(64 * 1024) }));
    expect(refusals).toEqual(['sshData:foreign-run', 'sshData:foreign-run', 'sshData:malformed']);
    expect(Buffer.concat(heard).toString()).toBe('SSH-2.0-x');
    // A tunnel into a run this host was never given is not even asked for.
    let closedReason = '';
    connection.openSshTunnel('run-9', 'sb-9', { data: () => undefined, closed: (reason) => (closedReason = reason) });
    expect(closedReason).toMatch(/no sandbox/);
    connection.cutOff('test over');
  });
});
