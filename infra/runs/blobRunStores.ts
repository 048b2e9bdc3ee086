import type { ContainerClient } from '@azure/storage-blob';
import { createHash } from 'node:crypto';
import { DomainError } from '../../domain/errors';
import type { RunSpec } from '../../domain/runSpec';
import type { RunSpecStore, TranscriptStore } from '../../domain/services/runPorts';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function ensureContainer(container: ContainerClient): Promise<void> {
  await container.createIfNotExists();
}

async function readText(container: ContainerClient, name: string): Promise<string> {
  const buffer = await container.getBlockBlobClient(name).downloadToBuffer();
  return buffer.toString('utf8');
}

/** RunSpecs by reference in Blob storage (`runspecs/{ws}/{runId}.json`): names and uses, never values. */
export class BlobRunSpecStore implements RunSpecStore {
  private ready: Promise<void> | undefined;
  constructor(private readonly container: ContainerClient) {}

  async put(workspaceId: string, runId: string, spec: RunSpec): Promise<{ ref: string; digest: string }> {
    await (this.ready ??= ensureContainer(this.container));
    const name = `${workspaceId}/${runId}.json`;
    const body = Buffer.from(JSON.stringify(spec), 'utf8');
    await this.container.getBlockBlobClient(name).upload(body, body.length, { blobHTTPHeaders: { blobContentType: 'application/json' } });
    return { ref: `blob:runspecs/${name}`, digest: sha256(body) };
  }

  async get(workspaceId: string, specRef: string): Promise<{ spec: RunSpec; digest: string }> {
    const prefix = `blob:runspecs/${workspaceId}/`;
    if (!specRef.startsWith(prefix)) throw new DomainError('RUN.SPEC_REF', 'The run spec reference belongs to another workspace', 'invalid');
    const bytes = await this.container.getBlockBlobClient(specRef.slice('blob:runspecs/'.length)).downloadToBuffer();
    // The digest covers the bytes as read; the caller compares it before trusting the parse.
    const digest = sha256(bytes);
    try {
      return { spec: JSON.parse(bytes.toString('utf8')) as RunSpec, digest };
    } catch {
      // It was JSON when stored, so it was changed since.
      throw new DomainError('RUN.SPEC_TAMPERED', 'RUN.SPEC_TAMPERED: the stored run spec is no longer JSON (changed after the request); the run stops', 'precondition');
    }
  }
}

const CHUNK_DIGITS = 8;

/**
 * Transcripts as numbered blobs `transcripts/{ws}/{runId}/{n}`. Callers hand in redacted text; a chunk number
 * is claimed with a create-only upload, so concurrent writers (a step and an MCP server's exit) never overwrite.
 */
export class BlobTranscriptStore implements TranscriptStore {
  private ready: Promise<void> | undefined;
  constructor(private readonly container: ContainerClient) {}

  private async names(workspaceId: string, runId: string): Promise<string[]> {
    const names: string[] = [];
    for await (const blob of this.container.listBlobsFlat({ prefix: `${workspaceId}/${runId}/` })) names.push(blob.name);
    return names.sort();
  }

  async append(workspaceId: string, runId: string, text: string): Promise<void> {
    await (this.ready ??= ensureContainer(this.container));
    let n = (await this.names(workspaceId, runId)).length + 1;
    for (let attempt = 0; attempt < 20; attempt++, n++) {
      const name = `${workspaceId}/${runId}/${String(n).padStart(CHUNK_DIGITS, '0')}`;
      try {
        await this.container.getBlockBlobClient(name).upload(text, Buffer.byteLength(text), {
          conditions: { ifNoneMatch: '*' },
          blobHTTPHeaders: { blobContentType: 'text/plain; charset=utf-8' },
        });
        return;
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        if (status !== 409 && status !== 412) throw error;
      }
    }
    throw new DomainError('RUN.TRANSCRIPT_CONTENDED', 'Could not claim a transcript chunk', 'unavailable');
  }

  async read(workspaceId: string, runId: string): Promise<string> {
    await (this.ready ??= ensureContainer(this.container));
    const parts = await Promise.all((await this.names(workspaceId, runId)).map((name) => readText(this.container, name)));
    return parts.join('');
  }
}
