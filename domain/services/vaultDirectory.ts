import type { VaultDirectory, VaultLocation } from '../ports/vaultDirectory';
import type { CommandContext } from '../commandHandler';
import type { WorkspaceState } from '../workspace';
import { onWorkspace, readWorkspace } from './workspaceStream';

const ACTOR = 'system:vaultProvisioning';

function locationOf(state: WorkspaceState, fallback: VaultLocation): VaultLocation {
  if (state.vault === undefined) return fallback;
  return { vault: state.vault, ...(state.vaultResourceGroup !== undefined ? { resourceGroup: state.vaultResourceGroup } : {}) };
}

/** The vault directory folded from the workspace stream (the log, never the summary row). */
export function logVaultDirectory(deps: CommandContext): VaultDirectory {
  const record = async (workspaceId: string, proposed: VaultLocation, replaces?: string): Promise<VaultLocation> => {
    const command = { type: 'RecordVaultProvisioned' as const, ...proposed, ...(replaces !== undefined ? { replaces } : {}) };
    const result = await onWorkspace(deps, workspaceId, command, { actor: ACTOR, correlationId: `vault:${workspaceId}` });
    return locationOf(result.state, proposed);
  };
  return {
    read: async (workspaceId) => {
      const state = await readWorkspace(deps.store, workspaceId);
      return {
        ...(state.vault !== undefined ? { vault: state.vault } : {}),
        ...(state.vaultResourceGroup !== undefined ? { resourceGroup: state.vaultResourceGroup } : {}),
        ...(state.vaultRetentionDays !== undefined ? { retentionDays: state.vaultRetentionDays } : {}),
      };
    },
    claim: (workspaceId, proposed) => record(workspaceId, proposed),
    replace: (workspaceId, taken, proposed) => record(workspaceId, proposed, taken),
  };
}
