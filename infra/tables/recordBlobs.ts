import { RestError } from '@azure/storage-blob';
import type { ContainerClient } from '@azure/storage-blob';
import { escapeKeyPart } from './rowKeys';
import { AppendTooLargeError } from './storeErrors';

/** A RunSpec may be 1 MiB; its canonical JSON with escapes stays well below this. */
export const MAX_BLOB_RECORD_BYTES = 8 * 1024 * 1024;

/**
 * Stored bytes of records too large for one entity, in Blob storage, named by workspace and chain hash (so a
 * name is never reused). Uploaded before the transaction: a failed append leaves an orphan blob no row points
 * to, which is harmless and which a sweep may delete; a committed row never points to a missing upload.
 */
export class RecordBlobs {
  private ready: Promise<unknown> | undefined;

  constructor(private readonly container: ContainerClient) {}

  async put(workspaceId: string, hash: string, stored: string): Promise<string> {
    const bytes = Buffer.from(stored, 'utf8');
    if (bytes.length > MAX_BLOB_RECORD_BYTES) throw new AppendTooLargeError('A record', bytes.length, MAX_BLOB_RECORD_BYTES);
    this.ready ??= this.container.createIfNotExists().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    await this.ready;
    const name = `${escapeKeyPart(workspaceId)}/${hash}.json`;
    await this.container.getBlockBlobClient(name).uploadData(bytes, { blobHTTPHeaders: { blobContentType: 'application/json' } });
    return name;
  }

  /** A missing blob reads as empty text, which `verify` reports as a broken record. */
  async get(name: string): Promise<string> {
    try {
      return (await this.container.getBlockBlobClient(name).downloadToBuffer()).toString('utf8');
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return '';
      throw error;
    }
  }
}
