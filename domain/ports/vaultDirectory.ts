/**
 * Where a workspace's vault is, as the workspace's log records it (`VaultProvisioned`, the retention in
 * `WorkspaceCreated`): a vault adapter reads its name and resource group from here, never from a row a sandbox
 * or an account-key holder could write, and never derives either from the workspace id.
 */
export interface VaultLocation {
  readonly vault: string;
  /** Absent in records older than sharding: the deployment's default vaults group. */
  readonly resourceGroup?: string;
}

export interface VaultDirectory {
  /** The recorded vault (undefined: none yet) and the retention fixed at creation (undefined: none chosen). */
  read(workspaceId: string): Promise<{ readonly vault?: string; readonly resourceGroup?: string; readonly retentionDays?: number }>;
  /** Records `proposed` as the workspace's vault unless one is recorded already; returns the recorded one. */
  claim(workspaceId: string, proposed: VaultLocation): Promise<VaultLocation>;
  /**
   * Records `proposed` in place of `taken` (a name Azure refused as already in use) if `taken` is still the
   * recorded one; returns the recorded one, so racing instances end on the same replacement.
   */
  replace(workspaceId: string, taken: string, proposed: VaultLocation): Promise<VaultLocation>;
}
