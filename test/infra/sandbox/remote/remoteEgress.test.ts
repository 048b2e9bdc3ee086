import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { type RemoteChannelHarness, startRemoteChannelHarness } from '../../../support/remoteChannelHarness';

/**
 * The platform's own hosts are refused on a host agent's egress path as on the local and Docker hosts: the agent's
 * proxy is configured by the agent, not the platform, so every allowance the platform sends carries them.
 */
const PLATFORM_HOSTS = ['dp-prod.azurewebsites.net', 'dpstore.blob.core.windows.net'];
let backend: RemoteChannelHarness;
let ws: string;

beforeAll(async () => {
  backend = await startRemoteChannelHarness();
  ws = await backend.createWorkspace('Acme');
  await backend.enrolAgent(ws, 'egress-box');
}, 240_000);

afterAll(async () => {
  await backend?.close();
});

describe('egress allowances sent to a host agent', () => {
  it('carry the platform hosts to refuse on create and on every setEgress, however wide the owner’s list', async () => {
    const remote = new RemoteSandboxHost(backend.channel, PLATFORM_HOSTS);
    const wide = { layers: [['*.azurewebsites.net', '*.blob.core.windows.net']] };
    const handle = await remote.create({
      runId: `run-${randomUUID()}`, files: {}, redactor: createRedactor([]), guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws }, egress: wide,
    });
    remote.setEgress(handle, wide);
    const sent = (op: string) => backend.frames.filter((f) => f.direction === 'to-host').map((f) => JSON.parse(f.raw) as { body: { op: string; runId?: string; egress?: { refuse?: string[] } } })
      .filter((f) => f.body.op === op && f.body.runId === handle.runId);
    await expect.poll(() => sent('setEgress').length).toBe(1);
    for (const frame of [...sent('create'), ...sent('setEgress')]) expect(frame.body.egress?.refuse).toEqual(expect.arrayContaining(PLATFORM_HOSTS));
    await remote.teardown(handle);
  }, 60_000);
});
