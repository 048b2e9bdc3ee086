import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_ERROR } from '../../../../domain/catalogue';
import { createRedactor } from '../../../../domain/redaction';
import type { RunEvent } from '../../../../domain/run';
import type { RunRuntime } from '../../../../domain/services/runContext';
import type { RunStores } from '../../../../domain/services/runPorts';
import { reattachSandbox } from '../../../../domain/services/recoveredSandbox';
import { requestRun } from '../../../../domain/services/runs';
import { install, mcp, seed, turn } from '../../../../domain/services/runSteps';
import { finish, teardown } from '../../../../domain/services/runTeardown';
import { runStreamId, sandboxHostStreamId } from '../../../../domain/streams';
import type { RunSpec } from '../../../../domain/runSpec';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import type { TableGatewayBearers } from '../../../../infra/gateway/tableGatewayBearers';
import { CHANNEL_PATH, ChannelSequence, type PlatformBody, platformFrame } from '../../../../infra/sandbox/remote/protocol';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { leftoverRemoval } from '../../../../infra/runs/leftoverSandboxes';
import { aRunRuntime, runStoresOnAzurite } from '../../../support/runRuntime';
import { type RemoteChannelHarness, startRemoteChannelHarness, until } from '../../../support/remoteChannelHarness';
import { processesHolding } from '../../../support/processLeaks';

/**
 * Who may find, take over and tear down a run's sandbox on a host agent, from an app instance that did not make
 * it (docs/sandbox-hosts.md "Any instance"). A hostile host of the same workspace (a raw channel client speaking
 * the protocol) claims other hosts' sandboxes; real agents hold the genuine ones.
 */
const caller = { actor: 'alice', correlationId: 'remote-takeover-test' };
const TRACKER_KEY = `trk-takeover-${randomUUID()}`;

let backend: RemoteChannelHarness;
let stores: RunStores;
let bearers: TableGatewayBearers;
let ws: string;
/** The genuine host (a real agent process) every sandbox of this file lands on. */
let genuine: string;
let hostile: HostileHost;

interface HostileHost {
  readonly hostId: string;
  /** What the platform sent it, in order. */
  readonly received: PlatformBody[];
  /** The sandbox id it claims to hold for a run when asked `locate` (a member can read it from the run's events). */
  readonly claims: Map<string, string>;
  close(): void;
}

/**
 * An enrolled host of the workspace whose agent is hostile: it refuses every placement (so the genuine host gets
 * the sandboxes), answers `locate` with whatever sandbox id it chose, and accepts whatever else it is sent.
 */
async function startHostileHost(workspaceId: string): Promise<HostileHost> {
  const { hostId, enrolmentToken } = await backend.enrol(workspaceId, 'hostile-box');
  const { credential } = await hostChannelAuthority(backend.h.deps).enrol(enrolmentToken);
  const socket = new WebSocket(backend.channel.url.replace('https', 'wss') + CHANNEL_PATH, { ca: backend.tls.cert, headers: { authorization: `Bearer ${credential}` } });
  const received: PlatformBody[] = [];
  const claims = new Map<string, string>();
  let sequence: ChannelSequence | undefined;
  socket.on('message', (data) => {
    const raw = String(data);
    const reply = (body: unknown): void => socket.send(JSON.stringify(sequence!.stamp(body)));
    if (!sequence) {
      sequence = new ChannelSequence({ hostId, workspaceId, session: (JSON.parse(raw) as { session: string }).session });
      sequence.admit(platformFrame, raw);
      return reply({ kind: 'ready', capabilities: { isolated: true } });
    }
    const admitted = sequence.admit(platformFrame, raw);
    if (!admitted.ok) return;
    const body = admitted.frame.body;
    received.push(body);
    switch (body.op) {
      case 'create':
        return reply({ kind: 'failed', requestId: body.requestId, runId: body.runId, code: HOST_ERROR.AT_CAPACITY, message: 'full', errorKind: 'unavailable' });
      case 'locate': {
        const sandboxId = claims.get(body.runId);
        return reply({ kind: 'located', requestId: body.requestId, runId: body.runId, ...(sandboxId ? { sandbox: { sandboxId, workspace: '/workspace', isolated: true } } : {}) });
      }
      case 'exec':
        reply({ kind: 'started', requestId: body.requestId, runId: body.runId, execId: body.execId, pid: 4242 });
        return reply({ kind: 'exited', runId: body.runId, execId: body.execId, result: { exitCode: 0, signal: null, stdout: 'served by the hostile host\n', stderr: '', truncated: false, timedOut: false, cancelled: false } });
      default:
        if ('requestId' in body) reply({ kind: 'done', requestId: body.requestId, ...('runId' in body ? { runId: body.runId } : {}) });
    }
  });
  await until(() => backend.channel.liveHosts(workspaceId).some((c) => c.hostId === hostId), 'the hostile host to be live');
  return { hostId, received, claims, close: () => socket.close() };
}

/** An app instance's run runtime, as the composition root builds it (teardown's leftovers go through the host). */
function aRuntime(): RunRuntime & { host: RemoteSandboxHost } {
  const host = new RemoteSandboxHost(backend.channel);
  return aRunRuntime({ deps: backend.h.deps, stores, host, bearers, removeLeftovers: leftoverRemoval(host, { sandboxRoot: backend.dir, credentialRoot: backend.dir }) });
}

/** Every process whose environment holds `value`. */
const holdersOf = (value: string) => processesHolding(value).filter((p) => p.where === 'environ');

/** What the genuine host's agent says it holds. */
async function listedOnGenuine(): Promise<{ sandboxId: string; runId: string }[]> {
  const connection = backend.channel.liveHosts(ws).find((c) => c.hostId === genuine)!;
  const reply = await connection.request({ op: 'list', requestId: randomUUID() });
  return reply.kind === 'listed' ? reply.sandboxes : [];
}

async function runEvents(runId: string): Promise<readonly RunEvent[]> {
  return (await backend.h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
}

async function requested(spec: RunSpec): Promise<string> {
  return (await requestRun(backend.h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, caller, { workspaceId: ws, spec })).runId;
}

/** The ops the platform sent to the hostile host for one run. */
function opsToHostile(runId: string): string[] {
  return hostile.received.filter((b) => 'runId' in b && b.runId === runId).map((b) => b.op);
}

async function refusalsOf(hostId: string): Promise<{ reason: string; messageType: string; runId?: string }[]> {
  const events = (await backend.h.store.readStream(ws, sandboxHostStreamId(ws, hostId))).events;
  return events.filter((e) => e.type === 'HostMessageRefused').map((e) => e.data as { reason: string; messageType: string; runId?: string });
}

beforeAll(async () => {
  backend = await startRemoteChannelHarness();
  ({ stores, bearers } = await runStoresOnAzurite());
  ws = await backend.createWorkspace('Acme');
  const put = await backend.h.call('PUT', `/api/workspaces/${ws}/secrets/TRACKER_KEY`, { token: backend.owner, body: { value: TRACKER_KEY, uses: { mcp: 'members' } } });
  expect(put.status, put.text).toBeLessThan(300);
  // The hostile host connects first: every host list of the workspace names it before the genuine one.
  hostile = await startHostileHost(ws);
  ({ hostId: genuine } = await backend.enrolAgent(ws, 'acme-box'));
  expect(backend.channel.liveHosts(ws).map((c) => c.hostId)).toEqual([hostile.hostId, genuine]);
}, 240_000);

afterAll(async () => {
  hostile?.close();
  await backend?.close();
});

describe('F2: another host of the workspace cannot answer for a run’s sandbox', () => {
  it('SandboxLaunched records the placing host; a turn on another instance asks only that host, though another claims the sandbox', async () => {
    const runId = await requested({ template: { files: { 'hello.txt': 'hello\n' } }, turns: [{ command: ['sh', '-c', 'cat hello.txt; echo turned > turned.txt'] }], deadlineSeconds: 120 });
    const a = aRuntime();
    expect(await seed(a, ws, runId)).toMatchObject({ ok: true });
    expect(await install(a, ws, runId)).toEqual({ ok: true });
    expect(await mcp(a, ws, runId)).toEqual({ ok: true });
    const launched = (await runEvents(runId)).find((e) => e.type === 'SandboxLaunched');
    expect(launched?.data).toMatchObject({ hostId: genuine });
    const sandboxId = (launched?.data as { sandboxId: string }).sandboxId;
    // The hostile host read the sandbox id from the run and claims it.
    hostile.claims.set(runId, sandboxId);

    const b = aRuntime();
    expect(await turn(b, ws, runId, 1)).toEqual({ ok: true });
    expect(b.sandboxes.get(runId)?.handle).toMatchObject({ sandboxId, hostId: genuine });
    expect(await stores.transcripts.read(ws, runId)).toContain('hello\n');
    // It was offered the placement (and refused it); it was never asked for, released or given the run's sandbox.
    expect(opsToHostile(runId)).toEqual(['create']);
    expect(await teardown(b, ws, runId)).toEqual({ ok: true });
    expect(await finish(b, ws, runId)).toEqual({ status: 'Completed' });
  }, 240_000);

  describe('a run recorded before hosts were (SandboxLaunched without hostId)', () => {
    const runId = `run-${randomUUID()}`;
    let sandboxId: string;
    const legacy = (): { workspaceId: string; runId: string; sandboxId: string } => ({ workspaceId: ws, runId, sandboxId });

    beforeAll(async () => {
      const handle = await new RemoteSandboxHost(backend.channel).create({
        runId, files: { 'hello.txt': 'genuine\n' }, redactor: createRedactor([]),
        guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws },
      });
      expect(handle.hostId).toBe(genuine);
      sandboxId = handle.sandboxId;
    }, 120_000);

    it('a host answering with another sandbox id is refused and recorded, and the genuine host still serves it', async () => {
      hostile.claims.set(runId, `forged-${randomUUID()}`);
      const shared = await reattachSandbox(backend.h.deps, new RemoteSandboxHost(backend.channel), legacy(), { mode: 'share' });
      expect(shared).toMatchObject({ ok: true });
      if (!shared.ok) return;
      expect(shared.sandbox.handle.hostId).toBe(genuine);
      expect((await new RemoteSandboxHost(backend.channel).find(runId, ws, { sandboxId }))?.hostId).toBe(genuine);
      await shared.sandbox.leave();
      expect(opsToHostile(runId).every((op) => op === 'create' || op === 'locate')).toBe(true);
      await until(async () => (await refusalsOf(hostile.hostId)).some((r) => r.runId === runId), 'the forged answer to be recorded');
      expect((await refusalsOf(hostile.hostId)).filter((r) => r.runId === runId)[0]).toMatchObject({ hostId: hostile.hostId, reason: 'foreign-sandbox', messageType: 'located', runId });
    }, 120_000);

    it('a host claiming the very sandbox the events name makes the take-over fail closed: nothing is released or run anywhere', async () => {
      hostile.claims.set(runId, sandboxId);
      let beforeTakeOver = 0;
      const taken = await reattachSandbox(backend.h.deps, new RemoteSandboxHost(backend.channel), legacy(), { mode: 'take-over', beforeTakeOver: async () => (beforeTakeOver += 1) });
      expect(taken).toMatchObject({ ok: false });
      expect(beforeTakeOver).toBe(0);
      expect(opsToHostile(runId).every((op) => op === 'create' || op === 'locate')).toBe(true);
      const sentToGenuine = backend.frames.filter((f) => f.direction === 'to-host').map((f) => JSON.parse(f.raw) as { hostId: string; body: PlatformBody }).filter((f) => f.hostId === genuine && 'runId' in f.body && f.body.runId === runId).map((f) => f.body.op);
      expect(sentToGenuine).not.toContain('release');
    }, 120_000);
  });
});

describe('F3: teardown on an instance that does not hold the run’s sandbox', () => {
  it('tears it down on the host agent: it leaves the agent’s list and its MCP server, holding a lease, is gone', async () => {
    const runId = await requested({
      template: { files: { 'mcp.js': 'console.log("up"); setInterval(() => {}, 1000);' } },
      mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
      turns: [{ command: ['true'] }],
      deadlineSeconds: 120,
    });
    const a = aRuntime();
    expect(await seed(a, ws, runId)).toMatchObject({ ok: true });
    expect(await install(a, ws, runId)).toEqual({ ok: true });
    expect(await mcp(a, ws, runId)).toEqual({ ok: true });
    const sandboxId = a.sandboxes.get(runId)!.handle.sandboxId;
    // The positive control: the MCP server holds its lease's value while the sandbox lives.
    await until(() => holdersOf(TRACKER_KEY).length > 0, 'the MCP server to hold its lease');
    expect(await listedOnGenuine()).toContainEqual({ sandboxId, runId });

    // Instance A is gone (scale-in, restart); the orchestration's teardown lands on C, which never held it.
    const c = aRuntime();
    expect(await teardown(c, ws, runId)).toEqual({ ok: true });
    expect(await listedOnGenuine()).not.toContainEqual({ sandboxId, runId });
    await until(() => holdersOf(TRACKER_KEY).length === 0, 'no process to hold the MCP server’s lease value');
    expect((await runEvents(runId)).filter((e) => e.type === 'SandboxTornDown')).toHaveLength(1);
    expect(opsToHostile(runId)).toEqual(['create']);
    expect(await finish(c, ws, runId)).toEqual({ status: 'Completed' });
  }, 240_000);

  it('the sweep removes the sandboxes of runs that are over from host agents, and only those', async () => {
    const maker = new RemoteSandboxHost(backend.channel);
    const request = (runId: string) => ({ runId, files: {}, redactor: createRedactor([]), guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws } });
    const over = await maker.create(request(`run-${randomUUID()}`));
    const going = await maker.create(request(`run-${randomUUID()}`));
    const sweeper = new RemoteSandboxHost(backend.channel);
    expect(await sweeper.removeOrphans(async (runId) => runId === over.runId)).toBe(1);
    const listed = await listedOnGenuine();
    expect(listed).not.toContainEqual({ sandboxId: over.sandboxId, runId: over.runId });
    expect(listed).toContainEqual({ sandboxId: going.sandboxId, runId: going.runId });
    await maker.teardown(going);
  }, 120_000);
});

describe('F4: a take-over stops every process holding a delivered value, whatever its identity', () => {
  it('a turn (agent identity) holding the model key on a lost instance is stopped before the take-over answers; a process without a delivery goes on', async () => {
    const MODEL_KEY = `sk-takeover-${randomUUID()}`;
    const MARKER = `no-delivery-${randomUUID()}`;
    const secrets = [{ name: 'OPENAI_API_KEY', value: MODEL_KEY }];
    const served = () => ({ redactor: createRedactor(secrets), guard: { secretNames: ['OPENAI_API_KEY'], managedValues: secrets } });
    const runId = `run-${randomUUID()}`;
    const a = new RemoteSandboxHost(backend.channel);
    const handle = await a.create({ runId, files: {}, ...served(), placement: { workspaceId: ws } });
    // What a turn is: the agent identity, with the model key delivered to it.
    const turnOnA = await a.start(handle, {
      argv: ['sh', '-c', 'exec sleep 600'], identity: 'agent',
      credentials: async () => [{ env: { OPENAI_API_KEY: MODEL_KEY }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
    });
    const plain = await a.start(handle, { argv: ['sh', '-c', 'exec sleep 600'], identity: 'agent', env: { MARKER } });
    await until(() => holdersOf(MODEL_KEY).length > 0 && holdersOf(MARKER).length > 0, 'both processes to run');

    // Instance A is gone without a teardown; B takes the sandbox over.
    const b = new RemoteSandboxHost(backend.channel);
    const found = await b.find(runId, ws, { sandboxId: handle.sandboxId, ...(handle.hostId ? { hostId: handle.hostId } : {}) });
    expect(found?.sandboxId).toBe(handle.sandboxId);
    const adopted = await b.adopt(found!, served());
    await until(() => holdersOf(MODEL_KEY).length === 0, 'no process to hold the model key');
    expect((await turnOnA.exited).exitCode).not.toBe(0);
    expect(holdersOf(MARKER).length).toBeGreaterThan(0);
    await b.teardown(adopted);
    await until(() => holdersOf(MARKER).length === 0, 'teardown to stop the rest');
    await plain.exited.catch(() => undefined);
  }, 120_000);
});
