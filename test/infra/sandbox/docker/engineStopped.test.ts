import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunEvent } from '../../../../domain/run';
import { requestRun } from '../../../../domain/services/runs';
import type { RunStores } from '../../../../domain/services/runPorts';
import { runStreamId } from '../../../../domain/streams';
import { install, mcp, seed, turn } from '../../../../domain/services/runSteps';
import { finish, teardown } from '../../../../domain/services/runTeardown';
import type { GatewayBearers } from '../../../../domain/ports/gatewayBearers';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { buildSandboxImage } from '../../../../infra/sandbox/docker/sandboxImage';
import { createApiHarness, type ApiHarness } from '../../../support/apiHarness';
import { containersOfScope, describeWithDocker, dockerForTests, testScope } from '../../../support/dockerEngine';
import { dockerdInstalled, startPrivateDockerd, type PrivateDockerd } from '../../../support/privateDockerd';
import { aRunRuntime, runStoresOnAzurite } from '../../../support/runRuntime';

/**
 * The engine itself goes away mid-run. The test starts a dockerd of its own (never the shared one other suites
 * use), runs seed, install and mcp on it, stops it before the turn: the turn fails at once with a reason that names
 * the engine (no hang, no value), teardown and finish still end the run Failed, and once the engine is back the
 * sweep removes the container the engine kept (stopped, labelled with its run).
 */
const engine = dockerdInstalled() ? dockerForTests() : undefined;
const scope = testScope(__filename);
const VALUES = { OPENAI_API_KEY: 'sk-engine-stopped-model-key-0123456789' };
const caller = { actor: 'alice', correlationId: 'engine-stopped-test' };

describeWithDocker('a Docker engine stopped mid-run', engine, () => {
  let dockerd: PrivateDockerd;
  let h: ApiHarness;
  let stores: RunStores;
  let bearers: GatewayBearers;
  let ws: string;
  let image = '';

  beforeAll(async () => {
    dockerd = await startPrivateDockerd();
    // Built into the private engine from this machine's files, as `npm run sandbox-image` does for the shared one.
    image = (await buildSandboxImage(dockerd.docker)).image;
    h = await createApiHarness();
    ({ stores, bearers } = await runStoresOnAzurite());
    const token = await h.issuer.token('alice');
    ws = ((await h.call('POST', '/api/workspaces', { token, body: { name: 'Engine stopped' } })).json as { id: string }).id;
    await h.call('PUT', `/api/workspaces/${ws}/secrets/OPENAI_API_KEY`, { token, body: { value: VALUES.OPENAI_API_KEY, uses: { model: 'members' } } });
  }, 300_000);
  afterAll(async () => {
    await dockerd?.remove();
  }, 120_000);

  it('fails the turn naming the engine, ends the run Failed, and the sweep removes the container once the engine is back', async () => {
    const host = await DockerSandboxHost.open({ docker: dockerd.docker, socketPath: dockerd.socketPath, image, scope });
    const runtime = aRunRuntime({ deps: h.deps, stores, host, bearers, removeLeftovers: (id) => host.removeLeftover(id) });
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, caller, {
      workspaceId: ws,
      spec: {
        template: { files: {} },
        install: [{ command: ['sh', '-c', 'echo installed > installed.txt'] }],
        turns: [{ command: ['sh', '-c', 'cat installed.txt; echo "key: $OPENAI_API_KEY"'], modelKey: 'OPENAI_API_KEY' }],
        deadlineSeconds: 300,
      },
    });
    expect(await seed(runtime, ws, runId)).toMatchObject({ ok: true });
    expect(await install(runtime, ws, runId)).toEqual({ ok: true });
    expect(await mcp(runtime, ws, runId)).toEqual({ ok: true });
    const { hostDir, credentialDir, workspace } = host.inspect(runtime.sandboxes.get(runId)!.handle);

    await dockerd.stop();
    const failed = await turn(runtime, ws, runId, 1);
    expect(failed.ok).toBe(false);
    const reason = failed.ok ? '' : failed.reason;
    expect(reason).toBe(`Docker sandbox host: no engine answers at unix://${dockerd.socketPath} (it stopped or is restarting)`);
    expect(await teardown(runtime, ws, runId)).toEqual({ ok: true });
    expect(await finish(runtime, ws, runId)).toEqual({ status: 'Failed' });
    const events = (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
    expect(events.find((e) => e.type === 'RunFailed')?.data).toEqual({ reason });
    // The turn's lease was granted and ended; nothing of its value is in the log or the transcript.
    const granted = events.flatMap((e) => (e.type === 'LeaseGranted' ? [e.data.leaseId] : []));
    expect(granted).toHaveLength(1);
    expect(events.some((e) => (e.type === 'LeaseReleased' || e.type === 'LeaseExpired') && e.data.leaseId === granted[0])).toBe(true);
    expect(JSON.stringify(events)).not.toContain(VALUES.OPENAI_API_KEY);
    expect(await stores.transcripts.read(ws, runId)).not.toContain(VALUES.OPENAI_API_KEY);
    // This side of the sandbox is gone already.
    for (const p of [hostDir, credentialDir, workspace]) expect(existsSync(p), p).toBe(false);

    await dockerd.start();
    // The engine stopped the container on its way down and kept it.
    const kept = (await containersOfScope(dockerd.docker, scope)).filter((c) => c.Labels['disco-parrot.run'] === runId);
    expect(kept).toHaveLength(1);
    expect(kept[0]?.State).not.toBe('running');
    const runIsOver = async (id: string): Promise<boolean> => id === runId;
    expect(await host.removeOrphans(runIsOver)).toBe(1);
    expect(await containersOfScope(dockerd.docker, scope)).toEqual([]);
    expect(await host.removeOrphans(runIsOver)).toBe(0);
  }, 300_000);
});
