import type { VaultDirectory } from '../ports/vaultDirectory';
import type { CommandContext } from '../commandHandler';
import { onWorkspace, readWorkspace } from './workspaceStream';

const ACTOR = 'system:vaultProvisioning';

/** The vault directory folded from the workspace stream (the log, never the summary row). */
export function logVaultDirectory(deps: CommandContext): VaultDirectory {
  return {
    read: async (workspaceId) => {
      const state = await readWorkspace(deps.store, workspaceId);
      return { ...(state.vault !== undefined ? { vault: state.vault } : {}), ...(state.vaultRetentionDays !== undefined ? { retentionDays: state.vaultRetentionDays } : {}) };
    },
    claim: async (workspaceId, proposed) => {
      const result = await onWorkspace(deps, workspaceId, { type: 'RecordVaultProvisioned', vault: proposed }, { actor: ACTOR, correlationId: `vault:${workspaceId}` });
      return result.state.vault ?? proposed;
    },
  };
}
