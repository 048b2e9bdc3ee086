/** Names of the workspace-deletion orchestration and its activities: constants, never repeated literals. */
export const DELETE_WORKSPACE = 'deleteWorkspace';
export const DELETE_WORKSPACE_ACTIVITY = {
  cancelRuns: 'deleteWorkspaceCancelRuns',
  countActiveRuns: 'deleteWorkspaceCountActiveRuns',
  softDeleteVault: 'deleteWorkspaceSoftDeleteVault',
  removeLiveRecords: 'deleteWorkspaceRemoveLiveRecords',
} as const;
export const deletionInstanceId = (workspaceId: string, unique: string): string => `delete-${workspaceId}-${unique}`;
