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
});
