import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { DELETE_WORKSPACE, DELETE_WORKSPACE_ACTIVITY } from './workspaceLifecycle.names';

export interface DeleteWorkspaceInput {
  readonly workspaceId: string;
}

const POLL_SECONDS = 2;
const MAX_POLLS = 150;
const retry = new df.RetryOptions(1000, 5);

/**
 * Deterministic: stops the workspace's runs (their own orchestrations tear their sandboxes down), waits for
 * them to finish, soft-deletes the vault, then removes live records and seals the log. Input: the id only.
 */
export const deleteWorkspaceOrchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const { workspaceId } = context.df.getInput<DeleteWorkspaceInput>();
  yield context.df.callActivityWithRetry(DELETE_WORKSPACE_ACTIVITY.cancelRuns, retry, workspaceId);
  let active = 1;
  for (let poll = 0; poll < MAX_POLLS && active > 0; poll++) {
    active = (yield context.df.callActivity(DELETE_WORKSPACE_ACTIVITY.countActiveRuns, workspaceId)) as number;
    if (active > 0) yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + POLL_SECONDS * 1000));
  }
  yield context.df.callActivityWithRetry(DELETE_WORKSPACE_ACTIVITY.softDeleteVault, retry, workspaceId);
  const removed: unknown = yield context.df.callActivityWithRetry(DELETE_WORKSPACE_ACTIVITY.removeLiveRecords, retry, workspaceId);
  return { workspaceId, runsStillActive: active, removed };
};

df.app.orchestration(DELETE_WORKSPACE, deleteWorkspaceOrchestrator);
