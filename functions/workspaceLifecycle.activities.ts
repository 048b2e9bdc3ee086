import { app, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { isDomainError } from '../domain/errors';
import { isUnfinishedRun, runStatusFromRow } from '../domain/run';
import { onRun } from '../domain/services/runStream';
import { removeLiveRecordsAndSeal, softDeleteWorkspaceVault } from '../domain/services/workspaceLifecycle';
import { projectionKeys } from '../domain/streams';
import { CANCEL_EVENT } from './runLifecycle.names';
import { DELETE_WORKSPACE_ACTIVITY } from './workspaceLifecycle.names';
import { getWorkspaceLifecycle } from './workspaceLifecycle.wiring';

const ACTOR = 'system:deleteWorkspace';

async function activeRunIds(workspaceId: string): Promise<string[]> {
  const { live } = await getWorkspaceLifecycle();
  const rows = await live.store.listProjections(workspaceId, projectionKeys.runPrefix);
  return rows.flatMap((row) => {
    const view = runStatusFromRow(row.value);
    return view && isUnfinishedRun(view.status) ? [view.runId] : [];
  });
}

/** Records the cancellation of every active run and signals its orchestration; finished runs are left alone. */
export async function cancelWorkspaceRuns(workspaceId: string, context: InvocationContext): Promise<number> {
  const { live } = await getWorkspaceLifecycle();
  const client = df.getClient(context);
  const runIds = await activeRunIds(workspaceId);
  for (const runId of runIds) {
    try {
      await onRun(live, workspaceId, runId, { type: 'CancelRun', reason: 'workspace deleted' }, { actor: ACTOR, correlationId: context.invocationId });
    } catch (error) {
      // Finished or tearing down meanwhile: nothing left to cancel.
      if (!isDomainError(error)) throw error;
    }
    await client.raiseEvent(runId, CANCEL_EVENT, { reason: 'workspace deleted' }).catch(() => undefined);
  }
  return runIds.length;
}

app.generic(DELETE_WORKSPACE_ACTIVITY.cancelRuns, {
  trigger: df.trigger.activity(),
  extraInputs: [df.input.durableClient()],
  handler: (workspaceId: unknown, context: InvocationContext) => cancelWorkspaceRuns(String(workspaceId), context),
});

df.app.activity(DELETE_WORKSPACE_ACTIVITY.countActiveRuns, {
  handler: async (workspaceId: unknown) => (await activeRunIds(String(workspaceId))).length,
});

df.app.activity(DELETE_WORKSPACE_ACTIVITY.softDeleteVault, {
  handler: async (workspaceId: unknown, context: InvocationContext) => {
    const { live } = await getWorkspaceLifecycle();
    await softDeleteWorkspaceVault(live, String(workspaceId), context.invocationId);
    return 'ok';
  },
});

df.app.activity(DELETE_WORKSPACE_ACTIVITY.removeLiveRecords, {
  handler: async (workspaceId: unknown, context: InvocationContext) => {
    const { live } = await getWorkspaceLifecycle();
    return removeLiveRecordsAndSeal(live, String(workspaceId), context.invocationId);
  },
});
