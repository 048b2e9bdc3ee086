import { DomainError } from '../errors';
import type { WorkspaceRecords } from '../ports/workspaceRecords';
import { PLATFORM_PARTITION, projectionKeys, runIdOfStream } from '../streams';
import { roleIn } from '../workspace';
import { authorize, recordDenial } from './access';
import type { ServiceDependencies } from './dependencies';
import { rebuildProjections } from './projections';
import { type Caller, onWorkspace, readWorkspace } from './workspaceStream';
import { DEFAULT_RETENTION_DAYS, WORKSPACE_ERROR } from '../catalogue';

export interface WorkspaceLifecycleDependencies extends ServiceDependencies {
  readonly records: WorkspaceRecords;
  /** Removes transcripts and other blobs of the workspace; returns how many. */
  readonly removeBlobs: (workspaceId: string) => Promise<number>;
  /**
   * Purge only: removes what the workspace left outside its partition, blobs and vault — its runs' Durable
   * instances and history, run-request ledger rows, outbox marker, gateway bearer rows and its backup key.
   */
  readonly purgeOutside: (workspaceId: string, runIds: readonly string[]) => Promise<void>;
}

/** Every run the workspace's log knows of (read before the log goes: it is the only list of them). */
async function runIdsIn(store: WorkspaceLifecycleDependencies['store'], workspaceId: string): Promise<string[]> {
  const runIds = new Set<string>();
  let after = 0;
  for (;;) {
    const page = await store.readLog(workspaceId, { after, limit: 1000 });
    for (const record of page.records) {
      const runId = runIdOfStream(record.streamId);
      if (runId !== undefined) runIds.add(runId);
    }
    if (page.next === undefined) return [...runIds];
    after = page.next;
  }
}

const SYSTEM = 'system:deleteWorkspace';

/** Owner only. Records the request; the `deleteWorkspace` orchestration does the rest in the background. */
export async function requestWorkspaceDeletion(
  deps: ServiceDependencies,
  caller: Caller,
  workspaceId: string,
  retentionDays?: number,
): Promise<{ id: string; purgeAfter: string }> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'workspace.delete', requires: 'owner', correlationId: caller.correlationId });
  const now = deps.clock.now().toISOString();
  const result = await onWorkspace(deps, workspaceId, { type: 'RequestDeletion', actor: caller.actor, ...(retentionDays !== undefined ? { retentionDays } : {}), now }, caller);
  return { id: workspaceId, purgeAfter: result.state.purgeAfter ?? '' };
}

/** Step: the vault goes to soft-deleted state under purge protection, for the same retention. */
export async function softDeleteWorkspaceVault(deps: ServiceDependencies, workspaceId: string, correlationId: string): Promise<void> {
  const state = await readWorkspace(deps.store, workspaceId);
  if (state.status !== 'Deleting') return;
  const retentionDays = state.retentionDays ?? DEFAULT_RETENTION_DAYS;
  const status = await deps.vault.status(workspaceId);
  if (status.state === 'active') await deps.vault.softDelete(workspaceId, { retentionDays, now: deps.clock.now() });
  await onWorkspace(deps, workspaceId, { type: 'RecordVaultSoftDeleted' }, { actor: SYSTEM, correlationId });
}

/** Step: the live records go (projections, transcripts); the log stays, sealed by `WorkspaceDeleted`. */
export async function removeLiveRecordsAndSeal(
  deps: WorkspaceLifecycleDependencies,
  workspaceId: string,
  correlationId: string,
): Promise<{ projections: number; blobs: number }> {
  try {
    await onWorkspace(deps, workspaceId, { type: 'CompleteDeletion' }, { actor: SYSTEM, correlationId });
  } catch (error) {
    // Recovered while the deletion was still running: the live records stay.
    if (error instanceof DomainError && error.code === WORKSPACE_ERROR.NOT_DELETING) return { projections: 0, blobs: 0 };
    throw error;
  }
  // After the seal, so no concurrent command can write a projection or a transcript back.
  const blobs = await deps.removeBlobs(workspaceId);
  const projections = await deps.records.deleteProjections(workspaceId);
  const state = await readWorkspace(deps.store, workspaceId);
  await deps.records.writeProjections(PLATFORM_PARTITION, [
    { kind: 'upsert', key: projectionKeys.deletedWorkspace(workspaceId), value: { workspaceId, purgeAfter: state.purgeAfter ?? '' } },
  ]);
  return { projections, blobs };
}

/**
 * Owner of the deleted workspace, within retention: the vault comes back with every secret, and the
 * projections are rebuilt by replaying the log. Authorisation reads the log itself: the projections are gone.
 */
export async function recoverWorkspace(
  deps: ServiceDependencies & { readonly records: WorkspaceRecords },
  caller: Caller,
  workspaceId: string,
): Promise<{ id: string }> {
  const state = await readWorkspace(deps.store, workspaceId);
  const role = roleIn(state.members, caller.actor);
  // A live workspace records a refused recovery like any refused route (authorize does for the others).
  if (state.status === 'Active' && role !== 'owner')
    await recordDenial(deps, { workspaceId, actor: caller.actor, action: 'workspace.recover', correlationId: caller.correlationId }, role === undefined ? 'not a member' : 'owner required');
  if (state.status === 'None' || state.status === 'Purged' || role === undefined)
    throw new DomainError(WORKSPACE_ERROR.NOT_FOUND, 'Workspace not found', 'not_found');
  if (role !== 'owner')
    throw new DomainError(WORKSPACE_ERROR.OWNER_REQUIRED, 'Only an owner of this workspace may do this', 'forbidden');
  const vault = await deps.vault.status(workspaceId);
  const now = deps.clock.now().toISOString();
  await onWorkspace(deps, workspaceId, { type: 'Recover', actor: caller.actor, now }, caller, {
    beforeAppend: async () => {
      if (vault.state === 'deleted') await deps.vault.recover(workspaceId);
    },
  });
  await deps.records.writeProjections(workspaceId, await rebuildProjections(deps.store, workspaceId));
  await deps.records.writeProjections(PLATFORM_PARTITION, [{ kind: 'delete', key: projectionKeys.deletedWorkspace(workspaceId) }]);
  return { id: workspaceId };
}

/**
 * After retention only (purge protection): the vault, the log and everything else of the workspace go for good
 * (the encrypted backups stay in immutable storage until their retention ends, unreadable once the key is gone).
 * Returns whether it purged.
 */
export async function purgeWorkspaceIfDue(deps: WorkspaceLifecycleDependencies, workspaceId: string): Promise<boolean> {
  // The log itself, not a stream read (which an in-process cache may still hold after a purge), says if anything is left.
  if ((await deps.store.readLog(workspaceId, { limit: 1 })).records.length === 0) {
    // Purged already (perhaps by a sweep that stopped before clearing its index row).
    await deps.records.writeProjections(PLATFORM_PARTITION, [{ kind: 'delete', key: projectionKeys.deletedWorkspace(workspaceId) }]);
    return false;
  }
  const state = await readWorkspace(deps.store, workspaceId);
  if (state.status !== 'Deleted' || !state.purgeAfter || deps.clock.now().getTime() < Date.parse(state.purgeAfter)) return false;
  const vault = await deps.vault.status(workspaceId);
  // Another sweep may be purging it too: the vault's purge is idempotent for that.
  if (vault.state === 'deleted') await deps.vault.purge(workspaceId, deps.clock.now());
  // Outside first, the partition last: until the log is gone a failed purge is retried and finds the runs again.
  await deps.purgeOutside(workspaceId, await runIdsIn(deps.store, workspaceId));
  await deps.removeBlobs(workspaceId);
  await deps.records.purgePartition(workspaceId);
  await deps.records.writeProjections(PLATFORM_PARTITION, [{ kind: 'delete', key: projectionKeys.deletedWorkspace(workspaceId) }]);
  return true;
}

/** The sweep's half of purge: every deleted workspace whose retention has ended goes, none earlier. */
export async function purgeDueWorkspaces(deps: WorkspaceLifecycleDependencies): Promise<{ checked: number; purged: number }> {
  const pending = await deps.store.listProjections(PLATFORM_PARTITION, projectionKeys.deletedWorkspacePrefix);
  let purged = 0;
  for (const row of pending) {
    const workspaceId = String(row.value.workspaceId);
    if (await purgeWorkspaceIfDue(deps, workspaceId)) purged++;
  }
  return { checked: pending.length, purged };
}
