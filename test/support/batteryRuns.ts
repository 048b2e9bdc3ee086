import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect, vi } from 'vitest';
import { apiClient, type Call, isFinished, type RunView, waitForRun } from '../e2e/runHarness';
import { type BatteryBackend, SANDBOX_ROOT } from './batteryBackend';
import { processesHolding } from './processLeaks';

export { isFinished, type RunView, type Call, waitForRun };

/** What an owner lets each secret be used for (the PUT body's `uses`), by secret name. */
export type SecretUsesByName = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** A workspace with these secrets (and their uses) on a battery backend, and an owner's API client that follows host restarts. */
export async function seedWorkspace(
  backend: BatteryBackend,
  user: string,
  secrets: Record<string, string>,
  uses: SecretUsesByName = {},
): Promise<{ ws: string; call: Call; token: string }> {
  const token = await backend.token(user);
  const call = apiClient(() => backend.url(), token);
  const created = await call('POST', '/api/workspaces', { name: `battery ${user}` });
  expect(created.status, created.text).toBe(201);
  const ws = (created.json as { id: string }).id;
  for (const [name, value] of Object.entries(secrets)) {
    const set = await call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { value, ...(uses[name] ? { uses: uses[name] } : {}) });
    expect(set.status, set.text).toBe(201);
  }
  return { ws, call, token };
}

export async function startRun(call: Call, ws: string, spec: unknown): Promise<string> {
  const reply = await call('POST', `/api/workspaces/${ws}/runs`, spec);
  expect(reply.status, reply.text).toBe(202);
  return (reply.json as { runId: string }).runId;
}

export function sandboxIdOf(run: RunView): string | undefined {
  const id = run.events.find((e) => e.type === 'SandboxLaunched')?.data.sandboxId;
  return typeof id === 'string' ? id : undefined;
}

/** A file a run's sandbox wrote in its workspace (names are unique per test, the root is shared). */
export function sandboxFile(_backend: BatteryBackend, name: string): string | undefined {
  const root = path.join(SANDBOX_ROOT, 'sandboxes');
  if (!existsSync(root)) return undefined;
  for (const id of readdirSync(root)) {
    const file = path.join(root, id, 'workspace', name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

/**
 * What every run must satisfy at its end, however it ended: a final status, one teardown, the stream gapless and
 * without duplicates (versions 1..n, sequences strictly increasing), every lease ended, the sandbox's directories
 * and credential files gone, no process holding a value, and the audit chain verifying.
 */
export async function expectDefinedEnd(_backend: BatteryBackend, call: Call, ws: string, run: RunView, secrets: Record<string, string>): Promise<void> {
  expect(isFinished(run), run.status).toBe(true);
  expect(run.tornDown).toBe(true);
  expect(run.events.filter((e) => e.type === 'SandboxTornDown')).toHaveLength(1);
  expect(run.events.map((e) => e.version)).toEqual(run.events.map((_, i) => i + 1));
  const sequences = run.events.map((e) => e.sequence);
  expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
  expect(new Set(sequences).size).toBe(sequences.length);
  const granted = run.events.filter((e) => e.type === 'LeaseGranted').map((e) => e.data.leaseId);
  const ended = new Set(run.events.filter((e) => e.type === 'LeaseReleased' || e.type === 'LeaseExpired').map((e) => e.data.leaseId));
  for (const leaseId of granted) expect(ended.has(leaseId), `lease ${String(leaseId)} never ended`).toBe(true);
  const sandboxId = sandboxIdOf(run);
  if (sandboxId) {
    expect(existsSync(path.join('/dev/shm/dp-credentials', sandboxId)), 'credential dir left').toBe(false);
    expect(existsSync(path.join(SANDBOX_ROOT, 'sandboxes', sandboxId)), 'sandbox dir left').toBe(false);
  }
  await vi.waitFor(() => {
    for (const value of Object.values(secrets)) expect(processesHolding(value)).toEqual([]);
  }, { timeout: 10_000, interval: 200 });
  const verify = await call('GET', `/api/workspaces/${ws}/audit/verify`);
  expect(verify.json, verify.text).toMatchObject({ ok: true });
}

/** The battery's counts, printed once per file so CI output shows them. */
export class BatteryTally {
  faultsInjected = 0;
  faultsSurvived = 0;
  requests = 0;
  scannedBytes = 0;
  leakHits = 0;

  line(label: string): string {
    return `BATTERY ${label}: faults injected ${this.faultsInjected}, survived ${this.faultsSurvived}; requests fuzzed ${this.requests}; leak-scanned ${this.scannedBytes} bytes, hits ${this.leakHits}`;
  }
}
