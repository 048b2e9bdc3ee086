import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../../../domain/run';
import type { RunRuntime } from '../../../../domain/services/runContext';
import type { RunStores } from '../../../../domain/services/runPorts';
import { requestRun } from '../../../../domain/services/runs';
import { seed } from '../../../../domain/services/runSteps';
import { teardown } from '../../../../domain/services/runTeardown';
import { runStreamId } from '../../../../domain/streams';
import { sandboxGateway } from '../../../../functions/gateway.wiring';
import type { TableGatewayBearers } from '../../../../infra/gateway/tableGatewayBearers';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { type ApiHarness, createApiHarness } from '../../../support/apiHarness';
import { callGateway } from '../../../support/gatewayOverHttp';
import { type GitHttpServer, startGitHttpServer } from '../../../support/gitHttpServer';
import { spawnHostAgent } from '../../../support/remoteHostBackend';
import { aRunRuntime, runStoresOnAzurite } from '../../../support/runRuntime';
import { openWebPubSubChannel } from '../../../support/webPubSubChannel';
import { aSecretValue } from '../sandboxTestKit';

/**
 * The gateway on an app instance that does not hold the run's sandbox, when the sandbox is on a host agent reached
 * through Web PubSub: instance A seeds the run; the agent's gateway call reaches instance B, which finds the sandbox
 * on the workspace's host (`locate`), shares it, and runs the clone in it; A keeps the run. (The Docker host's own
 * version is test/infra/sandbox/docker/gatewayOnAnotherInstance.test.ts.)
 */
const GIT_TOKEN = aSecretValue('ghp');
const A = 0;
const B = 1;
const dir = mkdtempSync(path.join(tmpdir(), 'dp-gw-remote-'));
let h: ApiHarness;
let stores: RunStores;
let bearers: TableGatewayBearers;
let opened: Awaited<ReturnType<typeof openWebPubSubChannel>>;
let git: GitHttpServer;
let ws: string;
const agents: ChildProcess[] = [];

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const anInstance = (index: number): RunRuntime & { host: RemoteSandboxHost } =>
  aRunRuntime({ deps: h.deps, stores, host: new RemoteSandboxHost(opened.instances[index]!), bearers, removeLeftovers: async () => undefined });

beforeAll(async () => {
  h = await createApiHarness();
  ({ stores, bearers } = await runStoresOnAzurite());
  git = await startGitHttpServer(GIT_TOKEN);
  await git.createRepo('project', { 'README.md': 'hello from the remote\n' });
  const token = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token, body: { name: 'Gateway on B, remote host' } })).json as { id: string }).id;
  await h.call('PUT', `/api/workspaces/${ws}/secrets/GIT_TOKEN`, { token, body: { value: GIT_TOKEN, allowedHosts: [new URL(git.origin).host] } });
  opened = await openWebPubSubChannel(h.deps, dir, { instances: 2 });
  hostChannelControl.set(opened.instances[A]);
  const offer = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token, body: { name: 'gw-box' } })).json as { enrolmentToken: string };
  agents.push(spawnHostAgent({
    platform: opened.platformUrl, caFile: opened.tls.certFile, token: offer.enrolmentToken, state: path.join(dir, 'agent.json'), args: ['--isolation', 'off', '--channel', 'web-pubsub'],
  }));
  await until(() => opened.instances.every((instance) => instance.liveHosts(ws).length === 1), 'the agent to be live on both instances', 90_000);
}, 180_000);

afterAll(async () => {
  for (const agent of agents) if (agent.exitCode === null) agent.kill('SIGKILL');
  hostChannelControl.set(undefined);
  await opened?.close();
  await git?.close();
});

describe('the gateway on another instance, over a remote host through Web PubSub', () => {
  it("B shares the sandbox A holds and runs the clone in it; a bearer of another container is 410; A still holds the run", async () => {
    const a = anInstance(A);
    const b = anInstance(B);
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, { actor: 'alice', correlationId: 'gw-remote' }, {
      workspaceId: ws,
      spec: { template: { files: {} }, turns: [{ command: ['true'] }], deadlineSeconds: 300 },
    });
    expect(await seed(a, ws, runId)).toMatchObject({ ok: true });
    const held = a.sandboxes.get(runId)!;
    const mint = (containerId: string) => bearers.mint({ workspaceId: ws, runId, containerId, expiresAt: held.deadline });
    const gatewayB = sandboxGateway({ deps: h.deps, bearers, sandboxes: b.sandboxes, host: b.host, specs: stores.specs, limits: { operationTimeoutMs: 120_000 } });
    const clone = { kind: 'git', action: 'clone', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN' };

    const other = await callGateway(gatewayB, await mint('an-earlier-sandbox-of-the-run'), clone);
    expect(other.status).toBe(410);
    expect(String(other.json.detail)).toContain('another container of the run');

    const served = await callGateway(gatewayB, await mint(held.handle.sandboxId), clone);
    expect(served.status, JSON.stringify(served.json)).toBe(200);
    // The clone landed in the sandbox A holds, on the agent.
    const read = await a.host.exec(held.handle, { argv: ['cat', 'project/README.md'], identity: 'agent' });
    expect(read).toMatchObject({ exitCode: 0, stdout: 'hello from the remote\n' });
    expect(git.requests.some((r) => r.user !== undefined)).toBe(true);
    // B served it beside A: it did not take the run over, and the agent got no `release`.
    expect(b.sandboxes.get(runId)).toBeUndefined();
    const ops = opened.frames().filter((f) => f.direction === 'to-host').map((f) => (JSON.parse(f.raw) as { body: { op: string } }).body.op);
    expect(ops).toContain('locate');
    expect(ops).not.toContain('release');

    const events = (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
    const grants = events.flatMap((e) => (e.type === 'LeaseGranted' ? [e.data] : []));
    expect(grants.map((g) => g.operation)).toEqual(['gateway:git:clone']);
    expect(events.filter((e) => e.type !== 'LeaseGranted' && 'leaseId' in e.data && e.data.leaseId === grants[0]!.leaseId).map((e) => e.type)).toEqual(['LeaseReleased']);
    expect(events.flatMap((e) => (e.type === 'OperationRefused' ? [e.data.reason] : []))).toEqual([expect.stringContaining('another container of the run')]);
    expect(JSON.stringify(opened.frames().filter((f) => f.raw.includes(GIT_TOKEN)).map((f) => (JSON.parse(f.raw) as { body: { op?: string } }).body.op))).toMatch(/^\[("exec",?)*\]$/);
    expect(await teardown(a, ws, runId)).toEqual({ ok: true });
  }, 180_000);
});
