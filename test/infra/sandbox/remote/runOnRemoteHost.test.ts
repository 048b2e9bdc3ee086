import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../../../domain/run';
import type { RunRuntime } from '../../../../domain/services/runContext';
import type { RunStores } from '../../../../domain/services/runPorts';
import { requestRun } from '../../../../domain/services/runs';
import { install, mcp, seed, turn } from '../../../../domain/services/runSteps';
import { finish, teardown } from '../../../../domain/services/runTeardown';
import { runStreamId } from '../../../../domain/streams';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import type { TableGatewayBearers } from '../../../../infra/gateway/tableGatewayBearers';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { createApiHarness, type ApiHarness } from '../../../support/apiHarness';
import { aRunRuntime, runStoresOnAzurite } from '../../../support/runRuntime';

/**
 * A run's steps through a host agent on two app instances: seed, install and mcp on A, turn and teardown on B,
 * which finds the run's sandbox on the agent by its run id and takes it over (issue 16: activities stay stateless).
 */
const projectRoot = path.resolve(__dirname, '../../../..');
const VALUES = { TRACKER_KEY: 'trk-remote-tracker-key-0123456789', OPENAI_API_KEY: 'sk-remote-model-key-0123456789ab' };
const caller = { actor: 'alice', correlationId: 'remote-steps-test' };
const dir = mkdtempSync(path.join(tmpdir(), 'dp-remote-steps-test-'));

let h: ApiHarness;
let channel: HostChannelServer;
let stores: RunStores;
let bearers: TableGatewayBearers;
let ws: string;
const agents: ChildProcess[] = [];

function aRuntime(): RunRuntime & { host: RemoteSandboxHost } {
  return aRunRuntime({ deps: h.deps, stores, host: new RemoteSandboxHost(channel), bearers, removeLeftovers: async () => undefined });
}

async function until(check: () => boolean, what: string, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  h = await createApiHarness();
  ({ stores, bearers } = await runStoresOnAzurite());
  const token = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token, body: { name: 'Remote steps' } })).json as { id: string }).id;
  const uses: Record<keyof typeof VALUES, Record<string, string>> = { TRACKER_KEY: { mcp: 'members' }, OPENAI_API_KEY: { model: 'members' } };
  for (const [name, value] of Object.entries(VALUES))
    await h.call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { token, body: { value, uses: uses[name as keyof typeof VALUES] } });
  const tls = selfSignedCertificate(path.join(dir, 'tls'));
  channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(h.deps) });
  hostChannelControl.set(channel);
  const enrolment = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token, body: { name: 'steps-box' } })).json as { enrolmentToken: string };
  agents.push(spawn(process.execPath, [
    path.join(projectRoot, 'scripts', 'hostAgent.js'), '--platform', channel.url, '--ca', tls.certFile, '--state', path.join(dir, 'agent.json'), '--isolation', 'off', '--token', enrolment.enrolmentToken,
  ], { stdio: ['ignore', 'ignore', 'ignore'] }));
  await until(() => channel.liveHosts(ws).length === 1, 'the agent to connect');
}, 180_000);

afterAll(async () => {
  for (const agent of agents) if (agent.exitCode === null) agent.kill('SIGKILL');
  hostChannelControl.set(undefined);
  await channel?.close();
});

describe('run steps through a host agent', () => {
  it('seeded on instance A, the turn on instance B takes the same sandbox over and the run completes', async () => {
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, caller, {
      workspaceId: ws,
      spec: {
        template: { files: { 'mcp.js': 'console.log("up"); setInterval(() => {}, 1000);' } },
        install: [{ command: ['sh', '-c', 'echo installed > installed.txt'] }],
        mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
        turns: [{ command: ['sh', '-c', 'cat installed.txt; echo "key: $OPENAI_API_KEY"'], modelKey: 'OPENAI_API_KEY' }],
        deadlineSeconds: 120,
      },
    });
    const first = aRuntime();
    expect(await seed(first, ws, runId)).toMatchObject({ ok: true });
    expect(await install(first, ws, runId)).toEqual({ ok: true });
    expect(await mcp(first, ws, runId)).toEqual({ ok: true });
    const sandboxId = first.sandboxes.get(runId)?.handle.sandboxId;

    const second = aRuntime();
    expect(second.sandboxes.get(runId)).toBeUndefined();
    expect(await turn(second, ws, runId, 1)).toEqual({ ok: true });
    expect(second.sandboxes.get(runId)?.handle.sandboxId).toBe(sandboxId);
    expect(await teardown(second, ws, runId)).toEqual({ ok: true });
    expect(await finish(second, ws, runId)).toEqual({ status: 'Completed' });

    const transcript = await stores.transcripts.read(ws, runId);
    // install's file, in the same workspace; the agent already masks what it delivered, the platform again
    expect(transcript).toContain('installed\nkey: [REDACTED:');
    expect(transcript).toContain('mcp:issues: started again on this host instance');
    for (const value of Object.values(VALUES)) expect(transcript).not.toContain(value);
    const events = (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
    expect(events.filter((e) => e.type === 'SandboxLaunched')).toHaveLength(1);
    const granted = events.flatMap((e) => (e.type === 'LeaseGranted' ? [e.data.leaseId] : []));
    const ended = new Set(events.flatMap((e) => (e.type === 'LeaseReleased' || e.type === 'LeaseExpired' ? [e.data.leaseId] : [])));
    expect(granted.length).toBeGreaterThanOrEqual(3); // A's MCP server, B's MCP server again, the turn's model key
    expect(granted.every((id) => ended.has(id))).toBe(true);
    expect(events.some((e) => e.type === 'LeaseExpired')).toBe(true); // A's MCP server's lease: nobody supervised it after the take-over
    expect(await second.host.find(runId, ws)).toBeUndefined(); // torn down on the agent
  }, 240_000);
});
