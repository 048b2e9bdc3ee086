import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandResult, RunningCommand, SandboxHandle, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../../domain/redaction';
import { sandboxHostStreamId } from '../../../../domain/streams';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { type ApiHarness, createApiHarness } from '../../../support/apiHarness';
import { spawnHostAgent } from '../../../support/remoteHostBackend';
import { openWebPubSubChannel } from '../../../support/webPubSubChannel';
import { processesHolding } from '../../../support/processLeaks';

/**
 * The remote host's `locate` and `release` over Web PubSub: two app instances sharing only the session table (each
 * with its own RemoteSandboxHost), real agent processes on the wire-format fake. B finds the sandbox A made by its
 * run id, shares it while A's credential process runs, then takes it over (mirrors remoteSandboxHost.adopt.test.ts,
 * which runs over the local channel).
 */
const SECRET = `adopt-wps-lease-${randomUUID()}`;
const A = 0;
const B = 1;
const dir = mkdtempSync(path.join(tmpdir(), 'dp-remote-adopt-wps-'));
let h: ApiHarness;
let opened: Awaited<ReturnType<typeof openWebPubSubChannel>>;
let alice: string;
let ws: string;
let otherWs: string;
let hostId: string;
const agents: ChildProcess[] = [];

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function enrolAgent(workspaceId: string, name: string): Promise<string> {
  const answer = await h.call('POST', `/api/workspaces/${workspaceId}/hosts`, { token: alice, body: { name } });
  expect(answer.status).toBe(201);
  const { enrolmentToken, hostId: enrolled } = answer.json as { enrolmentToken: string; hostId: string };
  agents.push(spawnHostAgent({
    platform: opened.platformUrl, caFile: opened.tls.certFile, token: enrolmentToken, state: path.join(dir, `${name}.json`), args: ['--isolation', 'off', '--channel', 'web-pubsub'],
  }));
  await until(() => opened.instances.every((instance) => instance.liveHosts(workspaceId).length === 1), `the agent of ${name} to be live on every instance`, 90_000);
  return enrolled;
}

const secrets = [{ name: 'API_TOKEN', value: SECRET }];
const served = (): Pick<SandboxRequest, 'redactor' | 'guard' | 'env'> => ({
  redactor: createRedactor(secrets), guard: { secretNames: ['API_TOKEN'], managedValues: secrets }, env: { STANDING: 'standing' },
});

/** Every process whose environment holds the lease's value. */
const holdersOfSecret = () => processesHolding(SECRET).filter((p) => p.where === 'environ');

function opsSentTo(workspaceId: string): string[] {
  return opened.frames().filter((f) => f.direction === 'to-host').map((f) => JSON.parse(f.raw) as { workspaceId: string; body: { op: string } }).filter((f) => f.workspaceId === workspaceId).map((f) => f.body.op);
}

async function refusalsOf(workspaceId: string, host: string): Promise<Record<string, unknown>[]> {
  return (await h.store.readStream(workspaceId, sandboxHostStreamId(workspaceId, host))).events.filter((e) => e.type === 'HostMessageRefused').map((e) => e.data as Record<string, unknown>);
}

beforeAll(async () => {
  h = await createApiHarness();
  alice = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Acme' } })).json as { id: string }).id;
  otherWs = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Other' } })).json as { id: string }).id;
  opened = await openWebPubSubChannel(h.deps, dir, { instances: 2 });
  hostChannelControl.set(opened.instances[A]);
  hostId = await enrolAgent(ws, 'acme-box');
  await enrolAgent(otherWs, 'other-box');
}, 240_000);

afterAll(async () => {
  for (const agent of agents) if (agent.exitCode === null) agent.kill('SIGKILL');
  hostChannelControl.set(undefined);
  await opened?.close();
});

describe('over Web PubSub, a remote sandbox outlives the app instance that made it', () => {
  let a: RemoteSandboxHost;
  let b: RemoteSandboxHost;
  let handle: SandboxHandle;
  let leased: RunningCommand;
  const runId = `run-${randomUUID()}`;

  it('B (another instance) finds the sandbox A made, only on hosts of the run’s workspace, and shares it while A’s leased process runs', async () => {
    a = new RemoteSandboxHost(opened.instances[A]!);
    b = new RemoteSandboxHost(opened.instances[B]!);
    handle = await a.create({ runId, files: { 'hello.txt': 'hello\n' }, ...served(), placement: { workspaceId: ws } });
    leased = await a.start(handle, {
      argv: ['sh', '-c', 'echo leased-started; exec sleep 600'], identity: 'credential',
      credentials: async () => [{ env: { API_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
    });
    let leasedEnded: CommandResult | undefined;
    void leased.exited.then((result) => (leasedEnded = result));
    await until(() => holdersOfSecret().length > 0, 'the leased process to run');

    expect(await b.find(runId)).toBeUndefined();
    expect(await b.find(`run-${randomUUID()}`, ws)).toBeUndefined();
    const found = await b.find(runId, ws);
    expect(found).toEqual({ sandboxId: handle.sandboxId, runId, workspace: handle.workspace, isolated: handle.isolated, hostId: handle.hostId });
    const shared = await b.share(found!, served());
    const written = await b.exec(shared.handle, { argv: ['sh', '-c', 'echo from-b > b.txt; cat hello.txt; echo "$STANDING"'], identity: 'agent' });
    expect(written).toMatchObject({ exitCode: 0, stdout: 'hello\nstanding\n' });
    expect((await a.exec(handle, { argv: ['cat', 'b.txt'], identity: 'agent' })).stdout).toBe('from-b\n');
    expect(leasedEnded).toBeUndefined();
    expect(holdersOfSecret().length).toBeGreaterThan(0);
    await shared.leave();
    await expect(b.exec(shared.handle, { argv: ['true'], identity: 'agent' })).rejects.toMatchObject({ code: 'SANDBOX.GONE' });
  }, 180_000);

  it('B takes the sandbox over (`release`): the agent stops A’s credential process, no process holds its value, B serves it', async () => {
    const found = await b.find(runId, ws);
    expect(found?.sandboxId).toBe(handle.sandboxId);
    const adopted = await b.adopt(found!, served());
    await until(() => holdersOfSecret().length === 0, 'no process to hold the lease value');
    expect((await leased.exited).exitCode).not.toBe(0);
    expect((await b.exec(adopted, { argv: ['cat', 'b.txt'], identity: 'agent' })).stdout).toBe('from-b\n');
    expect(opsSentTo(ws)).toContain('release');
    await b.teardown(adopted);
    expect(await a.find(runId, ws)).toBeUndefined();
  }, 180_000);

  it('the agent refuses to release a sandbox for another run, recorded on the host; the other workspace’s host only got a locate', async () => {
    const [connection] = opened.instances[B]!.liveHosts(ws);
    const other = await a.create({ runId: `run-${randomUUID()}`, files: {}, ...served(), placement: { workspaceId: ws } });
    const foreignRun = `run-${randomUUID()}`;
    await expect(connection!.request({ op: 'release', requestId: randomUUID(), runId: foreignRun, sandboxId: other.sandboxId })).rejects.toMatchObject({ code: 'HOST.FOREIGN_RUN' });
    await until(async () => (await refusalsOf(ws, hostId)).some((r) => r.runId === foreignRun), 'the refusal to be recorded');
    expect((await refusalsOf(ws, hostId)).filter((r) => r.runId === foreignRun)).toEqual([{ hostId, reason: 'foreign-run', messageType: 'release', runId: foreignRun }]);
    await expect(b.adopt({ ...other, runId: `run-${randomUUID()}` }, served())).rejects.toMatchObject({ code: 'SANDBOX.GONE' });
    await a.teardown(other);
    expect(opsSentTo(otherWs).filter((op) => op !== 'session')).toEqual([]);
    expect(await b.find(runId, otherWs)).toBeUndefined();
    expect(opsSentTo(otherWs).filter((op) => op !== 'session')).toEqual(['locate']);
  }, 120_000);
});
