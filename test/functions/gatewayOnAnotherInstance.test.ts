import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../domain/run';
import type { RunRuntime } from '../../domain/services/runContext';
import type { RunStores } from '../../domain/services/runPorts';
import { requestRun } from '../../domain/services/runs';
import { seed } from '../../domain/services/runSteps';
import { teardown } from '../../domain/services/runTeardown';
import { runStreamId } from '../../domain/streams';
import { sandboxGateway } from '../../functions/gateway.wiring';
import type { TableGatewayBearers } from '../../infra/gateway/tableGatewayBearers';
import { leftoverRemover } from '../../infra/runs/leftoverSandboxes';
import { LocalProcessSandboxHost } from '../../infra/sandbox/localProcessSandboxHost';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';
import { callGateway } from '../support/gatewayOverHttp';
import { aRunRuntime, runStoresOnAzurite } from '../support/runRuntime';
import { aSecretValue } from '../infra/sandbox/sandboxTestKit';

/**
 * The local-process host cannot adopt: its sandbox lives and dies with the instance that made it. A gateway
 * operation reaching another instance is refused 410 with that reason, recorded on the run; the holder serves it.
 */
const TOKEN = aSecretValue('api');
const dirs: string[] = [];
let h: ApiHarness;
let stores: RunStores;
let bearers: TableGatewayBearers;
let ws: string;
let api: { origin: string; close(): Promise<void> };

async function anInstance(): Promise<RunRuntime & { host: LocalProcessSandboxHost }> {
  const sandboxRoot = mkdtempSync(path.join(tmpdir(), 'dp-gw-other-'));
  const credentialRoot = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'dp-gw-other-cred-'));
  dirs.push(sandboxRoot, credentialRoot);
  const host = await LocalProcessSandboxHost.open({ root: sandboxRoot, credentialRoot, warn: () => undefined });
  return aRunRuntime({ deps: h.deps, stores, host, bearers, removeLeftovers: leftoverRemover({ sandboxRoot, credentialRoot }) });
}

beforeAll(async () => {
  h = await createApiHarness();
  ({ stores, bearers } = await runStoresOnAzurite());
  const server = http.createServer((_req, res) => res.end('{"ok":true}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api = { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
  const token = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token, body: { name: 'Local gateway' } })).json as { id: string }).id;
  await h.call('PUT', `/api/workspaces/${ws}/secrets/API_TOKEN`, { token, body: { value: TOKEN, allowedHosts: [new URL(api.origin).host] } });
});

afterAll(async () => {
  await api?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('the gateway on another instance, over the local-process host', () => {
  it("answers 410 naming why (the host cannot adopt), records it, and the holder's gateway serves the same bearer", async () => {
    const a = await anInstance();
    const b = await anInstance();
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, { actor: 'alice', correlationId: 'local-gw' }, {
      workspaceId: ws,
      spec: { template: { files: {} }, turns: [{ command: ['true'] }], deadlineSeconds: 120 },
    });
    expect(await seed(a, ws, runId)).toMatchObject({ ok: true });
    const held = a.sandboxes.get(runId)!;
    const bearer = await bearers.mint({ workspaceId: ws, runId, containerId: held.handle.sandboxId, expiresAt: held.deadline });
    const operation = { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN' };
    const gatewayOf = (instance: typeof a) => sandboxGateway({ deps: h.deps, bearers, sandboxes: instance.sandboxes, host: instance.host, specs: stores.specs });

    const onB = await callGateway(gatewayOf(b), bearer, operation);
    expect(onB.status).toBe(410);
    expect(onB.json.code).toBe('GATEWAY.SANDBOX_GONE');
    expect(String(onB.json.detail)).toContain('cannot adopt');
    const events = (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
    expect(events.flatMap((e) => (e.type === 'OperationRefused' ? [e.data.reason] : []))).toEqual([expect.stringContaining('cannot adopt')]);
    expect(events.some((e) => e.type === 'LeaseGranted')).toBe(false);

    const onA = await callGateway(gatewayOf(a), bearer, operation);
    expect(onA.status, JSON.stringify(onA.json)).toBe(200);
    expect(await teardown(a, ws, runId)).toEqual({ ok: true });
  });
});
