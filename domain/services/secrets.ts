import { isDomainError } from '../errors';
import { type SecretMetadata, VAULT_ERROR, assertStorableSecret } from '../ports/secretVault';
import { type SecretCommand, secretMetadata } from '../secret';
import { DEFAULT_SECRET_USES, type SecretUses } from '../secretPolicy';
import { projectionKeys } from '../streams';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import { onSecret } from './secretStream';
import { listVerifiedProjections, readVerifiedProjection } from './verifiedProjections';
import { type Caller, onWorkspace } from './workspaceStream';

export interface SecretListing {
  readonly name: string;
  readonly version: number;
  readonly updatedAt: string | null;
  readonly updatedBy: string | null;
  readonly allowedHosts: readonly string[];
  readonly uses: SecretUses;
}

function listingOf(row: Readonly<Record<string, unknown>>): SecretListing {
  return {
    name: String(row.name),
    version: Number(row.version),
    updatedAt: typeof row.updatedAt === 'string' ? row.updatedAt : null,
    updatedBy: typeof row.updatedBy === 'string' ? row.updatedBy : null,
    allowedHosts: Array.isArray(row.allowedHosts) ? row.allowedHosts.map(String) : [],
    // A row written before uses existed shows what its secret folds to.
    uses: row.uses !== null && typeof row.uses === 'object' && !Array.isArray(row.uses) ? (row.uses as SecretUses) : DEFAULT_SECRET_USES,
  };
}

/**
 * Set or rotate (the same write). The value goes to the vault first, then `SecretSet` announces the
 * version; a concurrent writer makes the append conflict and the loop writes again with the next version.
 * Owners only: a member uses secrets through runs, never manages them, and so never changes what a secret may be
 * used for (`uses`, set with the value; omitted, a rotation keeps the previous uses).
 */
export async function setSecret(
  deps: ServiceDependencies,
  caller: Caller,
  request: { workspaceId: string; name: string; value: string; allowedHosts?: readonly string[]; uses?: SecretUses },
): Promise<{ created: boolean; secret: SecretListing }> {
  const { workspaceId, name, value } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'secrets.set', requires: 'owner', correlationId: caller.correlationId });
  assertStorableSecret(name, value, { version: 1, actor: caller.actor });
  const vaultBefore = await deps.vault.status(workspaceId);
  let created = false;
  const command: SecretCommand = { type: 'SetSecret', name, ...(request.allowedHosts ? { allowedHosts: request.allowedHosts } : {}), ...(request.uses ? { uses: request.uses } : {}) };
  const result = await onSecret(deps, workspaceId, command, caller, {
    beforeAppend: async (events, before) => {
      const event = events[0];
      if (event?.type !== 'SecretSet') return;
      created = !before.exists;
      await deps.vault.set(workspaceId, name, value, { version: event.data.version, allowedHosts: event.data.allowedHosts, actor: caller.actor });
    },
  });
  deps.resolver.invalidate(workspaceId, name);
  if (vaultBefore.state === 'absent') {
    await onWorkspace(deps, workspaceId, { type: 'RecordVaultProvisioned', vault: `vault:${workspaceId}` }, caller);
  }
  return { created, secret: listingOf(secretMetadata(result.state)) };
}

export async function deleteSecret(
  deps: ServiceDependencies,
  caller: Caller,
  request: { workspaceId: string; name: string },
): Promise<void> {
  const { workspaceId, name } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'secrets.delete', requires: 'owner', correlationId: caller.correlationId });
  await onSecret(deps, workspaceId, { type: 'DeleteSecret', name }, caller, {
    beforeAppend: async () => {
      try {
        await deps.vault.delete(workspaceId, name);
      } catch (error) {
        // Deleted in the vault already (a retry after a crash): the event still has to be recorded.
        if (!(isDomainError(error) && error.code === VAULT_ERROR.SECRET_NOT_FOUND)) throw error;
      }
    },
  });
  deps.resolver.invalidate(workspaceId, name);
}

/** A secret's metadata (existence, version, `allowedHosts`) as decisions read it: checked against the log. */
export async function readSecretMetadata(
  deps: Pick<ServiceDependencies, 'store' | 'clock' | 'random' | 'retry'>,
  workspaceId: string,
  name: string,
): Promise<Readonly<Record<string, unknown>> | undefined> {
  const row = await readVerifiedProjection(deps, workspaceId, projectionKeys.secret(name));
  return row && row.exists === true ? row : undefined;
}

export async function listSecrets(deps: ServiceDependencies, caller: Caller, workspaceId: string): Promise<readonly SecretListing[]> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'secrets.list', requires: 'member', correlationId: caller.correlationId });
  const rows = await listVerifiedProjections(deps, workspaceId, projectionKeys.secretPrefix);
  return rows
    .filter((row) => row.value.exists === true)
    .map((row) => listingOf(row.value))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export type { SecretMetadata };
