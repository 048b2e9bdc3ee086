import type { SandboxHost } from '../domain/ports/sandboxHost';
import type { WorkspaceLifecycleDependencies } from '../domain/services/workspaceLifecycle';
import { deleteBlobsUnder, blobContainerFor, tableClientFor, type StorageLocation } from '../infra/storage/storageClients';
import { WorkspaceLeftovers, type DurableInstances } from '../infra/storage/workspaceLeftovers';
import { type Composition, appComposition, storageLocation } from './composition';
import { once } from './once';

/** Containers whose blobs are live records of a workspace (`{container}/{ws}/...`). */
export const WORKSPACE_BLOB_CONTAINERS = ['transcripts'] as const;
/** Kept with the sealed log until purge: what the log's RunRequested events refer to. */
export const SEALED_BLOB_CONTAINERS = ['runspecs'] as const;

/** Purge needs the Durable client of the trigger that runs it (the sweep timer's). */
export type PurgeDependencies = (durable: DurableInstances) => WorkspaceLifecycleDependencies;

/** Removes every blob under `{ws}/` in each container; returns how many. */
export function blobRemover(location: StorageLocation, containers: readonly string[]): (workspaceId: string) => Promise<number> {
  return async (workspaceId) => {
    let count = 0;
    for (const name of containers) count += await deleteBlobsUnder(blobContainerFor(location, name), `${workspaceId}/`);
    return count;
  };
}

/** The tables and key store purge reaches beyond the workspace's partition. */
export function workspaceLeftovers(composition: Composition, durable: DurableInstances): WorkspaceLeftovers {
  const { settings } = composition;
  const location = storageLocation(settings);
  return new WorkspaceLeftovers({
    tables: {
      runRequests: tableClientFor(location, settings.RUN_REQUEST_TABLE),
      outboxIndex: tableClientFor(location, settings.OUTBOX_INDEX_TABLE),
      gatewayBearers: tableClientFor(location, settings.GATEWAY_BEARER_TABLE),
    },
    backupKeys: composition.backupKeys(),
    durable,
  });
}

/**
 * Purge removes the workspace's kept sandbox volumes through the host's optional `removeWorkspaceVolumes`. A host
 * that keeps them (`required`: SANDBOX_HOST=docker) must answer, or the purge fails and the next sweep retries it;
 * any other host that cannot open (production refuses the local one) has none to remove.
 */
export function sandboxVolumeRemover(host: () => Promise<SandboxHost>, required: boolean): (workspaceId: string) => Promise<number> {
  return async (workspaceId) => {
    const opened = await host().catch((error: unknown) => {
      if (required) throw error;
      return undefined;
    });
    return (await opened?.removeWorkspaceVolumes?.(workspaceId)) ?? 0;
  };
}

const deletionDoesNotPurge = (): Promise<void> => Promise.reject(new Error('Deletion keeps what purge removes'));

async function build(composition: Composition) {
  const { deps, records } = await composition.services();
  const location = storageLocation(composition.settings);
  const removeFrom = (containers: readonly string[]) => blobRemover(location, containers);
  return {
    live: { ...deps, records, removeBlobs: removeFrom(WORKSPACE_BLOB_CONTAINERS), purgeOutside: deletionDoesNotPurge },
    purge: (durable: DurableInstances): WorkspaceLifecycleDependencies => {
      const leftovers = workspaceLeftovers(composition, durable);
      const removeVolumes = sandboxVolumeRemover(() => composition.sandboxHost(), composition.settings.SANDBOX_HOST === 'docker');
      return {
        ...deps, records, removeBlobs: removeFrom([...WORKSPACE_BLOB_CONTAINERS, ...SEALED_BLOB_CONTAINERS]),
        purgeOutside: async (workspaceId, runIds) => {
          await leftovers.purge(workspaceId, runIds);
          await removeVolumes(workspaceId);
        },
      };
    },
  };
}

/** Deletion uses `live` (transcripts go, specs stay with the sealed log); purge after retention uses `purge`. */
export const getWorkspaceLifecycle = once((): Promise<{ live: WorkspaceLifecycleDependencies; purge: PurgeDependencies }> => build(appComposition()));
