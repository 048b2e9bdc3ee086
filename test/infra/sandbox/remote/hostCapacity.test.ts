import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_ERROR } from '../../../../domain/catalogue';
import { createRedactor } from '../../../../domain/redaction';
import type { SandboxHandle, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { type RemoteChannelHarness, startRemoteChannelHarness } from '../../../support/remoteChannelHarness';

/**
 * Issue 16, scheduling: "the platform picks a live host with capacity". Each agent holds at most `--max-sandboxes`;
 * placement tries the least loaded host first and the next when one is full, and every app instance meets the same
 * limit, because the agent counts (an instance's own tally sees only what it placed).
 */
let backend: RemoteChannelHarness;
let ws: string;
const hostIds: string[] = [];

const request = (runId: string): SandboxRequest => ({
  runId, files: { 'a.txt': 'a\n' }, redactor: createRedactor([]), guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws, pool: 'workspace' },
});

async function refusal(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  const error = await promise.then(() => undefined, (e: unknown) => e as { code?: string; message: string });
  expect(error, 'the create was expected to be refused').toBeDefined();
  return error!;
}

beforeAll(async () => {
  backend = await startRemoteChannelHarness();
  ws = await backend.createWorkspace('Acme');
  for (const name of ['box-1', 'box-2']) hostIds.push((await backend.enrolAgent(ws, name, ['--max-sandboxes', '1'])).hostId);
}, 240_000);

afterAll(async () => {
  await backend?.close();
});

describe('a host agent holds at most --max-sandboxes', () => {
  const a = () => new RemoteSandboxHost(backend.channel);
  let instanceA: RemoteSandboxHost;
  const made: SandboxHandle[] = [];

  it('places two sandboxes on the two hosts and refuses a third with HOST.NO_CAPACITY naming the pool', async () => {
    instanceA = a();
    for (const runId of [`run-${randomUUID()}`, `run-${randomUUID()}`]) made.push(await instanceA.create(request(runId)));
    const used = await Promise.all(made.map(async (h) => (await instanceA.targetOf(h.runId))?.hostId));
    expect(new Set(used)).toEqual(new Set(hostIds));
    const third = await refusal(instanceA.create(request(`run-${randomUUID()}`)));
    expect(third.code).toBe(HOST_ERROR.NO_CAPACITY);
    expect(third.message).toContain("the workspace's own hosts");
  }, 120_000);

  it('refuses another app instance too, whose own count is zero: the agents decide', async () => {
    const instanceB = a();
    const refused = await refusal(instanceB.create(request(`run-${randomUUID()}`)));
    expect(refused.code).toBe(HOST_ERROR.NO_CAPACITY);
    // The refusal made nothing: each agent still lists only the one sandbox it holds.
    for (const h of made) expect((await instanceA.exec(h, { argv: ['cat', 'a.txt'], identity: 'agent' })).stdout).toBe('a\n');
  }, 120_000);

  it('places again on the host a teardown freed, from any instance', async () => {
    const freed = (await instanceA.targetOf(made[0]!.runId))?.hostId;
    await instanceA.teardown(made[0]!);
    const instanceB = a();
    const runId = `run-${randomUUID()}`;
    const placed = await instanceB.create(request(runId));
    expect((await instanceB.targetOf(runId))?.hostId).toBe(freed);
    await instanceB.teardown(placed);
    await instanceA.teardown(made[1]!);
  }, 120_000);

  it('an agent refuses a --max-sandboxes that is not a whole number from 1 to 1000', () => {
    const agent = path.resolve(__dirname, '../../../../scripts/hostAgent.js');
    for (const bad of ['0', '-1', '1.5', 'many', '1001']) {
      const result = spawnSync(process.execPath, [agent, '--platform', 'https://127.0.0.1:9', `--max-sandboxes=${bad}`], { encoding: 'utf8' });
      expect(result.status, bad).toBe(2);
      expect(result.stderr).toContain('--max-sandboxes must be a whole number from 1 to 1000');
    }
  });
});
