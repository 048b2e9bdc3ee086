import { isDomainError } from '../errors';
import { type SecretMetadata, VAULT_ERROR, assertStorableSecret } from '../ports/secretVault';
import { type SecretCommand, type SecretMetadataView, secretMetadata } from '../secret';
import type { SecretUses } from '../secretPolicy';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import { endRevokedLeases, revokedThroughOf } from './secretRevocation';
import { onSecret } from './secretStream';
import { listVerifiedSecretMetadata, readVerifiedSecretMetadata } from './verifiedProjections';
import { type Caller, onWorkspace } from './workspaceStream';

export interface SecretListing {
  readonly name: string;
  readonly version: number;
  readonly updatedAt: string | null;
  readonly updatedBy: string | null;
  readonly allowedHosts: readonly string[];
  readonly uses: SecretUses;
}

function listingOf(view: SecretMetadataView): SecretListing {
  const { name, version, updatedAt, updatedBy, allowedHosts, uses } = view;
  return { name, version, updatedAt, updatedBy, allowedHosts, uses };
}

/**
 * Set or rotate (the same write). The value goes to the vault first, then `SecretSet` announces the
 * version; a concurrent writer makes the append conflict and the loop writes again with the next version.
 * Owners only: a member uses secrets through runs, never manages them, and so never changes what a secret may be
 * used for (`uses`, set with the value; omitted, a rotation keeps the previous uses).
 * `revoke`: the value being replaced is compromised; every earlier version is revoked and its live leases end
 * now (secretRevocation.ts). Without it, work in flight finishes with the version it started with.
 */
export async function setSecret(
  deps: ServiceDependencies,
  caller: Caller,
  request: { workspaceId: string; name: string; value: string; allowedHosts?: readonly string[]; uses?: SecretUses; revoke?: boolean },
): Promise<{ created: boolean; secret: SecretListing; leasesRevoked?: number }> {
  const { workspaceId, name, value } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'secrets.set', requires: 'owner', correlationId: caller.correlationId });
  assertStorableSecret(name, value, { version: 1, actor: caller.actor });
  const vaultBefore = await deps.vault.status(workspaceId);
  let created = false;
  const command: SecretCommand = { type: 'SetSecret', name, ...(request.allowedHosts ? { allowedHosts: request.allowedHosts } : {}), ...(request.uses ? { uses: request.uses } : {}), ...(request.revoke === true ? { revoke: true } : {}) };
  const result = await onSecret(deps, workspaceId, command, caller, {
    beforeAppend: async (events, before) => {
      const event = events.find((e) => e.type === 'SecretSet');
      if (event?.type !== 'SecretSet') return;
      created = !before.exists;
      await deps.vault.set(workspaceId, name, value, { version: event.data.version, allowedHosts: event.data.allowedHosts, actor: caller.actor });
    },
  });
  deps.resolver.invalidate(workspaceId, name);
  const revokedThrough = revokedThroughOf(result.records);
  const leasesRevoked = revokedThrough === undefined ? undefined : await endRevokedLeases(deps, workspaceId, name, revokedThrough, caller);
  if (vaultBefore.state === 'absent') {
    await onWorkspace(deps, workspaceId, { type: 'RecordVaultProvisioned', vault: `vault:${workspaceId}` }, caller);
  }
  return { created, secret: listingOf(secretMetadata(result.state)), ...(leasesRevoked !== undefined ? { leasesRevoked } : {}) };
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

/** A secret's metadata (version, `allowedHosts`, uses) as decisions read it: checked against the log; undefined when deleted or never set. */
export async function readSecretMetadata(
  deps: Pick<ServiceDependencies, 'store' | 'clock' | 'random' | 'retry'>,
  workspaceId: string,
  name: string,
): Promise<SecretMetadataView | undefined> {
  const view = await readVerifiedSecretMetadata(deps, workspaceId, name);
  return view?.exists === true ? view : undefined;
}

export async function listSecrets(deps: ServiceDependencies, caller: Caller, workspaceId: string): Promise<readonly SecretListing[]> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'secrets.list', requires: 'member', correlationId: caller.correlationId });
  const views = await listVerifiedSecretMetadata(deps, workspaceId);
  return views
    .filter((view) => view.exists)
    .map(listingOf)
    .sort((a, b) => a.name.localeCompare(b.name));
}

export type { SecretMetadata };
