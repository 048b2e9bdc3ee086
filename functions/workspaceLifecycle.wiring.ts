import type { WorkspaceLifecycleDependencies } from '../domain/services/workspaceLifecycle';
import { deleteBlobsUnder, blobContainerFor, type StorageLocation } from '../infra/storage/storageClients';
import { getServices } from './composition';
import { type Settings, loadSettings } from './settings';

/** Containers whose blobs are live records of a workspace (`{container}/{ws}/...`). */
export const WORKSPACE_BLOB_CONTAINERS = ['transcripts'] as const;
/** Kept with the sealed log until purge: what the log's RunRequested events refer to. */
export const SEALED_BLOB_CONTAINERS = ['runspecs'] as const;

export function storageLocation(settings: Settings): StorageLocation {
  return {
    ...(settings.AzureWebJobsStorage ? { connectionString: settings.AzureWebJobsStorage } : {}),
    ...(settings.AzureWebJobsStorage__accountName ? { accountName: settings.AzureWebJobsStorage__accountName } : {}),
    allowInsecure: settings.DISCO_ENV !== 'production',
  };
}

let lifecycle: Promise<{ live: WorkspaceLifecycleDependencies; purge: WorkspaceLifecycleDependencies }> | undefined;

async function build(settings: Settings) {
  const { deps, records } = await getServices();
  const location = storageLocation(settings);
  const removeFrom = (containers: readonly string[]) => async (workspaceId: string) => {
    let count = 0;
    for (const name of containers) count += await deleteBlobsUnder(blobContainerFor(location, name), `${workspaceId}/`);
    return count;
  };
  return {
    live: { ...deps, records, removeBlobs: removeFrom(WORKSPACE_BLOB_CONTAINERS) },
    purge: { ...deps, records, removeBlobs: removeFrom([...WORKSPACE_BLOB_CONTAINERS, ...SEALED_BLOB_CONTAINERS]) },
  };
}

/** Deletion uses `live` (transcripts go, specs stay with the sealed log); purge after retention uses `purge`. */
export function getWorkspaceLifecycle(): Promise<{ live: WorkspaceLifecycleDependencies; purge: WorkspaceLifecycleDependencies }> {
  lifecycle ??= build(loadSettings()).catch((error: unknown) => {
    lifecycle = undefined;
    throw error;
  });
  return lifecycle;
}
