import { isDomainError } from '../errors';
import type { ActiveRuns } from '../ports/activeRuns';
import { runDecider } from '../run';
import type { ServiceDependencies } from './dependencies';
import { onRun } from './runStream';
import { type WorkspaceLifecycleDependencies, purgeDueWorkspaces } from './workspaceLifecycle';

export interface SweepDependencies extends WorkspaceLifecycleDependencies {
  readonly activeRuns: ActiveRuns;
  /** Signals a run's orchestration to stop (it kills the running command, then tears down). */
  readonly cancelOrchestration: (runId: string) => Promise<void>;
  /** Removes sandboxes and credential directories on this host that belong to no live run; returns how many. */
  readonly removeOrphanedSandboxes: () => Promise<number>;
}

export interface SweepReport {
  readonly leasesExpired: number;
  readonly runsPastDeadline: number;
  readonly orphanedSandboxes: number;
  readonly workspacesPurged: number;
}

const ACTOR = 'system:sweepExpired';

/** Grace after the deadline before the sweep steps in: the run's own durable timer should have acted by then. */
export const DEADLINE_GRACE_MS = 60_000;

async function recordOn(deps: ServiceDependencies, workspaceId: string, runId: string, command: Parameters<typeof runDecider.decide>[0], correlationId: string): Promise<number> {
  try {
    const result = await onRun(deps, workspaceId, runId, command, { actor: ACTOR, correlationId });
    return result.records.length;
  } catch (error) {
    // The run moved on meanwhile (finished, or tearing down): nothing for the sweep to do.
    if (isDomainError(error) && error.kind === 'conflict') return 0;
    throw error;
  }
}

/**
 * One sweep: leases past their time expire, runs past their deadline are stopped, orphaned sandboxes and
 * credential files go, and vaults and logs whose retention has ended are purged (never earlier). Idempotent:
 * every step is a decision over current state, so two sweeps at once record each fact once.
 */
export async function sweepExpired(deps: SweepDependencies, correlationId: string): Promise<SweepReport> {
  const now = deps.clock.now();
  let leasesExpired = 0;
  let runsPastDeadline = 0;
  for (const run of await deps.activeRuns.list()) {
    if (run.leaseExpiries.some((l) => Date.parse(l.expiresAt) <= now.getTime()))
      leasesExpired += await recordOn(deps, run.workspaceId, run.runId, { type: 'ExpireLeases', now: now.toISOString() }, correlationId);
    if (Date.parse(run.deadline) + DEADLINE_GRACE_MS <= now.getTime()) {
      runsPastDeadline++;
      await recordOn(deps, run.workspaceId, run.runId, { type: 'CancelRun', reason: 'deadline passed' }, correlationId);
      await deps.cancelOrchestration(run.runId);
      // Still Pending this long after its deadline: its orchestration never started (it failed to start after
      // RunRequested), so nothing else will finish it. It never had a sandbox; teardown is only the record.
      if (run.status === 'Pending') {
        for (const command of [{ type: 'StartPhase', phase: 'teardown' }, { type: 'CompletePhase', phase: 'teardown' }, { type: 'FinishRun' }] as const)
          await recordOn(deps, run.workspaceId, run.runId, command, correlationId);
      }
    }
  }
  const orphanedSandboxes = await deps.removeOrphanedSandboxes();
  const { purged } = await purgeDueWorkspaces(deps);
  return { leasesExpired, runsPastDeadline, orphanedSandboxes, workspacesPurged: purged };
}
