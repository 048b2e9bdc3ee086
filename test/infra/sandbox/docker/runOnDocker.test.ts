import { createHash } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunEvent } from '../../../../domain/run';
import { requestRun } from '../../../../domain/services/runs';
import type { RunStores } from '../../../../domain/services/runPorts';
import { runStreamId } from '../../../../domain/streams';
import { TableGatewayBearers } from '../../../../infra/gateway/tableGatewayBearers';
import { BlobRunSpecStore, BlobTranscriptStore } from '../../../../infra/runs/blobRunStores';
import type { RunRuntime } from '../../../../domain/services/runContext';
import { aRunRuntime } from '../../../support/runRuntime';
import { install, mcp, seed, turn } from '../../../../domain/services/runSteps';
import { finish, teardown } from '../../../../domain/services/runTeardown';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { createApiHarness, type ApiHarness } from '../../../support/apiHarness';
import { azuriteConnectionString, uniqueName } from '../../../support/azurite';
import { containersOfScope, describeWithDocker, dockerForTests, sandboxImageForTests, testScope, removeScope } from '../../../support/dockerEngine';

/**
 * A run's steps on the Docker host: every phase and its leases in one container, and a run whose host instance
 * goes away between install and turn completes in the same container on another instance, which finds it by
 * its run id (no registry survives: each instance has its own).
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const VALUES = { TRACKER_KEY: 'trk-docker-tracker-key-0123456789', OPENAI_API_KEY: 'sk-docker-model-key-0123456789ab' };
const caller = { actor: 'alice', correlationId: 'docker-steps-test' };

describeWithDocker('run steps on the Docker host', engine, ({ docker, socketPath }) => {
  let h: ApiHarness;
  let stores: RunStores;
  let bearers: TableGatewayBearers;
  let ws: string;
  let image = '';

  async function aRuntime(): Promise<RunRuntime & { host: DockerSandboxHost }> {
    const host = await DockerSandboxHost.open({ docker, socketPath, image, scope });
    return aRunRuntime({ deps: h.deps, stores, host, bearers, removeLeftovers: (id) => host.removeLeftover(id) });
  }

  async function aRun(): Promise<string> {
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
    return runId;
  }

  const eventsOf = async (runId: string): Promise<readonly RunEvent[]> => (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;

  beforeAll(async () => {
    image = await sandboxImageForTests(docker);
    h = await createApiHarness();
    const blobs = BlobServiceClient.fromConnectionString(azuriteConnectionString());
    stores = { specs: new BlobRunSpecStore(blobs.getContainerClient(uniqueName('specs'))), transcripts: new BlobTranscriptStore(blobs.getContainerClient(uniqueName('tr'))) };
    const bearerTable = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('bearers'), { allowInsecureConnection: true });
    await bearerTable.createTable();
    bearers = new TableGatewayBearers(bearerTable);
    const token = await h.issuer.token('alice');
    ws = ((await h.call('POST', '/api/workspaces', { token, body: { name: 'Docker steps' } })).json as { id: string }).id;
    const uses: Record<keyof typeof VALUES, Record<string, string>> = { TRACKER_KEY: { mcp: 'members' }, OPENAI_API_KEY: { model: 'members' } };
    for (const [name, value] of Object.entries(VALUES))
      await h.call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { token, body: { value, uses: uses[name as keyof typeof VALUES] } });
  });
  afterAll(async () => {
    await removeScope(docker, scope);
  });

  it('runs every phase in one container: leases granted and released, output redacted, nothing left', async () => {
    const runtime = await aRuntime();
    const runId = await aRun();
    expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true, turns: 1 });
    expect(await install(runtime, ws, runId)).toEqual({ ok: true });
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    expect(await turn(runtime, ws, runId, 1)).toEqual({ ok: true });
    expect(await teardown(runtime, ws, runId)).toEqual({ ok: true });
    expect(await finish(runtime, ws, runId)).toEqual({ status: 'Completed' });
    const transcript = await stores.transcripts.read(ws, runId);
    expect(transcript).toContain('installed\nkey: [REDACTED:OPENAI_API_KEY]');
    expect(transcript).not.toContain(VALUES.OPENAI_API_KEY);
    const events = await eventsOf(runId);
    const granted = events.flatMap((e) => (e.type === 'LeaseGranted' ? [e.data.leaseId] : []));
    const ended = new Set(events.flatMap((e) => (e.type === 'LeaseReleased' || e.type === 'LeaseExpired' ? [e.data.leaseId] : [])));
    expect(granted.length).toBe(2); // the MCP server's and the turn's model key
    expect(granted.every((id) => ended.has(id))).toBe(true);
    expect((await containersOfScope(docker, scope)).filter((c) => c.Labels['disco-parrot.run'] === runId)).toEqual([]);
  });

  it('completes in the same container after the host instance goes away between install and turn', async () => {
    const first = await aRuntime();
    const runId = await aRun();
    expect(await seed(first, ws, runId)).toMatchObject({ ok: true });
    expect(await install(first, ws, runId)).toEqual({ ok: true });
    const sandboxId = first.sandboxes.get(runId)?.handle.sandboxId;
    await first.host.close(); // the instance is gone; its container is not

    const second = await aRuntime();
    expect(second.sandboxes.get(runId)).toBeUndefined();
    expect(await mcp(second, ws, runId)).toEqual({ ok: true });
    expect(second.sandboxes.get(runId)?.handle.sandboxId).toBe(sandboxId);
    expect(await turn(second, ws, runId, 1)).toEqual({ ok: true });
    expect(await teardown(second, ws, runId)).toEqual({ ok: true });
    expect(await finish(second, ws, runId)).toEqual({ status: 'Completed' });
    expect(await stores.transcripts.read(ws, runId)).toContain('installed\nkey: [REDACTED:OPENAI_API_KEY]'); // install's file, in the same workspace
    const launched = (await eventsOf(runId)).filter((e) => e.type === 'SandboxLaunched');
    expect(launched).toHaveLength(1);
    expect((await containersOfScope(docker, scope)).filter((c) => c.Labels['disco-parrot.run'] === runId)).toEqual([]);
  });

  it('after the host instance goes away between mcp and turn, the MCP server runs again under a new lease and the old one expired', async () => {
    // The server answers on a unix socket in the workspace: its pid and a hash of the key it holds.
    const server = `const fs=require('fs'),net=require('net');const h=require('crypto').createHash('sha256').update(process.env.TRACKER_KEY||'').digest('hex');
try{fs.unlinkSync('mcp.sock')}catch{}net.createServer((c)=>c.end('up pid='+process.pid+' key='+h+'\\n')).listen('mcp.sock');`;
    const ask = `const net=require('net');let n=0;const go=()=>net.connect('mcp.sock').on('data',(d)=>process.stdout.write(d)).on('error',()=>{if(++n>300)process.exit(3);setTimeout(go,100)});go();`;
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, caller, {
      workspaceId: ws,
      spec: {
        template: { files: { 'mcp.js': server, 'ask.js': ask } },
        mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
        turns: [{ command: ['node', 'ask.js'] }],
        deadlineSeconds: 120,
      },
    });
    const first = await aRuntime();
    expect(await seed(first, ws, runId)).toMatchObject({ ok: true });
    expect(await install(first, ws, runId)).toEqual({ ok: true });
    expect(await mcp(first, ws, runId)).toEqual({ ok: true });
    const oldServer = first.live.get(runId)?.servers[0];
    const handle = first.sandboxes.get(runId)?.handle;
    if (!oldServer || !handle) throw new Error('the first instance has no MCP server or sandbox');
    const oldPid = /up pid=(\d+)/.exec((await first.host.exec(handle, { argv: ['node', 'ask.js'], identity: 'agent' })).stdout)?.[1];
    expect(oldPid).toBeDefined();
    await first.host.close(); // the instance is gone; its container and its MCP server are not

    const second = await aRuntime();
    expect(await turn(second, ws, runId, 1)).toEqual({ ok: true });
    // Adopting stopped the server nobody supervised any more (SIGKILL inside the container).
    expect((await oldServer.process.exited).exitCode).not.toBe(0);
    const transcript = await stores.transcripts.read(ws, runId);
    const answer = /up pid=(\d+) key=([0-9a-f]{64})/.exec(transcript);
    expect(answer?.[2]).toBe(createHash('sha256').update(VALUES.TRACKER_KEY).digest('hex'));
    expect(answer?.[1]).not.toBe(oldPid);
    expect(transcript).toContain('mcp:issues: started again on this host instance');

    const leasesOf = (events: readonly RunEvent[]) => events.flatMap((e) => (e.type === 'LeaseGranted' && e.data.operation === 'mcp:issues' ? [e.data.leaseId] : []));
    let events = await eventsOf(runId);
    const [oldLease, newLease, ...more] = leasesOf(events);
    expect(more).toEqual([]);
    expect(newLease).toBeDefined();
    expect(newLease).not.toBe(oldLease);
    const endOf = (leaseId: string | undefined) => events.filter((e) => 'leaseId' in e.data && e.data.leaseId === leaseId && e.type !== 'LeaseGranted').map((e) => e.type);
    expect(endOf(oldLease)).toEqual(['LeaseExpired']); // not released: its holder was nobody's any more
    expect(endOf(newLease)).toEqual([]); // the restarted server holds it through the turn

    expect(await teardown(second, ws, runId)).toEqual({ ok: true });
    expect(await finish(second, ws, runId)).toEqual({ status: 'Completed' });
    events = await eventsOf(runId);
    expect(endOf(newLease)).toHaveLength(1);
    expect((await containersOfScope(docker, scope)).filter((c) => c.Labels['disco-parrot.run'] === runId)).toEqual([]);
  }, 180_000);
});
