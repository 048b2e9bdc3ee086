import { beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../domain/ports/clock';
import type { RunCommand } from '../../domain/run';
import { onRun } from '../../domain/services/runStream';
import { type SweepDependencies, sweepExpired } from '../../domain/services/sweep';
import { runStreamId } from '../../domain/streams';
import { TableActiveRuns } from '../../infra/tables/tableActiveRuns';
import { TableWorkspaceRecords } from '../../infra/tables/tableWorkspaceRecords';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';

let h: ApiHarness;
const cancelled: string[] = [];

const at = (ms: number): Clock => ({ now: () => new Date(ms), sleep: async () => undefined });

function sweepDeps(clock: Clock): SweepDependencies {
  return {
    ...h.deps,
    clock,
    records: new TableWorkspaceRecords(h.eventTable, h.store.projectionSeal),
    removeBlobs: async () => 0,
    purgeOutside: async () => undefined,
    activeRuns: new TableActiveRuns(h.eventTable),
    cancelOrchestration: async (runId) => {
      cancelled.push(runId);
    },
    removeOrphanedSandboxes: async () => 0,
  };
}

async function run(workspaceId: string, runId: string, commands: RunCommand[]): Promise<void> {
  for (const command of commands) {
    await onRun(h.deps, workspaceId, runId, command, { actor: 'test', correlationId: 't' });
  }
}

async function typesOf(workspaceId: string, runId: string): Promise<string[]> {
  return (await h.store.readStream(workspaceId, runStreamId(runId))).events.map((e) => e.type);
}

beforeAll(async () => {
  h = await createApiHarness();
});

describe('sweepExpired under a controllable clock', () => {
  it('expires leases past their time, stops runs past their deadline, leaves the rest, and is idempotent', async () => {
    const t0 = Date.parse('2030-01-01T00:00:00.000Z');
    const iso = (offsetMs: number) => new Date(t0 + offsetMs).toISOString();
    const ws = '11111111-1111-4111-8111-111111111111';
    const start = (runId: string, deadlineMs: number): RunCommand[] => [
      { type: 'RequestRun', runId, workspaceId: ws, deadline: iso(deadlineMs), specRef: `spec:${runId}`, specDigest: "unused" },
      { type: 'StartPhase', phase: 'seed' },
      { type: 'CompletePhase', phase: 'seed' },
      { type: 'StartPhase', phase: 'install' },
    ];
    await run(ws, 'lease-run', [...start('lease-run', 3_600_000),
      { type: 'GrantLease', leaseId: 'short', secretName: 'NPM_TOKEN', secretVersion: 1, operation: 'install#0', channel: 'package-manager-config', expiresAt: iso(60_000) },
      { type: 'GrantLease', leaseId: 'long', secretName: 'GIT_TOKEN', secretVersion: 1, operation: 'install#1', channel: 'git-credential-helper', expiresAt: iso(1_800_000) }]);
    await run(ws, 'late-run', start('late-run', 120_000));
    await run(ws, 'fresh-run', start('fresh-run', 3_600_000));
    await run(ws, 'never-started', [{ type: 'RequestRun', runId: 'never-started', workspaceId: ws, deadline: iso(60_000), specRef: 'spec:never-started', specDigest: 'unused' }]);

    const clock = at(t0 + 300_000);
    const reports = await Promise.all([sweepExpired(sweepDeps(clock), 's1'), sweepExpired(sweepDeps(clock), 's2')]);

    expect(reports.reduce((n, r) => n + r.leasesExpired, 0)).toBe(1);
    expect((await typesOf(ws, 'lease-run')).filter((t) => t === 'LeaseExpired')).toHaveLength(1);
    const leaseRun = await h.store.readProjection(ws, 'run:lease-run');
    expect((leaseRun?.activeLeases as Array<{ leaseId: string }>).map((l) => l.leaseId)).toEqual(['long']);
    expect((await typesOf(ws, 'late-run')).filter((t) => t === 'RunCancellationRequested')).toHaveLength(1);
    expect(cancelled).toContain('late-run');
    expect(await typesOf(ws, 'fresh-run')).not.toContain('RunCancellationRequested');
    expect(cancelled).not.toContain('fresh-run');
    // A run whose orchestration never started is finished by the sweep: Cancelled, once.
    const orphan = await typesOf(ws, 'never-started');
    expect(orphan.slice(-4)).toEqual(['RunCancellationRequested', 'PhaseStarted', 'PhaseCompleted', 'RunCancelled']);
    expect(orphan.filter((t) => t === 'RunCancelled')).toHaveLength(1);
    expect((await h.store.verify(ws)).ok).toBe(true);
  });

  it('an earlier clock finds nothing to do', async () => {
    const report = await sweepExpired(sweepDeps(at(Date.parse('2020-01-01T00:00:00.000Z'))), 's3');
    expect(report).toMatchObject({ leasesExpired: 0, runsPastDeadline: 0, workspacesPurged: 0 });
  });
});
