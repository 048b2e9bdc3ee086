/**
 * Where a workspace's vault is, as the workspace's log records it (`VaultProvisioned`, the retention in
 * `WorkspaceCreated`): a vault adapter reads its name from here, never from a row a sandbox or an account-key
 * holder could write, and never derives it from the workspace id.
 */
export interface VaultDirectory {
  /** The recorded vault name (undefined: none yet) and the retention fixed at creation (undefined: none chosen). */
  read(workspaceId: string): Promise<{ readonly vault?: string; readonly retentionDays?: number }>;
  /** Records `proposed` as the workspace's vault unless one is recorded already; returns the recorded name. */
  claim(workspaceId: string, proposed: string): Promise<string>;
}
