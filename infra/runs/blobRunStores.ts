import type { ContainerClient } from '@azure/storage-blob';
import { DomainError } from '../../domain/errors';
import type { RunSpec } from '../../domain/runSpec';
import type { RunSpecStore, TranscriptStore } from '../../domain/services/runPorts';

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

  async put(workspaceId: string, runId: string, spec: RunSpec): Promise<string> {
    await (this.ready ??= ensureContainer(this.container));
    const name = `${workspaceId}/${runId}.json`;
    const body = JSON.stringify(spec);
    await this.container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body), { blobHTTPHeaders: { blobContentType: 'application/json' } });
    return `blob:runspecs/${name}`;
  }

  async get(workspaceId: string, specRef: string): Promise<RunSpec> {
    const prefix = `blob:runspecs/${workspaceId}/`;
    if (!specRef.startsWith(prefix)) throw new DomainError('RUN.SPEC_REF', 'The run spec reference belongs to another workspace', 'invalid');
    return JSON.parse(await readText(this.container, specRef.slice('blob:runspecs/'.length))) as RunSpec;
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
