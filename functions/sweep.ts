import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { sweepExpired } from '../domain/services/sweep';
import { durableClientInstances } from '../infra/storage/workspaceLeftovers';
import { appComposition, getSandboxHost } from './composition';
import { CANCEL_EVENT } from './runLifecycle.names';
import { getWorkspaceLifecycle } from './workspaceLifecycle.wiring';

export const SWEEP_EXPIRED = 'sweepExpired';

export async function sweepExpiredTimer(_timer: Timer, context: InvocationContext): Promise<void> {
  const { purge } = await getWorkspaceLifecycle();
  const client = df.getClient(context);
  // Production has no local sandbox host (it refuses one): leases, deadlines and purges are swept all the same.
  const host = await getSandboxHost().catch(() => undefined);
  const activeRuns = appComposition().activeRuns();
  // A sandbox is an orphan once its run is no longer active (a container is found by label, whoever started it).
  let active: Promise<Set<string>> | undefined;
  const runIsOver = async (runId: string): Promise<boolean> => !(await (active ??= activeRuns.list().then((runs) => new Set(runs.map((r) => r.runId))))).has(runId);
  const report = await sweepExpired(
    {
      ...purge(durableClientInstances(client)),
      activeRuns,
      cancelOrchestration: async (runId) => {
        await client.raiseEvent(runId, CANCEL_EVENT, { reason: 'deadline passed' }).catch(() => undefined);
      },
      removeOrphanedSandboxes: async () => (await host?.removeOrphans?.(runIsOver)) ?? 0,
    },
    context.invocationId,
  );
  context.log(`sweepExpired: ${JSON.stringify(report)}`);
}

app.timer(SWEEP_EXPIRED, {
  schedule: '%SWEEP_SCHEDULE%',
  extraInputs: [df.input.durableClient()],
  handler: sweepExpiredTimer,
});
