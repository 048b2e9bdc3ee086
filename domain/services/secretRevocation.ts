import { isDomainError } from '../errors';
import { type ResolvedSecret, VAULT_ERROR } from '../ports/secretVault';
import { isUnfinishedRun } from '../runState';
import { runStatusFromRow } from '../runProjection';
import { type SecretEvent, assertNotRevoked, isRevokedVersion } from '../secret';
import { projectionKeys } from '../streams';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import { onRun } from './runStream';
import { onSecret, readSecret } from './secretStream';
import type { Caller } from './workspaceStream';

/**
 * Rotate vs revoke (README "Rotate vs revoke"). A rotation reaches the next process; a revocation also ends
 * every live lease of the revoked versions. `SecretRevoked` on the secret's stream is the fact every check
 * reads (lease grants, the gateway, each instance's live leases); `LeaseRevoked` on each run is its record.
 */

/** The revoked-through version a write recorded, if it revoked anything. */
export function revokedThroughOf(events: readonly { readonly type: string; readonly data: unknown }[]): number | undefined {
  const revoked = events.find((e): e is Extract<SecretEvent, { type: 'SecretRevoked' }> => e.type === 'SecretRevoked');
  return revoked?.data.revokedThrough;
}

/**
 * Ends the live leases the status projection shows for the revoked versions (one `RevokeLeases` per run,
 * decided against the run's log, so a version the projection gets wrong is still judged right) and tells
 * this instance's live leases. A run the projection misses is caught by its host's own check of the log.
 */
export async function endRevokedLeases(deps: ServiceDependencies, workspaceId: string, name: string, revokedThrough: number, by: Caller): Promise<number> {
  let revoked = 0;
  for (const row of await deps.store.listProjections(workspaceId, projectionKeys.runPrefix)) {
    const run = runStatusFromRow(row.value);
    if (!run || !isUnfinishedRun(run.status) || !run.activeLeases.some((l) => l.secretName === name)) continue;
    try {
      const result = await onRun(deps, workspaceId, run.runId, { type: 'RevokeLeases', secretName: name, revokedThrough }, by);
      revoked += result.records.length;
    } catch (error) {
      // The run finished meanwhile: its leases ended with it.
      if (!isDomainError(error)) throw error;
    }
  }
  // After the records, so the count is what this request ended; the holders stop a few milliseconds later.
  deps.revocations?.secretRevoked(workspaceId, name);
  return revoked;
}

/**
 * Revoke without a new value (`POST .../secrets/{name}/revoke`): the current value is deleted from the vault,
 * every version so far is revoked, and every live lease of one ends. Owners only. Repeating it changes nothing.
 */
export async function revokeSecret(deps: ServiceDependencies, caller: Caller, request: { workspaceId: string; name: string }): Promise<{ revokedThrough: number; leasesRevoked: number }> {
  const { workspaceId, name } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'secrets.revoke', requires: 'owner', correlationId: caller.correlationId });
  const result = await onSecret(deps, workspaceId, { type: 'RevokeSecret', name }, caller, {
    beforeAppend: async (events) => {
      if (!events.some((e) => e.type === 'SecretDeleted')) return;
      try {
        await deps.vault.delete(workspaceId, name);
      } catch (error) {
        if (!(isDomainError(error) && error.code === VAULT_ERROR.SECRET_NOT_FOUND)) throw error;
      }
    },
  });
  deps.resolver.invalidate(workspaceId, name);
  // Repeated (nothing new recorded): the earlier call's leases may still be live on a host that missed it.
  const revokedThrough = result.state.revokedThrough;
  const leasesRevoked = await endRevokedLeases(deps, workspaceId, name, revokedThrough, caller);
  return { revokedThrough, leasesRevoked };
}

/**
 * Resolves a value for a lease or a gateway operation and checks its version against the secret's log after
 * the resolve: a cached value of a revoked version (another instance's cache, a metadata row edited back) is
 * dropped and resolved again from the vault, and refused if it is still revoked. The old value never leaves.
 */
export async function resolveUnrevoked(deps: Pick<ServiceDependencies, 'store' | 'resolver'>, workspaceId: string, name: string): Promise<ResolvedSecret> {
  const first = await deps.resolver.resolve(workspaceId, name);
  if (!isRevokedVersion(await readSecret(deps.store, workspaceId, name), first.version)) return first;
  deps.resolver.invalidate(workspaceId, name);
  const second = await deps.resolver.resolve(workspaceId, name);
  assertNotRevoked(await readSecret(deps.store, workspaceId, name), name, second.version);
  return second;
}
