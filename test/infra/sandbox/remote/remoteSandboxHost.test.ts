import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import type { ProcessCredentialDelivery, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { readSandboxHost } from '../../../../domain/services/sandboxHosts';
import { sandboxHostStreamId } from '../../../../domain/streams';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import type { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { CHANNEL_PATH } from '../../../../infra/sandbox/remote/protocol';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { openRemoteSandboxHost } from '../../../../functions/remoteHosts.composition';
import { loadSettings } from '../../../../functions/settings';
import type { ApiHarness } from '../../../support/apiHarness';
import { type RemoteChannelHarness, startRemoteChannelHarness, until } from '../../../support/remoteChannelHarness';

const projectRoot = path.resolve(__dirname, '../../../..');
const SECRET = 'lease-value-Zq8rT2wX9vB4nM7k';
const FILE_SECRET = 'file-lease-Pq3sD6fG1hJ5kL0z';
const STANDING = 'standing-value-not-a-secret';

let backend: RemoteChannelHarness;
let h: ApiHarness;
let channel: HostChannelServer;
let remote: RemoteSandboxHost;
let tls: RemoteChannelHarness['tls'];
let alice: string;
let ws: string;
let otherWs: string;
/** Agents' state files; made at load, since a describe block names them before any hook runs. */
const dir = mkdtempSync(path.join(tmpdir(), 'dp-hostagent-test-'));
let frames: RemoteChannelHarness['frames'];

const enrol = (workspaceId: string, name: string) => backend.enrol(workspaceId, name);
/** Agents this file started, newest last (the harness kills them all at the end). */
const agents: ChildProcess[] = [];
function startAgent(args: { token?: string; state: string }): ChildProcess {
  const agent = backend.startAgent(args);
  agents.push(agent);
  return agent;
}

function request(workspaceId: string, runId: string, extra: Partial<SandboxRequest> = {}): SandboxRequest {
  return {
    runId, files: { 'hello.txt': 'hello from the template' }, env: { STANDING },
    redactor: createRedactor([{ name: 'API_TOKEN', value: SECRET }, { name: 'FILE_TOKEN', value: FILE_SECRET }]),
    guard: { secretNames: ['API_TOKEN', 'FILE_TOKEN'], managedValues: [{ name: 'API_TOKEN', value: SECRET }, { name: 'FILE_TOKEN', value: FILE_SECRET }] },
    placement: { workspaceId }, ...extra,
  };
}

async function refusalsOf(workspaceId: string, hostId: string): Promise<string[]> {
  const stream = await h.store.readStream(workspaceId, sandboxHostStreamId(workspaceId, hostId));
  return stream.events.filter((e) => e.type === 'HostMessageRefused').map((e) => (e.data as { reason: string }).reason);
}

beforeAll(async () => {
  backend = await startRemoteChannelHarness();
  ({ h, channel, tls, frames, owner: alice } = backend);
  ws = await backend.createWorkspace('Acme');
  otherWs = await backend.createWorkspace('Other');
  remote = new RemoteSandboxHost(channel);
}, 60_000);

afterAll(async () => {
  await backend?.close();
});

describe('RemoteSandboxHost through a real host agent over wss://', () => {
  let hostId: string;
  const state = path.join(dir, 'agent1.json');

  it('an owner enrols a host; the agent exchanges its token once, dials out over pinned TLS and runs commands', async () => {
    const enrolment = await enrol(ws, 'build-box');
    hostId = enrolment.hostId;
    startAgent({ token: enrolment.enrolmentToken, state });
    await until(() => channel.liveHosts(ws).length === 1, 'the agent to connect');
    // The token is spent: a second exchange is refused.
    await expect(hostChannelAuthority(h.deps).enrol(enrolment.enrolmentToken)).rejects.toMatchObject({ code: 'HOST.ENROLMENT_INVALID' });
    expect(JSON.parse(readFileSync(state, 'utf8')).credential).toMatch(/^dph_/);

    const listed = await h.call('GET', `/api/workspaces/${ws}/hosts`, { token: alice });
    expect(listed.json).toEqual([expect.objectContaining({ hostId, name: 'build-box', status: 'Enrolled', lastSeenAt: expect.any(String) })]);
    expect(listed.text).not.toMatch(/credentialHash|tokenHash|dph_/);

    const handle = await remote.create(request(ws, 'run-1'));
    const cat = await remote.exec(handle, { argv: ['cat', 'hello.txt'], identity: 'agent' });
    expect(cat).toMatchObject({ exitCode: 0, stdout: 'hello from the template' });
    const standing = await remote.exec(handle, { argv: ['sh', '-c', 'echo "$STANDING"'], identity: 'agent' });
    expect(standing.stdout.trim()).toBe(STANDING);

    // Deliveries reach their one process: env and a file in its own credential directory; output comes back redacted.
    const leased = await remote.exec(handle, {
      argv: ['sh', '-c', 'echo "$API_TOKEN"; cat "$TOKEN_FILE"'], identity: 'credential',
      credentials: async (target): Promise<readonly ProcessCredentialDelivery[]> => {
        const file = path.join(target.credentialDir, 'token');
        writeFileSync(file, FILE_SECRET, { mode: 0o600 });
        return [
          { env: { API_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined },
          { env: { TOKEN_FILE: file }, argsAfterCommand: [], paths: [file], cleanup: async () => undefined },
        ];
      },
    });
    expect(leased.exitCode).toBe(0);
    expect(leased.stdout).not.toContain(SECRET);
    expect(leased.stdout).not.toContain(FILE_SECRET);
    expect(leased.stdout).toMatch(/\[REDACTED:[A-Z_]+\]\n\[REDACTED:[A-Z_]+\]/);
    const after = await remote.exec(handle, { argv: ['sh', '-c', 'echo "${API_TOKEN:-none}"'], identity: 'agent' });
    expect(after.stdout.trim()).toBe('none');

    // A long-lived process stops on request.
    const server = await remote.start(handle, { argv: ['sleep', '30'], identity: 'agent' });
    const stopped = await server.stop();
    expect(stopped.exitCode === 0).toBe(false);
    await remote.teardown(handle);
    await remote.teardown(handle);
  }, 60_000);

  it('an agent that does not pin the platform\'s certificate refuses it (verification is never off) and spends nothing', async () => {
    const enrolment = await enrol(ws, 'unpinned-box');
    const child = spawn(process.execPath, [path.join(projectRoot, 'scripts', 'hostAgent.js'), '--platform', channel.url, '--token', enrolment.enrolmentToken, '--state', path.join(dir, 'unpinned.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stderr.on('data', (d) => (output += String(d)));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(output).toMatch(/self[- ]signed|certificate/i);
    expect((await readSandboxHost(h.store, { workspaceId: ws, hostId: enrolment.hostId })).status).toBe('Offered');
  }, 30_000);

  it('production with SANDBOX_HOST=remote refuses to open without the Web PubSub endpoint, naming it', async () => {
    const settings = { ...loadSettings({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', SANDBOX_HOST: 'remote' }), DISCO_ENV: 'production' as const };
    await expect(openRemoteSandboxHost(settings, h.deps)).rejects.toThrow(/HOST_CHANNEL_PUBSUB_ENDPOINT/);
  });

  it('the guard runs on the platform: a managed value in the standing env never reaches the channel', async () => {
    const before = frames.length;
    await expect(remote.create(request(ws, 'run-guard', { env: { SNEAKY: `x${SECRET}x` } }))).rejects.toMatchObject({ code: 'SANDBOX.LAUNCH_REFUSED' });
    expect(frames.length).toBe(before);
  });

  it('never places a run on another workspace\'s host, and fails clearly when no host of its pool is live', async () => {
    await expect(remote.create(request(otherWs, 'run-other'))).rejects.toMatchObject({ code: 'HOST.NONE_LIVE' });
    await expect(remote.create(request(ws, 'run-managed', { placement: { workspaceId: ws, pool: 'managed' } }))).rejects.toMatchObject({ code: 'HOST.NONE_LIVE', message: /managed pool/ });
  });

  it('no value crosses the channel except a lease delivery inside its own process\'s exec', () => {
    const carrying = frames.filter((f) => f.raw.includes(SECRET) || f.raw.includes(Buffer.from(FILE_SECRET).toString('base64')) || f.raw.includes(FILE_SECRET));
    expect(carrying.length).toBeGreaterThan(0);
    for (const frame of carrying) {
      const body = (JSON.parse(frame.raw) as { body: { op?: string; command?: { deliveries: unknown[] } } }).body;
      expect(frame.direction).toBe('to-host');
      expect(body.op).toBe('exec');
      const withoutDeliveries = JSON.stringify({ ...body, command: { ...body.command, deliveries: [] } });
      expect(withoutDeliveries).not.toContain(SECRET);
      expect(withoutDeliveries).not.toContain(FILE_SECRET);
    }
    expect(frames.filter((f) => f.direction === 'from-host').some((f) => f.raw.includes(SECRET) || f.raw.includes(FILE_SECRET))).toBe(false);
  });

  it('the agent killed mid-run fails that run clearly; restarted with its saved credential it serves again', async () => {
    const handle = await remote.create(request(ws, 'run-killed'));
    const sleeping = remote.exec(handle, { argv: ['sleep', '30'], identity: 'agent' });
    sleeping.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    const agent = agents.at(-1)!;
    agent.kill('SIGKILL');
    await expect(sleeping).rejects.toMatchObject({ code: 'HOST.GONE', message: /disconnected/ });
    await remote.teardown(handle);
    // Killed outright, the agent could not tear its sandbox down: the next agent process removes it as it starts.
    const leftover = path.dirname(handle.workspace);
    expect(existsSync(leftover)).toBe(true);
    const before = (JSON.parse(readFileSync(state, 'utf8')) as { credential: string }).credential;
    startAgent({ state });
    await until(() => channel.liveHosts(ws).length === 1, 'the restarted agent');
    expect(existsSync(leftover)).toBe(false);
    // It rotated its credential as it started: the copy on disk before the restart is dead.
    expect((JSON.parse(readFileSync(state, 'utf8')) as { credential: string }).credential).not.toBe(before);
    await expect(hostChannelAuthority(h.deps).authenticate(before)).rejects.toMatchObject({ code: 'HOST.CREDENTIAL_INVALID' });
    const rotations = (await h.store.readStream(ws, sandboxHostStreamId(ws, hostId))).events.filter((e) => e.type === 'HostCredentialRotated');
    expect(rotations).toHaveLength(1);
    const again = await remote.create(request(ws, 'run-after-restart'));
    expect((await remote.exec(again, { argv: ['echo', 'back'], identity: 'agent' })).stdout.trim()).toBe('back');
    await remote.teardown(again);
  }, 60_000);

  it('forged, replayed, out-of-order, foreign-host, cross-workspace and foreign-run frames are refused and recorded', async () => {
    const mallory = await enrol(otherWs, 'mallory-box');
    const { credential } = await hostChannelAuthority(h.deps).enrol(mallory.enrolmentToken);
    // A forged credential does not even open the channel.
    const forged = new WebSocket(channel.url.replace('https', 'wss') + CHANNEL_PATH, { ca: tls.cert, headers: { authorization: `Bearer ${credential.slice(0, -4)}AAAA` } });
    await expect(new Promise((resolve, reject) => { forged.on('unexpected-response', (_q, res) => resolve(res.statusCode)); forged.on('open', () => reject(new Error('opened'))); })).resolves.toBe(401);

    const socket = new WebSocket(channel.url.replace('https', 'wss') + CHANNEL_PATH, { ca: tls.cert, headers: { authorization: `Bearer ${credential}` } });
    const session = await new Promise<{ session: string }>((resolve) => socket.once('message', (d) => resolve(JSON.parse(String(d)) as { session: string })));
    const frame = (seq: number, body: unknown, over: Record<string, unknown> = {}): string =>
      JSON.stringify({ v: 1, hostId: mallory.hostId, workspaceId: otherWs, session: session.session, seq, body, ...over });
    const ready = frame(1, { kind: 'ready', capabilities: { isolated: true } });
    socket.send(ready);
    await until(() => channel.liveHosts(otherWs).length === 1, 'mallory ready');
    socket.send(ready); // replayed byte for byte
    socket.send(frame(5, { kind: 'heartbeat' })); // skips ahead
    socket.send(frame(2, { kind: 'heartbeat' }, { hostId })); // claims the other host
    socket.send(frame(2, { kind: 'heartbeat' }, { workspaceId: ws })); // claims the other workspace
    socket.send(frame(2, { kind: 'heartbeat' }, { session: 'guessed' }));
    // Claims the exit of a process of a run it was never given (the other workspace's).
    socket.send(frame(2, { kind: 'exited', runId: 'run-1', execId: 'e1', result: { exitCode: 0, signal: null, stdout: 'forged', stderr: '', truncated: false, timedOut: false, cancelled: false } }));
    // Streams output into a process of that run: refused the same way (nothing reaches an onOutput).
    socket.send(frame(3, { kind: 'output', runId: 'run-1', execId: 'e1', stream: 'stdout', text: 'forged output' }));
    socket.send('{not json');
    await until(async () => (await refusalsOf(otherWs, mallory.hostId)).length >= 8, 'the refusals to be recorded');
    expect((await refusalsOf(otherWs, mallory.hostId)).sort()).toEqual(['foreign-host', 'foreign-run', 'foreign-run', 'foreign-session', 'foreign-workspace', 'malformed', 'out-of-order', 'replayed']);
    // Nothing was recorded on the host it pretended to be.
    expect(await refusalsOf(ws, hostId)).toEqual([]);
    socket.close();
  }, 30_000);

  it('a revoked host is cut off at once: its running command fails with the reason, the agent stops, its credential is dead', async () => {
    const handle = await remote.create(request(ws, 'run-revoked'));
    const sleeping = remote.exec(handle, { argv: ['sleep', '30'], identity: 'agent' });
    sleeping.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    const agent = agents.at(-1)!;
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    const revoked = await h.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice });
    expect(revoked.status).toBe(204);
    await expect(sleeping).rejects.toMatchObject({ code: 'HOST.GONE', message: /revoked by alice/ });
    expect(await exited).toBe(3);
    expect(channel.liveHosts(ws)).toEqual([]);
    const credential = (JSON.parse(readFileSync(state, 'utf8')) as { credential: string }).credential;
    await expect(hostChannelAuthority(h.deps).authenticate(credential)).rejects.toMatchObject({ code: 'HOST.REVOKED' });
    expect((await readSandboxHost(h.store, { workspaceId: ws, hostId })).status).toBe('Revoked');
    const listed = await h.call('GET', `/api/workspaces/${ws}/hosts`, { token: alice });
    expect((listed.json as { hostId: string }[]).find((x) => x.hostId === hostId)).toEqual(expect.objectContaining({ status: 'Revoked', revokedReason: 'host revoked by alice' }));
  }, 30_000);
});

