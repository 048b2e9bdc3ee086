import { RestError, type ContainerClient } from '@azure/storage-blob';
import type { HeadWitness, WitnessedHead } from '../../domain/ports/eventStore';
import { escapeKeyPart, pad } from '../tables/rowKeys';

const LAST_SEQUENCE = 9_999_999_999;
/** Names sort newest first (the inverted sequence leads), so the latest is the first blob a listing returns. */
const newestFirst = (sequence: number): string => `${pad(LAST_SEQUENCE - sequence)}-${pad(sequence)}`;
const sequenceOfName = (name: string): number => Number(/-(\d{10})\.[a-z]+$/.exec(name)?.[1] ?? Number.NaN);

const statusOf = (error: unknown): number | undefined => (error instanceof RestError ? error.statusCode : undefined);

/**
 * The archive container (docs/backup.md): encrypted log backups under `{ws}/backups/` and signed heads under
 * `{ws}/heads/`. Every blob is written once with `If-None-Match: *` and never updated or deleted by the app; in
 * Azure the container carries a time-based retention (immutability) policy from the Bicep, so nobody — the app's
 * identity included — can overwrite or delete a blob before its retention ends. Azurite has no immutability
 * policies: locally, write-once is the app's own discipline only.
 */
export class BlobLogArchive implements HeadWitness {
  private ready: Promise<unknown> | undefined;

  constructor(private readonly container: ContainerClient) {}

  readonly containerName = (): string => this.container.containerName;

  async putBackup(workspaceId: string, sequence: number, bytes: Uint8Array): Promise<string> {
    const name = `${escapeKeyPart(workspaceId)}/backups/${newestFirst(sequence)}.bak`;
    await this.putOnce(name, bytes, 'application/octet-stream');
    return name;
  }

  async getBackup(name: string): Promise<Uint8Array | undefined> {
    try {
      return await this.container.getBlockBlobClient(name).downloadToBuffer();
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** The newest backup of the workspace: its blob name and the log sequence it reaches. */
  async latestBackup(workspaceId: string): Promise<{ name: string; sequence: number } | undefined> {
    const name = await this.first(`${escapeKeyPart(workspaceId)}/backups/`);
    return name === undefined ? undefined : { name, sequence: sequenceOfName(name) };
  }

  async witness(head: WitnessedHead): Promise<void> {
    const body = JSON.stringify({ workspaceId: head.workspaceId, sequence: head.sequence, hash: head.hash, signature: head.signature });
    await this.putOnce(`${escapeKeyPart(head.workspaceId)}/heads/${newestFirst(head.sequence)}.json`, Buffer.from(body), 'application/json');
  }

  async latest(workspaceId: string): Promise<WitnessedHead | undefined> {
    const name = await this.first(`${escapeKeyPart(workspaceId)}/heads/`);
    if (name === undefined) return undefined;
    const bytes = await this.getBackup(name);
    if (!bytes) return undefined;
    const body = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<WitnessedHead>;
    return { workspaceId: String(body.workspaceId), sequence: Number(body.sequence), hash: String(body.hash), signature: String(body.signature) };
  }

  private async first(prefix: string): Promise<string | undefined> {
    try {
      for await (const page of this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: 1 })) return page.segment.blobItems[0]?.name;
      return undefined;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** Write-once: a blob of that name already there is the same head or backup, written by a racing instance. */
  private async putOnce(name: string, bytes: Uint8Array, contentType: string): Promise<void> {
    this.ready ??= this.container.createIfNotExists().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    await this.ready;
    try {
      await this.container.getBlockBlobClient(name).uploadData(bytes, { conditions: { ifNoneMatch: '*' }, blobHTTPHeaders: { blobContentType: contentType } });
    } catch (error) {
      if (statusOf(error) !== 409 && statusOf(error) !== 412) throw error;
    }
  }
}
