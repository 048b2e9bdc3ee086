import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunEvent } from '../../domain/run';
import { cancelRun, requestRun } from '../../domain/services/runs';
import type { RunStores } from '../../domain/services/runPorts';
import { runStreamId } from '../../domain/streams';
import type { TableGatewayBearers } from '../../infra/gateway/tableGatewayBearers';
import { leftoverRemover } from '../../infra/runs/leftoverSandboxes';
import type { RunRuntime } from '../../domain/services/runContext';
import { aRunRuntime, runStoresOnAzurite } from '../support/runRuntime';
import { install, mcp, seed, turn } from '../../domain/services/runSteps';
import { finish, interrupt, teardown } from '../../domain/services/runTeardown';
import { LocalProcessSandboxHost } from '../../infra/sandbox/localProcessSandboxHost';
import { activityHandler } from '../../functions/runLifecycle.activities';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';
import { processesHolding } from '../support/processLeaks';

const VALUES = { TRACKER_KEY: 'trk-steps-tracker-key-0123456789', OPENAI_API_KEY: 'sk-steps-model-key-0123456789ab' };
const caller = { actor: 'alice', correlationId: 'steps-test' };
const dirs: string[] = [];
let h: ApiHarness;
let stores: RunStores;
let bearers: TableGatewayBearers;
let ws: string;

async function aRuntime(isolation: 'auto' | 'off' = 'auto'): Promise<RunRuntime & { host: LocalProcessSandboxHost; roots: { sandboxRoot: string; credentialRoot: string } }> {
  const sandboxRoot = mkdtempSync(path.join(tmpdir(), 'dp-steps-'));
  const credentialRoot = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'dp-steps-cred-'));
  dirs.push(sandboxRoot, credentialRoot);
  const host = await LocalProcessSandboxHost.open({ root: sandboxRoot, credentialRoot, isolation, warn: () => undefined });
  return { ...aRunRuntime({ deps: h.deps, stores, host, bearers, removeLeftovers: leftoverRemover({ sandboxRoot, credentialRoot }) }), roots: { sandboxRoot, credentialRoot } };
}

async function aRun(spec: Record<string, unknown> = {}): Promise<string> {
  const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, caller, {
    workspaceId: ws,
    spec: {
      template: { files: { 'mcp.js': 'console.log("up"); setInterval(() => {}, 1000);' } },
      mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
      turns: [{ command: ['node', '-e', 'console.log(process.env.OPENAI_API_KEY)'], modelKey: 'OPENAI_API_KEY' }],
      deadlineSeconds: 120,
      ...spec,
    },
  });
  return runId;
}

async function eventsOf(runId: string): Promise<readonly RunEvent[]> {
  return (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
}

beforeAll(async () => {
  h = await createApiHarness();
  ({ stores, bearers } = await runStoresOnAzurite());
  const token = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token, body: { name: 'Steps' } })).json as { id: string }).id;
  const uses: Record<keyof typeof VALUES, Record<string, string>> = { TRACKER_KEY: { mcp: 'members' }, OPENAI_API_KEY: { model: 'members' } };
  for (const [name, value] of Object.entries(VALUES))
    await h.call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { token, body: { value, uses: uses[name as keyof typeof VALUES] } });
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('run steps on a real sandbox host', () => {
  it('a step on an instance that does not hold the sandbox fails "sandbox lost"; teardown there removes the leftovers', async () => {
    const first = await aRuntime();
    const runId = await aRun();
    expect(await seed(first, ws, runId)).toMatchObject({ ok: true, turns: 1 });
    expect(await install(first, ws, runId)).toEqual({ ok: true });
    expect(await mcp(first, ws, runId)).toEqual({ ok: true });
    const sandbox = first.sandboxes.get(runId)!;
    const credentialDir = path.join(first.roots.credentialRoot, sandbox.handle.sandboxId);
    expect(existsSync(credentialDir)).toBe(true);

    // Another instance (what a restarted host is) runs the next step: it has no such sandbox.
    const second: RunRuntime = { ...(await aRuntime()), removeLeftovers: first.removeLeftovers };
    expect(await turn(second, ws, runId, 1)).toEqual({ ok: false, reason: expect.stringMatching(/sandbox lost/) });
    await first.host.teardown(sandbox.handle); // the first instance "dies": its processes go, its disk stays
    // What a killed host leaves behind: its credential directory with a delivery still in it.
    mkdirSync(path.join(credentialDir, 'p3'), { recursive: true });
    writeFileSync(path.join(credentialDir, 'p3', 'secret-leftover'), 'x', { mode: 0o600 });
    expect(await teardown(second, ws, runId)).toEqual({ ok: true });
    expect(existsSync(credentialDir)).toBe(false);
    expect(await finish(second, ws, runId)).toEqual({ status: 'Failed' });

    const events = await eventsOf(runId);
    const granted = events.filter((e) => e.type === 'LeaseGranted').map((e) => (e.type === 'LeaseGranted' ? e.data.leaseId : ''));
    const ended = new Set(events.flatMap((e) => (e.type === 'LeaseReleased' || e.type === 'LeaseExpired' ? [e.data.leaseId] : [])));
    expect(granted).toHaveLength(1); // the MCP server's
    expect(granted.every((id) => ended.has(id))).toBe(true);
    expect(events.filter((e) => e.type === 'SandboxTornDown')).toHaveLength(1);
  });

  it('teardown and finish repeated (a replay after a crash) record nothing twice', async () => {
    const runtime = await aRuntime();
    const runId = await aRun();
    await seed(runtime, ws, runId);
    await install(runtime, ws, runId);
    await mcp(runtime, ws, runId);
    expect(await turn(runtime, ws, runId, 1)).toEqual({ ok: true });
    for (let i = 0; i < 3; i++) expect(await teardown(runtime, ws, runId)).toEqual({ ok: true });
    for (let i = 0; i < 2; i++) expect(await finish(runtime, ws, runId)).toEqual({ status: 'Completed' });
    const types = (await eventsOf(runId)).map((e) => e.type);
    expect(types.filter((t) => t === 'SandboxTornDown')).toHaveLength(1);
    expect(types.filter((t) => t === 'PhaseStarted')).toHaveLength(5);
    expect(types.filter((t) => t === 'RunCompleted')).toHaveLength(1);
    for (const value of Object.values(VALUES)) expect(processesHolding(value)).toEqual([]);
    expect(await stores.transcripts.read(ws, runId)).toContain('[REDACTED:OPENAI_API_KEY]');
  });

  it('every lease is decided again: a use the owner withdrew after the request fails the step, naming secret and use, and grants nothing', async () => {
    const token = await h.issuer.token('alice');
    const setRecheck = (uses: Record<string, string>) =>
      h.call('PUT', `/api/workspaces/${ws}/secrets/RECHECK_KEY`, { token, body: { value: 'recheck-key-value-0123456789', uses } });
    expect((await setRecheck({ mcp: 'members' })).status).toBeLessThan(300);
    const runtime = await aRuntime();
    const runId = await aRun({ mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'RECHECK_KEY', use: 'env', as: 'RECHECK_KEY' }] }] });
    expect((await setRecheck({ git: 'members' })).status).toBe(200);
    try {
      expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true });
      expect(await install(runtime, ws, runId)).toEqual({ ok: true });
      const refused = await mcp(runtime, ws, runId);
      expect(refused).toEqual({ ok: false, reason: expect.stringMatching(/mcp:issues\.secrets\[0\]: secret RECHECK_KEY does not allow use "mcp"/) });
      expect((await eventsOf(runId)).filter((e) => e.type === 'LeaseGranted')).toEqual([]);
    } finally {
      await teardown(runtime, ws, runId);
    }
  });

  it('a host that cannot isolate makes every run record IsolationDegraded with the reason', async () => {
    const runtime = await aRuntime('off');
    const runId = await aRun();
    expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true });
    await teardown(runtime, ws, runId);
    const degraded = (await eventsOf(runId)).find((e) => e.type === 'IsolationDegraded');
    expect(degraded?.data).toEqual({ reason: 'isolation turned off by configuration' });
  });

  it('a cancelled run starts no further step and no sandbox', async () => {
    const runtime = await aRuntime();
    const runId = await aRun();
    await cancelRun(h.deps, { start: async () => undefined, raiseCancel: async () => undefined }, caller, { workspaceId: ws, runId });
    expect(await seed(runtime, ws, runId)).toEqual({ ok: false, reason: 'cancelled' });
    expect(runtime.sandboxes.get(runId)).toBeUndefined();
    await teardown(runtime, ws, runId);
    expect(await finish(runtime, ws, runId)).toEqual({ status: 'Cancelled' });
  });

  it('a turn killed by the deadline fails "deadline exceeded" even when the kill reaches it before the interrupt records it', async () => {
    const runtime = await aRuntime();
    const runId = await aRun({ turns: [{ command: ['node', '-e', 'setTimeout(() => {}, 60000)'], modelKey: 'OPENAI_API_KEY' }] });
    await seed(runtime, ws, runId);
    await install(runtime, ws, runId);
    await mcp(runtime, ws, runId);
    const running = turn(runtime, ws, runId, 1);
    await vi.waitFor(() => expect(processesHolding(VALUES.OPENAI_API_KEY)).not.toEqual([]), { timeout: 20_000, interval: 50 });
    // The deadline's interrupt kills first and records after: the killed step may record its failure in between.
    runtime.aborts.abort(runId, 'deadline exceeded');
    expect(await running).toEqual({ ok: false, reason: 'deadline exceeded' });
    await interrupt(runtime, ws, runId, 'deadline exceeded');
    await teardown(runtime, ws, runId);
    expect(await finish(runtime, ws, runId)).toEqual({ status: 'Failed' });
    const events = await eventsOf(runId);
    expect(events.find((e) => e.type === 'PhaseFailed')?.data).toMatchObject({ phase: 'turn', reason: 'deadline exceeded' });
    expect(events.find((e) => e.type === 'RunFailed')?.data).toEqual({ reason: 'deadline exceeded' });
  }, 60_000);

  it('a cancel that lands inside a turn, before its model key is leased, fails the turn "cancelled" as the interrupt would', async () => {
    const runtime = await aRuntime();
    const runId = await aRun();
    await seed(runtime, ws, runId);
    await install(runtime, ws, runId);
    await mcp(runtime, ws, runId);
    // The cancel is recorded after the turn started and its bearer was minted, before the lease is granted;
    // the raise that would abort this instance has not arrived yet (another instance took the request).
    const mint = runtime.bearers.mint.bind(runtime.bearers);
    const racing: RunRuntime = {
      ...runtime,
      bearers: Object.assign(Object.create(runtime.bearers) as typeof runtime.bearers, {
        mint: async (...args: Parameters<typeof mint>) => {
          const bearer = await mint(...args);
          await cancelRun(h.deps, { start: async () => undefined, raiseCancel: async () => undefined }, caller, { workspaceId: ws, runId });
          return bearer;
        },
      }),
    };
    expect(await turn(racing, ws, runId, 1)).toEqual({ ok: false, reason: 'cancelled' });
    const failed = (await eventsOf(runId)).find((e) => e.type === 'PhaseFailed');
    expect(failed?.data).toMatchObject({ phase: 'turn', reason: 'cancelled' });
    await teardown(runtime, ws, runId);
    expect(await finish(runtime, ws, runId)).toEqual({ status: 'Cancelled' });
    for (const value of Object.values(VALUES)) expect(processesHolding(value)).toEqual([]);
  });
});

describe('activity errors', () => {
  it('carry the class and code of an unexpected error, never its message (which may quote a value)', async () => {
    const handler = activityHandler('probe', z.object({ runId: z.string() }), async () => {
      const error = Object.assign(new Error(`request body was {"value":"${VALUES.TRACKER_KEY}"}`), { name: 'RestError', code: 'InvalidInput' });
      throw error;
    }, async () => ({}) as RunRuntime);
    const failure = await handler({ runId: 'x' }).catch((e: unknown) => e as Error);
    expect(failure.message).toBe('probe failed: RestError (InvalidInput)');
    await expect(handler({ nope: 1 })).rejects.toThrow('probe: invalid input');
  });
});
