import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import { sandboxHostStreamId } from '../../../../domain/streams';
import type { CommandResult, RunningCommand, SandboxHandle, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import type { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { LaunchRefusedError } from '../../../../infra/sandbox/launchErrors';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { type RemoteChannelHarness, startRemoteChannelHarness, until } from '../../../support/remoteChannelHarness';
import { processesHolding } from '../../../support/processLeaks';

/**
 * Two app instances (two RemoteSandboxHost objects) over one host channel and real host agent processes: a run's
 * sandbox made by one is found by its run id and shared or taken over by the other (issue 16: activities stay
 * stateless, a run's host is in its events).
 */
const SECRET = `adopt-lease-${randomUUID()}`;

let backend: RemoteChannelHarness;
let channel: HostChannelServer;
let ws: string;
let otherWs: string;

const secrets = [{ name: 'API_TOKEN', value: SECRET }];
const served = (): Pick<SandboxRequest, 'redactor' | 'guard' | 'env'> => ({
  redactor: createRedactor(secrets), guard: { secretNames: ['API_TOKEN'], managedValues: secrets }, env: { STANDING: 'standing' },
});

/** Every process whose environment holds the lease's value. */
const holdersOfSecret = () => processesHolding(SECRET).filter((p) => p.where === 'environ');

/** The refusals recorded on a host's stream. */
async function refusalsOf(workspaceId: string, hostId: string): Promise<Record<string, unknown>[]> {
  return (await backend.h.store.readStream(workspaceId, sandboxHostStreamId(workspaceId, hostId))).events.filter((e) => e.type === 'HostMessageRefused').map((e) => e.data as Record<string, unknown>);
}

/** Frames the platform sent to hosts of a workspace, by op. */
function opsSentTo(workspaceId: string): string[] {
  return backend.frames.filter((f) => f.direction === 'to-host').map((f) => JSON.parse(f.raw) as { workspaceId: string; body: { op: string } }).filter((f) => f.workspaceId === workspaceId).map((f) => f.body.op);
}

beforeAll(async () => {
  backend = await startRemoteChannelHarness();
  channel = backend.channel;
  ws = await backend.createWorkspace('Acme');
  otherWs = await backend.createWorkspace('Other');
  await backend.enrolAgent(ws, 'acme-box');
  await backend.enrolAgent(otherWs, 'other-box');
}, 240_000);

afterAll(async () => {
  await backend?.close();
});

describe('a remote sandbox outlives the app instance that made it', () => {
  let a: RemoteSandboxHost;
  let b: RemoteSandboxHost;
  let handle: SandboxHandle;
  let leased: RunningCommand;
  const runId = `run-${randomUUID()}`;

  it('B finds the sandbox A made by its run id, only on hosts of the run’s workspace, and shares it while A’s leased process runs', async () => {
    a = new RemoteSandboxHost(channel);
    b = new RemoteSandboxHost(channel);
    handle = await a.create({ runId, files: { 'hello.txt': 'hello\n' }, ...served(), placement: { workspaceId: ws } });
    leased = await a.start(handle, {
      argv: ['sh', '-c', 'echo leased-started; exec sleep 600'], identity: 'credential',
      credentials: async () => [{ env: { API_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
    });
    let leasedEnded: CommandResult | undefined;
    void leased.exited.then((result) => (leasedEnded = result));
    // The positive control: the lease's value is visible in a process's environment while it runs.
    await until(() => holdersOfSecret().length > 0, 'the leased process to run');

    // Without the workspace nothing is asked; a foreign run finds nothing.
    expect(await b.find(runId)).toBeUndefined();
    expect(await b.find(`run-${randomUUID()}`, ws)).toBeUndefined();

    const found = await b.find(runId, ws);
    expect(found).toEqual({ sandboxId: handle.sandboxId, runId, workspace: handle.workspace, isolated: handle.isolated, hostId: handle.hostId });
    const shared = await b.share(found!, served());
    const written = await b.exec(shared.handle, { argv: ['sh', '-c', 'echo from-b > b.txt; cat hello.txt; echo "$STANDING"'], identity: 'agent' });
    expect(written).toMatchObject({ exitCode: 0, stdout: 'hello\nstanding\n' });
    // Same workspace: A sees what B wrote, and A's leased process was not touched.
    expect((await a.exec(handle, { argv: ['cat', 'b.txt'], identity: 'agent' })).stdout).toBe('from-b\n');
    expect(leasedEnded).toBeUndefined();
    expect(holdersOfSecret().length).toBeGreaterThan(0);
    await shared.leave();
    await expect(b.exec(shared.handle, { argv: ['true'], identity: 'agent' })).rejects.toMatchObject({ code: 'SANDBOX.GONE' });
  }, 180_000);

  it('B takes the sandbox over: the agent stops A’s credential process and no process holds its value; B serves it', async () => {
    const found = await b.find(runId, ws);
    expect(found?.sandboxId).toBe(handle.sandboxId);
    // Refused at the door on a take-over too: a standing env carrying a managed value stops it before anything is released.
    await expect(b.adopt(found!, { ...served(), env: { LEAKED: SECRET } })).rejects.toBeInstanceOf(LaunchRefusedError);
    expect(holdersOfSecret().length).toBeGreaterThan(0);
    const adopted = await b.adopt(found!, served());
    await until(() => holdersOfSecret().length === 0, 'no process to hold the lease value');
    const ended = await leased.exited;
    expect(ended.exitCode).not.toBe(0);
    expect((await b.exec(adopted, { argv: ['cat', 'b.txt'], identity: 'agent' })).stdout).toBe('from-b\n');
    expect(b.targetOf(runId)).toMatchObject({ hostKey: expect.stringMatching(/^ssh-ed25519 /) });
    await b.teardown(adopted);
    expect(await a.find(runId, ws)).toBeUndefined();
  }, 180_000);

  it('the agent refuses to release a sandbox for another run; no frame of this workspace’s runs reached the other workspace’s host', async () => {
    const [connection] = channel.liveHosts(ws);
    const other = await a.create({ runId: `run-${randomUUID()}`, files: {}, ...served(), placement: { workspaceId: ws } });
    const foreignRun = `run-${randomUUID()}`;
    await expect(connection!.request({ op: 'release', requestId: randomUUID(), runId: foreignRun, sandboxId: other.sandboxId })).rejects.toMatchObject({ code: 'HOST.FOREIGN_RUN' });
    // The agent's refusal is recorded on the host like the platform's own refusals.
    await until(async () => (await refusalsOf(ws, connection!.hostId)).some((r) => r.runId === foreignRun), 'the refusal to be recorded');
    expect((await refusalsOf(ws, connection!.hostId)).filter((r) => r.runId === foreignRun)).toEqual([{ hostId: connection!.hostId, reason: 'foreign-run', messageType: 'release', runId: foreignRun }]);
    await expect(b.adopt({ ...other, runId: `run-${randomUUID()}` }, served())).rejects.toMatchObject({ code: 'SANDBOX.GONE' });
    await a.teardown(other);
    expect(opsSentTo(otherWs).filter((op) => op !== 'session')).toEqual([]);
    // Asked as another workspace's run, only that workspace's host is asked, and it holds nothing of this run.
    expect(await b.find(runId, otherWs)).toBeUndefined();
    expect(opsSentTo(otherWs).filter((op) => op !== 'session')).toEqual(['locate']);
  }, 120_000);
});
