import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';

/**
 * How the app reaches its storage account: a connection string locally (Azurite), managed identity in Azure
 * (`AzureWebJobsStorage__accountName`, no key anywhere).
 */
export interface StorageLocation {
  readonly connectionString?: string;
  readonly accountName?: string;
  /** Plain http is allowed only for local development. */
  readonly allowInsecure: boolean;
}

let credential: TokenCredential | undefined;
const managedIdentity = (): TokenCredential => (credential ??= new DefaultAzureCredential());

function requireAccount(location: StorageLocation): string {
  if (!location.accountName) throw new Error('Storage: neither a connection string nor an account name is configured');
  return location.accountName;
}

export function tableClientFor(location: StorageLocation, table: string): TableClient {
  if (location.connectionString)
    return TableClient.fromConnectionString(location.connectionString, table, { allowInsecureConnection: location.allowInsecure });
  return new TableClient(`https://${requireAccount(location)}.table.core.windows.net`, table, managedIdentity());
}

export function blobContainerFor(location: StorageLocation, container: string): ContainerClient {
  const service = location.connectionString
    ? BlobServiceClient.fromConnectionString(location.connectionString)
    : new BlobServiceClient(`https://${requireAccount(location)}.blob.core.windows.net`, managedIdentity());
  return service.getContainerClient(container);
}

export function queueClientFor(location: StorageLocation, queue: string): QueueClient {
  const service = location.connectionString
    ? QueueServiceClient.fromConnectionString(location.connectionString)
    : new QueueServiceClient(`https://${requireAccount(location)}.queue.core.windows.net`, managedIdentity());
  return service.getQueueClient(queue);
}

/** Deletes every blob under `prefix`; returns how many. A blob already gone is not an error. */
export async function deleteBlobsUnder(container: ContainerClient, prefix: string): Promise<number> {
  let count = 0;
  try {
    for await (const blob of container.listBlobsFlat({ prefix })) {
      await container.deleteBlob(blob.name, { deleteSnapshots: 'include' }).catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404) throw error;
      });
      count++;
    }
  } catch (error) {
    // No container (never created, or removed meanwhile): nothing of the workspace is in it.
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
  }
  return count;
}
